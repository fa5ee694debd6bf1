package runtime

import (
	"errors"
	"net"
	"os"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/msgtrans/msgtrans-go/wire"
)

// DefaultIdleParking is how long a server session's reader waits for the
// next packet before it parks the session (see [WithIdleParking]).
const DefaultIdleParking = 500 * time.Millisecond

// idleParkingEnv names the environment variable that sets idle parking
// for servers not given [WithIdleParking]: "off", or a duration.
const idleParkingEnv = "MSGTRANS_IDLE_PARKING"

// WithIdleParking sets how long a server session's reader waits for the
// next packet before the session is parked: its reader goroutine goes back
// to the server's pool, and one poller per server (epoll, on Linux) waits
// for the socket instead, so that an idle session costs its memory and no
// goroutine stack. When data arrives, or the session is closed, a pooled
// goroutine takes the session up again. A busy session never parks, so
// its packets take exactly the path they take without parking. The wait
// lasts between after/2 and after. Sessions over TCP, TLS and WebSocket
// (ws://; not wss://) park on Linux; other transports and platforms keep a
// goroutine per session. A negative after turns parking off. Default
// 500 ms, or what the environment variable MSGTRANS_IDLE_PARKING says
// ("off", or a duration such as "2s") when this option is not given.
// Heartbeats, deadlines and limits hold for parked sessions as for others:
// a silent peer is still timed out by the server's heartbeat ticker.
func WithIdleParking(after time.Duration) ServerOption {
	return serverOption{"WithIdleParking", func(c *config) { c.idleParking, c.idleParkingSet = after, true }}
}

// idleParkingDefault is the idle parking of a server not given
// WithIdleParking: the environment's, or DefaultIdleParking.
func idleParkingDefault() (time.Duration, error) {
	v := os.Getenv(idleParkingEnv)
	switch v {
	case "":
		return DefaultIdleParking, nil
	case "off", "0":
		return -1, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, errors.New("msgtrans: " + idleParkingEnv + "=" + v + " is neither \"off\" nor a positive duration")
	}
	return d, nil
}

// resolveIdleParking settles a server's idle parking: the option's, else
// the environment's, else the default. It leaves c.idleParking negative
// when parking is off.
func (c *config) resolveIdleParking() error {
	switch {
	case c.idleParkingSet && c.idleParking == 0:
		c.idleParking = DefaultIdleParking
	case !c.idleParkingSet:
		d, err := idleParkingDefault()
		if err != nil {
			return err
		}
		c.idleParking = d
	}
	return nil
}

// Reader states of a session that may park.
const (
	readRunning int32 = iota // a goroutine reads the session (or it ended)
	readParked               // no goroutine: the poller waits for its socket
)

// parking is a server session's part in idle parking. Only the goroutine
// reading the session touches it, but for state, which decides who takes
// up a parked session: the poller when its socket is readable, or
// closeWith, whichever swaps it from readParked first.
type parking struct {
	state     atomic.Int32
	added     bool            // the socket is registered with the poller
	srv       *Server         // nil: the session is read by a goroutine of its own
	rc        syscall.RawConn // the socket to wait on
	resume    func()          // the session's resume, made once
	authTimer *time.Timer     // see Server.beginSession
}

// parkable prepares sess to be parked by srv's poller p, and reports
// whether its connection allows it.
func (sess *Session) parkable(srv *Server, p *poller, after time.Duration) bool {
	ip, ok := sess.conn.(IdleParker)
	if !ok || p == nil {
		return false
	}
	rc, ok := ip.ParkWhenIdle(after)
	if !ok {
		return false
	}
	sess.parking.srv, sess.parking.rc = srv, rc
	sess.parking.resume = sess.resume
	return true
}

// resume reads the session while it has data, on a goroutine of the
// server's pool: it parks the session again once its reader has waited
// long enough, and ends it when its connection fails or closes.
func (s *Session) resume() {
	for {
		err := s.readLoop()
		if errors.Is(err, wire.ErrIdle) && s.park() {
			return
		}
		if errors.Is(err, wire.ErrIdle) {
			continue
		}
		pk := &s.parking
		pk.srv.endSession(s, s.finish(err), pk.authTimer, nil)
		return
	}
}

// park hands the session to the poller, and reports whether it did; when
// it did not, the calling goroutine reads on.
func (s *Session) park() bool {
	pk := &s.parking
	add := !pk.added
	pk.added = true
	pk.state.Store(readParked)
	// From here on the session may be running on another goroutine.
	err := pk.srv.poller.arm(pk.rc, s.id, add)
	if err == nil {
		return true
	}
	if !pk.state.CompareAndSwap(readParked, readRunning) {
		return true // closed meanwhile, and closeWith took it up
	}
	// Closed (the read that follows reports it), or the poller cannot take
	// it: this goroutine keeps reading it, without an idle timeout.
	if ip, ok := s.conn.(IdleParker); ok {
		ip.ParkWhenIdle(0)
	}
	if !errors.Is(err, net.ErrClosed) && !errors.Is(err, os.ErrClosed) {
		s.cfg.logger.Warn("msgtrans: cannot park an idle session; it keeps its reader", "session", s.id, "err", err)
	}
	return false
}

// wake takes up a parked session on a goroutine of the pool: its socket is
// readable, or it has been closed. It does nothing to a session that is
// not parked.
func (s *Session) wake() {
	if s.parking.state.CompareAndSwap(readParked, readRunning) {
		s.work.run(s.parking.resume)
	}
}
