package runtime_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/msgtrans/msgtrans-go/internal/testcert"
	"github.com/msgtrans/msgtrans-go/runtime"
	_ "github.com/msgtrans/msgtrans-go/transports/all"
	"github.com/msgtrans/msgtrans-go/wire"
)

// transportCase is one transport the suite runs over.
type transportCase struct {
	name   string
	listen func(t *testing.T) string // a listen address on loopback
	tls    bool
	// raw opens a connection that writes bytes framed for the transport but
	// otherwise unchecked, to play a misbehaving peer.
	raw func(t *testing.T, addr string, tc *tls.Config) rawPeer
}

// rawPeer is a misbehaving peer: it writes frames of arbitrary bytes.
type rawPeer interface {
	// WriteFrame writes b as the transport frames one packet: as is on byte
	// streams, as one binary message on WebSocket, and on QUIC after a
	// length prefix of declared bytes (which may promise more than b holds).
	WriteFrame(b []byte, declared int) error
	// WriteText sends a text message where the transport has them.
	WriteText(s string) error
	// CloseWrite ends the peer's sending side (EOF at the server).
	CloseWrite() error
	// WaitClosed reads and discards until the connection ends and returns
	// the error that ended it, or one wrapping errStillOpen after d.
	WaitClosed(d time.Duration) error
	Close() error
}

var errStillOpen = errors.New("still open")

// untilClosed reads with a deadline d away until a read fails, and returns
// that read's error, or one wrapping errStillOpen if it was the deadline.
func untilClosed(deadline func(time.Time) error, read func() error, d time.Duration) error {
	if err := deadline(time.Now().Add(d)); err != nil {
		return err // already closed
	}
	for {
		if err := read(); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return fmt.Errorf("%w after %v", errStillOpen, d)
			}
			return err
		}
	}
}

var memCounter atomic.Int64

func transportCases() []transportCase {
	return append([]transportCase{
		{name: "mem", listen: func(*testing.T) string { return fmt.Sprintf("mem://suite-%d", memCounter.Add(1)) }, raw: memRaw},
		{name: "tcp", listen: loopback("tcp", ""), raw: tcpRaw},
		{name: "tls", listen: loopback("tls", ""), tls: true, raw: tcpRaw},
	}, extraTransportCases...)
}

// extraTransportCases is extended by the files that add transports.
var extraTransportCases []transportCase

func loopback(scheme, path string) func(*testing.T) string {
	return func(*testing.T) string { return scheme + "://127.0.0.1:0" + path }
}

// fixture is a running server with an event log, for one test.
type fixture struct {
	t      *testing.T
	tc     transportCase
	certs  testcert.Pair
	srv    *runtime.Server
	addr   string
	events chan runtime.Event
	// closedSignal, when set (abuse tests), receives one value per closed
	// session.
	closedSignal chan struct{}
}

func newFixture(t *testing.T, tc transportCase, opts ...runtime.ServerOption) *fixture {
	t.Helper()
	f := &fixture{t: t, tc: tc, certs: testcert.New(), events: make(chan runtime.Event, 4096)}
	f.start(tc.listen(t), opts...)
	return f
}

func (f *fixture) start(addr string, opts ...runtime.ServerOption) {
	f.t.Helper()
	base := []runtime.ServerOption{
		runtime.WithTLS(f.certs.Server),
		runtime.WithEventHandler(func(e runtime.Event) {
			if e.Kind != runtime.MessageReceived {
				f.events <- e
			}
		}),
	}
	srv, err := runtime.NewServer(append(base, opts...)...)
	if err != nil {
		f.t.Fatalf("NewServer: %v", err)
	}
	if err := srv.Listen(context.Background(), addr); err != nil {
		f.t.Fatalf("Listen(%s): %v", addr, err)
	}
	f.srv = srv
	f.addr = srv.Addrs()[0]
	f.t.Cleanup(func() { _ = srv.Close() })
}

func (f *fixture) dial(opts ...runtime.ClientOption) *runtime.Client {
	f.t.Helper()
	c, err := runtime.Dial(context.Background(), f.addr, append([]runtime.ClientOption{runtime.WithTLS(f.certs.Client)}, opts...)...)
	if err != nil {
		f.t.Fatalf("Dial(%s): %v", f.addr, err)
	}
	f.t.Cleanup(func() { _ = c.Close() })
	return c
}

