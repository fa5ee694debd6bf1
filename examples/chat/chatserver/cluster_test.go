package chatserver_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/msgtrans/msgtrans-go/examples/chat/chatserver"
	chatv1 "github.com/msgtrans/msgtrans-go/examples/chat/gen/chat/v1"
	"github.com/msgtrans/msgtrans-go/internal/natstest"
)

// startNodes starts n chat servers as nodes of one chat on a NATS server,
// and waits until each sees the others.
func startNodes(t *testing.T, n int) []*chatserver.Server {
	t.Helper()
	ns := natstest.Start(t)
	var nodes []*chatserver.Server
	for range n {
		nc, err := nats.Connect(ns.URL(), nats.MaxReconnects(-1), nats.ReconnectBufSize(-1))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close) // after the server's Shutdown, registered later
		nodes = append(nodes, start(t, chatserver.Config{PingInterval: -1, Cluster: &chatserver.ClusterConfig{NATS: nc, Prefix: "chattest"}}))
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, s := range nodes {
		for len(s.Nodes()) < n {
			if time.Now().After(deadline) {
				t.Fatalf("node sees nodes %v, want %d", s.Nodes(), n)
			}
			time.Sleep(10 * time.Millisecond) // polling for the heartbeats
		}
	}
	return nodes
}

// TestChatAcrossNodes: members connected to different nodes of one chat
// are in one room: they hear each other's arrivals and messages, a member
// joining later gets the history said on other nodes, and /who lists
// everyone.
func TestChatAcrossNodes(t *testing.T) {
	nodes := startNodes(t, 3)
	x, y, z := newMember(t, nodes[0]), newMember(t, nodes[1]), newMember(t, nodes[2])

	x.join(t, "lobby", "x")
	x.expect(t, "joined lobby x")
	resp := y.join(t, "lobby", "y")
	if !slices.Equal(resp.Members, []string{"x", "y"}) {
		t.Errorf("y's join lists %v, want x and y", resp.Members)
	}
	x.expect(t, "joined lobby y")
	y.expect(t, "joined lobby y")

	x.say(t, "lobby", "hello from node a")
	x.expect(t, "message lobby x hello from node a #1")
	y.expect(t, "message lobby x hello from node a #1")

	resp = z.join(t, "lobby", "z")
	if !slices.Equal(resp.Members, []string{"x", "y", "z"}) {
		t.Errorf("z's join lists %v, want x, y and z", resp.Members)
	}
	var history []string
	for _, m := range resp.History {
		history = append(history, m.Nick+": "+m.Text)
	}
	if !slices.Equal(history, []string{"x: hello from node a"}) {
		t.Errorf("z's join has history %q, want x's message from another node", history)
	}
	for _, m := range []*member{x, y, z} {
		m.expect(t, "joined lobby z")
	}
	who, err := y.chat.Who(context.Background(), &chatv1.WhoRequest{})
	if err != nil || !slices.Equal(who.Members, []string{"x", "y", "z"}) {
		t.Errorf("Who from node b = %v, %v; want x, y and z", who, err)
	}

	z.say(t, "lobby", "and from node c")
	for _, m := range []*member{x, y, z} {
		m.expect(t, "message lobby z and from node c #1")
	}
	// A member leaving is heard on every node.
	if _, err := y.chat.Leave(context.Background(), &chatv1.LeaveRequest{}); err != nil {
		t.Fatal(err)
	}
	for _, m := range []*member{x, y, z} {
		m.expect(t, "left lobby y")
	}
}
