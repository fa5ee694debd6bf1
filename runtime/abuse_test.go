package runtime_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	goruntime "runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/msgtrans/msgtrans-go/runtime"
	"github.com/msgtrans/msgtrans-go/wire"
)

// Abuse: many misbehaving connections at once, over TCP and WebSocket; each
// test ends with a healthy client being served.

func abuseCases() []transportCase {
	var out []transportCase
	for _, tc := range transportCases() {
		if tc.name == "tcp" || tc.name == "ws" {
			out = append(out, tc)
		}
	}
	return out
}

// abuse runs n peers, at most 100 at a time, each doing what misbehave
// says and then waiting for the server to close its connection; then it
// waits until the server has reported each of those sessions closed. A
// QUIC connection may be refused before it is a session, when handshakes
// complete faster than they are accepted (see refusedBeforeSession).
func abuse(t *testing.T, f *fixture, n int, misbehave func(p rawPeer)) {
	t.Helper()
	var wg sync.WaitGroup
	var refused atomic.Int64
	sem := make(chan struct{}, 100)
	for range n {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			p := f.tc.raw(t, f.addr, f.certs.Client)
			defer p.Close()
			misbehave(p)
			switch err := p.WaitClosed(30 * time.Second); {
			case errors.Is(err, errStillOpen):
				t.Errorf("the server did not close an abusive connection: %v", err)
			case refusedBeforeSession(err):
				refused.Add(1)
			}
		}()
	}
	wg.Wait()
	sessions := n - int(refused.Load())
	if refused.Load() > 0 {
		t.Logf("%d of %d connections were refused before they became sessions", refused.Load(), n)
	}
	timeout := time.After(60 * time.Second)
	for i := range sessions {
		select {
		case <-f.closedSignal:
		case <-timeout:
			t.Fatalf("the server reported %d of %d abusive sessions closed", i, sessions)
		}
	}
}

// settled registers a check, run after the test's other cleanups (which
// close its server), that the process's goroutines and open file
// descriptors are back to what they were when it was called.
func settled(t *testing.T) {
	t.Helper()
	goroutines := goleak.IgnoreCurrent()
	fds := openFDs(t)
	t.Cleanup(func() {
		goleak.VerifyNone(t, goroutines)
		deadline := time.Now().Add(10 * time.Second)
		for n := openFDs(t); n > fds; n = openFDs(t) {
			if time.Now().After(deadline) {
				t.Errorf("%d file descriptors open after the test, %d before it", n, fds)
				return
			}
			time.Sleep(10 * time.Millisecond) // polling, as goleak does
		}
	})
}

// openFDs counts the process's open file descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(fds)
}

// abuseFixture is a server for abuse tests: caps raised above the number of
// abusive connections, and a signal per closed session. The test's
// goroutines and file descriptors must return to their baseline.
func abuseFixture(t *testing.T, tc transportCase, opts ...runtime.ServerOption) *fixture {
	settled(t)
	closedSignal := make(chan struct{}, 20000)
	opts = append(opts,
		runtime.WithMaxConnections(20000), runtime.WithMaxConnectionsPerIP(20000),
		runtime.WithEventHandler(func(e runtime.Event) {
			if e.Kind == runtime.ConnectionClosed {
				closedSignal <- struct{}{}
			}
		}))
	f := newFixture(t, tc, opts...)
	f.closedSignal = closedSignal
	f.srv.Handle(bizEcho, echo)
	return f
}

// TestAbuseHeaderBytes: every value of the version, packet_type and
// compression bytes: the valid ones are served, every other one closes only
// its own connection. QUIC too: its connections are slow to set up, but
// there are fewer than a thousand here.
func TestAbuseHeaderBytes(t *testing.T) {
	cases := abuseCases()
	for _, tc := range transportCases() {
		if tc.name == "quic" {
			cases = append(cases, tc)
		}
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := abuseFixture(t, tc)
			var bad [][]byte
			for v := range 256 {
				if v != 1 {
					bad = append(bad, header(byte(v), 0, 0, 0, 0))
				}
				if v > 2 {
					bad = append(bad, header(1, 0, byte(v), 0, 0))
				}
				if v > 2 {
					bad = append(bad, header(1, byte(v), 0, 0, 0))
				}
			}
			var mu sync.Mutex
			i := 0
			abuse(t, f, len(bad), func(p rawPeer) {
				mu.Lock()
				b := bad[i]
				i++
				mu.Unlock()
				_ = p.WriteFrame(b, len(b))
			})
			f.healthy()
		})
	}
}

