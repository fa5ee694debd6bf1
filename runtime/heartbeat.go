package runtime

import (
	"sync/atomic"
	"time"

	"github.com/msgtrans/msgtrans-go/wire"
)

// The default heartbeat: a client pings every 15 s; a peer silent for 45 s
// is taken for dead and its connection closed.
const (
	DefaultHeartbeatInterval = 15 * time.Second
	DefaultHeartbeatTimeout  = 45 * time.Second
)

// pingFloodLimit is how many pings a session may send between two of the
// server's heartbeat ticks (a quarter of the timeout apart) before it is
// closed for flooding. A well-behaved client sends at most one or two.
const pingFloodLimit = 16

// WithHeartbeat sets the heartbeat. Heartbeats are in-band control pings
// (see docs/wire.md), so they work on every transport, WebSocket in
// browsers included. A client pings every interval and closes (then
// reconnects) when it has heard nothing from the server for timeout. A
// server closes a session of a heartbeating client (one that sent a hello)
// that has sent nothing for timeout; peers that never sent a hello, such as
// raw msgtrans peers of other languages, are not timed out. Defaults 15 s
// and 45 s; timeout must exceed interval.
func WithHeartbeat(interval, timeout time.Duration) Option {
	return option{"WithHeartbeat", func(c *config) {
		c.heartbeatInterval, c.heartbeatTimeout = interval, timeout
	}}
}

// clock is a coarse clock, advanced by its owner's heartbeat ticker, so that
// noting when a packet arrived costs an atomic load and store.
type clock struct{ now atomic.Int64 }

func newClock() *clock {
	c := &clock{}
	c.tick()
	return c
}

func (c *clock) tick() int64 {
	n := time.Now().UnixNano()
	c.now.Store(n)
	return n
}

// silentFor reports how long the session has received nothing, at now.
func (s *Session) silentFor(now int64) time.Duration {
	return time.Duration(now - s.lastRecv.Load())
}

// heartbeat runs the server's heartbeat ticker until the server stops:
// it advances the clock, closes sessions of heartbeating clients that went
// silent, and resets the ping-flood counters.
func (s *Server) heartbeat() {
	defer s.acceptWG.Done()
	t := time.NewTicker(s.cfg.heartbeatTimeout / 4)
	defer t.Stop()
	for {
		select {
		case <-s.stopped:
			return
		case <-t.C:
		}
		now := s.clock.tick()
		s.sessions.ForEach(func(_ uint64, sess *Session) bool {
			sess.pings.Store(0)
			if sess.hello.Load() && sess.silentFor(now) > s.cfg.heartbeatTimeout {
				s.cfg.logger.Info("msgtrans: closing silent session", "session", sess.id, "transport", sess.scheme,
					"remote", addrString(sess.conn.RemoteAddr()), "silent", sess.silentFor(now).Round(time.Second))
				sess.closeWith(ErrHeartbeatTimeout)
			}
			return true
		})
	}
}

// heartbeat pings the server every interval over sess until it closes, and
// closes it when the server has been silent for the timeout.
func (c *Client) heartbeat(sess *Session) {
	defer c.wg.Done()
	t := time.NewTicker(c.cfg.heartbeatInterval)
	defer t.Stop()
	for {
		select {
		case <-sess.Done():
			return
		case <-t.C:
		}
		now := c.clock.tick()
		if sess.silentFor(now) > c.cfg.heartbeatTimeout {
			c.cfg.logger.Info("msgtrans: server went silent; reconnecting", "addr", c.Addr())
			sess.closeWith(ErrHeartbeatTimeout)
			return
		}
		_ = sess.Send(controlPacket(wire.ControlPing, nil))
	}
}
