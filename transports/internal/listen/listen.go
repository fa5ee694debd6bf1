// Package listen accepts TCP connections for the transports built on TCP
// (tcp, tls, ws, wss) under a server's admission rules, before any
// handshake: each connection takes its place under the server's caps as
// it appears ([runtime.TransportConfig.Admit]) and gives it back when it is
// closed; over the caps, or with too many handshakes in progress, it is
// refused at once; and accept errors that pass with time (out of file
// descriptors, say) are retried with a growing delay, shedding one waiting
// connection with a descriptor held in reserve so that the backlog keeps
// moving.
package listen

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/msgtrans/msgtrans-go/runtime"
)

// Refuser writes what the protocol allows a refused connection to be told
// before its handshake (a msgtrans go-away on plain TCP, an HTTP 503 on
// plain WebSocket), and nothing where a handshake must come first (TLS).
// It must not block for long: the connection has a short write deadline.
type Refuser func(c *net.TCPConn, why error)

// Listener is a net.Listener whose Accept returns only admitted connections,
// as [*Conn].
type Listener struct {
	tl        *net.TCPListener
	cfg       *runtime.TransportConfig
	refuse    Refuser
	handshake bool // connections have a handshake to time and count

	handshaking atomic.Int64 // connections admitted whose handshake has not ended
	lingering   atomic.Int64 // refused connections waiting to close

	reserveMu sync.Mutex
	reserve   *os.File // a descriptor held back for shedding; nil while used

	done      chan struct{}
	closeOnce sync.Once
}

// maxLingering bounds the refused connections that wait a moment before
// closing (so the refusal is read rather than reset); beyond it, refused
// connections close at once.
const maxLingering = 256

// refusalLinger is how long a refused connection waits to close.
const refusalLinger = 250 * time.Millisecond

// Listen listens on the TCP address. handshake says whether connections
// have a transport handshake (TLS, WebSocket upgrade) after accept: those
// count toward cfg.MaxHandshakes until [Conn.HandshakeDone] or Close, and
// are closed when it has not ended within cfg.HandshakeTimeout of accept,
// however the peer spends that time. refuse may be nil. cfg must have its
// defaults applied.
func Listen(ctx context.Context, addr string, cfg *runtime.TransportConfig, handshake bool, refuse Refuser) (*Listener, error) {
	var lc net.ListenConfig
	nl, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	l := &Listener{tl: nl.(*net.TCPListener), cfg: cfg, refuse: refuse, handshake: handshake, done: make(chan struct{})}
	l.reserve, _ = os.Open(os.DevNull) // best effort: without it, no shedding
	return l, nil
}

// Accept returns the next admitted connection. It returns an error only
// once the listener is closed, or on an accept error that does not pass
// with time.
func (l *Listener) Accept() (net.Conn, error) {
	var retry time.Duration
	for {
		c, err := l.tl.AcceptTCP()
		if err != nil {
			if errors.Is(err, net.ErrClosed) || !runtime.TemporaryAcceptError(err) {
				return nil, err
			}
			if errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
				l.shed()
			}
			retry = runtime.AcceptRetryDelay(retry)
			l.cfg.Logger.Debug("msgtrans: accept failed; retrying", "err", err, "retry_in", retry)
			t := time.NewTimer(retry)
			select {
			case <-l.done:
				t.Stop()
				return nil, fmt.Errorf("msgtrans: accept: %w", net.ErrClosed)
			case <-t.C:
			}
			continue
		}
		retry = 0
		if conn := l.admit(c); conn != nil {
			return conn, nil
		}
	}
}

// admit returns c as an admitted connection, or refuses it and returns nil.
func (l *Listener) admit(c *net.TCPConn) *Conn {
	_ = c.SetNoDelay(true)
	if l.handshake && l.handshaking.Load() >= int64(l.cfg.MaxHandshakes) {
		l.cfg.Refuse(runtime.RefuseMaxHandshakes)
		l.refuseConn(c, runtime.Errorf(runtime.CodeResourceExhausted, "over %d handshakes in progress", l.cfg.MaxHandshakes))
		return nil
	}
	conn := &Conn{TCPConn: c, l: l}
	if l.cfg.Admit != nil {
		release, err := l.cfg.Admit(c.RemoteAddr())
		if err != nil {
			l.refuseConn(c, err)
			return nil
		}
		conn.release = release
	}
	if l.handshake {
		l.handshaking.Add(1)
		conn.shaking.Store(true)
		conn.deadline = time.Now().Add(l.cfg.HandshakeTimeout)
		conn.timer = time.AfterFunc(l.cfg.HandshakeTimeout, conn.handshakeExpired)
	}
	return conn
}

