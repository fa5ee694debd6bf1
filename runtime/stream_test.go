package runtime_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	goruntime "runtime"
	"strconv"
	"strings"
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

// stubbornMethod's handler ignores its context: it returns only when the
// test releases it.
var stubbornMethod = runtime.NewMethod("test.v1.Streams.Stubborn", wire.RouteID("test.v1.Streams.Stubborn"), runtime.MethodServerStream)

// TestStreamCapHandlersIgnoringContext: streams the caller cancelled keep
// their places while their handlers run on, so a peer cannot pile up
// handlers by cancelling and reopening; once they return, streams open
// again.
func TestStreamCapHandlersIgnoringContext(t *testing.T) {
	f := newFixture(t, transportCases()[1], runtime.WithMaxStreams(4))
	started, release := make(chan struct{}, 8), make(chan struct{})
	var returned sync.WaitGroup
	f.srv.HandleStream(stubbornMethod, runtime.NewServerStreamHandler(func(_ context.Context, _ *runtime.Session, _ *wrapperspb.Int64Value, st *runtime.ServerStream[wrapperspb.Int64Value]) error {
		returned.Add(1)
		defer returned.Done()
		started <- struct{}{}
		<-release
		return nil
	}))
	c := f.dial()
	ctx := context.Background()
	open := func() *runtime.ServerStreamClient[wrapperspb.Int64Value] {
		t.Helper()
		st, err := runtime.OpenServerStream[wrapperspb.Int64Value](ctx, c, stubbornMethod, wrapperspb.Int64(0))
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	for range 4 {
		_ = open().Close() // cancelled at once; the handler runs on
		<-started
	}
	if _, err := open().Recv(); runtime.CodeOf(err) != runtime.CodeResourceExhausted {
		t.Fatalf("a stream beside four cancelled ones whose handlers run: %v, want resource_exhausted", err)
	}
	close(release)
	returned.Wait()
	// The handlers have returned, and give back their places a moment
	// later: a caller refused meanwhile tries again, as a real one would.
	for attempt := 1; ; attempt++ {
		_, err := open().Recv()
		if err == nil || errors.Is(err, io.EOF) {
			break
		}
		if runtime.CodeOf(err) != runtime.CodeResourceExhausted || attempt == 1000 {
			t.Fatalf("a stream once the handlers returned (attempt %d): %v", attempt, err)
		}
	}
}

// parkMethod's handler sends one message (its request), then stays until
// its caller ends the stream (request 0) or the test releases it.
var parkMethod = runtime.NewMethod("test.v1.Streams.Park", wire.RouteID("test.v1.Streams.Park"), runtime.MethodServerStream)

// TestStreamsMany: 1,000 streams open at once on one server (25 on each of
// 40 sessions): the handlers count themselves running, and none ends
// before all 1,000 are. Then half are ended by their callers (Close: the
// caller sees canceled) and half by their handlers returning (io.EOF).
// This is done twice, and the second time leaves the heap where the first
// left it: after a GC its in-use bytes are within 1 MiB of what they were
// (1,000 open streams hold 2-3 MiB more; the first round is a warm-up, as
// the Go runtime keeps what it grew for 2,000 goroutines). Afterwards the
// goroutines and file descriptors are back to where they were (settled).
func TestStreamsMany(t *testing.T) {
	settled(t)
	f := newFixture(t, transportCases()[1])
	const sessions, each = 40, 25
	const total = sessions * each
	type round struct {
		running          atomic.Int64
		allOpen, release chan struct{}
	}
	var current atomic.Pointer[round]
	f.srv.HandleStream(parkMethod, runtime.NewServerStreamHandler(func(ctx context.Context, _ *runtime.Session, req *wrapperspb.Int64Value, st *runtime.ServerStream[wrapperspb.Int64Value]) error {
		r := current.Load()
		if r.running.Add(1) == total {
			close(r.allOpen)
		}
		defer r.running.Add(-1)
		if err := st.Send(req); err != nil {
			return err
		}
		if req.Value == 0 {
			<-ctx.Done()
			return ctx.Err()
		}
		select {
		case <-r.release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}))
	clients := make([]*runtime.Client, sessions)
	for i := range clients {
		clients[i] = f.dial()
	}

	// streams opens the 1,000 streams, waits until they all run, measures
	// the heap, and ends them.
	streams := func(r *round) (heapOpen int64) {
		t.Helper()
		current.Store(r)
		var wg sync.WaitGroup
		var failed atomic.Int64
		fail := func(format string, args ...any) {
			if failed.Add(1) <= 5 {
				t.Errorf(format, args...)
			}
		}
		for i := range total {
			wg.Add(1)
			go func() {
				defer wg.Done()
				byCaller := i%2 == 0
				req := int64(1)
				if byCaller {
					req = 0
				}
				st, err := runtime.OpenServerStream[wrapperspb.Int64Value](context.Background(), clients[i%sessions], parkMethod, wrapperspb.Int64(req))
				if err != nil {
					fail("stream %d: %v", i, err)
					return
				}
				if m, err := st.Recv(); err != nil || m.Value != req {
					fail("stream %d: first Recv = %v, %v", i, m, err)
					return
				}
				<-r.allOpen
				if byCaller {
					_ = st.Close()
					if _, err := st.Recv(); runtime.CodeOf(err) != runtime.CodeCanceled {
						fail("stream %d, closed by its caller: Recv = %v, want canceled", i, err)
					}
					return
				}
				if _, err := st.Recv(); !errors.Is(err, io.EOF) {
					fail("stream %d, ended by its handler: Recv = %v, want io.EOF", i, err)
				}
			}()
		}
		select {
		case <-r.allOpen:
		case <-time.After(60 * time.Second):
			t.Fatalf("%d of %d streams running at once after 60s", r.running.Load(), total)
		}
		heapOpen = heapInuse()
		close(r.release)
		wg.Wait()
		for deadline := time.Now().Add(10 * time.Second); r.running.Load() > 0; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%d handlers still running 10s after their streams ended", r.running.Load())
			}
		}
		return heapOpen
	}

	streams(&round{allOpen: make(chan struct{}), release: make(chan struct{})})
	if t.Failed() {
		return
	}
	heapBefore := heapInuse()
	heapOpen := streams(&round{allOpen: make(chan struct{}), release: make(chan struct{})})
	const bound = 1 << 20
	heapAfter := heapInuse()
	for deadline := time.Now().Add(10 * time.Second); heapAfter > heapBefore+bound && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond) // goroutines still exiting hold what they hold
		heapAfter = heapInuse()
	}
	t.Logf("heap in use: %d KiB before, %d KiB with %d streams open, %d KiB after", heapBefore>>10, heapOpen>>10, total, heapAfter>>10)
	if heapAfter > heapBefore+bound {
		t.Errorf("heap in use after the streams ended: %d KiB, before: %d KiB (bound: %d KiB more)", heapAfter>>10, heapBefore>>10, bound>>10)
	}
}

