package ws

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/msgtrans/msgtrans-go/runtime"
	"github.com/msgtrans/msgtrans-go/transports/internal/listen"
	"github.com/msgtrans/msgtrans-go/wire"
)

func init() {
	runtime.RegisterTransport("ws", Transport{})
	runtime.RegisterTransport("wss", Transport{TLS: true})
}

const (
	// readBufferSize is gorilla's per-connection read buffer, held for the
	// connection's life: kept small so idle connections are cheap. Under
	// load, reads go through the pooled read-ahead buffer of bufConn.
	readBufferSize = 512
	// frameBufferSize is gorilla's frame-building buffer, pooled and held
	// only while a message is being written. A client message larger than
	// this is sent as several frames.
	frameBufferSize = 16 << 10
	// batchBufferSize is the pooled buffer in which one WritePackets call
	// gathers its frames.
	batchBufferSize = 64 << 10
	// closeGrace bounds how long Close waits to send its close frame.
	closeGrace = 250 * time.Millisecond
	// maxHeaderBytes caps the upgrade request's headers.
	maxHeaderBytes = 64 << 10
)

// framePool holds gorilla's frame buffers (see [websocket.BufferPool]; it
// must return nil when empty, so it has no New function).
var framePool sync.Pool

// batchPool holds the *bufio.Writer of batches in progress.
var batchPool = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, batchBufferSize) }}

// normalClose is the payload of the close frame Close sends.
var normalClose = websocket.FormatCloseMessage(websocket.CloseNormalClosure, "")

// Transport carries msgtrans packets over WebSocket ("ws://host:port/path")
// or WebSocket over TLS ("wss://host:port/path"), one packet per binary
// message. The zero value is plain WebSocket.
type Transport struct {
	// TLS selects WebSocket over TLS (wss).
	TLS bool
}

// Listen implements [runtime.Transport]. It serves WebSocket upgrades at the
// path of u (default "/") on u's host; a wss listener needs certificates in
// cfg.TLS.
func (t Transport) Listen(ctx context.Context, u *url.URL, cfg *runtime.TransportConfig) (runtime.Listener, error) {
	cfg = cfg.WithDefaults()
	if t.TLS {
		if _, err := cfg.ServerTLS(u.Scheme); err != nil {
			return nil, err
		}
	}
	// Connections take their place under the server's caps as they are
	// accepted, before TLS or HTTP; over the caps a plain connection is
	// answered 503, a TLS one closed.
	refuse := refuseHTTP
	if t.TLS {
		refuse = nil
	}
	nl, err := listen.Listen(ctx, u.Host, cfg, true, refuse)
	if err != nil {
		return nil, fmt.Errorf("msgtrans: listen %s: %w", u.Redacted(), err)
	}
	return t.serve(nl, u, cfg), nil
}

// statusHeader carries the status code of a refusal (see refuseHTTP).
const statusHeader = "Msgtrans-Status"

// refuseHTTP answers a plain connection over the caps before reading its
// request: 503 with the status (code in a header, message as the body) and
// when to try again.
func refuseHTTP(c *net.TCPConn, why error) {
	msg := why.Error()
	var e *runtime.Error
	if errors.As(why, &e) {
		msg = e.Message
	}
	_, _ = fmt.Fprintf(c, "HTTP/1.1 503 Service Unavailable\r\nRetry-After: %d\r\n%s: %d\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
		int(runtime.RefusalRetryAfter/time.Second), statusHeader, runtime.CodeOf(why), len(msg), msg)
}

// refusalOf reads the refusal a 503 from refuseHTTP carries.
func refusalOf(resp *http.Response) error {
	code, _ := strconv.Atoi(resp.Header.Get(statusHeader))
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	retry, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
	return runtime.Refusal(runtime.NewError(runtime.Code(code), string(msg)), time.Duration(retry)*time.Second)
}

