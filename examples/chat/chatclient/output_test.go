package chatclient

import (
	"io"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	chatv1 "github.com/msgtrans/msgtrans-go/examples/chat/gen/chat/v1"
)

func TestFormat(t *testing.T) {
	at := time.Date(2026, 5, 4, 13, 14, 15, 0, time.Local)
	m := &chatv1.ChatMessage{Room: "lobby", Nick: "alice", Text: "hi there", Time: timestamppb.New(at), Seq: 7}
	tests := []struct{ got, want string }{
		{formatMessage(m), "[lobby] alice: hi there"},
		{formatHistory(m), "[lobby 13:14:15] alice: hi there"},
		{formatJoined("lobby", "bob"), "* bob joined lobby"},
		{formatLeft("lobby", "bob"), "* bob left lobby"},
		{formatNickChanged("bob", "robert"), "* bob is now known as robert"},
		{formatMembers("lobby", []string{"alice", "bob", "carol"}), "* members of lobby: alice, bob, carol"},
		{formatMembers("empty", nil), "* members of empty: "},
		// Whatever a server sends, an event stays on one line and cannot
		// drive the terminal.
		{formatMessage(&chatv1.ChatMessage{Room: "r", Nick: "x\ny", Text: "a\x1b[2Jb\r\n"}), "[r] x\uFFFDy: a\uFFFD[2Jb\uFFFD\uFFFD"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}

func TestPrinterHold(t *testing.T) {
	var out strings.Builder
	p := newPrinter(&out)
	p.event("lobby", "* x joined lobby", "x")
	p.hold("kitchen")
	p.event("lobby", "* me left lobby", "") // not the room being joined: printed now
	p.event("kitchen", "* me joined kitchen", "me")
	p.event("kitchen", "[kitchen] y: live", "")
	p.line("! a notice")
	p.release("me", []string{"[kitchen 10:00:00] y: old", "* members of kitchen: me, y"})
	p.event("kitchen", "[kitchen] y: later", "")
	want := strings.Join([]string{
		"* x joined lobby",
		"* me left lobby",
		"! a notice",
		"* me joined kitchen",
		"[kitchen 10:00:00] y: old",
		"* members of kitchen: me, y",
		"[kitchen] y: live",
		"[kitchen] y: later",
	}, "\n") + "\n"
	if out.String() != want {
		t.Errorf("printed\n%s\nwant\n%s", out.String(), want)
	}

	// Without our own arrival first (the join failed, or we were there),
	// the lines come first and then everything held.
	out.Reset()
	p.hold("kitchen")
	p.event("kitchen", "[kitchen] y: live", "")
	p.release("me", []string{"* members of kitchen: me, y"})
	if want := "* members of kitchen: me, y\n[kitchen] y: live\n"; out.String() != want {
		t.Errorf("printed %q, want %q", out.String(), want)
	}
}

// brokenPipe is an output that cannot be written.
type brokenPipe struct{}

func (brokenPipe) Write([]byte) (int, error) { return 0, io.ErrClosedPipe }

func TestPrinterWriteError(t *testing.T) {
	p := newPrinter(brokenPipe{})
	p.line("lost")
	select {
	case <-p.failed:
	default:
		t.Fatal("a failed write was not reported")
	}
	if p.Err() == nil {
		t.Error("Err = nil")
	}
	p.line("also lost") // no panic on a second failure
}
