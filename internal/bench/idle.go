package main

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"flag"
	"fmt"
	"os"
	goruntime "runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"
)

// The idle scenario: server memory per idle connection. The server runs in
// a process of its own (the hidden subcommand idle-server), fresh for each
// measurement, and the clients in another. The server measures its
// resident set (VmRSS) and its Go heap plus goroutine stacks (HeapInuse +
// StackInuse) after a GC, before and after the connections arrive, and
// divides the difference by their number. Baselines: a raw
// goroutine-per-connection TCP server and a plain gorilla server tuned for
// idle connections.
//
// With -max it instead finds the most connections one msgtrans server holds
// with every client sending a heartbeat (a typed one-way Beat) every few
// seconds: it dials up to 19,000 (the open-file limit allows no more) and
// holds them.

const idleServerCommand = "idle-server"

// idleSettle is how long the connections stay idle before the first
// sample (-quick: long enough for sessions to park, not for the pool's
// workers to exit).
func idleSettle(e *env) time.Duration { return pick(e, 5*time.Second, time.Second) }

// idleSetup is one server measured by the idle scenario.
type idleSetup struct{ transport, impl string }

var idleSetups = []idleSetup{
	{"tcp", implMsgtrans}, {"tcp", implNoPark}, {"ws", implMsgtrans}, {"ws", implNoPark}, {"quic", implMsgtrans},
	{"tcp", "raw"}, {"ws", "gorilla"},
}

func runIdle(e *env) error {
	if e.opt.max {
		return runIdleMax(e)
	}
	for _, s := range idleSetups {
		if len(e.transports(s.transport)) == 0 {
			continue
		}
		n := pick(e, 10000, 2000)
		if s.transport == "quic" {
			n = pick(e, 2000, 300)
		}
		if e.opt.conns > 0 {
			n = e.opt.conns
		}
		if err := measureIdle(e, s, n); err != nil {
			return fmt.Errorf("%s %s: %w", s.transport, s.impl, err)
		}
	}
	return nil
}

// idlePair is a server process and a clients process connected to it.
type idlePair struct {
	srv, clients *clientProc
	connected    int
}

// startIdlePair starts an idle server process for the setup and a clients
// process dialing n connections to it (with extra clients arguments), and
// waits until the server holds them.
func startIdlePair(e *env, s idleSetup, n int, extra ...string) (*idlePair, error) {
	srv, f, err := startChild(e, 30*time.Second, nil, idleServerCommand, "-impl", s.impl, "-transport", s.transport)
	if err != nil {
		return nil, err
	}
	pair := &idlePair{srv: srv}
	if len(f) < 3 {
		pair.close()
		return nil, fmt.Errorf("idle server: bad READY line %q", strings.Join(f, " "))
	}
	cert, _ := base64.StdEncoding.DecodeString(f[2])
	conc := 32
	if s.transport == "quic" {
		conc = 8
	}
	clientImpl := s.impl
	if clientImpl == implNoPark {
		clientImpl = implMsgtrans // the server differs, not its clients
	}
	args := append([]string{"-impl", clientImpl, "-transport", s.transport, "-addr", f[1], "-n", strconv.Itoa(n), "-conc", strconv.Itoa(conc)}, extra...)
	cp, rf, err := startChild(e, 300*time.Second, cert, clientsCommand, args...)
	if err != nil {
		pair.close()
		return nil, err
	}
	pair.clients = cp
	pair.connected, _ = strconv.Atoi(rf[1])
	if rf[2] != "0" {
		e.logf("clients: %s dials failed: %s", rf[2], strings.Join(rf[3:], " "))
	}
	if err := srv.send("WAIT " + strconv.Itoa(pair.connected)); err != nil {
		pair.close()
		return nil, err
	}
	cf, err := srv.expect("COUNT", 60*time.Second)
	if err != nil {
		pair.close()
		return nil, err
	}
	if c, _ := strconv.Atoi(cf[1]); c < pair.connected {
		e.logf("idle: the server holds %d of %d connections", c, pair.connected)
	}
	return pair, nil
}

// sample asks the server for its memory per connection.
func (p *idlePair) sample(n int) (memSample, error) {
	if err := p.srv.send("SAMPLE " + strconv.Itoa(n)); err != nil {
		return memSample{}, err
	}
	f, err := p.srv.expect("MEM", 30*time.Second)
	if err != nil {
		return memSample{}, err
	}
	return memSample{rss: atof(f[1]), heapStack: atof(f[2]), goroutines: atof(f[3]), stack: atof(f[4])}, nil
}

