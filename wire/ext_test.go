package wire_test

import (
	"bytes"
	"encoding/hex"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/msgtrans/msgtrans-go/runtime"
	"github.com/msgtrans/msgtrans-go/wire"
)

// TestExtLayout pins the byte-level examples of docs/wire.md.
func TestExtLayout(t *testing.T) {
	tests := []struct {
		name string
		ext  wire.Ext
		hex  string
	}{
		{"hello", wire.Ext{HasRoute: true, Route: wire.ControlRoute, Control: wire.ControlHello}, "01 81 04 00000000 82 01 01"},
		{"error status", wire.Ext{Code: runtime.CodeNotFound, Message: "no such room"}, "01 03 01 05 04 0c" + hex.EncodeToString([]byte("no such room"))},
		{"route and timeout", wire.Ext{HasRoute: true, Route: 0xDEADBEEF, TimeoutMS: 300}, "01 81 04 deadbeef 05 02 ac02"},
		{"empty", wire.Ext{}, "01"},
		{"hello with credentials", wire.Ext{HasRoute: true, Control: wire.ControlHello, Auth: []byte("tok")}, "01 81 04 00000000 82 01 01 06 03 746f6b"},
		{"trace parent", wire.Ext{HasRoute: true, Route: 7, TraceParent: traceParent}, "01 81 04 00000007 0a 37" + hex.EncodeToString([]byte(traceParent))},
		{"trace parent and state", wire.Ext{TraceParent: traceParent, TraceState: "k=v"}, "01 0a 37" + hex.EncodeToString([]byte(traceParent)) + "0b 03 6b3d76"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want, err := hex.DecodeString(strings.ReplaceAll(tt.hex, " ", ""))
			if err != nil {
				t.Fatal(err)
			}
			got := wire.AppendExt(nil, &tt.ext)
			if !bytes.Equal(got, want) {
				t.Errorf("AppendExt = % x, want % x", got, want)
			}
			back, err := wire.ParseExt(want)
			if err != nil || !reflect.DeepEqual(back, tt.ext) {
				t.Errorf("ParseExt = %+v, %v; want %+v", back, err, tt.ext)
			}
		})
	}
}

// traceParent is the example traceparent of the W3C recommendation.
const traceParent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

// TestExtTraceContext: the trace context is a non-critical field pair;
// a trace state travels only beside a trace parent, and a receiver that
// knows neither field skips both.
func TestExtTraceContext(t *testing.T) {
	// A state without a parent is not written.
	if got := wire.AppendExt(nil, &wire.Ext{TraceState: "k=v"}); !bytes.Equal(got, []byte{1}) {
		t.Errorf("AppendExt of a state alone = % x, want 01", got)
	}
	tests := []struct {
		name string
		b    []byte
		want wire.Ext
	}{
		{"state alone is dropped", []byte{1, 0x0B, 3, 'k', '=', 'v', 0x81, 4, 0, 0, 0, 7}, wire.Ext{HasRoute: true, Route: 7}},
		{"state before parent", append([]byte{1, 0x0B, 3, 'k', '=', 'v', 0x0A, 55}, traceParent...), wire.Ext{TraceParent: traceParent, TraceState: "k=v"}},
		{"any text is carried as is", []byte{1, 0x0A, 3, 'x', 0xff, 'y'}, wire.Ext{TraceParent: "x\xffy"}},
		{"empty parent is none", []byte{1, 0x0A, 0, 0x0B, 1, 'a'}, wire.Ext{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := wire.ParseExt(tt.b)
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseExt(% x) = %+v, %v; want %+v", tt.b, got, err, tt.want)
			}
		})
	}
	// A trace parent whose length runs past the header is malformed.
	if _, err := wire.ParseExt([]byte{1, 0x0A, 56, '0'}); !errors.Is(err, wire.ErrProtocol) {
		t.Errorf("ParseExt of a truncated trace parent = %v, want ErrProtocol", err)
	}
}

func TestHelloPacketBytes(t *testing.T) {
	p := &wire.Packet{
		Type: wire.OneWay, MessageID: 1, Flags: wire.FlagHasRouteTag,
		Ext:     wire.AppendExt(nil, &wire.Ext{HasRoute: true, Control: wire.ControlHello}),
		Payload: []byte{1<<wire.CompressionZstd | 1<<wire.CompressionZlib},
	}
	got, err := wire.AppendPacket(nil, p)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := hex.DecodeString("0100000000000001000a000000010004" + "01810400000000820101" + "06")
	if !bytes.Equal(got, want) {
		t.Errorf("hello = % x\nwant    % x", got, want)
	}
}

