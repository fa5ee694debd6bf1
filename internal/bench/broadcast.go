package main

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/msgtrans/msgtrans-go/internal/bench/gen/benchv1"
	"github.com/msgtrans/msgtrans-go/runtime"
)

// The broadcast scenario: a server broadcasts typed messages to every one
// of 1,000 and then 10,000 sessions, whose clients run in a second process.
// Each message carries its send time; the clients record when it arrives.
//
// Each round has two phases: a burst of back-to-back broadcasts (100,000
// deliveries) gives deliveries per second (from the first send to the last
// receipt) and the latency under that load; then a few broadcasts, each
// sent once the previous one has reached every client, give the delivery
// latency of a lone broadcast (p50 and p99 over its recipients; the
// medians over the broadcasts are reported).
//
// The baseline is a raw encode-once fan-out server over TCP: the message is
// marshalled once and the same bytes queued to every connection's writer.
//
// QUIC runs with the smaller count only: it connects a few hundred
// connections per second.
const (
	burstDeliveries = 100_000
	maxQUICFanout   = 2000
)

func runBroadcast(e *env) error {
	sizes := pick(e, []int{1000, 10000}, []int{1000})
	if e.opt.conns > 0 {
		sizes = []int{e.opt.conns}
	}
	for _, n := range sizes {
		for _, tr := range e.transports(allTransports...) {
			if tr == "quic" && n > maxQUICFanout {
				e.logf("broadcast: skipping quic with %d connections (QUIC connects too slowly; at most %d)", n, maxQUICFanout)
				continue
			}
			impls := e.withProm([]string{implMsgtrans})
			if tr == "tcp" {
				impls = append(impls, "raw")
			}
			if e.opt.metricsCompare {
				// Alternated round by round (each implementation connects
				// its clients again for each), so that a machine whose
				// speed drifts favours neither.
				if err := alternateBroadcast(e, tr, impls, n); err != nil {
					return err
				}
				continue
			}
			for _, impl := range impls {
				if err := measureBroadcast(e, tr, impl, n); err != nil {
					return fmt.Errorf("%s %s n=%d: %w", tr, impl, n, err)
				}
			}
		}
	}
	return nil
}

// alternateBroadcast measures each of impls for one round at a time, the
// configured rounds over.
func alternateBroadcast(e *env, tr string, impls []string, n int) error {
	rounds := e.opt.rounds
	e.opt.rounds = 1
	defer func() { e.opt.rounds = rounds }()
	for range rounds {
		for _, impl := range impls {
			if err := measureBroadcast(e, tr, impl, n); err != nil {
				return fmt.Errorf("%s %s n=%d: %w", tr, impl, n, err)
			}
		}
	}
	return nil
}

// fanoutServer is a server that broadcasts to every client connected to
// addr.
type fanoutServer struct {
	addr      string
	broadcast func(p *benchv1.Payload) error
	count     func() int // clients connected (and subscribed)
	stop      func()
}

// startFanout starts the broadcasting server of impl on the transport:
// msgtrans and raw here, the peers (peers.go) through fanoutPeers.
func startFanout(e *env, tr, impl string) (*fanoutServer, error) {
	switch impl {
	case implMsgtrans, implProm:
		srv, err := e.startMsgtransImpl(tr, impl)
		if err != nil {
			return nil, err
		}
		return &fanoutServer{
			addr: srv.addr,
			broadcast: func(p *benchv1.Payload) error {
				_, err := srv.push.SendFanout(context.Background(), runtime.ToAll(), &benchv1.FanoutRequest{Payload: p})
				return err
			},
			count: srv.srv.SessionCount,
			stop:  srv.close,
		}, nil
	case "raw":
		srv, err := serveRaw(tr, e.certs.Server, func(c *rawConn) {
			for {
				if _, err := c.read(); err != nil {
					return
				}
			}
		})
		if err != nil {
			return nil, err
		}
		return &fanoutServer{
			addr: srv.addr,
			broadcast: func(p *benchv1.Payload) error {
				b := marshal(&benchv1.FanoutRequest{Payload: p})
				srv.each(func(c *rawConn) { _ = c.send(b) })
				return nil
			},
			count: srv.count,
			stop:  srv.close,
		}, nil
	}
	if start, ok := fanoutPeers[impl]; ok {
		return start(e)
	}
	return nil, fmt.Errorf("no broadcast implementation %q", impl)
}

