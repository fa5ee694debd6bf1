package chatserver_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"testing"

	"github.com/msgtrans/msgtrans-go/examples/chat/chatserver"
	chatv1 "github.com/msgtrans/msgtrans-go/examples/chat/gen/chat/v1"
	"github.com/msgtrans/msgtrans-go/runtime"
)

// watching is a Watch stream read into strings like member's events.
type watching struct {
	st     *runtime.ServerStreamClient[chatv1.WatchResponse]
	events chan string
	ended  chan error
}

// watch opens a Watch of the room from a client of its own, which joins
// nothing.
func watch(t *testing.T, srv *chatserver.Server, room string) *watching {
	t.Helper()
	c := dial(t, srv, nil)
	st, err := chatv1.NewChatServiceClient(c).Watch(context.Background(), &chatv1.WatchRequest{Room: room})
	if err != nil {
		t.Fatal(err)
	}
	w := &watching{st: st, events: make(chan string, 1024), ended: make(chan error, 1)}
	go func() {
		for {
			ev, err := st.Recv()
			if err != nil {
				w.ended <- err
				return
			}
			w.events <- describe(ev)
		}
	}()
	t.Cleanup(func() { _ = st.Close() })
	return w
}

func describe(ev *chatv1.WatchResponse) string {
	switch e := ev.Event.(type) {
	case *chatv1.WatchResponse_Watching:
		var history []string
		for _, m := range e.Watching.History {
			history = append(history, fmt.Sprintf("%s: %s #%d", m.Nick, m.Text, m.Seq))
		}
		return fmt.Sprintf("watching %s %v %q", e.Watching.Room, e.Watching.Members, history)
	case *chatv1.WatchResponse_Message:
		m := e.Message
		return fmt.Sprintf("message %s %s %s #%d", m.Room, m.Nick, m.Text, m.Seq)
	case *chatv1.WatchResponse_Joined:
		return fmt.Sprintf("joined %s %s", e.Joined.Room, e.Joined.Nick)
	case *chatv1.WatchResponse_Left:
		return fmt.Sprintf("left %s %s", e.Left.Room, e.Left.Nick)
	case *chatv1.WatchResponse_NickChanged:
		return fmt.Sprintf("nick %s %s %s", e.NickChanged.Room, e.NickChanged.PreviousNick, e.NickChanged.Nick)
	}
	return fmt.Sprintf("unknown %v", ev)
}

func (w *watching) expect(t *testing.T, want ...string) {
	t.Helper()
	(&member{events: w.events}).expect(t, want...)
}

