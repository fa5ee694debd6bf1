package runtime_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/msgtrans/msgtrans-go/runtime"
	"github.com/msgtrans/msgtrans-go/wire"
)

// Each option's effect, shown where the suite does not already show it.

// syncBuffer is a bytes.Buffer safe for a logger and a test to share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestWithLogger(t *testing.T) {
	var logs syncBuffer
	tc := transportCases()[1]
	f := newFixture(t, tc, runtime.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	p := tc.raw(t, f.addr, nil)
	defer p.Close()
	_ = p.WriteFrame(header(9, 0, 0, 0, 0), 16)
	f.waitEvent(runtime.ConnectionClosed)
	if got := logs.String(); !strings.Contains(got, "closing connection") || !strings.Contains(got, "version 9") {
		t.Errorf("the protocol error was not logged to the given logger; got:\n%s", got)
	}
}

func TestWithLimits(t *testing.T) {
	f := newFixture(t, transportCases()[1], runtime.WithLimits(wire.Limits{MaxPayload: 100}))
	f.srv.Handle(bizEcho, echo)
	c := f.dial(runtime.WithoutReconnect())
	if _, err := c.Request(context.Background(), wire.NewRequest(bizEcho, make([]byte, 100))); err != nil {
		t.Fatalf("a payload at the limit: %v", err)
	}
	_, err := c.Request(context.Background(), wire.NewRequest(bizEcho, make([]byte, 101)))
	if runtime.CodeOf(err) != runtime.CodeUnavailable {
		t.Errorf("a payload over the limit: %v, want the connection closed (unavailable)", err)
	}
	if e := f.waitEvent(runtime.ConnectionClosed); !errors.Is(e.Err, wire.ErrTooLarge) {
		t.Errorf("closed with %v, want ErrTooLarge", e.Err)
	}
}

// TestWithMaxInFlight: with one handler in flight per session, a second
// request waits until the first has been answered.
func TestWithMaxInFlight(t *testing.T) {
	f := newFixture(t, transportCases()[0], runtime.WithMaxInFlight(1))
	release := make(chan struct{})
	running := make(chan string, 2)
	f.srv.Handle(bizBlock, runtime.HandlerFunc(func(_ context.Context, _ *runtime.Session, p *wire.Packet) (*wire.Packet, error) {
		running <- p.Text()
		<-release
		return p.Reply(nil), nil
	}))
	c := f.dial()
	done := make(chan error, 2)
	for _, name := range []string{"first", "second"} {
		go func() {
			_, err := c.Request(context.Background(), wire.NewRequest(bizBlock, []byte(name)))
			done <- err
		}()
		if name == "first" {
			<-running
		}
	}
	select {
	case got := <-running:
		t.Fatalf("%s ran while another handler was in flight", got)
	case <-time.After(100 * time.Millisecond):
		// Nothing more started: the limit holds (a negative check needs a
		// bound; the positive one follows).
	}
	release <- struct{}{}
	if got := <-running; got != "second" {
		t.Errorf("then %q ran, want second", got)
	}
	close(release)
	for range 2 {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}

// TestWithWriteTimeout: a peer that stops reading makes the writer block
// once the socket buffers fill; the write timeout then closes the session
// as a slow consumer.
func TestWithWriteTimeout(t *testing.T) {
	tc := transportCases()[1]
	f := newFixture(t, tc, runtime.WithWriteTimeout(100*time.Millisecond), runtime.WithSendQueueBytes(1<<30))
	p := tc.raw(t, f.addr, nil)
	defer p.Close()
	s := f.waitSessions(1)[0]
	chunk := wire.NewOneWay(bizNote, make([]byte, 64<<10))
	for i := 0; i < 4096; i++ { // 256 MiB at most; the buffers hold a few MiB
		if s.Send(chunk) != nil {
			break
		}
		select {
		case <-s.Done():
			i = 4096
		default:
		}
	}
	e := f.waitEvent(runtime.ConnectionClosed)
	var ne net.Error
	if !errors.As(e.Err, &ne) || !ne.Timeout() || !errors.Is(e.Err, runtime.ErrSlowConsumer) {
		t.Errorf("closed with %v, want a slow consumer's write timeout", e.Err)
	}
}

// TestWriteDeadlineRefreshed: the write timeout bounds each write, not the
// session: a session that keeps writing to a client that keeps reading
// lives on well past it, its deadline being moved forward as it goes.
func TestWriteDeadlineRefreshed(t *testing.T) {
	const timeout = 50 * time.Millisecond
	f := newFixture(t, transportCases()[1], runtime.WithWriteTimeout(timeout))
	f.srv.Handle(bizEcho, echo)
	c := f.dial(runtime.WithoutReconnect())
	sess := f.waitSessions(1)[0]
	for start := time.Now(); time.Since(start) < 10*timeout; {
		if _, err := c.Request(context.Background(), wire.NewRequest(bizEcho, []byte("busy"))); err != nil {
			t.Fatalf("after %v of writes: %v", time.Since(start), err)
		}
	}
	if err := sess.Err(); err != nil {
		t.Errorf("a busy session closed with %v", err)
	}
}

// TestWithConnectTimeout: a dial whose handshake never completes gives up
// at the connect timeout.
func TestWithConnectTimeout(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(io.Discard, c); c.Close() }() // never answers the TLS hello
		}
	}()
	_, err = runtime.Dial(context.Background(), "tls://"+l.Addr().String(), runtime.WithConnectTimeout(100*time.Millisecond))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Dial = %v, want the connect timeout", err)
	}
}