// Dial implements [runtime.Transport]. The context bounds the whole set-up:
// TCP connect, TLS handshake and WebSocket upgrade; when it has no deadline,
// cfg.HandshakeTimeout bounds it instead. For wss the server is verified
// against cfg.TLS (nil: the system roots), with the server name taken from
// u when cfg.TLS leaves it empty. No proxy is used.
func (t Transport) Dial(ctx context.Context, u *url.URL, cfg *runtime.TransportConfig) (runtime.Conn, error) {
	var d net.Dialer
	return t.dial(ctx, u, cfg, d.DialContext)
}

// dial is Dial with the TCP dial function as a parameter (tests count the
// writes that reach the socket).
func (t Transport) dial(ctx context.Context, u *url.URL, cfg *runtime.TransportConfig,
	netDial func(ctx context.Context, network, addr string) (net.Conn, error)) (runtime.Conn, error) {
	cfg = cfg.WithDefaults()
	var bc *bufConn
	connect := func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := netDial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		if t.TLS {
			tc := tls.Client(c, http11(cfg.ClientTLS(u)))
			if err := tc.HandshakeContext(ctx); err != nil {
				c.Close()
				return nil, fmt.Errorf("tls handshake: %w", err)
			}
			c = tc
		}
		bc = newBufConn(c)
		return bc, nil
	}
	d := websocket.Dialer{
		ReadBufferSize:  readBufferSize,
		WriteBufferSize: frameBufferSize,
		WriteBufferPool: &framePool,
	}
	if t.TLS {
		// gorilla assumes the TLS handshake is done by this function, so
		// the buffering connection sits above TLS, as on the server.
		d.NetDialTLSContext = connect
	} else {
		d.NetDialContext = connect
	}
	if _, ok := ctx.Deadline(); !ok {
		d.HandshakeTimeout = cfg.HandshakeTimeout
	}
	// The transport, not the URL's spelling, decides whether TLS is used.
	target := *u
	target.Scheme = "ws"
	if t.TLS {
		target.Scheme = "wss"
	}
	ws, resp, err := d.DialContext(ctx, target.String(), nil)
	if err != nil {
		if resp != nil && resp.StatusCode == http.StatusServiceUnavailable && resp.Header.Get(statusHeader) != "" {
			return nil, fmt.Errorf("msgtrans: dial %s: %w", u.Redacted(), refusalOf(resp))
		}
		if resp != nil {
			se := &StatusError{StatusCode: resp.StatusCode, Status: resp.Status, Path: u.Path}
			return nil, fmt.Errorf("msgtrans: dial %s: %w (%w)", u.Redacted(), err, se)
		}
		return nil, fmt.Errorf("msgtrans: dial %s: %w", u.Redacted(), err)
	}
	return newConn(ws, bc, cfg), nil
}

// StatusError is part of the error of a dial that the server answered with
// an HTTP status instead of switching to WebSocket, found with [errors.As].
// A 404 means that nothing serves WebSocket at the URL's path on that
// server: usually the path is wrong or missing.
type StatusError struct {
	// StatusCode is the HTTP status code, such as 404.
	StatusCode int
	// Status is the status line, such as "404 Not Found".
	Status string
	// Path is the path of the URL dialled ("" for none).
	Path string
}

func (e *StatusError) Error() string {
	if e.StatusCode == http.StatusNotFound {
		path := e.Path
		if path == "" {
			path = "/"
		}
		return fmt.Sprintf("http status 404: no WebSocket endpoint at path %q; is the path right?", path)
	}
	return fmt.Sprintf("http status %q", e.Status)
}

// originChecker accepts a WebSocket upgrade whose Origin header is one of
// allowed (compared without regard to case), or that has no Origin header
// (clients other than browsers send none). With no allowed origins
// configured every origin is accepted: msgtrans authenticates with
// credentials in the hello, not with cookies a foreign page could borrow.
func originChecker(allowed []string) func(*http.Request) bool {
	if len(allowed) == 0 {
		return func(*http.Request) bool { return true }
	}
	return func(r *http.Request) bool {
		origin := r.Header.Get("Origin")
		if origin == "" {
			return true
		}
		for _, a := range allowed {
			if strings.EqualFold(origin, a) {
				return true
			}
		}
		return false
	}
}

