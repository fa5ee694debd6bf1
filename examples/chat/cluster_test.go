package chat_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/msgtrans/msgtrans-go/examples/chat/chatserver"
	chatv1 "github.com/msgtrans/msgtrans-go/examples/chat/gen/chat/v1"
	"github.com/msgtrans/msgtrans-go/internal/natstest"
	"github.com/msgtrans/msgtrans-go/runtime"
)

// nodeEnv, when set to "NATS-URL LISTEN-ADDR", makes the test binary a chat
// server node (see runNode).
const nodeEnv = "MSGTRANS_CHAT_NODE"

// runNode is a chat server node in a process of its own: it serves until
// its standard input closes or it is killed.
func runNode(spec string) {
	natsURL, listen, _ := strings.Cut(spec, " ")
	nc, err := nats.Connect(natsURL, nats.MaxReconnects(-1), nats.ReconnectBufSize(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		fmt.Println("nats:", err)
		os.Exit(3)
	}
	srv, err := chatserver.New(chatserver.Config{
		Listen: []string{listen}, Logger: quietLogger(), PingInterval: -1,
		Cluster: &chatserver.ClusterConfig{NATS: nc, Prefix: "chatproc"},
		Options: []runtime.ServerOption{runtime.WithMaxConnectionsPerIP(5000)},
	})
	if err == nil {
		err = srv.Start(context.Background())
	}
	if err != nil {
		fmt.Println("start:", err)
		os.Exit(3)
	}
	fmt.Println("ready")
	_, _ = io.Copy(io.Discard, os.Stdin)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(ctx)
	nc.Close()
	os.Exit(0)
}

// nodeProcess is a chat node run as a child process.
type nodeProcess struct {
	cmd  *exec.Cmd
	addr string
	once sync.Once
}

// startNodeProcess runs the test binary as a chat node on the NATS server.
func startNodeProcess(t *testing.T, natsURL string) *nodeProcess {
	t.Helper()
	addr := "tcp://127.0.0.1:" + freeTCPPort(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestChatCluster")
	cmd.Env = append(os.Environ(), nodeEnv+"="+natsURL+" "+addr)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
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
	p := &nodeProcess{cmd: cmd, addr: addr}
	t.Cleanup(func() {
		_ = stdin.Close()
		p.kill()
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	if line != "ready\n" {
		p.kill()
		t.Fatalf("chat node said %q (%v)", line, err)
	}
	return p
}

// kill kills the node with SIGKILL, once, and reaps it.
func (p *nodeProcess) kill() {
	p.once.Do(func() {
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
		_ = p.cmd.Wait()
	})
}

func freeTCPPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

// chatter is a client of a clustered chat: it knows every node, joins the
// lobby, rejoins after each reconnection, and counts the messages it gets.
type chatter struct {
	chatv1.UnimplementedChatEventsServiceHandler
	c      *runtime.Client
	api    *chatv1.ChatServiceClient
	got    sync.Map // text → struct{}
	joined atomic.Int64
}

func (ch *chatter) RoomMessage(_ context.Context, req *chatv1.RoomMessageRequest) error {
	ch.got.Store(req.GetMessage().GetText(), struct{}{})
	return nil
}

func (ch *chatter) Ping(_ context.Context, req *chatv1.PingRequest) (*chatv1.PingResponse, error) {
	return &chatv1.PingResponse{Seq: req.Seq}, nil
}

func (ch *chatter) has(text string) bool { _, ok := ch.got.Load(text); return ok }

// join joins the lobby, trying again (as a user would) until it has or
// the client is closed.
func (ch *chatter) join(nick string) {
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := ch.api.Join(ctx, &chatv1.JoinRequest{Room: "lobby", Nick: nick})
		cancel()
		if err == nil {
			ch.joined.Add(1)
			return
		}
		select {
		case <-ch.c.Done():
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// startChatters connects n chatters, the i-th to node i mod len(addrs)
// first, and waits until each has joined.
func startChatters(t *testing.T, n int, addrs []string) []*chatter {
	t.Helper()
	out := make([]*chatter, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 50)
	for i := range out {
		ch := &chatter{}
		out[i] = ch
		first := i % len(addrs)
		others := append(append([]string{}, addrs[first+1:]...), addrs[:first]...)
		nick := "c" + strconv.Itoa(i)
		c, err := runtime.NewClient(addrs[first], runtime.WithAddrs(others...), runtime.WithLogger(quietLogger()),
			runtime.WithReconnect(runtime.Backoff{Base: 50 * time.Millisecond, MaxDelay: time.Second}),
			runtime.WithEventHandler(func(e runtime.Event) {
				if e.Kind == runtime.Reconnected {
					go ch.join(nick)
				}
			}))
		if err != nil {
			t.Fatal(err)
		}
		chatv1.RegisterChatEventsServiceHandler(c, ch)
		ch.c, ch.api = c, chatv1.NewChatServiceClient(c)
		t.Cleanup(func() { _ = c.Close() })
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := c.Connect(context.Background()); err != nil {
				t.Errorf("chatter %d: %v", i, err)
				return
			}
			ch.join(nick)
		}()
	}
	wg.Wait()
	return out
}

// everyoneGets says text from one chatter and waits until every chatter in
// want has it.
func everyoneGets(t *testing.T, from *chatter, text string, want []*chatter, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	if err := from.api.Say(context.Background(), &chatv1.SayRequest{Room: "lobby", Text: text}); err != nil {
		t.Fatalf("Say: %v", err)
	}
	for {
		missing := 0
		for _, ch := range want {
			if !ch.has(text) {
				missing++
			}
		}
		if missing == 0 {
			return time.Since(start)
		}
		if time.Since(start) > within {
			t.Fatalf("%d of %d chatters did not get %q within %v", missing, len(want), text, within)
		}
		time.Sleep(10 * time.Millisecond) // polling the chatters
	}
}

// TestChatClusterNodeKilled: three chat nodes (processes) on a NATS server
// (a process) share a lobby of 1,000 chatters. One node is killed with
// SIGKILL: its chatters reconnect to the other nodes and rejoin, and a
// message then reaches all 1,000.
func TestChatClusterNodeKilled(t *testing.T) {
	if spec := os.Getenv(nodeEnv); spec != "" {
		runNode(spec)
		return
	}
	// 1,000 chatters; 300 under the race detector, which slows the node
	// processes too (.ci/run also runs this test without it, at 1,000).
	n := 1000
	if testing.Short() || raceEnabled {
		n = 300
	}
	ns := natstest.Start(t)
	var nodes []*nodeProcess
	var addrs []string
	for range 3 {
		p := startNodeProcess(t, ns.URL())
		nodes = append(nodes, p)
		addrs = append(addrs, p.addr)
	}
	chatters := startChatters(t, n, addrs)
	took := everyoneGets(t, chatters[0], "before", chatters, 20*time.Second)
	t.Logf("a message reached %d chatters on 3 nodes in %v", n, took.Round(time.Millisecond))

	killed := time.Now()
	nodes[2].kill()
	// The killed node's chatters (every third) rejoin elsewhere.
	deadline := killed.Add(30 * time.Second)
	for {
		rejoined, want := 0, 0
		for i := 2; i < n; i += 3 {
			want++
			if chatters[i].joined.Load() >= 2 {
				rejoined++
			}
		}
		if rejoined == want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of the killed node's chatters rejoined within 30s", rejoined)
		}
		time.Sleep(20 * time.Millisecond) // polling the chatters
	}
	t.Logf("the killed node's chatters rejoined other nodes within %v", time.Since(killed).Round(time.Millisecond))
	took = everyoneGets(t, chatters[1], "after", chatters, 20*time.Second)
	t.Logf("after the kill, a message reached all %d chatters in %v", n, took.Round(time.Millisecond))
}

// TestChatClusterNATSRestart: the NATS server dies and comes back under a
// clustered chat. Meanwhile each node goes on serving its own chatters
// (a message still reaches those on its node); afterwards the cluster
// heals by itself and messages cross nodes again; no node fails.
func TestChatClusterNATSRestart(t *testing.T) {
	if spec := os.Getenv(nodeEnv); spec != "" {
		runNode(spec)
		return
	}
	ns := natstest.Start(t)
	var nodes []*nodeProcess
	var addrs []string
	for range 2 {
		p := startNodeProcess(t, ns.URL())
		nodes = append(nodes, p)
		addrs = append(addrs, p.addr)
	}
	chatters := startChatters(t, 20, addrs)
	everyoneGets(t, chatters[0], "before", chatters, 10*time.Second)

	ns.Stop()
	var onFirst []*chatter
	for i := 0; i < len(chatters); i += 2 {
		onFirst = append(onFirst, chatters[i])
	}
	// Local traffic goes on: the first node's chatters hear each other.
	everyoneGets(t, chatters[0], "during", onFirst, 10*time.Second)

	ns.Restart()
	deadline := time.Now().Add(20 * time.Second)
	for i := 0; ; i++ {
		text := "healed " + strconv.Itoa(i)
		if err := chatters[1].api.Say(context.Background(), &chatv1.SayRequest{Room: "lobby", Text: text}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(200 * time.Millisecond) // a round trip through NATS, then look
		if chatters[0].has(text) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("messages do not cross nodes 20s after NATS came back")
		}
	}
	everyoneGets(t, chatters[0], "after", chatters, 10*time.Second)
	for i, p := range nodes {
		if p.cmd.ProcessState != nil {
			t.Errorf("node %d exited: %v", i, p.cmd.ProcessState)
		}
	}
}
