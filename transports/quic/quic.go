package quic

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	quicgo "github.com/quic-go/quic-go"

	"github.com/msgtrans/msgtrans-go/runtime"
	"github.com/msgtrans/msgtrans-go/wire"
)

func init() { runtime.RegisterTransport("quic", Transport{}) }

// ALPN is the TLS application protocol both ends of a msgtrans QUIC
// connection negotiate.
const ALPN = "msgtrans"

// MaxFrame is the largest length prefix the QUIC framing allows: 16 MiB. A
// receiver's [wire.Limits] may allow less.
const MaxFrame = 16 << 20

const (
	maxIdleTimeout  = 60 * time.Second
	keepAlivePeriod = 15 * time.Second
	// closeLinger bounds how long a closed connection waits for the peer to
	// read up to its FIN before the connection is closed anyway.
	closeLinger = time.Second
)

// The QUIC application error codes this transport closes connections with.
const (
	codeNoError        quicgo.ApplicationErrorCode = 0x0
	codeNoStream       quicgo.ApplicationErrorCode = 0x1 // no stream within the handshake timeout
	codeListenerClosed quicgo.ApplicationErrorCode = 0x2 // listener closed before the stream arrived
)

// Transport carries msgtrans packets over QUIC ("quic://host:port"): one
// bidirectional stream per connection, each packet prefixed by its u32
// big-endian length (see the package documentation). The zero value is ready
// to use; it is safe for concurrent use.
type Transport struct{}

// Listen implements [runtime.Transport]. It needs a certificate in cfg.TLS.
// All connections of the listener share one UDP socket bound to u.Host.
func (Transport) Listen(_ context.Context, u *url.URL, cfg *runtime.TransportConfig) (runtime.Listener, error) {
	cfg = cfg.WithDefaults()
	base, err := cfg.ServerTLS(u.Scheme)
	if err != nil {
		return nil, err
	}
	laddr, err := net.ResolveUDPAddr("udp", u.Host)
	if err != nil {
		return nil, fmt.Errorf("msgtrans: listen %s: %w", u.Redacted(), err)
	}
	udp, err := net.ListenUDP("udp", laddr)
	if err != nil {
		return nil, fmt.Errorf("msgtrans: listen %s: %w", u.Redacted(), err)
	}
	// The listener owns the quic-go Transport (rather than using
	// quic.ListenAddr) so that it decides when the socket closes: not while
	// accepted connections are open, and at once when none are.
	l := &listener{
		cfg:        cfg,
		udp:        udp,
		ready:      make(chan *conn),
		acceptDone: make(chan struct{}),
	}
	tr := &quicgo.Transport{
		Conn:              udp,
		StatelessResetKey: resetKey(base),
		// Admission happens at a peer's first packet, before the
		// handshake: see admit.
		ConnContext:         l.admit,
		VerifySourceAddress: l.underLoad,
	}
	l.tr = tr
	ql, err := tr.Listen(serverTLS(base), quicConfig(cfg, 1))
	if err != nil {
		_ = tr.Close()
		_ = udp.Close()
		return nil, fmt.Errorf("msgtrans: listen %s: %w", u.Redacted(), err)
	}
	l.ql = ql
	l.ctx, l.cancel = context.WithCancel(context.Background())
	var acceptors sync.WaitGroup
	for range acceptLoops {
		l.wg.Add(1)
		acceptors.Add(1)
		go func() {
			defer acceptors.Done()
			l.acceptLoop()
		}()
	}
	go func() {
		acceptors.Wait()
		close(l.acceptDone)
	}()
	return l, nil
}

// Dial implements [runtime.Transport]. The server is verified against
// cfg.TLS.RootCAs (the system roots when nil) under cfg.TLS.ServerName,
// which defaults to the host of u. The connection uses a UDP socket of its
// own, closed with it.
func (Transport) Dial(ctx context.Context, u *url.URL, cfg *runtime.TransportConfig) (runtime.Conn, error) {
	cfg = cfg.WithDefaults()
	raddr, err := resolveUDP(ctx, u.Host)
	if err != nil {
		return nil, fmt.Errorf("msgtrans: dial %s: %w", u.Redacted(), err)
	}
	network := "udp4"
	if raddr.IP.To4() == nil {
		network = "udp6"
	}
	udp, err := net.ListenUDP(network, nil)
	if err != nil {
		return nil, fmt.Errorf("msgtrans: dial %s: %w", u.Redacted(), err)
	}
	tr := &quicgo.Transport{Conn: udp}
	release := func() {
		_ = tr.Close()
		_ = udp.Close()
	}
	qc, err := tr.Dial(ctx, raddr, clientTLS(cfg, u), quicConfig(cfg, -1))
	if err != nil {
		release()
		return nil, fmt.Errorf("msgtrans: dial %s: %w", u.Redacted(), err)
	}
	s, err := qc.OpenStreamSync(ctx)
	if err != nil {
		_ = qc.CloseWithError(codeNoError, "")
		release()
		return nil, fmt.Errorf("msgtrans: dial %s: open stream: %w", u.Redacted(), err)
	}
	return newConn(qc, s, cfg, release), nil
}

