package ws_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/goleak"

	"github.com/msgtrans/msgtrans-go/internal/testcert"
	"github.com/msgtrans/msgtrans-go/runtime"
	"github.com/msgtrans/msgtrans-go/transports/ws"
	"github.com/msgtrans/msgtrans-go/wire"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var certs = sync.OnceValue(testcert.New)

// variant is one way of running the transport: plain or TLS.
type variant struct {
	scheme string
	tr     ws.Transport
}

var variants = []variant{{"ws", ws.Transport{}}, {"wss", ws.Transport{TLS: true}}}

// serverConfig returns a listener configuration for v with the given limits.
func (v variant) serverConfig(lim wire.Limits) *runtime.TransportConfig {
	cfg := &runtime.TransportConfig{Limits: lim}
	if v.tr.TLS {
		cfg.TLS = certs().Server
	}
	return cfg
}

// clientConfig returns a dialer configuration for v.
func (v variant) clientConfig() *runtime.TransportConfig {
	cfg := &runtime.TransportConfig{}
	if v.tr.TLS {
		cfg.TLS = certs().Client
	}
	return cfg
}

// listen starts a listener on a loopback port, closed when the test ends,
// and returns it with the URL clients dial.
func (v variant) listen(t *testing.T, lim wire.Limits) (runtime.Listener, *url.URL) {
	t.Helper()
	u := &url.URL{Scheme: v.scheme, Host: "127.0.0.1:0", Path: "/msgtrans"}
	l, err := v.tr.Listen(context.Background(), u, v.serverConfig(lim))
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	u.Host = l.Addr().String()
	return l, u
}

// connect dials u and accepts the connection on l; both close when the test
// ends.
func (v variant) connect(t *testing.T, l runtime.Listener, u *url.URL) (client, server runtime.Conn) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client, err := v.tr.Dial(ctx, u, v.clientConfig())
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { client.Close() })
	return client, accept(t, l)
}

