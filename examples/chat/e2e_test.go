// Package chat_test runs the chat example end to end: one server listening
// on TCP, WebSocket and QUIC, and three clients (one per protocol) driven
// through their standard input and output, as a user would drive them.
package chat_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/msgtrans/msgtrans-go/examples/chat/chatclient"
	"github.com/msgtrans/msgtrans-go/examples/chat/chatserver"
	"github.com/msgtrans/msgtrans-go/internal/testcert"
	"github.com/msgtrans/msgtrans-go/runtime"
	_ "github.com/msgtrans/msgtrans-go/transports/all"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// wait bounds every wait for a line; nothing here takes more than a
// fraction of it unless something is broken.
const wait = 10 * time.Second

// quietLogger keeps the test output readable; run with -v and change the
// level to see the server's logs.
func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func startServer(t *testing.T, certs testcert.Pair, listen []string) *chatserver.Server {
	t.Helper()
	srv, err := chatserver.New(chatserver.Config{
		Listen:       listen,
		TLS:          certs.Server,
		Logger:       quietLogger(),
		PingInterval: 50 * time.Millisecond, // clients answer pings all along
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	return srv
}

func shutdown(t *testing.T, srv *chatserver.Server) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}

// term is a client run by chatclient.Run, with a pipe for its standard
// input and its standard output read line by line.
type term struct {
	t     *testing.T
	nick  string
	in    *io.PipeWriter
	lines chan string
	done  chan error
	seen  []string // every line read, for failure messages
}

func startClient(t *testing.T, addr, nick, room string, certs testcert.Pair) *term {
	t.Helper()
	return startRun(t, nick, certs, chatclient.Config{Server: addr, Nick: nick, Room: room})
}

// startWatcher runs a client watching the room (-watch), which ends with
// the test.
func startWatcher(t *testing.T, addr, room string, certs testcert.Pair) *term {
	t.Helper()
	return startRun(t, "watcher on "+addr, certs, chatclient.Config{Server: addr, Watch: room})
}

func startRun(t *testing.T, name string, certs testcert.Pair, cfg chatclient.Config) *term {
	t.Helper()
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	tm := &term{t: t, nick: name, in: inW, lines: make(chan string, 4096), done: make(chan error, 1)}
	cfg.TLS, cfg.Logger = certs.Client, quietLogger()
	cfg.Reconnect = runtime.Backoff{Base: 20 * time.Millisecond, MaxDelay: 200 * time.Millisecond}
	// Ended by its input (a chatting client) or by the test's end (both).
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		err := chatclient.Run(ctx, cfg, inR, outW)
		// Writes to a client that has stopped fail instead of blocking.
		_ = inR.CloseWithError(io.ErrClosedPipe)
		_ = outW.Close()
		tm.done <- err
	}()
	go func() {
		sc := bufio.NewScanner(outR)
		for sc.Scan() {
			tm.lines <- sc.Text()
		}
		close(tm.lines)
	}()
	t.Cleanup(func() {
		_ = inW.Close()
		if cfg.Watch != "" {
			cancel()
		}
		select {
		case <-tm.done:
		case <-time.After(wait):
			t.Errorf("%s: client did not stop", name)
		}
		cancel()
		for range tm.lines { // let the reader finish
		}
	})
	return tm
}

// send writes a line to the client's input.
func (tm *term) send(line string) {
	tm.t.Helper()
	errc := make(chan error, 1)
	go func() {
		_, err := io.WriteString(tm.in, line+"\n")
		errc <- err
	}()
	select {
	case err := <-errc:
		if err != nil {
			tm.t.Fatalf("%s: writing %q: %v", tm.nick, line, err)
		}
	case <-time.After(wait):
		tm.t.Fatalf("%s: client does not read its input", tm.nick)
	}
}

// next returns the next line of output.
func (tm *term) next() string {
	tm.t.Helper()
	select {
	case l, ok := <-tm.lines:
		if !ok {
			tm.t.Fatalf("%s: output ended; it was:\n%s", tm.nick, strings.Join(tm.seen, "\n"))
		}
		tm.seen = append(tm.seen, l)
		return l
	case <-time.After(wait):
		tm.t.Fatalf("%s: no output within %v; it was:\n%s", tm.nick, wait, strings.Join(tm.seen, "\n"))
		return ""
	}
}

// expect checks that the next line is want.
func (tm *term) expect(want string) {
	tm.t.Helper()
	if got := tm.next(); got != want {
		tm.t.Fatalf("%s: got line %q, want %q; output so far:\n%s", tm.nick, got, want, strings.Join(tm.seen, "\n"))
	}
}

// skipTo reads lines up to and including want, and returns those before it.
func (tm *term) skipTo(want string) []string {
	tm.t.Helper()
	var skipped []string
	for {
		l := tm.next()
		if l == want {
			return skipped
		}
		skipped = append(skipped, l)
	}
}

// exited waits for Run to return and checks that it returned nil.
func (tm *term) exited() {
	tm.t.Helper()
	select {
	case err := <-tm.done:
		if err != nil {
			tm.t.Fatalf("%s: Run = %v, want nil", tm.nick, err)
		}
		tm.done <- nil // for the cleanup
	case <-time.After(wait):
		tm.t.Fatalf("%s: Run did not return", tm.nick)
	}
}

var messageLine = regexp.MustCompile(`^\[lobby\] (\w+): (.*)$`)

