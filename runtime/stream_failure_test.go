package runtime_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/msgtrans/msgtrans-go/runtime"
	"github.com/msgtrans/msgtrans-go/wire"
)

var (
	floodMethod   = runtime.NewMethod("test.v1.Kill.Flood", wire.RouteID("test.v1.Kill.Flood"), runtime.MethodServerStream)
	drinkMethod   = runtime.NewMethod("test.v1.Kill.Drink", wire.RouteID("test.v1.Kill.Drink"), runtime.MethodClientStream)
	talkMethod    = runtime.NewMethod("test.v1.Kill.Talk", wire.RouteID("test.v1.Kill.Talk"), runtime.MethodBidiStream)
	streamsByKind = 3 // streams of each kind a client opens
)

// killServer registers streams that run until their stream fails and then
// report how it failed: Flood sends until Send fails (it soon waits for
// credit the client does not grant), Drink and Talk receive until Recv
// fails.
func killServer(f *fixture) (started chan struct{}, ended chan error) {
	started, ended = make(chan struct{}, 64), make(chan error, 64)
	f.srv.HandleStream(floodMethod, runtime.NewServerStreamHandler(func(_ context.Context, _ *runtime.Session, _ *wrapperspb.Int64Value, st *runtime.ServerStream[wrapperspb.Int64Value]) error {
		started <- struct{}{}
		for i := int64(0); ; i++ {
			if err := st.Send(wrapperspb.Int64(i)); err != nil {
				ended <- fmt.Errorf("Flood's Send: %w", err)
				return err
			}
		}
	}))
	f.srv.HandleStream(drinkMethod, runtime.NewClientStreamHandler(func(_ context.Context, _ *runtime.Session, st *runtime.ClientStream[wrapperspb.Int64Value]) (*wrapperspb.Int64Value, error) {
		started <- struct{}{}
		for {
			if _, err := st.Recv(); err != nil {
				ended <- fmt.Errorf("Drink's Recv: %w", err)
				return nil, err
			}
		}
	}))
	f.srv.HandleStream(talkMethod, runtime.NewBidiStreamHandler(func(_ context.Context, _ *runtime.Session, st *runtime.BidiStream[wrapperspb.Int64Value, wrapperspb.Int64Value]) error {
		started <- struct{}{}
		for {
			if _, err := st.Recv(); err != nil {
				ended <- fmt.Errorf("Talk's Recv: %w", err)
				return err
			}
		}
	}))
	return started, ended
}

// TestStreamPeerKilled: when the connection under open streams dies (the
// server drops the client's session, the server closes, or the client
// does), every stream ends on both sides with unavailable: the handlers'
// Send and Recv, and the client's Recv, Send and CloseAndRecv, whichever
// was waiting or running. On every transport.
func TestStreamPeerKilled(t *testing.T) {
	kills := []struct {
		name string
		kill func(f *fixture, c *runtime.Client)
	}{
		{"the server drops the session", func(f *fixture, _ *runtime.Client) {
			for _, s := range f.srv.Sessions() {
				f.srv.CloseSession(s.ID())
			}
		}},
		{"the server closes", func(f *fixture, _ *runtime.Client) { _ = f.srv.Close() }},
		{"the client closes", func(_ *fixture, c *runtime.Client) { _ = c.Close() }},
	}
	for _, tc := range transportCases() {
		t.Run(tc.name, func(t *testing.T) {
			for _, k := range kills {
				t.Run(k.name, func(t *testing.T) {
					f := newFixture(t, tc)
					started, ended := killServer(f)
					c := f.dial(runtime.WithoutReconnect())
					ctx := context.Background()
					clientEnds := make(chan error, 4*streamsByKind)
					for range streamsByKind {
						flood, err := runtime.OpenServerStream[wrapperspb.Int64Value](ctx, c, floodMethod, wrapperspb.Int64(0))
						if err != nil {
							t.Fatal(err)
						}
						drink, err := runtime.OpenClientStream[wrapperspb.Int64Value, wrapperspb.Int64Value](ctx, c, drinkMethod)
						if err != nil {
							t.Fatal(err)
						}
						talk, err := runtime.OpenBidiStream[wrapperspb.Int64Value, wrapperspb.Int64Value](ctx, c, talkMethod)
						if err != nil {
							t.Fatal(err)
						}
						// Flood's reader reads a little, then waits; Drink's
						// sender sends as fast as it may; Talk's receiver
						// waits for what never comes.
						if _, err := flood.Recv(); err != nil {
							t.Fatal(err)
						}
						go func() {
							time.Sleep(50 * time.Millisecond)
							var err error
							for err == nil {
								_, err = flood.Recv()
							}
							clientEnds <- fmt.Errorf("Flood's Recv: %w", err)
						}()
						go func() {
							var err error
							for i := int64(0); err == nil; i++ {
								err = drink.Send(wrapperspb.Int64(i))
							}
							clientEnds <- fmt.Errorf("Drink's Send: %w", err)
							_, err = drink.CloseAndRecv()
							clientEnds <- fmt.Errorf("Drink's CloseAndRecv: %w", err)
						}()
						go func() {
							_, err := talk.Recv()
							clientEnds <- fmt.Errorf("Talk's Recv: %w", err)
						}()
						// After the end, Talk's Send fails too.
						defer func() {
							if err := talk.Send(wrapperspb.Int64(1)); runtime.CodeOf(err) != runtime.CodeUnavailable {
								t.Errorf("Talk's Send after the end: %v, want unavailable", err)
							}
						}()
					}
					for range 3 * streamsByKind {
						select {
						case <-started:
						case <-time.After(10 * time.Second):
							t.Fatal("the handlers did not all start")
						}
					}
					time.Sleep(100 * time.Millisecond) // everything is flowing or waiting
					k.kill(f, c)
					expectUnavailable(t, "handler", ended, 3*streamsByKind)
					expectUnavailable(t, "client", clientEnds, 4*streamsByKind)
				})
			}
		})
	}
}