func accept(t *testing.T, l runtime.Listener) runtime.Conn {
	t.Helper()
	c, err := l.Accept()
	if err != nil {
		t.Fatalf("Accept: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func encode(t *testing.T, p *wire.Packet) []byte {
	t.Helper()
	b, err := wire.AppendPacket(nil, p)
	if err != nil {
		t.Fatalf("AppendPacket: %v", err)
	}
	return b
}

// send writes pkts from a goroutine (a large batch may not fit the socket
// buffers before the peer reads) and returns the channel of its result.
func send(c runtime.Conn, pkts ...[]byte) <-chan error {
	errc := make(chan error, 1)
	go func() { errc <- c.WritePackets(pkts) }()
	return errc
}

func checkPacket(t *testing.T, got wire.Packet, want *wire.Packet) {
	t.Helper()
	if got.Type != want.Type || got.BizType != want.BizType || got.MessageID != want.MessageID ||
		got.Flags != want.Flags || !bytes.Equal(got.Ext, want.Ext) || !bytes.Equal(got.Payload, want.Payload) {
		t.Fatalf("got packet %v, want %v", &got, want)
	}
}

// roundTrip sends one packet each way between a and b.
func roundTrip(t *testing.T, a, b runtime.Conn) {
	t.Helper()
	for _, dir := range [][2]runtime.Conn{{a, b}, {b, a}} {
		want := &wire.Packet{Type: wire.Request, BizType: 7, MessageID: 42, Ext: []byte("ext"), Payload: []byte("hello")}
		errc := send(dir[0], encode(t, want))
		got, err := dir[1].ReadPacket()
		if err != nil {
			t.Fatalf("ReadPacket: %v", err)
		}
		checkPacket(t, got, want)
		if err := <-errc; err != nil {
			t.Fatalf("WritePackets: %v", err)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	for _, v := range variants {
		t.Run(v.scheme, func(t *testing.T) {
			l, u := v.listen(t, wire.Limits{})
			client, server := v.connect(t, l, u)
			roundTrip(t, client, server)

			large := make([]byte, 512<<10)
			for i := range large {
				large[i] = byte(i * 7)
			}
			for _, tc := range []struct {
				name     string
				from, to runtime.Conn
			}{{"client to server", client, server}, {"server to client", server, client}} {
				t.Run(tc.name+"/batch of 100", func(t *testing.T) {
					want := make([]*wire.Packet, 100)
					pkts := make([][]byte, len(want))
					for i := range want {
						want[i] = &wire.Packet{Type: wire.OneWay, BizType: uint8(i), MessageID: uint32(i + 1),
							Payload: fmt.Appendf(nil, "packet %d", i)}
						pkts[i] = encode(t, want[i])
					}
					errc := send(tc.from, pkts...)
					for i := range want {
						got, err := tc.to.ReadPacket()
						if err != nil {
							t.Fatalf("ReadPacket %d: %v", i, err)
						}
						checkPacket(t, got, want[i])
					}
					if err := <-errc; err != nil {
						t.Fatalf("WritePackets: %v", err)
					}
				})
				t.Run(tc.name+"/512 KiB payload", func(t *testing.T) {
					want := &wire.Packet{Type: wire.Response, MessageID: 9, Flags: wire.FlagHighPriority, Payload: large}
					small := &wire.Packet{Type: wire.OneWay, Payload: []byte("after")}
					errc := send(tc.from, encode(t, want), encode(t, small))
					for _, w := range []*wire.Packet{want, small} {
						got, err := tc.to.ReadPacket()
						if err != nil {
							t.Fatalf("ReadPacket: %v", err)
						}
						checkPacket(t, got, w)
					}
					if err := <-errc; err != nil {
						t.Fatalf("WritePackets: %v", err)
					}
				})
			}
			if got, want := client.RemoteAddr().String(), server.LocalAddr().String(); got != want {
				t.Errorf("client RemoteAddr = %s, server LocalAddr = %s", got, want)
			}
			if got, want := server.RemoteAddr().String(), client.LocalAddr().String(); got != want {
				t.Errorf("server RemoteAddr = %s, client LocalAddr = %s", got, want)
			}
		})
	}
}

// eachCloser runs f over every variant on a connected pair that has
// exchanged a packet each way, with a the side that closes first and b its
// peer: once with the client closing, once with the server.
func eachCloser(t *testing.T, f func(t *testing.T, a, b runtime.Conn)) {
	for _, v := range variants {
		for _, closer := range []string{"client", "server"} {
			t.Run(v.scheme+"/"+closer+" closes", func(t *testing.T) {
				l, u := v.listen(t, wire.Limits{})
				client, server := v.connect(t, l, u)
				roundTrip(t, client, server)
				a, b := client, server
				if closer == "server" {
					a, b = server, client
				}
				f(t, a, b)
			})
		}
	}
}

func TestCleanCloseGivesEOF(t *testing.T) {
	eachCloser(t, func(t *testing.T, a, b runtime.Conn) {
		if err := a.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if _, err := b.ReadPacket(); err != io.EOF {
			t.Fatalf("ReadPacket after the peer's Close: got %v, want io.EOF", err)
		}
		if _, err := a.ReadPacket(); !errors.Is(err, net.ErrClosed) {
			t.Errorf("ReadPacket after Close: got %v, want net.ErrClosed", err)
		}
		if err := a.WritePackets([][]byte{encode(t, wire.NewText(1, "x"))}); err == nil {
			t.Errorf("WritePackets after Close succeeded")
		}
		a.Close() // idempotent
	})
}

// TestCloseWriteHandshake: CloseWrite sends the close frame yet keeps
// reading: a packet the peer sent before seeing it still arrives, then the
// peer's answering close frame ends the stream with io.EOF.
func TestCloseWriteHandshake(t *testing.T) {
	eachCloser(t, func(t *testing.T, a, b runtime.Conn) {
		late := &wire.Packet{Type: wire.OneWay, BizType: 3, MessageID: 9, Payload: []byte("sent before the close frame arrived")}
		if err := <-send(b, encode(t, late)); err != nil {
			t.Fatal(err)
		}
		cw, ok := a.(interface{ CloseWrite() error })
		if !ok {
			t.Fatal("the connection has no CloseWrite")
		}
		if err := cw.CloseWrite(); err != nil {
			t.Fatalf("CloseWrite: %v", err)
		}
		if err := cw.CloseWrite(); err != nil {
			t.Fatalf("a second CloseWrite: %v", err)
		}
		got, err := a.ReadPacket()
		if err != nil {
			t.Fatalf("ReadPacket after CloseWrite: %v", err)
		}
		checkPacket(t, got, late)
		// The peer sees the close frame as the end (answering it
		// with its own), then closes.
		if _, err := b.ReadPacket(); err != io.EOF {
			t.Fatalf("peer's ReadPacket after CloseWrite: got %v, want io.EOF", err)
		}
		if err := b.Close(); err != nil {
			t.Fatalf("peer's Close: %v", err)
		}
		if _, err := a.ReadPacket(); err != io.EOF {
			t.Fatalf("ReadPacket after the peer answered: got %v, want io.EOF", err)
		}
		if err := a.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
	})
}

// rawDial connects to u with a plain gorilla client.
func (v variant) rawDial(t *testing.T, u *url.URL) *websocket.Conn {
	t.Helper()
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second}
	if v.tr.TLS {
		d.TLSClientConfig = certs().Client.Clone()
	}
	c, _, err := d.Dial(u.String(), nil)
	if err != nil {
		t.Fatalf("raw dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// header returns a fixed header with the given version and lengths.
func header(version byte, extLen uint16, payloadLen uint32) []byte {
	h := []byte{version, 0, byte(wire.OneWay), 3, 0, 0, 0, 1}
	h = binary.BigEndian.AppendUint16(h, extLen)
	h = binary.BigEndian.AppendUint32(h, payloadLen)
	return binary.BigEndian.AppendUint16(h, 0)
}

func TestBadInput(t *testing.T) {
	const maxPayload = 1024
	valid := header(1, 0, 5)
	valid = append(valid, "hello"...)
	tests := []struct {
		name    string
		msgType int
		data    []byte
		want    error
	}{
		{"text message", websocket.TextMessage, valid, wire.ErrProtocol},
		{"bad version", websocket.BinaryMessage, append(header(2, 0, 5), "hello"...), wire.ErrProtocol},
		{"unknown packet type", websocket.BinaryMessage, func() []byte { b := bytes.Clone(valid); b[2] = 9; return b }(), wire.ErrProtocol},
		{"shorter than a header", websocket.BinaryMessage, valid[:10], wire.ErrTruncated},
		{"empty message", websocket.BinaryMessage, nil, wire.ErrTruncated},
		{"header declares more", websocket.BinaryMessage, append(header(1, 2, 100), "short"...), wire.ErrTruncated},
		{"trailing bytes", websocket.BinaryMessage, append(bytes.Clone(valid), "extra"...), wire.ErrProtocol},
		{"payload over the limit", websocket.BinaryMessage, append(header(1, 0, maxPayload+1), make([]byte, maxPayload+1)...), wire.ErrTooLarge},
		{"ext header over the limit", websocket.BinaryMessage, header(1, 0xFFFF, 0), wire.ErrTooLarge},
		{"message over the read limit", websocket.BinaryMessage, append(bytes.Clone(valid), make([]byte, 16<<10)...), wire.ErrTooLarge},
	}
	for _, v := range variants {
		t.Run(v.scheme, func(t *testing.T) {
			l, u := v.listen(t, wire.Limits{MaxPayload: maxPayload, MaxExtHeader: 256})
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					raw := v.rawDial(t, u)
					server := accept(t, l)
					if err := raw.WriteMessage(tc.msgType, tc.data); err != nil {
						t.Fatalf("raw write: %v", err)
					}
					_, err := server.ReadPacket()
					if !errors.Is(err, tc.want) {
						t.Fatalf("ReadPacket: got %v, want an error wrapping %v", err, tc.want)
					}
					server.Close()

					// The listener still serves healthy clients.
					client, server2 := v.connect(t, l, u)
					roundTrip(t, client, server2)
				})
			}
			t.Run("valid raw message", func(t *testing.T) {
				raw := v.rawDial(t, u)
				server := accept(t, l)
				if err := raw.WriteMessage(websocket.BinaryMessage, valid); err != nil {
					t.Fatalf("raw write: %v", err)
				}
				got, err := server.ReadPacket()
				if err != nil {
					t.Fatalf("ReadPacket: %v", err)
				}
				checkPacket(t, got, &wire.Packet{Type: wire.OneWay, BizType: 3, MessageID: 1, Payload: []byte("hello")})
			})
		})
	}
}

// TestPacketReadTimeout checks that a packet must arrive whole within the
// packet read timeout, while an idle connection (even one exchanging pings)
// is not timed out.
func TestPacketReadTimeout(t *testing.T) {
	const timeout = 100 * time.Millisecond
	for _, v := range variants {
		t.Run(v.scheme, func(t *testing.T) {
			l, u := v.listen(t, wire.Limits{PacketReadTimeout: timeout})

			t.Run("idle", func(t *testing.T) {
				raw := v.rawDial(t, u)
				server := accept(t, l)
				type result struct {
					p   wire.Packet
					err error
				}
				res := make(chan result, 1)
				go func() { p, err := server.ReadPacket(); res <- result{p, err} }()
				if err := raw.WriteControl(websocket.PingMessage, []byte("ping"), time.Now().Add(time.Second)); err != nil {
					t.Fatalf("ping: %v", err)
				}
				// Let more than the packet read timeout pass between packets:
				// the reader must keep waiting.
				select {
				case r := <-res:
					t.Fatalf("ReadPacket returned early: %v, %v", &r.p, r.err)
				case <-time.After(3 * timeout):
				}
				want := &wire.Packet{Type: wire.OneWay, BizType: 1, Payload: []byte("late")}
				if err := raw.WriteMessage(websocket.BinaryMessage, encode(t, want)); err != nil {
					t.Fatalf("raw write: %v", err)
				}
				r := <-res
				if r.err != nil {
					t.Fatalf("ReadPacket: %v", r.err)
				}
				checkPacket(t, r.p, want)
			})

			t.Run("stalled packet", func(t *testing.T) {
				raw := v.rawDial(t, u)
				server := accept(t, l)
				// A frame announcing 100 bytes of which only the header
				// arrives. The zero mask key leaves the payload as it is.
				frame := append([]byte{0x82, 0x80 | 100, 0, 0, 0, 0}, header(1, 0, 84)...)
				if _, err := raw.NetConn().Write(frame); err != nil {
					t.Fatalf("raw write: %v", err)
				}
				start := time.Now()
				_, err := server.ReadPacket()
				var ne net.Error
				if !errors.As(err, &ne) || !ne.Timeout() {
					t.Fatalf("ReadPacket: got %v, want a timeout", err)
				}
				if d := time.Since(start); d > 20*timeout {
					t.Errorf("ReadPacket timed out after %v, want about %v", d, timeout)
				}
			})
		})
	}
}

func TestNotWebSocket(t *testing.T) {
	for _, v := range variants {
		t.Run(v.scheme, func(t *testing.T) {
			l, u := v.listen(t, wire.Limits{})
			tr := &http.Transport{DisableKeepAlives: true, TLSClientConfig: certs().Client.Clone()}
			defer tr.CloseIdleConnections()
			hc := &http.Client{Transport: tr, Timeout: 10 * time.Second}
			scheme := "http"
			if v.tr.TLS {
				scheme = "https"
			}
			for _, tc := range []struct {
				path string
				want int
			}{{u.Path, http.StatusUpgradeRequired}, {"/elsewhere", http.StatusNotFound}} {
				resp, err := hc.Get(scheme + "://" + u.Host + tc.path)
				if err != nil {
					t.Fatalf("GET %s: %v", tc.path, err)
				}
				resp.Body.Close()
				if resp.StatusCode != tc.want {
					t.Errorf("GET %s: status %d, want %d", tc.path, resp.StatusCode, tc.want)
				}
			}
			client, server := v.connect(t, l, u)
			roundTrip(t, client, server)
		})
	}
}

// TestDialStatusHints checks the error of a dial answered with an HTTP
// status instead of an upgrade: a 404 names the path and asks whether it is
// right; every status is a *ws.StatusError beside websocket.ErrBadHandshake.
func TestDialStatusHints(t *testing.T) {
	forbidden := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "no", http.StatusForbidden)
	}))
	defer forbidden.Close()
	for _, v := range variants {
		t.Run(v.scheme, func(t *testing.T) {
			_, u := v.listen(t, wire.Limits{}) // serves /msgtrans
			tests := []struct {
				name, host, path string
				plainOnly        bool
				wantCode         int
				wantText         string
			}{
				{"no path", u.Host, "", false, http.StatusNotFound,
					`(http status 404: no WebSocket endpoint at path "/"; is the path right?)`},
				{"root", u.Host, "/", false, http.StatusNotFound,
					`(http status 404: no WebSocket endpoint at path "/"; is the path right?)`},
				{"other path", u.Host, "/ws", false, http.StatusNotFound,
					`(http status 404: no WebSocket endpoint at path "/ws"; is the path right?)`},
				{"forbidden", strings.TrimPrefix(forbidden.URL, "http://"), "/msgtrans", true, http.StatusForbidden,
					`(http status "403 Forbidden")`},
			}
			for _, tt := range tests {
				if tt.plainOnly && v.tr.TLS {
					continue
				}
				t.Run(tt.name, func(t *testing.T) {
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					defer cancel()
					dialed := &url.URL{Scheme: v.scheme, Host: tt.host, Path: tt.path}
					c, err := v.tr.Dial(ctx, dialed, v.clientConfig())
					if err == nil {
						c.Close()
						t.Fatalf("Dial %s: got a connection, want an error", dialed)
					}
					want := "msgtrans: dial " + dialed.String() + ": websocket: bad handshake " + tt.wantText
					if got := err.Error(); got != want {
						t.Errorf("Dial %s:\n got %s\nwant %s", dialed, got, want)
					}
					var se *ws.StatusError
					if !errors.As(err, &se) || se.StatusCode != tt.wantCode {
						t.Errorf("errors.As(*ws.StatusError): got %+v, want status code %d", se, tt.wantCode)
					}
					if !errors.Is(err, websocket.ErrBadHandshake) {
						t.Errorf("errors.Is(err, websocket.ErrBadHandshake): got false, want true")
					}
				})
			}
		})
	}
}