// resetKey returns the key quic-go derives stateless reset tokens from. A
// server started again with the same certificate derives the same key, so
// it answers the packets of its previous life's connections with a stateless
// reset (RFC 9000, section 10.3) and their clients reconnect at once instead
// of waiting out their heartbeat or idle timeout. The key is an HMAC of the
// certificate's private key, which it reveals nothing of; without a static
// certificate it is random, which still resets connections this process
// does not know.
func resetKey(c *tls.Config) *quicgo.StatelessResetKey {
	var k quicgo.StatelessResetKey
	if len(c.Certificates) > 0 && c.Certificates[0].PrivateKey != nil {
		if der, err := x509.MarshalPKCS8PrivateKey(c.Certificates[0].PrivateKey); err == nil {
			mac := hmac.New(sha256.New, der)
			mac.Write([]byte("msgtrans quic stateless reset key"))
			copy(k[:], mac.Sum(nil))
			return &k
		}
	}
	_, _ = rand.Read(k[:])
	return &k
}

// quicConfig returns the quic-go configuration for one side. The peer may
// open up to streams bidirectional streams (none when negative) and no
// unidirectional ones.
func quicConfig(cfg *runtime.TransportConfig, streams int64) *quicgo.Config {
	return &quicgo.Config{
		HandshakeIdleTimeout:  cfg.HandshakeTimeout,
		MaxIdleTimeout:        maxIdleTimeout,
		KeepAlivePeriod:       keepAlivePeriod,
		MaxIncomingStreams:    streams,
		MaxIncomingUniStreams: -1,
	}
}

// serverTLS returns a clone of base that offers only [ALPN], also in the
// configurations its GetConfigForClient returns.
func serverTLS(base *tls.Config) *tls.Config {
	c := base.Clone()
	c.NextProtos = []string{ALPN}
	if get := c.GetConfigForClient; get != nil {
		c.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
			cc, err := get(hello)
			if cc == nil || err != nil {
				return cc, err
			}
			cc = cc.Clone()
			cc.NextProtos = []string{ALPN}
			return cc, nil
		}
	}
	return c
}

// clientTLS returns the client TLS configuration for u, offering [ALPN].
func clientTLS(cfg *runtime.TransportConfig, u *url.URL) *tls.Config {
	c := cfg.ClientTLS(u)
	c.NextProtos = []string{ALPN}
	return c
}

// resolveUDP resolves hostport within ctx, preferring the first address the
// resolver returns.
func resolveUDP(ctx context.Context, hostport string) (*net.UDPAddr, error) {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return nil, err
	}
	if host == "" {
		host = "localhost"
	}
	pn, err := net.DefaultResolver.LookupPort(ctx, "udp", port)
	if err != nil {
		return nil, err
	}
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return nil, err
	}
	if len(ips) == 0 {
		return nil, fmt.Errorf("msgtrans: no address for %q", host)
	}
	return net.UDPAddrFromAddrPort(netip.AddrPortFrom(ips[0].Unmap(), uint16(pn))), nil
}

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

// conn is a [runtime.Conn] over the single stream of a QUIC connection.
type conn struct {
	qc      *quicgo.Conn
	s       *quicgo.Stream
	dec     *wire.Decoder
	onClose func() // releases the UDP socket, or the listener's hold on it

	// closing is set by Close; reads and writes then fail.
	closing atomic.Bool
	// peerDone is set once the reader has seen the peer end the stream or
	// the connection.
	peerDone atomic.Bool
	// readFailed is set once a read failed other than at a clean end.
	readFailed atomic.Bool

	wmu     sync.Mutex // held by WritePackets, tried by Close
	wbroken bool       // a write failed: the stream may end inside a packet

	closeOnce  sync.Once
	finishOnce sync.Once
	lingerMu   sync.Mutex
	linger     *time.Timer
	released   chan struct{} // closed when finish is done
}

func newConn(qc *quicgo.Conn, s *quicgo.Stream, cfg *runtime.TransportConfig, onClose func()) *conn {
	c := &conn{qc: qc, s: s, onClose: onClose, released: make(chan struct{})}
	c.dec = wire.NewFramedDecoder(streamReader{c}, cfg.Limits, MaxFrame)

	return c
}

// SetLimits implements [runtime.LimitSetter].
func (c *conn) SetLimits(lim wire.Limits) { c.dec.SetLimits(lim) }

// ReadPacket implements [runtime.Conn].
func (c *conn) ReadPacket() (wire.Packet, error) {
	p, err := c.dec.Next()
	if err != nil && !errors.Is(err, io.EOF) {
		// After bad input there is nothing worth lingering for.
		c.readFailed.Store(true)
	}
	return p, err
}