// http11 makes c offer only HTTP/1.1, which WebSocket upgrades need.
func http11(c *tls.Config) *tls.Config {
	c.NextProtos = []string{"http/1.1"}
	return c
}

// listener serves WebSocket upgrades with an http.Server and hands the
// upgraded connections to Accept.
type listener struct {
	srv   *http.Server
	up    websocket.Upgrader
	addr  net.Addr
	path  string
	cfg   *runtime.TransportConfig
	ready chan *conn    // upgraded connections, unbuffered
	done  chan struct{} // closed by Close

	served   chan struct{} // closed when Serve has returned
	serveErr error         // Serve's result, readable once served is closed

	mu        sync.Mutex
	closed    bool           // set by Close: handlers no longer start
	wg        sync.WaitGroup // the Serve goroutine and running handlers
	closeOnce sync.Once
	closeErr  error
}

// serve starts serving WebSocket upgrades on nl and returns the listener.
// cfg has its defaults applied.
func (t Transport) serve(nl net.Listener, u *url.URL, cfg *runtime.TransportConfig) *listener {
	path := u.Path
	if path == "" {
		path = "/"
	}
	l := &listener{
		addr:   nl.Addr(),
		path:   path,
		cfg:    cfg,
		ready:  make(chan *conn),
		done:   make(chan struct{}),
		served: make(chan struct{}),
		up: websocket.Upgrader{
			HandshakeTimeout: cfg.HandshakeTimeout,
			ReadBufferSize:   readBufferSize,
			WriteBufferSize:  frameBufferSize,
			WriteBufferPool:  &framePool,
			// Every origin is accepted; see the package documentation.
			CheckOrigin: originChecker(cfg.AllowedOrigins),
		},
	}
	l.srv = &http.Server{
		Handler:           l,
		ReadHeaderTimeout: cfg.HandshakeTimeout,
		ReadTimeout:       cfg.HandshakeTimeout,
		WriteTimeout:      cfg.HandshakeTimeout,
		IdleTimeout:       cfg.HandshakeTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelInfo),
		// A non-nil empty map turns HTTP/2 off: upgrades need HTTP/1.1.
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){},
	}
	// Until the upgrade nothing is kept alive: one request per
	// connection, and the listener closes a connection not upgraded within
	// the handshake timeout of its accept, whatever it sends meanwhile.
	l.srv.SetKeepAlivesEnabled(false)
	if t.TLS {
		// TLS runs inside the http.Server's connection goroutines, within
		// the handshake timeout; Hijack then returns the *tls.Conn, so the
		// buffering connection sits above TLS.
		nl = tls.NewListener(nl, http11(cfg.TLS.Clone()))
	}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		l.serveErr = l.srv.Serve(nl)
		close(l.served)
	}()
	return l
}

// ServeHTTP upgrades requests for the listener's path and hands each
// connection to Accept. It returns once the connection is handed over (or
// the listener closed), so no goroutine stays behind per connection.
func (l *listener) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != l.path {
		http.NotFound(w, r)
		return
	}
	if !websocket.IsWebSocketUpgrade(r) {
		w.Header().Set("Upgrade", "websocket")
		w.Header().Set("Sec-WebSocket-Version", "13")
		http.Error(w, "msgtrans: this endpoint speaks WebSocket only", http.StatusUpgradeRequired)
		return
	}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		http.Error(w, "msgtrans: listener closed", http.StatusServiceUnavailable)
		return
	}
	l.wg.Add(1)
	l.mu.Unlock()
	defer l.wg.Done()

	hw := &hijackWriter{ResponseWriter: w}
	ws, err := l.up.Upgrade(hw, r, nil)
	if err != nil {
		// gorilla has answered the request or closed the connection.
		l.cfg.Logger.Debug("msgtrans: websocket upgrade failed", "remote", r.RemoteAddr, "err", err)
		return
	}
	listen.HandshakeDone(hw.bc.Conn)
	c := newConn(ws, hw.bc, l.cfg)
	select {
	case l.ready <- c:
	case <-l.done:
		c.Close()
	}
}

