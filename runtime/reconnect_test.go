package runtime_test

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/msgtrans/msgtrans-go/runtime"
	"github.com/msgtrans/msgtrans-go/wire"
)

// reconnectLog records a client's Reconnecting events.
type reconnectLog struct {
	mu     sync.Mutex
	events []runtime.Event
	signal chan struct{} // receives a value per event, when not full
}

func newReconnectLog() *reconnectLog { return &reconnectLog{signal: make(chan struct{}, 1024)} }

func (l *reconnectLog) option() runtime.Option {
	return runtime.WithEventHandler(func(e runtime.Event) {
		if e.Kind != runtime.Reconnecting {
			return
		}
		l.mu.Lock()
		l.events = append(l.events, e)
		l.mu.Unlock()
		select {
		case l.signal <- struct{}{}:
		default:
		}
	})
}

func (l *reconnectLog) snapshot() []runtime.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]runtime.Event(nil), l.events...)
}

// waitFor waits until n events are recorded, failing after 20 s.
func (l *reconnectLog) waitFor(t *testing.T, n int) []runtime.Event {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		if ev := l.snapshot(); len(ev) >= n {
			return ev
		}
		select {
		case <-l.signal:
		case <-timeout:
			t.Fatalf("%d reconnecting events within 20s, want %d", len(l.snapshot()), n)
		}
	}
}

// refusalCounter is a log handler counting the server's refusals.
type refusalCounter struct {
	mu sync.Mutex
	n  int
}

func (*refusalCounter) Enabled(context.Context, slog.Level) bool { return true }
func (c *refusalCounter) Handle(_ context.Context, r slog.Record) error {
	if r.Message == "msgtrans: connection refused" {
		// Refusals are logged at most once a second, with the number
		// not logged since.
		n := 1
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "not_logged" {
				n += int(a.Value.Int64())
			}
			return true
		})
		c.mu.Lock()
		c.n += n
		c.mu.Unlock()
	}
	return nil
}
func (c *refusalCounter) WithAttrs([]slog.Attr) slog.Handler { return c }
func (c *refusalCounter) WithGroup(string) slog.Handler      { return c }

func (c *refusalCounter) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// TestReconnectOverCapacity: six clients are connected when their server
// restarts with room for one connection per host. The five refused clients
// honour the refusal's retry-after and their growing backoff: over 10 s
// each tries a handful of times, not in a loop (before the fix, about 13
// times a second), while the one let in is served.
func TestReconnectOverCapacity(t *testing.T) {
	for _, tc := range abuseCases() { // tcp and ws
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			const clients, window = 6, 10 * time.Second
			addr := strings.Replace(tc.listen(t), ":0", ":"+freePort(t, tc.name), 1)
			first, err := runtime.NewServer(runtime.WithLogger(slog.New(slog.DiscardHandler)))
			if err != nil {
				t.Fatal(err)
			}
			first.Handle(bizEcho, echo)
			if err := first.Listen(context.Background(), addr); err != nil {
				t.Fatal(err)
			}
			logs := make([]*reconnectLog, clients)
			cs := make([]*runtime.Client, clients)
			for i := range cs {
				logs[i] = newReconnectLog()
				c, err := runtime.Dial(context.Background(), addr, logs[i].option(), runtime.WithLogger(slog.New(slog.DiscardHandler)))
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = c.Close() })
				cs[i] = c
			}
			_ = first.Close()

			refusals := &refusalCounter{}
			second, err := runtime.NewServer(runtime.WithMaxConnectionsPerIP(1), runtime.WithLogger(slog.New(refusals)))
			if err != nil {
				t.Fatal(err)
			}
			second.Handle(bizEcho, echo)
			t.Cleanup(func() { _ = second.Close() })
			if err := second.Listen(context.Background(), addr); err != nil {
				t.Fatal(err)
			}
			time.Sleep(window) // the observation window, not synchronisation
			served := 0
			for _, c := range cs {
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				if _, err := c.Request(ctx, wire.NewRequest(bizEcho, nil)); err == nil {
					served++
				}
				cancel()
			}
			if served != 1 {
				t.Errorf("%d clients served, want the one the cap lets in", served)
			}
			for i, l := range logs {
				ev := l.snapshot()
				var refused int
				for j, e := range ev {
					if runtime.CodeOf(e.Err) == runtime.CodeResourceExhausted {
						refused++
						if e.Delay < runtime.RefusalRetryAfter {
							t.Errorf("client %d attempt %d after a refusal waited %v, less than the server's retry-after %v", i, j+1, e.Delay, runtime.RefusalRetryAfter)
						}
					}
				}
				t.Logf("client %d: %d reconnect attempts in %v, %d after a refusal", i, len(ev), window, refused)
				if len(ev) > 8 {
					t.Errorf("client %d tried %d times in %v; want a handful", i, len(ev), window)
				}
			}
			if n := refusals.count(); n > 5*(clients-1) {
				t.Errorf("the server refused %d connections in %v; want at most %d", n, window, 5*(clients-1))
			} else {
				t.Logf("the server refused %d connections in %v", n, window)
			}
		})
	}
}