func measureBroadcast(e *env, tr, impl string, n int) error {
	// Connections stay up across the rounds of one implementation: at
	// 10,000 two servers' clients would not fit the open-file limit.
	fs, err := startFanout(e, tr, impl)
	if err != nil {
		return err
	}
	addr, broadcast, count, stop := fs.addr, fs.broadcast, fs.count, fs.stop
	// The server closes first, so that it does not log its clients'
	// departure as errors.
	var p *clientProc
	defer func() {
		stop()
		if p != nil {
			p.quit()
		}
	}()

	e.logf("%s %s %s: connecting %d clients", e.scenario, tr, impl, n)
	t0 := time.Now()
	clientImpl := impl
	if impl == implProm {
		clientImpl = implMsgtrans // the metrics are the server's
	}
	p, connected, err := startClients(e, 120*time.Second, "-impl", clientImpl, "-transport", tr, "-addr", addr, "-n", strconv.Itoa(n))
	if err != nil {
		return err
	}
	if err := waitCount(count, connected, 30*time.Second); err != nil {
		return err
	}
	e.logf("%s %s %s: %d connected in %v", e.scenario, tr, impl, connected, time.Since(t0).Round(time.Millisecond))
	suffix := fmt.Sprintf("_n%d", n)
	for round := 1; round <= e.opt.rounds; round++ {
		e.prof.start(impl)
		rate, burst, lone, err := fanoutRound(e, p, connected, broadcast)
		e.prof.stop()
		if err != nil {
			return err
		}
		e.add(tr, impl, "deliveries_per_s"+suffix, "msg/s", rate)
		e.add(tr, impl, "burst_p50_us"+suffix, "µs", micros(burst[0]))
		e.add(tr, impl, "burst_p99_us"+suffix, "µs", micros(burst[1]))
		e.add(tr, impl, "lat_p50_us"+suffix, "µs", micros(lone[0]))
		e.add(tr, impl, "lat_p99_us"+suffix, "µs", micros(lone[1]))
		e.logf("%s round %d/%d n=%d %-4s %-10s %10.0f deliveries/s (burst p50 %.0fµs p99 %.0fµs) lone broadcast p50 %.0fµs p99 %.0fµs",
			e.scenario, round, e.opt.rounds, n, tr, impl, rate, micros(burst[0]), micros(burst[1]), micros(lone[0]), micros(lone[1]))
	}
	return nil
}

// fanoutRound runs the burst and the lone-broadcast phases once.
func fanoutRound(e *env, p *clientProc, n int, broadcast func(*benchv1.Payload) error) (rate float64, burst, lone [2]time.Duration, err error) {
	bursts := max(4, burstDeliveries/n)
	if err := p.send("RESET " + strconv.Itoa(bursts*n)); err != nil {
		return 0, burst, lone, err
	}
	if _, err := p.expect("OK", 10*time.Second); err != nil {
		return 0, burst, lone, err
	}
	t0 := time.Now()
	for i := range bursts {
		if err := broadcast(e.payload(uint64(i))); err != nil {
			return 0, burst, lone, err
		}
	}
	f, err := p.expect("DONE", 60*time.Second)
	if err != nil {
		return 0, burst, lone, err
	}
	got, last, p50, p99 := atoi64(f[1]), atoi64(f[2]), atoi64(f[3]), atoi64(f[4])
	if got < int64(bursts*n) {
		e.logf("broadcast: only %d of %d deliveries arrived", got, bursts*n)
	}
	rate = float64(got) / time.Duration(last-t0.UnixNano()).Seconds()
	burst = [2]time.Duration{time.Duration(p50), time.Duration(p99)}

	// Lone broadcasts: each one sent once the previous has reached every
	// client; the medians of their p50 and p99 are reported.
	var p50s, p99s []float64
	for i := range loneBroadcasts(n) {
		if err := p.send("RESET " + strconv.Itoa(n)); err != nil {
			return 0, burst, lone, err
		}
		if _, err := p.expect("OK", 10*time.Second); err != nil {
			return 0, burst, lone, err
		}
		if err := broadcast(e.payload(uint64(i))); err != nil {
			return 0, burst, lone, err
		}
		if f, err = p.expect("DONE", 60*time.Second); err != nil {
			return 0, burst, lone, err
		}
		p50s = append(p50s, float64(atoi64(f[3])))
		p99s = append(p99s, float64(atoi64(f[4])))
	}
	lone = [2]time.Duration{time.Duration(median(p50s)), time.Duration(median(p99s))}
	return rate, burst, lone, nil
}

// loneBroadcasts is how many lone broadcasts a round sends to n sessions.
func loneBroadcasts(n int) int { return max(3, min(10, 40000/n)) }

func atoi64(s string) int64 {
	v, _ := strconv.ParseInt(s, 10, 64)
	return v
}