// AdmitsConnections implements [runtime.Admitter].
func (l *listener) AdmitsConnections() bool { return true }

// Accept implements [runtime.Listener].
func (l *listener) Accept() (runtime.Conn, error) {
	select {
	case <-l.done:
		return nil, fmt.Errorf("msgtrans: ws accept: %w", net.ErrClosed)
	default:
	}
	select {
	case c := <-l.ready:
		return c, nil
	case <-l.done:
		return nil, fmt.Errorf("msgtrans: ws accept: %w", net.ErrClosed)
	case <-l.served:
		select {
		case <-l.done:
			return nil, fmt.Errorf("msgtrans: ws accept: %w", net.ErrClosed)
		default:
		}
		return nil, fmt.Errorf("msgtrans: ws accept: %w", l.serveErr)
	}
}

// Close implements [runtime.Listener]. It closes the listening socket and
// the HTTP connections not yet upgraded, and waits for the goroutines it
// started; upgraded connections not yet accepted are closed, accepted ones
// stay open.
func (l *listener) Close() error {
	l.closeOnce.Do(func() {
		l.mu.Lock()
		l.closed = true
		l.mu.Unlock()
		close(l.done)
		l.closeErr = l.srv.Close()
		l.wg.Wait()
	})
	return l.closeErr
}

// Addr implements [runtime.Listener].
func (l *listener) Addr() net.Addr { return l.addr }

// hijackWriter is the ResponseWriter handed to the upgrader: its Hijack
// wraps the hijacked connection in a [bufConn], so gorilla writes through
// the buffering connection.
type hijackWriter struct {
	http.ResponseWriter
	bc *bufConn
}

func (w *hijackWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	h, ok := w.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("msgtrans: http response writer cannot hijack the connection")
	}
	c, brw, err := h.Hijack()
	if err != nil {
		return nil, nil, err
	}
	w.bc = newBufConn(c)
	return w.bc, brw, nil
}

// conn is a [runtime.Conn] over a gorilla WebSocket connection.
type conn struct {
	ws        *websocket.Conn
	bc        *bufConn
	lim       wire.Limits // with defaults applied
	maxPacket int         // the read limit: the largest packet lim admits

	// Used only by the goroutine in ReadPacket.
	hdr       [wire.HeaderSize]byte
	inMessage bool // between NextReader returning a message and the message's end

	closeSent atomic.Bool // a close frame went out (CloseWrite, or the reply to the peer's)
	closeOnce sync.Once
	closeErr  error

	// onFrame is the runtime's count of control frames (see
	// NotifyControlFrames); frameErr what it returned to stop reading.
	onFrame  func(ping bool) error
	frameErr error

	// The latest ping not yet answered; one goroutine at a time answers
	// while one is pending, so a burst of pings gets one pong, not a pong
	// each (RFC 6455, section 5.5.3, allows that).
	pingMu   sync.Mutex
	ping     string
	pinged   bool // ping holds a ping not yet answered
	ponging  bool // a goroutine is answering
	pongDone sync.WaitGroup
}

func newConn(ws *websocket.Conn, bc *bufConn, cfg *runtime.TransportConfig) *conn {
	c := &conn{ws: ws, bc: bc, lim: cfg.Limits, maxPacket: cfg.MaxPacketSize()}
	bc.pktTimeout = cfg.Limits.PacketReadTimeout
	ws.SetReadLimit(int64(c.maxPacket))
	// A control frame between messages is not the start of a packet: keep
	// waiting without the packet read deadline. Each counts toward the
	// session's rate limit; pings are answered, the latest one only.
	ws.SetPingHandler(func(s string) error {
		if err := c.controlFrame(true); err != nil {
			return err
		}
		c.answerPing(s)
		return nil
	})
	ws.SetPongHandler(func(string) error { return c.controlFrame(false) })
	// gorilla's close handler answers the peer's close frame with one of
	// its own: Close then sends none.
	closeReply := ws.CloseHandler()
	ws.SetCloseHandler(func(code int, text string) error {
		if c.closeSent.Swap(true) {
			return nil
		}
		return closeReply(code, text)
	})
	return c
}

