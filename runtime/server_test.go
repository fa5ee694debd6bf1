package runtime_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	goruntime "runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/msgtrans/msgtrans-go/runtime"
	"github.com/msgtrans/msgtrans-go/transports/mem"
	"github.com/msgtrans/msgtrans-go/wire"
	"github.com/msgtrans/msgtrans-go/wire/compress"
)

// countTransport is a custom transport ("count://name") layered on the mem
// transport that counts WritePackets calls and bytes written. Registering it
// is all it takes for the runtime to serve and dial it.
type countTransport struct{}

var (
	countWriteCalls atomic.Int64
	countPackets    atomic.Int64
	countBytes      atomic.Int64
	// countBuffers counts, per backing array, the packets written from it.
	countBuffers sync.Map // *byte -> *atomic.Int64
)

func init() { runtime.RegisterTransport("count", countTransport{}) }

func (countTransport) Listen(ctx context.Context, u *url.URL, cfg *runtime.TransportConfig) (runtime.Listener, error) {
	l, err := mem.Transport{}.Listen(ctx, u, cfg)
	if err != nil {
		return nil, err
	}
	return countListener{l}, nil
}

func (countTransport) Dial(ctx context.Context, u *url.URL, cfg *runtime.TransportConfig) (runtime.Conn, error) {
	return mem.Transport{}.Dial(ctx, u, cfg)
}

type countListener struct{ runtime.Listener }

func (l countListener) Accept() (runtime.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return countConn{c}, nil
}

type countConn struct{ runtime.Conn }

func (c countConn) WritePackets(pkts [][]byte) error {
	countWriteCalls.Add(1)
	countPackets.Add(int64(len(pkts)))
	for _, p := range pkts {
		countBytes.Add(int64(len(p)))
		if len(p) > 0 {
			n, _ := countBuffers.LoadOrStore(&p[0], new(atomic.Int64))
			n.(*atomic.Int64).Add(1)
		}
	}
	return c.Conn.WritePackets(pkts)
}

var countCase = transportCase{name: "count", listen: func(*testing.T) string {
	return fmt.Sprintf("count://c-%d", memCounter.Add(1))
}}

// TestWriterBatches shows one writer draining many queued packets per
// WritePackets call (and so per system call) while keeping their order.
func TestWriterBatches(t *testing.T) {
	const n = 2000
	f := newFixture(t, countCase)
	c := f.dial()
	got := make(chan *wire.Packet, n)
	c.Handle(bizNote, collect(got))
	sess := f.waitSessions(1)[0]
	calls0, pkts0 := countWriteCalls.Load(), countPackets.Load()
	for i := range n {
		if err := sess.Send(wire.NewText(bizNote, fmt.Sprint(i))); err != nil {
			t.Fatalf("Send %d: %v", i, err)
		}
	}
	for i := range n {
		if p := recv(t, got); p.Text() != fmt.Sprint(i) {
			t.Fatalf("packet %d arrived as %q: order lost", i, p.Text())
		}
	}
	calls, pkts := countWriteCalls.Load()-calls0, countPackets.Load()-pkts0
	if pkts < n {
		t.Fatalf("counted %d packets written, want at least %d", pkts, n)
	}
	if calls > n/4 {
		t.Errorf("%d packets took %d WritePackets calls; want them batched (at most %d calls)", n, calls, n/4)
	}
	t.Logf("%d packets in %d writes", pkts, calls)
}

