package runtime

import (
	"errors"
	"io"

	"github.com/msgtrans/msgtrans-go/wire"
)

// maxHeld bounds the packets the read goroutine reads ahead while it waits
// for a free request slot (see takeSlot).
const maxHeld = 16

// takeSlot takes one of the session's request slots, waiting while all are
// in use. Meanwhile it keeps reading the connection, holding what arrives
// (up to maxHeld packets and the largest packet's size in bytes), so that
// a peer that goes away is noticed at once and its handlers cancelled,
// rather than at their deadlines. It reports false once the session is
// closing.
func (s *Session) takeSlot() bool {
	if s.inflight == nil { // made on first use: idle sessions hold none
		s.inflight = make(chan struct{}, s.cfg.maxInFlight)
	}
	select {
	case s.inflight <- struct{}{}:
		return true
	default:
	}
	r := &s.ahead
	for {
		if !r.busy && r.err == nil && len(r.held) < maxHeld && r.heldBytes < s.cfg.limits.MaxPacketSize() {
			r.busy = true
			if r.ch == nil { // made once, when first needed
				r.ch = make(chan readResult, 1)
				r.read = func() {
					defer s.wg.Done()
					p, err := s.conn.ReadPacket()
					r.ch <- readResult{p, err}
				}
			}
			s.wg.Add(1)
			s.work.run(r.read)
		}
		var next chan readResult
		if r.busy {
			next = r.ch
		}
		select {
		case s.inflight <- struct{}{}:
			return true
		case res := <-next:
			r.busy = false
			if errors.Is(res.err, wire.ErrIdle) {
				continue // nothing arrived for a while: read again
			}
			if res.err != nil {
				// The peer is gone (or broke the protocol): cancel its
				// handlers now. The read loop reports why once it has
				// had what was held.
				r.err = res.err
				s.closeWith(readFailure(res.err))
				return false
			}
			r.held = append(r.held, res.p)
			r.heldBytes += wire.HeaderSize + len(res.p.Ext) + len(res.p.Payload)
		case <-s.ctx.Done():
			return false
		}
	}
}

// readAhead is what the read goroutine read while waiting for a request
// slot, for the read loop to take before reading again.
type readAhead struct {
	ch        chan readResult // the read in progress, when busy
	read      func()          // reads one packet into ch, on the work pool
	busy      bool
	held      []wire.Packet
	heldBytes int
	err       error // the read that ended the connection
}

type readResult struct {
	p   wire.Packet
	err error
}

// next reads the session's next packet into *p: one read ahead, or the
// result of the read in progress, or a new read. A one-way packet may be
// lent by the connection (see [PacketLender]): valid until the next call.
func (s *Session) next(p *wire.Packet) error {
	r := &s.ahead
	switch {
	case r.err != nil:
		// The peer went away while requests waited: what it sent last
		// would only reach handlers of a closed session.
		r.held = nil
		return r.err
	case len(r.held) > 0:
		*p = r.held[0]
		r.held[0] = wire.Packet{}
		r.held = r.held[1:]
		r.heldBytes -= wire.HeaderSize + len(p.Ext) + len(p.Payload)
		if len(r.held) == 0 {
			r.held = nil
		}
		return nil
	case r.busy:
		res := <-r.ch
		r.busy = false
		*p = res.p
		return res.err
	}
	if l, ok := s.conn.(PacketLender); ok {
		if err := l.LendPacketInto(p); err != nil {
			return err
		}
		if p.Type != wire.OneWay {
			// Requests go to goroutines of their own, responses to the
			// callers waiting for them: only one-way packets are
			// handled (or copied) before the next read.
			p.Detach()
		}
		return nil
	}
	if ir, ok := s.conn.(PacketIntoReader); ok {
		return ir.ReadPacketInto(p)
	}
	var err error
	*p, err = s.conn.ReadPacket()
	return err
}

// readFailure is the close reason for a failed read.
func readFailure(err error) error {
	if errors.Is(err, io.EOF) {
		return ErrPeerClosed
	}
	return err
}