func TestParseExtRejects(t *testing.T) {
	tests := []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"other layout", []byte("route:abc")},
		{"length past the end", []byte{1, 0x03, 5, 1}},
		{"bad varint length", []byte{1, 0x03, 0x80}},
		{"unknown critical field", []byte{1, 0xFF, 0}},
		{"short route", []byte{1, 0x81, 2, 0, 0}},
		{"long control", []byte{1, 0x82, 2, 0, 0}},
		{"code not a varint", []byte{1, 0x03, 1, 0x80}},
		{"short stream field", []byte{1, 0x88, 5, 1, 0, 0, 0, 0}},
		{"long stream field", []byte{1, 0x88, 7, 1, 0, 0, 0, 0, 2, 0}},
		{"credit over 32 bits", []byte{1, 0x09, 5, 0x80, 0x80, 0x80, 0x80, 0x10}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := wire.ParseExt(tt.b); !errors.Is(err, wire.ErrProtocol) {
				t.Errorf("ParseExt(% x) = %v, want ErrProtocol", tt.b, err)
			}
		})
	}
	// Unknown non-critical fields are skipped.
	e, err := wire.ParseExt([]byte{1, 0x7F, 2, 9, 9, 0x81, 4, 0, 0, 0, 7})
	if err != nil || !e.HasRoute || e.Route != 7 {
		t.Errorf("ParseExt with an unknown optional field = %+v, %v", e, err)
	}
}

// TestParseExtNotUnderstood: a sound ext header with a critical field
// this package does not know, or a stream op it does not know, fails with a
// CriticalFieldError (which is a protocol error too) naming what was not
// understood; one that is also malformed further on is reported as
// malformed.
func TestParseExtNotUnderstood(t *testing.T) {
	tests := []struct {
		name   string
		b      []byte
		want   wire.CriticalFieldError
		detail string
	}{
		{"unknown critical field", []byte{1, 0x81, 4, 0, 0, 0, 7, 0x8A, 0}, wire.CriticalFieldError{Tag: 0x8A}, "unknown critical ext field 0x8a"},
		{"unknown critical field first", []byte{1, 0xFF, 2, 9, 9, 0x81, 4, 0, 0, 0, 7}, wire.CriticalFieldError{Tag: 0xFF}, "unknown critical ext field 0xff"},
		{"stream op 5", []byte{1, 0x88, 6, 5, 0, 0, 0, 0, 2}, wire.CriticalFieldError{Tag: 0x88, Op: 5}, "unknown stream op 5"},
		{"stream op 0", []byte{1, 0x88, 6, 0, 1, 0, 0, 0, 2}, wire.CriticalFieldError{Tag: 0x88}, "unknown stream op 0"},
		{"two not understood: the first", []byte{1, 0x8B, 0, 0x88, 6, 9, 0, 0, 0, 0, 2}, wire.CriticalFieldError{Tag: 0x8B}, "unknown critical ext field 0x8b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := wire.ParseExt(tt.b)
			var ce *wire.CriticalFieldError
			if !errors.As(err, &ce) || *ce != tt.want || !errors.Is(err, wire.ErrProtocol) {
				t.Fatalf("ParseExt(% x) = %v, want %+v wrapping ErrProtocol", tt.b, err, tt.want)
			}
			if got := ce.Detail(); got != tt.detail {
				t.Errorf("Detail = %q, want %q", got, tt.detail)
			}
		})
	}
	// Not understood, then malformed: malformed.
	_, err := wire.ParseExt([]byte{1, 0x8A, 0, 0x81, 2, 0, 0})
	var ce *wire.CriticalFieldError
	if !errors.Is(err, wire.ErrProtocol) || errors.As(err, &ce) {
		t.Errorf("ParseExt of an unknown field then a short route = %v, want a plain protocol error", err)
	}
}

func FuzzParseExt(f *testing.F) {
	f.Add([]byte{1, 0x81, 4, 0, 0, 0, 7})
	f.Add(wire.AppendExt(nil, &wire.Ext{HasStream: true, Stream: wire.StreamFrame{Op: wire.StreamCancel, FromAcceptor: true, ID: 9}, Code: 1, Message: "m", Credit: 3}))
	f.Add([]byte{1, 0x8A, 0, 0x88, 6, 5, 0, 0, 0, 0, 2})
	f.Add(wire.AppendExt(nil, &wire.Ext{HasRoute: true, Route: 9, Code: 5, Message: "m", TimeoutMS: 99, Auth: []byte("t")}))
	f.Add(wire.AppendExt(nil, &wire.Ext{HasRoute: true, Route: 9, TimeoutMS: 99, TraceParent: traceParent, TraceState: "a=1,b=2"}))
	f.Add([]byte{1, 0x0B, 3, 'k', '=', 'v', 0x0A, 1, '0'})
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := wire.ParseExt(b)
		if err != nil {
			return
		}
		// Whatever parses re-encodes to something that parses the same.
		again, err := wire.ParseExt(wire.AppendExt(nil, &e))
		if err != nil || !reflect.DeepEqual(again, e) {
			t.Fatalf("round trip of %+v gave %+v, %v", e, again, err)
		}
	})
}

// TestTypedPacketBytes pins the typed call example of docs/wire.md.
func TestTypedPacketBytes(t *testing.T) {
	p := &wire.Packet{
		Type: wire.Request, MessageID: 2, Flags: wire.FlagHasRouteTag,
		Ext:     wire.AppendExt(nil, &wire.Ext{HasRoute: true, Route: wire.RouteID("gentest.v1.EchoService.Echo"), TimeoutMS: 300}),
		Payload: []byte{0x0a, 0x02, 'h', 'i'},
	}
	got, err := wire.AppendPacket(nil, p)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := hex.DecodeString("0100010000000002000b000000040004" + "018104ec4ce76d0502ac02" + "0a026869")
	if !bytes.Equal(got, want) {
		t.Errorf("typed call = % x\nwant         % x", got, want)
	}
}