func TestCompression(t *testing.T) {
	text := strings.Repeat("compressible text ", 500)
	tests := []struct {
		name string
		alg  wire.Compression
	}{{"zstd", wire.CompressionZstd}, {"zlib", wire.CompressionZlib}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			comp := runtime.WithCompression(compress.Compressor{Algorithm: tt.alg, Threshold: 64})
			f := newFixture(t, countCase, comp)
			atServer := make(chan *wire.Packet, 1)
			f.srv.Handle(bizNote, collect(atServer))
			f.srv.Handle(bizEcho, echo)
			c := f.dial(comp)
			got := make(chan *wire.Packet, 2)
			c.Handle(bizNote, collect(got))
			f.waitSessions(1)
			// A round trip: the server has read the client's hello (sent
			// first), so it knows which compressions the client accepts.
			if _, err := c.Request(context.Background(), wire.NewRequest(bizEcho, nil)); err != nil {
				t.Fatal(err)
			}

			before := countBytes.Load()
			if _, err := f.srv.Push(context.Background(), runtime.ToAll(), wire.NewText(bizNote, text)); err != nil {
				t.Fatal(err)
			}
			p := recv(t, got)
			if p.Text() != text || p.Compression != wire.CompressionNone {
				t.Fatalf("client got %d bytes (compression %s), want the %d-byte text decompressed", len(p.Payload), p.Compression, len(text))
			}
			if wire := countBytes.Load() - before; wire >= int64(len(text)) {
				t.Errorf("%d bytes on the wire for a %d-byte payload: not compressed", wire, len(text))
			}
			// The client compresses too once the server's hello arrived,
			// which it has: the broadcast came after it.
			if err := c.Send(wire.NewText(bizNote, text)); err != nil {
				t.Fatal(err)
			}
			if p := recv(t, atServer); p.Text() != text {
				t.Fatalf("server got %d bytes, want the text", len(p.Payload))
			}
		})
	}
}

func TestCompressionNotSentToPeersWithoutSupport(t *testing.T) {
	f := newFixture(t, countCase, runtime.WithCompression(compress.Compressor{Algorithm: wire.CompressionZstd, Threshold: 1}))
	conn, err := runtime.DialConn(context.Background(), f.addr, nil) // a raw peer: no hello
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	f.waitSessions(1)
	text := strings.Repeat("a", 4096)
	if _, err := f.srv.Push(context.Background(), runtime.ToAll(), wire.NewText(bizNote, text)); err != nil {
		t.Fatal(err)
	}
	p, err := conn.ReadPacket()
	if err != nil {
		t.Fatal(err)
	}
	if p.Compression != wire.CompressionNone || p.Text() != text {
		t.Errorf("raw peer got compression %s, %d bytes; want it uncompressed", p.Compression, len(p.Payload))
	}
}

// TestSlowConsumer fills the queue of a peer that never reads and checks that
// it alone is closed as a slow consumer while another client gets everything.
func TestSlowConsumer(t *testing.T) {
	tc := transportCases()[1] // tcp: real kernel buffers
	f := newFixture(t, tc, runtime.WithSendQueueBytes(64<<10), runtime.WithLimits(wire.Limits{MaxPayload: 32 << 10}))
	f.srv.Handle(bizEcho, echo)
	slow := tc.raw(t, f.addr, nil)
	defer slow.Close()
	slowSess := f.waitSessions(1)[0]
	got := make(chan *wire.Packet, 256)
	f.dial().Handle(bizNote, collect(got))
	f.waitSessions(1)

	payload := bytes.Repeat([]byte("x"), 4096)
	closed := false
	// Bursts of 10 stay within the healthy client's 64 KiB queue.
	for round := 0; round < 5000 && !closed; round++ {
		for range 10 {
			if _, err := f.srv.Push(context.Background(), runtime.ToAll(), wire.NewOneWay(bizNote, payload)); err != nil {
				t.Fatal(err)
			}
		}
		for range 10 {
			recv(t, got) // the healthy client keeps up with every broadcast
		}
		select {
		case <-slowSess.Done():
			closed = true
		default:
		}
	}
	if !closed {
		t.Fatal("the peer that never reads was not closed")
	}
	e := f.waitEvent(runtime.ConnectionClosed)
	if e.Session != slowSess || !errors.Is(e.Err, runtime.ErrSlowConsumer) {
		t.Errorf("closed session %d with %v, want the slow one with ErrSlowConsumer", e.Session.ID(), e.Err)
	}
	f.healthy()
}

