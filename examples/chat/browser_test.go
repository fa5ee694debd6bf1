package chat_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/msgtrans/msgtrans-go/examples/chat/web"
	"github.com/msgtrans/msgtrans-go/internal/testcert"
)

// TestChatInBrowser runs the chat's web page in headless Chromium (Debian's
// chromium, driven by playwright-core from clients/ts through
// clients/ts/e2e/driver.mjs): two pages and one terminal client in one room
// exchange messages, each seen exactly once by everyone; /who lists all
// three; the server restarts, the pages show that they are reconnecting,
// come back by themselves, and chat again. A screenshot of a page, at a
// phone's width, is saved under $E2E_ARTIFACTS (default: the system's
// temporary directory) and must not be empty.
//
// It is skipped, saying what is missing, without chromium or without
// clients/ts/node_modules; with E2E_REQUIRED set (as .ci/run does, having
// installed both) it fails instead.
// e2eSkip returns how a test that needs tools this machine may lack says
// one is missing: a skip, or a failure when E2E_REQUIRED is set (as in
// .ci/run, which installs them).
func e2eSkip(t *testing.T) func(format string, args ...any) {
	if os.Getenv("E2E_REQUIRED") != "" {
		return t.Fatalf
	}
	return t.Skipf
}

func TestChatInBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a browser")
	}
	skip := e2eSkip(t)
	chromium := os.Getenv("CHROMIUM")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	ts, _ := filepath.Abs(filepath.Join("..", "..", "clients", "ts"))
	for what, path := range map[string]string{
		"chromium (apt-get install chromium)":    chromium,
		"playwright-core (npm ci in clients/ts)": filepath.Join(ts, "node_modules", "playwright-core"),
	} {
		if _, err := os.Stat(path); err != nil {
			skip("no %s at %s", what, path)
		}
	}
	node, err := exec.LookPath("node")
	if err != nil {
		skip("no node on the PATH")
	}

	certs := testcert.New()
	srv := startServer(t, certs, []string{"tcp://127.0.0.1:0", "ws://127.0.0.1:0/ws"})
	addrs := srv.Addrs()
	var tcpAddr, wsAddr string
	for _, a := range addrs {
		switch {
		case strings.HasPrefix(a, "tcp://"):
			tcpAddr = a
		case strings.HasPrefix(a, "ws://"):
			wsAddr = a
		}
	}
	restarted := false
	t.Cleanup(func() {
		if !restarted {
			shutdown(t, srv)
		}
	})
	// The page as the chat server serves it, from a server of its own that
	// outlives the chat server's restart.
	page := httptest.NewServer(web.Handler(func(*http.Request) web.Config { return web.Config{Servers: []string{wsAddr}} }))
	t.Cleanup(page.Close)

	b := startBrowser(t, node, filepath.Join(ts, "e2e", "driver.mjs"), chromium)
	const room = "e2e"
	tom := startClient(t, tcpAddr, "tom", room, certs)
	tom.skipTo("* members of e2e: tom")
	for _, p := range []struct{ id, nick string }{{"a", "ann"}, {"b", "bob"}} {
		b.do(map[string]any{"op": "open", "page": p.id, "url": page.URL + "/#" + room, "nick": p.nick})
		b.do(map[string]any{"op": "waitState", "page": p.id, "state": "open"})
		tom.skipTo("* " + p.nick + " joined e2e")
	}
	b.waitCount("a", `#log li.event[data-event="joined"][data-nick="bob"]`, 1)

	// chat sends one message from each of the three, then a marker from
	// tom: once the marker is in, everything before it is (one order for
	// the whole room), and each message must be there exactly once.
	chat := func(round string) {
		t.Helper()
		msgs := map[string]string{"ann": "hello from ann " + round, "bob": "hello from bob " + round, "tom": "hello from tom " + round}
		b.do(map[string]any{"op": "type", "page": "a", "text": msgs["ann"]})
		b.do(map[string]any{"op": "type", "page": "b", "text": msgs["bob"]})
		tom.send(msgs["tom"])
		marker := "marker " + round
		got := map[string]int{}
		for {
			l := tom.next()
			if l == "[e2e] tom: "+marker {
				break
			}
			for nick, text := range msgs {
				if l == "[e2e] "+nick+": "+text {
					got[nick]++
				}
			}
			if len(got) == 3 {
				tom.send(marker)
			}
		}
		for nick := range msgs {
			if got[nick] != 1 {
				t.Errorf("round %s: tom saw %s's message %d times, want once", round, nick, got[nick])
			}
		}
		for _, id := range []string{"a", "b"} {
			b.waitCount(id, fmt.Sprintf(`#log li.msg[data-text=%q]`, marker), 1)
			for nick, text := range msgs {
				if n := b.count(id, fmt.Sprintf(`#log li.msg[data-nick=%q][data-text=%q]`, nick, text)); n != 1 {
					t.Errorf("round %s: page %s shows %s's message %d times, want once; its log:\n%s", round, id, nick, n, b.log(id))
				}
			}
		}
	}
	chat("1")

	// /who from a page and from the terminal lists all three.
	b.do(map[string]any{"op": "type", "page": "a", "text": "/who"})
	b.waitCount("a", `#log li.event[data-event="members"]`, 2) // the join's, then /who's
	texts := b.texts("a", `#log li.event[data-event="members"]`)
	if last := texts[len(texts)-1]; last != "members of e2e: ann, bob, tom" {
		t.Errorf("/who on the page: %q", last)
	}
	tom.send("/who")
	tom.skipTo("* members of e2e: ann, bob, tom")

	// The server restarts on the same ports; the pages say they are
	// reconnecting, then rejoin by themselves.
	shutdown(t, srv)
	restarted = true
	for _, id := range []string{"a", "b"} {
		st := b.do(map[string]any{"op": "waitState", "page": id, "state": "reconnecting"})
		if st["status"] != "reconnecting…" {
			t.Errorf("page %s shows %q while the server is down", id, st["status"])
		}
	}
	srv2 := startServer(t, certs, addrs)
	t.Cleanup(func() { shutdown(t, srv2) })
	for _, id := range []string{"a", "b"} {
		b.do(map[string]any{"op": "waitState", "page": id, "state": "open"})
	}
	tom.skipTo("! reconnected to " + tcpAddr)
	// Everyone is back in the room once tom's /who lists all three; the
	// pages may rejoin before or after tom, so ask again after each arrival.
	for {
		tom.send("/who")
		l := tom.next()
		for !strings.HasPrefix(l, "* members of e2e:") {
			l = tom.next()
		}
		if l == "* members of e2e: ann, bob, tom" {
			break
		}
		for !strings.HasSuffix(l, " joined e2e") {
			l = tom.next()
		}
	}
	chat("2")

	dir := os.Getenv("E2E_ARTIFACTS")
	if dir == "" {
		dir = os.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	shot := filepath.Join(dir, "chat-page.png")
	_ = os.Remove(shot)
	b.do(map[string]any{"op": "screenshot", "page": "a", "path": shot, "width": 390, "height": 760})
	fi, err := os.Stat(shot)
	if err != nil || fi.Size() < 1000 {
		t.Fatalf("screenshot %s: %v, %d bytes", shot, err, sizeOf(fi))
	}
	t.Logf("screenshot of the page at a phone's width: %s (%d bytes)", shot, fi.Size())
}

