package chatserver_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/msgtrans/msgtrans-go/examples/chat/chatserver"
	chatv1 "github.com/msgtrans/msgtrans-go/examples/chat/gen/chat/v1"
	"github.com/msgtrans/msgtrans-go/runtime"
	_ "github.com/msgtrans/msgtrans-go/transports/all"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const wait = 10 * time.Second

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// start runs a server on a TCP port of its own.
func start(t *testing.T, cfg chatserver.Config) *chatserver.Server {
	t.Helper()
	if cfg.Listen == nil {
		cfg.Listen = []string{"tcp://127.0.0.1:0"}
	}
	if cfg.Logger == nil {
		cfg.Logger = quiet()
	}
	srv, err := chatserver.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return srv
}

// member is a client made of the generated code alone: it records the
// events the server pushes as strings.
type member struct {
	c      *runtime.Client
	chat   *chatv1.ChatServiceClient
	events chan string
}

func (m *member) RoomMessage(_ context.Context, req *chatv1.RoomMessageRequest) error {
	msg := req.GetMessage()
	m.events <- fmt.Sprintf("message %s %s %s #%d", msg.Room, msg.Nick, msg.Text, msg.Seq)
	return nil
}

func (m *member) MemberJoined(_ context.Context, req *chatv1.MemberJoinedRequest) error {
	m.events <- fmt.Sprintf("joined %s %s", req.Room, req.Nick)
	return nil
}

func (m *member) MemberLeft(_ context.Context, req *chatv1.MemberLeftRequest) error {
	m.events <- fmt.Sprintf("left %s %s", req.Room, req.Nick)
	return nil
}

func (m *member) NickChanged(_ context.Context, req *chatv1.NickChangedRequest) error {
	m.events <- fmt.Sprintf("nick %s %s %s", req.Room, req.PreviousNick, req.Nick)
	return nil
}

func (m *member) Ping(_ context.Context, req *chatv1.PingRequest) (*chatv1.PingResponse, error) {
	return &chatv1.PingResponse{Seq: req.Seq}, nil
}

