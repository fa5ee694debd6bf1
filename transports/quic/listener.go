package quic

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"

	quicgo "github.com/quic-go/quic-go"

	"github.com/msgtrans/msgtrans-go/runtime"
)

// listener accepts QUIC connections and, for each, waits off the accepting
// goroutine for the dialer's stream.
type listener struct {
	cfg *runtime.TransportConfig
	udp *net.UDPConn
	tr  *quicgo.Transport
	ql  *quicgo.Listener

	ready      chan *conn      // connections whose stream has arrived
	acceptDone chan struct{}   // closed when every acceptLoop has returned
	acceptErr  error           // why the first acceptLoop returned; read after acceptDone
	errOnce    sync.Once       // sets acceptErr
	ctx        context.Context // cancelled by Close
	cancel     context.CancelFunc
	wg         sync.WaitGroup // acceptLoop and awaitStream goroutines

	closeOnce sync.Once
	closeErr  error

	mu     sync.Mutex
	live   int  // connections created by awaitStream and not yet closed
	closed bool // Close has finished waiting for the goroutines

	releaseOnce sync.Once // closes tr and udp

	handshaking atomic.Int64 // connections admitted whose stream has not arrived
}

// handshakeKey is the context key under which admit leaves a connection's
// admission, for awaitStream to find.
type handshakeKey struct{}

// admission is a QUIC connection's place under the server's caps, taken by
// admit at the peer's first packet.
type admission struct {
	shaking atomic.Bool // counted in listener.handshaking
}

// admit is quic-go's ConnContext: it runs when a peer's first packet
// arrives, before the handshake. A connection over the server's caps, or
// beyond the handshakes this listener lets run at once, is refused there
// (quic-go answers CONNECTION_REFUSED); an admitted one gives its place
// back when it ends, however it ends (quic-go cancels ctx then).
func (l *listener) admit(ctx context.Context, info *quicgo.ClientInfo) (context.Context, error) {
	if l.handshaking.Load() >= int64(l.cfg.MaxHandshakes) {
		l.cfg.Refuse(runtime.RefuseMaxHandshakes)
		return nil, fmt.Errorf("msgtrans: over %d quic handshakes in progress", l.cfg.MaxHandshakes)
	}
	release := func() {}
	if l.cfg.Admit != nil {
		r, err := l.cfg.Admit(info.RemoteAddr)
		if err != nil {
			return nil, err
		}
		release = r
	}
	a := &admission{}
	a.shaking.Store(true)
	l.handshaking.Add(1)
	context.AfterFunc(ctx, func() {
		l.handshakeDone(a)
		release()
	})
	return context.WithValue(ctx, handshakeKey{}, a), nil
}

// handshakeDone takes a connection out of the handshakes in progress.
func (l *listener) handshakeDone(a *admission) {
	if a != nil && a.shaking.CompareAndSwap(true, false) {
		l.handshaking.Add(-1)
	}
}

// underLoad is quic-go's VerifySourceAddress: once a quarter of the
// handshakes allowed at once are in progress, new peers must prove their
// address with a Retry round trip before the server does any work for
// them, which a peer spoofing addresses cannot.
func (l *listener) underLoad(net.Addr) bool {
	return l.handshaking.Load() >= int64(l.cfg.MaxHandshakes)/4
}

// AdmitsConnections implements [runtime.Admitter].
func (l *listener) AdmitsConnections() bool { return true }

// Accept implements [runtime.Listener].
func (l *listener) Accept() (runtime.Conn, error) {
	select {
	case c := <-l.ready:
		return c, nil
	case <-l.ctx.Done():
		return nil, fmt.Errorf("msgtrans: quic listener closed: %w", net.ErrClosed)
	case <-l.acceptDone:
		return nil, l.acceptErr
	}
}

// acceptLoops is how many goroutines take connections from quic-go. quic-go
// queues at most 32 connections whose handshake has completed and refuses
// further ones; when a burst of handshakes completes, several takers keep
// that queue drained where one, waiting its turn to be scheduled, would let
// it fill (with 100 handshakes at a time, one taker let 3-32 of 761 be
// refused; four, none in most runs).
const acceptLoops = 4

