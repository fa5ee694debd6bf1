package runtime

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/msgtrans/msgtrans-go/wire"
	"github.com/msgtrans/msgtrans-go/wire/compress"
)

// Defaults of the options.
const (
	DefaultSendQueueBytes = 4 << 20
	DefaultWriteTimeout   = 5 * time.Second
	DefaultRequestTimeout = 10 * time.Second
	DefaultConnectTimeout = 10 * time.Second
	DefaultMaxInFlight    = 16
	DefaultMaxGroups      = 128
	DefaultMaxConns       = 10000
	DefaultMaxConnsPerIP  = 100
)

// ServerOption configures a [Server] ([NewServer]).
type ServerOption interface {
	applyToServer(*config)
}

// ClientOption configures a [Client] ([NewClient], [Dial]).
type ClientOption interface {
	applyToClient(*config)
}

// Option configures a server or a client alike: it is both a
// [ServerOption] and a [ClientOption]. Options that apply to one side only
// are of that side's type, so giving one to the other side does not
// compile.
type Option interface {
	ServerOption
	ClientOption
}

// option is an [Option]; serverOption and clientOption apply to one side.
type (
	option struct {
		name string
		f    func(*config)
	}
	serverOption option
	clientOption option
)

func (o option) applyToServer(c *config)       { o.f(c) }
func (o option) applyToClient(c *config)       { o.f(c) }
func (o serverOption) applyToServer(c *config) { o.f(c) }
func (o clientOption) applyToClient(c *config) { o.f(c) }

// config is every setting of a server or a client, filled by options and
// then checked and defaulted in one place, [config.validate].
type config struct {
	logger           *slog.Logger
	tls              *tls.Config
	limits           wire.Limits
	handshakeTimeout time.Duration
	sendQueueBytes   int
	writeTimeout     time.Duration
	requestTimeout   time.Duration
	compressor       compress.Compressor
	maxInFlight      int
	onEvent          func(Event)

	heartbeatInterval      time.Duration
	heartbeatTimeout       time.Duration
	maxGroups              int
	maxConns               int
	maxConnsPerIP          int
	authenticator          Authenticator
	rateLimit              float64
	interceptors           []Interceptor
	callInterceptors       []CallInterceptor
	cluster                Cluster
	addrs                  []string // client: more addresses of the server
	localIP                net.IP   // client: the address to connect from
	streamInterceptors     []StreamInterceptor
	streamOpenInterceptors []StreamOpenInterceptor
	pushInterceptors       []PushInterceptor
	maxStreams             int
	maxStreamDuration      time.Duration
	streamWindow           int
	allowedOrigins         []string
	lameDuck               time.Duration
	rateBurst              int
	credentials            []byte // client: sent in the hello
	ipv6Prefix             int
	inflateRate            int
	maxHandlerTimeout      time.Duration
	maxHandshakes          int
	idleParking            time.Duration // WithIdleParking; see resolveIdleParking
	idleParkingSet         bool
	observer               Observer   // WithObserver
	obs                    *observing // made from observer by NewServer, NewClient

	// client only
	connectTimeout time.Duration
	backoff        Backoff
	reconnect      bool
}

// newServerConfig applies opts to a server's configuration and checks it.
func newServerConfig(opts []ServerOption) (*config, error) {
	c := &config{}
	for _, o := range opts {
		if o != nil {
			o.applyToServer(c)
		}
	}
	return c, c.validate()
}

// newClientConfig applies opts to a client's configuration and checks it.
func newClientConfig(opts []ClientOption) (*config, error) {
	c := &config{reconnect: true}
	for _, o := range opts {
		if o != nil {
			o.applyToClient(c)
		}
	}
	return c, c.validate()
}

