package runtime_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/msgtrans/msgtrans-go/runtime"
	"github.com/msgtrans/msgtrans-go/wire"
)

var (
	countMethod  = runtime.NewMethod("test.v1.Streams.Count", wire.RouteID("test.v1.Streams.Count"), runtime.MethodServerStream)
	sumMethod    = runtime.NewMethod("test.v1.Streams.Sum", wire.RouteID("test.v1.Streams.Sum"), runtime.MethodClientStream)
	echoesMethod = runtime.NewMethod("test.v1.Streams.Echoes", wire.RouteID("test.v1.Streams.Echoes"), runtime.MethodBidiStream)
	waitMethod   = runtime.NewMethod("test.v1.Streams.Wait", wire.RouteID("test.v1.Streams.Wait"), runtime.MethodServerStream)
	holdMethod   = runtime.NewMethod("test.v1.Streams.Hold", wire.RouteID("test.v1.Streams.Hold"), runtime.MethodClientStream)
)

// waits reports the Wait handlers' starts and ends.
type waits struct {
	started chan struct{}
	ended   chan error
}

// streamServer registers the test streams: Count sends 1..n (n the
// request), Sum adds what it receives, Echoes echoes each message, Wait
// sends nothing until its context ends and reports that it did.
func streamServer(t *testing.T, f *fixture) waits {
	t.Helper()
	w := waits{started: make(chan struct{}, 64), ended: make(chan error, 64)}
	f.srv.HandleStream(countMethod, runtime.NewServerStreamHandler(func(_ context.Context, _ *runtime.Session, req *wrapperspb.Int64Value, st *runtime.ServerStream[wrapperspb.Int64Value]) error {
		if req.Value < 0 {
			return runtime.NewError(runtime.CodeInvalidArgument, "negative count")
		}
		for i := range req.Value {
			if err := st.Send(wrapperspb.Int64(i + 1)); err != nil {
				return err
			}
		}
		return nil
	}))
	f.srv.HandleStream(sumMethod, runtime.NewClientStreamHandler(func(_ context.Context, _ *runtime.Session, st *runtime.ClientStream[wrapperspb.Int64Value]) (*wrapperspb.Int64Value, error) {
		var sum int64
		for m, err := range st.All() {
			if err != nil {
				return nil, err
			}
			sum += m.Value
		}
		return wrapperspb.Int64(sum), nil
	}))
	f.srv.HandleStream(echoesMethod, runtime.NewBidiStreamHandler(func(_ context.Context, _ *runtime.Session, st *runtime.BidiStream[wrapperspb.StringValue, wrapperspb.StringValue]) error {
		for m, err := range st.All() {
			if err != nil {
				return err
			}
			if err := st.Send(wrapperspb.String("echo " + m.Value)); err != nil {
				return err
			}
		}
		return nil
	}))
	f.srv.HandleStream(waitMethod, runtime.NewServerStreamHandler(func(ctx context.Context, _ *runtime.Session, _ *wrapperspb.Int64Value, _ *runtime.ServerStream[wrapperspb.Int64Value]) error {
		w.started <- struct{}{}
		<-ctx.Done()
		w.ended <- ctx.Err()
		return ctx.Err()
	}))
	// Hold reads nothing until its context ends.
	f.srv.HandleStream(holdMethod, runtime.NewClientStreamHandler(func(ctx context.Context, _ *runtime.Session, _ *runtime.ClientStream[wrapperspb.Int64Value]) (*wrapperspb.Int64Value, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	}))
	f.srv.Handle(bizEcho, echo)
	return w
}