// TestQueued: what is sent to a peer that does not read stays queued; once
// the peer has read everything, nothing is.
func TestQueued(t *testing.T) {
	f := newFixture(t, transportCases()[0]) // mem: synchronous pipes, no kernel buffers
	c, err := runtime.DialConn(context.Background(), f.addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s := f.waitSessions(1)[0]
	p := wire.NewOneWay(bizNote, make([]byte, 1000))
	size := len(packetBytes(t, p))
	// The writer takes the first packets and blocks writing them; what is
	// sent after that stays queued.
	sent := 0
	for ; sent < 100 && s.Queued() == 0; sent++ {
		if err := s.Send(p); err != nil {
			t.Fatal(err)
		}
	}
	if q := s.Queued(); q < size || q > sent*size {
		t.Fatalf("Queued() = %d with %d packets of %d bytes sent and none read", q, sent, size)
	}
	for range sent {
		if _, err := c.ReadPacket(); err != nil {
			t.Fatal(err)
		}
	}
	if q := s.Queued(); q != 0 {
		t.Errorf("Queued() = %d after the peer read everything", q)
	}
}

// TestSlowConsumerAmongMany: one session that never reads among 1,000 that
// receive broadcasts. Each round broadcasts a small message to everyone and
// sends 16 KiB both to the session that never reads and to one that does:
// the one that never reads is closed as a slow consumer, the one that reads
// keeps up, and every receiver gets every broadcast, in order.
func TestSlowConsumerAmongMany(t *testing.T) {
	n := 1000
	if testing.Short() {
		n = 200
	}
	settled(t)
	tc := transportCases()[1] // tcp: real kernel buffers
	f := newFixture(t, tc, runtime.WithMaxConnectionsPerIP(n+2))

	slow := tc.raw(t, f.addr, nil) // never reads
	defer slow.Close()
	slowSess := f.waitSessions(1)[0]
	bigGot := make(chan *wire.Packet, 1)
	f.dial().Handle(bizEcho, collect(bigGot))
	bigSess := f.waitSessions(1)[0]

	var received, disorder atomic.Int64
	ended := make(chan struct{}, n)
	for range n {
		var next int
		f.dial().Handle(bizNote, runtime.HandlerFunc(func(_ context.Context, _ *runtime.Session, p *wire.Packet) (*wire.Packet, error) {
			switch p.Text() {
			case "end":
				ended <- struct{}{}
			case fmt.Sprint(next):
				next++
				received.Add(1)
			default:
				disorder.Add(1)
			}
			return nil, nil
		}))
	}
	f.waitSessions(n)

	chunk := wire.NewOneWay(bizEcho, make([]byte, 16<<10))
	rounds := 0
	for ; rounds < 5000; rounds++ {
		if _, err := f.srv.Push(context.Background(), runtime.ToAll(), wire.NewText(bizNote, fmt.Sprint(rounds))); err != nil {
			t.Fatal(err)
		}
		if err := bigSess.Send(chunk); err != nil {
			t.Fatalf("round %d: the session that reads: %v", rounds, err)
		}
		recv(t, bigGot)
		if slowSess.Send(chunk) != nil {
			rounds++
			break
		}
	}
	e := f.waitEvent(runtime.ConnectionClosed)
	if e.Session != slowSess || !errors.Is(e.Err, runtime.ErrSlowConsumer) {
		t.Fatalf("after %d rounds: closed session %d with %v, want the one that never reads with ErrSlowConsumer", rounds, e.Session.ID(), e.Err)
	}
	if _, err := f.srv.Push(context.Background(), runtime.ToAll(), wire.NewText(bizNote, "end")); err != nil {
		t.Fatal(err)
	}
	for range n {
		select {
		case <-ended:
		case <-time.After(time.Minute):
			t.Fatalf("%d of %d broadcasts delivered", received.Load(), rounds*n)
		}
	}
	if got, want := received.Load(), int64(rounds*n); got != want || disorder.Load() != 0 {
		t.Errorf("%d broadcasts delivered in order and %d out of order, want %d in order", got, disorder.Load(), want)
	}
	t.Logf("the session that never reads was closed after %d rounds (%d KiB sent to it)", rounds, rounds*16)
}

// TestShutdownFlushes: what was queued before Shutdown reaches the client,
// followed by the go-away, and Shutdown returns after everything exited.
func TestShutdownFlushes(t *testing.T) {
	const n = 1000
	for _, tc := range transportCases() {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, tc)
			events := make(chan runtime.Event, 10)
			c := f.dial(runtime.WithoutReconnect(), runtime.WithEventHandler(func(e runtime.Event) { events <- e }))
			got := make(chan *wire.Packet, n)
			c.Handle(bizNote, collect(got))
			sess := f.waitSessions(1)[0]
			for i := range n {
				if err := sess.Send(wire.NewText(bizNote, fmt.Sprint(i))); err != nil {
					t.Fatal(err)
				}
			}
			if err := f.srv.Shutdown(context.Background()); err != nil {
				t.Fatalf("Shutdown: %v", err)
			}
			for i := range n {
				select {
				case p := <-got:
					if p.Text() != fmt.Sprint(i) {
						t.Fatalf("packet %d = %q", i, p.Text())
					}
				case <-time.After(10 * time.Second):
					t.Fatalf("only %d of %d packets arrived; client closed with %v; server session with %v", i, n, c.Err(), sess.Err())
				}
			}
			<-c.Done()
			if err := c.Err(); !errors.Is(err, runtime.ErrGoAway) {
				t.Errorf("client closed with %v, want ErrGoAway", err)
			}
			if err := f.srv.Listen(context.Background(), tc.listen(t)); !errors.Is(err, runtime.ErrClosed) {
				t.Errorf("Listen after Shutdown = %v, want ErrClosed", err)
			}
		})
	}
}