// fakeServer accepts TCP connections and hands each to answer, in order.
func fakeServer(t *testing.T, answer func(i int, c net.Conn)) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { _ = l.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				answer(i, c)
			}()
		}
	}()
	return "tcp://" + l.Addr().String()
}

// TestDialNotMsgtrans: dialling something that is not a msgtrans server
// (here an HTTP server, as when a tcp:// address names a WebSocket port)
// fails Dial at once with a clear error; nothing reconnects.
func TestDialNotMsgtrans(t *testing.T) {
	tests := []struct {
		name   string
		answer string
		want   string
	}{
		{"http", "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", "answered in HTTP"},
		{"other", "SSH-2.0-OpenSSH_9.2\r\n", "does not speak msgtrans wire v1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := fakeServer(t, func(_ int, c net.Conn) {
				_, _ = c.Write([]byte(tt.answer))
			})
			c, err := runtime.Dial(context.Background(), addr, runtime.WithLogger(slog.New(slog.DiscardHandler)))
			if err == nil {
				_ = c.Close()
				t.Fatal("Dial succeeded")
			}
			if !errors.Is(err, wire.ErrProtocol) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Dial: %v; want a protocol error saying %q", err, tt.want)
			}
		})
	}

	// The real thing: tcp:// pointed at a WebSocket listener.
	srv, err := runtime.NewServer(runtime.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	if err := srv.Listen(context.Background(), "ws://127.0.0.1:0/ws"); err != nil {
		t.Fatal(err)
	}
	wrong := "tcp://" + strings.TrimSuffix(strings.TrimPrefix(srv.Addrs()[0], "ws://"), "/ws")
	if c, err := runtime.Dial(context.Background(), wrong); err == nil {
		_ = c.Close()
		t.Fatalf("Dial(%s) at a WebSocket port succeeded", wrong)
	} else if !strings.Contains(err.Error(), "ws://") {
		t.Errorf("Dial(%s): %v; want a hint to dial ws://", wrong, err)
	}
}