// TestAbuseRandomGarbage: 2,000 connections each send up to 1 KiB of
// random bytes (seeded, so a failure can be replayed) and end their
// sending side: every one is closed, whatever its bytes happened to say.
func TestAbuseRandomGarbage(t *testing.T) {
	for _, tc := range abuseCases() {
		t.Run(tc.name, func(t *testing.T) {
			f := abuseFixture(t, tc)
			var mu sync.Mutex
			rng := rand.New(rand.NewPCG(1, 2))
			abuse(t, f, 2000, func(p rawPeer) {
				mu.Lock()
				b := make([]byte, 1+rng.IntN(1024))
				for i := range b {
					b[i] = byte(rng.Uint32())
				}
				mu.Unlock()
				_ = p.WriteFrame(b, len(b))
				_ = p.CloseWrite()
			})
			f.healthy()
		})
	}
}

// TestAbuseTruncated: 10,000 connections each send part of a packet and
// hang up; 2,000 more send part of one and stall, and are closed at the
// packet read deadline.
func TestAbuseTruncated(t *testing.T) {
	for _, tc := range abuseCases() {
		t.Run(tc.name, func(t *testing.T) {
			f := abuseFixture(t, tc, runtime.WithLimits(wire.Limits{PacketReadTimeout: 200 * time.Millisecond}))
			partial := append(header(1, 0, 0, 0, 100), "only part of it"...)
			abuse(t, f, 10000, func(p rawPeer) {
				_ = p.WriteFrame(partial, len(partial))
				_ = p.CloseWrite()
			})
			abuse(t, f, 2000, func(p rawPeer) {
				_ = p.WriteFrame(partial, len(partial)) // and nothing more
			})
			f.healthy()
		})
	}
}

// TestAbuseHugeLengths: 10,000 connections declare a 4 GiB payload; none
// of it is allocated (heap growth stays under 16 MiB).
func TestAbuseHugeLengths(t *testing.T) {
	for _, tc := range abuseCases() {
		t.Run(tc.name, func(t *testing.T) {
			f := abuseFixture(t, tc)
			var before, after goruntime.MemStats
			goruntime.GC()
			goruntime.ReadMemStats(&before)
			huge := header(1, 0, 0, 0, 0xFFFFFFFF)
			abuse(t, f, 10000, func(p rawPeer) { _ = p.WriteFrame(huge, len(huge)) })
			goruntime.GC()
			goruntime.ReadMemStats(&after)
			if grew := int64(after.HeapInuse) - int64(before.HeapInuse); grew > 16<<20 {
				t.Errorf("heap grew by %d MiB", grew>>20)
			}
			f.healthy()
		})
	}
}

// TestAbuseZeroLengthFlood: 1,000,000 packets with empty payloads on one
// connection are all delivered, in order of arrival, without trouble.
func TestAbuseZeroLengthFlood(t *testing.T) {
	n := 1_000_000
	if testing.Short() {
		n = 100_000
	}
	settled(t)
	f := newFixture(t, transportCases()[1], runtime.WithRateLimit(1e9, 1e9))
	f.srv.Handle(bizEcho, echo)
	var got atomic.Int64
	done := make(chan struct{})
	f.srv.Handle(bizNote, runtime.HandlerFunc(func(_ context.Context, _ *runtime.Session, p *wire.Packet) (*wire.Packet, error) {
		if len(p.Payload) != 0 {
			return nil, errors.New("payload")
		}
		if got.Add(1) == int64(n) {
			close(done)
		}
		return nil, nil
	}))
	p := f.tc.raw(t, f.addr, nil)
	defer p.Close()
	empty := validPacket("")
	batch := make([]byte, 0, 1000*len(empty))
	for range 1000 {
		batch = append(batch, empty...)
	}
	for sent := 0; sent < n; sent += 1000 {
		if err := p.WriteFrame(batch, len(batch)); err != nil {
			t.Fatalf("after %d packets: %v", sent, err)
		}
	}
	select {
	case <-done:
	case <-time.After(120 * time.Second):
		t.Fatalf("%d of %d packets delivered", got.Load(), n)
	}
	f.healthy()
}