// controlFrame notes a ping or pong frame: reading goes on without the
// packet deadline when it came between messages, and the runtime counts it.
func (c *conn) controlFrame(ping bool) error {
	if !c.inMessage {
		c.bc.waiting = true
	}
	if c.onFrame != nil {
		if err := c.onFrame(ping); err != nil {
			c.frameErr = err
			return err
		}
	}
	return nil
}

// NotifyControlFrames implements [runtime.ControlFrameNotifier].
func (c *conn) NotifyControlFrames(fn func(ping bool) error) { c.onFrame = fn }

// answerPing answers the ping with the payload, or has the answer already
// on its way carry this payload instead.
func (c *conn) answerPing(payload string) {
	c.pingMu.Lock()
	c.ping, c.pinged = payload, true
	start := !c.ponging
	c.ponging = true
	c.pingMu.Unlock()
	if start {
		c.pongDone.Add(1)
		go c.writePongs()
	}
}

// writePongs answers the latest ping until none is pending.
func (c *conn) writePongs() {
	defer c.pongDone.Done()
	for {
		c.pingMu.Lock()
		if !c.pinged {
			c.ponging = false
			c.pingMu.Unlock()
			return
		}
		payload := c.ping
		c.pinged = false
		c.pingMu.Unlock()
		if err := c.ws.WriteControl(websocket.PongMessage, []byte(payload), time.Now().Add(closeGrace)); err != nil {
			c.pingMu.Lock()
			c.pinged, c.ponging = false, false
			c.pingMu.Unlock()
			return
		}
	}
}

// SetLimits implements [runtime.LimitSetter].
func (c *conn) SetLimits(lim wire.Limits) {
	c.lim = (&runtime.TransportConfig{Limits: lim}).WithDefaults().Limits
	c.maxPacket = lim.MaxPacketSize()
	c.bc.pktTimeout = c.lim.PacketReadTimeout
	c.ws.SetReadLimit(int64(c.maxPacket))
}

// ReadPacket implements [runtime.Conn]: it reads one binary message and
// returns the packet it holds, which owns its memory.
func (c *conn) ReadPacket() (wire.Packet, error) {
	b := c.bc
	b.waiting = true
	c.inMessage = false
	mt, r, err := c.ws.NextReader()
	if err != nil {
		return wire.Packet{}, c.readError(err)
	}
	c.inMessage = true
	if b.waiting {
		// The message was already buffered: its time counts from when it
		// arrived.
		b.waiting = false
		if err := b.setReadDeadline(b.filled.Add(c.lim.PacketReadTimeout)); err != nil {
			return wire.Packet{}, fmt.Errorf("msgtrans: ws read: %w", err)
		}
	}
	if mt != websocket.BinaryMessage {
		return wire.Packet{}, fmt.Errorf("%w: text websocket message (msgtrans sends one packet per binary message)", wire.ErrProtocol)
	}
	if n, err := io.ReadFull(r, c.hdr[:]); err != nil {
		if isMessageEnd(err) {
			return wire.Packet{}, fmt.Errorf("%w: binary message of %d bytes, shorter than a packet header", wire.ErrTruncated, n)
		}
		return wire.Packet{}, c.readError(err)
	}
	h, err := wire.ParseHeader(c.hdr[:], c.lim)
	if err != nil {
		return wire.Packet{}, err
	}
	body := make([]byte, h.BodyLen())
	if n, err := io.ReadFull(r, body); err != nil {
		if isMessageEnd(err) {
			return wire.Packet{}, fmt.Errorf("%w: binary message of %d bytes, its packet header declares %d",
				wire.ErrTruncated, wire.HeaderSize+n, wire.HeaderSize+len(body))
		}
		return wire.Packet{}, c.readError(err)
	}
	// The message must end with the packet.
	for {
		n, err := r.Read(c.hdr[:1])
		if n > 0 {
			return wire.Packet{}, fmt.Errorf("%w: binary message longer than the %d-byte packet it starts with",
				wire.ErrProtocol, wire.HeaderSize+len(body))
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return wire.Packet{}, c.readError(err)
		}
	}
	c.inMessage = false
	return h.Packet(body), nil
}

