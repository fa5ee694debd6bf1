package runtime

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/msgtrans/msgtrans-go/wire"
)

type reply struct {
	p   *wire.Packet
	err error
}

// Request sends p as a Request and waits for its Response. Without a
// deadline on ctx it waits the configured request timeout (default 10 s).
// Failures are [*Error]s: CodeDeadlineExceeded on timeout, CodeCanceled when
// ctx is cancelled, CodeUnavailable when the connection drops, and the
// peer's code when it answers with an error.
func (s *Session) Request(ctx context.Context, p *wire.Packet) (*wire.Packet, error) {
	return s.request(ctx, func(id uint32) ([]byte, error) { return s.encode(p, wire.Request, id) })
}

// request registers a pending request, queues what encode returns for its
// id, and waits for the response.
func (s *Session) request(ctx context.Context, encode func(id uint32) ([]byte, error)) (*wire.Packet, error) {
	var timeout <-chan time.Time
	if _, ok := ctx.Deadline(); !ok {
		t := time.NewTimer(s.cfg.requestTimeout)
		defer t.Stop()
		timeout = t.C
	}
	id := s.nextID()
	ch := replyPool.Get().(chan reply)
	s.pmu.Lock()
	if s.pending == nil {
		if s.isClosed() {
			s.pmu.Unlock()
			replyPool.Put(ch)
			return nil, NewError(CodeUnavailable, "connection closed")
		}
		s.pending = make(map[uint32]chan reply)
	}
	s.pending[id] = ch
	s.pmu.Unlock()

	b, err := encode(id)
	if err == nil {
		err = s.enqueue(b)
	}
	if err != nil {
		s.abandon(id, ch)
		if errors.Is(err, ErrClosed) || errors.Is(err, ErrSlowConsumer) {
			return nil, wrapError(CodeUnavailable, err)
		}
		return nil, err
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
	return nil, err
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
		<-ch // complete or failPending took it from the map and sends now
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
	ch <- reply{p: p}
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