// TestWithHandshakeTimeout: a peer that opens a TCP connection to a tls://
// listener and never starts TLS is dropped at the handshake timeout.
func TestWithHandshakeTimeout(t *testing.T) {
	f := newFixture(t, transportCases()[2], runtime.WithHandshakeTimeout(100*time.Millisecond))
	c, err := net.Dial("tcp", strings.TrimPrefix(f.addr, "tls://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Errorf("read %v, want EOF: the server closing the silent peer", err)
	}
}

// TestWithRateLimit: over the limit, requests are refused with
// resource_exhausted and one-way packets dropped and counted; a session that
// keeps on is closed. Exactly the burst is admitted (the hello included),
// whether it is smaller or larger than the tokens the server takes from the
// bucket at a time.
func TestWithRateLimit(t *testing.T) {
	for _, burst := range []int{5, 150} {
		t.Run(fmt.Sprint("burst=", burst), func(t *testing.T) { testRateLimit(t, burst) })
	}
}

func testRateLimit(t *testing.T, burst int) {
	f := newFixture(t, transportCases()[1], runtime.WithRateLimit(0.01, burst))
	f.srv.Handle(bizEcho, echo)
	notes := make(chan *wire.Packet, 100)
	f.srv.Handle(bizNote, collect(notes))
	c := f.dial(runtime.WithoutReconnect())
	sess := f.waitSessions(1)[0]
	ctx := context.Background()

	// The client's hello took one token: every packet counts.
	for i := range burst - 1 {
		if _, err := c.Request(ctx, wire.NewRequest(bizEcho, nil)); err != nil {
			t.Fatalf("request %d within the burst: %v", i, err)
		}
	}
	if _, err := c.Request(ctx, wire.NewRequest(bizEcho, nil)); runtime.CodeOf(err) != runtime.CodeResourceExhausted {
		t.Fatalf("request over the limit: %v, want resource_exhausted", err)
	}
	if err := c.Send(wire.NewText(bizNote, "dropped")); err != nil {
		t.Fatal(err)
	}
	// A request after the one-way packet proves it was read (and dropped).
	if _, err := c.Request(ctx, wire.NewRequest(bizEcho, nil)); runtime.CodeOf(err) != runtime.CodeResourceExhausted {
		t.Fatalf("second request over the limit: %v", err)
	}
	if got := sess.Dropped(); got != 1 {
		t.Errorf("Dropped = %d, want 1", got)
	}
	select {
	case p := <-notes:
		t.Errorf("a one-way packet over the limit was delivered: %q", p.Text())
	default:
	}
	// Keep flooding: closed.
	for range burst + 5 {
		_ = c.Send(wire.NewText(bizNote, "flood"))
	}
	if e := f.waitEvent(runtime.ConnectionClosed); !errors.Is(e.Err, runtime.ErrRateLimited) {
		t.Errorf("closed with %v, want ErrRateLimited", e.Err)
	}
}

func TestWithAllowedOrigins(t *testing.T) {
	var tc transportCase
	for _, c := range transportCases() {
		if c.name == "ws" {
			tc = c
		}
	}
	f := newFixture(t, tc, runtime.WithAllowedOrigins("https://app.example.com"))
	tests := []struct {
		origin  string
		refused bool
	}{
		{"https://app.example.com", false},
		{"HTTPS://APP.EXAMPLE.COM", false}, // origins compare without regard to case
		{"https://evil.example.com", true},
		{"https://app.example.com:8443", true},
		{"", false}, // not a browser
	}
	for _, tt := range tests {
		h := http.Header{}
		if tt.origin != "" {
			h.Set("Origin", tt.origin)
		}
		c, resp, err := websocket.DefaultDialer.Dial(f.addr, h)
		if err != nil {
			t.Fatalf("origin %q: %v", tt.origin, err)
		}
		if resp.StatusCode != http.StatusSwitchingProtocols {
			t.Errorf("origin %q: status %d, want 101", tt.origin, resp.StatusCode)
		}
		// A refused origin's upgrade completes, so that the page can be
		// told why: the server closes at once with 1008 (policy
		// violation). An allowed one is served: its hello is answered.
		if !tt.refused {
			hello := &wire.Packet{Type: wire.OneWay, MessageID: 1, Flags: wire.FlagHasRouteTag, Payload: []byte{0},
				Ext: wire.AppendExt(nil, &wire.Ext{HasRoute: true, Route: wire.ControlRoute, Control: wire.ControlHello})}
			b, _ := wire.AppendPacket(nil, hello)
			if err := c.WriteMessage(websocket.BinaryMessage, b); err != nil {
				t.Fatalf("origin %q: writing the hello: %v", tt.origin, err)
			}
		}
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, _, err = c.ReadMessage()
		var ce *websocket.CloseError
		switch {
		case tt.refused && (!errors.As(err, &ce) || ce.Code != websocket.ClosePolicyViolation):
			t.Errorf("origin %q: read %v, want a close 1008", tt.origin, err)
		case !tt.refused && err != nil:
			t.Errorf("origin %q: read %v, want the server's hello", tt.origin, err)
		}
		c.Close()
	}
}

// TestInFlightFullUnderLoad: callers beyond the in-flight cap keep a
// session's slots full, so its reader reads ahead on another goroutine while
// it waits for one, and hands requests to handlers while others run (when
// it may yield to them). Every call is answered; under -race this also
// checks that the reader never asks the connection what it has buffered
// while the read ahead is using it.
func TestInFlightFullUnderLoad(t *testing.T) {
	const (
		inFlight = 2
		callers  = 16
		calls    = 100
	)
	for _, tc := range transportCases() {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, tc, runtime.WithMaxInFlight(inFlight))
			f.srv.Handle(bizEcho, echo)
			c := f.dial()
			errs := make(chan error, callers)
			for w := range callers {
				go func() {
					for i := range calls {
						want := fmt.Sprintf("%d/%d", w, i)
						resp, err := c.Request(context.Background(), wire.NewRequest(bizEcho, []byte(want)))
						if err == nil && resp.Text() != want {
							err = fmt.Errorf("got %q, want %q", resp.Text(), want)
						}
						if err != nil {
							errs <- err
							return
						}
					}
					errs <- nil
				}()
			}
			for range callers {
				if err := <-errs; err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}
