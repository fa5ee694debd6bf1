package ws

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/msgtrans/msgtrans-go/runtime"
	"github.com/msgtrans/msgtrans-go/transports/internal/dialer"
	"github.com/msgtrans/msgtrans-go/transports/internal/listen"
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

// Dial implements [runtime.Transport]. The context bounds the whole set-up:
// TCP connect, TLS handshake and WebSocket upgrade; when it has no deadline,
// cfg.HandshakeTimeout bounds it instead. For wss the server is verified
// against cfg.TLS (nil: the system roots), with the server name taken from
// u when cfg.TLS leaves it empty. No proxy is used.
func (t Transport) Dial(ctx context.Context, u *url.URL, cfg *runtime.TransportConfig) (runtime.Conn, error) {
	var local net.IP
	if cfg != nil {
		local = cfg.LocalIP
	}
	return t.dial(ctx, u, cfg, dialer.TCP(local).DialContext)
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
		Subprotocols:    subprotocols,
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
	// A server of an older msgtrans-go selects no subprotocol; one that
	// selects another speaks something else.
	if p := ws.Subprotocol(); p != "" && !slices.Contains(subprotocols, p) {
		_ = ws.Close()
		return nil, fmt.Errorf("msgtrans: dial %s: the server selected WebSocket subprotocol %q, not one of %q", u.Redacted(), p, subprotocols)
	}
	return newConn(ws, bc, cfg), nil
}

// http11 makes c offer only HTTP/1.1, which WebSocket upgrades need.
func http11(c *tls.Config) *tls.Config {
	c.NextProtos = []string{"http/1.1"}
	return c
}
