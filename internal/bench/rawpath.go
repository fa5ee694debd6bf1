package main

import (
	"context"
	"fmt"
	"time"

	"github.com/msgtrans/msgtrans-go/runtime"
	"github.com/msgtrans/msgtrans-go/wire"
)

// The rawpath scenario: the framework's own cost per message, without
// protobuf on either side. 16 connections each keep 64 one-way messages of
// 64 bytes in flight; the server echoes each back. The metric is echoes
// per second, all connections together: an echo counts once, when it is
// back at its client (it crossed the connection twice, so twice as many
// messages were moved). Same process, the implementations alternating
// round by round:
//
//   - msgtrans: raw packets of one biz_type. The client sends with
//     [runtime.Client.Send]; the server's [runtime.Server.Handle] handler
//     (a [runtime.HandlerFunc]) answers each with [runtime.Session.Send] of
//     a packet carrying the same payload; the client's Handle handler counts
//     it. No route, no ext header, no protobuf.
//   - raw: u32-length-framed bytes over the same transport (rawConn: a
//     reader goroutine, and a writer goroutine draining a queue into a
//     bufio.Writer flushed only when the queue is empty); the server queues
//     a copy of each frame it reads (its read buffer is reused), the client
//     sends one shared body.
//
// Besides echoes per second it reports the process's CPU time per echo
// (both ends, cpu_ns_per_msg) and, on tcp and ws, read and write system
// calls per echo.

const (
	rawPathConns  = throughputConns
	rawPathWindow = 64
	// rawPathBiz is the biz_type of the echoed packets.
	rawPathBiz = 7
)

var rawPathImpls = []string{implMsgtrans, "raw"}

func runRawPath(e *env) error {
	d := e.phase(1500*time.Millisecond, 400*time.Millisecond)
	for round := 1; round <= e.opt.rounds; round++ {
		for _, tr := range e.transports(allTransports...) {
			for _, impl := range rawPathImpls {
				m, err := measureRawPath(e, tr, impl, d)
				if err != nil {
					return fmt.Errorf("%s %s: %w", tr, impl, err)
				}
				e.logf("rawpath round %d/%d %-4s %-8s %12.0f echoes/s %6.0f ns CPU/echo", round, e.opt.rounds, tr, impl, m.rate, m.cpu)
				e.add(tr, impl, "msg_per_s", "msg/s", m.rate)
				e.add(tr, impl, "cpu_ns_per_msg", "ns", m.cpu)
				e.addSyscalls(tr, impl, "msg", m.io)
			}
		}
	}
	return nil
}

// measureRawPath sets impl up on the transport and measures its echo.
func measureRawPath(e *env, transport, impl string, d time.Duration) (windowMeasure, error) {
	w := newWindow(rawPathConns, rawPathWindow)
	sends, closeAll, err := setupRawPath(e, transport, impl, rawPathConns, w.echoed)
	if err != nil {
		return windowMeasure{}, err
	}
	defer closeAll()
	return w.run(e, impl, sends, d)
}

// setupRawPath starts an echo server of impl on the transport and connects
// n clients; sends[i] sends one message on client i, and onEcho(i) is
// called for each echo client i receives.
func setupRawPath(e *env, transport, impl string, n int, onEcho func(i int)) (sends []func(uint64) error, closeAll func(), err error) {
	ctx := context.Background()
	var closers cleanups
	fail := func(err error) ([]func(uint64) error, func(), error) {
		closers.run()
		return nil, nil, err
	}
	body := e.body
	switch impl {
	case implMsgtrans:
		srv, err := e.startMsgtrans(transport)
		if err != nil {
			return nil, nil, err
		}
		closers.add(srv.close)
		// Both handlers keep nothing of their packets (Send encodes the
		// echo before it returns), so they borrow them: the runtime reuses
		// each packet's memory, as a user who cares about speed would let it.
		srv.srv.Handle(rawPathBiz, runtime.Borrowing(runtime.HandlerFunc(func(_ context.Context, s *runtime.Session, p *wire.Packet) (*wire.Packet, error) {
			return nil, s.Send(&wire.Packet{BizType: rawPathBiz, Payload: p.Payload})
		})))
		for i := range n {
			c, err := dialMsgtrans(ctx, srv.addr, e.certs.Client, e.log)
			if err != nil {
				return fail(err)
			}
			closers.add(func() { _ = c.Close() })
			c.Handle(rawPathBiz, runtime.Borrowing(runtime.HandlerFunc(func(context.Context, *runtime.Session, *wire.Packet) (*wire.Packet, error) {
				onEcho(i)
				return nil, nil
			})))
			// One packet per client, sent again and again: Send encodes
			// it into a buffer of its own and keeps nothing of it.
			p := &wire.Packet{BizType: rawPathBiz, Payload: body}
			sends = append(sends, func(uint64) error { return c.Send(p) })
		}
	case "raw":
		srv, err := serveRaw(transport, e.certs.Server, rawBytesEchoHandler)
		if err != nil {
			return nil, nil, err
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
				for {
					if _, err := c.read(); err != nil {
						return
					}
					onEcho(i)
				}
			}()
			closers.add(func() { _ = c.close(); <-done; c.wait() })
			sends = append(sends, func(uint64) error { return c.send(body) })
		}
	default:
		return nil, nil, fmt.Errorf("no raw echo implementation %q", impl)
	}
	return sends, closers.run, nil
}

// rawBytesEchoHandler answers every frame with a copy of it.
func rawBytesEchoHandler(c *rawConn) {
	for {
		f, err := c.read()
		if err != nil {
			return
		}
		if err := c.send(append([]byte(nil), f...)); err != nil {
			return
		}
	}
}