func (l *listener) setAcceptErr(err error) { l.errOnce.Do(func() { l.acceptErr = err }) }

// acceptLoop accepts QUIC connections (their handshake done) and waits for
// each one's stream in a goroutine of its own.
func (l *listener) acceptLoop() {
	defer l.wg.Done()
	for {
		qc, err := l.ql.Accept(l.ctx)
		if err != nil {
			if l.ctx.Err() != nil {
				l.setAcceptErr(fmt.Errorf("msgtrans: quic listener closed: %w", net.ErrClosed))
			} else {
				// quic-go's Accept fails only once its listener or
				// transport is gone (for example, the UDP socket failed).
				l.setAcceptErr(fmt.Errorf("msgtrans: quic accept: %w", err))
				l.cfg.Logger.Error("msgtrans: quic accept failed", "err", err)
			}
			return
		}
		l.wg.Add(1)
		go l.awaitStream(qc)
	}
}

// awaitStream waits within the handshake timeout for the dialer's stream,
// then hands the connection to Accept.
func (l *listener) awaitStream(qc *quicgo.Conn) {
	defer l.wg.Done()
	ctx, cancel := context.WithTimeout(l.ctx, l.cfg.HandshakeTimeout)
	s, err := qc.AcceptStream(ctx)
	cancel()
	if err != nil {
		if l.ctx.Err() != nil {
			_ = qc.CloseWithError(codeListenerClosed, "msgtrans: listener closed")
			return
		}
		l.cfg.Logger.Info("msgtrans: quic peer opened no stream", "remote", qc.RemoteAddr().String(), "err", err)
		if errors.Is(err, context.DeadlineExceeded) {
			l.cfg.Refuse(runtime.RefuseHandshakeTimeout)
		} else {
			l.cfg.Refuse(runtime.RefuseHandshakeFailed)
		}
		_ = qc.CloseWithError(codeNoStream, "msgtrans: no stream within the handshake timeout")
		return
	}
	a, _ := qc.Context().Value(handshakeKey{}).(*admission)
	l.handshakeDone(a)
	l.mu.Lock()
	l.live++
	l.mu.Unlock()
	c := newConn(qc, s, l.cfg, l.release)
	select {
	case l.ready <- c:
	case <-l.ctx.Done():
		c.abort(codeListenerClosed, "msgtrans: listener closed")
	}
}

// release is called once for each closed connection of the listener; the
// last one after Close closes the UDP socket.
func (l *listener) release() {
	l.mu.Lock()
	l.live--
	idle := l.closed && l.live == 0
	l.mu.Unlock()
	if idle {
		l.closeTransport()
	}
}

func (l *listener) closeTransport() {
	l.releaseOnce.Do(func() {
		_ = l.tr.Close()
		_ = l.udp.Close()
	})
}

// Close implements [runtime.Listener]. It stops accepting, closes
// connections whose stream has not arrived and waits for the listener's
// goroutines. Connections returned by Accept stay open; the UDP socket closes
// with the last of them (at once when there are none).
func (l *listener) Close() error {
	l.closeOnce.Do(func() {
		l.cancel()
		l.closeErr = l.ql.Close()
		l.wg.Wait()
		// quic-go's Accept now returns, without blocking, the connections
		// that finished their handshake but were never accepted.
		for {
			qc, err := l.ql.Accept(context.Background())
			if err != nil {
				break
			}
			_ = qc.CloseWithError(codeListenerClosed, "msgtrans: listener closed")
		}
		l.mu.Lock()
		l.closed = true
		idle := l.live == 0
		l.mu.Unlock()
		if idle {
			l.closeTransport()
		}
	})
	return l.closeErr
}

// Addr implements [runtime.Listener].
func (l *listener) Addr() net.Addr { return l.udp.LocalAddr() }
