package runtime

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/msgtrans/msgtrans-go/wire"
)

// Conn is a packet-level connection, the unit a [Transport] provides. Byte
// streams (TCP, QUIC) and message transports (WebSocket) differ below this
// interface and nowhere above it.
//
// Concurrency: ReadPacket is called by one goroutine (the session's reader)
// and WritePackets by one other goroutine (the session's writer), so the two
// may run at the same time. Close may be called from any goroutine, any
// number of times; it unblocks both.
type Conn interface {
	// ReadPacket reads one whole packet. The packet owns its memory. It
	// returns io.EOF when the peer closed the connection between packets, and
	// an error wrapping ErrProtocol, ErrTooLarge or ErrTruncated for input
	// that is not a valid packet within the transport's Limits; the caller
	// then closes the connection.
	ReadPacket() (wire.Packet, error)
	// WritePackets writes each element of pkts, one encoded packet each, in
	// order, and flushes, using as few system calls as it can. The slices
	// are read-only (they may be shared with other connections) and are not
	// retained after the call returns.
	WritePackets(pkts [][]byte) error
	// SetWriteDeadline sets the deadline for WritePackets.
	SetWriteDeadline(t time.Time) error
	// Close closes the connection. A transport whose Close returns before
	// the connection is released also implements [Releaser].
	Close() error
	// LocalAddr returns the local network address.
	LocalAddr() net.Addr
	// RemoteAddr returns the remote network address.
	RemoteAddr() net.Addr
}

// PacketIntoReader is implemented by connections that can read a packet
// into the caller's [wire.Packet] ([StreamConn], QUIC's), which the
// session's read loop then uses instead of ReadPacket: a Packet returned
// by value is copied at every call it passes through.
type PacketIntoReader interface {
	// ReadPacketInto is ReadPacket reading into *p, which it overwrites
	// (zero on an error).
	ReadPacketInto(p *wire.Packet) error
}

// PacketLender is implemented by connections whose packets can borrow
// the connection's read buffer ([StreamConn], QUIC's; see
// [wire.Decoder.NextLent]). The read loop uses it for its own reads: a
// one-way packet handled before the next read then costs no copy and no
// buffer, and whatever keeps a packet longer copies it first
// ([wire.Packet.Own], [wire.Packet.Detach]).
type PacketLender interface {
	// LendPacketInto is ReadPacketInto, except that the packet may be
	// lent ([wire.Packet.Lent]): its memory is valid only until the
	// connection's next read.
	LendPacketInto(p *wire.Packet) error
}

// ReadAheader is implemented by connections that read ahead of the packet
// they return ([StreamConn], QUIC's, WebSocket's). The read loop asks it
// after handing requests to their handlers: with nothing read ahead, it lets
// the handlers run before its next read, so that they answer together and
// the read finds more of what the peer sent waiting.
type ReadAheader interface {
	// Buffered reports the bytes read ahead and not yet returned.
	Buffered() int
}

// LimitSetter is implemented by connections whose limits can change while
// they are open; the runtime uses it to hold a connection to tighter limits
// until it has authenticated (see [WithAuthenticator]). It is called by the
// goroutine that reads the connection, between packets.
type LimitSetter interface {
	SetLimits(wire.Limits)
}

// CloseWriter is implemented by connections that can half-close: end their
// sending side while still reading (TCP, TLS, WebSocket's closing
// handshake). A graceful close uses it to linger until the peer has read
// everything and closed too.
type CloseWriter interface {
	CloseWrite() error
}

// CloseReasoner is implemented by connections whose transport can tell the
// peer why they close, beyond the packets already sent: a WebSocket close
// frame carries a status code and a short reason a browser shows. The
// runtime calls SetCloseReason with the session's close reason (an error
// such as [ErrServerShutdown], [ErrRateLimited], a refusal's [*Error], or
// one wrapping wire.ErrProtocol or wire.ErrTooLarge; nil for a close
// without fault) just before it calls CloseWrite or Close, from whichever
// goroutine closes the session; the connection maps it to what its
// transport can say. Transports without such a notion do not implement it.
type CloseReasoner interface {
	SetCloseReason(reason error)
}

// Releaser is implemented by connections whose Close returns before the
// connection is released (QUIC lingers until the peer has what was
// written): Released is closed once it is. The runtime waits for it before
// it reports a session closed, so a server's Shutdown returns with every
// socket released.
type Releaser interface {
	Released() <-chan struct{}
}

// IdleParker is implemented by connections over a kernel socket whose
// reader can leave them while they are idle, so that an idle session holds
// no goroutine (see [WithIdleParking]). ParkWhenIdle(after) makes
// ReadPacket return an error wrapping [wire.ErrIdle] once it has waited
// about after (between after/2 and after) between packets with nothing
// of the connection's input buffered anywhere above the socket; the
// connection stays usable, and the runtime calls ReadPacket again when the
// socket it returns is readable. It reports false, changing nothing, when
// the connection cannot; after 0 turns parking off again. It is called by
// the goroutine that reads the connection, between packets.
type IdleParker interface {
	ParkWhenIdle(after time.Duration) (syscall.RawConn, bool)
}

