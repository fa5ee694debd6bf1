package runtime_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	quicgo "github.com/quic-go/quic-go"

	"github.com/msgtrans/msgtrans-go/internal/testcert"
	"github.com/msgtrans/msgtrans-go/runtime"
	"github.com/msgtrans/msgtrans-go/transports/quic"
	"github.com/msgtrans/msgtrans-go/wire"
)

// Connections count under the caps from the moment they appear: a host
// cannot hold the server's resources with connections that never finish
// their TLS, WebSocket or QUIC handshake.

// eventually calls f until it returns nil, failing the test with its last
// error after d.
func eventually(t *testing.T, d time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still %v after %v", what, err, d)
		}
		time.Sleep(20 * time.Millisecond) // polling
	}
}

// dialOnce makes one client connection and one echo request.
func dialOnce(f *fixture) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	c, err := runtime.Dial(ctx, f.addr, runtime.WithTLS(f.certs.Client), runtime.WithoutReconnect(),
		runtime.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = c.Request(ctx, wire.NewRequest(bizEcho, []byte("hi")))
	return err
}

// firstPacketOnly is a UDP socket that sends the first datagram written to
// it and silently drops the rest: a QUIC peer that sends its Initial and
// never answers.
type firstPacketOnly struct {
	net.PacketConn
	sent atomic.Bool
}

func (c *firstPacketOnly) WriteTo(b []byte, a net.Addr) (int, error) {
	if c.sent.Swap(true) {
		return len(b), nil
	}
	return c.PacketConn.WriteTo(b, a)
}

// stallers: ways of holding a connection without finishing its handshake.
var stallers = map[string]func(t *testing.T, f *fixture) io.Closer{
	// A TCP connection that never sends its first byte (for TLS, its
	// ClientHello; for WebSocket, its upgrade request).
	"silent": func(t *testing.T, f *fixture) io.Closer {
		u, _ := url.Parse(f.addr)
		c, err := net.Dial("tcp", u.Host)
		if err != nil {
			t.Fatal(err)
		}
		return c
	},
	// A QUIC connection that completes its handshake and opens no stream.
	"no stream": func(t *testing.T, f *fixture) io.Closer {
		u, _ := url.Parse(f.addr)
		tc := f.certs.Client.Clone()
		tc.ServerName, tc.NextProtos = u.Hostname(), []string{quic.ALPN}
		c, err := quicgo.DialAddr(context.Background(), u.Host, tc, nil)
		if err != nil {
			t.Fatal(err)
		}
		return closerFunc(func() error { return c.CloseWithError(0, "") })
	},
	// A QUIC peer that sends one Initial packet and nothing more.
	"initial only": func(t *testing.T, f *fixture) io.Closer {
		u, _ := url.Parse(f.addr)
		udp, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		raddr, _ := net.ResolveUDPAddr("udp", u.Host)
		tr := &quicgo.Transport{Conn: &firstPacketOnly{PacketConn: udp}}
		tc := f.certs.Client.Clone()
		tc.ServerName, tc.NextProtos = u.Hostname(), []string{quic.ALPN}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			if c, err := tr.Dial(ctx, raddr, tc, nil); err == nil {
				_ = c.CloseWithError(0, "")
			}
		}()
		return closerFunc(func() error {
			cancel()
			<-done
			_ = tr.Close()
			return udp.Close()
		})
	},
}

type closerFunc func() error

func (f closerFunc) Close() error { return f() }

// TestAbuseCapsBeforeHandshake: a host fills its places under the per-host
// cap with connections that never finish their handshake. They are counted
// (the host's next connection is refused, over TLS and WebSocket before any
// handshake), closed at the handshake timeout, and then the host is served
// again.
func TestAbuseCapsBeforeHandshake(t *testing.T) {
	const limit = 10
	tests := []struct {
		transport string
		staller   string
	}{
		{"tls", "silent"},
		{"ws", "silent"},
		{"wss", "silent"},
		{"quic", "no stream"},
		{"quic", "initial only"},
	}
	for _, tt := range tests {
		var tc transportCase
		for _, c := range transportCases() {
			if c.name == tt.transport {
				tc = c
			}
		}
		t.Run(tt.transport+"/"+tt.staller, func(t *testing.T) {
			settled(t)
			f := newFixture(t, tc, runtime.WithMaxConnectionsPerIP(limit), runtime.WithHandshakeTimeout(time.Second),
				runtime.WithLogger(slog.New(slog.DiscardHandler)))
			f.srv.Handle(bizEcho, echo)
			start := time.Now()
			stall := func() {
				c := stallers[tt.staller](t, f)
				t.Cleanup(func() { _ = c.Close() })
			}
			for range limit {
				stall()
			}
			// The stalled connections hold every place: the host is refused.
			// (A client whose connection overtook a staller's first packet
			// took its place; one more staller then fills it.)
			eventually(t, 5*time.Second, "a connection beside the stalled ones", func() error {
				if err := dialOnce(f); err == nil {
					stall()
					return errors.New("served")
				}
				return nil
			})
			if tc.name != "quic" {
				// Refused before TLS or HTTP: closed at once, not at the
				// handshake timeout.
				refusedAtOnce(t, f, "the per-host cap")
			}
			// The handshake timeout frees the places.
			eventually(t, 10*time.Second, "a client after the handshake timeout", func() error { return dialOnce(f) })
			t.Logf("the host was served again %v after stalling", time.Since(start).Round(time.Millisecond))
		})
	}
}

