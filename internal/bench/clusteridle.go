package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The cluster scenario with -max: 100,000 idle connections held by six
// chat-server processes, nodes of one chat on NATS (embedded in this
// process). Six clients processes, each from a source address of its own
// (127.0.0.2 to 127.0.0.7) and each to one server, dial 100,000 msgtrans
// clients in all, which heartbeat as msgtrans clients do (a ping every
// 15 s). It reports the time to connect them all, each server's resident
// memory per connection, and whether every connection is still up after
// two heartbeat intervals.
const (
	idleClusterServers = 6
	idleClusterConns   = 100_000
	idleClusterHold    = 35 * time.Second
	idleSources        = 3 // source addresses per client process
)

func runClusterIdle(e *env) error {
	total := pick(e, idleClusterConns, 12_000)
	if e.opt.conns > 0 {
		total = e.opt.conns
	}
	bin, err := buildChatServer(e)
	if err != nil {
		return err
	}
	defer os.RemoveAll(filepath.Dir(bin))
	ns, err := startNATS()
	if err != nil {
		return err
	}
	defer ns.Shutdown()

	var servers []*chatProc
	defer func() {
		for _, s := range servers {
			s.stop()
		}
	}()
	for range idleClusterServers {
		s, err := startChatServer(bin, ns.ClientURL())
		if err != nil {
			return err
		}
		servers = append(servers, s)
	}
	before := make([]int64, len(servers))
	for i, s := range servers {
		before[i] = s.rss()
	}

	e.logf("cluster idle: %d connections to %d chat servers", total, len(servers))
	t0 := time.Now()
	procs := make([]*clientProc, len(servers))
	counts := make([]int, len(servers))
	errs := make([]error, len(servers))
	var wg sync.WaitGroup
	for i, s := range servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := total / len(servers)
			if i < total%len(servers) {
				n++
			}
			// Three source addresses per client process: one address
			// connecting to one server port has some 28,000 ephemeral
			// ports (Linux's default range), and connect scans ever longer
			// for a free one past half of them.
			var src []string
			for k := range idleSources {
				src = append(src, "127.0."+strconv.Itoa(k+1)+"."+strconv.Itoa(i+2))
			}
			procs[i], counts[i], errs[i] = startClients(e, 600*time.Second, "-impl", implMsgtrans, "-transport", "tcp",
				"-addr", s.addr, "-n", strconv.Itoa(n), "-local", strings.Join(src, ","), "-conc", "16")
		}()
	}
	wg.Wait()
	connectTime := time.Since(t0)
	defer func() {
		for _, p := range procs {
			if p != nil {
				p.quit()
			}
		}
	}()
	connected := 0
	for i := range servers {
		if errs[i] != nil {
			return errs[i]
		}
		connected += counts[i]
	}
	e.logf("cluster idle: %d of %d connected in %v (%.0f/s)", connected, total, connectTime.Round(time.Millisecond), float64(connected)/connectTime.Seconds())
	e.add("tcp", implMsgtrans, "connected", "conns", float64(connected))
	e.add("tcp", implMsgtrans, "connect_s", "s", connectTime.Seconds())

	// Two heartbeat intervals with every connection idle but for its pings.
	hold := e.phase(idleClusterHold, 2*time.Second)
	time.Sleep(hold)
	alive := 0
	for _, p := range procs {
		if err := p.send("ALIVE"); err != nil {
			return err
		}
		f, err := p.expect("ALIVE", 30*time.Second)
		if err != nil {
			return err
		}
		alive += int(atoi64(f[1]))
	}
	var perConn []float64
	for i, s := range servers {
		perConn = append(perConn, float64(s.rss()-before[i])/float64(max(counts[i], 1)))
	}
	e.add("tcp", implMsgtrans, "alive_after_hold", "conns", float64(alive))
	e.add("tcp", implMsgtrans, "server_rss_per_conn", "B", median(perConn))
	e.logf("cluster idle: %d of %d connections up after %v; server RSS per connection: median %.0f B (min %.0f, max %.0f)",
		alive, connected, hold, median(perConn), slicesMin(perConn), maxOf(perConn))
	return nil
}

func slicesMin(xs []float64) float64 {
	lo, _ := minMax(xs)
	return lo
}

// buildChatServer builds examples/chat/server into a temporary directory.
func buildChatServer(e *env) (string, error) {
	dir, err := os.MkdirTemp("", "bench-chat-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "chat-server")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/msgtrans/msgtrans-go/examples/chat/server")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building the chat server: %v\n%s", err, out)
	}
	e.logf("cluster idle: built %s", bin)
	return bin, nil
}

// chatProc is a chat-server process.
type chatProc struct {
	cmd  *exec.Cmd
	addr string
}

// startChatServer runs the chat server as a node on NATS, on a free TCP
// port, and waits until it is ready.
func startChatServer(bin, natsURL string) (*chatProc, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := "tcp://" + l.Addr().String()
	_ = l.Close()
	cmd := exec.Command(bin, "-listen", addr, "-nats", natsURL, "-nats-prefix", "benchchat",
		"-max-conns", "20000", "-max-conns-per-ip", "20000", "-ping-interval", "-1s", "-log-level", "warn")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	// Its warnings and errors pass on to ours; it is ready once its port
	// takes connections.
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			fmt.Fprintln(os.Stderr, "chat-server:", sc.Text())
		}
		_, _ = io.Copy(io.Discard, stderr)
	}()
	p := &chatProc{cmd: cmd, addr: addr}
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", strings.TrimPrefix(addr, "tcp://"), time.Second)
		if err == nil {
			_ = c.Close()
			return p, nil
		}
		if time.Now().After(deadline) {
			p.stop()
			return nil, fmt.Errorf("chat server on %s not ready: %v", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// rss returns the process's resident set (VmRSS).
func (p *chatProc) rss() int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// stop ends the server (SIGTERM: it shuts down gracefully) and waits.
func (p *chatProc) stop() {
	_ = p.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		<-done
	}
}
