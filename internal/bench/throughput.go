package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"google.golang.org/protobuf/proto"

	"github.com/msgtrans/msgtrans-go/internal/bench/gen/benchv1"
)

// The throughput scenario: each of 16 connections keeps a window of typed
// one-way messages in flight; the server echoes each back (msgtrans: a
// generated handler pushing through the generated pusher). The metric is
// echoes received per second, all connections together.

const (
	throughputConns  = 16
	throughputWindow = 256
)

// throughputImpls are the implementations run over each transport.
var throughputImpls = map[string][]string{
	"tcp":  {implMsgtrans, "raw", "grpc"},
	"ws":   {implMsgtrans, "raw", "gorilla"},
	"quic": {implMsgtrans, "raw"},
}

func runThroughput(e *env) error {
	d := e.phase(1500*time.Millisecond, 700*time.Millisecond)
	for round := 1; round <= e.opt.rounds; round++ {
		for _, tr := range e.transports(allTransports...) {
			for _, impl := range throughputImpls[tr] {
				rate, io, err := measureEcho(e, tr, impl, d)
				if err != nil {
					return fmt.Errorf("%s %s: %w", tr, impl, err)
				}
				e.logf("throughput round %d/%d %-4s %-8s %12.0f msg/s", round, e.opt.rounds, tr, impl, rate)
				e.add(tr, impl, "msg_per_s", "msg/s", rate)
				e.addSyscalls(tr, impl, "msg", io)
			}
		}
	}
	return nil
}

// echoLink is one client connection of the echo benchmark.
type echoLink struct {
	send func(seq uint64) error
}

// echoSetup is a server and its connected clients.
type echoSetup struct {
	links []echoLink
	close func()
}

// measureEcho runs one echo measurement and returns messages per second and
// the system calls made meanwhile (by both ends).
func measureEcho(e *env, transport, impl string, d time.Duration) (float64, ioDelta, error) {
	var received atomic.Int64
	tokens := make([]chan struct{}, throughputConns)
	for i := range tokens {
		tokens[i] = make(chan struct{}, throughputWindow)
	}
	onEcho := func(i int) {
		<-tokens[i]
		received.Add(1)
	}
	s, err := setupEcho(e, transport, impl, throughputConns, onEcho)
	if err != nil {
		return 0, ioDelta{}, err
	}
	defer s.close()

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var sendErr atomic.Pointer[error]
	for i, l := range s.links {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seq := uint64(0); ; seq++ {
				select {
				case tokens[i] <- struct{}{}:
				case <-stop:
					return
				}
				if err := l.send(seq); err != nil {
					sendErr.CompareAndSwap(nil, &err)
					return
				}
			}
		}()
	}
	time.Sleep(d / 4) // warm-up
	e.prof.start(impl)
	io := startIO()
	n0, t0 := received.Load(), time.Now()
	time.Sleep(d)
	n1, t1 := received.Load(), time.Now()
	io.stop(n1 - n0)
	e.prof.stop()
	close(stop)
	wg.Wait()
	// Let the window drain so that nothing is in flight at close.
	deadline := time.Now().Add(3 * time.Second)
	for _, t := range tokens {
		for len(t) > 0 && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
	}
	if p := sendErr.Load(); p != nil {
		return 0, io, *p
	}
	return float64(n1-n0) / t1.Sub(t0).Seconds(), io, nil
}

// setupEcho starts a server of impl on the transport and connects n
// clients; onEcho(i) is called for each echo client i receives.
func setupEcho(e *env, transport, impl string, n int, onEcho func(i int)) (*echoSetup, error) {
	ctx := context.Background()
	var closers cleanups
	s := &echoSetup{close: func() { closers.run() }}
	fail := func(err error) (*echoSetup, error) {
		s.close()
		return nil, err
	}
	switch impl {
	case implMsgtrans:
		srv, err := e.startMsgtrans(transport)
		if err != nil {
			return nil, err
		}
		closers.add(srv.close)
		for i := range n {
			c, err := dialMsgtrans(ctx, srv.addr, e.certs.Client, e.log)
			if err != nil {
				return fail(err)
			}
			closers.add(func() { _ = c.Close() })
			benchv1.RegisterBenchEventsServiceHandler(c, &eventsHandler{echoed: func(*benchv1.Payload) { onEcho(i) }})
			client := benchv1.NewBenchServiceClient(c)
			s.links = append(s.links, echoLink{send: func(seq uint64) error {
				return client.Echo(ctx, &benchv1.EchoRequest{Payload: e.payload(seq)})
			}})
		}
	case "raw":
		srv, err := serveRaw(transport, e.certs.Server, rawEchoHandler)
		if err != nil {
			return nil, err
		}
		closers.add(srv.close)
		for i := range n {
			c, err := dialRaw(ctx, transport, srv.addr, e.certs.Client)
			if err != nil {
				return fail(err)
			}
			done := make(chan struct{})
			go func() {
				defer close(done)
				rawReadEchoed(c, func(*benchv1.Payload) { onEcho(i) })
			}()
			closers.add(func() { _ = c.close(); <-done; c.wait() })
			s.links = append(s.links, echoLink{send: func(seq uint64) error {
				return c.send(marshal(&benchv1.EchoRequest{Payload: e.payload(seq)}))
			}})
		}
	case "gorilla":
		srv, err := startNaiveGorillaEcho()
		if err != nil {
			return nil, err
		}
		closers.add(srv.close)
		for i := range n {
			ws, err := dialGorilla(ctx, srv.addr, 0, 0)
			if err != nil {
				return fail(err)
			}
			done := make(chan struct{})
			go func() {
				defer close(done)
				for {
					_, b, err := ws.ReadMessage()
					if err != nil {
						return
					}
					var m benchv1.EchoedRequest
					if proto.Unmarshal(b, &m) != nil {
						return
					}
					onEcho(i)
				}
			}()
			closers.add(func() { ws.Close(); <-done })
			s.links = append(s.links, echoLink{send: func(seq uint64) error {
				return ws.WriteMessage(websocket.BinaryMessage, marshal(&benchv1.EchoRequest{Payload: e.payload(seq)}))
			}})
		}
	case "grpc":
		srv, err := startGRPC()
		if err != nil {
			return nil, err
		}
		closers.add(srv.close)
		for i := range n {
			cc, err := dialGRPC(ctx, srv.addr)
			if err != nil {
				return fail(err)
			}
			closers.add(func() { cc.Close() })
			sctx, cancel := context.WithCancel(ctx)
			st, err := grpcEchoStream(sctx, cc)
			if err != nil {
				cancel()
				return fail(err)
			}
			done := make(chan struct{})
			go func() {
				defer close(done)
				for {
					var m benchv1.EchoedRequest
					if st.RecvMsg(&m) != nil {
						return
					}
					onEcho(i)
				}
			}()
			closers.add(func() { cancel(); <-done })
			s.links = append(s.links, echoLink{send: func(seq uint64) error {
				return st.SendMsg(&benchv1.EchoRequest{Payload: e.payload(seq)})
			}})
		}
	default:
		return nil, fmt.Errorf("no echo implementation %q", impl)
	}
	return s, nil
}