// TestAbuseHandshakeCap: connections that never finish their transport
// handshake fill WithMaxHandshakes, not the per-host cap; beyond it a new
// connection is refused at once (closed under TLS, a 503 on plain
// WebSocket) rather than held until the handshake timeout, and the
// timeout frees the places.
func TestAbuseHandshakeCap(t *testing.T) {
	const limit = 4
	for _, name := range []string{"tls", "ws", "wss"} {
		var tc transportCase
		for _, c := range transportCases() {
			if c.name == name {
				tc = c
			}
		}
		t.Run(name, func(t *testing.T) {
			settled(t)
			f := newFixture(t, tc, runtime.WithMaxHandshakes(limit), runtime.WithMaxConnectionsPerIP(100),
				runtime.WithHandshakeTimeout(time.Second), runtime.WithLogger(slog.New(slog.DiscardHandler)))
			f.srv.Handle(bizEcho, echo)
			stall := func() {
				c := stallers["silent"](t, f)
				t.Cleanup(func() { _ = c.Close() })
			}
			for range limit {
				stall()
			}
			eventually(t, 5*time.Second, "a connection beside the stalled handshakes", func() error {
				if err := dialOnce(f); err == nil {
					stall() // it overtook a staller: one more fills the place
					return errors.New("served")
				}
				return nil
			})
			refusedAtOnce(t, f, "the handshake cap")
			eventually(t, 10*time.Second, "a client after the handshake timeout", func() error { return dialOnce(f) })
		})
	}
}

// refusedAtOnce checks that a TCP connection to f's listener, over cap,
// is refused at once, before any TLS or HTTP: closed within 900 ms rather
// than held to the handshake timeout, with a 503 on plain WebSocket.
func refusedAtOnce(t *testing.T, f *fixture, cap string) {
	t.Helper()
	u, _ := url.Parse(f.addr)
	c, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(900 * time.Millisecond))
	b, err := io.ReadAll(c)
	_ = c.Close()
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		t.Errorf("a connection over %s was held open (read %q)", cap, b)
	case f.tc.name == "ws" && !strings.HasPrefix(string(b), "HTTP/1.1 503"):
		t.Errorf("a plain WebSocket connection over %s got %q, want a 503", cap, b)
	}
}

