package runtime

import (
	"sync"
	"sync/atomic"
	"time"
)

// workPool runs a server's (or a client's) request handlers and session
// writers on goroutines that outlive their task: one that has finished
// waits for the next instead of exiting, so that a busy side does not pay,
// for every request, for a new goroutine and for growing its stack again
// to what a handler needs.
//
// Workers nobody needed go: while the pool has workers, a reaper looks
// once per idle period at the fewest workers that were waiting at any
// moment of it, and retires that many. A waiting worker therefore holds no
// timer of its own: blocking on a timer's channel in every wait cost 6% of
// the CPU of a unary benchmark (the timer is added to and taken from the
// scheduler's heap each time). It waits on one channel, not in a select:
// a select of several (work, retirement, shutdown) locked each of them on
// every wait, 7% of the unary benchmark's CPU. A nil task is the word to
// go, for retirement and shutdown alike.
type workPool struct {
	work chan func()   // unbuffered: a send succeeds only if a worker waits
	quit chan struct{} // closed by close: the reaper ends
	done chan struct{} // closed once the pool is closed and its last worker gone
	idle time.Duration // the reaper's period

	waiting    atomic.Int64 // workers waiting for a task (counted just before they wait)
	minWaiting atomic.Int64 // the fewest waiting since the reaper last looked

	mu      sync.Mutex
	closed  bool
	workers int  // running
	reaping bool // the reaper runs
	wg      sync.WaitGroup
	started atomic.Int64 // workers started, for tests
}

// workerIdle is the reaper's period: a worker not needed for one to two
// of it exits.
const workerIdle = 2 * time.Second

func newWorkPool() *workPool {
	return &workPool{work: make(chan func()), quit: make(chan struct{}), done: make(chan struct{}), idle: workerIdle}
}

// run runs f (never nil) on a waiting worker, or on a new one.
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
	p.workers++
	p.wg.Add(1)
	if !p.reaping {
		p.reaping = true
		p.minWaiting.Store(p.waiting.Load())
		p.wg.Add(1)
		go p.reap()
	}
	p.mu.Unlock()
	p.started.Add(1)
	go p.worker(f)
}

func (p *workPool) worker(f func()) {
	defer p.wg.Done()
	for {
		f()
		p.waiting.Add(1)
		f = <-p.work
		n := p.waiting.Add(-1)
		if f == nil {
			p.mu.Lock()
			if p.workers--; p.workers == 0 && p.closed {
				close(p.done)
			}
			p.mu.Unlock()
			return
		}
		for m := p.minWaiting.Load(); n < m && !p.minWaiting.CompareAndSwap(m, n); m = p.minWaiting.Load() {
		}
	}
}

// reap retires, once per period, as many workers as were waiting all
// through it, and ends when no worker is left.
func (p *workPool) reap() {
	defer p.wg.Done()
	t := time.NewTicker(p.idle)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-p.quit:
			return
		}
		// Start the next period's count from those waiting now.
	retire:
		for n := p.minWaiting.Swap(p.waiting.Load()); n > 0; n-- {
			select {
			case p.work <- nil:
			default:
				break retire // none is waiting after all: it took a task
			}
		}
		p.mu.Lock()
		if p.workers == 0 {
			p.reaping = false
			p.mu.Unlock()
			return
		}
		p.mu.Unlock()
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
	if p.workers == 0 {
		close(p.done)
	}
	p.mu.Unlock()
	close(p.quit)
	// One word to go per worker, each taken when it next waits (a busy
	// one finishes its task first), until the last is gone.
	for {
		select {
		case p.work <- nil:
		case <-p.done:
			p.wg.Wait()
			return
		}
	}
}