func TestChat(t *testing.T) {
	certs := testcert.New()
	srv := startServer(t, certs, []string{"tcp://127.0.0.1:0", "ws://127.0.0.1:0/ws", "quic://127.0.0.1:0"})
	addrs := srv.Addrs() // with the ports the system chose, kept for the restart
	restarted := false
	defer func() {
		if !restarted {
			shutdown(t, srv)
		}
	}()

	// Joins are announced to everyone in the room, the joiner included.
	alice := startClient(t, addrs[0], "alice", "lobby", certs)
	alice.expect("* alice joined lobby")
	alice.expect("* members of lobby: alice")

	bob := startClient(t, addrs[1], "bob", "lobby", certs)
	bob.expect("* bob joined lobby")
	bob.expect("* members of lobby: alice, bob")
	alice.expect("* bob joined lobby")

	carol := startClient(t, addrs[2], "carol", "lobby", certs)
	carol.expect("* carol joined lobby")
	carol.expect("* members of lobby: alice, bob, carol")
	alice.expect("* carol joined lobby")
	bob.expect("* carol joined lobby")
	terms := []*term{alice, bob, carol}

	// Watchers, one per transport, see what the members see, as nobody.
	var watchers []*term
	for _, addr := range addrs {
		w := startWatcher(t, addr, "lobby", certs)
		w.expect("! watching lobby (read-only; Ctrl-C ends)")
		w.expect("* members of lobby: alice, bob, carol")
		watchers = append(watchers, w)
	}

	t.Run("every message reaches every member and watcher once, in order", func(t *testing.T) {
		const perSender = 20
		for i := range perSender {
			for _, tm := range terms {
				tm.send(fmt.Sprintf("message %d from %s", i, tm.nick))
			}
		}
		var first []string
		for _, tm := range append(slices.Clone(terms), watchers...) {
			got := make([]string, 0, 3*perSender)
			next := map[string]int{} // the number of the next message expected from each sender
			for len(got) < 3*perSender {
				l := tm.next()
				m := messageLine.FindStringSubmatch(l)
				if m == nil {
					t.Fatalf("%s: unexpected line %q", tm.nick, l)
				}
				sender, text := m[1], m[2]
				if want := fmt.Sprintf("message %d from %s", next[sender], sender); text != want {
					t.Fatalf("%s: got %q from %s, want %q (lost, duplicated or reordered)", tm.nick, text, sender, want)
				}
				next[sender]++
				got = append(got, l)
			}
			// The server orders a room: everyone sees the same sequence.
			if first == nil {
				first = got
			} else if !slices.Equal(got, first) {
				t.Errorf("%s saw the room in another order than %s", tm.nick, terms[0].nick)
			}
		}
		// /who is answered after every message queued before it, so it
		// must come next: no message arrives twice.
		for _, tm := range terms {
			tm.send("/who")
			tm.expect("* members of lobby: alice, bob, carol")
		}
	})

	t.Run("leaving and coming back", func(t *testing.T) {
		carol.send("/join kitchen")
		carol.expect("* carol left lobby")
		carol.expect("* carol joined kitchen")
		carol.expect("* members of kitchen: carol")
		alice.expect("* carol left lobby")
		bob.expect("* carol left lobby")
		alice.send("/who")
		alice.expect("* members of lobby: alice, bob")

		// Back in the lobby, carol gets its history: the last 50 messages.
		carol.send("/join lobby")
		carol.expect("* carol left kitchen")
		carol.expect("* carol joined lobby")
		for range chatserver.DefaultHistorySize {
			if l := carol.next(); !regexp.MustCompile(`^\[lobby \d\d:\d\d:\d\d\] \w+: message \d+ from \w+$`).MatchString(l) {
				t.Fatalf("carol: got %q, want a history line", l)
			}
		}
		carol.expect("* members of lobby: alice, bob, carol")
		alice.expect("* carol joined lobby")
		bob.expect("* carol joined lobby")
	})

	t.Run("clients reconnect after a server restart", func(t *testing.T) {
		shutdown(t, srv)
		restarted = true
		srv2 := startServer(t, certs, addrs) // the same addresses and ports
		defer shutdown(t, srv2)

		// Each client rejoins by itself; the others' rejoins come in any
		// order, before or after.
		for _, tm := range terms {
			tm.skipTo(fmt.Sprintf("* %s joined lobby", tm.nick))
		}
		// Every client has rejoined: each sees the three messages.
		for _, tm := range terms {
			tm.send("back from " + tm.nick)
		}
		for _, tm := range terms {
			want := []string{"[lobby] alice: back from alice", "[lobby] bob: back from bob", "[lobby] carol: back from carol"}
			var got []string
			for len(got) < len(want) {
				if l := tm.next(); strings.HasPrefix(l, "[") {
					got = append(got, l)
				} else if !strings.HasPrefix(l, "* ") || !strings.Contains(l, " joined lobby") && !strings.HasPrefix(l, "* members of lobby:") {
					t.Fatalf("%s: unexpected line %q", tm.nick, l)
				}
			}
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Errorf("%s: got %q, want %q", tm.nick, got, want)
			}
			tm.send("/who")
			tm.expect("* members of lobby: alice, bob, carol")
		}

		// Leaving is announced: /quit,
		carol.send("/quit")
		carol.exited()
		alice.expect("* carol left lobby")
		bob.expect("* carol left lobby")
		// and the end of the input, after what was said before it.
		alice.send("last words")
		_ = alice.in.Close()
		alice.exited()
		bob.expect("[lobby] alice: last words")
		bob.expect("* alice left lobby")
		_ = bob.in.Close()
		bob.exited()
	})
}