func sizeOf(fi os.FileInfo) int64 {
	if fi == nil {
		return 0
	}
	return fi.Size()
}

// browser is clients/ts/e2e/driver.mjs: one JSON command a line in, one
// JSON answer a line out.
type browser struct {
	t    *testing.T
	in   io.WriteCloser
	out  *bufio.Scanner
	read chan map[string]any
}

func startBrowser(t *testing.T, node, driver, chromium string) *browser {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, node, driver)
	cmd.Env = append(os.Environ(), "CHROMIUM="+chromium)
	cmd.Stderr = &prefixWriter{t: t, prefix: "driver: "}
	in, err := cmd.StdinPipe()
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
	b := &browser{t: t, in: in, out: bufio.NewScanner(out), read: make(chan map[string]any)}
	b.out.Buffer(make([]byte, 0, 64<<10), 4<<20)
	go func() {
		defer close(b.read)
		for b.out.Scan() {
			var m map[string]any
			if err := json.Unmarshal(b.out.Bytes(), &m); err != nil {
				m = map[string]any{"ok": false, "error": "driver wrote " + b.out.Text()}
			}
			b.read <- m
		}
	}()
	t.Cleanup(func() {
		_, _ = io.WriteString(in, `{"op":"quit"}`+"\n")
		done := make(chan error, 1)
		go func() {
			for range b.read { // drain
			}
			done <- cmd.Wait()
		}()
		select {
		case <-done:
		case <-time.After(wait):
			t.Error("the browser driver did not quit")
		}
		cancel()
	})
	ready := b.reply("start")
	t.Logf("Chromium %v", ready["version"])
	return b
}