// waitEvent returns the next server event of the kind, failing after 10 s.
func (f *fixture) waitEvent(kind runtime.EventKind) runtime.Event {
	f.t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case e := <-f.events:
			if e.Kind == kind {
				return e
			}
		case <-timeout:
			f.t.Fatalf("no %s event within 10s", kind)
		}
	}
}

// waitSessions waits for n ConnectionEstablished events.
func (f *fixture) waitSessions(n int) []*runtime.Session {
	f.t.Helper()
	out := make([]*runtime.Session, 0, n)
	for len(out) < n {
		out = append(out, f.waitEvent(runtime.ConnectionEstablished).Session)
	}
	return out
}

// healthy proves the server still serves: a new client's request is answered.
func (f *fixture) healthy() {
	f.t.Helper()
	c := f.dial()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := c.Request(ctx, wire.NewRequest(bizEcho, []byte("still there?")))
	if err != nil {
		f.t.Fatalf("healthy client: Request: %v", err)
	}
	if got := resp.Text(); got != "still there?" {
		f.t.Fatalf("healthy client: got %q, want the echo", got)
	}
	_ = c.Close()
}

const (
	bizEcho  = 1
	bizNote  = 2
	bizBlock = 3
	bizJoin  = 4
)

// echo answers requests with their payload.
var echo = runtime.HandlerFunc(func(_ context.Context, _ *runtime.Session, p *wire.Packet) (*wire.Packet, error) {
	return p.Reply(p.Payload), nil
})

// collect returns a handler that passes every packet to a channel.
func collect(ch chan<- *wire.Packet) runtime.HandlerFunc {
	return func(_ context.Context, _ *runtime.Session, p *wire.Packet) (*wire.Packet, error) {
		ch <- p
		return nil, nil
	}
}

func recv(t *testing.T, ch <-chan *wire.Packet) *wire.Packet {
	t.Helper()
	select {
	case p := <-ch:
		return p
	case <-time.After(10 * time.Second):
		t.Fatal("no packet within 10s")
		return nil
	}
}

func TestSuite(t *testing.T) {
	tests := []struct {
		name string
		run  func(t *testing.T, tc transportCase)
	}{
		{"SendBothWays", testSendBothWays},
		{"RequestBothWays", testRequestBothWays},
		{"Broadcast100", testBroadcast100},
		{"DisconnectCleansUp", testDisconnectCleansUp},
		{"ReconnectAfterServerRestart", testReconnect},
		{"PendingFailOnDisconnect", testPendingFailOnDisconnect},
		{"RequestTimeout", testRequestTimeout},
		{"RequestTimeoutMany", testRequestTimeoutMany},
		{"HandlerErrorsAndPanics", testHandlerErrors},
		{"BadInput", testBadInput},
	}
	for _, tc := range transportCases() {
		t.Run(tc.name, func(t *testing.T) {
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) { tt.run(t, tc) })
			}
		})
	}
}

func testSendBothWays(t *testing.T, tc transportCase) {
	f := newFixture(t, tc)
	atServer := make(chan *wire.Packet, 10)
	f.srv.Handle(bizNote, collect(atServer))
	c := f.dial()
	atClient := make(chan *wire.Packet, 10)
	c.Handle(bizNote, collect(atClient))
	sess := f.waitSessions(1)[0]
	if got, want := sess.Transport(), strings.SplitN(f.addr, ":", 2)[0]; got != want {
		t.Errorf("session transport = %q, want %q", got, want)
	}

	for i := range 3 {
		if err := c.Send(wire.NewText(bizNote, fmt.Sprintf("up %d", i))); err != nil {
			t.Fatalf("client Send: %v", err)
		}
	}
	var lastID uint32
	for i := range 3 {
		p := recv(t, atServer)
		if got, want := p.Text(), fmt.Sprintf("up %d", i); got != want {
			t.Errorf("server got %q, want %q", got, want)
		}
		if p.Type != wire.OneWay || p.MessageID <= lastID {
			t.Errorf("server got %v, want a OneWay with a rising message id", p)
		}
		lastID = p.MessageID
	}
	if err := f.srv.Send(sess.ID(), wire.NewText(bizNote, "down")); err != nil {
		t.Fatalf("server Send: %v", err)
	}
	if got := recv(t, atClient).Text(); got != "down" {
		t.Errorf("client got %q, want %q", got, "down")
	}
}