func TestClientGivesUpAfterMaxAttempts(t *testing.T) {
	f := newFixture(t, transportCases()[1])
	events := make(chan runtime.Event, 100)
	c := f.dial(
		runtime.WithReconnect(runtime.Backoff{Base: time.Millisecond, MaxDelay: 5 * time.Millisecond, MaxAttempts: 3}),
		runtime.WithEventHandler(func(e runtime.Event) { events <- e }),
	)
	f.waitSessions(1)
	_ = f.srv.Close()
	select {
	case <-c.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("client did not give up")
	}
	if err := c.Err(); err == nil || !strings.Contains(err.Error(), "gave up reconnecting") {
		t.Errorf("Err = %v, want a give-up error", err)
	}
	var attempts []int
	for len(events) > 0 {
		if e := <-events; e.Kind == runtime.Reconnecting {
			attempts = append(attempts, e.Attempt)
		}
	}
	if fmt.Sprint(attempts) != "[1 2 3]" {
		t.Errorf("Reconnecting attempts %v, want [1 2 3]", attempts)
	}
	if err := c.Send(wire.NewText(bizNote, "x")); runtime.CodeOf(err) != runtime.CodeUnavailable {
		t.Errorf("Send after giving up = %v, want code unavailable", err)
	}
}

func TestBackoffDelay(t *testing.T) {
	b := runtime.Backoff{Base: 100 * time.Millisecond, Multiplier: 2, MaxDelay: time.Second}
	tests := []struct {
		attempt  int
		min, max time.Duration
	}{
		{0, 50 * time.Millisecond, 100 * time.Millisecond},
		{1, 100 * time.Millisecond, 200 * time.Millisecond},
		{3, 400 * time.Millisecond, 800 * time.Millisecond},
		{10, 500 * time.Millisecond, time.Second},
	}
	for _, tt := range tests {
		for range 100 {
			if d := b.Delay(tt.attempt); d < tt.min || d > tt.max {
				t.Fatalf("Delay(%d) = %v, want within [%v, %v]", tt.attempt, d, tt.min, tt.max)
			}
		}
	}
}

