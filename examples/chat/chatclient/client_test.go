package chatclient

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/msgtrans/msgtrans-go/examples/chat/chatserver"
	"github.com/msgtrans/msgtrans-go/runtime"
	_ "github.com/msgtrans/msgtrans-go/transports/all"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const wait = 10 * time.Second

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func startServer(t *testing.T, listen string) *chatserver.Server {
	t.Helper()
	srv, err := chatserver.New(chatserver.Config{Listen: []string{listen}, Logger: quiet(), PingInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	return srv
}

func stopServer(t *testing.T, srv *chatserver.Server) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Error(err)
	}
}

// session runs Run with piped input and output.
type session struct {
	t     *testing.T
	in    *io.PipeWriter
	lines chan string
	done  chan error
}

func run(t *testing.T, ctx context.Context, cfg Config) *session {
	t.Helper()
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	s := &session{t: t, in: inW, lines: make(chan string, 1024), done: make(chan error, 1)}
	cfg.Logger = quiet()
	go func() {
		err := Run(ctx, cfg, inR, outW)
		_ = inR.CloseWithError(io.ErrClosedPipe)
		_ = outW.Close()
		s.done <- err
	}()
	go func() {
		sc := bufio.NewScanner(outR)
		for sc.Scan() {
			s.lines <- sc.Text()
		}
		close(s.lines)
	}()
	return s
}

func (s *session) expect(want ...string) {
	s.t.Helper()
	for _, w := range want {
		select {
		case got, ok := <-s.lines:
			if !ok {
				s.t.Fatalf("output ended; want %q", w)
			}
			if got != w && !(strings.HasSuffix(w, "…") && strings.HasPrefix(got, strings.TrimSuffix(w, "…"))) {
				s.t.Fatalf("got %q, want %q", got, w)
			}
		case <-time.After(wait):
			s.t.Fatalf("no output; want %q", w)
		}
	}
}

func (s *session) next() string {
	s.t.Helper()
	select {
	case l, ok := <-s.lines:
		if !ok {
			s.t.Fatal("output ended")
		}
		return l
	case <-time.After(wait):
		s.t.Fatal("no output")
		return ""
	}
}

func (s *session) send(line string) {
	s.t.Helper()
	if _, err := io.WriteString(s.in, line+"\n"); err != nil {
		s.t.Fatal(err)
	}
}

func (s *session) result() error {
	s.t.Helper()
	select {
	case err := <-s.done:
		for range s.lines {
		}
		return err
	case <-time.After(wait):
		s.t.Fatal("Run did not return")
		return nil
	}
}

// TestInputWaitsForReconnection: a line typed while the server is down is
// sent once the client has reconnected and joined its room again.
func TestInputWaitsForReconnection(t *testing.T) {
	srv := startServer(t, "tcp://127.0.0.1:0")
	addr := srv.Addrs()[0]
	s := run(t, context.Background(), Config{Server: addr, Nick: "x", Room: "lobby", Reconnect: runtime.Backoff{Base: 10 * time.Millisecond, MaxDelay: 100 * time.Millisecond}})
	s.expect("* x joined lobby", "* members of lobby: x")
	s.send("/help")
	s.expect("! commands: /join ROOM, /leave, /nick NAME, /who, /quit, /help", "! any other line…")
	s.send("/dance")
	s.expect("! unknown command /dance (try /help)")

	stopServer(t, srv)
	s.expect("! connection lost (server is going away); reconnecting")
	s.send("typed while down")
	s.expect("! not connected; waiting to reconnect")

	srv = startServer(t, addr)
	defer stopServer(t, srv)
	s.expect("! reconnected to "+addr, "* x joined lobby", "* members of lobby: x", "[lobby] x: typed while down")

	s.send("/nick y")
	s.expect("* x is now known as y")
	s.send("/leave")
	s.expect("* y left lobby")
	s.send("outside")
	s.expect("! not in a room: /join ROOM first")
	s.send("/nick z") // outside a room, the client says it itself
	s.expect("* y is now known as z")
	s.send("/who")
	s.expect("! not in a room")
	_ = s.in.Close()
	if err := s.result(); err != nil {
		t.Errorf("Run = %v", err)
	}
}

