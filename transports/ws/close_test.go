package ws_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"

	"github.com/msgtrans/msgtrans-go/runtime"
	"github.com/msgtrans/msgtrans-go/wire"
)

// server is a runtime server listening on a loopback WebSocket URL of the
// variant, whose sessions arrive on established.
type server struct {
	srv         *runtime.Server
	url         string
	established chan *runtime.Session
}

func (v variant) startServer(t *testing.T, opts ...runtime.ServerOption) *server {
	t.Helper()
	s := &server{established: make(chan *runtime.Session, 16)}
	base := []runtime.ServerOption{
		runtime.WithTLS(certs().Server),
		runtime.WithLogger(slog.New(slog.DiscardHandler)),
		runtime.WithEventHandler(func(e runtime.Event) {
			if e.Kind == runtime.ConnectionEstablished {
				s.established <- e.Session
			}
		}),
	}
	srv, err := runtime.NewServer(append(base, opts...)...)
	if err != nil {
		t.Fatalf("NewServer: %v", err)
	}
	if err := srv.Listen(context.Background(), v.scheme+"://127.0.0.1:0/msgtrans"); err != nil {
		t.Fatalf("Listen: %v", err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	s.srv, s.url = srv, srv.Addrs()[0]
	return s
}

// session returns the next session established on s.
func (s *server) session(t *testing.T) *runtime.Session {
	t.Helper()
	select {
	case sess := <-s.established:
		return sess
	case <-time.After(10 * time.Second):
		t.Fatal("no session established")
		return nil
	}
}

// dialer is a plain gorilla dialer for the variant.
func (v variant) dialer() *websocket.Dialer {
	d := &websocket.Dialer{HandshakeTimeout: 10 * time.Second}
	if v.tr.TLS {
		d.TLSClientConfig = certs().Client.Clone()
	}
	return d
}

// dialRaw connects a plain gorilla client to url with the request header h.
func (v variant) dialRaw(t *testing.T, url string, h http.Header) (*websocket.Conn, *http.Response) {
	t.Helper()
	c, resp, err := v.dialer().Dial(url, h)
	if err != nil {
		t.Fatalf("raw dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c, resp
}

// readClose reads until the connection ends and returns the code and
// reason of the close frame that ended it; a connection that ends without
// one (reset, or closed with no close frame: 1006) fails the test.
func readClose(t *testing.T, c *websocket.Conn) (int, string) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		_, _, err := c.ReadMessage()
		if err == nil {
			continue
		}
		var ce *websocket.CloseError
		if !errors.As(err, &ce) || ce.Code == websocket.CloseAbnormalClosure {
			t.Fatalf("the connection ended without a close frame: %v", err)
		}
		return ce.Code, ce.Text
	}
}

// controlPacket is an encoded control packet of kind, as a raw client
// sends it.
func controlPacket(t *testing.T, kind wire.ControlKind, id uint32, payload []byte) []byte {
	t.Helper()
	return encode(t, &wire.Packet{
		Type: wire.OneWay, MessageID: id, Flags: wire.FlagHasRouteTag, Payload: payload,
		Ext: wire.AppendExt(nil, &wire.Ext{HasRoute: true, Route: wire.ControlRoute, Control: kind}),
	})
}

// TestCloseCodes: a server closing a WebSocket connection says why in its
// close frame, with a code and a reason a browser can show, for each kind
// of close; read by a plain gorilla client.
func TestCloseCodes(t *testing.T) {
	const maxPayload = 1024
	// big is a message larger than loopback socket buffers take in at
	// once: a server closing with it unread resets the connection.
	const big = 2 << 20
	small := runtime.WithLimits(wire.Limits{MaxPayload: maxPayload})
	valid := append(header(1, 0, 5), "hello"...)
	hello := func(t *testing.T) []byte {
		return controlPacket(t, wire.ControlHello, 1, []byte{1 << wire.CompressionZlib})
	}
	write := func(t *testing.T, c *websocket.Conn, mt int, data []byte) {
		t.Helper()
		if err := c.WriteMessage(mt, data); err != nil {
			t.Fatalf("raw write: %v", err)
		}
	}
	tests := []struct {
		name   string
		opts   []runtime.ServerOption
		header http.Header
		// act makes the server close; sess is the session once
		// established (nil for cases that close before).
		act        func(t *testing.T, s *server, c *websocket.Conn)
		wantCode   int
		wantReason string // a substring of the reason
	}{
		{"text message", nil, nil, func(t *testing.T, s *server, c *websocket.Conn) {
			write(t, c, websocket.TextMessage, valid)
		}, websocket.CloseUnsupportedData, "text websocket message"},
		{"bad version", nil, nil, func(t *testing.T, s *server, c *websocket.Conn) {
			write(t, c, websocket.BinaryMessage, append(header(2, 0, 5), "hello"...))
		}, websocket.CloseProtocolError, "protocol error"},
		{"message shorter than its packet", nil, nil, func(t *testing.T, s *server, c *websocket.Conn) {
			write(t, c, websocket.BinaryMessage, append(header(1, 2, 100), "short"...))
		}, websocket.CloseProtocolError, "truncated"},
		{"message longer than its packet", nil, nil, func(t *testing.T, s *server, c *websocket.Conn) {
			write(t, c, websocket.BinaryMessage, append(bytes.Clone(valid), "extra"...))
		}, websocket.CloseProtocolError, "longer than the 21-byte packet"},
		{"a second hello", nil, nil, func(t *testing.T, s *server, c *websocket.Conn) {
			write(t, c, websocket.BinaryMessage, hello(t))
			write(t, c, websocket.BinaryMessage, controlPacket(t, wire.ControlHello, 2, []byte{0}))
		}, websocket.CloseProtocolError, "second hello"},
		{"packet over the payload limit", []runtime.ServerOption{small}, nil, func(t *testing.T, s *server, c *websocket.Conn) {
			write(t, c, websocket.BinaryMessage, append(header(1, 0, big), make([]byte, big)...))
		}, websocket.CloseMessageTooBig, "too large"},
		{"message over the limit", []runtime.ServerOption{small}, nil, func(t *testing.T, s *server, c *websocket.Conn) {
			// Far more than the socket buffers hold, so a server
			// closing with it unread would reset the connection.
			write(t, c, websocket.BinaryMessage, append(bytes.Clone(valid), make([]byte, big)...))
		}, websocket.CloseMessageTooBig, "over the 5136-byte packet limit"},
		{"rate limit", []runtime.ServerOption{runtime.WithRateLimit(10, 10)}, nil, func(t *testing.T, s *server, c *websocket.Conn) {
			for i := range 100 {
				if c.WriteMessage(websocket.BinaryMessage, encode(t, wire.NewText(uint8(i), "flood"))) != nil {
					return // closed meanwhile
				}
			}
		}, websocket.ClosePolicyViolation, "rate limit"},
		{"ping flood", nil, nil, func(t *testing.T, s *server, c *websocket.Conn) {
			write(t, c, websocket.BinaryMessage, hello(t))
			for i := range 100 {
				if c.WriteMessage(websocket.BinaryMessage, controlPacket(t, wire.ControlPing, uint32(i+2), nil)) != nil {
					return
				}
			}
		}, websocket.ClosePolicyViolation, "ping flood"},
		{"authentication refused", []runtime.ServerOption{runtime.WithAuthenticator(func(context.Context, runtime.AuthInfo) (string, error) {
			return "", runtime.NewError(runtime.CodePermissionDenied, "bad token")
		})}, nil, func(t *testing.T, s *server, c *websocket.Conn) {
			write(t, c, websocket.BinaryMessage, hello(t))
		}, websocket.ClosePolicyViolation, "permission_denied: bad token"},
		{"a packet before the hello", []runtime.ServerOption{runtime.WithAuthenticator(func(context.Context, runtime.AuthInfo) (string, error) {
			return "someone", nil
		})}, nil, func(t *testing.T, s *server, c *websocket.Conn) {
			write(t, c, websocket.BinaryMessage, valid)
		}, websocket.ClosePolicyViolation, "not authenticated"},
		{"no hello in time", []runtime.ServerOption{runtime.WithHandshakeTimeout(300 * time.Millisecond), runtime.WithAuthenticator(func(context.Context, runtime.AuthInfo) (string, error) {
			return "someone", nil
		})}, nil, func(t *testing.T, s *server, c *websocket.Conn) {}, websocket.ClosePolicyViolation, "not authenticated within 300ms"},
		{"heartbeat timeout", []runtime.ServerOption{runtime.WithHeartbeat(100*time.Millisecond, 400*time.Millisecond)}, nil, func(t *testing.T, s *server, c *websocket.Conn) {
			write(t, c, websocket.BinaryMessage, hello(t))
		}, websocket.ClosePolicyViolation, "heartbeat timeout"},
		{"origin not allowed", []runtime.ServerOption{runtime.WithAllowedOrigins("https://app.example.com")},
			http.Header{"Origin": {"https://evil.example.com"}}, func(t *testing.T, s *server, c *websocket.Conn) {
				// Whatever the page sends is not read.
				_ = c.WriteMessage(websocket.BinaryMessage, valid)
			}, websocket.ClosePolicyViolation, `origin "https://evil.example.com" not allowed`},
		{"server shutdown", nil, nil, func(t *testing.T, s *server, c *websocket.Conn) {
			s.session(t)
			go func() { _ = s.srv.Shutdown(context.Background()) }()
		}, websocket.CloseGoingAway, "server shutting down"},
		{"server close", nil, nil, func(t *testing.T, s *server, c *websocket.Conn) {
			s.session(t)
			_ = s.srv.Close()
		}, websocket.CloseGoingAway, "server shutting down"},
		{"session closed", nil, nil, func(t *testing.T, s *server, c *websocket.Conn) {
			_ = s.session(t).Close()
		}, websocket.CloseNormalClosure, ""},
		{"session closed with a status", nil, nil, func(t *testing.T, s *server, c *websocket.Conn) {
			s.session(t).CloseWithReason(runtime.NewError(runtime.CodePermissionDenied, "banned from the room"))
		}, websocket.ClosePolicyViolation, "permission_denied: banned from the room"},
		{"session closed with an internal error", nil, nil, func(t *testing.T, s *server, c *websocket.Conn) {
			s.session(t).CloseWithReason(runtime.NewError(runtime.CodeInternal, "database password rejected"))
		}, websocket.CloseInternalServerErr, "internal error"},
		{"session closed with an unclassified error", nil, nil, func(t *testing.T, s *server, c *websocket.Conn) {
			s.session(t).CloseWithReason(errors.New("some failure"))
		}, websocket.CloseInternalServerErr, "internal error"},
		{"long reason", nil, nil, func(t *testing.T, s *server, c *websocket.Conn) {
			s.session(t).CloseWithReason(runtime.NewError(runtime.CodeResourceExhausted, strings.Repeat("é", 100)))
		}, websocket.ClosePolicyViolation, "resource_exhausted: éé"},
	}
	for _, v := range variants {
		t.Run(v.scheme, func(t *testing.T) {
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					s := v.startServer(t, tc.opts...)
					c, _ := v.dialRaw(t, s.url, tc.header)
					tc.act(t, s, c)
					code, reason := readClose(t, c)
					if code != tc.wantCode || !strings.Contains(reason, tc.wantReason) {
						t.Errorf("close %d %q, want %d with a reason containing %q", code, reason, tc.wantCode, tc.wantReason)
					}
					if len(reason) > 123 || !utf8.ValidString(reason) {
						t.Errorf("close reason of %d bytes (at most 123), valid UTF-8 %v: %q", len(reason), utf8.ValidString(reason), reason)
					}
				})
			}
		})
	}
}