// heapInuse returns the heap's in-use bytes after two collections (the
// second empties what sync.Pools kept from the first).
func heapInuse() int64 {
	var m goruntime.MemStats
	goruntime.GC()
	goruntime.GC()
	goruntime.ReadMemStats(&m)
	return int64(m.HeapInuse)
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

// TestStreamMessageAfterHalfClose: a peer sending a message on a stream it
// half-closed has that stream reset with failed_precondition, saying so.
func TestStreamMessageAfterHalfClose(t *testing.T) {
	f := newFixture(t, transportCases()[1])
	streamServer(t, f)
	p := tcpRaw(t, f.addr, nil)
	defer p.Close()
	frame := func(id uint32, op wire.StreamOp) []byte {
		return packetBytes(t, &wire.Packet{MessageID: id + 10, Flags: wire.FlagHasRouteTag,
			Ext:     wire.AppendExt(nil, &wire.Ext{HasStream: true, Stream: wire.StreamFrame{Op: op, ID: 1}}),
			Payload: []byte{0x08, 0x01}})
	}
	open := &wire.Packet{Type: wire.Request, MessageID: 1, Flags: wire.FlagHasRouteTag,
		Ext: wire.AppendExt(nil, &wire.Ext{HasRoute: true, Route: holdMethod.Route(), Credit: 8})}
	for _, b := range [][]byte{packetBytes(t, open), frame(1, wire.StreamMessage), frame(2, wire.StreamHalfClose), frame(3, wire.StreamMessage)} {
		if err := p.WriteFrame(b, 0); err != nil {
			t.Fatal(err)
		}
	}
	dec := wire.NewDecoder(p.(streamPeer).c, wire.Limits{})
	for {
		got, err := dec.Next()
		if err != nil {
			t.Fatal(err)
		}
		if got.Type != wire.Response || got.MessageID != 1 {
			continue
		}
		e, err := wire.ParseExt(got.Ext)
		if err != nil || e.Code != runtime.CodeFailedPrecondition || !strings.Contains(e.Message, "after its half-close") {
			t.Fatalf("the stream ended with %v %q (%v), want failed_precondition naming the half-close", e.Code, e.Message, err)
		}
		return
	}
}

// badUTF8Method's handler tries to send more messages protobuf refuses to
// encode than the caller's window, then three good ones.
var badUTF8Method = runtime.NewMethod("test.v1.Streams.BadUTF8", wire.RouteID("test.v1.Streams.BadUTF8"), runtime.MethodServerStream)

// TestStreamSendEncodeError: a message that cannot be encoded fails its
// Send with internal and costs no credit: the stream goes on.
func TestStreamSendEncodeError(t *testing.T) {
	f := newFixture(t, transportCases()[1])
	f.srv.HandleStream(badUTF8Method, runtime.NewServerStreamHandler(func(_ context.Context, _ *runtime.Session, _ *wrapperspb.Int64Value, st *runtime.ServerStream[wrapperspb.StringValue]) error {
		for range 2 * runtime.DefaultStreamWindow {
			if err := st.Send(wrapperspb.String("\xff")); runtime.CodeOf(err) != runtime.CodeInternal {
				return runtime.Errorf(runtime.CodeFailedPrecondition, "sending a string that is not UTF-8: %v, want internal", err)
			}
		}
		for _, s := range []string{"a", "b", "c"} {
			if err := st.Send(wrapperspb.String(s)); err != nil {
				return err
			}
		}
		return nil
	}))
	c := f.dial()
	st, err := runtime.OpenServerStream[wrapperspb.StringValue](context.Background(), c, badUTF8Method, wrapperspb.Int64(0))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for m, err := range st.All() {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, m.Value)
	}
	if strings.Join(got, "") != "abc" {
		t.Fatalf("received %q, want a, b, c", got)
	}
}

// TestStreamMaxDuration: a stream opened without a deadline still ends at
// the server's cap, with deadline_exceeded on both sides.
func TestStreamMaxDuration(t *testing.T) {
	f := newFixture(t, transportCases()[1], runtime.WithMaxStreamDuration(100*time.Millisecond))
	w := streamServer(t, f)
	c := f.dial()
	st, err := runtime.OpenServerStream[wrapperspb.Int64Value](context.Background(), c, waitMethod, wrapperspb.Int64(0))
	if err != nil {
		t.Fatal(err)
	}
	<-w.started
	if err := <-w.ended; !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("the handler's context ended with %v, want its deadline", err)
	}
	if _, err := st.Recv(); runtime.CodeOf(err) != runtime.CodeDeadlineExceeded {
		t.Errorf("Recv = %v, want deadline_exceeded", err)
	}
}
