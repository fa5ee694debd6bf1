package ws_test

import (
	"net"
	"net/url"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/msgtrans/msgtrans-go/transports/ws"
	"github.com/msgtrans/msgtrans-go/wire"
)

// gate holds every write to the sockets it guards while it is shut.
type gate struct {
	mu   sync.Mutex
	shut chan struct{} // nil while open
}

func (g *gate) close() {
	g.mu.Lock()
	g.shut = make(chan struct{})
	g.mu.Unlock()
}

func (g *gate) open() {
	g.mu.Lock()
	if g.shut != nil {
		close(g.shut)
		g.shut = nil
	}
	g.mu.Unlock()
}

func (g *gate) wait() {
	g.mu.Lock()
	shut := g.shut
	g.mu.Unlock()
	if shut != nil {
		<-shut
	}
}

type gatedConn struct {
	net.Conn
	g *gate
}

func (c gatedConn) Write(p []byte) (int, error) {
	c.g.wait()
	return c.Conn.Write(p)
}

type gatedListener struct {
	net.Listener
	g *gate
}

func (l gatedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return gatedConn{c, l.g}, nil
}

// TestPingBurstOnePong: a burst of WebSocket pings that arrives while the
// answer to an earlier one is still being written gets one pong more, with
// the latest ping's payload (RFC 6455, section 5.5.3), not a pong each. The
// server's writes are held while the burst is read, so the burst is whole
// before any pong can go.
func TestPingBurstOnePong(t *testing.T) {
	const pings = 1000
	for _, v := range variants {
		t.Run(v.scheme, func(t *testing.T) {
			nl, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			g := &gate{}
			u := &url.URL{Scheme: v.scheme, Host: nl.Addr().String(), Path: "/"}
			l := ws.ServeOn(v.tr, gatedListener{nl, g}, u, v.serverConfig(wire.Limits{}))
			defer l.Close()
			client := v.rawDial(t, u)
			server := accept(t, l)

			var (
				mu     sync.Mutex
				pongs  []string
				latest = make(chan struct{})
			)
			client.SetPongHandler(func(s string) error {
				mu.Lock()
				pongs = append(pongs, s)
				mu.Unlock()
				if s == strconv.Itoa(pings-1) {
					close(latest)
				}
				return nil
			})
			g.close()
			for i := range pings {
				if err := client.WriteControl(websocket.PingMessage, []byte(strconv.Itoa(i)), time.Now().Add(10*time.Second)); err != nil {
					t.Fatalf("ping %d: %v", i, err)
				}
			}
			// The packet after the burst is read once every ping before it
			// has been handled.
			if err := client.WriteMessage(websocket.BinaryMessage, encode(t, wire.NewOneWay(1, []byte("after")))); err != nil {
				t.Fatal(err)
			}
			if _, err := server.ReadPacket(); err != nil {
				t.Fatalf("ReadPacket after the pings: %v", err)
			}
			read := make(chan error, 1)
			go func() {
				for {
					if _, _, err := client.ReadMessage(); err != nil {
						read <- err
						return
					}
				}
			}()
			g.open()
			select {
			case <-latest:
			case <-time.After(10 * time.Second):
				mu.Lock()
				t.Fatalf("the latest of %d pings was not answered; pongs %q", pings, pongs)
			}
			// Nothing newer is pending: any pong still to come would be one
			// too many. The server's close frame comes after them all.
			if err := server.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			<-read

			mu.Lock()
			defer mu.Unlock()
			if len(pongs) > 2 {
				t.Fatalf("%d pings got %d pongs (the last %q), want one or two", pings, len(pongs), pongs[len(pongs)-1])
			}
			t.Logf("%d pings, pongs %q", pings, pongs)
		})
	}
}
