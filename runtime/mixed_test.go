package runtime_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"strings"
	"testing"

	"github.com/msgtrans/msgtrans-go/internal/testcert"
	"github.com/msgtrans/msgtrans-go/runtime"
	"github.com/msgtrans/msgtrans-go/wire"
)

// mixedAddrs are the listen addresses of one server speaking every network
// transport at once.
var mixedAddrs = []string{"tcp://127.0.0.1:0", "ws://127.0.0.1:0/ws", "wss://127.0.0.1:0/ws", "tls://127.0.0.1:0"}

// TestOneServerEveryTransport: one server, one group holding a client of
// each transport; a group message reaches them all, and a request from each
// reaches the same handler.
func TestOneServerEveryTransport(t *testing.T) {
	certs := testcert.New()
	joined := make(chan *runtime.Session, len(mixedAddrs))
	srv, err := runtime.NewServer(runtime.WithTLS(certs.Server))
	if err != nil {
		t.Fatal(err)
	}
	srv.Handle(bizJoin, runtime.HandlerFunc(func(_ context.Context, s *runtime.Session, p *wire.Packet) (*wire.Packet, error) {
		joined <- s
		return p.Reply([]byte(s.Transport())), srv.Join("room", s)
	}))
	if err := srv.Listen(context.Background(), mixedAddrs...); err != nil {
		t.Fatal(err)
	}
	addrs := srv.Addrs()
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx) }()
	defer func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("Serve returned %v after cancellation, want nil", err)
		}
	}()

	var inbox []chan *wire.Packet
	for _, addr := range addrs {
		c, err := runtime.Dial(context.Background(), addr, runtime.WithTLS(certs.Client))
		if err != nil {
			t.Fatalf("Dial(%s): %v", addr, err)
		}
		defer c.Close()
		ch := make(chan *wire.Packet, 1)
		c.Handle(bizNote, collect(ch))
		inbox = append(inbox, ch)
		resp, err := c.Request(context.Background(), wire.NewRequest(bizJoin, nil))
		if err != nil {
			t.Fatalf("%s: join: %v", addr, err)
		}
		if want := addr[:len(resp.Payload)]; resp.Text() != want {
			t.Errorf("session transport %q, want %q", resp.Text(), want)
		}
		<-joined
	}
	if n, err := srv.Push(context.Background(), runtime.ToGroup("room"), wire.NewText(bizNote, "hello, everyone")); err != nil || n != len(addrs) {
		t.Fatalf("SendGroup = %d, %v; want %d", n, err, len(addrs))
	}
	for i, ch := range inbox {
		if p := recv(t, ch); p.Text() != "hello, everyone" {
			t.Errorf("%s client got %q", addrs[i], p.Text())
		}
	}
}

func TestServeReturnsListenError(t *testing.T) {
	srv, err := runtime.NewServer()
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Serve(context.Background(), "nope://x"); !errors.Is(err, runtime.ErrUnknownScheme) {
		t.Errorf("Serve = %v, want ErrUnknownScheme", err)
	}
}

// TestTLSVerifiesByDefault: a client given no CA pool refuses the test
// server's certificate on every TLS transport; given the pool, it connects.
func TestTLSVerifiesByDefault(t *testing.T) {
	certs := testcert.New()
	srv, err := runtime.NewServer(runtime.WithTLS(certs.Server))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if err := srv.Listen(context.Background(), "tls://127.0.0.1:0", "wss://127.0.0.1:0/ws", "quic://127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	for _, addr := range srv.Addrs() {
		t.Run(addr[:strings.Index(addr, ":")], func(t *testing.T) {
			_, err := runtime.Dial(context.Background(), addr, runtime.WithoutReconnect())
			var unknownAuthority x509.UnknownAuthorityError
			if !errors.As(err, &unknownAuthority) {
				t.Errorf("Dial without the CA = %v, want x509.UnknownAuthorityError", err)
			}
			c, err := runtime.Dial(context.Background(), addr, runtime.WithTLS(&tls.Config{RootCAs: certs.CAPool}))
			if err != nil {
				t.Fatalf("Dial with the CA pool: %v", err)
			}
			_ = c.Close()
		})
	}
}