// refuseConn tells c why it is refused, where the protocol allows, and
// closes it: a moment later when few others wait so, since closing with the
// peer's first bytes unread would reset the connection, and a reset can
// destroy the refusal before the peer reads it.
func (l *Listener) refuseConn(c *net.TCPConn, why error) {
	if l.refuse == nil {
		_ = c.Close()
		return
	}
	_ = c.SetWriteDeadline(time.Now().Add(refusalLinger))
	l.refuse(c, why)
	_ = c.CloseWrite()
	if l.lingering.Load() >= maxLingering {
		_ = c.Close()
		return
	}
	l.lingering.Add(1)
	time.AfterFunc(refusalLinger, func() {
		_ = c.Close()
		l.lingering.Add(-1)
	})
}

// errShed is why a connection shed for want of descriptors is refused.
var errShed = runtime.Errorf(runtime.CodeResourceExhausted, "server out of file descriptors; retry later")

// shedWait bounds the time shed spends telling one peer no: the accept
// loop waits meanwhile, and the descriptor is needed back.
const shedWait = 20 * time.Millisecond

// shed uses the reserved descriptor to accept one waiting connection and
// close it at once, then reserves a descriptor again: with the process out
// of descriptors, peers are told no promptly instead of waiting in the
// backlog. Where the protocol allows it the peer is told why first (a
// go-away on plain TCP, a 503 on plain WebSocket), and what it sent is read
// and dropped, so that the close is an orderly one rather than a reset that
// could destroy the refusal; elsewhere (TLS) the connection is reset.
func (l *Listener) shed() {
	l.reserveMu.Lock()
	defer l.reserveMu.Unlock()
	if l.reserve == nil {
		return
	}
	_ = l.reserve.Close()
	l.reserve = nil
	_ = l.tl.SetDeadline(time.Now().Add(time.Millisecond))
	if c, err := l.tl.AcceptTCP(); err == nil {
		if l.refuse == nil {
			_ = c.SetLinger(0)
		} else {
			deadline := time.Now().Add(shedWait)
			_ = c.SetDeadline(deadline)
			l.refuse(c, errShed)
			_ = c.CloseWrite()
			var buf [512]byte
			for {
				if _, err := c.Read(buf[:]); err != nil {
					break
				}
			}
		}
		_ = c.Close()
	}
	_ = l.tl.SetDeadline(time.Time{})
	l.reserve, _ = os.Open(os.DevNull)
}

// Close stops listening. Connections already accepted stay open.
func (l *Listener) Close() error {
	var err error
	l.closeOnce.Do(func() {
		close(l.done)
		err = l.tl.Close()
		l.reserveMu.Lock()
		if l.reserve != nil {
			_ = l.reserve.Close()
			l.reserve = nil
		}
		l.reserveMu.Unlock()
	})
	return err
}

// Addr returns the listening address.
func (l *Listener) Addr() net.Addr { return l.tl.Addr() }

// Conn is an admitted connection: closing it gives its place under the
// server's caps back.
type Conn struct {
	*net.TCPConn
	l       *Listener
	release func()
	shaking atomic.Bool // counted in l.handshaking
	timer   *time.Timer // closes the connection when the handshake takes too long
	// deadline is when the handshake times out; timedOut is set once the
	// timeout is reported (by the timer, or by a close at the deadline
	// from whatever else timed the handshake, such as an http.Server).
	deadline time.Time
	timedOut atomic.Bool
	once     sync.Once
}

// HandshakeDone ends the connection's handshake: it no longer counts toward
// the handshakes in progress, nor is it closed at the handshake timeout.
func (c *Conn) HandshakeDone() {
	if c.shaking.CompareAndSwap(true, false) {
		c.timer.Stop()
		c.timer = nil // an idle connection keeps none of it
		c.l.handshaking.Add(-1)
	}
}

func (c *Conn) handshakeExpired() {
	if c.shaking.Load() {
		c.l.cfg.Logger.Debug("msgtrans: handshake timed out", "remote", c.RemoteAddr().String(), "timeout", c.l.cfg.HandshakeTimeout)
		c.reportTimeout()
		_ = c.Close()
	}
}

// reportTimeout reports the handshake's timeout, once.
func (c *Conn) reportTimeout() {
	if !c.timedOut.Swap(true) {
		c.l.cfg.Refuse(runtime.RefuseHandshakeTimeout)
	}
}

// Close closes the connection and gives its place back.
func (c *Conn) Close() error {
	if c.shaking.Load() && !time.Now().Before(c.deadline) {
		c.reportTimeout() // closed at the deadline by another timer
	}
	err := c.TCPConn.Close()
	c.once.Do(func() {
		c.HandshakeDone()
		if c.release != nil {
			c.release()
		}
	})
	return err
}

// HandshakeDone ends the handshake of c, an admitted connection or a TLS
// connection over one; other connections are left alone.
func HandshakeDone(c net.Conn) {
	for c != nil {
		switch cc := c.(type) {
		case *Conn:
			cc.HandshakeDone()
			return
		case interface{ NetConn() net.Conn }:
			c = cc.NetConn()
		default:
			return
		}
	}
}