// close ends the server first (so that it does not log its clients'
// departure as errors), then the clients.
func (p *idlePair) close() {
	p.srv.quit()
	if p.clients != nil {
		p.clients.quit()
	}
}

func measureIdle(e *env, s idleSetup, n int) error {
	e.logf("idle %s %s: connecting %d clients", s.transport, s.impl, n)
	t0 := time.Now()
	p, err := startIdlePair(e, s, n)
	if err != nil {
		return err
	}
	defer p.close()
	e.logf("idle %s %s: %d connected in %v", s.transport, s.impl, p.connected, time.Since(t0).Round(time.Millisecond))
	// Idle for a while before sampling: the connection set-up's transient
	// goroutines and buffers go, sessions park (after 0.5 s idle), and the
	// pool's workers that read them exit (after 2-4 s without work).
	time.Sleep(idleSettle(e))
	for round := 1; round <= e.opt.rounds; round++ {
		d, err := p.sample(p.connected)
		if err != nil {
			return err
		}
		e.add(s.transport, s.impl, "heap_stack_bytes_per_conn", "B", d.heapStack)
		e.add(s.transport, s.impl, "stack_bytes_per_conn", "B", d.stack)
		e.add(s.transport, s.impl, "rss_bytes_per_conn", "B", d.rss)
		e.add(s.transport, s.impl, "goroutines_per_conn", "", d.goroutines)
		e.add(s.transport, s.impl, "conns", "", float64(p.connected))
		e.logf("idle round %d/%d %-4s %-8s %d conns: heap+stacks %6.0f B/conn (stacks %6.0f), rss %6.0f B/conn, %.2f goroutines/conn",
			round, e.opt.rounds, s.transport, s.impl, p.connected, d.heapStack, d.stack, d.rss, d.goroutines)
	}
	return nil
}

func runIdleMax(e *env) error {
	transports := []string{"tcp", "ws"}
	if len(e.opt.transports) > 0 {
		transports = e.opt.transports
	}
	for _, tr := range transports {
		target := 19000
		if tr == "quic" {
			target = 3000
		}
		if e.opt.conns > 0 {
			target = e.opt.conns
		}
		if limit := fileLimit() - 300; target > limit {
			e.logf("idle -max: the open-file limit %d allows %d connections", fileLimit(), limit)
			target = limit
		}
		if err := measureIdleMax(e, tr, target); err != nil {
			return fmt.Errorf("%s: %w", tr, err)
		}
	}
	return nil
}

func measureIdleMax(e *env, tr string, target int) error {
	beat := pick(e, 5*time.Second, 2*time.Second)
	hold := pick(e, 12*time.Second, 4*time.Second)
	e.logf("idle -max %s: dialing up to %d clients, heartbeat every %v", tr, target, beat)
	t0 := time.Now()
	p, err := startIdlePair(e, idleSetup{tr, implMsgtrans}, target, "-conc", "64", "-beat", beat.String(), "-stop-on-error")
	if err != nil {
		return err
	}
	defer p.close()
	e.logf("idle -max %s: %d connected in %v; holding for %v", tr, p.connected, time.Since(t0).Round(time.Millisecond), hold)
	if err := p.srv.send("HOLD " + hold.String()); err != nil {
		return err
	}
	f, err := p.srv.expect("HELD", hold+30*time.Second)
	if err != nil {
		return err
	}
	held, beatRate := int(atof(f[1])), atof(f[2])
	d, err := p.sample(held)
	if err != nil {
		return err
	}
	e.add(tr, implMsgtrans, "max_conns", "", float64(held))
	e.add(tr, implMsgtrans, "beats_per_s", "1/s", beatRate)
	e.add(tr, implMsgtrans, "max_heap_stack_bytes_per_conn", "B", d.heapStack)
	e.add(tr, implMsgtrans, "max_rss_bytes_per_conn", "B", d.rss)
	e.logf("idle -max %-4s held %d connections (%.0f heartbeats/s): heap+stacks %.0f B/conn, rss %.0f B/conn",
		tr, held, beatRate, d.heapStack, d.rss)
	return nil
}

