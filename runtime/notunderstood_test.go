package runtime_test

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/msgtrans/msgtrans-go/runtime"
	"github.com/msgtrans/msgtrans-go/wire"
)

// notUnderstoodExt is a sound ext header holding e's fields and then a
// critical field 0x8a that no msgtrans-go knows.
func notUnderstoodExt(e wire.Ext) []byte {
	return append(wire.AppendExt(nil, &e), 0x8A, 1, 0)
}

// TestNotUnderstood: a packet whose ext header is sound but holds a
// critical field, or a stream op, that the server does not know is refused
// alone: a request is answered unimplemented, one-way packets (stream
// frames too) are dropped, all counted; the connection stays and serves
// the next call.
func TestNotUnderstood(t *testing.T) {
	f := newFixture(t, transportCases()[1])
	f.srv.Handle(bizEcho, echo)
	streamServer(t, f)
	raw := tcpRaw(t, f.addr, nil).(streamPeer)
	defer raw.Close()
	write := func(p *wire.Packet) {
		t.Helper()
		if err := raw.WriteFrame(packetBytes(t, p), 0); err != nil {
			t.Fatal(err)
		}
	}
	// A typed request with an unknown critical field.
	write(&wire.Packet{Type: wire.Request, MessageID: 1, Flags: wire.FlagHasRouteTag,
		Ext: notUnderstoodExt(wire.Ext{HasRoute: true, Route: countMethod.Route()}), Payload: []byte{0x08, 0x01}})
	// A stream frame with an op no one knows, for a stream that is open.
	write(&wire.Packet{Type: wire.Request, MessageID: 2, Flags: wire.FlagHasRouteTag,
		Ext: wire.AppendExt(nil, &wire.Ext{HasRoute: true, Route: holdMethod.Route()})})
	write(&wire.Packet{Type: wire.OneWay, MessageID: 3, Flags: wire.FlagHasRouteTag,
		Ext: []byte{1, 0x88, 6, 9, 0, 0, 0, 0, 2}})
	// A one-way packet with an unknown critical field.
	write(&wire.Packet{Type: wire.OneWay, MessageID: 4, Flags: wire.FlagHasRouteTag,
		Ext: notUnderstoodExt(wire.Ext{HasRoute: true, Route: countMethod.Route()})})
	// A raw call after all that.
	write(&wire.Packet{Type: wire.Request, BizType: bizEcho, MessageID: 5, Payload: []byte("still there")})

	dec := wire.NewDecoder(raw.c, wire.Limits{})
	_ = raw.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var refused bool
	for {
		got, err := dec.Next()
		if err != nil {
			t.Fatalf("reading: %v", err)
		}
		if got.Type != wire.Response {
			continue
		}
		if got.MessageID == 5 {
			if string(got.Payload) != "still there" {
				t.Errorf("echo = %q", got.Payload)
			}
			break
		}
		e, err := wire.ParseExt(got.Ext)
		if got.MessageID != 1 || err != nil || e.Code != runtime.CodeUnimplemented || e.Message != "not understood: unknown critical ext field 0x8a" {
			t.Errorf("got %v (%+v, %v), want request 1 answered unimplemented, not understood", got, e, err)
		}
		refused = true
	}
	if !refused {
		t.Error("the request with an unknown critical field was not answered")
	}
	var s *runtime.Session
	for _, x := range f.srv.Sessions() {
		s = x
	}
	if n := s.NotUnderstood(); n != 3 {
		t.Errorf("NotUnderstood = %d, want 3", n)
	}
	if n := s.UnknownStreamFrames(); n != 0 {
		t.Errorf("UnknownStreamFrames = %d, want 0: the frame with an unknown op is not understood, not unknown", n)
	}
	select {
	case e := <-f.events:
		if e.Kind == runtime.ConnectionClosed {
			t.Errorf("the connection closed: %v", e.Err)
		}
	default:
	}
}

// TestNotUnderstoodResponse: a response that the client does not
// understand fails the call or the stream it answers, unimplemented, and
// the connection stays.
func TestNotUnderstoodResponse(t *testing.T) {
	addr := fakeServer(t, func(_ int, c net.Conn) {
		dec := wire.NewDecoder(c, wire.Limits{})
		hello := &wire.Packet{Type: wire.OneWay, MessageID: 1, Flags: wire.FlagHasRouteTag,
			Ext: wire.AppendExt(nil, &wire.Ext{HasRoute: true, Route: wire.ControlRoute, Control: wire.ControlHello}), Payload: []byte{0}}
		for first := true; ; first = false {
			p, err := dec.Next()
			if err != nil {
				return
			}
			var answer *wire.Packet
			switch {
			case first:
				answer = hello
			case p.Type == wire.Request:
				answer = &wire.Packet{Type: wire.Response, MessageID: p.MessageID, Flags: wire.FlagHasRouteTag,
					Ext: notUnderstoodExt(wire.Ext{}), Payload: []byte{0x08, 0x01}}
			default:
				continue
			}
			b, _ := wire.AppendPacket(nil, answer)
			if _, err := c.Write(b); err != nil {
				return
			}
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := runtime.Dial(ctx, addr, runtime.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	want := "not understood: unknown critical ext field 0x8a"
	for i := range 2 {
		_, err := c.Request(ctx, wire.NewRequest(bizEcho, nil))
		var e *runtime.Error
		if !errors.As(err, &e) || e.Code != runtime.CodeUnimplemented || e.Message != want {
			t.Errorf("call %d: %v, want unimplemented: %s", i+1, err, want)
		}
	}
	st, err := runtime.OpenServerStream[wrapperspb.Int64Value](ctx, c, countMethod, wrapperspb.Int64(1))
	if err != nil {
		t.Fatal(err)
	}
	m, err := st.Recv()
	var e *runtime.Error
	if !errors.As(err, &e) || e.Code != runtime.CodeUnimplemented || e.Message != want {
		t.Errorf("stream Recv = %v, %v; want unimplemented: %s", m, err, want)
	}
	if s := c.Session(); s == nil || s.NotUnderstood() != 3 {
		t.Errorf("the client's session: %v, want it open with 3 packets not understood", s)
	}
}