func TestListenerClose(t *testing.T) {
	for _, v := range variants {
		t.Run(v.scheme, func(t *testing.T) {
			l, u := v.listen(t, wire.Limits{})
			client, server := v.connect(t, l, u)

			errc := make(chan error, 1)
			go func() { _, err := l.Accept(); errc <- err }()
			if err := l.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			if err := <-errc; !errors.Is(err, net.ErrClosed) {
				t.Fatalf("Accept during Close: got %v, want net.ErrClosed", err)
			}
			if _, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
				t.Fatalf("Accept after Close: got %v, want net.ErrClosed", err)
			}
			l.Close() // idempotent

			// Accepted connections stay open; new ones are refused.
			roundTrip(t, client, server)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if c, err := v.tr.Dial(ctx, u, v.clientConfig()); err == nil {
				c.Close()
				t.Fatalf("Dial after listener Close succeeded")
			}
		})
	}
}

// TestUnacceptedConnClosed checks that Close closes a connection upgraded
// but never accepted.
func TestUnacceptedConnClosed(t *testing.T) {
	for _, v := range variants {
		t.Run(v.scheme, func(t *testing.T) {
			l, u := v.listen(t, wire.Limits{})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			client, err := v.tr.Dial(ctx, u, v.clientConfig())
			if err != nil {
				t.Fatalf("Dial: %v", err)
			}
			defer client.Close()
			l.Close()
			if _, err := client.ReadPacket(); err != io.EOF {
				t.Fatalf("ReadPacket: got %v, want io.EOF", err)
			}
		})
	}
}

