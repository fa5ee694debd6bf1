package tcp_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/url"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/msgtrans/msgtrans-go/internal/testcert"
	"github.com/msgtrans/msgtrans-go/runtime"
	"github.com/msgtrans/msgtrans-go/transports/tcp"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestTLSHandshakeOffTheAcceptPath: a peer that opens a TCP connection to a
// tls:// listener and says nothing is dropped at the handshake timeout, and
// meanwhile a well-behaved client is accepted without waiting for it.
func TestTLSHandshakeOffTheAcceptPath(t *testing.T) {
	certs := testcert.New()
	cfg := &runtime.TransportConfig{TLS: certs.Server, HandshakeTimeout: 200 * time.Millisecond}
	u, _ := url.Parse("tls://127.0.0.1:0")
	l, err := tcp.Transport{TLS: true}.Listen(context.Background(), u, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	silent, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()

	addr, _ := url.Parse("tls://" + l.Addr().String())
	dialed := make(chan error, 1)
	go func() {
		c, err := tcp.Transport{TLS: true}.Dial(context.Background(), addr, &runtime.TransportConfig{TLS: certs.Client})
		if err == nil {
			defer c.Close()
			_, err = c.ReadPacket() // ends when the server side closes
			if errors.Is(err, io.EOF) {
				err = nil
			}
		}
		dialed <- err
	}()
	c, err := l.Accept()
	if err != nil {
		t.Fatalf("Accept: %v", err)
	}
	_ = c.Close()
	if err := <-dialed; err != nil {
		t.Fatalf("client: %v", err)
	}
	// The silent peer is disconnected by the server at the timeout.
	_ = silent.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := silent.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Errorf("silent peer read %v, want EOF from the server closing it", err)
	}
}

func TestTLSListenerNeedsCertificate(t *testing.T) {
	u, _ := url.Parse("tls://127.0.0.1:0")
	if _, err := (tcp.Transport{TLS: true}).Listen(context.Background(), u, nil); err == nil {
		t.Fatal("tls listener without a certificate started")
	}
}
