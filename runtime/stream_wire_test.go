package runtime_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/msgtrans/msgtrans-go/internal/wiredoc"
	"github.com/msgtrans/msgtrans-go/runtime"
	"github.com/msgtrans/msgtrans-go/wire"
)

// The methods of the stream examples of docs/wire.md. Their messages are
// gentest's CountRequest, CountResponse, SumRequest and SumResponse, each
// an int64 in field 1: on the wire the same as wrapperspb.Int64Value.
var (
	docCountMethod = runtime.NewMethod("gentest.v1.EchoService.Count", wire.RouteID("gentest.v1.EchoService.Count"), runtime.MethodServerStream)
	docSumMethod   = runtime.NewMethod("gentest.v1.EchoService.Sum", wire.RouteID("gentest.v1.EchoService.Sum"), runtime.MethodClientStream)
)

// wireDocExamples returns the packet examples of docs/wire.md by name.
func wireDocExamples(t *testing.T) map[string][]byte {
	t.Helper()
	path, err := wiredoc.Path()
	if err != nil {
		t.Fatal(err)
	}
	doc, err := wiredoc.Examples(path)
	if err != nil {
		t.Fatalf("reading the examples of %s: %v", path, err)
	}
	return doc
}

// docPeer reads and writes whole packets on a raw connection, comparing
// them with docs/wire.md's examples.
type docPeer struct {
	c   net.Conn
	dec *wire.Decoder
	doc map[string][]byte
}

func (p *docPeer) write(b []byte) error {
	_, err := p.c.Write(b)
	return err
}

// next reads the next packet and returns it re-encoded: the bytes that
// were sent.
func (p *docPeer) next() ([]byte, wire.Packet, error) {
	_ = p.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	got, err := p.dec.Next()
	if err != nil {
		return nil, got, err
	}
	b, err := wire.AppendPacket(nil, &got)
	return b, got, err
}

// expect reads the next packet and requires it to be the named example,
// byte for byte.
func (p *docPeer) expect(name string) error {
	want, ok := p.doc[name]
	if !ok {
		return fmt.Errorf("docs/wire.md has no example %q", name)
	}
	got, _, err := p.next()
	switch {
	case err != nil:
		return fmt.Errorf("reading %s: %w", name, err)
	case !bytes.Equal(got, want):
		return fmt.Errorf("%s: sent % x\ndocs/wire.md has % x", name, got, want)
	}
	return nil
}

// expectOpen reads the next packet and requires it to open a stream of m
// as message id with window 4.
func (p *docPeer) expectOpen(m *runtime.Method, id uint32) error {
	_, got, err := p.next()
	if err != nil {
		return err
	}
	e, err := wire.ParseExt(got.Ext)
	if err != nil || got.Type != wire.Request || got.MessageID != id || e.Route != m.Route() || e.Credit != 4 {
		return fmt.Errorf("got %v (ext %+v, %v), want the Request %d opening %s with window 4", got, e, err, id, m.FullName())
	}
	return nil
}

func packetOf(t *testing.T, typ wire.PacketType, id uint32, e wire.Ext, payload []byte) []byte {
	t.Helper()
	return packetBytes(t, &wire.Packet{Type: typ, MessageID: id, Flags: wire.FlagHasRouteTag, Ext: wire.AppendExt(nil, &e), Payload: payload})
}

// TestStreamWireExamples: the stream examples of docs/wire.md are what a
// msgtrans-go server and client really send. A raw peer plays the client's
// packets from the page to a real server and requires the server's, byte
// for byte; a fake server plays the server's to a real client and requires
// the client's.
func TestStreamWireExamples(t *testing.T) {
	doc := wireDocExamples(t)
	t.Run("server", func(t *testing.T) { testStreamWireServer(t, doc) })
	t.Run("client", func(t *testing.T) { testStreamWireClient(t, doc) })
}