func TestOptionValidation(t *testing.T) {
	tests := []struct {
		name   string
		server runtime.ServerOption // or
		client runtime.ClientOption
		want   string
	}{
		{"negative queue", runtime.WithSendQueueBytes(-1), nil, "must not be negative"},
		{"negative write timeout", nil, runtime.WithWriteTimeout(-time.Second), "must not be negative"},
		{"ext header over the wire maximum", runtime.WithLimits(wire.Limits{MaxExtHeader: 70000}), nil, "exceeds the wire maximum"},
		{"bad compression", runtime.WithCompression(compress.Compressor{Algorithm: 7}), nil, "unknown compression"},
		{"shrinking backoff", nil, runtime.WithReconnect(runtime.Backoff{Multiplier: 0.5}), "below 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			if tt.server != nil {
				_, err = runtime.NewServer(tt.server)
			} else {
				_, err = runtime.Dial(context.Background(), "mem://nowhere", tt.client)
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestUnknownScheme(t *testing.T) {
	srv, err := runtime.NewServer()
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Listen(context.Background(), "carrier-pigeon://x"); !errors.Is(err, runtime.ErrUnknownScheme) {
		t.Errorf("Listen = %v, want ErrUnknownScheme", err)
	}
	if _, err := runtime.Dial(context.Background(), "carrier-pigeon://x"); !errors.Is(err, runtime.ErrUnknownScheme) {
		t.Errorf("Dial = %v, want ErrUnknownScheme", err)
	}
}

// TestListenFailureClosesBound: when one of several addresses cannot be
// bound, those already bound are released.
func TestListenFailureClosesBound(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	srv, err := runtime.NewServer()
	if err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprintf("mem://lf-%d", memCounter.Add(1))
	if err := srv.Listen(context.Background(), name, "tcp://"+busy.Addr().String()); err == nil {
		t.Fatal("Listen on a busy port succeeded")
	}
	srv2, _ := runtime.NewServer()
	if err := srv2.Listen(context.Background(), name); err != nil {
		t.Errorf("the mem name was not released: %v", err)
	}
	_ = srv2.Close()
}

func TestGroups(t *testing.T) {
	f := newFixture(t, transportCases()[0])
	sessions := make(chan *runtime.Session, 3)
	f.srv.Handle(bizJoin, runtime.HandlerFunc(func(_ context.Context, s *runtime.Session, p *wire.Packet) (*wire.Packet, error) {
		sessions <- s
		return nil, f.srv.Join(p.Text(), s)
	}))
	var got [3]chan *wire.Packet
	var ss [3]*runtime.Session
	for i, group := range []string{"a", "a", "b"} {
		got[i] = make(chan *wire.Packet, 10)
		c := f.dial()
		c.Handle(bizNote, collect(got[i]))
		if _, err := c.Request(context.Background(), wire.NewRequest(bizJoin, []byte(group))); err != nil {
			t.Fatalf("join: %v", err)
		}
		ss[i] = <-sessions
	}
	if n, err := f.srv.Push(context.Background(), runtime.ToGroup("a"), wire.NewText(bizNote, "to a")); n != 2 || err != nil {
		t.Fatalf("SendGroup = %d, %v; want 2", n, err)
	}
	if n, _ := f.srv.Push(context.Background(), runtime.ToGroupExcept("a", ss[0].ID()), wire.NewText(bizNote, "a but not 0")); n != 1 {
		t.Fatalf("SendGroupExcept = %d, want 1", n)
	}
	if !f.srv.Leave("a", ss[1]) || f.srv.Leave("a", ss[1]) {
		t.Error("Leave should report membership exactly once")
	}
	if n, _ := f.srv.Push(context.Background(), runtime.ToGroup("a"), wire.NewText(bizNote, "after leave")); n != 1 {
		t.Errorf("SendGroup after a leave = %d, want 1", n)
	}
	if names := f.srv.GroupNames(); len(names) != 2 {
		t.Errorf("GroupNames = %v, want a and b", names)
	}
	if _, err := f.srv.Push(context.Background(), runtime.ToAll(), wire.NewText(bizNote, "end")); err != nil {
		t.Fatal(err)
	}
	want := [3]string{"[to a after leave]", "[to a a but not 0]", "[]"}
	for i := range got {
		var texts []string
		for p := recv(t, got[i]); p.Text() != "end"; p = recv(t, got[i]) {
			texts = append(texts, p.Text())
		}
		if fmt.Sprint(texts) != want[i] {
			t.Errorf("client %d got %v, want %s", i, texts, want[i])
		}
	}
}

// TestHandlersBeforeConnect: a handler registered between NewClient and
// Connect receives what the server sends the moment the session starts.
func TestHandlersBeforeConnect(t *testing.T) {
	addr := fmt.Sprintf("mem://welcome-%d", memCounter.Add(1))
	srv, err := runtime.NewServer(runtime.WithEventHandler(func(e runtime.Event) {
		if e.Kind == runtime.ConnectionEstablished {
			_ = e.Session.Send(wire.NewText(bizNote, "welcome"))
		}
	}))
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Listen(context.Background(), addr); err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	c, err := runtime.NewClient(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	got := make(chan *wire.Packet, 1)
	c.Handle(bizNote, collect(got))
	if err := c.Connect(context.Background()); err != nil {
		t.Fatal(err)
	}
	if p := recv(t, got); p.Text() != "welcome" {
		t.Errorf("got %q, want the welcome", p.Text())
	}
	if err := c.Connect(context.Background()); err == nil {
		t.Error("a second Connect succeeded")
	}
}

// TestClientEventHandlerMayRequest: a client's event handler can make a
// request on the connection it reports (to rejoin a room, say).
func TestClientEventHandlerMayRequest(t *testing.T) {
	f := newFixture(t, transportCases()[0])
	f.srv.Handle(bizEcho, echo)
	answered := make(chan string, 1)
	c, err := runtime.NewClient(f.addr, runtime.WithEventHandler(func(e runtime.Event) {
		if e.Kind == runtime.ConnectionEstablished {
			resp, err := e.Session.Request(context.Background(), wire.NewRequest(bizEcho, []byte("from the event")))
			if err != nil {
				answered <- err.Error()
				return
			}
			answered <- resp.Text()
		}
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Connect(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := <-answered; got != "from the event" {
		t.Errorf("request from the event handler: %s", got)
	}
}

// TestBroadcastEncodesOnce: a broadcast to 100 sessions writes one and the
// same encoded buffer to every connection.
func TestBroadcastEncodesOnce(t *testing.T) {
	const n = 100
	f := newFixture(t, countCase)
	got := make(chan *wire.Packet, n)
	for range n {
		f.dial().Handle(bizNote, collect(got))
	}
	f.waitSessions(n)
	countBuffers.Clear()
	if _, err := f.srv.Push(context.Background(), runtime.ToAll(), wire.NewText(bizNote, "once")); err != nil {
		t.Fatal(err)
	}
	for range n {
		recv(t, got)
	}
	shared := 0
	countBuffers.Range(func(_, v any) bool {
		if c := v.(*atomic.Int64).Load(); c == n {
			shared++
		}
		return true
	})
	if shared != 1 {
		t.Errorf("%d buffers were each written to all %d sessions, want exactly 1 (the one encoding)", shared, n)
	}
}

func TestSessionAttributes(t *testing.T) {
	f := newFixture(t, transportCases()[0])
	f.dial()
	s := f.waitSessions(1)[0]
	if _, ok := s.Get("user"); ok {
		t.Error("a new session has attributes")
	}
	s.Set("user", 42)
	if v, ok := s.Get("user"); !ok || v != 42 {
		t.Errorf("Get after Set = %v, %v", v, ok)
	}
	s.Delete("user")
	if _, ok := s.Get("user"); ok {
		t.Error("Delete left the attribute")
	}
}

func TestMaxGroupsPerSession(t *testing.T) {
	f := newFixture(t, transportCases()[0], runtime.WithMaxGroupsPerSession(3))
	f.dial()
	s := f.waitSessions(1)[0]
	for i := range 3 {
		if err := f.srv.Join(fmt.Sprint("g", i), s); err != nil {
			t.Fatalf("join %d: %v", i, err)
		}
	}
	if err := f.srv.Join("g0", s); err != nil {
		t.Errorf("rejoining a group it is in: %v", err)
	}
	if err := f.srv.Join("one too many", s); runtime.CodeOf(err) != runtime.CodeResourceExhausted {
		t.Errorf("fourth group: %v, want resource_exhausted", err)
	}
	if f.srv.Leave("g1", s); f.srv.Join("one too many", s) != nil {
		t.Error("no room after a leave")
	}
}

// TestShutdownAnswersAcceptedRequests: a request accepted before the
// go-away gets its response even though Shutdown has begun; one sent after
// it is refused without waiting.
func TestShutdownAnswersAcceptedRequests(t *testing.T) {
	for _, tc := range transportCases() {
		t.Run(tc.name, func(t *testing.T) {
			// The probes below come as fast as the client can send them
			// until the go-away arrives: the rate limit must not take
			// them for a flood.
			f := newFixture(t, tc, noRateLimit)
			started := make(chan struct{})
			release := make(chan struct{})
			f.srv.Handle(bizBlock, runtime.HandlerFunc(func(_ context.Context, _ *runtime.Session, p *wire.Packet) (*wire.Packet, error) {
				close(started)
				<-release
				return p.Reply([]byte("finished")), nil
			}))
			c := f.dial(runtime.WithoutReconnect())
			answered := make(chan error, 1)
			go func() {
				resp, err := c.Request(context.Background(), wire.NewRequest(bizBlock, nil))
				if err == nil && resp.Text() != "finished" {
					err = fmt.Errorf("response %q", resp.Text())
				}
				answered <- err
			}()
			<-started
			shut := make(chan error, 1)
			go func() { shut <- f.srv.Shutdown(context.Background()) }()
			// Once the client has the go-away it sends nothing new; wait for
			// that (there is no event for it) before letting the handler end.
			giveUp := time.After(10 * time.Second)
			for c.Send(wire.NewText(bizNote, "probe")) == nil {
				select {
				case <-giveUp:
					t.Fatal("the client never got the go-away")
				default:
					goruntime.Gosched()
				}
			}
			close(release)
			if err := <-answered; err != nil {
				t.Errorf("the accepted request: %v", err)
			}
			if err := <-shut; err != nil {
				t.Errorf("Shutdown: %v", err)
			}
		})
	}
}

// TestShutdownUnderLoad: Shutdown begins while 16 clients keep 8 requests
// each in flight. Every request a handler accepted gets its response; every
// other one fails with unavailable, none with anything else, and none hangs.
func TestShutdownUnderLoad(t *testing.T) {
	const clients, callers = 16, 8
	for _, tc := range transportCases() {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, tc, noRateLimit)
			var handled, answered, refused, calls atomic.Int64
			f.srv.Handle(bizEcho, runtime.HandlerFunc(func(_ context.Context, _ *runtime.Session, p *wire.Packet) (*wire.Packet, error) {
				handled.Add(1)
				goruntime.Gosched() // let others arrive meanwhile
				return p.Reply(p.Payload), nil
			}))
			loaded := make(chan struct{})
			var once sync.Once
			errs := make(chan error, clients*callers)
			var wg sync.WaitGroup
			for range clients {
				c := f.dial(runtime.WithoutReconnect())
				for range callers {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for {
							resp, err := c.Request(context.Background(), wire.NewRequest(bizEcho, []byte("x")))
							if err != nil {
								if runtime.CodeOf(err) != runtime.CodeUnavailable {
									errs <- err
								}
								refused.Add(1)
								return
							}
							if resp.Text() != "x" {
								errs <- fmt.Errorf("response %q", resp.Text())
								return
							}
							answered.Add(1)
							if calls.Add(1) == 2000 {
								once.Do(func() { close(loaded) })
							}
						}
					}()
				}
			}
			<-loaded
			if err := f.srv.Shutdown(context.Background()); err != nil {
				t.Fatalf("Shutdown: %v", err)
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Errorf("a request failed with %v, want its response or unavailable", err)
			}
			if h, a := handled.Load(), answered.Load(); h != a {
				t.Errorf("handlers ran for %d requests, %d responses arrived", h, a)
			}
			t.Logf("%d requests answered, the last %d refused with unavailable", answered.Load(), refused.Load())
		})
	}
}

// TestConnectionCaps: a connection over the global or per-host cap is
// refused with a reason the client reports; the server keeps serving.
func TestConnectionCaps(t *testing.T) {
	tests := []struct {
		name string
		opt  runtime.ServerOption
		want string
	}{
		{"global", runtime.WithMaxConnections(2), "maximum of 2 connections"},
		{"per IP", runtime.WithMaxConnectionsPerIP(2), "too many connections from 127.0.0.1 (at most 2)"},
	}
	for _, tc := range abuseCases() { // tcp and ws: their refusals carry the status
		for _, tt := range tests {
			t.Run(tc.name+"/"+tt.name, func(t *testing.T) {
				testConnectionCap(t, tc, tt.opt, tt.want)
			})
		}
	}
}

func testConnectionCap(t *testing.T, tc transportCase, opt runtime.ServerOption, want string) {
	f := newFixture(t, tc, opt)
	f.srv.Handle(bizEcho, echo)
	first := f.dial()
	f.dial()
	f.waitSessions(2)
	// The refusal answers the hello (or the upgrade), so Dial reports it.
	over, err := runtime.Dial(context.Background(), f.addr)
	if err == nil {
		_ = over.Close()
		t.Fatal("Dial over the cap succeeded")
	}
	var e *runtime.Error
	if !errors.As(err, &e) || e.Code != runtime.CodeResourceExhausted || !strings.Contains(e.Message, want) {
		t.Errorf("Dial over the cap failed with %v, want resource_exhausted %q", err, want)
	}
	if _, err := first.Request(context.Background(), wire.NewRequest(bizEcho, nil)); err != nil {
		t.Errorf("a client within the cap: %v", err)
	}
	// A place frees up when a client leaves.
	_ = first.Close()
	f.waitEvent(runtime.ConnectionClosed)
	f.healthy()
}

// TestLameDuck: Shutdown spreads the go-aways over the window instead of
// closing every session at once.
func TestLameDuck(t *testing.T) {
	const window = 400 * time.Millisecond
	f := newFixture(t, transportCases()[0], runtime.WithLameDuck(window))
	const n = 5
	for range n {
		f.dial()
	}
	f.waitSessions(n)
	start := time.Now()
	if err := f.srv.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	// A lower bound, which slowness cannot break: the last session was told
	// (n-1)/n of the window after the first.
	if took := time.Since(start); took < window*(n-1)/n {
		t.Errorf("Shutdown took %v, want the go-aways spread over at least %v", took, window*(n-1)/n)
	}
}
