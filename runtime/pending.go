package runtime

import (
	"context"
	"errors"
	"math"
	"sync"
	"time"

	"github.com/msgtrans/msgtrans-go/wire"
)

// reply is what a waiting request gets: the response (its memory may be
// pooled: the waiter releases it) or the failure.
type reply struct {
	p   wire.Packet
	err error
}

// Request sends p as a Request and waits for its Response. Without a
// deadline on ctx it waits the configured request timeout (default 10 s).
// Failures are [*Error]s: CodeDeadlineExceeded on timeout, CodeCanceled when
// ctx is cancelled, CodeUnavailable when the connection drops, and the
// peer's code when it answers with an error.
func (s *Session) Request(ctx context.Context, p *wire.Packet) (*wire.Packet, error) {
	var obs RouteObserver
	var start time.Time
	if ob := s.cfg.obs; ob != nil && !isTypedCall(p) {
		// A raw call; typed ones are reported by invoke.
		obs, start = ob.raw(p.BizType), time.Now()
	}
	p = tracePacket(ctx, p)
	r, err := s.request(ctx, func(id uint32) ([]byte, error) { return s.encode(p, wire.Request, id) })
	if obs != nil {
		obs.Called(time.Since(start), statusOf(err))
	}
	if err != nil {
		return nil, err
	}
	r.Own() // the caller's
	return &r, nil
}

// request registers a pending request, queues what encode returns for its
// id, and waits for the response, which it returns by value: its memory
// may be pooled, for the caller to release once done with it.
//
// A request whose ctx has no deadline is given up after the request
// timeout by the session's sweep (see expire), not by a timer of its own:
// waiting on a timer's channel beside the reply's added the timer to the
// scheduler's heap and took it off again for every call.
func (s *Session) request(ctx context.Context, encode func(id uint32) ([]byte, error)) (wire.Packet, error) {
	var expires int64
	if _, ok := ctx.Deadline(); !ok {
		now := time.Now().UnixNano()
		expires = now + min(int64(s.cfg.requestTimeout), math.MaxInt64-now) // a timeout of centuries saturates
	}
	id := s.nextID()
	ch := replyPool.Get().(chan reply)
	s.pmu.Lock()
	if s.pending == nil {
		s.pending = &pendingCalls{}
	}
	pc := s.pending
	if pc.m == nil {
		if s.isClosed() {
			s.pmu.Unlock()
			replyPool.Put(ch)
			return wire.Packet{}, NewError(CodeUnavailable, "connection closed")
		}
		pc.m = make(map[uint32]pendingCall)
	}
	pc.m[id] = pendingCall{ch: ch, expires: expires}
	if expires != 0 && !pc.sweeping {
		pc.sweeping = true
		d := sweepPeriod(s.cfg.requestTimeout)
		if pc.sweep == nil {
			pc.sweep = time.AfterFunc(d, s.expire)
		} else {
			pc.sweep.Reset(d)
		}
	}
	s.pmu.Unlock()

	b, err := encode(id)
	if err == nil {
		err = s.enqueueOwned(b)
	}
	if err != nil {
		s.abandon(id, ch)
		if errors.Is(err, ErrClosed) || errors.Is(err, ErrSlowConsumer) {
			return wire.Packet{}, wrapError(CodeUnavailable, err)
		}
		return wire.Packet{}, err
	}
	done := ctx.Done()
	if done == nil {
		// Nothing but the response (or the sweep, or the connection's
		// end) can end the wait: one channel, no select.
		r := <-ch
		replyPool.Put(ch)
		return r.p, r.err
	}
	select {
	case r := <-ch:
		replyPool.Put(ch)
		return r.p, r.err
	case <-done:
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		err = wrapError(CodeDeadlineExceeded, ctx.Err())
	} else {
		err = wrapError(CodeCanceled, ctx.Err())
	}
	s.abandon(id, ch)
	return wire.Packet{}, err
}

