package main

import (
	"fmt"
	"slices"
	"sync"
	"time"
)

// The latency scenario, over one connection: first one caller with one call
// in flight (p50, p99, p99.9 of the round trip); then the maximum rate with
// 16 callers; then calls paced at half that rate from a schedule (open
// loop: each call's latency counts from when it was due, so a stall delays
// the calls queued behind it too) for p99 and p99.9 under load.

var latencyImpls = unaryImpls

const (
	maxRateCallers = 16
	pacedWorkers   = 64
)

func runLatency(e *env) error {
	d := e.phase(700*time.Millisecond, 400*time.Millisecond)
	for round := 1; round <= e.opt.rounds; round++ {
		for _, tr := range e.transports(allTransports...) {
			for _, impl := range latencyImpls[tr] {
				if err := measureLatency(e, tr, impl, d, round); err != nil {
					return fmt.Errorf("%s %s: %w", tr, impl, err)
				}
			}
		}
	}
	return nil
}

func measureLatency(e *env, tr, impl string, d time.Duration, round int) error {
	t, err := setupCalls(e, tr, impl, 1)
	if err != nil {
		return err
	}
	defer t.close()
	if _, err := runCallers(t, 1, d/4, nil); err != nil { // warm-up
		return err
	}

	e.prof.start(impl)
	defer e.prof.stop()
	var rtt latencies
	if _, err := runCallers(t, 1, d, &rtt); err != nil {
		return err
	}
	q := rtt.quantiles(50, 99, 99.9)
	e.add(tr, impl, "p50_us", "µs", micros(q[0]))
	e.add(tr, impl, "p99_us", "µs", micros(q[1]))
	e.add(tr, impl, "p999_us", "µs", micros(q[2]))

	maxRate, err := runCallers(t, maxRateCallers, d/2, nil)
	if err != nil {
		return err
	}
	e.add(tr, impl, "max_req_per_s", "req/s", maxRate)
	paced, err := runPaced(t, maxRate/2, d)
	if err != nil {
		return err
	}
	pq := paced.quantiles(50, 99, 99.9)
	e.add(tr, impl, "paced_p50_us", "µs", micros(pq[0]))
	e.add(tr, impl, "paced_p99_us", "µs", micros(pq[1]))
	e.add(tr, impl, "paced_p999_us", "µs", micros(pq[2]))
	e.logf("latency round %d/%d %-4s %-8s p50 %6.1fµs p99 %7.1fµs p99.9 %7.1fµs | max %7.0f/s, at %7.0f/s: p99 %8.1fµs p99.9 %8.1fµs",
		round, e.opt.rounds, tr, impl, micros(q[0]), micros(q[1]), micros(q[2]), maxRate, maxRate/2, micros(pq[1]), micros(pq[2]))
	return nil
}

// runPaced issues calls at rate per second for d from a fixed schedule,
// spread over pacedWorkers callers, and returns each call's latency from
// its due time to its response.
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
		due <- at
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