func testRequestBothWays(t *testing.T, tc transportCase) {
	f := newFixture(t, tc)
	f.srv.Handle(bizEcho, echo)
	c := f.dial()
	c.Handle(bizEcho, runtime.HandlerFunc(func(_ context.Context, _ *runtime.Session, p *wire.Packet) (*wire.Packet, error) {
		return p.Reply([]byte("client says " + p.Text())), nil
	}))
	sess := f.waitSessions(1)[0]
	ctx := context.Background()

	for i := range 5 {
		msg := fmt.Sprintf("ping %d", i)
		resp, err := c.Request(ctx, wire.NewRequest(bizEcho, []byte(msg)))
		if err != nil {
			t.Fatalf("client Request: %v", err)
		}
		if resp.Type != wire.Response || resp.Text() != msg {
			t.Errorf("client got %v %q, want a Response %q", resp, resp.Text(), msg)
		}
	}
	resp, err := f.srv.Request(ctx, sess.ID(), wire.NewRequest(bizEcho, []byte("hi")))
	if err != nil {
		t.Fatalf("server Request: %v", err)
	}
	if got, want := resp.Text(), "client says hi"; got != want {
		t.Errorf("server got %q, want %q", got, want)
	}
}

func testBroadcast100(t *testing.T, tc transportCase) {
	const n = 100
	f := newFixture(t, tc)
	got := make(chan *wire.Packet, n)
	for range n {
		f.dial().Handle(bizNote, collect(got))
	}
	f.waitSessions(n)
	if sent, err := f.srv.Push(context.Background(), runtime.ToAll(), wire.NewText(bizNote, "to everyone")); err != nil || sent != n {
		t.Fatalf("Broadcast = %d, %v; want %d, nil", sent, err, n)
	}
	for range n {
		if p := recv(t, got); p.Text() != "to everyone" {
			t.Fatalf("got %q, want the broadcast", p.Text())
		}
	}
}

func testDisconnectCleansUp(t *testing.T, tc transportCase) {
	f := newFixture(t, tc)
	c := f.dial()
	sess := f.waitSessions(1)[0]
	if err := f.srv.Join("room", sess); err != nil {
		t.Fatalf("Join: %v", err)
	}
	if got := len(f.srv.Members("room")); got != 1 {
		t.Fatalf("members = %d, want 1", got)
	}
	_ = c.Close()
	e := f.waitEvent(runtime.ConnectionClosed)
	// The reason is usually ErrPeerClosed; on a synchronous pipe a write
	// racing the close may fail first and be the reason instead.
	if e.Session != sess || e.Err == nil {
		t.Errorf("ConnectionClosed for session %d with %v, want session %d with a reason", e.Session.ID(), e.Err, sess.ID())
	}
	if _, ok := f.srv.Session(sess.ID()); ok {
		t.Error("closed session still in the session map")
	}
	if got := f.srv.Members("room"); len(got) != 0 {
		t.Errorf("closed session still in its group: %d members", len(got))
	}
	if got := f.srv.SessionCount(); got != 0 {
		t.Errorf("SessionCount = %d, want 0", got)
	}
	if err := f.srv.Join("room", sess); !errors.Is(err, runtime.ErrClosed) {
		t.Errorf("Join of a closed session = %v, want ErrClosed", err)
	}
}

func testReconnect(t *testing.T, tc transportCase) {
	f := newFixture(t, tc)
	f.srv.Handle(bizEcho, echo)
	clientEvents := make(chan runtime.Event, 100)
	c := f.dial(
		runtime.WithReconnect(runtime.Backoff{Base: 10 * time.Millisecond, MaxDelay: 100 * time.Millisecond}),
		runtime.WithEventHandler(func(e runtime.Event) { clientEvents <- e }),
	)
	f.waitSessions(1)
	addr := f.addr

	if err := f.srv.Shutdown(context.Background()); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	f.start(addr)
	f.srv.Handle(bizEcho, echo)

	deadline := time.After(15 * time.Second)
	for reconnected := false; !reconnected; {
		select {
		case e := <-clientEvents:
			reconnected = e.Kind == runtime.Reconnected
		case <-deadline:
			t.Fatal("client did not reconnect within 15s")
		}
	}
	resp, err := c.Request(context.Background(), wire.NewRequest(bizEcho, []byte("back")))
	if err != nil || resp.Text() != "back" {
		t.Fatalf("Request after reconnect = %v, %v", resp, err)
	}
	if resp.MessageID > 3 {
		t.Errorf("message id %d after reconnect, want the counter restarted at 1", resp.MessageID)
	}
}