// TestAbuseWebSocketKeepAlive: plain HTTP requests on the WebSocket port
// (no upgrade) do not hold a connection: one request is answered (426) and
// the connection closed, however often the peer asks again.
func TestAbuseWebSocketKeepAlive(t *testing.T) {
	settled(t)
	var tc transportCase
	for _, c := range transportCases() {
		if c.name == "ws" {
			tc = c
		}
	}
	f := newFixture(t, tc, runtime.WithHandshakeTimeout(time.Second), runtime.WithLogger(slog.New(slog.DiscardHandler)))
	f.srv.Handle(bizEcho, echo)
	u, _ := url.Parse(f.addr)
	const n = 50
	errs := make(chan error, n)
	for range n {
		go func() {
			c, err := net.Dial("tcp", u.Host)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			start := time.Now()
			r := bufio.NewReader(c)
			for i := 0; ; i++ {
				if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", u.Path, u.Host); err != nil {
					break
				}
				_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
				resp, err := io.ReadAll(r)
				if err != nil || len(resp) == 0 || time.Since(start) > 3*time.Second {
					break
				}
				if i > 0 {
					errs <- fmt.Errorf("request %d on one connection answered: keep-alive before the upgrade", i+1)
					return
				}
				if !strings.HasPrefix(string(resp), "HTTP/1.1 426") {
					errs <- fmt.Errorf("a plain GET got %q", resp)
					return
				}
			}
			if took := time.Since(start); took > 2500*time.Millisecond {
				errs <- fmt.Errorf("the connection stayed %v", took)
				return
			}
			errs <- nil
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if err := dialOnce(f); err != nil {
		t.Errorf("a client after the plain requests: %v", err)
	}
}

// fdServerEnv, when set, makes the test binary a server process with few
// file descriptors (see TestAbuseOutOfDescriptors).
const fdServerEnv = "MSGTRANS_FD_SERVER"

// TestAbuseOutOfDescriptors: a server process allowed few file descriptors
// runs out of them (a host opens WebSocket connections that never send the
// upgrade request) while a TCP connection arrives. Accept fails with
// EMFILE; the listeners retry instead of stopping, and once the stalled
// connections are closed at the handshake timeout every listener serves
// again.
func TestAbuseOutOfDescriptors(t *testing.T) {
	if os.Getenv(fdServerEnv) != "" {
		serveWithFewDescriptors()
		return
	}
	settled(t)
	certs := testcert.New()
	cmd := exec.Command(os.Args[0], "-test.run=^TestAbuseOutOfDescriptors$")
	cmd.Env = append(os.Environ(), fdServerEnv+"=1",
		restartCertEnv+"="+string(certs.CertPEM), restartKeyEnv+"="+string(certs.KeyPEM))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &serverProcess{cmd: cmd}
	t.Cleanup(func() {
		_ = stdin.Close()
		p.kill()
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "listening ") {
		t.Fatalf("server process said %q (%v)", line, err)
	}
	addrs := strings.Fields(strings.TrimPrefix(line, "listening "))
	if len(addrs) != 3 {
		t.Fatalf("server process listens on %q", addrs)
	}
	f := &fixture{t: t, certs: certs}

	// Exhaust the process's descriptors with stalled WebSocket connections.
	wsHost := strings.TrimSuffix(strings.TrimPrefix(addrs[1], "ws://"), "/ws")
	var stalled []net.Conn
	t.Cleanup(func() {
		for _, c := range stalled {
			_ = c.Close()
		}
	})
	for range fdLimit {
		c, err := net.Dial("tcp", wsHost)
		if errors.Is(err, syscall.ECONNRESET) {
			// Already out of descriptors: the listener accepted and shed
			// this one before the dial returned.
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		stalled = append(stalled, c)
	}
	// TCP connections now meet EMFILE at accept: the listener sheds them
	// with the reserved descriptor, telling each why (a go-away refusal),
	// and keeps accepting. A probe accepted because a descriptor was free
	// for a moment (it is answered the hello) stays open, holding it, and
	// the next one is tried.
	tcpHost := strings.TrimPrefix(addrs[0], "tcp://")
	shed := false
	for i := 0; i < 10 && !shed; i++ {
		probe, err := net.Dial("tcp", tcpHost)
		if err != nil {
			t.Fatal(err)
		}
		stalled = append(stalled, probe)
		_ = probe.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := probe.Write(controlBytes(t, wire.ControlHello, []byte{0})); err != nil {
			t.Fatalf("probe %d: %v", i+1, err)
		}
		p, err := wire.NewDecoder(probe, wire.Limits{}).Next()
		if err != nil {
			t.Fatalf("probe %d was told nothing: %v", i+1, err)
		}
		ext, err := wire.ParseExt(p.Ext)
		switch {
		case err != nil:
			t.Fatalf("probe %d: %v", i+1, err)
		case ext.Control == wire.ControlHello:
			t.Logf("probe %d accepted: a descriptor was free", i+1)
		case ext.Control == wire.ControlGoAway && ext.Code == wire.CodeResourceExhausted && strings.Contains(ext.Message, "file descriptors"):
			shed = true
		default:
			t.Fatalf("probe %d got control %v, status %v %q; want a hello or a go-away for want of file descriptors", i+1, ext.Control, ext.Code, ext.Message)
		}
	}
	if !shed {
		t.Fatal("no connection was shed with a refusal while the server was out of descriptors")
	}
	// The stalled connections are closed at the handshake timeout (1 s);
	// then every listener serves.
	for _, addr := range addrs {
		f.addr = addr
		eventually(t, 20*time.Second, "a client of "+addr, func() error { return dialOnce(f) })
	}
}

// fdLimit is the descriptor limit of the server process in
// TestAbuseOutOfDescriptors.
const fdLimit = 64

// serveWithFewDescriptors is the server process of
// TestAbuseOutOfDescriptors.
func serveWithFewDescriptors() {
	fail := func(what string, err error) {
		fmt.Println(what+":", err)
		os.Exit(3)
	}
	cert, err := tls.X509KeyPair([]byte(os.Getenv(restartCertEnv)), []byte(os.Getenv(restartKeyEnv)))
	if err != nil {
		fail("certificate", err)
	}
	srv, err := runtime.NewServer(runtime.WithHandshakeTimeout(time.Second), runtime.WithLogger(slog.New(slog.DiscardHandler)),
		runtime.WithTLS(&tls.Config{Certificates: []tls.Certificate{cert}}))
	if err != nil {
		fail("server", err)
	}
	srv.Handle(bizEcho, echo)
	if err := srv.Listen(context.Background(), "tcp://127.0.0.1:0", "ws://127.0.0.1:0/ws", "quic://127.0.0.1:0"); err != nil {
		fail("listen", err)
	}
	lim := syscall.Rlimit{Cur: fdLimit, Max: fdLimit}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		fail("setrlimit", err)
	}
	fmt.Println("listening " + strings.Join(srv.Addrs(), " "))
	_, _ = io.Copy(io.Discard, os.Stdin)
	_ = srv.Close()
	os.Exit(0)
}
