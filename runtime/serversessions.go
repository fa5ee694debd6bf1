package runtime

import (
	"context"
	"errors"
	"time"

	"github.com/msgtrans/msgtrans-go/wire"
)

// startSession serves a connection Accept returned. admitted says whether
// its listener took its place under the caps already (see [Admitter]); if
// not, it is taken here.
func (s *Server) startSession(c Conn, scheme string, admitted bool) {
	s.mu.Lock()
	if s.shutdown {
		s.mu.Unlock()
		_ = c.Close()
		return
	}
	s.sessWG.Add(1)
	p := s.pollerLocked()
	s.mu.Unlock()
	release := func() {}
	if !admitted {
		r, err := s.admit(scheme, c.RemoteAddr())
		if err != nil {
			go s.refuse(c, err)
			return
		}
		release = r
	}

	sess := newSession(c, scheme, s.cfg, s.policy, &s.mux, &s.ids, s.clock, s.work)
	sess.id = uint64(s.Node())<<sessionIDBits | s.nextSess.Add(1)&(1<<sessionIDBits-1)
	s.sessions.Set(sess.id, sess)
	s.count.Add(1)
	s.cfg.obs.opened(sess)
	// Only a connection its listener admitted parks: it gives its place
	// back itself, so a parked session keeps nothing of this call.
	if admitted && sess.parkable(s, p, s.cfg.idleParking) {
		// Read by the pool's goroutines while it has data, and by none
		// while parked; resume ends it.
		s.work.run(func() {
			s.beginSession(sess, &sess.parking.authTimer)
			sess.resume()
		})
		return
	}
	go func() {
		var authTimer *time.Timer
		s.beginSession(sess, &authTimer)
		reason := sess.run()
		s.endSession(sess, reason, authTimer, release)
	}()
}

// beginSession makes a new session ready, or starts its authentication
// timer (set in *authTimer), on the goroutine that reads it.
func (s *Server) beginSession(sess *Session, authTimer **time.Timer) {
	if sess.policy.authenticate == nil {
		sess.becomeReady("")
	} else {
		*authTimer = sess.authTimer()
	}
}

// endSession forgets a session that has ended with reason; release (nil
// for a connection its listener admitted) gives its place under the caps
// back.
func (s *Server) endSession(sess *Session, reason error, authTimer *time.Timer, release func()) {
	defer s.sessWG.Done()
	if authTimer != nil {
		authTimer.Stop()
	}
	s.cfg.obs.ended(sess, reason)
	s.groups.leaveAll(sess)
	s.users.remove(sess)
	s.sessions.Del(sess.id)
	s.count.Add(-1)
	if release != nil {
		release()
	}
	if sess.ready.Load() {
		s.emit(Event{Kind: ConnectionClosed, Session: sess, Err: reason})
	}
}

// pollerLocked returns the server's poller, made on first use; nil when
// parking is off or unsupported here. s.mu must be held.
func (s *Server) pollerLocked() *poller {
	if s.poller == nil && !s.noPoller && s.cfg.idleParking > 0 {
		p, err := newPoller(s.wakeSession)
		if err != nil {
			if !errors.Is(err, errors.ErrUnsupported) {
				s.cfg.logger.Warn("msgtrans: no poller for idle sessions; each keeps a reader goroutine", "err", err)
			}
			s.noPoller = true
			return nil
		}
		s.poller = p
	}
	return s.poller
}

// wakeSession takes up the parked session with the id, whose socket is
// ready; an id whose session has ended is ignored.
func (s *Server) wakeSession(id uint64) {
	if sess, ok := s.sessions.Get(id); ok {
		sess.wake()
	}
}

// closePoller closes the poller, once no session is left to park.
func (s *Server) closePoller() {
	s.mu.Lock()
	p := s.poller
	s.poller = nil
	s.mu.Unlock()
	if p != nil {
		p.close()
	}
}

// refuse tells a connection over the caps why it is refused (a go-away
// carrying the status, which a msgtrans-go client reports as its close
// reason) and closes it.
func (s *Server) refuse(c Conn, why error) {
	defer s.sessWG.Done()
	p := refusalPacket(why, RefusalRetryAfter)
	p.MessageID = s.nextID()
	if b, err := wire.AppendPacket(nil, p); err == nil && c.SetWriteDeadline(time.Now().Add(time.Second)) == nil {
		_ = c.WritePackets([][]byte{b})
	}
	// Read until the peer closes (a msgtrans-go client does on reading the
	// refusal) or a second passes: closing with unread input would reset
	// the connection and could destroy the refusal before it is read.
	t := time.AfterFunc(time.Second, func() { _ = c.Close() })
	for {
		if _, err := c.ReadPacket(); err != nil {
			break
		}
	}
	t.Stop()
	_ = c.Close()
	if r, ok := c.(Releaser); ok {
		<-r.Released()
	}
}

func (s *Server) emit(e Event) {
	if s.cfg.onEvent != nil {
		s.cfg.onEvent(e)
	}
}

// Session returns the open session with the id.
func (s *Server) Session(id uint64) (*Session, bool) { return s.sessions.Get(id) }

// Sessions returns the open sessions, in no particular order.
func (s *Server) Sessions() []*Session {
	out := make([]*Session, 0, s.count.Load())
	s.sessions.ForEach(func(_ uint64, v *Session) bool {
		out = append(out, v)
		return true
	})
	return out
}

// SessionCount returns the number of open sessions.
func (s *Server) SessionCount() int { return int(s.count.Load()) }

// Send sends p as a OneWay packet to the session with the id: [Server.Push]
// to [ToSession](id).
func (s *Server) Send(id uint64, p *wire.Packet) error {
	_, err := s.Push(context.Background(), ToSession(id), p)
	return err
}

// Request sends p as a Request to the session with the id and waits for the
// response, as [Session.Request] does; a session that is not there fails
// with CodeNotFound.
func (s *Server) Request(ctx context.Context, id uint64, p *wire.Packet) (*wire.Packet, error) {
	if !s.local(id) {
		if _, ok := ctx.Deadline(); !ok {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, s.cfg.requestTimeout)
			defer cancel()
		}
		return s.callRemote(ctx, id, p)
	}
	sess, err := s.session(id)
	if err != nil {
		return nil, err
	}
	return sess.Request(ctx, p)
}

// session returns the open session with the id, or a CodeNotFound error.
func (s *Server) session(id uint64) (*Session, error) {
	if sess, ok := s.sessions.Get(id); ok && sess.ready.Load() {
		return sess, nil
	}
	return nil, Errorf(CodeNotFound, "no session %d", id)
}

// CloseSession closes the session with the id. It reports whether there was
// such a session.
func (s *Server) CloseSession(id uint64) bool {
	sess, ok := s.sessions.Get(id)
	if ok {
		_ = sess.Close()
	}
	return ok
}

func (s *Server) nextID() uint32 {
	for {
		if id := s.ids.Add(1); id != 0 {
			return id
		}
	}
}
