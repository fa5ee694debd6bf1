package ws

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"github.com/gorilla/websocket"

	"github.com/msgtrans/msgtrans-go/runtime"
	"github.com/msgtrans/msgtrans-go/transports/internal/listen"
)

// listener serves WebSocket upgrades with an http.Server and hands the
// upgraded connections to Accept.
type listener struct {
	srv  *http.Server
	up   websocket.Upgrader
	addr net.Addr
	path string
	cfg  *runtime.TransportConfig
	// originOK says whether an upgrade's Origin is allowed.
	originOK func(*http.Request) bool
	ready    chan *conn    // upgraded connections, unbuffered
	done     chan struct{} // closed by Close

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
		addr:     nl.Addr(),
		path:     path,
		cfg:      cfg,
		originOK: originChecker(cfg.AllowedOrigins),
		ready:    make(chan *conn),
		done:     make(chan struct{}),
		served:   make(chan struct{}),
		up: websocket.Upgrader{
			HandshakeTimeout: cfg.HandshakeTimeout,
			// 0: gorilla reads through the buffer of
			// serverReadBufferSize bytes that Hijack makes (see
			// hijackWriter).
			ReadBufferSize:  0,
			WriteBufferSize: frameBufferSize,
			WriteBufferPool: &framePool,
			// ServeHTTP checks the origin itself, so as to refuse one
			// with a close code a browser can read.
			CheckOrigin: func(*http.Request) bool { return true },
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

	offered := websocket.Subprotocols(r)
	proto, ok := selectSubprotocol(offered)
	if !ok {
		l.cfg.Logger.Debug("msgtrans: websocket upgrade without a subprotocol of ours", "remote", r.RemoteAddr, "offered", offered)
		l.cfg.Refuse(runtime.RefuseHandshakeFailed)
		http.Error(w, fmt.Sprintf("msgtrans: none of the WebSocket subprotocols offered (%s) is spoken here: offer %s, or none",
			strings.Join(offered, ", "), strings.Join(subprotocols, " or ")), http.StatusBadRequest)
		return
	}
	var hdr http.Header
	if proto != "" {
		hdr = http.Header{"Sec-Websocket-Protocol": {proto}}
	}
	originOK := l.originOK(r)
	hw := &hijackWriter{ResponseWriter: w}
	ws, err := l.up.Upgrade(hw, r, hdr)
	if err != nil {
		// gorilla has answered the request or closed the connection.
		l.cfg.Logger.Debug("msgtrans: websocket upgrade failed", "remote", r.RemoteAddr, "err", err)
		l.cfg.Refuse(runtime.RefuseHandshakeFailed)
		return
	}
	c := newConn(ws, hw.bc, l.cfg)
	c.br = hw.br
	if !originOK {
		// Refused after the upgrade, so that a browser's page learns why
		// (a refused upgrade only shows it a failed connection, 1006).
		// Nothing the page sends is read.
		origin := r.Header.Get("Origin")
		l.cfg.Logger.Debug("msgtrans: websocket origin not allowed", "remote", r.RemoteAddr, "origin", origin)
		l.cfg.Refuse(runtime.RefuseOrigin)
		c.SetCloseReason(runtime.Errorf(runtime.CodePermissionDenied, "origin %.80q not allowed", origin))
		c.Close()
		<-c.Released()
		return
	}
	listen.HandshakeDone(hw.bc.Conn)
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
	br *bufio.Reader // gorilla's read buffer, ours (see park.go); nil if not
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
	if brw.Reader.Buffered() == 0 {
		// gorilla reads through this buffer (the upgrader's
		// ReadBufferSize is 0, and it is over 256 bytes), so ReadPacket
		// can see that nothing is buffered when it waits; with bytes
		// buffered before the upgrade completed gorilla refuses it.
		w.br = bufio.NewReaderSize(w.bc, serverReadBufferSize)
		brw = bufio.NewReadWriter(w.br, brw.Writer)
	}
	return w.bc, brw, nil
}

// subprotocols are the WebSocket subprotocols msgtrans speaks, both naming
// wire format v1 ("msgtrans" is the unversioned name), in the order a
// dialer offers them. A listener selects the first of those a client offers
// that is in this list; a client offering none is served too (without a
// subprotocol), and one offering only others is answered 400 Bad Request.
var subprotocols = []string{"msgtrans.v1", "msgtrans"}

// selectSubprotocol returns the subprotocol to select for a client that
// offered these (in its order of preference), and false when it offered
// some but none of ours.
func selectSubprotocol(offered []string) (string, bool) {
	for _, p := range offered {
		for _, ours := range subprotocols {
			if p == ours {
				return p, true
			}
		}
	}
	return "", len(offered) == 0
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
