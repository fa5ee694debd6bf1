package chatserver_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/msgtrans/msgtrans-go/examples/chat/chatserver"
)

// TestPrometheusScrapes runs a real Prometheus server (Debian's package
// prometheus, which .ci/run installs) on loopback, scraping a chat
// server's /metrics every second, and queries its HTTP API until the
// msgtrans series show the traffic the test made: three members joined a
// room and said five things each.
func TestPrometheusScrapes(t *testing.T) {
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Skip("no prometheus binary on PATH (Debian: apt-get install prometheus; .ci/run installs it)")
	}
	srv := start(t, chatserver.Config{MetricsAddr: "127.0.0.1:0"})
	members := make([]*member, 3)
	for i := range members {
		members[i] = newMember(t, srv)
		members[i].join(t, "ops", fmt.Sprintf("m%d", i))
	}
	for i := range 5 {
		for _, m := range members {
			m.say(t, "ops", fmt.Sprintf("hello %d", i))
		}
	}

	dir := t.TempDir()
	port := freePort(t)
	config := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: chat
    static_configs:
      - targets: [%q]
`, srv.MetricsAddr())
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin,
		"--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address=127.0.0.1:"+strconv.Itoa(port),
		"--log.level=warn")
	logFile, err := os.Create(filepath.Join(dir, "prometheus.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
		_ = logFile.Close()
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "prometheus.log"))
			t.Logf("prometheus log:\n%s", b)
		}
	})

	api := "http://127.0.0.1:" + strconv.Itoa(port) + "/api/v1/query?query="
	for _, q := range []struct {
		query string
		want  float64
	}{
		// Three sessions open, three opened, none refused.
		{`sum(msgtrans_sessions{job="chat",side="server"})`, 3},
		{`sum(msgtrans_connections_opened_total{job="chat",transport="tcp"})`, 3},
		// Three Joins served (requests), fifteen Says taken (one-way
		// messages), all OK.
		{`sum(rpc_server_call_duration_seconds_count{rpc_system_name="msgtrans",rpc_method="chat.v1.ChatService/Join",rpc_status_code="OK"})`, 3},
		{`sum(messaging_client_consumed_messages_total{messaging_system="msgtrans",messaging_destination_name="chat.v1.ChatService/Say",rpc_status_code="OK"})`, 15},
		// Each Say is pushed to the room's three members at once.
		{`sum(msgtrans_broadcast_recipients_count{target="group"}) >= bool 15`, 1},
	} {
		waitQuery(t, api+url.QueryEscape(q.query), q.query, q.want)
	}
}

// waitQuery queries Prometheus until the query's single result is want.
func waitQuery(t *testing.T, u, query string, want float64) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	last := "no answer"
	for time.Now().Before(deadline) {
		got, err := instantValue(u)
		if err == nil && got == want {
			return
		}
		if err != nil {
			last = err.Error()
		} else {
			last = strconv.FormatFloat(got, 'g', -1, 64)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("%s = %s, want %v", query, last, want)
}

// instantValue returns the value of an instant query with one result.
func instantValue(u string) (float64, error) {
	resp, err := http.Get(u)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var r struct {
		Status string `json:"status"`
		Data   struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
		Error string `json:"error"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return 0, err
	}
	if r.Status != "success" {
		return 0, fmt.Errorf("query failed: %s", r.Error)
	}
	if len(r.Data.Result) != 1 {
		return 0, fmt.Errorf("%d results", len(r.Data.Result))
	}
	s, _ := r.Data.Result[0].Value[1].(string)
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, err
	}
	return v, nil
}

// freePort returns a loopback TCP port free a moment ago: Prometheus's
// --web.listen-address takes no port 0.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