func TestConfigErrors(t *testing.T) {
	ctx := context.Background()
	u := &url.URL{Scheme: "wss", Host: "127.0.0.1:0"}
	if _, err := (ws.Transport{TLS: true}).Listen(ctx, u, &runtime.TransportConfig{}); err == nil {
		t.Errorf("wss Listen without a certificate succeeded")
	}
	_, lu := variants[0].listen(t, wire.Limits{})
	bad := *lu
	bad.Path = "/other"
	_, err := ws.Transport{}.Dial(ctx, &bad, nil)
	if err == nil || !bytes.Contains([]byte(err.Error()), []byte("404")) {
		t.Errorf("Dial to a wrong path: got %v, want an error naming status 404", err)
	}
}

// countingConn counts the Write calls that reach a socket.
type countingConn struct {
	net.Conn
	writes *atomic.Int64
}

func (c countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

type countingListener struct {
	net.Listener
	writes *atomic.Int64
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return countingConn{c, l.writes}, nil
}

// TestBatchSharesWrites checks that a batch of small packets reaches the
// socket in a few writes rather than one per message, in both directions.
func TestBatchSharesWrites(t *testing.T) {
	const n = 50
	for _, v := range variants {
		t.Run(v.scheme, func(t *testing.T) {
			var serverWrites, clientWrites atomic.Int64
			nl, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			u := &url.URL{Scheme: v.scheme, Host: nl.Addr().String(), Path: "/"}
			l := ws.ServeOn(v.tr, countingListener{nl, &serverWrites}, u, v.serverConfig(wire.Limits{}))
			defer l.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			var d net.Dialer
			client, err := ws.DialWith(v.tr, ctx, u, v.clientConfig(), func(ctx context.Context, network, addr string) (net.Conn, error) {
				c, err := d.DialContext(ctx, network, addr)
				if err != nil {
					return nil, err
				}
				return countingConn{c, &clientWrites}, nil
			})
			if err != nil {
				t.Fatalf("Dial: %v", err)
			}
			defer client.Close()
			server := accept(t, l)
			roundTrip(t, client, server)

			pkts := make([][]byte, n)
			for i := range pkts {
				pkts[i] = encode(t, wire.NewOneWay(1, make([]byte, 64)))
			}
			for _, tc := range []struct {
				name     string
				from, to runtime.Conn
				writes   *atomic.Int64
			}{{"client", client, server, &clientWrites}, {"server", server, client, &serverWrites}} {
				before := tc.writes.Load()
				if err := tc.from.WritePackets(pkts); err != nil {
					t.Fatalf("%s WritePackets: %v", tc.name, err)
				}
				for i := range n {
					if _, err := tc.to.ReadPacket(); err != nil {
						t.Fatalf("ReadPacket %d: %v", i, err)
					}
				}
				if got := tc.writes.Load() - before; got > 3 {
					t.Errorf("%s: a batch of %d packets took %d socket writes, want at most 3", tc.name, n, got)
				} else {
					t.Logf("%s: a batch of %d packets took %d socket writes", tc.name, n, got)
				}
			}
		})
	}
}

// TestWriteDeadline checks that a write deadline in the past fails
// WritePackets.
func TestWriteDeadline(t *testing.T) {
	for _, v := range variants {
		t.Run(v.scheme, func(t *testing.T) {
			l, u := v.listen(t, wire.Limits{})
			client, _ := v.connect(t, l, u)
			if err := client.SetWriteDeadline(time.Now().Add(-time.Second)); err != nil {
				t.Fatalf("SetWriteDeadline: %v", err)
			}
			err := client.WritePackets([][]byte{encode(t, wire.NewText(1, "late"))})
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() {
				t.Fatalf("WritePackets: got %v, want a timeout", err)
			}
		})
	}
}

// TestCloseUnblocks checks that Close unblocks a WritePackets stuck on a peer
// that does not read, and a ReadPacket waiting for a packet.
func TestCloseUnblocks(t *testing.T) {
	for _, v := range variants {
		t.Run(v.scheme, func(t *testing.T) {
			l, u := v.listen(t, wire.Limits{})
			client, server := v.connect(t, l, u)
			big := encode(t, wire.NewOneWay(1, make([]byte, 512<<10)))
			writeErr := make(chan error, 1)
			go func() {
				// The client never reads: the socket buffers fill up and a
				// write blocks.
				for {
					if err := server.WritePackets([][]byte{big, big}); err != nil {
						writeErr <- err
						return
					}
				}
			}()
			readErr := make(chan error, 1)
			go func() { _, err := server.ReadPacket(); readErr <- err }()
			if err := server.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			if err := <-writeErr; err == nil {
				t.Fatalf("WritePackets after Close: no error")
			}
			if err := <-readErr; !errors.Is(err, net.ErrClosed) {
				t.Fatalf("ReadPacket during Close: got %v, want net.ErrClosed", err)
			}
			client.Close()
		})
	}
}

// TestAbnormalEnds checks the errors for connections that end other than
// with a clean close.
func TestAbnormalEnds(t *testing.T) {
	for _, v := range variants {
		t.Run(v.scheme, func(t *testing.T) {
			l, u := v.listen(t, wire.Limits{})
			for _, tc := range []struct {
				name  string
				act   func(*websocket.Conn) error
				check func(error) bool
			}{
				{"close code 4000", func(c *websocket.Conn) error {
					return c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(4000, "bye"), time.Now().Add(time.Second))
				}, func(err error) bool { return err != nil && err != io.EOF }},
				{"no close frame", func(c *websocket.Conn) error {
					return c.NetConn().Close()
				}, func(err error) bool { return errors.Is(err, io.ErrUnexpectedEOF) }},
				{"bad opcode", func(c *websocket.Conn) error {
					_, err := c.NetConn().Write([]byte{0x83, 0x80, 0, 0, 0, 0})
					return err
				}, func(err error) bool { return errors.Is(err, wire.ErrProtocol) }},
				{"ends inside a message", func(c *websocket.Conn) error {
					if _, err := c.NetConn().Write(append([]byte{0x82, 0x80 | 100, 0, 0, 0, 0}, header(1, 0, 84)...)); err != nil {
						return err
					}
					return c.NetConn().Close()
				}, func(err error) bool { return errors.Is(err, wire.ErrTruncated) }},
			} {
				t.Run(tc.name, func(t *testing.T) {
					raw := v.rawDial(t, u)
					server := accept(t, l)
					if err := tc.act(raw); err != nil {
						t.Fatalf("raw client: %v", err)
					}
					if _, err := server.ReadPacket(); !tc.check(err) {
						t.Fatalf("ReadPacket: unexpected error %v", err)
					}
				})
			}
		})
	}
}