func testStreamWireServer(t *testing.T, doc map[string][]byte) {
	f := newFixture(t, transportCases()[1]) // tcp; a fresh server numbers from 1
	f.srv.Handle(bizEcho, echo)
	counted := make(chan error, 4)
	f.srv.HandleStream(docCountMethod, runtime.NewServerStreamHandler(func(_ context.Context, _ *runtime.Session, req *wrapperspb.Int64Value, st *runtime.ServerStream[wrapperspb.Int64Value]) error {
		for i := range req.Value {
			if err := st.Send(wrapperspb.Int64(i + 1)); err != nil {
				counted <- err
				return err
			}
		}
		counted <- nil
		return nil
	}))
	f.srv.HandleStream(docSumMethod, runtime.NewClientStreamHandler(func(_ context.Context, _ *runtime.Session, st *runtime.ClientStream[wrapperspb.Int64Value]) (*wrapperspb.Int64Value, error) {
		var sum int64
		for m, err := range st.All() {
			if err != nil {
				return nil, err
			}
			sum += m.Value
		}
		return wrapperspb.Int64(sum), nil
	}))
	raw := tcpRaw(t, f.addr, nil).(streamPeer)
	defer raw.Close()
	p := &docPeer{c: raw.c, dec: wire.NewDecoder(raw.c, wire.Limits{}), doc: doc}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}

	// Count(n: 2), opened with a window of 4.
	must(p.write(doc["hello"]))
	must(p.write(doc["stream-open"]))
	_, hello, err := p.next()
	must(err)
	if hello.Type != wire.OneWay || hello.MessageID != 1 {
		t.Fatalf("the server's first packet is %v, want its hello, message 1", hello)
	}
	must(p.expect("stream-message-1"))
	must(p.expect("stream-message-2"))
	must(p.expect("stream-end"))
	must(p.write(doc["stream-credit"])) // after the Response: for no open stream
	if err := <-counted; err != nil {
		t.Fatalf("Count: %v", err)
	}

	// Sum: opened as message 4, the number 5 as message 5, then half-closed.
	must(p.write(packetOf(t, wire.Request, 4, wire.Ext{HasRoute: true, Route: docSumMethod.Route(), Credit: 4}, nil)))
	must(p.write(packetOf(t, wire.OneWay, 5, wire.Ext{HasStream: true, Stream: wire.StreamFrame{Op: wire.StreamMessage, ID: 4}}, []byte{0x08, 0x05})))
	must(p.write(doc["stream-half-close"]))
	must(p.expect("stream-client-end"))

	// Count(n: 100) opened as message 7: the server sends the 4 messages
	// the window allows, then the cancel ends the handler, and no Response
	// follows.
	must(p.write(packetOf(t, wire.Request, 7, wire.Ext{HasRoute: true, Route: docCountMethod.Route(), Credit: 4}, []byte{0x08, 100})))
	for i := range 4 {
		_, m, err := p.next()
		must(err)
		if e, err := wire.ParseExt(m.Ext); err != nil || !e.HasStream || e.Stream.ID != 7 || e.Stream.Op != wire.StreamMessage || !e.Stream.FromAcceptor {
			t.Fatalf("message %d of stream 7: got %v (%+v, %v)", i+1, m, e, err)
		}
	}
	must(p.write(doc["stream-cancel"]))
	select {
	case err := <-counted:
		var e *runtime.Error
		if !errors.As(err, &e) || e.Code != runtime.CodeCanceled || e.Message != "context canceled" {
			t.Errorf("the cancelled Count's Send failed with %v, want canceled: context canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the cancel did not end the handler")
	}
	must(p.write(packetBytes(t, &wire.Packet{Type: wire.Request, BizType: bizEcho, MessageID: 9})))
	for {
		_, got, err := p.next()
		must(err)
		if got.Type == wire.Response {
			if got.MessageID != 9 {
				t.Errorf("got %v, want no Response but the echo's (9)", got)
			}
			break
		}
	}
}

func testStreamWireClient(t *testing.T, doc map[string][]byte) {
	script := make(chan error, 1)
	addr := fakeServer(t, func(_ int, c net.Conn) {
		p := &docPeer{c: c, dec: wire.NewDecoder(c, wire.Limits{}), doc: doc}
		err := func() error {
			// The client's hello is the page's; the server answers with
			// its own, message 1.
			if err := p.expect("hello"); err != nil {
				return err
			}
			if err := p.write(doc["hello"]); err != nil {
				return err
			}
			steps := []func() error{
				func() error { return p.expect("stream-open") },
				func() error { return p.write(doc["stream-message-1"]) },
				func() error { return p.write(doc["stream-message-2"]) },
				func() error { return p.expect("stream-credit") },
				func() error { return p.write(doc["stream-end"]) },
				func() error { return p.expectOpen(docSumMethod, 4) },
				func() error {
					_, m, err := p.next()
					if e, perr := wire.ParseExt(m.Ext); err != nil || perr != nil || m.MessageID != 5 || e.Stream.Op != wire.StreamMessage || e.Stream.ID != 4 {
						return fmt.Errorf("got %v (%v, %v), want message 5 on stream 4", m, err, perr)
					}
					return nil
				},
				func() error { return p.expect("stream-half-close") },
				func() error { return p.write(doc["stream-client-end"]) },
				func() error { return p.expectOpen(docCountMethod, 7) },
				func() error { return p.expect("stream-cancel") },
			}
			for _, step := range steps {
				if err := step(); err != nil {
					return err
				}
			}
			return nil
		}()
		select {
		case script <- err:
		default: // a connection after the first: the test has failed already
		}
	})
	ctx := context.Background()
	c, err := runtime.Dial(ctx, addr, runtime.WithStreamWindow(4), runtime.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fail := func(format string, args ...any) {
		t.Helper()
		select {
		case err := <-script:
			t.Errorf("the fake server: %v", err)
		default:
		}
		t.Fatalf(format, args...)
	}

	count, err := runtime.OpenServerStream[wrapperspb.Int64Value](ctx, c, docCountMethod, wrapperspb.Int64(2))
	if err != nil {
		fail("opening Count: %v", err)
	}
	for want := int64(1); want <= 2; want++ {
		if m, err := count.Recv(); err != nil || m.Value != want {
			fail("Count's Recv = %v, %v; want %d", m, err, want)
		}
	}
	if m, err := count.Recv(); !errors.Is(err, io.EOF) {
		fail("Count's last Recv = %v, %v; want io.EOF", m, err)
	}

	sum, err := runtime.OpenClientStream[wrapperspb.Int64Value, wrapperspb.Int64Value](ctx, c, docSumMethod)
	if err != nil {
		fail("opening Sum: %v", err)
	}
	if err := sum.Send(wrapperspb.Int64(5)); err != nil {
		fail("Sum's Send: %v", err)
	}
	if m, err := sum.CloseAndRecv(); err != nil || m.Value != 5 {
		fail("Sum's CloseAndRecv = %v, %v; want 5", m, err)
	}

	abandoned, err := runtime.OpenServerStream[wrapperspb.Int64Value](ctx, c, docCountMethod, wrapperspb.Int64(100))
	if err != nil {
		fail("opening the second Count: %v", err)
	}
	_ = abandoned.Close()
	select {
	case err := <-script:
		if err != nil {
			t.Errorf("the fake server: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the fake server's script did not finish")
	}
}
