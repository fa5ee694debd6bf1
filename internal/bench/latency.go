package main

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/msgtrans/msgtrans-go/internal/bench/gen/benchv1"
)

// The latency scenario, over one connection: first one caller with one call
// in flight (p50, p99, p99.9 of the round trip); then the maximum rate with
// 16 callers; then calls paced at half that rate from a schedule (open
// loop: a call's latency counts from when the pacer released it, so a
// stall delays the calls queued behind it too) for p50, p99 and p99.9
// under load (paced_*); then msgtrans and raw paced at one common rate,
// half the lower of their two maximums (paced_common_*).
//
// Then, on tcp, the same at load for the throughput scenario's typed
// one-way echo (echo_*): its maximum rate over 16 connections keeping 64
// messages each in flight (echo_max_msg_per_s), then one-way messages
// paced at half that rate, spread over the 16 connections, each echo's
// latency counted from when its message was released until the echo is
// back at its client. Each implementation is paced at half of its own
// maximum, found in the same round.
//
// The pacers wake when their timer fires and release everything due by
// then: on this VM a timer fires about a millisecond late when the process
// is otherwise idle, so the load arrives in bursts about a millisecond
// apart. Latency counts from the release, not from the due time: counting
// from the due time would add the pacer's own lateness (up to that
// millisecond) to every call of every implementation alike.

var latencyImpls = unaryImpls

// echoLatencyImpls are the implementations of the echo at load, run on tcp
// only (the scenario's run stays under a minute).
var echoLatencyImpls = []string{implMsgtrans, "raw"}

const (
	maxRateCallers = 16
	pacedWorkers   = 64
	// echoLoadWindow is the messages each connection keeps in flight to
	// find the echo's maximum rate.
	echoLoadWindow = 64
)

func runLatency(e *env) error {
	d := e.phase(700*time.Millisecond, 400*time.Millisecond)
	for round := 1; round <= e.opt.rounds; round++ {
		for _, tr := range e.transports(allTransports...) {
			maxRates := map[string]float64{}
			for _, impl := range latencyImpls[tr] {
				rate, err := measureLatency(e, tr, impl, d, round)
				if err != nil {
					return fmt.Errorf("%s %s: %w", tr, impl, err)
				}
				maxRates[impl] = rate
			}
			// Then msgtrans and raw at one and the same load: half the
			// lower of their two maximum rates.
			common := min(maxRates[implMsgtrans], maxRates["raw"]) / 2
			for _, impl := range commonPacedImpls {
				if err := measureCommonPaced(e, tr, impl, common, d, round); err != nil {
					return fmt.Errorf("%s %s: %w", tr, impl, err)
				}
			}
		}
		if slices.Contains(e.transports(allTransports...), "tcp") {
			for _, impl := range echoLatencyImpls {
				if err := measureEchoLatency(e, "tcp", impl, d, round); err != nil {
					return fmt.Errorf("tcp %s echo: %w", impl, err)
				}
			}
		}
	}
	return nil
}

// measureLatency measures impl's round trip with one call in flight, its
// maximum rate with 16 callers, and its latency paced at half that rate;
// it returns the maximum rate.
func measureLatency(e *env, tr, impl string, d time.Duration, round int) (float64, error) {
	t, err := setupCalls(e, tr, impl, 1)
	if err != nil {
		return 0, err
	}
	defer t.close()
	if _, err := runCallers(t, 1, d/4, nil); err != nil { // warm-up
		return 0, err
	}

	e.prof.start(impl)
	defer e.prof.stop()
	var rtt latencies
	if _, err := runCallers(t, 1, d, &rtt); err != nil {
		return 0, err
	}
	q := rtt.quantiles(50, 99, 99.9)
	e.add(tr, impl, "p50_us", "µs", micros(q[0]))
	e.add(tr, impl, "p99_us", "µs", micros(q[1]))
	e.add(tr, impl, "p999_us", "µs", micros(q[2]))

	maxRate, err := runCallers(t, maxRateCallers, d/2, nil)
	if err != nil {
		return 0, err
	}
	e.add(tr, impl, "max_req_per_s", "req/s", maxRate)
	paced, err := runPaced(t, maxRate/2, d)
	if err != nil {
		return 0, err
	}
	pq := paced.quantiles(50, 99, 99.9)
	e.add(tr, impl, "paced_p50_us", "µs", micros(pq[0]))
	e.add(tr, impl, "paced_p99_us", "µs", micros(pq[1]))
	e.add(tr, impl, "paced_p999_us", "µs", micros(pq[2]))
	e.logf("latency round %d/%d %-4s %-8s p50 %6.1fµs p99 %7.1fµs p99.9 %7.1fµs | max %7.0f/s, at %7.0f/s: p99 %8.1fµs p99.9 %8.1fµs",
		round, e.opt.rounds, tr, impl, micros(q[0]), micros(q[1]), micros(q[2]), maxRate, maxRate/2, micros(pq[1]), micros(pq[2]))
	return maxRate, nil
}

// commonPacedImpls are paced at one common rate after each transport's
// own measurements (paced_common_*): each implementation paced at half of
// its own maximum carries a different load, and the faster one the
// heavier.
var commonPacedImpls = []string{implMsgtrans, "raw"}

