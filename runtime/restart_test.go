package runtime_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/msgtrans/msgtrans-go/internal/testcert"
	"github.com/msgtrans/msgtrans-go/runtime"
	"github.com/msgtrans/msgtrans-go/wire"
)

// restartServerEnv, when set, makes the test binary a server process
// listening on the address it holds (see TestAbuseServerRestart), with the
// certificate and key in restartCertEnv and restartKeyEnv (PEM).
const (
	restartServerEnv = "MSGTRANS_RESTART_SERVER_ADDR"
	restartCertEnv   = "MSGTRANS_RESTART_SERVER_CERT"
	restartKeyEnv    = "MSGTRANS_RESTART_SERVER_KEY"
)

// TestAbuseServerRestart: the server process is killed (SIGKILL) under
// 1,000 connected clients (200 over QUIC) and started again on the same
// address, at once or after an outage, over TCP, WebSocket and QUIC. Every client reconnects by itself, with its default
// backoff, and is served again. The times the clients took to come back,
// from the kill, are logged; the test fails only if some client is not
// back within a minute.
func TestAbuseServerRestart(t *testing.T) {
	if addr := os.Getenv(restartServerEnv); addr != "" {
		serveUntilStdinCloses(addr)
		return
	}
	n := 1000
	if testing.Short() {
		n = 200
	}
	type restartCase struct {
		tc      transportCase
		clients int
		opts    []runtime.ClientOption
	}
	var cases []restartCase
	for _, tc := range abuseCases() {
		cases = append(cases, restartCase{tc, n, nil})
	}
	for _, tc := range transportCases() {
		if tc.name == "quic" {
			// No kernel tells a QUIC client that its server died: it learns
			// when it next sends, from the restarted server's stateless
			// reset. Its heartbeat interval bounds that wait (15 s by
			// default; 1 s here). QUIC connections are costly to set up,
			// hence fewer of them.
			cases = append(cases, restartCase{tc, n / 5, []runtime.ClientOption{runtime.WithHeartbeat(time.Second, 10*time.Second)}})
		}
	}
	for _, c := range cases {
		for _, outage := range []time.Duration{0, 3 * time.Second} {
			t.Run(fmt.Sprintf("%s/outage=%v", c.tc.name, outage), func(t *testing.T) {
				restartUnderClients(t, c.tc, c.clients, outage, c.opts...)
			})
		}
	}
}

func restartUnderClients(t *testing.T, tc transportCase, n int, outage time.Duration, opts ...runtime.ClientOption) {
	settled(t)
	addr := strings.Replace(tc.listen(t), ":0", ":"+freePort(t, tc.name), 1)
	certs := testcert.New()
	server := startServerProcess(t, addr, certs)

	back := make(chan int, n) // the index of each client reconnected
	clients := make([]*runtime.Client, n)
	for i := range clients {
		c, err := runtime.NewClient(addr, append([]runtime.ClientOption{
			runtime.WithTLS(certs.Client),
			runtime.WithLogger(slog.New(slog.DiscardHandler)),
			runtime.WithEventHandler(func(e runtime.Event) {
				if e.Kind == runtime.Reconnected {
					select {
					case back <- i:
					default: // a second reconnection: the first counts
					}
				}
			})}, opts...)...)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Connect(context.Background()); err != nil {
			t.Fatalf("client %d: %v", i, err)
		}
		defer c.Close()
		clients[i] = c
	}
	requestAll(t, clients)

	killed := time.Now()
	server.kill()
	<-time.After(outage)               // the server is down: not a synchronisation
	startServerProcess(t, addr, certs) // killed when the test ends
	down := time.Since(killed)

	delays := make([]time.Duration, 0, n)
	seen := make([]bool, n)
	timeout := time.After(time.Minute)
	for len(delays) < n {
		select {
		case i := <-back:
			if !seen[i] {
				seen[i] = true
				delays = append(delays, time.Since(killed))
			}
		case <-timeout:
			t.Fatalf("%d of %d clients reconnected within a minute of the restart", len(delays), n)
		}
	}
	requestAll(t, clients)
	slices.Sort(delays)
	t.Logf("%d clients over %s: server down %v; back after the kill: p50 %v, p99 %v, all %v",
		n, tc.name, down.Round(time.Millisecond), delays[n/2].Round(time.Millisecond),
		delays[n*99/100-1].Round(time.Millisecond), delays[n-1].Round(time.Millisecond))
}

// serverProcess is a server running in a child process.
type serverProcess struct {
	cmd  *exec.Cmd
	once sync.Once
}

// startServerProcess runs the test binary as a server on addr and waits
// until it listens. The process is killed when the test ends.
func startServerProcess(t *testing.T, addr string, certs testcert.Pair) *serverProcess {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestAbuseServerRestart$")
	cmd.Env = append(os.Environ(), restartServerEnv+"="+addr,
		restartCertEnv+"="+string(certs.CertPEM), restartKeyEnv+"="+string(certs.KeyPEM))
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
	p := &serverProcess{cmd: cmd}
	t.Cleanup(func() {
		_ = stdin.Close()
		p.kill()
	})
	said := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(out).ReadString('\n')
		said <- line
		_, _ = io.Copy(io.Discard, out)
	}()
	select {
	case line := <-said:
		if line != "listening\n" {
			p.kill()
			t.Fatalf("server process said %q", line)
		}
	case <-time.After(30 * time.Second):
		p.kill()
		t.Fatal("the server process did not start listening within 30s")
	}
	return p
}

// kill kills the process with SIGKILL, once, and reaps it.
func (p *serverProcess) kill() {
	p.once.Do(func() {
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
		_ = p.cmd.Wait()
	})
}

// serveUntilStdinCloses is the server process: it serves echo requests on
// addr until its standard input closes (its parent ended) or it is killed.
func serveUntilStdinCloses(addr string) {
	cert, err := tls.X509KeyPair([]byte(os.Getenv(restartCertEnv)), []byte(os.Getenv(restartKeyEnv)))
	if err != nil {
		fmt.Println("certificate:", err)
		os.Exit(3)
	}
	srv, err := runtime.NewServer(runtime.WithMaxConnectionsPerIP(5000), runtime.WithLogger(slog.New(slog.DiscardHandler)),
		runtime.WithTLS(&tls.Config{Certificates: []tls.Certificate{cert}}))
	if err == nil {
		err = srv.Listen(context.Background(), addr)
	}
	if err != nil {
		fmt.Println("listen:", err)
		os.Exit(3)
	}
	srv.Handle(bizEcho, echo)
	fmt.Println("listening")
	_, _ = io.Copy(io.Discard, os.Stdin)
	_ = srv.Close()
	os.Exit(0)
}

// freePort returns a loopback port, UDP for QUIC and TCP otherwise, that
// was free a moment ago.
func freePort(t *testing.T, transport string) string {
	t.Helper()
	if transport == "quic" {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return strconv.Itoa(c.LocalAddr().(*net.UDPAddr).Port)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

// requestAll has every client make an echo request, 64 at a time, and
// fails the test if any is not answered.
func requestAll(t *testing.T, clients []*runtime.Client) {
	t.Helper()
	sem := make(chan struct{}, 64)
	errs := make(chan error, len(clients))
	var wg sync.WaitGroup
	for i, c := range clients {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			want := strconv.Itoa(i)
			resp, err := c.Request(ctx, wire.NewRequest(bizEcho, []byte(want)))
			if err == nil && resp.Text() != want {
				err = fmt.Errorf("echo %q, want %q", resp.Text(), want)
			}
			if err != nil {
				errs <- fmt.Errorf("client %d: %w", i, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}