// TestRejoinPrintsOnlyUnseenHistory: after a drop, a client rejoins and
// prints the messages it missed, not those it printed already.
func TestRejoinPrintsOnlyUnseenHistory(t *testing.T) {
	srv := startServer(t, "tcp://127.0.0.1:0")
	defer stopServer(t, srv)
	backoff := runtime.Backoff{Base: 10 * time.Millisecond, MaxDelay: 100 * time.Millisecond}
	x := run(t, context.Background(), Config{Server: srv.Addrs()[0], Nick: "x", Room: "lobby", Reconnect: backoff})
	x.expect("* x joined lobby", "* members of lobby: x")
	y := run(t, context.Background(), Config{Server: srv.Addrs()[0], Nick: "y", Room: "lobby", Reconnect: backoff})
	y.expect("* y joined lobby", "* members of lobby: x, y")
	x.expect("* y joined lobby")
	y.send("one")
	y.send("two")
	x.expect("[lobby] y: one", "[lobby] y: two")
	y.expect("[lobby] y: one", "[lobby] y: two")

	var xID uint64
	for _, m := range srv.Members("lobby") {
		if m.Nick == "x" {
			xID = m.SessionID
		}
	}
	if !srv.Disconnect(xID) {
		t.Fatal("no session to disconnect")
	}
	y.expect("* x left lobby")
	y.send("three") // before or after x is back: x prints it once either way
	y.expect("[lobby] y: three")

	x.expect("! connection lost…", "! reconnected to…", "* x joined lobby")
	// x missed "three" (printed from the history, before the members) or
	// was back in time (printed live, after them); "one" and "two" are
	// not printed again.
	first, second := x.next(), x.next()
	missed := regexp.MustCompile(`^\[lobby \d\d:\d\d:\d\d\] y: three$`).MatchString(first) && second == "* members of lobby: x, y"
	live := first == "* members of lobby: x, y" && second == "[lobby] y: three"
	if !missed && !live {
		t.Fatalf("after the rejoin x printed %q, %q", first, second)
	}
	t.Logf("x missed the message and printed it from the history: %v", missed)
	x.send("/who") // answered next: nothing else was printed
	x.expect("* members of lobby: x, y")
	_ = x.in.Close()
	_ = y.in.Close()
	for _, s := range []*session{x, y} {
		if err := s.result(); err != nil {
			t.Errorf("Run = %v", err)
		}
	}
}

func TestRunErrors(t *testing.T) {
	srv := startServer(t, "tcp://127.0.0.1:0")
	defer stopServer(t, srv)
	// A port nothing listens on: bind one and close it.
	closed := startServer(t, "tcp://127.0.0.1:0")
	down := closed.Addrs()[0]
	stopServer(t, closed)

	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"no server", Config{Nick: "x"}, "no server address"},
		{"no nick", Config{Server: srv.Addrs()[0]}, "no nick"},
		{"unknown scheme", Config{Server: "carrier-pigeon://x", Nick: "x"}, "unknown transport scheme"},
		{"server down", Config{Server: down, Nick: "x", ConnectTimeout: wait}, "connect to " + down},
		{"bad nick", Config{Server: srv.Addrs()[0], Nick: "two words", Room: "lobby"}, `join lobby: nick "two words" contains a space`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := run(t, context.Background(), tt.cfg)
			_ = s.in.Close()
			if err := s.result(); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Run = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestRunEndsWithContext(t *testing.T) {
	srv := startServer(t, "tcp://127.0.0.1:0")
	defer stopServer(t, srv)
	ctx, cancel := context.WithCancel(context.Background())
	s := run(t, ctx, Config{Server: srv.Addrs()[0], Nick: "x", Room: "lobby"})
	s.expect("* x joined lobby", "* members of lobby: x")
	cancel()
	if err := s.result(); err != nil {
		t.Errorf("Run = %v, want nil", err)
	}
	_ = s.in.Close()
}

func TestTLSConfig(t *testing.T) {
	if c, err := TLSConfig("", false); c != nil || err != nil {
		t.Errorf("no flags: %v, %v; want nil, nil (system roots)", c, err)
	}
	if c, err := TLSConfig("", true); err != nil || !c.InsecureSkipVerify {
		t.Errorf("-insecure: %v, %v", c, err)
	}
	if _, err := TLSConfig("ca.pem", true); err == nil {
		t.Error("-ca with -insecure accepted")
	}
	dir := t.TempDir()
	if _, err := TLSConfig(filepath.Join(dir, "missing.pem"), false); err == nil {
		t.Error("missing CA file accepted")
	}
	junk := filepath.Join(dir, "junk.pem")
	if err := os.WriteFile(junk, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := TLSConfig(junk, false); err == nil {
		t.Error("CA file without certificates accepted")
	}
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, selfSignedPEM(t), 0o600); err != nil {
		t.Fatal(err)
	}
	if c, err := TLSConfig(ca, false); err != nil || c.RootCAs == nil || c.InsecureSkipVerify {
		t.Errorf("-ca: %v, %v", c, err)
	}
}

func selfSignedPEM(t *testing.T) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// TestTooLongMessage: a line over the server's limit is refused by the
// client, which says so, instead of being sent and dropped unseen; one at
// the limit is sent. The client's limit is the server's.
func TestTooLongMessage(t *testing.T) {
	if MaxTextBytes != chatserver.MaxTextBytes {
		t.Fatalf("MaxTextBytes = %d, the server's is %d", MaxTextBytes, chatserver.MaxTextBytes)
	}
	srv := startServer(t, "tcp://127.0.0.1:0")
	defer stopServer(t, srv)
	s := run(t, context.Background(), Config{Server: srv.Addrs()[0], Nick: "x", Room: "lobby"})
	s.expect("* x joined lobby", "* members of lobby: x")
	s.send(strings.Repeat("y", MaxTextBytes+1))
	s.expect("! message not sent: 4001 bytes, at most 4000")
	s.send("short")
	s.expect("[lobby] x: short")
	_ = s.in.Close()
	if err := s.result(); err != nil {
		t.Errorf("Run = %v", err)
	}
}
