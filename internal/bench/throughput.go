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
			for _, impl := range e.withProm(e.withNoPark(tr, throughputImpls[tr])) {
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

// echoLink is one client connection of the echo benchmark: send sends one
// EchoRequest carrying p.
type echoLink struct {
	send func(p *benchv1.Payload) error
}

// echoSetup is a server and its connected clients.
type echoSetup struct {
	links []echoLink
	close func()
}

// measureEcho runs one echo measurement and returns messages per second and
// the system calls made meanwhile (by both ends).
func measureEcho(e *env, transport, impl string, d time.Duration) (float64, ioDelta, error) {
	w := newWindow(throughputConns, throughputWindow)
	s, err := setupEcho(e, transport, impl, throughputConns, func(i int, _ *benchv1.Payload) { w.echoed(i) })
	if err != nil {
		return 0, ioDelta{}, err
	}
	defer s.close()
	sends := make([]func(uint64) error, len(s.links))
	for i, l := range s.links {
		sends[i] = func(seq uint64) error { return l.send(e.payload(seq)) }
	}
	m, err := w.run(e, impl, sends, d)
	return m.rate, m.io, err
}

// window keeps a fixed number of messages in flight on each of several
// connections: a send takes a token, an echo gives it back.
type window struct {
	tokens   []chan struct{}
	received atomic.Int64
}

func newWindow(conns, size int) *window {
	w := &window{tokens: make([]chan struct{}, conns)}
	for i := range w.tokens {
		w.tokens[i] = make(chan struct{}, size)
	}
	return w
}

// echoed counts an echo received on connection i.
func (w *window) echoed(i int) {
	<-w.tokens[i]
	w.received.Add(1)
}

// windowMeasure is what one windowed measurement found.
type windowMeasure struct {
	rate float64 // echoes received per second
	io   ioDelta // system calls meanwhile, per echo
	cpu  float64 // CPU time of the process per echo, ns
}

// run sends on every connection (sends[i] on connection i) for a quarter
// of d to warm up and then d measured, each connection keeping its window
// full, and returns the echoes per second received during d. The CPU
// profile, when asked for, covers impl's measured phase.
func (w *window) run(e *env, impl string, sends []func(seq uint64) error, d time.Duration) (windowMeasure, error) {
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var sendErr atomic.Pointer[error]
	for i, send := range sends {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seq := uint64(0); ; seq++ {
				select {
				case w.tokens[i] <- struct{}{}:
				case <-stop:
					return
				}
				if err := send(seq); err != nil {
					sendErr.CompareAndSwap(nil, &err)
					return
				}
			}
		}()
	}
	time.Sleep(d / 4) // warm-up
	e.prof.start(impl)
	io := startIO()
	cpu0 := processCPU()
	n0, t0 := w.received.Load(), time.Now()
	time.Sleep(d)
	n1, t1 := w.received.Load(), time.Now()
	cpu := processCPU() - cpu0
	io.stop(n1 - n0)
	e.prof.stop()
	close(stop)
	wg.Wait()
	// Let the window drain so that nothing is in flight at close.
	deadline := time.Now().Add(3 * time.Second)
	for _, t := range w.tokens {
		for len(t) > 0 && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
	}
	m := windowMeasure{rate: float64(n1-n0) / t1.Sub(t0).Seconds(), io: io}
	if n1 > n0 {
		m.cpu = float64(cpu.Nanoseconds()) / float64(n1-n0)
	}
	if p := sendErr.Load(); p != nil {
		return m, *p
	}
	return m, nil
}

// setupEcho starts a server of impl on the transport and connects n
// clients; onEcho(i, p) is called for each echo client i receives, p being
// the payload it carries back.
func setupEcho(e *env, transport, impl string, n int, onEcho func(i int, p *benchv1.Payload)) (*echoSetup, error) {
	ctx := context.Background()
	var closers cleanups
	s := &echoSetup{close: func() { closers.run() }}
	fail := func(err error) (*echoSetup, error) {
		s.close()
		return nil, err
	}
	switch impl {
	case implMsgtrans, implNoPark, implProm:
		srv, err := e.startMsgtransImpl(transport, impl)
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
			benchv1.RegisterBenchEventsServiceHandler(c, &eventsHandler{echoed: func(p *benchv1.Payload) { onEcho(i, p) }})
			client := benchv1.NewBenchServiceClient(c)
			s.links = append(s.links, echoLink{send: func(p *benchv1.Payload) error {
				return client.Echo(ctx, &benchv1.EchoRequest{Payload: p})
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
				rawReadEchoed(c, func(p *benchv1.Payload) { onEcho(i, p) })
			}()
			closers.add(func() { _ = c.close(); <-done; c.wait() })
			s.links = append(s.links, echoLink{send: func(p *benchv1.Payload) error {
				return c.send(marshal(&benchv1.EchoRequest{Payload: p}))
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
					onEcho(i, m.Payload)
				}
			}()
			closers.add(func() { ws.Close(); <-done })
			s.links = append(s.links, echoLink{send: func(p *benchv1.Payload) error {
				return ws.WriteMessage(websocket.BinaryMessage, marshal(&benchv1.EchoRequest{Payload: p}))
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
					onEcho(i, m.Payload)
				}
			}()
			closers.add(func() { cancel(); <-done })
			s.links = append(s.links, echoLink{send: func(p *benchv1.Payload) error {
				return st.SendMsg(&benchv1.EchoRequest{Payload: p})
			}})
		}
	default:
		return nil, fmt.Errorf("no echo implementation %q", impl)
	}
	return s, nil
}
