package wire_test

import (
	"bytes"
	"reflect"
	"slices"
	"testing"

	"github.com/msgtrans/msgtrans-go/internal/wiredoc"
	"github.com/msgtrans/msgtrans-go/wire"
)

// docExample is a packet example of docs/wire.md as the wire package
// builds it: the packet, and for a typed one the ext header it holds.
type docExample struct {
	name string
	p    wire.Packet
	ext  *wire.Ext // nil: no typed ext header
}

// docExamples are every packet example of docs/wire.md, by the name its
// marker gives it.
func docExamples() []docExample {
	count := wire.RouteID("gentest.v1.EchoService.Count")
	typed := func(p wire.Packet, e wire.Ext) docExample {
		p.Flags |= wire.FlagHasRouteTag
		p.Ext = wire.AppendExt(nil, &e)
		return docExample{p: p, ext: &e}
	}
	frame := func(op wire.StreamOp, fromAcceptor bool, stream uint32) wire.Ext {
		return wire.Ext{HasStream: true, Stream: wire.StreamFrame{Op: op, FromAcceptor: fromAcceptor, ID: stream}}
	}
	named := func(name string, ex docExample) docExample { ex.name = name; return ex }

	credit := frame(wire.StreamCredit, false, 2)
	credit.Credit = 2
	cancel := frame(wire.StreamCancel, false, 7)
	cancel.Code, cancel.Message = wire.CodeCanceled, "context canceled"
	return []docExample{
		named("oneway-hello-world", docExample{p: wire.Packet{Type: wire.OneWay, BizType: 5, MessageID: 42, Payload: []byte("hello world")}}),
		named("typed-call", typed(wire.Packet{Type: wire.Request, MessageID: 2, Payload: []byte{0x0a, 0x02, 'h', 'i'}},
			wire.Ext{HasRoute: true, Route: wire.RouteID("gentest.v1.EchoService.Echo"), TimeoutMS: 300})),
		named("traced-call", typed(wire.Packet{Type: wire.Request, MessageID: 2, Payload: []byte{0x0a, 0x02, 'h', 'i'}},
			wire.Ext{HasRoute: true, Route: wire.RouteID("gentest.v1.EchoService.Echo"), TimeoutMS: 300,
				TraceParent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", TraceState: "congo=t61rcWkgMzE"})),
		named("hello", typed(wire.Packet{Type: wire.OneWay, MessageID: 1, Payload: []byte{1<<wire.CompressionZstd | 1<<wire.CompressionZlib}},
			wire.Ext{HasRoute: true, Route: wire.ControlRoute, Control: wire.ControlHello})),
		// What a browser sends: zlib only (browsers cannot inflate zstd).
		named("hello-browser", typed(wire.Packet{Type: wire.OneWay, MessageID: 1, Payload: []byte{1 << wire.CompressionZlib}},
			wire.Ext{HasRoute: true, Route: wire.ControlRoute, Control: wire.ControlHello})),
		named("ping", typed(wire.Packet{Type: wire.OneWay, MessageID: 7},
			wire.Ext{HasRoute: true, Route: wire.ControlRoute, Control: wire.ControlPing})),

		// The server stream: Count(n: 2) with an opening window of 4.
		named("stream-open", typed(wire.Packet{Type: wire.Request, MessageID: 2, Payload: []byte{0x08, 0x02}},
			wire.Ext{HasRoute: true, Route: count, Credit: 4})),
		named("stream-message-1", typed(wire.Packet{Type: wire.OneWay, MessageID: 2, Payload: []byte{0x08, 0x01}},
			frame(wire.StreamMessage, true, 2))),
		named("stream-message-2", typed(wire.Packet{Type: wire.OneWay, MessageID: 3, Payload: []byte{0x08, 0x02}},
			frame(wire.StreamMessage, true, 2))),
		named("stream-credit", typed(wire.Packet{Type: wire.OneWay, MessageID: 3}, credit)),
		named("stream-end", docExample{p: wire.Packet{Type: wire.Response, MessageID: 2}}),

		// Sum's half-close and Response, then a Count abandoned.
		named("stream-half-close", typed(wire.Packet{Type: wire.OneWay, MessageID: 6}, frame(wire.StreamHalfClose, false, 4))),
		named("stream-client-end", docExample{p: wire.Packet{Type: wire.Response, MessageID: 4, Payload: []byte{0x08, 0x05}}}),
		named("stream-cancel", typed(wire.Packet{Type: wire.OneWay, MessageID: 8}, cancel)),
	}
}

// TestWireDocExamples pins every packet example of docs/wire.md, read from
// the page itself: the wire package must encode the packet each describes
// to exactly its bytes, and parse its bytes back to that packet and ext
// header. An example no test builds fails too, so the page and the code
// cannot drift apart.
func TestWireDocExamples(t *testing.T) {
	path, err := wiredoc.Path()
	if err != nil {
		t.Fatal(err)
	}
	doc, err := wiredoc.Examples(path)
	if err != nil {
		t.Fatalf("reading the examples of %s: %v", path, err)
	}
	pinned := make(map[string]bool)
	for _, ex := range docExamples() {
		pinned[ex.name] = true
		t.Run(ex.name, func(t *testing.T) {
			want, ok := doc[ex.name]
			if !ok {
				t.Fatalf("docs/wire.md has no example %q", ex.name)
			}
			got, err := wire.AppendPacket(nil, &ex.p)
			if err != nil {
				t.Fatalf("AppendPacket: %v", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("AppendPacket = % x\ndocs/wire.md  % x", got, want)
			}
			back, n, err := wire.ParsePacket(want, wire.Limits{})
			if err != nil || n != len(want) {
				t.Fatalf("ParsePacket(docs/wire.md's bytes) = %d bytes of %d, %v", n, len(want), err)
			}
			if !reflect.DeepEqual(back, ex.p) {
				t.Errorf("ParsePacket = %+v\nwant          %+v", back, ex.p)
			}
			if typed := wire.IsTypedExt(&back); typed != (ex.ext != nil) {
				t.Fatalf("IsTypedExt = %v, want %v", typed, !typed)
			}
			if ex.ext == nil {
				return
			}
			e, err := wire.ParseExt(back.Ext)
			if err != nil || !reflect.DeepEqual(e, *ex.ext) {
				t.Errorf("ParseExt = %+v, %v\nwant       %+v", e, err, *ex.ext)
			}
		})
	}
	var stray []string
	for name := range doc {
		if !pinned[name] {
			stray = append(stray, name)
		}
	}
	slices.Sort(stray)
	for _, name := range stray {
		t.Errorf("docs/wire.md's example %q is built by no test: add it to docExamples", name)
	}
}