func dial(t *testing.T, srv *chatserver.Server, h chatv1.ChatEventsServiceHandler, opts ...runtime.ClientOption) *runtime.Client {
	t.Helper()
	c, err := runtime.Dial(context.Background(), srv.Addrs()[0], append([]runtime.ClientOption{runtime.WithLogger(quiet()), runtime.WithoutReconnect()}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if h != nil {
		chatv1.RegisterChatEventsServiceHandler(c, h)
	}
	return c
}

func newMember(t *testing.T, srv *chatserver.Server) *member {
	t.Helper()
	m := &member{events: make(chan string, 256)}
	m.c = dial(t, srv, m)
	m.chat = chatv1.NewChatServiceClient(m.c)
	return m
}

func (m *member) join(t *testing.T, room, nick string) *chatv1.JoinResponse {
	t.Helper()
	resp, err := m.chat.Join(context.Background(), &chatv1.JoinRequest{Room: room, Nick: nick})
	if err != nil {
		t.Fatalf("Join(%s, %s): %v", room, nick, err)
	}
	return resp
}

func (m *member) say(t *testing.T, room, text string) {
	t.Helper()
	if err := m.chat.Say(context.Background(), &chatv1.SayRequest{Room: room, Text: text}); err != nil {
		t.Fatalf("Say: %v", err)
	}
}

// expect checks the next events pushed to m.
func (m *member) expect(t *testing.T, want ...string) {
	t.Helper()
	for _, w := range want {
		select {
		case got := <-m.events:
			if got != w {
				t.Fatalf("got event %q, want %q", got, w)
			}
		case <-time.After(wait):
			t.Fatalf("no event; want %q", w)
		}
	}
}

func TestRoom(t *testing.T) {
	srv := start(t, chatserver.Config{})
	ctx := context.Background()
	ann, ben := newMember(t, srv), newMember(t, srv)

	resp := ann.join(t, "lobby", "ann")
	if resp.Room != "lobby" || resp.Nick != "ann" || !slices.Equal(resp.Members, []string{"ann"}) || len(resp.History) != 0 {
		t.Fatalf("first Join = %v", resp)
	}
	ann.expect(t, "joined lobby ann")
	ann.say(t, "lobby", "  first\tline\n ")
	ann.expect(t, "message lobby ann first line #1")

	resp = ben.join(t, "lobby", "ben")
	if !slices.Equal(resp.Members, []string{"ann", "ben"}) || len(resp.History) != 1 || resp.History[0].Text != "first line" {
		t.Fatalf("second Join = %v", resp)
	}
	ben.expect(t, "joined lobby ben")
	ann.expect(t, "joined lobby ben")

	t.Run("messages go to every member, the author included", func(t *testing.T) {
		ben.say(t, "", "hello") // "" is the current room
		ben.expect(t, "message lobby ben hello #2")
		ann.expect(t, "message lobby ben hello #2")
	})
	t.Run("messages that cannot be posted are dropped", func(t *testing.T) {
		ben.say(t, "kitchen", "wrong room")
		ben.say(t, "lobby", " \n ")
		ben.say(t, "lobby", "right room") // one-way messages are handled in order
		ben.expect(t, "message lobby ben right room #3")
		ann.expect(t, "message lobby ben right room #3")
	})
	t.Run("who", func(t *testing.T) {
		who, err := ann.chat.Who(ctx, &chatv1.WhoRequest{})
		if err != nil || who.Room != "lobby" || !slices.Equal(who.Members, []string{"ann", "ben"}) {
			t.Fatalf("Who = %v, %v", who, err)
		}
		members := srv.Members("lobby")
		if len(members) != 2 || members[0].Nick != "ann" || members[1].Nick != "ben" || members[0].Transport != "tcp" {
			t.Fatalf("Members = %+v", members)
		}
	})
	t.Run("nick", func(t *testing.T) {
		n, err := ben.chat.Nick(ctx, &chatv1.NickRequest{Nick: "benji"})
		if err != nil || n.Nick != "benji" || n.PreviousNick != "ben" {
			t.Fatalf("Nick = %v, %v", n, err)
		}
		ben.expect(t, "nick lobby ben benji")
		ann.expect(t, "nick lobby ben benji")
		ben.say(t, "lobby", "renamed")
		ann.expect(t, "message lobby benji renamed #4")
		ben.expect(t, "message lobby benji renamed #4")
	})
	t.Run("joining another room leaves the first", func(t *testing.T) {
		resp := ben.join(t, "kitchen", "") // "" keeps the nick
		if resp.Nick != "benji" || !slices.Equal(resp.Members, []string{"benji"}) {
			t.Fatalf("Join = %v", resp)
		}
		ben.expect(t, "left lobby benji", "joined kitchen benji")
		ann.expect(t, "left lobby benji")
		who, err := ann.chat.Who(ctx, &chatv1.WhoRequest{})
		if err != nil || !slices.Equal(who.Members, []string{"ann"}) {
			t.Fatalf("Who = %v, %v", who, err)
		}
	})
	t.Run("joining the same room again changes nothing", func(t *testing.T) {
		resp := ben.join(t, "kitchen", "benji")
		if !slices.Equal(resp.Members, []string{"benji"}) {
			t.Fatalf("Join = %v", resp)
		}
		ben.say(t, "kitchen", "still here")
		ben.expect(t, "message kitchen benji still here #1") // no second "joined"
	})
	t.Run("leave", func(t *testing.T) {
		l, err := ben.chat.Leave(ctx, &chatv1.LeaveRequest{})
		if err != nil || l.Room != "kitchen" {
			t.Fatalf("Leave = %v, %v", l, err)
		}
		ben.expect(t, "left kitchen benji")
		if l, err = ben.chat.Leave(ctx, &chatv1.LeaveRequest{}); err != nil || l.Room != "" {
			t.Fatalf("second Leave = %v, %v", l, err)
		}
		if _, err := ben.chat.Who(ctx, &chatv1.WhoRequest{}); runtime.CodeOf(err) != runtime.CodeFailedPrecondition {
			t.Fatalf("Who outside a room = %v, want failed_precondition", err)
		}
	})
	t.Run("an empty room forgets its history", func(t *testing.T) {
		if resp := ben.join(t, "kitchen", ""); len(resp.History) != 0 {
			t.Fatalf("history of a room that was empty = %v", resp.History)
		}
		ben.expect(t, "joined kitchen benji")
	})
	t.Run("a closed session leaves its room", func(t *testing.T) {
		cid := newMember(t, srv)
		cid.join(t, "lobby", "cid")
		ann.expect(t, "joined lobby cid")
		_ = cid.c.Close()
		ann.expect(t, "left lobby cid")
	})
}

func TestInvalidRequests(t *testing.T) {
	srv := start(t, chatserver.Config{})
	m := newMember(t, srv)
	ctx := context.Background()
	tests := []struct {
		name string
		call func() error
	}{
		{"no nick", func() error {
			_, err := m.chat.Join(ctx, &chatv1.JoinRequest{Room: "lobby"})
			return err
		}},
		{"empty room", func() error {
			_, err := m.chat.Join(ctx, &chatv1.JoinRequest{Nick: "x"})
			return err
		}},
		{"room with a space", func() error {
			_, err := m.chat.Join(ctx, &chatv1.JoinRequest{Room: "the lobby", Nick: "x"})
			return err
		}},
		{"nick with a control character", func() error {
			_, err := m.chat.Join(ctx, &chatv1.JoinRequest{Room: "lobby", Nick: "x\x1b[2J"})
			return err
		}},
		{"nick too long", func() error {
			_, err := m.chat.Nick(ctx, &chatv1.NickRequest{Nick: string(make([]byte, chatserver.MaxNameLen+1))})
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.call(); runtime.CodeOf(err) != runtime.CodeInvalidArgument {
				t.Errorf("got %v, want invalid_argument", err)
			}
		})
	}
}

func TestHistorySize(t *testing.T) {
	srv := start(t, chatserver.Config{HistorySize: 3})
	a, b := newMember(t, srv), newMember(t, srv)
	a.join(t, "lobby", "a")
	a.expect(t, "joined lobby a")
	for i := 1; i <= 5; i++ {
		a.say(t, "lobby", fmt.Sprint(i))
		a.expect(t, fmt.Sprintf("message lobby a %d #%d", i, i))
	}
	resp := b.join(t, "lobby", "b")
	var texts []string
	for _, m := range resp.History {
		texts = append(texts, m.Text)
	}
	if !slices.Equal(texts, []string{"3", "4", "5"}) {
		t.Errorf("history = %q, want the last 3", texts)
	}
}

func TestPing(t *testing.T) {
	srv := start(t, chatserver.Config{PingInterval: -1})
	m := newMember(t, srv)
	m.join(t, "lobby", "m")
	members := srv.Members("lobby")
	if len(members) != 1 {
		t.Fatalf("Members = %v", members)
	}
	if rtt, err := srv.Ping(context.Background(), members[0].SessionID); err != nil || rtt <= 0 {
		t.Errorf("Ping = %v, %v", rtt, err)
	}
	if _, err := srv.Ping(context.Background(), 1<<40); runtime.CodeOf(err) != runtime.CodeNotFound {
		t.Errorf("Ping of no session = %v, want not_found", err)
	}

	// A client that does not serve ChatEventsService answers "unimplemented".
	raw := chatv1.NewChatServiceClient(dial(t, srv, nil))
	if _, err := raw.Join(context.Background(), &chatv1.JoinRequest{Room: "raw", Nick: "r"}); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Ping(context.Background(), srv.Members("raw")[0].SessionID); runtime.CodeOf(err) != runtime.CodeUnimplemented {
		t.Errorf("Ping of a client without handlers = %v, want unimplemented", err)
	}
}

// stuck is a client whose Ping never answers.
type stuck struct {
	chatv1.UnimplementedChatEventsServiceHandler
}

func (stuck) Ping(ctx context.Context, _ *chatv1.PingRequest) (*chatv1.PingResponse, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

func TestUnresponsiveClientIsDisconnected(t *testing.T) {
	srv := start(t, chatserver.Config{PingInterval: 20 * time.Millisecond, PingTimeout: 200 * time.Millisecond})
	good := newMember(t, srv)
	good.join(t, "lobby", "good")
	good.expect(t, "joined lobby good")

	bad := dial(t, srv, stuck{})
	if _, err := chatv1.NewChatServiceClient(bad).Join(context.Background(), &chatv1.JoinRequest{Room: "lobby", Nick: "bad"}); err != nil {
		t.Fatal(err)
	}
	good.expect(t, "joined lobby bad")
	select {
	case <-bad.Done():
	case <-time.After(wait):
		t.Fatal("the server kept a client that does not answer pings")
	}
	good.expect(t, "left lobby bad")
	// The good client answered every ping and is still there.
	if members := srv.Members("lobby"); len(members) != 1 || members[0].Nick != "good" {
		t.Errorf("Members = %+v", members)
	}
}

func TestDevelopmentCertificate(t *testing.T) {
	srv := start(t, chatserver.Config{Listen: []string{"quic://127.0.0.1:0"}})
	// Verified against the system roots, the certificate is refused,
	if c, err := runtime.Dial(context.Background(), srv.Addrs()[0], runtime.WithLogger(quiet()), runtime.WithoutReconnect()); err == nil {
		_ = c.Close()
		t.Fatal("a client verifying the development certificate connected")
	}
	// and accepted when verification is skipped.
	m := &member{events: make(chan string, 16)}
	m.c = dial(t, srv, m, runtime.WithTLS(&tls.Config{InsecureSkipVerify: true}))
	m.chat = chatv1.NewChatServiceClient(m.c)
	m.join(t, "lobby", "m")
	m.expect(t, "joined lobby m")
}

func TestConfigErrors(t *testing.T) {
	for _, cfg := range []chatserver.Config{
		{HistorySize: -1},
		{MaxHistoryBytes: -1},
		{PingTimeout: -time.Second},
	} {
		if _, err := chatserver.New(cfg); err == nil {
			t.Errorf("New(%+v) succeeded", cfg)
		}
	}
	srv, err := chatserver.New(chatserver.Config{Listen: []string{"nope://127.0.0.1:0"}, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(context.Background()); err == nil {
		t.Error("Start on an unknown scheme succeeded")
	}
	_ = srv.Close()
}

func TestServeStopsWithContext(t *testing.T) {
	srv, err := chatserver.New(chatserver.Config{Listen: []string{"tcp://127.0.0.1:0", "ws://127.0.0.1:0/ws"}, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	m := newMember(t, srv)
	m.join(t, "lobby", "m")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }() // Serve after Start serves on
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve = %v", err)
		}
	case <-time.After(wait):
		t.Fatal("Serve did not return")
	}
	select {
	case <-m.c.Done(): // told the server is going away, and not reconnecting
	case <-time.After(wait):
		t.Fatal("the client is still connected")
	}
	if err := srv.Start(context.Background()); err == nil {
		t.Error("Start after a shutdown succeeded")
	}
}
