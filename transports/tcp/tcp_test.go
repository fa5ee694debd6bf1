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
	"github.com/msgtrans/msgtrans-go/wire"
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

// TestBufferedReadAhead: packets written together are read with one read
// from the socket, and Buffered says what is left of it, down to zero once
// the last is returned (the read loop yields to handlers only then).
func TestBufferedReadAhead(t *testing.T) {
	certs := testcert.New()
	for _, tt := range []struct {
		scheme       string
		tr           tcp.Transport
		server, dial *runtime.TransportConfig
	}{
		{"tcp", tcp.Transport{}, &runtime.TransportConfig{}, &runtime.TransportConfig{}},
		{"tls", tcp.Transport{TLS: true}, &runtime.TransportConfig{TLS: certs.Server}, &runtime.TransportConfig{TLS: certs.Client}},
	} {
		t.Run(tt.scheme, func(t *testing.T) {
			u, _ := url.Parse(tt.scheme + "://127.0.0.1:0")
			l, err := tt.tr.Listen(context.Background(), u, tt.server)
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			addr, _ := url.Parse(tt.scheme + "://" + l.Addr().String())
			client, err := tt.tr.Dial(context.Background(), addr, tt.dial)
			if err != nil {
				t.Fatal(err)
			}
			defer client.Close()
			server, err := l.Accept()
			if err != nil {
				t.Fatal(err)
			}
			defer server.Close()
			ra, ok := server.(runtime.ReadAheader)
			if !ok {
				t.Fatalf("%T does not report what it read ahead", server)
			}

			const packets = 3
			batch := make([][]byte, packets)
			for i := range batch {
				if batch[i], err = wire.AppendPacket(nil, wire.NewOneWay(1, []byte("read ahead"))); err != nil {
					t.Fatal(err)
				}
			}
			if err := client.WritePackets(batch); err != nil {
				t.Fatal(err)
			}
			for i := range packets {
				if _, err := server.ReadPacket(); err != nil {
					t.Fatalf("packet %d: %v", i, err)
				}
				left := (packets - 1 - i) * len(batch[0])
				if got := ra.Buffered(); got != left {
					t.Fatalf("after packet %d of %d, Buffered() = %d, want %d", i+1, packets, got, left)
				}
			}
		})
	}
}