// TestReconnectBackoff: a server that answers and then drops each
// connection at once is retried ever more slowly (the backoff starts again
// only after a connection stayed up); one that stops speaking msgtrans after
// a first success is retried at the longest delay.
func TestReconnectBackoff(t *testing.T) {
	b := runtime.Backoff{Base: 10 * time.Millisecond, Multiplier: 2, MaxDelay: 400 * time.Millisecond}
	tests := []struct {
		name   string
		answer func(i int, c net.Conn, hello []byte)
		check  func(t *testing.T, ev []runtime.Event)
	}{
		{"dropped at once", func(_ int, c net.Conn, hello []byte) {
			_, _ = c.Write(hello)
		}, func(t *testing.T, ev []runtime.Event) {
			for i, e := range ev {
				if e.Attempt != i+1 {
					t.Errorf("event %d: attempt %d, want %d (the count must not restart)", i, e.Attempt, i+1)
				}
			}
			// Attempt n waits at least half of Base·2^(n-1), capped.
			for i, e := range ev {
				if floor := min(b.Base<<i, b.MaxDelay) / 2; e.Delay < floor {
					t.Errorf("attempt %d waited %v, want at least %v", i+1, e.Delay, floor)
				}
			}
		}},
		{"not msgtrans after a first success", func(i int, c net.Conn, hello []byte) {
			if i == 0 {
				_, _ = c.Write(hello)
				return
			}
			_, _ = c.Write([]byte("HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n"))
		}, func(t *testing.T, ev []runtime.Event) {
			for i, e := range ev[1:] {
				if !errors.Is(e.Err, wire.ErrProtocol) {
					t.Errorf("attempt %d follows %v, want a protocol error", i+2, e.Err)
				}
				if e.Delay < b.MaxDelay/2 {
					t.Errorf("attempt %d after a protocol error waited %v, want at least %v", i+2, e.Delay, b.MaxDelay/2)
				}
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hello := controlBytes(t, wire.ControlHello, []byte{0})
			addr := fakeServer(t, func(i int, c net.Conn) { tt.answer(i, c, hello) })
			l := newReconnectLog()
			c, err := runtime.Dial(context.Background(), addr, l.option(), runtime.WithReconnect(b),
				runtime.WithLogger(slog.New(slog.DiscardHandler)))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			tt.check(t, l.waitFor(t, 6)[:6])
		})
	}
}

// TestReconnectBackoffResets: after a connection that stayed up for a while,
// the next drop is retried from the backoff's first step again.
func TestReconnectBackoffResets(t *testing.T) {
	b := runtime.Backoff{Base: 10 * time.Millisecond, Multiplier: 2, MaxDelay: 400 * time.Millisecond}
	hello := controlBytes(t, wire.ControlHello, []byte{0})
	release := make(chan struct{})
	addr := fakeServer(t, func(i int, c net.Conn) {
		_, _ = c.Write(hello)
		if i == 3 { // the fourth connection stays up until released
			<-release
		}
	})
	l := newReconnectLog()
	c, err := runtime.Dial(context.Background(), addr, l.option(), runtime.WithReconnect(b),
		runtime.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ev := l.waitFor(t, 3) // three short-lived connections: attempts 1, 2, 3
	if got := ev[2].Attempt; got != 3 {
		t.Fatalf("third attempt numbered %d", got)
	}
	time.Sleep(1500 * time.Millisecond) // the fourth stays up longer than healthyAfter
	close(release)
	ev = l.waitFor(t, 4)
	if got := ev[3].Attempt; got != 1 {
		t.Errorf("after a connection that stayed up, the attempt is numbered %d, want 1", got)
	}
}

// TestClientAddrs: a client given several addresses of one logical server
// connects to the first that answers, and after a drop reconnects to the
// next one.
func TestClientAddrs(t *testing.T) {
	start := func() *runtime.Server {
		srv, err := runtime.NewServer(runtime.WithLogger(slog.New(slog.DiscardHandler)))
		if err != nil {
			t.Fatal(err)
		}
		srv.Handle(bizEcho, echo)
		if err := srv.Listen(context.Background(), "tcp://127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = srv.Close() })
		return srv
	}
	a, b := start(), start()
	down := "tcp://" + freeHostPort(t)
	backoff := runtime.WithReconnect(runtime.Backoff{Base: 10 * time.Millisecond, MaxDelay: 50 * time.Millisecond})
	c, err := runtime.Dial(context.Background(), down, runtime.WithAddrs(a.Addrs()[0], b.Addrs()[0]), backoff,
		runtime.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatalf("Dial with the first address down: %v", err)
	}
	defer c.Close()
	if got := c.Addr(); got != a.Addrs()[0] {
		t.Errorf("connected to %s, want the first that answers, %s", got, a.Addrs()[0])
	}
	_ = a.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		_, err := c.Request(ctx, wire.NewRequest(bizEcho, nil))
		if err == nil && c.Addr() == b.Addrs()[0] {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("not served by the other server: %v (at %s)", err, c.Addr())
		}
		time.Sleep(10 * time.Millisecond) // polling for the reconnection
	}
}

// freeHostPort returns a loopback host:port nothing listens on.
func freeHostPort(t *testing.T) string {
	t.Helper()
	return "127.0.0.1:" + freePort(t, "tcp")
}

// TestWithLocalIP: a client connects from the local address it is given, on
// every network transport.
func TestWithLocalIP(t *testing.T) {
	for _, tc := range transportCases() {
		if tc.name == "mem" {
			continue
		}
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, tc)
			f.dial(runtime.WithLocalIP(net.ParseIP("127.0.0.2")))
			sess := f.waitSessions(1)[0]
			if host := strings.Split(sess.RemoteAddr().String(), ":")[0]; host != "127.0.0.2" {
				t.Errorf("the server sees the client at %s, want 127.0.0.2", sess.RemoteAddr())
			}
		})
	}
}

// TestDialOverCapacity: a client dialling a server that is at its per-host
// cap is refused by Dial itself, with the server's resource_exhausted, at
// once and after one attempt; it does not get a client that then
// reconnects in a loop.
func TestDialOverCapacity(t *testing.T) {
	for _, tc := range abuseCases() { // tcp and ws
		t.Run(tc.name, func(t *testing.T) {
			refusals := &refusalCounter{}
			srv, err := runtime.NewServer(runtime.WithMaxConnectionsPerIP(1), runtime.WithLogger(slog.New(refusals)))
			if err != nil {
				t.Fatal(err)
			}
			srv.Handle(bizEcho, echo)
			t.Cleanup(func() { _ = srv.Close() })
			addr := tc.listen(t)
			if err := srv.Listen(context.Background(), addr); err != nil {
				t.Fatal(err)
			}
			addr = srv.Addrs()[0]
			first, err := runtime.Dial(context.Background(), addr, runtime.WithLogger(slog.New(slog.DiscardHandler)))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = first.Close() })
			for i := range 3 {
				start := time.Now()
				c, err := runtime.Dial(context.Background(), addr, runtime.WithLogger(slog.New(slog.DiscardHandler)))
				if err == nil {
					_ = c.Close()
					t.Fatalf("dial %d over the cap: got a client, want a refusal", i+1)
				}
				if runtime.CodeOf(err) != runtime.CodeResourceExhausted {
					t.Errorf("dial %d over the cap: %v (code %v), want resource_exhausted", i+1, err, runtime.CodeOf(err))
				}
				if d := time.Since(start); d > 5*time.Second {
					t.Errorf("dial %d over the cap took %v", i+1, d)
				}
			}
			if _, err := first.Request(context.Background(), wire.NewRequest(bizEcho, nil)); err != nil {
				t.Errorf("the client within the cap: %v", err)
			}
			if n := refusals.count(); n > 3 {
				t.Errorf("the server refused %d connections for 3 dials", n)
			}
		})
	}
}
