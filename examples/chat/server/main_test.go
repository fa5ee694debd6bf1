package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestExitStatus(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing.pem")
	tests := []struct {
		name   string
		args   []string
		status int
		stderr string
	}{
		{"unknown flag", []string{"-bogus"}, 2, "flag provided but not defined: -bogus"},
		{"stray argument", []string{"now"}, 2, `unexpected argument "now"`},
		{"no address", []string{"-listen", " , "}, 2, "-listen names no address"},
		{"certificate without key", []string{"-tls-cert", "c.pem"}, 2, "-tls-cert and -tls-key go together"},
		{"bad log level", []string{"-log-level", "loud"}, 2, "-log-level"},
		{"negative history", []string{"-history", "-1"}, 2, "must not be negative"},
		{"help", []string{"-h"}, 0, "usage: server [flags]"},
		{"missing certificate", []string{"-tls-cert", missing, "-tls-key", missing}, 1, "loading the TLS certificate"},
		{"unknown scheme", []string{"-listen", "carrier-pigeon://127.0.0.1:0"}, 1, "unknown transport scheme"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr strings.Builder
			if got := run(context.Background(), tt.args, &stderr); got != tt.status {
				t.Errorf("status %d, want %d; stderr:\n%s", got, tt.status, stderr.String())
			}
			if !strings.Contains(stderr.String(), tt.stderr) {
				t.Errorf("stderr does not mention %q:\n%s", tt.stderr, stderr.String())
			}
		})
	}
}

// TestCancelled: with its context cancelled (Ctrl-C), the server shuts down
// and exits 0.
func TestCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var stderr strings.Builder
	if got := run(ctx, []string{"-dev-cert-dir", t.TempDir(), "-http", "127.0.0.1:0", "-listen", "tcp://127.0.0.1:0,ws://127.0.0.1:0/ws,quic://127.0.0.1:0"}, &stderr); got != 0 {
		t.Errorf("status %d, want 0; stderr:\n%s", got, stderr.String())
	}
	for _, want := range []string{"development certificate", "chat server ready", "chat server stopped"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr does not mention %q:\n%s", want, stderr.String())
		}
	}
}
