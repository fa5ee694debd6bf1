package runtime

import (
	"sync"
	"sync/atomic"
	"time"
)

// workPool runs a server's (or a client's) request handlers and session
// writers on goroutines that outlive their task: one that has finished
// waits a while for the next instead of exiting, so that a busy side does
// not pay, for every request, for a new goroutine and for growing its
// stack again to what a handler needs. A goroutine idle for workerIdle
// exits; close ends them all.
type workPool struct {
	work chan func() // unbuffered: a send succeeds only if a worker waits
	quit chan struct{}

	mu      sync.Mutex
	closed  bool
	wg      sync.WaitGroup
	started atomic.Int64 // workers started, for tests
}

// workerIdle is how long a worker waits for a task before it exits: between
// one and two of it, as it checks once per period whether it had any.
const workerIdle = 2 * time.Second

func newWorkPool() *workPool {
	return &workPool{work: make(chan func()), quit: make(chan struct{})}
}

// run runs f on a waiting worker, or on a new one.
func (p *workPool) run(f func()) {
	select {
	case p.work <- f:
		return
	default:
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		go f()
		return
	}
	p.wg.Add(1)
	p.mu.Unlock()
	p.started.Add(1)
	go p.worker(f)
}

func (p *workPool) worker(f func()) {
	defer p.wg.Done()
	f()
	t := time.NewTimer(workerIdle)
	defer t.Stop()
	busy := false
	for {
		select {
		case f = <-p.work:
			f()
			busy = true
		case <-t.C:
			if !busy {
				return
			}
			busy = false
			t.Reset(workerIdle)
		case <-p.quit:
			return
		}
	}
}

// close ends the waiting workers and waits for all of them; tasks run after
// it get goroutines of their own.
func (p *workPool) close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	p.mu.Unlock()
	close(p.quit)
	p.wg.Wait()
}