// TestBufferedReadAhead: messages written together are read with one read
// from the socket, and Buffered says bytes are left until the last message
// is returned, then none.
func TestBufferedReadAhead(t *testing.T) {
	const packets = 3
	for _, v := range variants {
		t.Run(v.scheme, func(t *testing.T) {
			l, u := v.listen(t, wire.Limits{})
			client, server := v.connect(t, l, u)
			ra, ok := server.(runtime.ReadAheader)
			if !ok {
				t.Fatalf("%T does not report what it read ahead", server)
			}
			batch := make([][]byte, packets)
			for i := range batch {
				batch[i] = encode(t, wire.NewOneWay(1, []byte("read ahead")))
			}
			if err := client.WritePackets(batch); err != nil {
				t.Fatal(err)
			}
			for i := range packets {
				if _, err := server.ReadPacket(); err != nil {
					t.Fatalf("packet %d: %v", i, err)
				}
				if got, last := ra.Buffered(), i == packets-1; (got == 0) != last {
					t.Fatalf("after packet %d of %d, Buffered() = %d", i+1, packets, got)
				}
			}
		})
	}
}

// TestBufferedWhileClosing: the session's reader may ask Buffered after a
// Close from elsewhere has begun draining the connection; under -race this
// checks that the answer does not read the buffers the drain is using.
func TestBufferedWhileClosing(t *testing.T) {
	for _, v := range variants {
		t.Run(v.scheme, func(t *testing.T) {
			l, u := v.listen(t, wire.Limits{})
			client, server := v.connect(t, l, u)
			pkt := encode(t, wire.NewOneWay(1, []byte("drained")))
			if err := client.WritePackets([][]byte{pkt, pkt}); err != nil {
				t.Fatal(err)
			}
			if _, err := server.ReadPacket(); err != nil {
				t.Fatal(err)
			}
			ra := server.(runtime.ReadAheader)
			sent := send(client, pkt, pkt, pkt, pkt)
			_ = server.Close() // drains what the client sends
			for range 1000 {
				_ = ra.Buffered()
			}
			<-sent
			// The client reads on, so that it answers the close frame and
			// the drain ends.
			for {
				if _, err := client.ReadPacket(); err != nil {
					break
				}
			}
			<-server.(runtime.Releaser).Released()
		})
	}
}
