package tcp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"sync"

	"github.com/msgtrans/msgtrans-go/runtime"
	"github.com/msgtrans/msgtrans-go/transports/internal/dialer"
	"github.com/msgtrans/msgtrans-go/transports/internal/listen"
)

func init() {
	runtime.RegisterTransport("tcp", Transport{})
	runtime.RegisterTransport("tls", Transport{TLS: true})
}

// Transport carries msgtrans packets over TCP ("tcp://host:port") or TCP
// with TLS ("tls://host:port"), framed by the lengths in each packet's
// header. The zero value is plain TCP.
type Transport struct {
	// TLS selects TLS over TCP.
	TLS bool
}

// Listen implements [runtime.Transport]. Connections take their place
// under the server's caps as they are accepted, before the TLS handshake;
// a plain TCP connection over the caps is told why (a go-away carrying the
// status) and closed, a TLS one closed.
func (t Transport) Listen(ctx context.Context, u *url.URL, cfg *runtime.TransportConfig) (runtime.Listener, error) {
	cfg = cfg.WithDefaults()
	var serverTLS *tls.Config
	refuse := refuseTCP
	if t.TLS {
		var err error
		if serverTLS, err = cfg.ServerTLS(u.Scheme); err != nil {
			return nil, err
		}
		refuse = nil // nothing can be said before the TLS handshake
	}
	nl, err := listen.Listen(ctx, u.Host, cfg, t.TLS, refuse)
	if err != nil {
		return nil, fmt.Errorf("msgtrans: listen %s: %w", u.Redacted(), err)
	}
	l := &listener{nl: nl, cfg: cfg}
	if t.TLS {
		l.tls = serverTLS
		l.ready = make(chan net.Conn)
		l.ctx, l.cancel = context.WithCancel(context.Background())
		l.wg.Add(1)
		go l.acceptTLS()
	}
	return l, nil
}

// refuseTCP tells a plain TCP connection over the caps why it is refused.
func refuseTCP(c *net.TCPConn, why error) { _, _ = c.Write(runtime.AppendRefusal(nil, why)) }

// Dial implements [runtime.Transport].
func (t Transport) Dial(ctx context.Context, u *url.URL, cfg *runtime.TransportConfig) (runtime.Conn, error) {
	cfg = cfg.WithDefaults()
	c, err := dialer.TCP(cfg.LocalIP).DialContext(ctx, "tcp", u.Host)
	if err != nil {
		return nil, fmt.Errorf("msgtrans: dial %s: %w", u.Redacted(), err)
	}
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
	if t.TLS {
		tc := tls.Client(c, cfg.ClientTLS(u))
		if err := tc.HandshakeContext(ctx); err != nil {
			c.Close()
			return nil, fmt.Errorf("msgtrans: tls handshake with %s: %w", u.Host, err)
		}
		c = tc
	}
	return runtime.NewStreamConn(c, cfg.Limits), nil
}

type listener struct {
	nl  *listen.Listener
	cfg *runtime.TransportConfig

	// TLS only: handshakes run off the accepting goroutine.
	tls    *tls.Config
	ready  chan net.Conn
	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// AdmitsConnections implements [runtime.Admitter].
func (l *listener) AdmitsConnections() bool { return true }

func (l *listener) Accept() (runtime.Conn, error) {
	if l.tls == nil {
		c, err := l.nl.Accept()
		if err != nil {
			return nil, err
		}
		return runtime.NewStreamConn(c, l.cfg.Limits), nil
	}
	select {
	case c := <-l.ready:
		return runtime.NewStreamConn(c, l.cfg.Limits), nil
	case <-l.ctx.Done():
		return nil, net.ErrClosed
	}
}

// acceptTLS accepts TCP connections and completes each TLS handshake in a
// goroutine of its own within the handshake timeout.
func (l *listener) acceptTLS() {
	defer l.wg.Done()
	for {
		c, err := l.nl.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				l.cfg.Logger.Error("msgtrans: tls accept failed; listener stopped", "err", err)
			}
			return
		}
		l.wg.Add(1)
		go l.handshake(c)
	}
}

func (l *listener) handshake(c net.Conn) {
	defer l.wg.Done()
	tc := tls.Server(c, l.tls)
	ctx, cancel := context.WithTimeout(l.ctx, l.cfg.HandshakeTimeout)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		l.cfg.Logger.Info("msgtrans: tls handshake failed", "remote", c.RemoteAddr().String(), "err", err)
		if !errors.Is(err, net.ErrClosed) { // closed at the handshake timeout: counted there
			l.cfg.Refuse(runtime.RefuseHandshakeFailed)
		}
		c.Close()
		return
	}
	listen.HandshakeDone(c)
	select {
	case l.ready <- tc:
	case <-l.ctx.Done():
		tc.Close()
	}
}

func (l *listener) Close() error {
	err := l.nl.Close()
	if l.tls != nil {
		l.cancel()
		l.wg.Wait()
	}
	return err
}

func (l *listener) Addr() net.Addr { return l.nl.Addr() }