// WritePackets implements [runtime.Conn]. Each packet is prefixed with its
// length; the batch is gathered into as few stream writes as possible. A
// packet longer than [MaxFrame] fails the whole batch before anything is
// written.
func (c *conn) WritePackets(pkts [][]byte) error {
	for _, p := range pkts {
		if len(p) > MaxFrame {
			return fmt.Errorf("%w: packet of %d bytes exceeds the quic frame maximum of %d", wire.ErrTooLarge, len(p), MaxFrame)
		}
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.closing.Load() {
		return fmt.Errorf("msgtrans: quic write: %w", net.ErrClosed)
	}
	if err := runtime.GatherWrite(c.s, pkts, appendPrefix); err != nil {
		c.wbroken = true
		return fmt.Errorf("msgtrans: quic write: %w", err)
	}
	return nil
}

// appendPrefix appends the length prefix of pkt to dst.
func appendPrefix(dst, pkt []byte) []byte {
	return binary.BigEndian.AppendUint32(dst, uint32(len(pkt)))
}

// SetWriteDeadline implements [runtime.Conn].
func (c *conn) SetWriteDeadline(t time.Time) error { return c.s.SetWriteDeadline(t) }

// Close implements [runtime.Conn]. It unblocks ReadPacket and WritePackets
// at once. When no write is in progress, no read failed, and the peer has
// not ended its side, it ends the stream and lets the connection linger
// (without a goroutine) until the peer closes, at most closeLinger, so that
// what was written reaches the peer; otherwise it closes the connection
// immediately. Released reports when either is done.
func (c *conn) Close() error {
	c.closeOnce.Do(func() {
		graceful := false
		if c.wmu.TryLock() {
			c.closing.Store(true)
			if !c.wbroken && !c.peerDone.Load() && !c.readFailed.Load() {
				// Stream.Close must not run concurrently with Write: wmu
				// guarantees it.
				graceful = c.s.Close() == nil
			}
			c.wmu.Unlock()
		} else {
			c.closing.Store(true)
		}
		if !graceful {
			c.finish()
			return
		}
		// Unblock the reader: it sees closing once its Read fails.
		_ = c.s.SetReadDeadline(time.Unix(1, 0))
		c.lingerMu.Lock()
		c.linger = time.AfterFunc(closeLinger, c.finish)
		c.lingerMu.Unlock()
		context.AfterFunc(c.qc.Context(), c.finish)
	})
	return nil
}

// abort closes the connection at once with the given application error code.
func (c *conn) abort(code quicgo.ApplicationErrorCode, msg string) {
	c.closeOnce.Do(func() {
		c.closing.Store(true)
		_ = c.qc.CloseWithError(code, msg)
		c.finish()
	})
}

// finish closes the QUIC connection and releases its socket.
func (c *conn) finish() {
	c.finishOnce.Do(func() {
		c.lingerMu.Lock()
		if c.linger != nil {
			c.linger.Stop()
		}
		c.lingerMu.Unlock()
		_ = c.qc.CloseWithError(codeNoError, "")
		if c.onClose != nil {
			c.onClose()
		}
		close(c.released)
	})
}

// Released implements the runtime's optional release notice: the returned
// channel is closed once a Close has finished lingering and the connection
// and its share of the UDP socket are released.
func (c *conn) Released() <-chan struct{} { return c.released }

// LocalAddr implements [runtime.Conn].
func (c *conn) LocalAddr() net.Addr { return c.qc.LocalAddr() }

// RemoteAddr implements [runtime.Conn].
func (c *conn) RemoteAddr() net.Addr { return c.qc.RemoteAddr() }

// streamReader is the stream as the runtime's decoder reads it: quic-go's
// ways of ending a stream or a connection become the io.EOF, ErrTruncated
// and net.ErrClosed that the runtime expects.
type streamReader struct{ c *conn }

func (r streamReader) Read(p []byte) (int, error) {
	// Checked after the decoder set its deadline: either Close sees that
	// deadline and overrides it, or this sees closing.
	if r.c.closing.Load() {
		return 0, fmt.Errorf("msgtrans: quic read: %w", net.ErrClosed)
	}
	n, err := r.c.s.Read(p)
	if err != nil {
		err = r.c.readErr(err)
	}
	return n, err
}

func (r streamReader) SetReadDeadline(t time.Time) error { return r.c.s.SetReadDeadline(t) }

// readErr maps an error of the stream's Read.
func (c *conn) readErr(err error) error {
	if c.closing.Load() {
		return fmt.Errorf("msgtrans: quic read: %w", net.ErrClosed)
	}
	var appErr *quicgo.ApplicationError
	isApp := errors.As(err, &appErr) && appErr.Remote
	var streamErr *quicgo.StreamError
	isReset := errors.As(err, &streamErr) && streamErr.Remote
	if isApp || isReset || errors.Is(err, io.EOF) {
		c.peerDone.Store(true)
	}
	switch {
	case isReset:
		// A reset discards whatever the peer sent and we have not read, so
		// it never marks a clean end between packets.
		return fmt.Errorf("%w: the peer reset the stream with code %#x", wire.ErrTruncated, uint64(streamErr.ErrorCode))
	case errors.Is(err, io.EOF):
		return io.EOF
	case isApp && appErr.ErrorCode == codeNoError:
		return io.EOF
	case isApp:
		return fmt.Errorf("msgtrans: quic peer closed the connection with code %#x %q: %w", uint64(appErr.ErrorCode), appErr.ErrorMessage, io.EOF)
	}
	return err
}
