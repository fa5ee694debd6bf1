package chatclient

import (
	"context"
	"regexp"
	"testing"
	"time"

	"github.com/msgtrans/msgtrans-go/runtime"
)

// TestWatchMode: a watching client prints the room's members and history,
// then its events, joining nothing; after the server restarts it watches
// again by itself.
func TestWatchMode(t *testing.T) {
	srv := startServer(t, "tcp://127.0.0.1:0")
	addr := srv.Addrs()[0]
	backoff := runtime.Backoff{Base: 10 * time.Millisecond, MaxDelay: 100 * time.Millisecond}
	x := run(t, context.Background(), Config{Server: addr, Nick: "x", Room: "lobby", Reconnect: backoff})
	x.expect("* x joined lobby", "* members of lobby: x")
	x.send("one")
	x.expect("[lobby] x: one")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := run(t, ctx, Config{Server: addr, Watch: "lobby", Reconnect: backoff})
	w.expect("! watching lobby (read-only; Ctrl-C ends)", "* members of lobby: x")
	if l := w.next(); !regexp.MustCompile(`^\[lobby \d\d:\d\d:\d\d\] x: one$`).MatchString(l) {
		t.Fatalf("the watcher printed %q, want the history", l)
	}
	x.send("two")
	x.expect("[lobby] x: two")
	w.expect("[lobby] x: two")
	x.send("/nick xx")
	x.expect("* x is now known as xx")
	w.expect("* x is now known as xx")
	x.send("/quit")
	if err := x.result(); err != nil {
		t.Fatalf("x: Run = %v", err)
	}
	w.expect("* xx left lobby")

	stopServer(t, srv)
	w.expect("! connection lost…")
	srv = startServer(t, addr)
	defer stopServer(t, srv)
	w.expect("! reconnected to "+addr, "* members of lobby: ")
	y := run(t, context.Background(), Config{Server: addr, Nick: "y", Room: "lobby", Reconnect: backoff})
	y.expect("* y joined lobby", "* members of lobby: y")
	y.send("after the restart")
	y.expect("[lobby] y: after the restart")
	w.expect("* y joined lobby", "[lobby] y: after the restart")
	_ = y.in.Close()
	if err := y.result(); err != nil {
		t.Errorf("y: Run = %v", err)
	}
	cancel()
	if err := w.result(); err != nil {
		t.Errorf("the watcher's Run = %v, want nil after its context ended", err)
	}
	_ = w.in.Close()
	_ = x.in.Close()
}
