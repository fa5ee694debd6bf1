package runtime

import (
	"sync"
	"sync/atomic"
	"testing"
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
