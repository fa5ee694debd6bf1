package runtime_test

import (
	"bytes"
	"crypto/tls"
	"encoding/binary"
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

// WriteFrames writes n binary messages of b each in one write to the
// connection, as a client that frames its messages itself floods a server:
// far faster than gorilla's one write per message.
func (p wsPeer) WriteFrames(b []byte, n int) error {
	// A client frame: FIN and the binary opcode, the mask bit and the
	// length, a zero masking key (the payload goes unchanged), the payload.
	frame := []byte{0x82}
	switch {
	case len(b) < 126:
		frame = append(frame, 0x80|byte(len(b)))
	case len(b) <= 0xffff:
		frame = append(frame, 0x80|126, byte(len(b)>>8), byte(len(b)))
	default:
		frame = append(frame, 0x80|127)
		frame = binary.BigEndian.AppendUint64(frame, uint64(len(b)))
	}
	frame = append(append(frame, 0, 0, 0, 0), b...)
	_, err := p.c.UnderlyingConn().Write(bytes.Repeat(frame, n))
	return err
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
