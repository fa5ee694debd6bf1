package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/msgtrans/msgtrans-go/examples/chat/chatserver"
	"github.com/msgtrans/msgtrans-go/internal/testcert"
	"github.com/msgtrans/msgtrans-go/transports/ws"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestExitStatus(t *testing.T) {
	// An address nothing listens on.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := "tcp://" + l.Addr().String()
	_ = l.Close()

	tests := []struct {
		name   string
		args   []string
		status int
		stderr string
	}{
		{"unknown flag", []string{"-bogus"}, 2, "flag provided but not defined: -bogus"},
		{"stray argument", []string{"hello"}, 2, `unexpected argument "hello"`},
		{"empty nick", []string{"-nick", ""}, 2, "-nick is empty"},
		{"insecure and ca", []string{"-insecure", "-ca", "ca.pem"}, 2, "-insecure and -ca exclude each other"},
		{"help", []string{"-help"}, 0, "usage: client [flags]"},
		{"missing CA file", []string{"-ca", "/nonexistent/ca.pem"}, 1, "CA file"},
		{"server down", []string{"-server", down, "-nick", "x"}, 1, "connect to " + down},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr strings.Builder
			if got := run(context.Background(), tt.args, strings.NewReader(""), &stdout, &stderr); got != tt.status {
				t.Errorf("status %d, want %d; stderr:\n%s", got, tt.status, stderr.String())
			}
			if !strings.Contains(stderr.String(), tt.stderr) {
				t.Errorf("stderr does not mention %q:\n%s", tt.stderr, stderr.String())
			}
		})
	}
}

// TestConnectHints runs the client against a chat server on every
// transport and checks the advice added to connection errors a user can
// fix: a missing scheme, a wrong WebSocket path, an unverified certificate.
func TestConnectHints(t *testing.T) {
	certs := testcert.New()
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, certs.CAPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	srv, err := chatserver.New(chatserver.Config{
		Listen: []string{"tcp://127.0.0.1:0", "ws://127.0.0.1:0/ws", "quic://127.0.0.1:0",
			"tls://127.0.0.1:0", "wss://127.0.0.1:0/ws"},
		TLS:          certs.Server,
		Logger:       slog.New(slog.DiscardHandler),
		PingInterval: -1,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Error(err)
		}
	})
	addr := make(map[string]string) // scheme -> URL
	for _, a := range srv.Addrs() {
		scheme, _, _ := strings.Cut(a, "://")
		addr[scheme] = a
	}
	hostPort := strings.TrimPrefix(addr["tcp"], "tcp://")
	wsRoot := strings.TrimSuffix(addr["ws"], "/ws")

	const caHint = "; pass -ca FILE or -insecure"
	tests := []struct {
		name   string
		args   []string
		status int
		want   string // in stderr; "" for an empty stderr
	}{
		{"no scheme", []string{"-server", hostPort}, 1,
			fmt.Sprintf(`address %q has no scheme: write tcp://%s (schemes: `, hostPort, hostPort)},
		{"ws without path", []string{"-server", wsRoot}, 1,
			`no WebSocket endpoint at path "/"; is the path right?); the chat server's WebSocket path is /ws`},
		{"ws wrong path", []string{"-server", wsRoot + "/chat"}, 1,
			`no WebSocket endpoint at path "/chat"; is the path right?); the chat server's WebSocket path is /ws`},
		{"quic unverified", []string{"-server", addr["quic"]}, 1, "x509: certificate signed by unknown authority" + caHint},
		{"tls unverified", []string{"-server", addr["tls"]}, 1, "x509: certificate signed by unknown authority" + caHint},
		{"wss unverified", []string{"-server", addr["wss"]}, 1, "x509: certificate signed by unknown authority" + caHint},
		{"ws", []string{"-server", addr["ws"]}, 0, ""},
		{"quic with -ca", []string{"-server", addr["quic"], "-ca", caFile}, 0, ""},
		{"wss with -insecure", []string{"-server", addr["wss"], "-insecure"}, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr strings.Builder
			args := append([]string{"-nick", "hinted", "-room", ""}, tt.args...)
			if got := run(context.Background(), args, strings.NewReader(""), &stdout, &stderr); got != tt.status {
				t.Errorf("status: got %d, want %d; stderr:\n%s", got, tt.status, stderr.String())
			}
			switch got := stderr.String(); {
			case tt.want == "" && got != "":
				t.Errorf("stderr: got %q, want nothing", got)
			case !strings.Contains(got, tt.want):
				t.Errorf("stderr: got %q, want it to contain %q", got, tt.want)
			case strings.Count(got, "\n") > 1:
				t.Errorf("stderr: got %q, want one line", got)
			}
		})
	}
}

// TestHint checks the advice for errors the transports wrap in various
// ways, the x509 ones included.
func TestHint(t *testing.T) {
	hostname := x509.HostnameError{Certificate: &x509.Certificate{}, Host: "chat.example.com"}
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"none", errors.New("msgtrans: dial tcp://127.0.0.1:1: connection refused"), ""},
		{"ws 404", fmt.Errorf("chatclient: connect: %w", &ws.StatusError{StatusCode: 404, Status: "404 Not Found", Path: "/"}),
			"the chat server's WebSocket path is /ws"},
		{"ws 403", fmt.Errorf("chatclient: connect: %w", &ws.StatusError{StatusCode: 403, Status: "403 Forbidden", Path: "/ws"}), ""},
		{"verification", fmt.Errorf("chatclient: connect: %w", &tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}),
			"pass -ca FILE or -insecure"},
		{"unknown authority", fmt.Errorf("chatclient: connect: %w", x509.UnknownAuthorityError{}), "pass -ca FILE or -insecure"},
		{"hostname", fmt.Errorf("chatclient: connect: %w", fmt.Errorf("handshake: %w", hostname)), "pass -ca FILE or -insecure"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := hint(tt.err); got != tt.want {
				t.Errorf("hint(%v): got %q, want %q", tt.err, got, tt.want)
			}
		})
	}
}

// TestLoggerLevel checks that the runtime's warnings, which differ from
// one transport to another, reach stderr only with -v, and errors always.
func TestLoggerLevel(t *testing.T) {
	tests := []struct {
		verbose bool
		level   slog.Level
		shown   bool
	}{
		{false, slog.LevelDebug, false},
		{false, slog.LevelInfo, false},
		{false, slog.LevelWarn, false},
		{false, slog.LevelError, true},
		{true, slog.LevelDebug, true},
		{true, slog.LevelWarn, true},
		{true, slog.LevelError, true},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("v=%v/%v", tt.verbose, tt.level), func(t *testing.T) {
			var stderr strings.Builder
			newLogger(&stderr, tt.verbose).Log(context.Background(), tt.level, "msgtrans: closing connection")
			if got := stderr.Len() > 0; got != tt.shown {
				t.Errorf("shown: got %v, want %v (stderr %q)", got, tt.shown, stderr.String())
			}
		})
	}
}
