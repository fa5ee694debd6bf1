package ws_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/msgtrans/msgtrans-go/runtime"
	"github.com/msgtrans/msgtrans-go/transports/ws"
	"github.com/msgtrans/msgtrans-go/wire"
)

// TestSubprotocolSelected: a client offering msgtrans.v1 or msgtrans gets
// the first of them it lists selected (browsers fail a connection that
// offered subprotocols and got none); one offering none is served without;
// one offering only others is answered 400. Read with a gorilla client.
func TestSubprotocolSelected(t *testing.T) {
	tests := []struct {
		offered []string
		want    string // selected
		status  int    // the refusal's status, 0 when upgraded
	}{
		{nil, "", 0},
		{[]string{"msgtrans"}, "msgtrans", 0},
		{[]string{"msgtrans.v1"}, "msgtrans.v1", 0},
		{[]string{"msgtrans", "msgtrans.v1"}, "msgtrans", 0},
		{[]string{"msgtrans.v1", "msgtrans"}, "msgtrans.v1", 0},
		{[]string{"chat", "msgtrans.v1"}, "msgtrans.v1", 0},
		{[]string{"msgtrans.v2", "msgtrans"}, "msgtrans", 0},
		{[]string{"mqtt"}, "", http.StatusBadRequest},
		{[]string{"MSGTRANS"}, "", http.StatusBadRequest}, // subprotocol names are case-sensitive
	}
	for _, v := range variants {
		t.Run(v.scheme, func(t *testing.T) {
			l, u := v.listen(t, wire.Limits{})
			for _, tc := range tests {
				t.Run(strings.Join(tc.offered, ",")+"/", func(t *testing.T) {
					d := v.dialer()
					d.Subprotocols = tc.offered
					c, resp, err := d.Dial(u.String(), nil)
					if tc.status != 0 {
						if err == nil {
							c.Close()
							t.Fatalf("dial succeeded with subprotocol %q, want status %d", c.Subprotocol(), tc.status)
						}
						if resp == nil || resp.StatusCode != tc.status {
							t.Fatalf("dial: %v (response %v), want status %d", err, resp, tc.status)
						}
						body, _ := io.ReadAll(resp.Body)
						if !strings.Contains(string(body), "msgtrans.v1") {
							t.Errorf("refusal body %q does not say which subprotocols are spoken", body)
						}
						return
					}
					if err != nil {
						t.Fatalf("dial: %v", err)
					}
					t.Cleanup(func() { c.Close() })
					if got := c.Subprotocol(); got != tc.want {
						t.Errorf("selected %q, want %q", got, tc.want)
					}
					// The connection carries packets.
					server := accept(t, l)
					p := &wire.Packet{Type: wire.OneWay, BizType: 3, MessageID: 1, Payload: []byte("hello")}
					if err := c.WriteMessage(websocket.BinaryMessage, encode(t, p)); err != nil {
						t.Fatal(err)
					}
					got, err := server.ReadPacket()
					if err != nil {
						t.Fatalf("ReadPacket: %v", err)
					}
					checkPacket(t, got, p)
				})
			}
		})
	}
}

// TestRawUpgrade: the upgrade response to a request written by hand, as a
// client in another language would send it, selects the subprotocol, and
// never permessage-deflate, even when the request offers it.
func TestRawUpgrade(t *testing.T) {
	for _, v := range variants {
		t.Run(v.scheme, func(t *testing.T) {
			_, u := v.listen(t, wire.Limits{})
			var c net.Conn
			c, err := net.Dial("tcp", u.Host)
			if err != nil {
				t.Fatal(err)
			}
			if v.tr.TLS {
				cfg := certs().Client.Clone()
				cfg.ServerName = "127.0.0.1"
				cfg.NextProtos = []string{"http/1.1"}
				c = tls.Client(c, cfg)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			req := "GET /msgtrans HTTP/1.1\r\n" +
				"Host: " + u.Host + "\r\n" +
				"Upgrade: websocket\r\n" +
				"Connection: Upgrade\r\n" +
				"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" +
				"Sec-WebSocket-Version: 13\r\n" +
				"Sec-WebSocket-Protocol: msgtrans.v1, msgtrans\r\n" +
				"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n" +
				"Origin: https://page.example.com\r\n\r\n"
			if _, err := io.WriteString(c, req); err != nil {
				t.Fatal(err)
			}
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatalf("reading the upgrade response: %v", err)
			}
			for _, h := range []struct{ name, want string }{
				{"Upgrade", "websocket"},
				{"Connection", "Upgrade"},
				// RFC 6455, section 1.3: the accept key of this request's key.
				{"Sec-WebSocket-Accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="},
				{"Sec-WebSocket-Protocol", "msgtrans.v1"},
				{"Sec-WebSocket-Extensions", ""},
			} {
				if got := resp.Header.Get(h.name); got != h.want {
					t.Errorf("%s: %q, want %q", h.name, got, h.want)
				}
			}
			if resp.StatusCode != http.StatusSwitchingProtocols {
				t.Errorf("status %d, want 101", resp.StatusCode)
			}
		})
	}
}

// TestDialerSubprotocols: the dialer offers msgtrans.v1 then msgtrans;
// a server selecting none (an older msgtrans-go) is accepted, one selecting
// something else is not.
func TestDialerSubprotocols(t *testing.T) {
	tests := []struct {
		selected string
		wantErr  string
	}{
		{"", ""},
		{"msgtrans.v1", ""},
		{"msgtrans", ""},
		{"mqtt", `selected WebSocket subprotocol "mqtt"`},
	}
	for _, tc := range tests {
		t.Run(tc.selected+"/", func(t *testing.T) {
			offered := make(chan string, 1)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				offered <- r.Header.Get("Sec-WebSocket-Protocol")
				var h http.Header
				if tc.selected != "" {
					h = http.Header{"Sec-Websocket-Protocol": {tc.selected}}
				}
				c, err := (&websocket.Upgrader{}).Upgrade(w, r, h)
				if err != nil {
					return
				}
				_, _, _ = c.ReadMessage() // until the dialer closes
				c.Close()
			}))
			defer srv.Close()
			u := &url.URL{Scheme: "ws", Host: strings.TrimPrefix(srv.URL, "http://"), Path: "/"}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			c, err := ws.Transport{}.Dial(ctx, u, &runtime.TransportConfig{})
			if got := <-offered; got != "msgtrans.v1, msgtrans" {
				t.Errorf("offered %q, want %q", got, "msgtrans.v1, msgtrans")
			}
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("Dial: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("Dial: %v, want an error containing %q", err, tc.wantErr)
			}
			if c != nil {
				c.Close()
				<-c.(runtime.Releaser).Released()
			}
		})
	}
}