// reply waits for the driver's next answer.
func (b *browser) reply(what string) map[string]any {
	b.t.Helper()
	select {
	case m, ok := <-b.read:
		if !ok {
			b.t.Fatalf("%s: the browser driver exited", what)
		}
		if m["ok"] != true {
			b.t.Fatalf("%s: %v", what, m["error"])
		}
		return m
	case <-time.After(45 * time.Second):
		b.t.Fatalf("%s: no answer from the browser driver", what)
	}
	return nil
}

// do runs a command and returns its answer; a failed command fails the test,
// with the console of the pages.
func (b *browser) do(cmd map[string]any) map[string]any {
	b.t.Helper()
	line, _ := json.Marshal(cmd)
	if _, err := b.in.Write(append(line, '\n')); err != nil {
		b.t.Fatalf("%s: %v", line, err)
	}
	select {
	case m, ok := <-b.read:
		if !ok {
			b.t.Fatalf("%s: the browser driver exited", line)
		}
		if m["ok"] != true {
			b.t.Fatalf("%s: %v\npage a:\n%s\npage b:\n%s", line, m["error"], b.logIfOpen("a"), b.logIfOpen("b"))
		}
		return m
	case <-time.After(45 * time.Second):
		b.t.Fatalf("%s: no answer from the browser driver", line)
	}
	return nil
}

func (b *browser) count(page, css string) int {
	b.t.Helper()
	return int(b.do(map[string]any{"op": "count", "page": page, "css": css})["n"].(float64))
}

func (b *browser) waitCount(page, css string, n int) {
	b.t.Helper()
	b.do(map[string]any{"op": "waitCount", "page": page, "css": css, "n": n})
}

func (b *browser) texts(page, css string) []string {
	b.t.Helper()
	var out []string
	for _, s := range b.do(map[string]any{"op": "texts", "page": page, "css": css})["texts"].([]any) {
		out = append(out, s.(string))
	}
	return out
}

// log returns a page's chat log, one line per entry.
func (b *browser) log(page string) string { return strings.Join(b.texts(page, "#log li"), "\n") }

// logIfOpen is log for failure messages: it asks without failing.
func (b *browser) logIfOpen(page string) string {
	line, _ := json.Marshal(map[string]any{"op": "texts", "page": page, "css": "#log li"})
	if _, err := b.in.Write(append(line, '\n')); err != nil {
		return ""
	}
	select {
	case m := <-b.read:
		if texts, ok := m["texts"].([]any); ok {
			var s []string
			for _, x := range texts {
				s = append(s, fmt.Sprint(x))
			}
			return strings.Join(s, "\n")
		}
		return fmt.Sprint(m["error"])
	case <-time.After(10 * time.Second):
		return "(no answer)"
	}
}

// prefixWriter logs what the driver writes to its standard error.
type prefixWriter struct {
	t      *testing.T
	prefix string
}

func (w *prefixWriter) Write(p []byte) (int, error) {
	for l := range strings.SplitSeq(strings.TrimRight(string(p), "\n"), "\n") {
		w.t.Log(w.prefix + l)
	}
	return len(p), nil
}
