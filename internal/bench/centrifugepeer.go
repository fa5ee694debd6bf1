package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/centrifugal/centrifuge"
	"github.com/centrifugal/protocol"
	"github.com/gorilla/websocket"
	"google.golang.org/protobuf/proto"

	"github.com/msgtrans/msgtrans-go/internal/bench/gen/benchv1"
)

// Centrifuge as a peer (peers.go): a centrifuge.Node with its default
// in-memory broker, served over its WebSocket transport. Each client is
// subscribed to one channel by the server when it connects (a server-side
// subscription); a broadcast is one Node.Publish to that channel, which the
// node encodes once and queues to every subscriber's writer.
//
// The clients use Centrifuge's protobuf protocol (the binary one, so that
// the publication carries the same protobuf bytes as msgtrans's broadcast)
// through a minimal hand-written client rather than centrifuge-go: one
// gorilla connection per client, a connect command, then one reader
// goroutine that decodes each frame's replies and handles publications
// inline and answers the server's pings. centrifuge-go hands every reply
// through two more goroutines (its reader, then a callback queue) before a
// publication handler runs, CPU that the clients process would take from
// the server on these two cores; the msgtrans client also handles a
// broadcast on its reader goroutine.

const (
	centrifugeChannel = "bench"
	centrifugePath    = "/connection/websocket"
)

// startCentrifugeFanout starts a Centrifuge node and its WebSocket handler
// on a loopback port.
func startCentrifugeFanout(e *env) (*fanoutServer, error) {
	node, err := centrifuge.New(centrifuge.Config{
		LogLevel: centrifuge.LogLevelError,
		LogHandler: func(le centrifuge.LogEntry) {
			e.log.Error("centrifuge: "+le.Message, "fields", le.Fields)
		},
	})
	if err != nil {
		return nil, err
	}
	node.OnConnecting(func(context.Context, centrifuge.ConnectEvent) (centrifuge.ConnectReply, error) {
		return centrifuge.ConnectReply{
			Credentials:   &centrifuge.Credentials{UserID: "bench"},
			Subscriptions: map[string]centrifuge.SubscribeOptions{centrifugeChannel: {}},
		}, nil
	})
	node.OnConnect(func(*centrifuge.Client) {})
	if err := node.Run(); err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		_ = node.Shutdown(context.Background())
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle(centrifugePath, centrifuge.NewWebsocketHandler(node, centrifuge.WebsocketConfig{
		CheckOrigin: func(*http.Request) bool { return true },
	}))
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = hs.Serve(l)
	}()
	return &fanoutServer{
		addr: "ws://" + l.Addr().String() + centrifugePath,
		broadcast: func(p *benchv1.Payload) error {
			_, err := node.Publish(centrifugeChannel, marshal(&benchv1.FanoutRequest{Payload: p}))
			return err
		},
		count: node.Hub().NumClients,
		stop: func() {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			_ = node.Shutdown(ctx) // disconnects every client
			_ = hs.Close()
			<-done
		},
	}, nil
}

// centrifugeClient is one client of the clients process.
type centrifugeClient struct {
	ws   *websocket.Conn
	done chan struct{} // closed when the reader exits
}

func (c *centrifugeClient) beat(uint64) error { return nil }

func (c *centrifugeClient) alive() bool {
	select {
	case <-c.done:
		return false
	default:
		return true
	}
}

// dialCentrifuge connects to url with the protobuf protocol, sends the
// connect command, waits for its reply and starts the reader, which calls
// deliver with each publication's payload.
func dialCentrifuge(ctx context.Context, url string, deliver func(*benchv1.Payload)) (clientConn, error) {
	d := websocket.Dialer{Subprotocols: []string{"centrifuge-protobuf"}}
	ws, _, err := d.DialContext(ctx, url, nil)
	if err != nil {
		return nil, err
	}
	enc := protocol.NewProtobufCommandEncoder()
	b, err := enc.Encode(&protocol.Command{Id: 1, Connect: &protocol.ConnectRequest{}})
	if err == nil {
		err = ws.WriteMessage(websocket.BinaryMessage, b)
	}
	if err != nil {
		ws.Close()
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = ws.SetReadDeadline(dl)
	}
	dec := protocol.NewProtobufReplyDecoder(nil)
	var buf []byte
	for connected := false; !connected; {
		if buf, err = readWSMessage(ws, buf); err != nil {
			ws.Close()
			return nil, err
		}
		_ = dec.Reset(buf)
		for {
			r, err := dec.Decode()
			if err == io.EOF {
				break
			}
			if err != nil {
				ws.Close()
				return nil, err
			}
			if r.Id == 1 {
				if r.Error != nil {
					ws.Close()
					return nil, fmt.Errorf("centrifuge connect: %d %s", r.Error.Code, r.Error.Message)
				}
				connected = true
			}
		}
	}
	_ = ws.SetReadDeadline(time.Time{})
	c := &centrifugeClient{ws: ws, done: make(chan struct{})}
	go c.read(dec, buf, deliver)
	return c, nil
}

// read handles what the server sends until the connection fails:
// publications go to deliver, pings (empty replies) are answered with an
// empty command.
func (c *centrifugeClient) read(dec *protocol.ProtobufReplyDecoder, buf []byte, deliver func(*benchv1.Payload)) {
	defer close(c.done)
	pong, _ := protocol.NewProtobufCommandEncoder().Encode(&protocol.Command{})
	for {
		var err error
		if buf, err = readWSMessage(c.ws, buf); err != nil {
			return
		}
		_ = dec.Reset(buf)
		for {
			r, err := dec.Decode()
			if err != nil {
				if err != io.EOF {
					fmt.Fprintln(os.Stderr, "centrifuge client:", err)
				}
				break
			}
			switch {
			case r.Push != nil && r.Push.Pub != nil:
				var m benchv1.FanoutRequest
				if proto.Unmarshal(r.Push.Pub.Data, &m) == nil && m.Payload != nil {
					deliver(m.Payload)
				}
			case r.Id == 0 && r.Push == nil && r.Error == nil:
				if err := c.ws.WriteMessage(websocket.BinaryMessage, pong); err != nil {
					return
				}
			}
		}
	}
}

// readWSMessage reads the next message of ws into buf (reused, grown as
// needed) and returns it.
func readWSMessage(ws *websocket.Conn, buf []byte) ([]byte, error) {
	_, r, err := ws.NextReader()
	if err != nil {
		return buf, err
	}
	buf = buf[:0]
	for {
		if len(buf) == cap(buf) {
			if len(buf) >= maxRawFrame {
				return buf, errors.New("websocket message too large")
			}
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}
