package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/msgtrans/msgtrans-go/examples/chat/chatserver"
	"github.com/msgtrans/msgtrans-go/internal/testcert"
)

// TestPage: the page, its script and its configuration are served over
// HTTP and HTTPS, and config.json names the running server's WebSocket
// listeners with their real ports.
func TestPage(t *testing.T) {
	certs := testcert.New()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	s, err := chatserver.New(chatserver.Config{
		Listen: []string{"tcp://127.0.0.1:0", "ws://127.0.0.1:0/ws", "wss://127.0.0.1:0/ws"},
		TLS:    certs.Server,
		Logger: logger,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	var ws, wss string
	for _, a := range s.Addrs() {
		switch {
		case strings.HasPrefix(a, "ws://"):
			ws = a
		case strings.HasPrefix(a, "wss://"):
			wss = a
		}
	}
	for _, tt := range []struct {
		name    string
		tls     *tls.Config
		servers []string
	}{
		{"http", nil, []string{ws, wss}},
		{"https", certs.Server, []string{wss}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p, err := startPage("127.0.0.1:0", tt.tls, s.Addrs(), logger)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(p.stop)
			client := &http.Client{Transport: &http.Transport{TLSClientConfig: certs.Client}}
			t.Cleanup(client.CloseIdleConnections)
			get := func(path string) (string, http.Header) {
				t.Helper()
				resp, err := client.Get(p.url + path)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				b, err := io.ReadAll(resp.Body)
				if err != nil || resp.StatusCode != http.StatusOK {
					t.Fatalf("GET %s: %d %v", path, resp.StatusCode, err)
				}
				return string(b), resp.Header
			}
			index, h := get("")
			if !strings.Contains(index, `<script type="module" src="app.js">`) || !strings.Contains(h.Get("Content-Security-Policy"), "connect-src 'self' ws: wss:") {
				t.Errorf("index.html or its headers are wrong: %v\n%s", h, index)
			}
			if js, h := get("app.js"); len(js) < 10_000 || !strings.Contains(h.Get("Content-Type"), "javascript") {
				t.Errorf("app.js: %d bytes, %s", len(js), h.Get("Content-Type"))
			}
			get("style.css")
			body, _ := get("config.json")
			var cfg struct{ Servers []string }
			if err := json.Unmarshal([]byte(body), &cfg); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(cfg.Servers, tt.servers) {
				t.Errorf("config.json lists %v, want %v", cfg.Servers, tt.servers)
			}
		})
	}
}

func TestPageConfig(t *testing.T) {
	addrs := []string{"tcp://0.0.0.0:7001", "ws://0.0.0.0:7002/ws", "wss://[::]:7443/ws", "ws://10.1.2.3:7004/chat", "quic://0.0.0.0:7003"}
	for _, tt := range []struct {
		host  string
		https bool
		want  []string
	}{
		{"chat.example.com:7080", false, []string{"ws://chat.example.com:7002/ws", "ws://10.1.2.3:7004/chat", "wss://chat.example.com:7443/ws"}},
		{"chat.example.com", true, []string{"wss://chat.example.com:7443/ws"}},
		{"[::1]:7080", false, []string{"ws://[::1]:7002/ws", "ws://10.1.2.3:7004/chat", "wss://[::1]:7443/ws"}},
	} {
		r := &http.Request{Host: tt.host}
		if tt.https {
			r.TLS = &tls.ConnectionState{}
		}
		if got := pageConfig(r, addrs).Servers; !slices.Equal(got, tt.want) {
			t.Errorf("%s (https %v): %v, want %v", tt.host, tt.https, got, tt.want)
		}
	}
}

func TestPageOrigins(t *testing.T) {
	for _, tt := range []struct {
		addr string
		tls  bool
		want []string
	}{
		{"127.0.0.1:7080", false, []string{"http://127.0.0.1:7080", "http://localhost:7080"}},
		{"[::1]:7080", true, []string{"https://[::1]:7080", "https://localhost:7080"}},
		{"chat.example.com:443", true, []string{"https://chat.example.com:443"}},
		{"no port", false, nil},
	} {
		if got := pageOrigins(tt.addr, tt.tls); !slices.Equal(got, tt.want) {
			t.Errorf("%s: %v, want %v", tt.addr, got, tt.want)
		}
	}
}

// TestPageAddressTaken: a page address in use fails the command with the
// reason, after the chat server has stopped.
func TestPageAddressTaken(t *testing.T) {
	p, err := startPage("127.0.0.1:0", nil, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer p.stop()
	addr := strings.TrimSuffix(strings.TrimPrefix(p.url, "http://"), "/")
	var stderr strings.Builder
	if got := run(context.Background(), []string{"-http", addr, "-listen", "tcp://127.0.0.1:0"}, &stderr); got != 1 {
		t.Errorf("status %d, want 1; stderr:\n%s", got, stderr.String())
	}
	if !strings.Contains(stderr.String(), "web page") || !strings.Contains(stderr.String(), "address already in use") {
		t.Errorf("stderr does not say why:\n%s", stderr.String())
	}
}
