package runtime

import (
	"context"
	"time"

	"github.com/msgtrans/msgtrans-go/wire"
)

// drain refuses new requests (answering them CodeUnavailable) and waits,
// until ctx is done, for the request handlers already running to finish, so
// that every request accepted before a shutdown gets its response.
func (s *Session) drain(ctx context.Context) {
	s.mu.Lock()
	s.draining = true
	s.mu.Unlock()
	done := make(chan struct{})
	go func() {
		s.handlers.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		// Handlers still running end with the session's context.
	}
}

// refuse refuses the session, which has sent nothing but its hello: the
// refusal (a go-away carrying why) is queued behind nothing, flushed, and
// the session closed with why as its reason.
func (s *Session) refuse(why error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	s.closeFlushed(ctx, why, refusalPacket(why, 0))
}

// closeFlushed stops new sends, queues final (when not nil) as the last
// packet, waits until the queue is written or ctx is done, and closes the
// session.
func (s *Session) closeFlushed(ctx context.Context, reason error, final *wire.Packet) {
	var fb []byte
	if final != nil {
		fb, _ = s.encode(final, wire.OneWay, s.nextID())
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	if fb != nil && !s.closing {
		s.pushLocked(fb)
	}
	var wait chan struct{}
	s.closing = true
	if s.writing {
		if s.flushed == nil {
			s.flushed = make(chan struct{})
		}
		wait = s.flushed
	}
	s.mu.Unlock()
	if wait != nil {
		select {
		case <-wait:
		case <-ctx.Done():
		}
	}
	s.linger(ctx, reason)
	s.closeWith(reason)
}

// lingerTime bounds how long a graceful close waits for the peer to close
// its side.
const lingerTime = time.Second

// linger half-closes a connection that supports it and waits (at most
// lingerTime, or until ctx is done) for the peer to close its side,
// discarding what arrives meanwhile. Closing with input unread would reset
// the connection, and a reset can destroy data the peer has not read yet.
func (s *Session) linger(ctx context.Context, reason error) {
	hc, ok := s.conn.(CloseWriter)
	if !ok {
		return
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	ended := make(chan struct{})
	s.readEnded, s.lingerReason = ended, reason
	s.lingering.Store(true)
	s.mu.Unlock()
	tellCloseReason(s.conn, reason)
	if hc.CloseWrite() != nil {
		return
	}
	t := time.NewTimer(lingerTime)
	defer t.Stop()
	select {
	case <-ended:
	case <-t.C:
	case <-ctx.Done():
	}
}
