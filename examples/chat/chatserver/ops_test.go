package chatserver_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/msgtrans/msgtrans-go/examples/chat/chatserver"
	"github.com/msgtrans/msgtrans-go/runtime"
)

// get fetches url and returns the status and body.
func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// TestOpsEndpoint: with MetricsAddr the server serves /healthz, /readyz
// and /metrics, the last with the runtime's series for a connected client.
func TestOpsEndpoint(t *testing.T) {
	srv := start(t, chatserver.Config{MetricsAddr: "127.0.0.1:0"})
	base := "http://" + srv.MetricsAddr()
	if code, _ := get(t, base+"/healthz"); code != http.StatusOK {
		t.Errorf("/healthz: %d", code)
	}
	if code, _ := get(t, base+"/readyz"); code != http.StatusOK {
		t.Errorf("/readyz of a started server: %d", code)
	}
	c, err := runtime.Dial(context.Background(), srv.Addrs()[0])
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	want := []string{
		`msgtrans_connections_opened_total{side="server",transport="tcp"} 1`,
		`msgtrans_sessions{side="server",transport="tcp"} 1`,
		`msgtrans_packets_received_total{side="server",transport="tcp"}`,
		"go_goroutines",
		"process_open_fds",
	}
	deadline := time.Now().Add(wait)
	for {
		_, body := get(t, base+"/metrics")
		missing := ""
		for _, w := range want {
			if !strings.Contains(body, w) {
				missing = w
				break
			}
		}
		if missing == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/metrics lacks %s:\n%s", missing, body)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestReadiness: a server is ready once started and not while it shuts
// down or after; alive throughout.
func TestReadiness(t *testing.T) {
	srv, err := chatserver.New(chatserver.Config{Listen: []string{"tcp://127.0.0.1:0"}, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	h := httptest.NewServer(srv.OpsHandler(nil))
	defer h.Close()
	check := func(when string, want int) {
		t.Helper()
		if code, _ := get(t, h.URL+"/readyz"); code != want {
			t.Errorf("/readyz %s: %d, want %d", when, code, want)
		}
		if code, _ := get(t, h.URL+"/healthz"); code != http.StatusOK {
			t.Errorf("/healthz %s: %d", when, code)
		}
	}
	check("before Start", http.StatusServiceUnavailable)
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	check("once started", http.StatusOK)
	if code, _ := get(t, h.URL+"/metrics"); code != http.StatusNotFound && code != http.StatusMethodNotAllowed {
		t.Errorf("/metrics without a gatherer: %d", code)
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	check("after Shutdown", http.StatusServiceUnavailable)
}

// TestOpsAddressInUse: a metrics address that cannot be bound fails Start.
func TestOpsAddressInUse(t *testing.T) {
	first := start(t, chatserver.Config{MetricsAddr: "127.0.0.1:0"})
	srv, err := chatserver.New(chatserver.Config{Listen: []string{"tcp://127.0.0.1:0"}, Logger: quiet(), MetricsAddr: first.MetricsAddr()})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if err := srv.Start(context.Background()); err == nil || !strings.Contains(err.Error(), "metrics endpoint") {
		t.Errorf("Start on a taken metrics address: %v", err)
	}
}

// TestNotReadyWhileDraining: once Shutdown begins, /readyz answers 503
// while the sessions drain (spread over a lame-duck window here), and the
// endpoint stays up until the drain is over.
func TestNotReadyWhileDraining(t *testing.T) {
	srv, err := chatserver.New(chatserver.Config{Listen: []string{"tcp://127.0.0.1:0"}, Logger: quiet(), MetricsAddr: "127.0.0.1:0",
		Options: []runtime.ServerOption{runtime.WithLameDuck(2 * time.Second)}})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		c, err := runtime.Dial(context.Background(), srv.Addrs()[0])
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	base := "http://" + srv.MetricsAddr()
	if code, _ := get(t, base+"/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz before Shutdown: %d", code)
	}
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		done <- srv.Shutdown(ctx)
	}()
	// The second session's go-away waits a second into the window.
	deadline := time.Now().Add(wait)
	for !func() bool { code, _ := get(t, base+"/readyz"); return code == http.StatusServiceUnavailable }() {
		if time.Now().After(deadline) {
			t.Fatal("/readyz stayed 200 during Shutdown")
		}
		time.Sleep(5 * time.Millisecond)
	}
	select {
	case err := <-done:
		t.Fatalf("Shutdown returned (%v) before /readyz was seen 503 during the drain", err)
	default:
	}
	if code, _ := get(t, base+"/healthz"); code != http.StatusOK {
		t.Errorf("/healthz while draining: %d", code)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := http.Get(base + "/healthz"); err == nil {
		t.Error("the endpoint is still up after Shutdown")
	}
}