func (c *config) validate() error {
	var errs []error
	neg := func(name string, v int64) {
		if v < 0 {
			errs = append(errs, fmt.Errorf("msgtrans: %s must not be negative", name))
		}
	}
	neg("MaxPayload", int64(c.limits.MaxPayload))
	neg("MaxExtHeader", int64(c.limits.MaxExtHeader))
	neg("MaxDecompressed", int64(c.limits.MaxDecompressed))
	neg("send queue size", int64(c.sendQueueBytes))
	neg("write timeout", int64(c.writeTimeout))
	neg("request timeout", int64(c.requestTimeout))
	neg("connect timeout", int64(c.connectTimeout))
	neg("handshake timeout", int64(c.handshakeTimeout))
	neg("max in-flight handlers", int64(c.maxInFlight))
	neg("heartbeat interval", int64(c.heartbeatInterval))
	neg("max groups per session", int64(c.maxGroups))
	neg("max connections", int64(c.maxConns))
	neg("max connections per IP", int64(c.maxConnsPerIP))
	neg("rate limit burst", int64(c.rateBurst))
	neg("lame-duck window", int64(c.lameDuck))
	neg("decompression rate", int64(c.inflateRate))
	neg("max handler timeout", int64(c.maxHandlerTimeout))
	neg("max handshakes", int64(c.maxHandshakes))
	neg("max streams", int64(c.maxStreams))
	neg("max stream duration", int64(c.maxStreamDuration))
	neg("stream window", int64(c.streamWindow))
	if err := checkObserver(c.observer); err != nil {
		errs = append(errs, err)
	}
	if c.rateLimit < 0 {
		errs = append(errs, fmt.Errorf("msgtrans: rate limit must not be negative"))
	}
	neg("heartbeat timeout", int64(c.heartbeatTimeout))
	switch {
	case c.ipv6Prefix == 0:
		c.ipv6Prefix = DefaultIPv6Prefix
	case c.ipv6Prefix < 0 || c.ipv6Prefix > 128:
		errs = append(errs, fmt.Errorf("msgtrans: WithIPv6PrefixLength(%d) is not between 1 and 128", c.ipv6Prefix))
	}
	if c.limits.MaxExtHeader > 0xFFFF {
		errs = append(errs, fmt.Errorf("msgtrans: MaxExtHeader %d exceeds the wire maximum of 65535", c.limits.MaxExtHeader))
	}
	if c.compressor.Algorithm > wire.CompressionZlib {
		errs = append(errs, fmt.Errorf("msgtrans: unknown compression %d", c.compressor.Algorithm))
	}
	if err := c.backoff.validate(); err != nil {
		errs = append(errs, err)
	}
	if c.logger == nil {
		c.logger = slog.Default()
	}
	c.limits = c.limits.WithDefaults()
	switch maxPacket := c.limits.MaxPacketSize(); {
	case c.sendQueueBytes == 0:
		c.sendQueueBytes = max(DefaultSendQueueBytes, 2*maxPacket)
	case c.sendQueueBytes > 0 && c.sendQueueBytes < maxPacket:
		errs = append(errs, fmt.Errorf("msgtrans: WithSendQueueBytes(%d) cannot hold the largest packet WithLimits allows (%d bytes: header, MaxExtHeader and MaxPayload); raise the queue or lower the limits",
			c.sendQueueBytes, maxPacket))
	}
	if c.writeTimeout == 0 {
		c.writeTimeout = DefaultWriteTimeout
	}
	if c.requestTimeout == 0 {
		c.requestTimeout = DefaultRequestTimeout
	}
	if c.connectTimeout == 0 {
		c.connectTimeout = DefaultConnectTimeout
	}
	if c.handshakeTimeout == 0 {
		c.handshakeTimeout = DefaultHandshakeTimeout
	}
	if c.maxInFlight == 0 {
		c.maxInFlight = DefaultMaxInFlight
	}
	if c.maxGroups == 0 {
		c.maxGroups = DefaultMaxGroups
	}
	if c.maxConns == 0 {
		c.maxConns = DefaultMaxConns
	}
	if c.maxConnsPerIP == 0 {
		c.maxConnsPerIP = DefaultMaxConnsPerIP
	}
	if c.rateLimit == 0 {
		c.rateLimit = DefaultRateLimit
	}
	if c.rateBurst == 0 {
		c.rateBurst = DefaultRateBurst
	}
	if c.inflateRate == 0 {
		c.inflateRate = DefaultDecompressionRate
	}
	if c.maxHandlerTimeout == 0 {
		c.maxHandlerTimeout = c.requestTimeout
	}
	if c.maxStreamDuration == 0 {
		c.maxStreamDuration = DefaultMaxStreamDuration
	}
	if c.maxStreams == 0 {
		c.maxStreams = DefaultMaxStreams
	}
	if c.streamWindow == 0 {
		c.streamWindow = DefaultStreamWindow
	}
	if c.heartbeatInterval == 0 {
		c.heartbeatInterval = DefaultHeartbeatInterval
	}
	if c.heartbeatTimeout == 0 {
		c.heartbeatTimeout = DefaultHeartbeatTimeout
	}
	if c.heartbeatTimeout <= c.heartbeatInterval && c.heartbeatInterval > 0 {
		errs = append(errs, fmt.Errorf("msgtrans: heartbeat timeout %v must exceed the interval %v", c.heartbeatTimeout, c.heartbeatInterval))
	}
	c.backoff = c.backoff.withDefaults()
	return errors.Join(errs...)
}

