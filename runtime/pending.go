package runtime

import (
	"context"
	"errors"
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

// timerPool recycles the timers of requests without a deadline of their
// own (Stop leaves nothing in a timer's channel since go1.23).
var timerPool = sync.Pool{New: func() any { return time.NewTimer(time.Hour) }}

// request registers a pending request, queues what encode returns for its
// id, and waits for the response, which it returns by value: its memory
// may be pooled, for the caller to release once done with it.
func (s *Session) request(ctx context.Context, encode func(id uint32) ([]byte, error)) (wire.Packet, error) {
	var timeout <-chan time.Time
	if _, ok := ctx.Deadline(); !ok {
		t := timerPool.Get().(*time.Timer)
		t.Reset(s.cfg.requestTimeout)
		defer func() {
			t.Stop()
			timerPool.Put(t)
		}()
		timeout = t.C
	}
	id := s.nextID()
	ch := replyPool.Get().(chan reply)
	s.pmu.Lock()
	if s.pending == nil {
		if s.isClosed() {
			s.pmu.Unlock()
			replyPool.Put(ch)
			return wire.Packet{}, NewError(CodeUnavailable, "connection closed")
		}
		s.pending = make(map[uint32]chan reply)
	}
	s.pending[id] = ch
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
	select {
	case r := <-ch:
		replyPool.Put(ch)
		return r.p, r.err
	case <-timeout:
		err = Errorf(CodeDeadlineExceeded, "no response within %v", s.cfg.requestTimeout)
	case <-ctx.Done():
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			err = wrapError(CodeDeadlineExceeded, ctx.Err())
		} else {
			err = wrapError(CodeCanceled, ctx.Err())
		}
	}
	s.abandon(id, ch)
	return wire.Packet{}, err
}

// replyPool recycles the channels requests wait on. A channel goes back only
// when no reply can still be sent on it (see abandon).
var replyPool = sync.Pool{New: func() any { return make(chan reply, 1) }}

// abandon stops waiting for the response to id. When the response is
// already being delivered, it waits for it, so that ch can be reused.
func (s *Session) abandon(id uint32, ch chan reply) {
	s.pmu.Lock()
	_, waiting := s.pending[id]
	delete(s.pending, id)
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
	ch, ok := s.pending[p.MessageID]
	delete(s.pending, p.MessageID)
	s.pmu.Unlock()
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
	pending := s.pending
	s.pending = nil
	s.pmu.Unlock()
	for _, ch := range pending {
		ch <- reply{err: &Error{Code: CodeUnavailable, Message: "connection closed: " + reasonText(reason), cause: reason}}
	}
}
