package runtime_test

import (
	"crypto/tls"
	"net/url"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

func init() {
	extraTransportCases = append(extraTransportCases,
		transportCase{name: "ws", listen: loopback("ws", "/ws"), raw: wsRaw},
		transportCase{name: "wss", listen: loopback("wss", "/ws"), tls: true, raw: wsRaw},
	)
}

// wsPeer is a raw WebSocket peer: each frame is one binary message.
type wsPeer struct{ c *websocket.Conn }

func (p wsPeer) WriteFrame(b []byte, _ int) error {
	return p.c.WriteMessage(websocket.BinaryMessage, b)
}
func (p wsPeer) WriteText(s string) error { return p.c.WriteMessage(websocket.TextMessage, []byte(s)) }
func (p wsPeer) CloseWrite() error        { return p.c.UnderlyingConn().Close() }
func (p wsPeer) Close() error             { return p.c.Close() }
func (p wsPeer) WaitClosed(d time.Duration) error {
	return untilClosed(p.c.SetReadDeadline, func() error { _, _, err := p.c.ReadMessage(); return err }, d)
}

func wsRaw(t *testing.T, addr string, tc *tls.Config) rawPeer {
	u, _ := url.Parse(addr)
	d := websocket.Dialer{}
	if u.Scheme == "wss" {
		d.TLSClientConfig = tc.Clone()
		d.TLSClientConfig.ServerName = u.Hostname()
	}
	c, _, err := d.Dial(addr, nil)
	if err != nil {
		t.Fatalf("raw ws dial: %v", err)
	}
	return wsPeer{c}
}
