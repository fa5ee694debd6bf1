package runtime

import (
	"context"
	"time"

	"github.com/msgtrans/msgtrans-go/wire"
)

// Push sends p as a OneWay packet to the target: one session, a group's
// members (all, or all but one), a user's sessions, or every session. The
// packet is encoded once (and compressed once, for the peers that accept
// it), and every recipient's queue takes the same bytes; Push never waits
// for a recipient. Sessions not yet authenticated receive nothing.
//
// It returns how many local sessions it was queued to. In a cluster
// ([WithCluster]) the recipients on other nodes get one copy per node,
// at most once, and are not counted, except that a push to one session of
// another node counts 1 once handed to that node.
//
// A session target that is not there fails with CodeNotFound; a group with
// no members reaches nobody and is not an error. When the cluster cannot
// take the remote part, the local part is delivered and the error returned.
func (s *Server) Push(ctx context.Context, to Target, p *wire.Packet) (int, error) {
	return s.push(ctx, to, p, nil)
}

// push is [Server.Push] of p, a packet of the method m (nil: a raw
// packet, reported by its biz_type), through the push interceptors.
func (s *Server) push(ctx context.Context, to Target, p *wire.Packet, m *Method) (int, error) {
	its := s.cfg.pushInterceptors
	if len(its) == 0 {
		return s.pushOnce(ctx, to, p, m)
	}
	next := Pusher(func(ctx context.Context, to Target, p *wire.Packet) (int, error) {
		return s.pushOnce(ctx, to, p, m)
	})
	for i := len(its) - 1; i >= 0; i-- {
		next = its[i](next)
	}
	return next(withCallInfo(ctx, CallInfo{Method: m, BizType: p.BizType, Type: wire.OneWay, Outbound: true}), to, p)
}

// pushOnce encodes p once, with the trace context of ctx if it has one,
// and queues it to the target's local sessions and the cluster.
func (s *Server) pushOnce(ctx context.Context, to Target, p *wire.Packet, m *Method) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, contextError(err)
	}
	p = tracePacket(ctx, p)
	switch to.kind {
	case toNobody:
		return 0, Errorf(CodeInvalidArgument, "push to %s", to)
	case toSession:
		if !s.local(to.id) {
			break
		}
		if _, err := s.session(to.id); err != nil {
			return 0, err
		}
	}
	f, err := s.newFanout(p)
	if err != nil {
		return 0, err
	}
	var n int
	if ob := s.cfg.obs; ob != nil {
		start := time.Now()
		n = s.deliver(to, f)
		if to.kind != toSession {
			ob.o.Broadcast(to.Kind(), n, time.Since(start))
		}
		if h := ob.route(m, p.BizType); h != nil {
			h.Sent()
		}
	} else {
		n = s.deliver(to, f)
	}
	if err := s.publish(to, f); err != nil {
		return n, err
	}
	if to.kind == toSession && !s.local(to.id) {
		n = 1
	}
	return n, nil
}

// deliver queues f to the local recipients of to and returns how many it
// was queued to.
func (s *Server) deliver(to Target, f *fanout) int {
	n := 0
	send := func(sess *Session) {
		if sess.ready.Load() && f.send(sess) == nil {
			n++
		}
	}
	switch to.kind {
	case toSession:
		if sess, ok := s.sessions.Get(to.id); ok {
			send(sess)
		}
	case toGroup, toGroupExcept:
		for _, m := range s.Members(to.name) {
			if to.kind != toGroupExcept || m.id != to.id {
				send(m)
			}
		}
	case toUser:
		for _, sess := range s.users.sessions(to.name) {
			send(sess)
		}
	case toAll:
		s.sessions.ForEach(func(_ uint64, sess *Session) bool {
			send(sess)
			return true
		})
	}
	return n
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
