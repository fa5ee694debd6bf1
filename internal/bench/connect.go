package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/msgtrans/msgtrans-go/internal/bench/gen/benchv1"
)

// The connect scenario: connections established per second, each counted
// once it has dialed (with the transport's handshakes) and completed a
// first typed call; 8 dialers at once. Connections stay open until the
// round ends. Baseline: the raw request/response client and server over
// the same transport.

const connectDialers = 8

func runConnect(e *env) error {
	for round := 1; round <= e.opt.rounds; round++ {
		for _, tr := range e.transports(allTransports...) {
			n := pick(e, 3000, 1000)
			if tr == "quic" {
				n = pick(e, 500, 150)
			}
			if e.opt.conns > 0 {
				n = e.opt.conns
			}
			for _, impl := range []string{implMsgtrans, "raw"} {
				rate, err := measureConnect(e, tr, impl, n)
				if err != nil {
					return fmt.Errorf("%s %s: %w", tr, impl, err)
				}
				e.add(tr, impl, "conn_per_s", "conn/s", rate)
				e.logf("connect round %d/%d %-4s %-8s %d conns: %8.0f conn/s", round, e.opt.rounds, tr, impl, n, rate)
			}
		}
	}
	return nil
}

func measureConnect(e *env, tr, impl string, n int) (float64, error) {
	ctx := context.Background()
	var (
		connect func(seq uint64) (func(), error)
		stop    func()
	)
	switch impl {
	case implMsgtrans:
		srv, err := e.startMsgtrans(tr)
		if err != nil {
			return 0, err
		}
		stop = srv.close
		connect = func(seq uint64) (func(), error) {
			c, err := dialMsgtrans(ctx, srv.addr, e.certs.Client, e.log)
			if err != nil {
				return nil, err
			}
			if _, err := benchv1.NewBenchServiceClient(c).Call(ctx, &benchv1.CallRequest{Payload: e.payload(seq)}); err != nil {
				_ = c.Close()
				return nil, err
			}
			return func() { _ = c.Close() }, nil
		}
	case "raw":
		srv, err := serveRaw(tr, e.certs.Server, rawRPCHandler)
		if err != nil {
			return 0, err
		}
		stop = srv.close
		connect = func(seq uint64) (func(), error) {
			c, err := dialRaw(ctx, tr, srv.addr, e.certs.Client)
			if err != nil {
				return nil, err
			}
			rc := newRawRPCClient(c)
			if _, err := rc.call(&benchv1.CallRequest{Payload: e.payload(seq)}); err != nil {
				rc.close()
				return nil, err
			}
			return rc.close, nil
		}
	default:
		return 0, fmt.Errorf("no connect implementation %q", impl)
	}
	defer stop()

	closers := make([]func(), n)
	var next atomic.Int64
	var firstErr atomic.Pointer[error]
	var wg sync.WaitGroup
	e.prof.start(impl)
	t0 := time.Now()
	for range connectDialers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || firstErr.Load() != nil {
					return
				}
				cl, err := connect(uint64(i))
				if err != nil {
					firstErr.CompareAndSwap(nil, &err)
					return
				}
				closers[i] = cl
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(t0)
	e.prof.stop()
	// Close concurrently: closing a QUIC connection lingers briefly.
	var cw sync.WaitGroup
	sem := make(chan struct{}, 64)
	for _, cl := range closers {
		if cl == nil {
			continue
		}
		cw.Add(1)
		sem <- struct{}{}
		go func() {
			defer cw.Done()
			cl()
			<-sem
		}()
	}
	cw.Wait()
	if p := firstErr.Load(); p != nil {
		return 0, *p
	}
	return float64(n) / elapsed.Seconds(), nil
}