// idleServerMain is the idle scenario's server process. It serves one
// implementation and answers the parent on stdin/stdout:
//
//	child:  READY <address> <certificate DER, base64>
//	parent: WAIT <n>         child: COUNT <connections> (once n, or after 30 s)
//	parent: SAMPLE <n>       child: MEM <rss> <heap+stacks> <goroutines> <stacks>, per connection over n
//	parent: HOLD <duration>  child: HELD <fewest connections seen> <heartbeats per second>
//	parent: QUIT
func idleServerMain(args []string) int {
	fs := flag.NewFlagSet(idleServerCommand, flag.ContinueOnError)
	impl := fs.String("impl", implMsgtrans, "msgtrans, raw or gorilla")
	transport := fs.String("transport", "tcp", "tcp, ws or quic")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if err := raiseFileLimit(); err != nil {
		fmt.Fprintln(os.Stderr, "idle-server:", err)
	}
	e := newEnv(options{}, os.Stderr)
	var (
		addr  string
		count func() int
		beats func() int64
		stop  func()
	)
	switch *impl {
	case implMsgtrans, implNoPark:
		srv, err := e.startMsgtrans(*transport, parkingOptions(*impl)...)
		if err != nil {
			fmt.Fprintln(os.Stderr, "idle-server:", err)
			return 1
		}
		addr, count, beats, stop = srv.addr, srv.srv.SessionCount, srv.handler.beats.Load, srv.close
	case "raw":
		srv, err := startRawIdle()
		if err != nil {
			fmt.Fprintln(os.Stderr, "idle-server:", err)
			return 1
		}
		addr, count, beats, stop = srv.addr, func() int { return int(srv.count.Load()) }, func() int64 { return 0 }, srv.close
	case "gorilla":
		srv, err := startTunedGorilla()
		if err != nil {
			fmt.Fprintln(os.Stderr, "idle-server:", err)
			return 1
		}
		addr, count, beats, stop = srv.addr, func() int { return int(srv.count.Load()) }, func() int64 { return 0 }, srv.close
	default:
		fmt.Fprintf(os.Stderr, "idle-server: no implementation %q\n", *impl)
		return 2
	}
	defer stop()
	before := sampleMem()
	out := &lineWriter{w: os.Stdout}
	out.printf("READY %s %s", addr, base64.StdEncoding.EncodeToString(e.certs.Server.Certificates[0].Certificate[0]))
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		f := strings.Fields(in.Text())
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case "WAIT":
			want, _ := strconv.Atoi(f[1])
			_ = waitCount(count, want, 30*time.Second)
			out.printf("COUNT %d", count())
		case "SAMPLE":
			n, _ := strconv.Atoi(f[1])
			d := sampleMem().sub(before, n)
			out.printf("MEM %.1f %.1f %.3f %.1f", d.rss, d.heapStack, d.goroutines, d.stack)
		case "HOLD":
			hold, _ := time.ParseDuration(f[1])
			held, b0, start := count(), beats(), time.Now()
			for time.Since(start) < hold {
				time.Sleep(250 * time.Millisecond)
				held = min(held, count())
			}
			out.printf("HELD %d %.1f", held, float64(beats()-b0)/time.Since(start).Seconds())
		case "QUIT":
			return 0
		}
	}
	return 0
}

// waitCount waits until count() reaches want.
func waitCount(count func() int, want int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for count() < want {
		if time.Now().After(deadline) {
			return fmt.Errorf("server has %d of %d connections after %v", count(), want, timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return nil
}

// memSample is the process's memory at one moment, or per connection.
type memSample struct {
	rss, heapStack, stack float64 // bytes
	goroutines            float64
}

// sampleMem collects garbage, returns freed memory to the system and
// samples.
func sampleMem() memSample {
	debug.FreeOSMemory()
	goruntime.GC()
	var ms goruntime.MemStats
	goruntime.ReadMemStats(&ms)
	return memSample{
		rss:        float64(rssBytes()),
		heapStack:  float64(ms.HeapInuse + ms.StackInuse),
		stack:      float64(ms.StackInuse),
		goroutines: float64(goruntime.NumGoroutine()),
	}
}

// sub returns (m - before) / n.
func (m memSample) sub(before memSample, n int) memSample {
	if n <= 0 {
		return memSample{}
	}
	k := float64(n)
	return memSample{(m.rss - before.rss) / k, (m.heapStack - before.heapStack) / k, (m.stack - before.stack) / k, (m.goroutines - before.goroutines) / k}
}

// rssBytes returns the resident set size from /proc/self/status (VmRSS).
func rssBytes() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range bytes.Split(b, []byte("\n")) {
		if rest, ok := bytes.CutPrefix(line, []byte("VmRSS:")); ok {
			f := bytes.Fields(rest)
			if len(f) > 0 {
				kb, _ := strconv.ParseInt(string(f[0]), 10, 64)
				return kb << 10
			}
		}
	}
	return 0
}

func atof(s string) float64 {
	v, _ := strconv.ParseFloat(s, 64)
	return v
}