// isMessageEnd reports whether err from io.ReadFull on a message reader
// means the message ended early.
func isMessageEnd(err error) bool { return err == io.EOF || err == io.ErrUnexpectedEOF }

// readError turns an error from gorilla's reader into the error ReadPacket
// reports.
func (c *conn) readError(err error) error {
	var ce *websocket.CloseError
	var ne net.Error
	switch {
	case c.frameErr != nil:
		return c.frameErr
	case errors.As(err, &ce):
		switch ce.Code {
		case websocket.CloseNormalClosure, websocket.CloseGoingAway, websocket.CloseNoStatusReceived:
			if !c.inMessage {
				return io.EOF
			}
		case websocket.CloseAbnormalClosure: // gorilla's report of a connection ending without a close frame
			if !c.inMessage {
				return fmt.Errorf("msgtrans: ws: connection ended without a close frame: %w", io.ErrUnexpectedEOF)
			}
		default:
			return fmt.Errorf("msgtrans: ws: peer closed the connection: %w", err)
		}
		return fmt.Errorf("%w: connection closed inside a websocket message", wire.ErrTruncated)
	case errors.Is(err, websocket.ErrReadLimit):
		return fmt.Errorf("%w: websocket message over the %d-byte packet limit", wire.ErrTooLarge, c.maxPacket)
	case errors.As(err, &ne):
		if ne.Timeout() && c.inMessage {
			return fmt.Errorf("msgtrans: ws: packet not read within %v: %w", c.lim.PacketReadTimeout, err)
		}
		return fmt.Errorf("msgtrans: ws read: %w", err)
	default:
		// What remains are gorilla's framing errors: bad opcode, unmasked
		// client frame, invalid close frame and the like.
		return fmt.Errorf("%w: %v", wire.ErrProtocol, err)
	}
}

// WritePackets implements [runtime.Conn]: each packet becomes one binary
// message, and the whole batch reaches the socket in one flush.
func (c *conn) WritePackets(pkts [][]byte) error {
	if len(pkts) == 0 {
		return nil
	}
	c.bc.beginBatch()
	var err error
	for _, p := range pkts {
		if err = c.ws.WriteMessage(websocket.BinaryMessage, p); err != nil {
			break
		}
	}
	if ferr := c.bc.endBatch(); err == nil {
		err = ferr
	}
	switch {
	case errors.Is(err, websocket.ErrCloseSent):
		// The closing handshake has begun (the peer's close frame was
		// answered, or CloseWrite sent ours): the connection is closing,
		// not failing.
		return fmt.Errorf("msgtrans: ws write after the closing handshake began: %w", net.ErrClosed)
	case err != nil:
		return fmt.Errorf("msgtrans: ws write: %w", err)
	}
	return nil
}

// SetWriteDeadline implements [runtime.Conn]. It may be called while
// WritePackets is blocked, to unblock it.
func (c *conn) SetWriteDeadline(t time.Time) error { return c.bc.setBatchDeadline(t) }

// CloseWrite starts the WebSocket closing handshake: it sends a
// normal-closure close frame, after which nothing more is written. Reading
// goes on until the peer's close frame answers it (ReadPacket returns
// io.EOF): a graceful close lingers so, because closing the socket with
// input unread would reset it and could destroy what the peer has not read.
func (c *conn) CloseWrite() error {
	if c.closeSent.Swap(true) {
		return nil
	}
	return c.ws.WriteControl(websocket.CloseMessage, normalClose, time.Now().Add(closeGrace))
}

