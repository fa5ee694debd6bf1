package runtime_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/msgtrans/msgtrans-go/runtime"
	"github.com/msgtrans/msgtrans-go/wire"
)

// tokenAuth accepts the credentials "good" as alice.
func tokenAuth(_ context.Context, info runtime.AuthInfo) (string, error) {
	if string(info.Credentials) == "good" {
		return "alice", nil
	}
	return "", runtime.NewError(runtime.CodeUnauthenticated, "bad credentials")
}

func TestAuthenticator(t *testing.T) {
	for _, tc := range transportCases() {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, tc, runtime.WithAuthenticator(tokenAuth))
			f.srv.Handle(bizEcho, runtime.HandlerFunc(func(_ context.Context, s *runtime.Session, p *wire.Packet) (*wire.Packet, error) {
				return p.Reply([]byte(s.Identity())), nil
			}))

			t.Run("accepted", func(t *testing.T) {
				c := f.dial(runtime.WithCredentials([]byte("good")))
				resp, err := c.Request(context.Background(), wire.NewRequest(bizEcho, nil))
				if err != nil || resp.Text() != "alice" {
					t.Fatalf("Request = %v, %v; want the identity alice", resp, err)
				}
				if e := f.waitEvent(runtime.ConnectionEstablished); e.Session.Identity() != "alice" {
					t.Errorf("established session identity %q", e.Session.Identity())
				}
			})
			t.Run("refused, no reconnect", func(t *testing.T) {
				// The refusal answers the hello, so Dial reports it.
				c, err := runtime.Dial(context.Background(), f.addr, runtime.WithTLS(f.certs.Client), runtime.WithCredentials([]byte("bad")))
				if err == nil {
					_ = c.Close()
					t.Fatal("Dial with bad credentials succeeded")
				}
				var e *runtime.Error
				if !errors.As(err, &e) || e.Code != runtime.CodeUnauthenticated || e.Message != "bad credentials" {
					t.Errorf("Dial failed with %v, want unauthenticated: bad credentials", err)
				}
			})
		})
	}
}

// TestNothingBeforeAuthentication: a peer that sends anything but a hello
// first, or nothing at all, is closed without a handler running or a
// session being announced; broadcasts skip peers not yet authenticated.
func TestNothingBeforeAuthentication(t *testing.T) {
	tc := transportCases()[1]
	f := newFixture(t, tc, runtime.WithAuthenticator(tokenAuth), runtime.WithHandshakeTimeout(200*time.Millisecond))
	ran := make(chan struct{}, 1)
	f.srv.Handle(bizNote, runtime.HandlerFunc(func(context.Context, *runtime.Session, *wire.Packet) (*wire.Packet, error) {
		ran <- struct{}{}
		return nil, nil
	}))

	early := tc.raw(t, f.addr, nil)
	defer early.Close()
	pkt := validPacket("before the hello")
	_ = early.WriteFrame(pkt, len(pkt))
	silent := tcpRaw(t, f.addr, nil)
	defer silent.Close()

	authed := f.dial(runtime.WithCredentials([]byte("good")))
	f.waitEvent(runtime.ConnectionEstablished)
	if n, err := f.srv.Push(context.Background(), runtime.ToAll(), wire.NewText(bizNote, "to the authenticated")); err != nil || n != 1 {
		t.Errorf("Broadcast reached %d sessions (%v), want only the authenticated one", n, err)
	}
	for _, p := range []rawPeer{early, silent} {
		c := p.(streamPeer).c
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.ReadAll(c); err != nil && !strings.Contains(err.Error(), "reset") {
			t.Errorf("unauthenticated peer: %v, want the server to close it", err)
		}
	}
	select {
	case <-ran:
		t.Error("a handler ran for a packet sent before authentication")
	default:
	}
	if _, err := authed.Request(context.Background(), wire.NewRequest(bizEcho, nil)); runtime.CodeOf(err) != runtime.CodeUnimplemented {
		t.Errorf("the authenticated client: %v", err)
	}
}

// TestPreAuthLimits: until it has authenticated a connection may send no
// packet over 4 KiB (here a hello with a 5,000-byte payload, which the
// full limits would admit); afterwards the full limits apply.
func TestPreAuthLimits(t *testing.T) {
	tc := transportCases()[1]
	f := newFixture(t, tc, runtime.WithAuthenticator(func(context.Context, runtime.AuthInfo) (string, error) { return "anyone", nil }))
	f.srv.Handle(bizEcho, echo)

	p := tcpRaw(t, f.addr, nil)
	defer p.Close()
	hello := controlBytes(t, wire.ControlHello, make([]byte, 5000))
	_ = p.WriteFrame(hello, len(hello))
	c := p.(streamPeer).c
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	// Closed unanswered: EOF, or a reset as the server did not read the
	// rest of the oversized packet.
	if b, err := io.ReadAll(c); len(b) != 0 || (err != nil && !strings.Contains(err.Error(), "reset")) {
		t.Errorf("oversized hello: read %d bytes, %v; want the server to close the connection unanswered", len(b), err)
	}
	select {
	case e := <-f.events:
		t.Fatalf("unexpected %s event for the oversized hello", e.Kind)
	default:
	}

	ok := f.dial(runtime.WithCredentials([]byte("small")))
	resp, err := ok.Request(context.Background(), wire.NewRequest(bizEcho, make([]byte, 100<<10)))
	if err != nil || len(resp.Payload) != 100<<10 {
		t.Errorf("a 100 KiB request after authenticating: %v", err)
	}
}

// TestAuthenticatorKeepsCredentials: the credentials an authenticator is
// shown are its to keep; the packets read after the hellos, through the
// same pooled read buffers, leave them as they were.
func TestAuthenticatorKeepsCredentials(t *testing.T) {
	const clients, n = 8, 300
	credsOf := func(i int) []byte { return bytes.Repeat([]byte{'a' + byte(i)}, 200+i) }
	for _, tc := range transportCases() {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			var kept [][]byte
			f := newFixture(t, tc, runtime.WithAuthenticator(func(_ context.Context, info runtime.AuthInfo) (string, error) {
				mu.Lock()
				defer mu.Unlock()
				kept = append(kept, info.Credentials) // not copied
				return "alice", nil
			}))
			var handled sync.WaitGroup
			handled.Add(clients * n)
			f.srv.Handle(bizNote, runtime.Borrowing(runtime.HandlerFunc(func(context.Context, *runtime.Session, *wire.Packet) (*wire.Packet, error) {
				handled.Done()
				return nil, nil
			})))
			var cs []*runtime.Client
			for i := range clients {
				cs = append(cs, f.dial(runtime.WithCredentials(credsOf(i))))
			}
			var sent sync.WaitGroup
			for _, c := range cs {
				sent.Add(1)
				go func() {
					defer sent.Done()
					for i := range n {
						if err := c.Send(wire.NewOneWay(bizNote, ownedPayload(i))); err != nil {
							t.Error(err)
							return
						}
					}
				}()
			}
			sent.Wait()
			handled.Wait()
			mu.Lock()
			defer mu.Unlock()
		next:
			for _, got := range kept {
				for i := range clients {
					if bytes.Equal(got, credsOf(i)) {
						continue next
					}
				}
				t.Errorf("credentials kept by the authenticator changed to %.40q", got)
			}
		})
	}
}
