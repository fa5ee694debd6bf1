package runtime

import (
	"context"

	"github.com/msgtrans/msgtrans-go/wire"
)

// Push sends p as a OneWay packet to the target: one session, a group's
// members (all, or all but one) or every session. The packet is encoded
// once (and compressed once, for the peers that accept it), and every
// recipient's queue takes the same bytes; Push never waits for a
// recipient. It returns how many sessions it was queued to. A session
// target that is not there fails with CodeNotFound; a group with no
// members reaches nobody and is not an error. Sessions not yet
// authenticated receive nothing.
func (s *Server) Push(ctx context.Context, to Target, p *wire.Packet) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, contextError(err)
	}
	if to.kind == toSession {
		sess, err := s.session(to.id)
		if err != nil {
			return 0, err
		}
		f, err := s.newFanout(p)
		if err != nil {
			return 0, err
		}
		if err := f.send(sess); err != nil {
			return 0, err
		}
		return 1, nil
	}
	var members []*Session
	switch to.kind {
	case toGroup, toGroupExcept:
		if members = s.Members(to.name); len(members) == 0 {
			return 0, nil
		}
	case toAll:
	default:
		return 0, Errorf(CodeInvalidArgument, "push to %s", to)
	}
	f, err := s.newFanout(p)
	if err != nil {
		return 0, err
	}
	n := 0
	if to.kind == toAll {
		s.sessions.ForEach(func(_ uint64, sess *Session) bool {
			if sess.ready.Load() && f.send(sess) == nil {
				n++
			}
			return true
		})
		return n, nil
	}
	for _, m := range members {
		if (to.kind != toGroupExcept || m.id != to.id) && f.send(m) == nil {
			n++
		}
	}
	return n, nil
}

// Broadcast sends p as a OneWay packet to every open session. The packet is
// encoded once and every session queues the same bytes. It returns the
// number of sessions it was queued to.
func (s *Server) Broadcast(p *wire.Packet) (int, error) {
	f, err := s.newFanout(p)
	if err != nil {
		return 0, err
	}
	n := 0
	s.sessions.ForEach(func(_ uint64, sess *Session) bool {
		if sess.ready.Load() && f.send(sess) == nil {
			n++
		}
		return true
	})
	return n, nil
}

// fanout is one packet encoded once for many sessions: plain, and
// compressed for the sessions that accept it when compression is on.
type fanout struct {
	plain      []byte
	compressed []byte
	bit        uint32
}

func (s *Server) newFanout(p *wire.Packet) (*fanout, error) {
	if err := checkSend(s.cfg.limits, len(p.Ext), len(p.Payload)); err != nil {
		return nil, err
	}
	q := *p
	q.Type, q.MessageID = wire.OneWay, s.nextID()
	plain, err := wire.AppendPacket(make([]byte, 0, q.EncodedLen()), &q)
	if err != nil {
		return nil, err
	}
	f := &fanout{plain: plain}
	if c := s.cfg.compressor; c.Algorithm != wire.CompressionNone {
		if cq := c.Compress(&q); cq != &q {
			f.compressed, _ = wire.AppendPacket(make([]byte, 0, cq.EncodedLen()), cq)
			f.bit = 1 << c.Algorithm
		}
	}
	return f, nil
}

func (f *fanout) send(sess *Session) error {
	if f.compressed != nil && sess.peerComp.Load()&f.bit != 0 {
		return sess.enqueue(f.compressed)
	}
	return sess.enqueue(f.plain)
}