// Close implements [runtime.Conn]. Unless a write is in progress or a close
// frame went out already, it first sends a normal-closure close frame so
// that the peer sees a clean close, waiting at most a fraction of a second
// for it.
func (c *conn) Close() error {
	c.closeOnce.Do(func() {
		c.bc.closing.Store(true)
		if !c.bc.batching.Load() && !c.closeSent.Swap(true) {
			_ = c.ws.WriteControl(websocket.CloseMessage, normalClose, time.Now().Add(closeGrace))
		}
		c.closeErr = c.bc.Conn.Close()
		c.pongDone.Wait()
	})
	return c.closeErr
}

// LocalAddr implements [runtime.Conn].
func (c *conn) LocalAddr() net.Addr { return c.bc.LocalAddr() }

// RemoteAddr implements [runtime.Conn].
func (c *conn) RemoteAddr() net.Addr { return c.bc.RemoteAddr() }

// bufConn is the net.Conn gorilla reads from and writes to.
//
// Writes: between beginBatch and endBatch, everything gorilla writes (the
// batch's data frames, and any control frame another goroutine sends
// meanwhile) is gathered in a pooled buffer and flushed once by endBatch.
// Outside a batch, writes go straight to the socket. Frames never
// interleave on the wire: a direct write happens only while no batch is
// open, and gorilla writes each frame under its own lock.
//
// Reads: it times the packet read deadline. While ReadPacket waits for the
// next message (waiting), reads run without a deadline; the first read that
// returns data sets the deadline to that moment plus the packet read
// timeout.
type bufConn struct {
	net.Conn

	mu       sync.Mutex    // serialises writes to Conn; guards bw and err
	bw       *bufio.Writer // pooled; non-nil only in a batch that has written
	err      error         // first write error, returned by every later write
	batching atomic.Bool   // a batch is open; set without mu, cleared under it
	closing  atomic.Bool   // Close has begun: writes no longer wait for mu

	// frameDeadline is the write deadline gorilla set for its next write.
	// gorilla sets it and writes under its own write lock (or during the
	// handshake, before the connection is shared).
	frameDeadline time.Time

	dlMu       sync.Mutex // guards batchDL; never held during I/O
	batchDL    time.Time  // the runtime's deadline for WritePackets
	pktTimeout time.Duration

	// Used only by the goroutine reading (gorilla's reader, during the
	// handshake and then in ReadPacket).
	waiting bool      // between messages
	filled  time.Time // when the last read that returned data returned
	readDL  time.Time // the read deadline currently set on Conn

	// Read-ahead while data streams in: gorilla's own read buffer is kept
	// small for idle connections, so under load reads go through a pooled
	// larger buffer instead, held only while it has unread bytes or the
	// last socket read filled it (more is then likely waiting).
	ra     *[]byte
	r0, r1 int  // unread bytes are (*ra)[r0:r1]
	busy   bool // the last socket read filled the buffer it was given
}

// readAheadSize is the pooled read-ahead buffer of a busy connection.
const readAheadSize = 16 << 10

var readAheadPool = sync.Pool{New: func() any { b := make([]byte, readAheadSize); return &b }}

func newBufConn(c net.Conn) *bufConn { return &bufConn{Conn: c} }

// Read serves gorilla's reads: from the read-ahead buffer when it holds
// data, through it when the connection is busy, and straight from the
// socket otherwise (so an idle connection waits without it).
func (b *bufConn) Read(p []byte) (int, error) {
	if b.ra != nil {
		n := copy(p, (*b.ra)[b.r0:b.r1])
		b.r0 += n
		if b.r0 == b.r1 {
			readAheadPool.Put(b.ra)
			b.ra = nil
		}
		if b.waiting {
			// A message starts in bytes already read: time it from now.
			b.waiting = false
			if err := b.setReadDeadline(time.Now().Add(b.pktTimeout)); err != nil {
				return n, err
			}
		}
		return n, nil
	}
	if !b.busy || len(p) >= readAheadSize {
		n, err := b.socketRead(p)
		b.busy = n == len(p)
		return n, err
	}
	buf := readAheadPool.Get().(*[]byte)
	n, err := b.socketRead(*buf)
	b.busy = n == len(*buf)
	c := copy(p, (*buf)[:n])
	if c < n {
		b.ra, b.r0, b.r1 = buf, c, n
	} else {
		readAheadPool.Put(buf)
	}
	return c, err
}

