package quic

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"sync"
	"time"

	quicgo "github.com/quic-go/quic-go"

	"github.com/msgtrans/msgtrans-go/runtime"
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
	var laddr *net.UDPAddr
	if cfg.LocalIP != nil {
		laddr = &net.UDPAddr{IP: cfg.LocalIP}
	}
	udp, err := net.ListenUDP(network, laddr)
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