// TestStreams: each kind of stream, its ends and its failures, on every
// transport.
func TestStreams(t *testing.T) {
	for _, tc := range transportCases() {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, tc)
			w := streamServer(t, f)
			c := f.dial()
			ctx := context.Background()

			t.Run("server stream", func(t *testing.T) {
				st, err := runtime.OpenServerStream[wrapperspb.Int64Value](ctx, c, countMethod, wrapperspb.Int64(100))
				if err != nil {
					t.Fatal(err)
				}
				var got int64
				for m, err := range st.All() {
					if err != nil {
						t.Fatalf("after %d messages: %v", got, err)
					}
					if got++; m.Value != got {
						t.Fatalf("message %d is %d", got, m.Value)
					}
				}
				if got != 100 {
					t.Errorf("%d messages, want 100", got)
				}
				if _, err := st.Recv(); !errors.Is(err, io.EOF) {
					t.Errorf("Recv after the end: %v, want io.EOF", err)
				}
			})
			t.Run("client stream", func(t *testing.T) {
				st, err := runtime.OpenClientStream[wrapperspb.Int64Value, wrapperspb.Int64Value](ctx, c, sumMethod)
				if err != nil {
					t.Fatal(err)
				}
				for i := range int64(100) { // more than the window: credit flows back
					if err := st.Send(wrapperspb.Int64(i + 1)); err != nil {
						t.Fatal(err)
					}
				}
				sum, err := st.CloseAndRecv()
				if err != nil || sum.Value != 5050 {
					t.Errorf("CloseAndRecv = %v, %v; want 5050", sum, err)
				}
			})
			t.Run("bidi stream", func(t *testing.T) {
				st, err := runtime.OpenBidiStream[wrapperspb.StringValue, wrapperspb.StringValue](ctx, c, echoesMethod)
				if err != nil {
					t.Fatal(err)
				}
				for i := range 50 {
					if err := st.Send(wrapperspb.String(strconv.Itoa(i))); err != nil {
						t.Fatal(err)
					}
					m, err := st.Recv()
					if err != nil || m.Value != "echo "+strconv.Itoa(i) {
						t.Fatalf("Recv = %v, %v", m, err)
					}
				}
				if err := st.CloseSend(); err != nil {
					t.Fatal(err)
				}
				if _, err := st.Recv(); !errors.Is(err, io.EOF) {
					t.Errorf("Recv after CloseSend: %v, want io.EOF", err)
				}
			})
			t.Run("the handler's error ends the stream", func(t *testing.T) {
				st, err := runtime.OpenServerStream[wrapperspb.Int64Value](ctx, c, countMethod, wrapperspb.Int64(-1))
				if err != nil {
					t.Fatal(err)
				}
				if _, err := st.Recv(); runtime.CodeOf(err) != runtime.CodeInvalidArgument {
					t.Errorf("Recv: %v, want invalid_argument", err)
				}
			})
			t.Run("the caller closes", func(t *testing.T) {
				st, err := runtime.OpenServerStream[wrapperspb.Int64Value](ctx, c, waitMethod, wrapperspb.Int64(0))
				if err != nil {
					t.Fatal(err)
				}
				<-w.started
				_ = st.Close()
				if err := <-w.ended; !errors.Is(err, context.Canceled) {
					t.Errorf("the handler's context ended with %v, want canceled", err)
				}
				if _, err := st.Recv(); runtime.CodeOf(err) != runtime.CodeCanceled {
					t.Errorf("Recv after Close: %v, want canceled", err)
				}
			})
			t.Run("deadline", func(t *testing.T) {
				dctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
				defer cancel()
				st, err := runtime.OpenServerStream[wrapperspb.Int64Value](dctx, c, waitMethod, wrapperspb.Int64(0))
				if err != nil {
					t.Fatal(err)
				}
				if _, err := st.Recv(); runtime.CodeOf(err) != runtime.CodeDeadlineExceeded {
					t.Errorf("Recv past the deadline: %v, want deadline_exceeded", err)
				}
				<-w.started
				if err := <-w.ended; err == nil {
					t.Error("the handler's context did not end")
				}
			})
			t.Run("unknown method", func(t *testing.T) {
				other := runtime.NewMethod("test.v1.Streams.None", 0x5eed, runtime.MethodServerStream)
				st, err := runtime.OpenServerStream[wrapperspb.Int64Value](ctx, c, other, wrapperspb.Int64(1))
				if err != nil {
					t.Fatal(err)
				}
				if _, err := st.Recv(); runtime.CodeOf(err) != runtime.CodeUnimplemented {
					t.Errorf("Recv: %v, want unimplemented", err)
				}
			})
			t.Run("the connection drops", func(t *testing.T) {
				st, err := runtime.OpenServerStream[wrapperspb.Int64Value](ctx, c, waitMethod, wrapperspb.Int64(0))
				if err != nil {
					t.Fatal(err)
				}
				<-w.started
				for _, sess := range f.srv.Sessions() {
					f.srv.CloseSession(sess.ID())
				}
				if _, err := st.Recv(); runtime.CodeOf(err) != runtime.CodeUnavailable {
					t.Errorf("Recv after the drop: %v, want unavailable", err)
				}
				<-w.ended
			})
		})
	}
}

// TestStreamSlowReader: a stream whose reader stops reading holds up only
// itself: its sender waits for credit, while another stream and unary calls
// on the same session go on.
func TestStreamSlowReader(t *testing.T) {
	for _, tc := range transportCases() {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, tc)
			streamServer(t, f)
			c := f.dial()
			ctx := context.Background()
			stalled, err := runtime.OpenServerStream[wrapperspb.Int64Value](ctx, c, countMethod, wrapperspb.Int64(1_000_000))
			if err != nil {
				t.Fatal(err)
			}
			defer stalled.Close()
			if _, err := stalled.Recv(); err != nil { // the stream is flowing, then read no more
				t.Fatal(err)
			}
			other, err := runtime.OpenServerStream[wrapperspb.Int64Value](ctx, c, countMethod, wrapperspb.Int64(1000))
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for _, err := range other.All() {
				if err != nil {
					t.Fatal(err)
				}
				n++
			}
			if n != 1000 {
				t.Errorf("the other stream got %d of 1000", n)
			}
			if _, err := c.Request(ctx, wire.NewRequest(bizEcho, []byte("x"))); err != nil {
				t.Errorf("a unary call beside the stalled stream: %v", err)
			}
		})
	}
}