// TestWatch: a watcher gets the room's history and then every event its
// members get, in their order, without being a member; several watch at
// once; a room nobody is in can be watched until someone comes.
func TestWatch(t *testing.T) {
	srv := start(t, chatserver.Config{})
	ann, ben := newMember(t, srv), newMember(t, srv)
	ann.join(t, "lobby", "ann")
	ann.expect(t, "joined lobby ann")
	ann.say(t, "lobby", "before anyone watched")
	ann.expect(t, "message lobby ann before anyone watched #1")

	w1, w2 := watch(t, srv, "lobby"), watch(t, srv, "lobby")
	for _, w := range []*watching{w1, w2} {
		w.expect(t, `watching lobby [ann] ["ann: before anyone watched #1"]`)
	}
	// Each step waits for its event, so that the order is the test's (ann's
	// one-way Say and ben's calls are on different connections).
	ben.join(t, "lobby", "ben")
	ann.expect(t, "joined lobby ben")
	ann.say(t, "lobby", "hi ben")
	ann.expect(t, "message lobby ann hi ben #2")
	if _, err := ben.chat.Nick(context.Background(), &chatv1.NickRequest{Nick: "benji"}); err != nil {
		t.Fatal(err)
	}
	ann.expect(t, "nick lobby ben benji")
	if _, err := ben.chat.Leave(context.Background(), &chatv1.LeaveRequest{}); err != nil {
		t.Fatal(err)
	}
	ann.expect(t, "left lobby benji")
	want := []string{"joined lobby ben", "message lobby ann hi ben #2", "nick lobby ben benji", "left lobby benji"}
	for _, w := range []*watching{w1, w2} {
		w.expect(t, want...)
	}
	who, err := ann.chat.Who(context.Background(), &chatv1.WhoRequest{})
	if err != nil || !slices.Equal(who.Members, []string{"ann"}) {
		t.Errorf("Who = %v, %v; watchers are no members", who, err)
	}

	t.Run("a room nobody is in", func(t *testing.T) {
		w := watch(t, srv, "attic")
		w.expect(t, "watching attic [] []")
		ben.join(t, "attic", "ben")
		ben.say(t, "attic", "anyone?")
		w.expect(t, "joined attic ben", "message attic ben anyone? #1")
	})
	t.Run("a bad room name", func(t *testing.T) {
		c := dial(t, srv, nil)
		st, err := chatv1.NewChatServiceClient(c).Watch(context.Background(), &chatv1.WatchRequest{Room: "two words"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.Recv(); runtime.CodeOf(err) != runtime.CodeInvalidArgument {
			t.Fatalf("Recv = %v, want invalid_argument", err)
		}
	})
	t.Run("closing the stream", func(t *testing.T) {
		if err := w2.st.Close(); err != nil {
			t.Fatal(err)
		}
		if err := <-w2.ended; runtime.CodeOf(err) != runtime.CodeCanceled {
			t.Fatalf("the closed watch ended with %v, want canceled", err)
		}
		ann.say(t, "lobby", "still watched")
		w1.expect(t, "message lobby ann still watched #3")
	})
}

// TestWatchSlowReader: a watcher that reads nothing while the room talks
// on is dropped with resource_exhausted once it is too far behind; the
// room's members are not held up, and the watcher has what it was sent
// before it was dropped.
func TestWatchSlowReader(t *testing.T) {
	srv := start(t, chatserver.Config{})
	talker := newMember(t, srv)
	talker.join(t, "lobby", "talker")
	talker.expect(t, "joined lobby talker")
	c := dial(t, srv, nil)
	st, err := chatv1.NewChatServiceClient(c).Watch(context.Background(), &chatv1.WatchRequest{Room: "lobby"})
	if err != nil {
		t.Fatal(err)
	}
	first, err := st.Recv()
	if err != nil || describe(first) != "watching lobby [talker] []" {
		t.Fatalf("first event %v, %v", first, err)
	}
	const said = 1000 // beyond the watcher's window and its server-side queue
	for i := range said {
		talker.say(t, "lobby", fmt.Sprint(i))
		talker.expect(t, fmt.Sprintf("message lobby talker %d #%d", i, i+1))
	}
	n := 0
	for {
		_, err := st.Recv()
		if err != nil {
			if runtime.CodeOf(err) != runtime.CodeResourceExhausted || errors.Is(err, io.EOF) {
				t.Fatalf("the slow watcher ended with %v after %d events, want resource_exhausted", err, n)
			}
			break
		}
		n++
	}
	if n == 0 || n >= said {
		t.Errorf("the slow watcher read %d of %d events before it was dropped", n, said)
	}
}

// TestWatchAcrossNodes: a watcher on one node of a clustered chat gets the
// history and the events of members on the others.
func TestWatchAcrossNodes(t *testing.T) {
	nodes := startNodes(t, 2)
	x := newMember(t, nodes[1])
	x.join(t, "lobby", "x")
	x.expect(t, "joined lobby x")
	x.say(t, "lobby", "said on node b")
	x.expect(t, "message lobby x said on node b #1")

	w := watch(t, nodes[0], "lobby")
	w.expect(t, `watching lobby [x] ["x: said on node b #1"]`)
	y := newMember(t, nodes[0])
	y.join(t, "lobby", "y")
	w.expect(t, "joined lobby y")
	x.say(t, "lobby", "more from node b")
	w.expect(t, "message lobby x more from node b #2")
}
