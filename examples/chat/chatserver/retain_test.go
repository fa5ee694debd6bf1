package chatserver

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"
	"unsafe"

	chatv1 "github.com/msgtrans/msgtrans-go/examples/chat/gen/chat/v1"
	"github.com/msgtrans/msgtrans-go/runtime"
	_ "github.com/msgtrans/msgtrans-go/transports/all"
)

// aliases reports whether s points into the memory of in.
func aliases(s, in string) bool {
	if len(s) == 0 || len(in) == 0 {
		return false
	}
	p := uintptr(unsafe.Pointer(unsafe.StringData(s)))
	lo := uintptr(unsafe.Pointer(unsafe.StringData(in)))
	return p >= lo && p < lo+uintptr(len(in))
}

// testServer runs a server on a TCP port of its own, with a connected
// client in each of the rooms (nick "ann"), and returns the server and the
// sessions of those clients, on which the tests call the handlers directly.
func testServer(t *testing.T, cfg Config, rooms ...string) (*Server, []*runtime.Session) {
	t.Helper()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg.Listen = []string{"tcp://127.0.0.1:0"}
	cfg.Logger = quiet
	cfg.PingInterval = -1
	srv, err := New(cfg)
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
			t.Errorf("Shutdown: %v", err)
		}
	})
	var sessions []*runtime.Session
	for _, room := range rooms {
		c, err := runtime.Dial(context.Background(), srv.Addrs()[0], runtime.WithLogger(quiet), runtime.WithoutReconnect())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		if _, err := chatv1.NewChatServiceClient(c).Join(context.Background(), &chatv1.JoinRequest{Room: room, Nick: "ann"}); err != nil {
			t.Fatal(err)
		}
		members := srv.rt.Members(room)
		if len(members) != 1 {
			t.Fatalf("room %s has %d members, want 1", room, len(members))
		}
		sessions = append(sessions, members[0])
	}
	return srv, sessions
}

// kept returns what the room with the name keeps in its history.
func kept(s *Server, name string) []*chatv1.ChatMessage {
	s.mu.Lock()
	r := s.rooms[name]
	s.mu.Unlock()
	if r == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.history.messages()
}

// TestHistoryDoesNotPinRequests: the strings a room keeps (in its history,
// its name and its members' nicks) are copies, never parts of the decoded
// request, which may be far bigger than what is kept.
func TestHistoryDoesNotPinRequests(t *testing.T) {
	srv, sessions := testServer(t, Config{}, "lobby")
	sess, ctx := sessions[0], context.Background()

	// A request whose strings are slices of one big buffer, as the strings
	// of a decoder that aliases its input would be.
	big := "kitchen" + "bob" + strings.Repeat(" ", 3000)
	room, nick := big[:7], big[7:10]
	if _, err := srv.Join(ctx, sess, &chatv1.JoinRequest{Room: room, Nick: nick}); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Nick(ctx, sess, &chatv1.NickRequest{Nick: nick}); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name, text, want string
	}{
		{"trailing spaces", "x" + strings.Repeat(" ", 3000), "x"},
		{"leading spaces", strings.Repeat(" ", 3000) + "y", "y"},
		{"nothing to clean", "hello", "hello"},
		{"control characters", "two\nlines", "two lines"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := srv.Say(ctx, sess, &chatv1.SayRequest{Text: tt.text}); err != nil {
				t.Fatal(err)
			}
			h := kept(srv, "kitchen")
			if len(h) == 0 {
				t.Fatal("nothing kept")
			}
			m := h[len(h)-1]
			if m.Text != tt.want || m.Nick != "bob" || m.Room != "kitchen" {
				t.Fatalf("kept %q by %q in %q, want %q by bob in kitchen", m.Text, m.Nick, m.Room, tt.want)
			}
			for _, s := range []struct{ what, kept, in string }{
				{"text", m.Text, tt.text},
				{"nick", m.Nick, big},
				{"room", m.Room, big},
				{"nick attribute", nickOf(sess), big},
				{"room name", roomOf(sess).name, big},
			} {
				if aliases(s.kept, s.in) {
					t.Errorf("the kept %s %q points into the %d-byte request", s.what, s.kept, len(s.in))
				}
			}
		})
	}
}

// TestSayTooLong: a text over MaxTextBytes is dropped whole, before it is
// cleaned (cleaning would leave something to post).
func TestSayTooLong(t *testing.T) {
	srv, sessions := testServer(t, Config{}, "lobby")
	sess, ctx := sessions[0], context.Background()
	tests := []struct {
		name, text string
		want       string // kept; "" for dropped
	}{
		{"at the limit", strings.Repeat("x", MaxTextBytes), strings.Repeat("x", MaxTextLen)},
		{"at the limit in 4-byte characters", strings.Repeat("😀", MaxTextLen), strings.Repeat("😀", MaxTextLen)},
		{"one byte over", strings.Repeat("x", MaxTextBytes+1), ""},
		{"x and a MiB of spaces", "x" + strings.Repeat(" ", 1<<20), ""},
		{"a MiB of control characters and y", strings.Repeat("\n", 1<<20) + "y", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(kept(srv, "lobby"))
			if err := srv.Say(ctx, sess, &chatv1.SayRequest{Text: tt.text}); err != nil {
				t.Fatal(err)
			}
			h := kept(srv, "lobby")
			switch {
			case tt.want == "" && len(h) != before:
				t.Errorf("kept %.20q…, want it dropped", h[len(h)-1].Text)
			case tt.want != "" && (len(h) != before+1 || h[len(h)-1].Text != tt.want):
				t.Errorf("history went from %d to %d messages, want the text kept", before, len(h))
			}
		})
	}
}

// TestHistoryBytesAcrossRooms: all rooms together keep no more than
// MaxHistoryBytes, and a room nobody is in any more gives its bytes back.
func TestHistoryBytesAcrossRooms(t *testing.T) {
	rooms := make([]string, 8)
	for i := range rooms {
		rooms[i] = fmt.Sprint("room", i)
	}
	// Each message costs about 1,200 bytes: 12 fit.
	const max = 15_000
	srv, sessions := testServer(t, Config{MaxHistoryBytes: max}, rooms...)
	ctx := context.Background()
	used := func() int64 { return srv.historyBudget.used.Load() }
	for round := range 20 {
		for i, sess := range sessions {
			text := fmt.Sprintf("%d %s", round, strings.Repeat("x", 1000))
			if err := srv.Say(ctx, sess, &chatv1.SayRequest{Text: text}); err != nil {
				t.Fatal(err)
			}
			if used() > max {
				t.Fatalf("round %d, %s: the histories keep %d bytes, over %d", round, rooms[i], used(), max)
			}
		}
	}
	var sum int64
	var messages int
	for _, room := range rooms {
		for _, m := range kept(srv, room) {
			sum += messageCost(m)
			messages++
		}
	}
	if sum != used() || messages < 10 {
		t.Errorf("the histories keep %d messages, %d bytes; the budget counts %d", messages, sum, used())
	}
	for _, sess := range sessions {
		if _, err := srv.Leave(ctx, sess, &chatv1.LeaveRequest{}); err != nil {
			t.Fatal(err)
		}
	}
	if used() != 0 {
		t.Errorf("with every room empty the budget counts %d bytes", used())
	}
}