// expectUnavailable reads n errors from ch and checks each is unavailable.
func expectUnavailable(t *testing.T, side string, ch <-chan error, n int) {
	t.Helper()
	for range n {
		select {
		case err := <-ch:
			if runtime.CodeOf(err) != runtime.CodeUnavailable {
				var re *runtime.Error
				t.Errorf("%s: %v (code %s, a status: %v), want unavailable", side, err, runtime.CodeOf(err), errors.As(err, &re))
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: a stream did not end within 10s", side)
		}
	}
}

// openBytes encodes a Request opening a stream of m with the id.
func openBytes(t testing.TB, m *runtime.Method, id uint32) []byte {
	return packetBytes(t, &wire.Packet{Type: wire.Request, MessageID: id, Flags: wire.FlagHasRouteTag,
		Ext: wire.AppendExt(nil, &wire.Ext{HasRoute: true, Route: m.Route()})})
}

// TestStreamReusedID: a peer that opens a stream with the id of one still
// open breaks the stream's identity (its frames and the Response could be
// either's): the connection closes as a protocol error, and the second
// handler never runs. (Before, the second replaced the first in the
// session's table, so a peer reusing one id ran handlers past the cap of
// streams without end.)
func TestStreamReusedID(t *testing.T) {
	f := newFixture(t, transportCases()[1], runtime.WithMaxStreams(4))
	f.srv.Handle(bizEcho, echo)
	var running, most atomic.Int64
	f.srv.HandleStream(holdMethod, runtime.NewClientStreamHandler(func(ctx context.Context, _ *runtime.Session, _ *runtime.ClientStream[wrapperspb.Int64Value]) (*wrapperspb.Int64Value, error) {
		n := running.Add(1)
		defer running.Add(-1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		<-ctx.Done()
		return nil, ctx.Err()
	}))
	p := tcpRaw(t, f.addr, nil)
	defer p.Close()
	for range 40 {
		if err := p.WriteFrame(openBytes(t, holdMethod, 7), 0); err != nil {
			break // closed already
		}
	}
	e := f.waitEvent(runtime.ConnectionClosed)
	if !errors.Is(e.Err, wire.ErrProtocol) {
		t.Errorf("the session closed with %v, want a protocol error", e.Err)
	}
	if n := most.Load(); n > 1 {
		t.Errorf("%d handlers ran at once for one stream id (cap 4)", n)
	}
	if err := p.WaitClosed(10 * time.Second); errors.Is(err, errStillOpen) {
		t.Error(err)
	}
	f.healthy()
}
