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

func FuzzParseExt(f *testing.F) {
	f.Add([]byte{1, 0x81, 4, 0, 0, 0, 7})
	f.Add(wire.AppendExt(nil, &wire.Ext{HasRoute: true, Route: 9, Code: 5, Message: "m", TimeoutMS: 99, Auth: []byte("t")}))
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
