package runtime

import (
	"errors"
	"io"
	goruntime "runtime"

	"github.com/msgtrans/msgtrans-go/wire"
)

// run reads and dispatches packets until the connection fails or closes,
// then waits for the session's goroutines and returns the close reason. A
// session that may park (see [WithIdleParking]) is read by resume instead.
func (s *Session) run() error {
	var err error
	if first := s.first; first != nil {
		s.first = nil
		in := newInbound(*first)
		err = s.receive(in)
		in.release()
	}
	if err == nil {
		err = s.readLoop()
	}
	return s.finish(err)
}

// readLoop reads and dispatches packets until a read or a dispatch fails,
// and returns why: a read error wrapping wire.ErrIdle when the session may
// park and its reader has waited long enough.
func (s *Session) readLoop() error {
	for {
		// The packet is read into a pooled inbound, given back if the
		// read fails (the session is idle, say) so that a parked session
		// holds none.
		in := getInbound()
		if err := s.next(&in.p); err != nil {
			in.release()
			return err
		}
		request := in.p.Type == wire.Request
		err := s.receive(in)
		in.release()
		if err != nil {
			return err
		}
		if request && s.serving.Load() > 1 && !s.nextBuffered() {
			// Handlers were just handed requests and the next read would
			// go to the connection: let them run first. They answer
			// together (their responses share the writer's next write)
			// and meanwhile more of the peer's requests arrive, so the
			// read that follows returns a batch rather than finding
			// nothing. With 256 callers over 16 TCP connections this
			// raised calls per second by 5-10% (BENCHMARKS.md).
			goruntime.Gosched()
		}
	}
}

// nextBuffered reports whether the next packet needs no read from the
// network by the read loop: one is held or being read for it while it waited
// for an in-flight slot (the connection is then not its to ask), or the
// connection holds bytes read ahead. Connections that cannot tell report
// false.
func (s *Session) nextBuffered() bool {
	if r := &s.ahead; r.busy || len(r.held) > 0 || r.err != nil {
		return true
	}
	r, ok := s.conn.(ReadAheader)
	return ok && r.Buffered() > 0
}

// finish ends the session after its reading stopped with err: it closes
// it, waits for its goroutines and returns the close reason.
func (s *Session) finish(err error) error {
	s.mu.Lock()
	closedLocally := s.closed
	if s.readEnded != nil {
		close(s.readEnded)
		s.readEnded = nil
		closedLocally, err = true, s.lingerReason
	}
	s.mu.Unlock()
	if !closedLocally && !errors.Is(err, io.EOF) && !s.goaway.Load() {
		s.cfg.logger.Warn("msgtrans: closing connection", "session", s.id, "transport", s.scheme, "remote", addrString(s.conn.RemoteAddr()), "err", err)
	}
	switch {
	case s.goaway.Load() && !closedLocally:
		// However the connection ends after the server's go-away (a close,
		// or a reset if the server closed with input unread), it is the
		// shutdown the go-away announced.
		err = ErrGoAway
	case errors.Is(err, io.EOF):
		err = ErrPeerClosed
	}
	s.discard(err)
	return s.Err()
}

// discard closes the session with reason (unless it is closed already) and
// waits until its goroutines have exited and its connection is released.
func (s *Session) discard(reason error) {
	s.closeWith(reason)
	s.wg.Wait()
	if r, ok := s.conn.(Releaser); ok {
		<-r.Released()
	}
}