// TestStreamCap: a session may have at most the cap of streams open at
// once; one more is refused with resource_exhausted, and a stream holds no
// slot of the unary calls.
func TestStreamCap(t *testing.T) {
	f := newFixture(t, transportCases()[1], runtime.WithMaxStreams(4), runtime.WithMaxInFlight(1))
	w := streamServer(t, f)
	c := f.dial()
	ctx := context.Background()
	var open []*runtime.ServerStreamClient[wrapperspb.Int64Value]
	for range 4 {
		st, err := runtime.OpenServerStream[wrapperspb.Int64Value](ctx, c, waitMethod, wrapperspb.Int64(0))
		if err != nil {
			t.Fatal(err)
		}
		open = append(open, st)
		<-w.started
	}
	// Unary calls still flow with the one in-flight slot.
	if _, err := c.Request(ctx, wire.NewRequest(bizEcho, nil)); err != nil {
		t.Fatalf("a unary call beside four streams: %v", err)
	}
	over, err := runtime.OpenServerStream[wrapperspb.Int64Value](ctx, c, waitMethod, wrapperspb.Int64(0))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := over.Recv(); runtime.CodeOf(err) != runtime.CodeResourceExhausted {
		t.Errorf("a fifth stream: %v, want resource_exhausted", err)
	}
	for _, st := range open {
		_ = st.Close()
		<-w.ended
	}
}

// TestStreamsMany: 1,000 streams at once on one server (25 on each of 40
// sessions), every one complete; the server's goroutines and descriptors
// come back to where they were.
func TestStreamsMany(t *testing.T) {
	settled(t)
	f := newFixture(t, transportCases()[1])
	streamServer(t, f)
	const sessions, each = 40, 25
	var wg sync.WaitGroup
	var failed atomic.Int64
	for range sessions {
		c := f.dial()
		for range each {
			wg.Add(1)
			go func() {
				defer wg.Done()
				st, err := runtime.OpenServerStream[wrapperspb.Int64Value](context.Background(), c, countMethod, wrapperspb.Int64(20))
				if err != nil {
					failed.Add(1)
					return
				}
				n := 0
				for _, err := range st.All() {
					if err != nil {
						failed.Add(1)
						return
					}
					n++
				}
				if n != 20 {
					failed.Add(1)
				}
			}()
		}
	}
	wg.Wait()
	if n := failed.Load(); n > 0 {
		t.Errorf("%d of %d streams failed", n, sessions*each)
	}
}

// TestStreamOverrun: a peer that sends more messages than it was granted
// (to a handler that reads none) has that stream reset (resource_exhausted); its session and its other
// calls go on. Frames for a stream that is not open are dropped and
// counted.
func TestStreamOverrun(t *testing.T) {
	f := newFixture(t, transportCases()[1])
	streamServer(t, f)
	p := tcpRaw(t, f.addr, nil)
	defer p.Close()
	open := &wire.Packet{Type: wire.Request, MessageID: 1, Flags: wire.FlagHasRouteTag,
		Ext: wire.AppendExt(nil, &wire.Ext{HasRoute: true, Route: holdMethod.Route(), Credit: 8})}
	if err := p.WriteFrame(packetBytes(t, open), 0); err != nil {
		t.Fatal(err)
	}
	frame := func(id uint32, i int) []byte {
		return packetBytes(t, &wire.Packet{MessageID: uint32(10 + i), Flags: wire.FlagHasRouteTag,
			Ext:     wire.AppendExt(nil, &wire.Ext{HasStream: true, Stream: wire.StreamFrame{Op: wire.StreamMessage, ID: id}}),
			Payload: []byte{0x08, 0x01}})
	}
	// The acceptor grants 16 messages; send 40 without waiting for more.
	for i := range 40 {
		if err := p.WriteFrame(frame(1, i), 0); err != nil {
			t.Fatal(err)
		}
	}
	// Frames for no open stream: dropped.
	for i := range 3 {
		if err := p.WriteFrame(frame(999, 100+i), 0); err != nil {
			t.Fatal(err)
		}
	}
	// The reset arrives as the stream's Response; a unary call still works.
	dec := wire.NewDecoder(p.(streamPeer).c, wire.Limits{})
	if err := p.WriteFrame(packetBytes(t, &wire.Packet{Type: wire.Request, BizType: bizEcho, MessageID: 500}), 0); err != nil {
		t.Fatal(err)
	}
	var codes []string
	for len(codes) < 2 {
		got, err := dec.Next()
		if err != nil {
			t.Fatalf("reading: %v (after %v)", err, codes)
		}
		if got.Type != wire.Response {
			continue
		}
		code := runtime.CodeOK
		if e, err := wire.ParseExt(got.Ext); err == nil {
			code = e.Code
		}
		codes = append(codes, fmt.Sprintf("%d:%s", got.MessageID, code))
	}
	if codes[0] != "1:resource_exhausted" || codes[1] != "500:ok" {
		t.Errorf("responses %v, want the stream reset then the call answered", codes)
	}
	var s *runtime.Session
	for _, x := range f.srv.Sessions() {
		s = x
	}
	if n := s.UnknownStreamFrames(); n < 3 {
		t.Errorf("%d frames for no stream counted, want at least 3", n)
	}
}