// socketRead reads from the socket, timing the packet read deadline.
func (b *bufConn) socketRead(p []byte) (int, error) {
	if b.waiting {
		// Wait for the next message without a deadline.
		if err := b.setReadDeadline(time.Time{}); err != nil {
			return 0, err
		}
	}
	n, err := b.Conn.Read(p)
	if n > 0 {
		b.filled = time.Now()
		if b.waiting {
			b.waiting = false
			if dlErr := b.setReadDeadline(b.filled.Add(b.pktTimeout)); dlErr != nil && err == nil {
				err = dlErr
			}
		}
	}
	return n, err
}

func (b *bufConn) setReadDeadline(t time.Time) error {
	if t.Equal(b.readDL) {
		return nil
	}
	b.readDL = t
	return b.Conn.SetReadDeadline(t)
}

// SetDeadline is called by gorilla around handshakes.
func (b *bufConn) SetDeadline(t time.Time) error {
	b.frameDeadline = t
	b.readDL = t
	return b.Conn.SetDeadline(t)
}

// SetReadDeadline is called by gorilla around handshakes.
func (b *bufConn) SetReadDeadline(t time.Time) error {
	b.readDL = t
	return b.Conn.SetReadDeadline(t)
}

// SetWriteDeadline records gorilla's deadline for its next write; the write
// applies it.
func (b *bufConn) SetWriteDeadline(t time.Time) error {
	b.frameDeadline = t
	return nil
}

// Write is gorilla's write: gathered during a batch, direct otherwise.
func (b *bufConn) Write(p []byte) (int, error) {
	if b.closing.Load() {
		// Close must not wait behind a blocked write.
		if !b.mu.TryLock() {
			return 0, net.ErrClosed
		}
	} else {
		b.mu.Lock()
	}
	defer b.mu.Unlock()
	if b.err != nil {
		return 0, b.err
	}
	var n int
	var err error
	if b.batching.Load() {
		if b.bw == nil {
			b.bw = batchPool.Get().(*bufio.Writer)
			b.bw.Reset((*batchSink)(b))
		}
		n, err = b.bw.Write(p)
	} else {
		if err = b.Conn.SetWriteDeadline(b.frameDeadline); err == nil {
			n, err = b.Conn.Write(p)
		}
	}
	if err != nil {
		b.err = err
	}
	return n, err
}

func (b *bufConn) beginBatch() { b.batching.Store(true) }

// endBatch closes the batch: it flushes what the batch gathered and returns
// the buffer to its pool.
func (b *bufConn) endBatch() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.batching.Store(false)
	if b.bw != nil {
		if b.err == nil {
			b.err = b.bw.Flush()
		}
		b.bw.Reset(nil)
		batchPool.Put(b.bw)
		b.bw = nil
	}
	return b.err
}

func (b *bufConn) setBatchDeadline(t time.Time) error {
	b.dlMu.Lock()
	b.batchDL = t
	b.dlMu.Unlock()
	// Also apply it now, so that it reaches a write already blocked.
	return b.Conn.SetWriteDeadline(t)
}

// batchSink is where a batch's buffer flushes to: the socket, under the
// runtime's write deadline. It is only called with b.mu held.
type batchSink bufConn

func (s *batchSink) Write(p []byte) (int, error) {
	b := (*bufConn)(s)
	b.dlMu.Lock()
	dl := b.batchDL
	b.dlMu.Unlock()
	if err := b.Conn.SetWriteDeadline(dl); err != nil {
		return 0, err
	}
	return b.Conn.Write(p)
}
