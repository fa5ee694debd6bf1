package runtime

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestWorkPool: tasks run, a finished worker takes the next task instead of
// a new goroutine being started, and close waits for the workers.
func TestWorkPool(t *testing.T) {
	p := newWorkPool()
	var ran atomic.Int64
	var wg sync.WaitGroup
	for range 1000 {
		wg.Add(1)
		p.run(func() {
			defer wg.Done()
			ran.Add(1)
		})
		wg.Wait() // one at a time: a waiting worker is there for the next
	}
	if ran.Load() != 1000 {
		t.Fatalf("%d tasks ran, want 1000", ran.Load())
	}
	// A worker that finished is back waiting long before the next task
	// comes, nearly always: a new goroutine per task would be 1,000.
	if n := p.started.Load(); n > 100 {
		t.Errorf("1,000 tasks one after the other started %d workers", n)
	}
	started := make(chan struct{})
	release := make(chan struct{})
	p.run(func() { close(started); <-release })
	<-started
	closed := make(chan struct{})
	go func() { p.close(); close(closed) }()
	select {
	case <-closed:
		t.Fatal("close returned while a task ran")
	default:
	}
	close(release)
	<-closed
	// After close a task still runs, on a goroutine of its own.
	done := make(chan struct{})
	p.run(func() { close(done) })
	<-done
}

// TestWorkPoolRetires: workers nobody needed through a period exit, down to
// none (and the reaper with them), while those kept busy stay.
func TestWorkPoolRetires(t *testing.T) {
	p := newWorkPool()
	p.idle = 20 * time.Millisecond
	defer p.close()
	workers := func() int {
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.workers
	}
	// Eight tasks at once: eight workers.
	const burst = 8
	var running, release sync.WaitGroup
	running.Add(burst)
	release.Add(1)
	for range burst {
		p.run(func() { running.Done(); release.Wait() })
	}
	running.Wait()
	if n := workers(); n != burst {
		t.Fatalf("%d workers for %d tasks at once", n, burst)
	}
	release.Done()

	// One task at a time, without pause: one worker is enough, the
	// others go.
	stop := time.Now().Add(10 * time.Second)
	for workers() > 2 && time.Now().Before(stop) {
		done := make(chan struct{})
		p.run(func() { close(done) })
		<-done
	}
	if n := workers(); n > 2 {
		t.Fatalf("%d workers still there after 10 s of one task at a time", n)
	}
	// No task at all: none stays, and the reaper ends.
	for time.Now().Before(stop) {
		p.mu.Lock()
		gone := p.workers == 0 && !p.reaping
		p.mu.Unlock()
		if gone {
			return
		}
		time.Sleep(p.idle)
	}
	t.Fatalf("%d workers still there after 10 s without tasks", workers())
}

// BenchmarkWorkPool: handing a task to a waiting worker and waiting for
// it, the path of every request handler and writer start.
func BenchmarkWorkPool(b *testing.B) {
	p := newWorkPool()
	defer p.close()
	done := make(chan struct{})
	f := func() { done <- struct{}{} }
	b.ReportAllocs()
	for b.Loop() {
		p.run(f)
		<-done
	}
}