// ControlFrameNotifier is implemented by connections whose transport has
// frames of its own besides packets: WebSocket ping and pong frames. The
// runtime calls NotifyControlFrames once, before the first ReadPacket; the
// connection then calls fn from the goroutine in ReadPacket for each such
// frame that arrives (ping is true for a ping), and when fn returns an
// error, ReadPacket returns it. So those frames count toward the session's
// rate limit and ping-flood rule like the packets they travel among.
type ControlFrameNotifier interface {
	NotifyControlFrames(fn func(ping bool) error)
}

// Listener accepts packet-level connections for a [Transport].
//
// Accept is called from one goroutine; Close may be called from any and
// makes a blocked Accept return an error. Transport handshakes (TLS,
// WebSocket upgrade, QUIC stream) happen off the accepting goroutine, so one
// slow peer never delays another: Accept returns only connections ready to
// carry packets.
type Listener interface {
	// Accept waits for the next connection. After Close it returns an error
	// wrapping net.ErrClosed.
	Accept() (Conn, error)
	// Close stops listening and waits until goroutines the listener started
	// have exited. Connections already returned by Accept stay open.
	Close() error
	// Addr returns the listening address (useful with port 0).
	Addr() net.Addr
}

// Admitter is implemented by listeners that call [TransportConfig.Admit]
// for every connection as it appears, before its transport handshake. The
// server then applies its connection caps through Admit alone; on other
// listeners it applies them when Accept returns a connection.
type Admitter interface {
	AdmitsConnections() bool
}

// Transport carries packets over one kind of network connection. A transport
// registers the URL schemes it serves with [RegisterTransport]; the runtime
// then picks it by the scheme of an address alone.
//
// Implementations must be safe for concurrent use.
type Transport interface {
	// Listen starts listening at u (scheme://host:port[/path]).
	Listen(ctx context.Context, u *url.URL, cfg *TransportConfig) (Listener, error)
	// Dial connects to u. The context bounds the whole connection set-up,
	// including TLS and protocol handshakes.
	Dial(ctx context.Context, u *url.URL, cfg *TransportConfig) (Conn, error)
}

// TransportConfig is what the runtime hands a [Transport] for one listener or
// one dial. Transports must honour every field.
type TransportConfig struct {
	// TLS is the TLS configuration: on a listener it holds the certificates;
	// on a dialer, the roots to verify against (nil RootCAs means the
	// system's) and the server name. Required by tls://, wss:// and quic://
	// listeners; a dialer given nil verifies against the system roots.
	TLS *tls.Config
	// Limits bounds what a peer can make this side allocate or wait for.
	Limits wire.Limits
	// HandshakeTimeout bounds the transport's own handshake on a listener
	// (TLS, WebSocket upgrade, QUIC stream opening). Default 5 s.
	HandshakeTimeout time.Duration
	// Logger receives the transport's own log lines. Never nil when the
	// runtime calls a transport.
	Logger *slog.Logger
	// Admit, set on a server's listeners, takes a place under the server's
	// connection caps for a connection that has just appeared, before any
	// TLS, WebSocket or QUIC handshake; remote is the peer's address. It
	// returns the function that gives the place back, which the listener
	// calls once, when the connection closes or its handshake fails. When
	// it returns an error instead, the listener closes the connection at
	// once, without a handshake, first writing the refusal where the
	// framing allows it before a handshake (plain TCP: see
	// [AppendRefusal]). A listener that calls it implements [Admitter].
	Admit func(remote net.Addr) (release func(), err error)
	// MaxHandshakes caps a listener's connections whose transport
	// handshake (TLS, WebSocket upgrade, QUIC stream) is in progress:
	// beyond it new connections are closed at once. Default 1,024.
	MaxHandshakes int
	// LocalIP, on a dialer, is the local address to connect from (nil:
	// the system's choice), for hosts with several addresses.
	LocalIP net.IP
	// AllowedOrigins lists the web origins ("https://app.example.com")
	// whose pages may open connections, for transports with an HTTP
	// handshake (WebSocket); requests without an Origin header (clients
	// other than browsers) are always accepted. Empty: every origin.
	AllowedOrigins []string
	// Refused, when not nil, is told of each connection the listener
	// refuses by itself, with why: [RefuseOrigin], [RefuseHandshakeTimeout],
	// [RefuseHandshakeFailed], [RefuseMaxHandshakes]. It feeds the
	// server's [Observer]; it must not block.
	Refused func(why RefuseReason)
}

// Refuse reports a connection the listener refused by itself to
// [TransportConfig.Refused], when set.
func (c *TransportConfig) Refuse(why RefuseReason) {
	if c != nil && c.Refused != nil {
		c.Refused(why)
	}
}

// DefaultHandshakeTimeout bounds transport handshakes on listeners.
const DefaultHandshakeTimeout = 5 * time.Second

// DefaultMaxHandshakes caps the handshakes in progress on one listener.
const DefaultMaxHandshakes = 1024