// measureCommonPaced measures impl's latency paced at rate calls a second
// over one connection.
func measureCommonPaced(e *env, tr, impl string, rate float64, d time.Duration, round int) error {
	t, err := setupCalls(e, tr, impl, 1)
	if err != nil {
		return err
	}
	defer t.close()
	if _, err := runCallers(t, maxRateCallers, d/4, nil); err != nil { // warm-up
		return err
	}
	paced, err := runPaced(t, rate, d)
	if err != nil {
		return err
	}
	q := paced.quantiles(50, 99, 99.9)
	e.add(tr, impl, "paced_common_p50_us", "µs", micros(q[0]))
	e.add(tr, impl, "paced_common_p99_us", "µs", micros(q[1]))
	e.add(tr, impl, "paced_common_p999_us", "µs", micros(q[2]))
	e.logf("latency round %d/%d %-4s %-8s at the common %7.0f/s: p50 %6.1fµs p99 %8.1fµs p99.9 %8.1fµs",
		round, e.opt.rounds, tr, impl, rate, micros(q[0]), micros(q[1]), micros(q[2]))
	return nil
}

// runPaced issues calls at rate per second for d from a fixed schedule,
// spread over pacedWorkers callers, and returns each call's latency from
// its release by the pacer (at or after its due time) to its response.
func runPaced(t *callTarget, rate float64, d time.Duration) (latencies, error) {
	if rate <= 0 {
		return nil, fmt.Errorf("no rate to pace at")
	}
	interval := time.Duration(float64(time.Second) / rate)
	total := int(d / interval)
	due := make(chan time.Time, total)
	per := make([]latencies, pacedWorkers)
	errs := make([]error, pacedWorkers)
	var wg sync.WaitGroup
	for w := range pacedWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			seq := uint64(0)
			for at := range due {
				if errs[w] != nil {
					continue
				}
				if err := t.call(w, seq); err != nil {
					errs[w] = err
					continue
				}
				per[w] = append(per[w], time.Since(at))
				seq++
			}
		}()
	}
	start := time.Now()
	for i := range total {
		at := start.Add(time.Duration(i) * interval)
		if wait := time.Until(at); wait > 0 {
			time.Sleep(wait)
		}
		due <- time.Now()
	}
	close(due)
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return slices.Concat(per...), nil
}

// measureEchoLatency finds impl's maximum echo rate on the transport and
// then measures the echo's latency paced at half of it.
func measureEchoLatency(e *env, tr, impl string, d time.Duration, round int) error {
	var (
		w       = newWindow(throughputConns, echoLoadWindow)
		pacing  atomic.Bool
		lats    = make([]latencies, throughputConns)
		arrived atomic.Int64
	)
	s, err := setupEcho(e, tr, impl, throughputConns, func(i int, p *benchv1.Payload) {
		if !pacing.Load() {
			w.echoed(i)
			return
		}
		// Called on connection i's reader only: lats[i] has one writer.
		lats[i] = append(lats[i], time.Duration(time.Now().UnixNano()-p.SentUnixNano))
		arrived.Add(1)
	})
	if err != nil {
		return err
	}
	defer s.close()
	sends := make([]func(uint64) error, len(s.links))
	for i, l := range s.links {
		sends[i] = func(seq uint64) error { return l.send(e.payload(seq)) }
	}
	m, err := w.run(e.unprofiled(), impl, sends, d/2)
	if err != nil {
		return err
	}
	pacing.Store(true)
	e.prof.start(impl)
	sent, err := paceEchoes(e, s.links, m.rate/2, d)
	e.prof.stop()
	if err != nil {
		return err
	}
	deadline := time.Now().Add(5 * time.Second)
	for arrived.Load() < sent && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if got := arrived.Load(); got < sent {
		return fmt.Errorf("%d of %d paced echoes came back", got, sent)
	}
	all := slices.Concat(lats...)
	q := all.quantiles(50, 99, 99.9)
	e.add(tr, impl, "echo_max_msg_per_s", "msg/s", m.rate)
	e.add(tr, impl, "echo_paced_p50_us", "µs", micros(q[0]))
	e.add(tr, impl, "echo_paced_p99_us", "µs", micros(q[1]))
	e.add(tr, impl, "echo_paced_p999_us", "µs", micros(q[2]))
	e.logf("latency round %d/%d %-4s %-8s echo: max %8.0f/s, at %8.0f/s: p50 %7.1fµs p99 %8.1fµs p99.9 %8.1fµs",
		round, e.opt.rounds, tr, impl, m.rate, m.rate/2, micros(q[0]), micros(q[1]), micros(q[2]))
	return nil
}

// paceEchoes sends one-way messages at rate per second for d, spread over
// the links: link i sends the messages due at start + (k·len(links) + i)
// intervals. A message carries the time it was released (its
// SentUnixNano), at or after its due time. It returns the messages sent.
func paceEchoes(e *env, links []echoLink, rate float64, d time.Duration) (int64, error) {
	if rate <= 0 {
		return 0, fmt.Errorf("no rate to pace at")
	}
	n := len(links)
	interval := time.Duration(float64(time.Second) / rate)
	start := time.Now()
	end := start.Add(d)
	var sent atomic.Int64
	var firstErr atomic.Pointer[error]
	var wg sync.WaitGroup
	for i, l := range links {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; ; k++ {
				at := start.Add(time.Duration(k*n+i) * interval)
				if at.After(end) {
					return
				}
				if wait := time.Until(at); wait > 0 {
					time.Sleep(wait)
				}
				p := e.payload(uint64(k))
				if err := l.send(p); err != nil {
					firstErr.CompareAndSwap(nil, &err)
					return
				}
				sent.Add(1)
			}
		}()
	}
	wg.Wait()
	if p := firstErr.Load(); p != nil {
		return sent.Load(), *p
	}
	return sent.Load(), nil
}
