package runtime_test

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"net/url"
	"testing"
	"time"

	quicgo "github.com/quic-go/quic-go"

	"github.com/msgtrans/msgtrans-go/transports/quic"
)

func init() {
	extraTransportCases = append(extraTransportCases,
		transportCase{name: "quic", listen: loopback("quic", ""), tls: true, raw: quicRaw})
	mixedAddrs = append(mixedAddrs, "quic://127.0.0.1:0")
}

// quicPeer is a raw QUIC peer writing length-prefixed frames on one stream.
type quicPeer struct {
	c *quicgo.Conn
	s *quicgo.Stream
}

func (p quicPeer) WriteFrame(b []byte, declared int) error {
	_, err := p.s.Write(append(binary.BigEndian.AppendUint32(nil, uint32(declared)), b...))
	return err
}
func (p quicPeer) WriteText(string) error { return errNoText }
func (p quicPeer) CloseWrite() error      { return p.s.Close() }
func (p quicPeer) Close() error           { return p.c.CloseWithError(0, "") }
func (p quicPeer) WaitClosed(d time.Duration) error {
	buf := make([]byte, 4096)
	return untilClosed(p.s.SetReadDeadline, func() error { _, err := p.s.Read(buf); return err }, d)
}

// refusedBeforeSession reports whether err ended a QUIC connection the
// server refused before it could become a session: quic-go refuses
// handshakes that complete while its accept queue (32) is full.
func refusedBeforeSession(err error) bool {
	var te *quicgo.TransportError
	return errors.As(err, &te) && te.Remote && te.ErrorCode == quicgo.ConnectionRefused
}

func quicRaw(t *testing.T, addr string, tc *tls.Config) rawPeer {
	u, _ := url.Parse(addr)
	tc = tc.Clone()
	tc.ServerName = u.Hostname()
	tc.NextProtos = []string{quic.ALPN}
	c, err := quicgo.DialAddr(context.Background(), u.Host, tc, nil)
	if refusedBeforeSession(err) {
		return refusedPeer{err}
	}
	if err != nil {
		t.Errorf("raw quic dial: %v", err)
		return refusedPeer{err}
	}
	s, err := c.OpenStreamSync(context.Background())
	if refusedBeforeSession(err) {
		return refusedPeer{err}
	}
	if err != nil {
		t.Errorf("raw quic stream: %v", err)
		return refusedPeer{err}
	}
	return quicPeer{c, s}
}

// refusedPeer is a raw peer whose connection the server refused (or that
// could not be made): every call returns why.
type refusedPeer struct{ err error }

func (p refusedPeer) WriteFrame([]byte, int) error   { return p.err }
func (p refusedPeer) WriteText(string) error         { return p.err }
func (p refusedPeer) CloseWrite() error              { return p.err }
func (p refusedPeer) Close() error                   { return nil }
func (p refusedPeer) WaitClosed(time.Duration) error { return p.err }
