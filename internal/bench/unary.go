package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"

	"github.com/msgtrans/msgtrans-go/internal/bench/gen/benchv1"
)

// The unary scenario: concurrent callers each make one typed call at a time
// as fast as they can. Callers share connections, 16 callers to a
// connection (the runtime's default in-flight handler cap per session is
// 16): one connection for 16 callers, 16 for 256. The metric is calls
// completed per second.

// unaryImpls are the implementations run over each transport: the
// multiplexed raw request/response runs everywhere, gRPC over TCP.
var unaryImpls = map[string][]string{
	"tcp":  {implMsgtrans, "raw", "grpc"},
	"ws":   {implMsgtrans, "raw"},
	"quic": {implMsgtrans, "raw"},
}

const callersPerConn = 16

func runUnary(e *env) error {
	d := e.phase(700*time.Millisecond, 400*time.Millisecond)
	for round := 1; round <= e.opt.rounds; round++ {
		for _, callers := range []int{16, 256} {
			for _, tr := range e.transports(allTransports...) {
				for _, impl := range e.withProm(e.withNoPark(tr, unaryImpls[tr])) {
					t, err := setupCalls(e, tr, impl, max(1, callers/callersPerConn))
					if err != nil {
						return fmt.Errorf("%s %s: %w", tr, impl, err)
					}
					if err := measureUnary(e, tr, impl, t, callers, d, round); err != nil {
						return fmt.Errorf("%s %s: %w", tr, impl, err)
					}
				}
			}
		}
	}
	return nil
}

// measureUnary warms t up, runs callers on it for d, records calls per
// second and system calls per call, and closes t.
func measureUnary(e *env, tr, impl string, t *callTarget, callers int, d time.Duration, round int) error {
	time.Sleep(50 * time.Millisecond)
	runCallers(t, callers, d/4, nil) // warm-up
	e.prof.start(impl)
	io := startIO()
	rate, err := runCallers(t, callers, d, nil)
	io.stop(int64(rate * d.Seconds()))
	e.prof.stop()
	t.close()
	if err != nil {
		return err
	}
	e.logf("%s round %d/%d callers=%-3d %-4s %-10s %10.0f req/s", e.scenario, round, e.opt.rounds, callers, tr, impl, rate)
	e.add(tr, impl, fmt.Sprintf("req_per_s_c%d", callers), "req/s", rate)
	e.addSyscalls(tr, impl, fmt.Sprintf("call_c%d", callers), io)
	return nil
}

// callTarget makes typed calls over one or more connections.
type callTarget struct {
	// call makes one call from caller w.
	call  func(w int, seq uint64) error
	close func()
}

// setupCalls starts a server of impl on the transport and connects conns
// clients; caller w uses client w % conns.
func setupCalls(e *env, transport, impl string, conns int) (*callTarget, error) {
	ctx := context.Background()
	var closers cleanups
	t := &callTarget{close: func() { closers.run() }}
	fail := func(err error) (*callTarget, error) {
		t.close()
		return nil, err
	}
	switch impl {
	case implMsgtrans, implNoPark, implProm:
		srv, err := e.startMsgtransImpl(transport, impl)
		if err != nil {
			return nil, err
		}
		closers.add(srv.close)
		var clients []*benchv1.BenchServiceClient
		for range conns {
			c, err := dialMsgtrans(ctx, srv.addr, e.certs.Client, e.log)
			if err != nil {
				return fail(err)
			}
			closers.add(func() { _ = c.Close() })
			clients = append(clients, benchv1.NewBenchServiceClient(c))
		}
		t.call = func(w int, seq uint64) error {
			_, err := clients[w%len(clients)].Call(ctx, &benchv1.CallRequest{Payload: e.payload(seq)})
			return err
		}
	case "raw":
		srv, err := serveRaw(transport, e.certs.Server, rawRPCHandler)
		if err != nil {
			return nil, err
		}
		closers.add(srv.close)
		var clients []*rawRPCClient
		for range conns {
			c, err := dialRaw(ctx, transport, srv.addr, e.certs.Client)
			if err != nil {
				return fail(err)
			}
			rc := newRawRPCClient(c)
			closers.add(rc.close)
			clients = append(clients, rc)
		}
		t.call = func(w int, seq uint64) error {
			_, err := clients[w%len(clients)].call(&benchv1.CallRequest{Payload: e.payload(seq)})
			return err
		}
	case "grpc":
		srv, err := startGRPC()
		if err != nil {
			return nil, err
		}
		closers.add(srv.close)
		var ccs []*grpc.ClientConn
		for range conns {
			cc, err := dialGRPC(ctx, srv.addr)
			if err != nil {
				return fail(err)
			}
			closers.add(func() { cc.Close() })
			ccs = append(ccs, cc)
		}
		t.call = func(w int, seq uint64) error {
			_, err := grpcCall(ctx, ccs[w%len(ccs)], &benchv1.CallRequest{Payload: e.payload(seq)})
			return err
		}
	default:
		return nil, fmt.Errorf("no request/response implementation %q", impl)
	}
	return t, nil
}

// runCallers runs callers closed-loop for d and returns calls per second.
// When lat is non-nil (one caller only), it receives every round trip.
func runCallers(t *callTarget, callers int, d time.Duration, lat *latencies) (float64, error) {
	var done atomic.Int64
	var firstErr atomic.Pointer[error]
	var wg sync.WaitGroup
	start := time.Now()
	end := start.Add(d)
	for w := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seq := uint64(0); ; seq++ {
				t0 := time.Now()
				if t0.After(end) {
					return
				}
				if err := t.call(w, seq); err != nil {
					firstErr.CompareAndSwap(nil, &err)
					return
				}
				if lat != nil {
					*lat = append(*lat, time.Since(t0))
				}
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	if p := firstErr.Load(); p != nil {
		return 0, *p
	}
	return float64(done.Load()) / time.Since(start).Seconds(), nil
}