func (c *config) transportConfig() *TransportConfig {
	return &TransportConfig{TLS: c.tls, Limits: c.limits, HandshakeTimeout: c.handshakeTimeout, Logger: c.logger,
		AllowedOrigins: c.allowedOrigins, MaxHandshakes: c.maxHandshakes, LocalIP: c.localIP}
}

// WithLogger sets the logger for connection-level events such as protocol
// errors and slow consumers. Default slog.Default().
func WithLogger(l *slog.Logger) Option {
	return option{"WithLogger", func(c *config) { c.logger = l }}
}

// WithTLS sets the TLS configuration: on a server the certificates for
// tls://, wss:// and quic:// listeners; on a client the roots to trust (for
// example a private CA pool) and the server name. A client without it
// verifies servers against the system roots.
func WithTLS(t *tls.Config) Option {
	return option{"WithTLS", func(c *config) { c.tls = t }}
}

// WithLimits sets the packet size and read-time limits (see [Limits]). Zero
// fields keep their defaults.
func WithLimits(l wire.Limits) Option {
	return option{"WithLimits", func(c *config) { c.limits = l }}
}

// WithHandshakeTimeout bounds a listener's transport handshake (TLS,
// WebSocket upgrade, QUIC stream). Default 5 s.
func WithHandshakeTimeout(d time.Duration) ServerOption {
	return serverOption{"WithHandshakeTimeout", func(c *config) { c.handshakeTimeout = d }}
}

// WithMaxHandshakes caps, on each listener, the connections whose transport
// handshake (TLS, WebSocket upgrade, QUIC stream) is in progress; beyond it
// new connections are closed at once, and a QUIC listener asks new peers
// to prove their address (a Retry) once a quarter of it is reached.
// Default 1,024.
func WithMaxHandshakes(n int) ServerOption {
	return serverOption{"WithMaxHandshakes", func(c *config) { c.maxHandshakes = n }}
}

// WithMaxHandlerTimeout caps the time a request handler is given, whatever
// deadline the caller sent (and when it sent none): its context ends at the
// earlier of the two. A peer therefore cannot keep handlers, and the
// session, alive for longer by asking for a long deadline. Default the
// request timeout ([WithRequestTimeout], 10 s).
func WithMaxHandlerTimeout(d time.Duration) Option {
	return option{"WithMaxHandlerTimeout", func(c *config) { c.maxHandlerTimeout = d }}
}

// WithSendQueueBytes bounds the bytes queued for one connection. A
// connection whose queue would exceed it is closed with [ErrSlowConsumer]
// rather than blocking the sender. It must hold at least the largest packet
// the limits allow ([Limits.MaxPacketSize]), so that any packet a send
// accepts fits an empty queue. Default 4 MiB, or twice the largest packet
// when that is more.
func WithSendQueueBytes(n int) Option {
	return option{"WithSendQueueBytes", func(c *config) { c.sendQueueBytes = n }}
}

// WithWriteTimeout bounds each write of a batch of packets; a connection
// whose write times out (its peer stopped reading) is closed with
// [ErrSlowConsumer]. A deadline is refreshed only once it has come an
// eighth of d closer, so a write may be cut off after as little as 7/8 of
// d. Default 5 s.
func WithWriteTimeout(d time.Duration) Option {
	return option{"WithWriteTimeout", func(c *config) { c.writeTimeout = d }}
}

