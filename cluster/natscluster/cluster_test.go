package natscluster_test

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/goleak"

	"github.com/msgtrans/msgtrans-go/cluster/natscluster"
	"github.com/msgtrans/msgtrans-go/internal/natstest"
	"github.com/msgtrans/msgtrans-go/runtime"
	_ "github.com/msgtrans/msgtrans-go/transports/tcp"
	"github.com/msgtrans/msgtrans-go/wire"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	bizNote = 2 // pushed to clients
	bizEcho = 1 // a client answers it with its payload
)

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

// node is one server of a test cluster.
type node struct {
	srv  *runtime.Server
	cl   *natscluster.Cluster
	nc   *nats.Conn
	addr string
}

// startNode starts a server on tcp loopback as a node of the cluster on the
// NATS server at url.
func startNode(t *testing.T, url string, opts ...natscluster.Option) *node {
	t.Helper()
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectBufSize(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	cl, err := natscluster.New(nc, append([]natscluster.Option{natscluster.WithPrefix("test"), natscluster.WithLogger(quiet()),
		natscluster.WithHeartbeat(200*time.Millisecond, 700*time.Millisecond)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := runtime.NewServer(runtime.WithCluster(cl), runtime.WithLogger(quiet()),
		runtime.WithAuthenticator(func(_ context.Context, info runtime.AuthInfo) (string, error) { return string(info.Credentials), nil }))
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Listen(context.Background(), "tcp://127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	n := &node{srv: srv, cl: cl, nc: nc, addr: srv.Addrs()[0]}
	t.Cleanup(func() { n.stop() })
	return n
}

func (n *node) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = n.srv.Shutdown(ctx)
	n.nc.Close()
}

// member is a client of one node, collecting what is pushed to it.
type member struct {
	c    *runtime.Client
	sess uint64 // its session id on the server
	got  chan string
}

// connect connects a client, as user, to n; it answers bizEcho requests.
func connect(t *testing.T, n *node, user string) *member {
	t.Helper()
	m := &member{got: make(chan string, 64)}
	c, err := runtime.NewClient(n.addr, runtime.WithCredentials([]byte(user)), runtime.WithLogger(quiet()), runtime.WithoutReconnect())
	if err != nil {
		t.Fatal(err)
	}
	c.Handle(bizNote, runtime.HandlerFunc(func(_ context.Context, _ *runtime.Session, p *wire.Packet) (*wire.Packet, error) {
		m.got <- p.Text()
		return nil, nil
	}))
	c.Handle(bizEcho, runtime.HandlerFunc(func(_ context.Context, _ *runtime.Session, p *wire.Packet) (*wire.Packet, error) {
		return p.Reply([]byte(user + ": " + p.Text())), nil
	}))
	if err := c.Connect(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	m.c = c
	// The session id: the server's session whose remote address is this
	// client's local one.
	local := c.Session().LocalAddr().String()
	deadline := time.Now().Add(5 * time.Second)
	for m.sess == 0 {
		for _, s := range n.srv.Sessions() {
			if s.RemoteAddr().String() == local && s.Identity() == user {
				m.sess = s.ID()
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("no session for the client")
		}
		time.Sleep(time.Millisecond) // polling for the server to register it
	}
	return m
}

// next returns the next text pushed to m, failing after 5 s.
func (m *member) next(t *testing.T) string {
	t.Helper()
	select {
	case s := <-m.got:
		return s
	case <-time.After(5 * time.Second):
		t.Fatal("nothing pushed within 5s")
		return ""
	}
}

// none checks that nothing more was pushed to m (a marker sent after the
// push under test arrives first).
func (m *member) expect(t *testing.T, want ...string) {
	t.Helper()
	for _, w := range want {
		if got := m.next(t); got != w {
			t.Fatalf("got %q, want %q", got, w)
		}
	}
}

// join puts a member's session in a group on its node.
func join(t *testing.T, n *node, m *member, group string) {
	t.Helper()
	s, ok := n.srv.Session(m.sess)
	if !ok {
		t.Fatalf("no session %d on node %d", m.sess, n.srv.Node())
	}
	if err := n.srv.Join(group, s); err != nil {
		t.Fatal(err)
	}
}

func push(t *testing.T, n *node, to runtime.Target, text string) int {
	t.Helper()
	k, err := n.srv.Push(context.Background(), to, wire.NewText(bizNote, text))
	if err != nil {
		t.Fatalf("Push(%s) from node %d: %v", to, n.srv.Node(), err)
	}
	return k
}

// eventually polls cond until it holds, failing after d.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(10 * time.Millisecond) // polling
	}
}

// threeNodes starts a NATS server and three nodes on it, each knowing the
// others.
func threeNodes(t *testing.T, natsArgs ...string) (*natstest.Server, []*node) {
	t.Helper()
	ns := natstest.Start(t, natsArgs...)
	var nodes []*node
	for range 3 {
		nodes = append(nodes, startNode(t, ns.URL()))
	}
	for _, n := range nodes {
		eventually(t, 5*time.Second, "every node sees the others", func() bool {
			ids, _ := n.srv.Nodes(context.Background())
			return len(ids) == 3
		})
	}
	return ns, nodes
}

// TestCluster: pushes and calls reach their targets whether they are on the
// pushing node, another node or several, once each.
func TestCluster(t *testing.T) {
	_, nodes := threeNodes(t)
	a, b, c := nodes[0], nodes[1], nodes[2]
	ids := map[uint16]bool{}
	for _, n := range nodes {
		if n.srv.Node() == 0 || ids[n.srv.Node()] {
			t.Fatalf("node ids %v: want three distinct, none 0", ids)
		}
		ids[n.srv.Node()] = true
	}
	alice1, bob, alice2 := connect(t, a, "alice"), connect(t, b, "bob"), connect(t, c, "alice")
	everyone := []*member{alice1, bob, alice2}
	for i, m := range everyone {
		if got := runtime.NodeOf(m.sess); got != nodes[i].srv.Node() {
			t.Errorf("session %d names node %d, want %d", m.sess, got, nodes[i].srv.Node())
		}
	}
	for i, m := range everyone {
		join(t, nodes[i], m, "room")
	}
	// Wait for every node's subscription to the group to be in place.
	eventually(t, 5*time.Second, "the group's members seen from every node", func() bool {
		all, err := b.srv.ClusterMembers(context.Background(), "room")
		return err == nil && len(all) == 3
	})

	t.Run("session on another node", func(t *testing.T) {
		if n := push(t, a, runtime.ToSession(bob.sess), "to bob from a"); n != 1 {
			t.Errorf("Push counted %d, want 1", n)
		}
		bob.expect(t, "to bob from a")
	})
	t.Run("group across nodes", func(t *testing.T) {
		// Order holds per origin, not across nodes: each push is awaited.
		if n := push(t, b, runtime.ToGroup("room"), "to the room"); n != 1 {
			t.Errorf("Push counted %d local recipients, want 1", n)
		}
		for _, m := range everyone {
			m.expect(t, "to the room")
		}
		push(t, c, runtime.ToGroupExcept("room", alice1.sess), "not alice1")
		bob.expect(t, "not alice1")
		alice2.expect(t, "not alice1")
		// A marker from alice1's own node after the push reached the
		// others: had alice1 got the push, it would come first.
		push(t, a, runtime.ToSession(alice1.sess), "marker")
		alice1.expect(t, "marker")
	})
	t.Run("everyone", func(t *testing.T) {
		push(t, c, runtime.ToAll(), "to all")
		for _, m := range everyone {
			m.expect(t, "to all")
		}
	})
	t.Run("a user's sessions on every node", func(t *testing.T) {
		eventually(t, 5*time.Second, "user push reaches both", func() bool {
			push(t, b, runtime.ToUser("alice"), "to alice")
			select {
			case got := <-alice1.got:
				if got != "to alice" {
					t.Fatalf("alice1 got %q", got)
				}
				alice2.expect(t, "to alice")
				return true
			case <-time.After(100 * time.Millisecond):
				return false
			}
		})
		// Drain any repeats from tries while subscriptions settled.
		push(t, a, runtime.ToAll(), "end")
		for _, m := range everyone {
			for m.next(t) != "end" {
			}
		}
	})
	t.Run("members and nodes", func(t *testing.T) {
		all, err := a.srv.ClusterMembers(context.Background(), "room")
		want := []uint64{alice1.sess, bob.sess, alice2.sess}
		slices.Sort(want)
		if err != nil || !slices.Equal(all, want) {
			t.Errorf("ClusterMembers = %v, %v; want %v", all, err, want)
		}
	})
	t.Run("call a session on another node", func(t *testing.T) {
		resp, err := a.srv.Request(context.Background(), alice2.sess, wire.NewRequest(bizEcho, []byte("hi")))
		if err != nil || resp.Text() != "alice: hi" {
			t.Fatalf("Request = %v, %v", resp, err)
		}
		missing := uint64(c.srv.Node())<<48 | 999999
		if _, err := a.srv.Request(context.Background(), missing, wire.NewRequest(bizEcho, nil)); runtime.CodeOf(err) != runtime.CodeNotFound {
			t.Errorf("a call to a session not on its node: %v, want not_found", err)
		}
		unknownNode := uint64(c.srv.Node()^0x8000)<<48 | 1
		if _, err := a.srv.Request(context.Background(), unknownNode, wire.NewRequest(bizEcho, nil)); runtime.CodeOf(err) != runtime.CodeUnavailable {
			t.Errorf("a call to a node that does not exist: %v, want unavailable", err)
		}
	})
}

// TestClusterNodeLeaves: a node that shuts down leaves at once; a node
// killed (its NATS connection dropped without a word) is taken for dead
// after the dead-after time; calls to their sessions fail at once with
// unavailable.
func TestClusterNodeLeaves(t *testing.T) {
	for _, how := range []string{"shutdown", "killed"} {
		t.Run(how, func(t *testing.T) {
			_, nodes := threeNodes(t)
			a, c := nodes[0], nodes[2]
			m := connect(t, c, "carol")
			gone := c.srv.Node()
			start := time.Now()
			if how == "shutdown" {
				c.stop()
			} else {
				c.nc.Close() // no leave message; the node's server goes on alone
			}
			eventually(t, 10*time.Second, "the node leaves the others' view", func() bool {
				ids, _ := a.srv.Nodes(context.Background())
				return !slices.Contains(ids, gone)
			})
			t.Logf("node %d gone from membership after %v", gone, time.Since(start).Round(time.Millisecond))
			callStart := time.Now()
			_, err := a.srv.Request(context.Background(), m.sess, wire.NewRequest(bizEcho, nil))
			if runtime.CodeOf(err) != runtime.CodeUnavailable {
				t.Errorf("a call to the gone node's session: %v, want unavailable", err)
			}
			if took := time.Since(callStart); took > time.Second {
				t.Errorf("the call took %v to fail", took)
			}
			if _, err := a.srv.Push(context.Background(), runtime.ToSession(m.sess), wire.NewText(bizNote, "x")); runtime.CodeOf(err) != runtime.CodeUnavailable {
				t.Errorf("a push to the gone node's session: %v, want unavailable", err)
			}
		})
	}
}

// TestClusterNodeID: a node id given explicitly is refused while a live
// node holds it.
func TestClusterNodeID(t *testing.T) {
	ns := natstest.Start(t)
	first := startNode(t, ns.URL(), natscluster.WithNodeID(7))
	if first.srv.Node() != 7 {
		t.Fatalf("node id %d, want 7", first.srv.Node())
	}
	nc, err := nats.Connect(ns.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	cl, err := natscluster.New(nc, natscluster.WithPrefix("test"), natscluster.WithNodeID(7), natscluster.WithLogger(quiet()))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := runtime.NewServer(runtime.WithCluster(cl), runtime.WithLogger(quiet()))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if err := srv.Listen(context.Background(), "tcp://127.0.0.1:0"); err == nil || !strings.Contains(err.Error(), "node id 7 is in use") {
		t.Errorf("a second node 7: %v, want it refused", err)
	}
}

// TestClusterMaxPayload: a push too large for NATS's max_payload reaches
// the local members and fails its remote part with a clear error.
func TestClusterMaxPayload(t *testing.T) {
	_, nodes := threeNodes(t, "max_payload: 65536")
	a, b := nodes[0], nodes[1]
	local, remote := connect(t, a, "x"), connect(t, b, "y")
	join(t, a, local, "room")
	join(t, b, remote, "room")
	eventually(t, 5*time.Second, "members seen", func() bool {
		all, _ := a.srv.ClusterMembers(context.Background(), "room")
		return len(all) == 2
	})
	big := strings.Repeat("b", 70000)
	n, err := a.srv.Push(context.Background(), runtime.ToGroup("room"), wire.NewText(bizNote, big))
	if n != 1 || runtime.CodeOf(err) != runtime.CodeInvalidArgument || !strings.Contains(err.Error(), "max_payload") {
		t.Errorf("Push of 70,000 bytes = %d, %v; want 1 local and an invalid_argument naming max_payload", n, err)
	}
	if got := local.next(t); len(got) != len(big) {
		t.Errorf("the local member got %d bytes", len(got))
	}
}

// TestClusterNATSRestart: the NATS server dies and comes back. Meanwhile
// every node serves its local sessions and fails remote sends at once;
// afterwards the cluster heals by itself: subscriptions are restored and
// pushes cross nodes again.
func TestClusterNATSRestart(t *testing.T) {
	ns := natstest.Start(t)
	var reconnects atomic.Int64
	a := startNode(t, ns.URL(), natscluster.WithReconnectHandler(func() { reconnects.Add(1) }))
	b := startNode(t, ns.URL())
	ma, mb := connect(t, a, "x"), connect(t, b, "y")
	join(t, a, ma, "room")
	join(t, b, mb, "room")
	eventually(t, 5*time.Second, "the nodes see each other", func() bool {
		all, _ := a.srv.ClusterMembers(context.Background(), "room")
		return len(all) == 2
	})

	ns.Stop()
	eventually(t, 5*time.Second, "the nodes notice", func() bool { return !a.nc.IsConnected() })
	start := time.Now()
	n, err := a.srv.Push(context.Background(), runtime.ToGroup("room"), wire.NewText(bizNote, "while down"))
	if n != 1 || runtime.CodeOf(err) != runtime.CodeUnavailable {
		t.Errorf("a push while NATS is down = %d, %v; want the local member and unavailable", n, err)
	}
	if took := time.Since(start); took > 500*time.Millisecond {
		t.Errorf("the push took %v with NATS down", took)
	}
	ma.expect(t, "while down")
	// Local traffic goes on.
	resp, err := a.srv.Request(context.Background(), ma.sess, wire.NewRequest(bizEcho, []byte("local")))
	if err != nil || resp.Text() != "x: local" {
		t.Errorf("a local call with NATS down: %v, %v", resp, err)
	}

	ns.Restart()
	eventually(t, 10*time.Second, "the cluster heals", func() bool {
		if _, err := b.srv.Push(context.Background(), runtime.ToGroup("room"), wire.NewText(bizNote, "healed")); err != nil {
			return false
		}
		select {
		case got := <-ma.got:
			return got == "healed"
		case <-time.After(200 * time.Millisecond):
			return false
		}
	})
	eventually(t, 5*time.Second, "the reconnect handler runs", func() bool { return reconnects.Load() > 0 })
	for _, n := range []*node{a, b} {
		if n.srv.SessionCount() != 1 {
			t.Errorf("node %d holds %d sessions after NATS came back, want 1", n.srv.Node(), n.srv.SessionCount())
		}
	}
}

func TestNewErrors(t *testing.T) {
	tests := []struct {
		name string
		opts []natscluster.Option
		want string
	}{
		{"bad prefix", []natscluster.Option{natscluster.WithPrefix("a b")}, "prefix"},
		{"empty token", []natscluster.Option{natscluster.WithPrefix("a..b")}, "empty token"},
		{"heartbeat over dead-after", []natscluster.Option{natscluster.WithHeartbeat(time.Second, time.Second)}, "heartbeat"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := natscluster.New(&nats.Conn{}, tt.opts...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New: %v, want an error about %s", err, tt.want)
			}
		})
	}
	if _, err := natscluster.New(nil); err == nil {
		t.Error("New(nil) succeeded")
	}
}