func testPendingFailOnDisconnect(t *testing.T, tc transportCase) {
	f := newFixture(t, tc)
	started := make(chan *runtime.Session, 1)
	f.srv.Handle(bizBlock, runtime.HandlerFunc(func(ctx context.Context, s *runtime.Session, _ *wire.Packet) (*wire.Packet, error) {
		started <- s
		<-ctx.Done()
		return nil, ctx.Err()
	}))
	c := f.dial(runtime.WithoutReconnect())
	errc := make(chan error, 1)
	go func() {
		_, err := c.Request(context.Background(), wire.NewRequest(bizBlock, nil))
		errc <- err
	}()
	sess := <-started
	sess.Close()
	select {
	case err := <-errc:
		if runtime.CodeOf(err) != runtime.CodeUnavailable {
			t.Errorf("pending request failed with %v (code %s), want code unavailable", err, runtime.CodeOf(err))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("pending request did not fail when the connection dropped")
	}
}

func testRequestTimeout(t *testing.T, tc transportCase) {
	f := newFixture(t, tc)
	f.srv.Handle(bizBlock, runtime.HandlerFunc(func(ctx context.Context, _ *runtime.Session, _ *wire.Packet) (*wire.Packet, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	}))
	c := f.dial(runtime.WithRequestTimeout(50 * time.Millisecond))
	_, err := c.Request(context.Background(), wire.NewRequest(bizBlock, nil))
	if runtime.CodeOf(err) != runtime.CodeDeadlineExceeded {
		t.Errorf("Request with WithRequestTimeout = %v, want code deadline_exceeded", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err = f.dial().Request(ctx, wire.NewRequest(bizBlock, nil))
	if runtime.CodeOf(err) != runtime.CodeDeadlineExceeded {
		t.Errorf("Request with a context deadline = %v, want code deadline_exceeded", err)
	}
	// The longest request timeout there is: accepted, and a call answered
	// at once is answered.
	f.srv.Handle(bizEcho, echo)
	if resp, err := f.dial(runtime.WithRequestTimeout(math.MaxInt64)).Request(context.Background(), wire.NewRequest(bizEcho, []byte("x"))); err != nil || resp.Text() != "x" {
		t.Errorf("Request with the longest request timeout = %v, %v; want the echo", resp, err)
	}
}

// testRequestTimeoutMany: requests without a deadline of their own, many
// at once, are each given up after the request timeout, never before it,
// while calls that are answered go on being answered; one cancelled is
// cancelled; the connection serves on afterwards.
func testRequestTimeoutMany(t *testing.T, tc transportCase) {
	const timeout = 60 * time.Millisecond
	f := newFixture(t, tc, runtime.WithMaxInFlight(64)) // room for the echoes beside the blocked
	f.srv.Handle(bizBlock, runtime.HandlerFunc(func(ctx context.Context, _ *runtime.Session, _ *wire.Packet) (*wire.Packet, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	}))
	f.srv.Handle(bizEcho, echo)
	c := f.dial(runtime.WithRequestTimeout(timeout))
	const blocked = 20
	var wg sync.WaitGroup
	for range blocked {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			_, err := c.Request(context.Background(), wire.NewRequest(bizBlock, nil))
			if runtime.CodeOf(err) != runtime.CodeDeadlineExceeded {
				t.Errorf("blocked request = %v, want code deadline_exceeded", err)
			}
			if d := time.Since(start); d < timeout {
				t.Errorf("blocked request given up after %v, before the %v request timeout", d, timeout)
			}
		}()
	}
	ctx, cancel := context.WithCancel(context.Background())
	wg.Add(1)
	go func() {
		defer wg.Done()
		if _, err := c.Request(ctx, wire.NewRequest(bizBlock, nil)); runtime.CodeOf(err) != runtime.CodeCanceled {
			t.Errorf("cancelled request = %v, want code canceled", err)
		}
	}()
	cancel()
	for i := range 50 {
		if resp, err := c.Request(context.Background(), wire.NewRequest(bizEcho, []byte{byte(i)})); err != nil || len(resp.Payload) != 1 || resp.Payload[0] != byte(i) {
			t.Fatalf("echo %d beside the blocked requests = %v, %v", i, resp, err)
		}
	}
	wg.Wait()
	if resp, err := c.Request(context.Background(), wire.NewRequest(bizEcho, []byte("after"))); err != nil || resp.Text() != "after" {
		t.Fatalf("echo after the timeouts = %v, %v", resp, err)
	}
}

func testHandlerErrors(t *testing.T, tc transportCase) {
	f := newFixture(t, tc)
	f.srv.Handle(bizEcho, echo)
	f.srv.Handle(bizNote, runtime.HandlerFunc(func(context.Context, *runtime.Session, *wire.Packet) (*wire.Packet, error) {
		return nil, runtime.NewError(runtime.CodeNotFound, "no such room")
	}))
	f.srv.Handle(bizBlock, runtime.HandlerFunc(func(context.Context, *runtime.Session, *wire.Packet) (*wire.Packet, error) {
		panic("boom")
	}))
	c := f.dial()
	ctx := context.Background()
	cases := []struct {
		biz      uint8
		wantCode runtime.Code
		wantMsg  string
	}{
		{bizNote, runtime.CodeNotFound, "no such room"},
		{bizBlock, runtime.CodeInternal, "handler panic"},
		{99, runtime.CodeUnimplemented, "no handler for biz_type 99"},
	}
	for _, cs := range cases {
		_, err := c.Request(ctx, wire.NewRequest(cs.biz, nil))
		var e *runtime.Error
		if !errors.As(err, &e) || e.Code != cs.wantCode || e.Message != cs.wantMsg {
			t.Errorf("biz %d: got %v, want %s %q", cs.biz, err, cs.wantCode, cs.wantMsg)
		}
	}
	// The session survived all of that.
	if resp, err := c.Request(ctx, wire.NewRequest(bizEcho, []byte("ok"))); err != nil || resp.Text() != "ok" {
		t.Errorf("echo after errors = %v, %v", resp, err)
	}
}

// header returns a fixed header with the given fields.
func header(version, comp, typ byte, extLen uint16, payloadLen uint32) []byte {
	h := []byte{version, comp, typ, 0, 0, 0, 0, 9, byte(extLen >> 8), byte(extLen), 0, 0, 0, 0, 0, 0}
	h[10], h[11], h[12], h[13] = byte(payloadLen>>24), byte(payloadLen>>16), byte(payloadLen>>8), byte(payloadLen)
	return h
}

func validPacket(text string) []byte {
	b, _ := wire.AppendPacket(nil, wire.NewText(bizNote, text))
	return b
}

func testBadInput(t *testing.T, tc transportCase) {
	type step struct {
		frame    []byte
		declared int    // the length a length-prefixed framing claims; 0: len(frame)
		text     string // a text message instead, where the transport has them
		eof      bool   // end the stream after the frame
		wantErr  error
		onlyText bool
	}
	cases := []struct {
		name string
		step step
	}{
		{"short header then EOF", step{frame: header(1, 0, 0, 0, 0)[:10], declared: 16, eof: true, wantErr: wire.ErrTruncated}},
		{"truncated ext header", step{frame: append(header(1, 0, 0, 8, 0), 1, 2, 3), declared: 24, eof: true, wantErr: wire.ErrTruncated}},
		{"truncated payload", step{frame: append(header(1, 0, 0, 0, 10), 'a', 'b'), declared: 26, eof: true, wantErr: wire.ErrTruncated}},
		{"version 0", step{frame: header(0, 0, 0, 0, 0), wantErr: wire.ErrProtocol}},
		{"version 2", step{frame: header(2, 0, 0, 0, 0), wantErr: wire.ErrProtocol}},
		{"packet_type 3", step{frame: header(1, 0, 3, 0, 0), wantErr: wire.ErrProtocol}},
		{"packet_type 255", step{frame: header(1, 0, 255, 0, 0), wantErr: wire.ErrProtocol}},
		{"compression 3", step{frame: header(1, 3, 0, 0, 0), wantErr: wire.ErrProtocol}},
		{"payload over the cap", step{frame: header(1, 0, 0, 0, 2<<20), wantErr: wire.ErrTooLarge}},
		{"4 GiB payload", step{frame: header(1, 0, 0, 0, 0xFFFFFFFF), wantErr: wire.ErrTooLarge}},
		{"ext header over the cap", step{frame: header(1, 0, 0, 5000, 0), wantErr: wire.ErrTooLarge}},
		{"garbage", step{frame: []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), wantErr: wire.ErrProtocol}},
		{"corrupt zstd payload", step{frame: append(header(1, 1, 0, 0, 4), 1, 2, 3, 4), wantErr: wire.ErrProtocol}},
		{"text message", step{text: "hello", wantErr: wire.ErrProtocol, onlyText: true}},
	}
	f := newFixture(t, tc)
	f.srv.Handle(bizEcho, echo)
	delivered := make(chan *wire.Packet, 100)
	f.srv.Handle(bizNote, collect(delivered))
	for _, cs := range cases {
		t.Run(cs.name, func(t *testing.T) {
			p := tc.raw(t, f.addr, f.certs.Client)
			defer p.Close()
			if cs.step.onlyText {
				if err := p.WriteText(cs.step.text); errors.Is(err, errNoText) {
					t.Skip("transport has no text messages")
				}
			} else {
				// A valid packet first: it is delivered, nothing after it is.
				before := validPacket("before")
				if err := p.WriteFrame(before, len(before)); err != nil {
					t.Fatalf("write: %v", err)
				}
				if got := recv(t, delivered).Text(); got != "before" {
					t.Fatalf("got %q, want the valid packet", got)
				}
				declared := cs.step.declared
				if declared == 0 {
					declared = len(cs.step.frame)
				}
				_ = p.WriteFrame(cs.step.frame, declared)
				if cs.step.eof {
					_ = p.CloseWrite()
				}
			}
			e := f.waitEvent(runtime.ConnectionClosed)
			if !errors.Is(e.Err, cs.step.wantErr) {
				t.Errorf("closed with %v, want %v", e.Err, cs.step.wantErr)
			}
			select {
			case p := <-delivered:
				t.Errorf("a packet was delivered from bad input: %v", p)
			default:
			}
			f.healthy()
			f.waitEvent(runtime.ConnectionClosed) // the healthy client's
		})
	}
}

var errNoText = errors.New("no text messages on this transport")

// streamPeer is a raw peer over a byte stream.
type streamPeer struct{ c net.Conn }

func (p streamPeer) WriteFrame(b []byte, _ int) error { _, err := p.c.Write(b); return err }
func (p streamPeer) WriteText(string) error           { return errNoText }
func (p streamPeer) Close() error                     { return p.c.Close() }
func (p streamPeer) WaitClosed(d time.Duration) error {
	buf := make([]byte, 4096)
	return untilClosed(p.c.SetReadDeadline, func() error { _, err := p.c.Read(buf); return err }, d)
}
func (p streamPeer) CloseWrite() error {
	if cw, ok := p.c.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return p.c.Close()
}

func tcpRaw(t *testing.T, addr string, tc *tls.Config) rawPeer {
	u, _ := url.Parse(addr)
	c, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatalf("raw dial: %v", err)
	}
	if u.Scheme == "tls" {
		tc = tc.Clone()
		tc.ServerName = u.Hostname()
		tlsc := tls.Client(c, tc)
		if err := tlsc.Handshake(); err != nil {
			t.Fatalf("raw tls handshake: %v", err)
		}
		c = tlsc
	}
	return streamPeer{c}
}

// memRaw dials through the mem transport and writes bytes on the pipe.
func memRaw(t *testing.T, addr string, _ *tls.Config) rawPeer {
	c, err := runtime.DialConn(context.Background(), addr, nil)
	if err != nil {
		t.Fatalf("raw dial: %v", err)
	}
	return streamPeer{c.(*runtime.StreamConn).NetConn()}
}