// WithRequestTimeout sets how long a request waits for its response when its
// context has no deadline: it fails with CodeDeadlineExceeded between d and
// d/8 (at least a millisecond) later: the session checks its waiting
// requests that often, rather than keeping a timer per request. Default
// 10 s.
func WithRequestTimeout(d time.Duration) Option {
	return option{"WithRequestTimeout", func(c *config) { c.requestTimeout = d }}
}

// WithCompression compresses outgoing payloads at or above the threshold
// with the given algorithm, toward peers that said they accept it. Incoming
// compressed payloads are always accepted (within Limits.MaxDecompressed).
func WithCompression(comp compress.Compressor) Option {
	return option{"WithCompression", func(c *config) { c.compressor = comp }}
}

// WithMaxInFlight bounds the request handlers running at once for one
// connection; the connection's reads wait while it is reached. Default 16.
func WithMaxInFlight(n int) Option {
	return option{"WithMaxInFlight", func(c *config) { c.maxInFlight = n }}
}

// WithEventHandler sets a function that receives every [Event], in order
// for each connection. On a server it runs on the session's read goroutine
// and must not block for long (and must not wait for that session's
// responses). On a client it runs on the client's supervising goroutine,
// while the connection is read elsewhere: it may make requests, for example
// to rejoin a room on [Reconnected]; the next event waits for it.
//
// A session's [ConnectionClosed] event comes after its request handlers have
// returned and it has left the session map and its groups.
func WithEventHandler(f func(Event)) Option {
	return option{"WithEventHandler", func(c *config) { c.onEvent = f }}
}

// WithMaxGroupsPerSession bounds how many groups one session may belong to;
// [Server.Join] beyond it fails with CodeResourceExhausted. Default 128.
func WithMaxGroupsPerSession(n int) ServerOption {
	return serverOption{"WithMaxGroupsPerSession", func(c *config) { c.maxGroups = n }}
}

// WithMaxConnections bounds the connections a server holds at once, and
// WithMaxConnectionsPerIP those from one remote host. A connection over
// either is refused at accept: it gets a go-away carrying
// CodeResourceExhausted and the reason, which a msgtrans-go client reports
// as its close reason, and is closed. Defaults 10,000 and 100.
func WithMaxConnections(n int) ServerOption {
	return serverOption{"WithMaxConnections", func(c *config) { c.maxConns = n }}
}

// WithMaxConnectionsPerIP: see [WithMaxConnections].
func WithMaxConnectionsPerIP(n int) ServerOption {
	return serverOption{"WithMaxConnectionsPerIP", func(c *config) { c.maxConnsPerIP = n }}
}

// WithAllowedOrigins restricts which web pages may open WebSocket
// connections to the server: an upgrade whose Origin header is not listed
// (scheme, host and port, compared without regard to case) is closed at
// once with WebSocket close code 1008, nothing it sent being read.
// Requests without an Origin header (clients other than browsers) are
// accepted. Default: every origin; docs/security.md says when to list them.
func WithAllowedOrigins(origins ...string) ServerOption {
	return serverOption{"WithAllowedOrigins", func(c *config) { c.allowedOrigins = origins }}
}

// WithLameDuck spreads [Server.Shutdown]'s go-aways evenly over window, so
// that clients reconnect (to another server, or to this one restarted)
// gradually rather than all at once. Shutdown's context still bounds the
// whole. Default 0: every session is told at once.
func WithLameDuck(window time.Duration) ServerOption {
	return serverOption{"WithLameDuck", func(c *config) { c.lameDuck = window }}
}

// WithConnectTimeout bounds each connection attempt of a client, including
// its TLS and protocol handshakes. Default 10 s.
func WithConnectTimeout(d time.Duration) ClientOption {
	return clientOption{"WithConnectTimeout", func(c *config) { c.connectTimeout = d }}
}

// WithReconnect sets the client's reconnection schedule. Reconnection is on
// by default with the zero [Backoff]'s defaults.
func WithReconnect(b Backoff) ClientOption {
	return clientOption{"WithReconnect", func(c *config) { c.backoff = b; c.reconnect = true }}
}

// WithoutReconnect makes the client give up when its connection drops.
func WithoutReconnect() ClientOption {
	return clientOption{"WithoutReconnect", func(c *config) { c.reconnect = false }}
}
