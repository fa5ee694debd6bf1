package main

import (
	"context"
	"net"
	"strings"
	"testing"

	"go.uber.org/goleak"
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