// TestAbuseSlowloris: connections that dribble an incomplete WebSocket
// upgrade request are closed at the handshake timeout, and a healthy client
// is served meanwhile.
func TestAbuseSlowloris(t *testing.T) {
	var tc transportCase
	for _, c := range abuseCases() {
		if c.name == "ws" {
			tc = c
		}
	}
	f := abuseFixture(t, tc, runtime.WithHandshakeTimeout(300*time.Millisecond))
	host := strings.TrimSuffix(strings.TrimPrefix(f.addr, "ws://"), "/ws")
	const n = 200
	conns := make([]net.Conn, 0, n)
	for range n {
		c, err := net.Dial("tcp", host)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Write([]byte("GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n")); err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	f.healthy()
	for i, c := range conns {
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		b, err := io.ReadAll(c)
		if err != nil && !strings.Contains(err.Error(), "reset") {
			t.Fatalf("slow connection %d: %v (read %q)", i, err, b)
		}
	}
}

// TestAbuseConnectionFlood: 5,000 connections from one host against the
// default caps: at most 100 become sessions, the rest are refused at accept,
// and once the flood ends a client is served.
func TestAbuseConnectionFlood(t *testing.T) {
	settled(t)
	tc := transportCases()[1]
	f := newFixture(t, tc)
	f.srv.Handle(bizEcho, echo)
	host := strings.TrimPrefix(f.addr, "tcp://")
	const n = 5000
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			_ = c.Close()
		}
	}()
	refused := 0
	for range n {
		c, err := net.Dial("tcp", host)
		if err != nil {
			t.Fatalf("dial %d: %v", len(conns), err)
		}
		conns = append(conns, c)
	}
	for _, c := range conns {
		// A refused connection gets the refusal at once; a session gets
		// nothing (it sent no hello): give each a moment to tell.
		_ = c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		if p, err := runtime.NewStreamConn(c, wire.Limits{}).ReadPacket(); err == nil {
			if e, err := wire.ParseExt(p.Ext); err == nil && e.Control == wire.ControlGoAway && e.Code == runtime.CodeResourceExhausted {
				refused++
			}
		}
	}
	if got := f.srv.SessionCount(); got > runtime.DefaultMaxConnsPerIP {
		t.Errorf("%d sessions from one host, want at most %d", got, runtime.DefaultMaxConnsPerIP)
	}
	if refused < n-runtime.DefaultMaxConnsPerIP {
		t.Errorf("%d connections were refused, want at least %d", refused, n-runtime.DefaultMaxConnsPerIP)
	}
	for _, c := range conns {
		_ = c.Close()
	}
	conns = nil
	for range runtime.DefaultMaxConnsPerIP {
		if f.srv.SessionCount() == 0 {
			break
		}
		f.waitEvent(runtime.ConnectionClosed)
	}
	f.healthy()
}

// TestAbuseKilledClient: a client process killed (SIGKILL) in the middle of
// a packet leaves no session behind.
func TestAbuseKilledClient(t *testing.T) {
	if addr := os.Getenv("MSGTRANS_KILLED_CLIENT_ADDR"); addr != "" {
		// The child: connect, send half a packet, say so, wait to be killed.
		c, err := net.Dial("tcp", addr)
		if err != nil {
			os.Exit(3)
		}
		_, _ = c.Write(header(1, 0, 0, 0, 1000)[:10])
		fmt.Println("half a packet sent")
		select {}
	}
	settled(t)
	f := newFixture(t, transportCases()[1])
	f.srv.Handle(bizEcho, echo)
	cmd := exec.Command(os.Args[0], "-test.run=^TestAbuseKilledClient$")
	cmd.Env = append(os.Environ(), "MSGTRANS_KILLED_CLIENT_ADDR="+strings.TrimPrefix(f.addr, "tcp://"))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, _ := bufio.NewReader(out).ReadString('\n')
	if line != "half a packet sent\n" {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("child said %q", line)
	}
	s := f.waitSessions(1)[0]
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	e := f.waitEvent(runtime.ConnectionClosed)
	if e.Session != s || !errors.Is(e.Err, wire.ErrTruncated) {
		t.Errorf("closed session %d with %v, want the killed client's with ErrTruncated", e.Session.ID(), e.Err)
	}
	if n := f.srv.SessionCount(); n != 0 {
		t.Errorf("%d sessions left", n)
	}
	f.healthy()
}