// pendingCalls are a session's requests awaiting their responses, by
// message id, and the sweep that gives up on those past the request
// timeout. Guarded by the session's pmu.
type pendingCalls struct {
	m        map[uint32]pendingCall // nil once the connection is gone
	sweep    *time.Timer            // runs expire; made with the first request without a deadline
	sweeping bool                   // sweep is armed
}

// pendingCall is a request awaiting its response: the channel its caller
// waits on, and when the session gives up on it (Unix nanoseconds; 0 when
// the caller's context bounds the wait instead).
type pendingCall struct {
	ch      chan reply
	expires int64
}

// get returns the request waiting for id (pc may be nil: no request yet).
func (pc *pendingCalls) get(id uint32) (pendingCall, bool) {
	if pc == nil {
		return pendingCall{}, false
	}
	c, ok := pc.m[id]
	return c, ok
}

// take removes and returns the request waiting for id.
func (pc *pendingCalls) take(id uint32) (pendingCall, bool) {
	c, ok := pc.get(id)
	if ok {
		delete(pc.m, id)
	}
	return c, ok
}

// len returns the number of requests waiting.
func (pc *pendingCalls) len() int {
	if pc == nil {
		return 0
	}
	return len(pc.m)
}

// sweepPeriod is how often the requests waiting on a session are checked
// for their timeout: an eighth of it, so that a request is given up between
// the timeout and an eighth of it later.
func sweepPeriod(timeout time.Duration) time.Duration {
	return max(timeout/8, time.Millisecond)
}

// expire fails the requests whose request timeout has passed, and sweeps
// again a period later while any other waits without a deadline of its
// caller's.
func (s *Session) expire() {
	now := time.Now().UnixNano()
	s.pmu.Lock()
	defer s.pmu.Unlock()
	pc := s.pending
	again := false
	for id, c := range pc.m {
		switch {
		case c.expires == 0:
		case c.expires <= now:
			delete(pc.m, id)
			// Never blocks: the channel holds one reply, and only the
			// one who takes the request from the map sends it.
			c.ch <- reply{err: Errorf(CodeDeadlineExceeded, "no response within %v", s.cfg.requestTimeout)}
		default:
			again = true
		}
	}
	pc.sweeping = again
	if again {
		pc.sweep.Reset(sweepPeriod(s.cfg.requestTimeout))
	}
}

// replyPool recycles the channels requests wait on. A channel goes back only
// when no reply can still be sent on it (see abandon).
var replyPool = sync.Pool{New: func() any { return make(chan reply, 1) }}

// abandon stops waiting for the response to id. When the response is
// already being delivered, it waits for it, so that ch can be reused.
func (s *Session) abandon(id uint32, ch chan reply) {
	s.pmu.Lock()
	_, waiting := s.pending.take(id)
	s.pmu.Unlock()
	if !waiting {
		r := <-ch // complete or failPending took it from the map and sends now
		r.p.Release()
	}
	replyPool.Put(ch)
}

func (s *Session) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// complete hands a Response to the request waiting for it.
func (s *Session) complete(p *wire.Packet, ext wire.Ext) {
	s.pmu.Lock()
	c, ok := s.pending.take(p.MessageID)
	s.pmu.Unlock()
	ch := c.ch
	if !ok {
		s.cfg.logger.Debug("msgtrans: response to no pending request", "session", s.id, "message_id", p.MessageID)
		return
	}
	if ext.Code != CodeOK {
		ch <- reply{err: &Error{Code: ext.Code, Message: ext.Message}}
		return
	}
	ch <- reply{p: *p} // the waiter owns its memory now
	p.Own()
}

// failPending fails every waiting request: the connection is gone.
func (s *Session) failPending(reason error) {
	s.pmu.Lock()
	var pending map[uint32]pendingCall
	if pc := s.pending; pc != nil {
		pending, pc.m = pc.m, nil
		if pc.sweep != nil {
			pc.sweep.Stop()
			pc.sweeping = false
		}
	}
	s.pmu.Unlock()
	for _, c := range pending {
		c.ch <- reply{err: &Error{Code: CodeUnavailable, Message: "connection closed: " + reasonText(reason), cause: reason}}
	}
}