// WithDefaults returns a copy of c with every zero field set to its default.
// Transports call it once at the start of Listen and Dial.
func (c *TransportConfig) WithDefaults() *TransportConfig {
	var d TransportConfig
	if c != nil {
		d = *c
	}
	d.Limits = d.Limits.WithDefaults()
	if d.HandshakeTimeout <= 0 {
		d.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if d.MaxHandshakes <= 0 {
		d.MaxHandshakes = DefaultMaxHandshakes
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	return &d
}

// MaxPacketSize returns the largest encoded packet the limits admit: the
// fixed header plus the ext header and payload caps.
func (c *TransportConfig) MaxPacketSize() int { return c.Limits.MaxPacketSize() }

var transports = struct {
	sync.RWMutex
	m map[string]Transport
}{m: make(map[string]Transport)}

// RegisterTransport makes t serve URLs with the given scheme. Transports
// call it from an init function; registering a scheme twice panics, as a
// programming error found at start-up.
func RegisterTransport(scheme string, t Transport) {
	transports.Lock()
	defer transports.Unlock()
	if _, dup := transports.m[scheme]; dup {
		panic(fmt.Sprintf("msgtrans: transport for scheme %q registered twice", scheme))
	}
	transports.m[scheme] = t
}

// Schemes returns the registered URL schemes, sorted.
func Schemes() []string {
	transports.RLock()
	defer transports.RUnlock()
	s := make([]string, 0, len(transports.m))
	for k := range transports.m {
		s = append(s, k)
	}
	sort.Strings(s)
	return s
}

// lookupTransport parses addr and finds the transport for its scheme. An
// address written without a scheme ("127.0.0.1:7001", "localhost:7001",
// which url.Parse reads as scheme "localhost") gets an error that says how
// to write it; an unknown scheme wraps [ErrUnknownScheme].
func lookupTransport(addr string) (Transport, *url.URL, error) {
	u, err := url.Parse(addr)
	if err == nil {
		transports.RLock()
		t, ok := transports.m[u.Scheme]
		transports.RUnlock()
		if ok {
			return t, u, nil
		}
	}

	// Not found: say what a well-written address would be.
	registered := Schemes()
	schemes := []byte("schemes: ")
	for i, s := range registered {
		if i > 0 {
			schemes = append(schemes, ", "...)
		}
		schemes = append(schemes, s...)
	}
	if len(registered) == 0 {
		schemes = []byte("no transport is registered: import github.com/msgtrans/msgtrans-go/transports/all")
	}
	// "host:port" parses as a URL either not at all or as scheme "host"
	// with opaque data "port"; a URL with an authority has no opaque part.
	if err != nil || u.Opaque != "" {
		if fixed, ferr := url.Parse("tcp://" + addr); ferr == nil && fixed.Port() != "" {
			if fixed.Path != "" {
				fixed.Scheme = "ws" // only WebSocket addresses have a path
			}
			return nil, nil, fmt.Errorf("msgtrans: address %q has no scheme: write %s (%s)", addr, fixed, schemes)
		}
	}
	if err != nil {
		return nil, nil, fmt.Errorf("msgtrans: address %q: %w", addr, err)
	}
	if u.Scheme == "" {
		return nil, nil, fmt.Errorf("msgtrans: address %q has no scheme: write scheme://host:port, for example tcp://127.0.0.1:7001 (%s)", addr, schemes)
	}
	return nil, nil, fmt.Errorf("%w %q in %q (registered: %v; import its transport package, for example github.com/msgtrans/msgtrans-go/transports/all)",
		ErrUnknownScheme, u.Scheme, addr, registered)
}

// DialConn dials addr with the transport registered for its scheme and
// returns the bare packet-level connection, without a session, hello or
// reconnection: for tools and tests that speak the wire directly.
func DialConn(ctx context.Context, addr string, cfg *TransportConfig) (Conn, error) {
	t, u, err := lookupTransport(addr)
	if err != nil {
		return nil, err
	}
	return t.Dial(ctx, u, cfg.WithDefaults())
}

// ServerTLS returns the TLS configuration a listener for scheme must use,
// or an error when it holds no certificate.
func (c *TransportConfig) ServerTLS(scheme string) (*tls.Config, error) {
	t := c.TLS
	if t == nil || (len(t.Certificates) == 0 && t.GetCertificate == nil && t.GetConfigForClient == nil) {
		return nil, fmt.Errorf("msgtrans: %s listener needs a TLS certificate (runtime.WithTLS)", scheme)
	}
	return t, nil
}

// ClientTLS returns the TLS configuration for dialing u: a clone of c.TLS
// (or a new one, which verifies against the system roots) with the server
// name taken from u when unset. Callers may change the clone.
func (c *TransportConfig) ClientTLS(u *url.URL) *tls.Config {
	t := &tls.Config{}
	if c.TLS != nil {
		t = c.TLS.Clone()
	}
	if t.ServerName == "" {
		t.ServerName = u.Hostname()
	}
	return t
}
