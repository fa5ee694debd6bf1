package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"google.golang.org/protobuf/proto"

	"github.com/msgtrans/msgtrans-go/internal/bench/gen/benchv1"
	"github.com/msgtrans/msgtrans-go/runtime"
)

// The clients process: scenarios with thousands of connections (broadcast,
// idle) run their clients in a second process, so that the server's memory
// and CPU are measured apart from theirs. The tool starts itself as
//
//	bench clients -impl msgtrans|raw|gorilla|nats|centrifuge -transport tcp|ws|quic -addr A -n N [-beat D]
//
// with the server's certificate in $BENCH_CERT (base64 DER) and talks to it
// over stdin and stdout, one line each way:
//
//	child:  PROGRESS <connected>                  while dialing
//	child:  READY <connected> <failed> [error]    all dials done
//	parent: RESET <expected deliveries>           child: OK
//	child:  DONE <deliveries> <last receipt, Unix ns> <p50 ns> <p99 ns>
//	        when the expected broadcast deliveries have arrived (or none came
//	        for a few seconds)
//	parent: QUIT (or end of input)                child: exits

const (
	clientsCommand = "clients"
	certEnv        = "BENCH_CERT"
)

// clientConn is one connection of the clients process.
type clientConn interface {
	beat(seq uint64) error
	alive() bool
}

func clientsMain(args []string) int {
	fs := flag.NewFlagSet(clientsCommand, flag.ContinueOnError)
	impl := fs.String("impl", implMsgtrans, "msgtrans, raw, gorilla, nats or centrifuge")
	transport := fs.String("transport", "tcp", "tcp, ws or quic")
	addr := fs.String("addr", "", "server address")
	n := fs.Int("n", 1000, "connections")
	conc := fs.Int("conc", 32, "concurrent dials")
	beat := fs.Duration("beat", 0, "send each connection's heartbeat this often (0: never)")
	stopOnError := fs.Bool("stop-on-error", false, "stop dialing at the first failure")
	local := fs.String("local", "", "comma-separated local `addresses` to connect from, taken in turn (msgtrans clients)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if err := raiseFileLimit(); err != nil {
		fmt.Fprintln(os.Stderr, "clients:", err)
	}
	out := &lineWriter{w: os.Stdout}
	tlsConf := &tls.Config{}
	if der, err := base64.StdEncoding.DecodeString(os.Getenv(certEnv)); err == nil && len(der) > 0 {
		pool, err := leafPool(der)
		if err != nil {
			fmt.Fprintln(os.Stderr, "clients:", err)
			return 1
		}
		tlsConf.RootCAs = pool
	}
	var locals []net.IP
	for _, a := range strings.Split(*local, ",") {
		if ip := net.ParseIP(strings.TrimSpace(a)); ip != nil {
			locals = append(locals, ip)
		} else if a != "" {
			fmt.Fprintf(os.Stderr, "clients: -local: %q is not an IP address\n", a)
			return 2
		}
	}
	localFor := func(i int) net.IP {
		if len(locals) == 0 {
			return nil
		}
		return locals[i%len(locals)]
	}
	rec := newRecorder(*n)
	// Only errors: the clients see their server go away at the end of
	// every measurement.
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))

	conns := make([]clientConn, *n)
	var connected, failed atomic.Int64
	var firstErr atomic.Pointer[error]
	next := atomic.Int64{}
	var wg sync.WaitGroup
	for range max(1, *conc) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				if *stopOnError && firstErr.Load() != nil {
					return
				}
				i := int(next.Add(1) - 1)
				if i >= *n {
					return
				}
				c, err := dialClient(*impl, *transport, *addr, tlsConf, log, localFor(i), func(p *benchv1.Payload) { rec.deliver(i, p) })
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, &err)
					continue
				}
				conns[i] = c
				if k := connected.Add(1); k%1000 == 0 {
					out.printf("PROGRESS %d", k)
				}
			}
		}()
	}
	wg.Wait()
	msg := ""
	if p := firstErr.Load(); p != nil {
		msg = " " + strings.ReplaceAll((*p).Error(), "\n", " ")
	}
	out.printf("READY %d %d%s", connected.Load(), failed.Load(), msg)

	if *beat > 0 {
		go heartbeats(conns, *beat)
	}
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		f := strings.Fields(in.Text())
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case "RESET":
			want, _ := strconv.ParseInt(f[1], 10, 64)
			rec.reset(want)
			out.printf("OK")
			go func() {
				d, last, p50, p99 := rec.wait(5 * time.Second)
				out.printf("DONE %d %d %d %d", d, last, p50, p99)
			}()
		case "ALIVE":
			alive := 0
			for _, c := range conns {
				if c != nil && c.alive() {
					alive++
				}
			}
			out.printf("ALIVE %d", alive)
		case "QUIT":
			return 0
		}
	}
	return 0
}

// heartbeats sends each connection's heartbeat once per interval, spread
// evenly over it: every 10 ms, the share of connections due.
func heartbeats(conns []clientConn, every time.Duration) {
	const tick = 10 * time.Millisecond
	perTick := max(1, int((int64(len(conns))*int64(tick)+int64(every)-1)/int64(every)))
	t := time.NewTicker(tick)
	defer t.Stop()
	next := 0
	for seq := uint64(0); ; seq++ {
		<-t.C
		for range perTick {
			if c := conns[next]; c != nil {
				_ = c.beat(seq)
			}
			next = (next + 1) % len(conns)
		}
	}
}

// dialClient connects one client of impl; deliver is called for each
// broadcast it receives.
func dialClient(impl, transport, addr string, tlsConf *tls.Config, log *slog.Logger, local net.IP, deliver func(*benchv1.Payload)) (clientConn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	switch impl {
	case implMsgtrans:
		c, err := runtime.NewClient(addr, runtime.WithTLS(tlsConf), runtime.WithLogger(log), runtime.WithoutReconnect(), runtime.WithLocalIP(local))
		if err != nil {
			return nil, err
		}
		benchv1.RegisterBenchEventsServiceHandler(c, &eventsHandler{fanout: deliver})
		if err := c.Connect(ctx); err != nil {
			return nil, err
		}
		return &mtClientConn{rc: c, c: benchv1.NewBenchServiceClient(c)}, nil
	case "raw":
		c, err := dialRaw(ctx, transport, addr, tlsConf)
		if err != nil {
			return nil, err
		}
		go func() {
			for {
				b, err := c.read()
				if err != nil {
					return
				}
				var m benchv1.FanoutRequest
				if proto.Unmarshal(b, &m) == nil && m.Payload != nil {
					deliver(m.Payload)
				}
			}
		}()
		return rawClientConn{c}, nil
	case "gorilla":
		ws, err := dialGorilla(ctx, addr, tunedReadBuffer, tunedWriteBuffer)
		if err != nil {
			return nil, err
		}
		go func() {
			for {
				if _, _, err := ws.NextReader(); err != nil {
					return
				}
			}
		}()
		return gorillaClientConn{ws}, nil
	case implNATS:
		return dialNATSSubscriber(ctx, addr, deliver)
	case implCentrifuge:
		return dialCentrifuge(ctx, addr, deliver)
	}
	return nil, fmt.Errorf("no client implementation %q", impl)
}

type mtClientConn struct {
	rc *runtime.Client
	c  *benchv1.BenchServiceClient
}

func (m *mtClientConn) beat(seq uint64) error {
	return m.c.Beat(context.Background(), &benchv1.BeatRequest{Seq: seq})
}

func (m *mtClientConn) alive() bool { return m.rc.Session() != nil }

type rawClientConn struct{ c *rawConn }

func (r rawClientConn) beat(seq uint64) error {
	return r.c.send(marshal(&benchv1.BeatRequest{Seq: seq}))
}

func (r rawClientConn) alive() bool { return true } // not tracked

type gorillaClientConn struct{ ws *websocket.Conn }

func (g gorillaClientConn) beat(seq uint64) error {
	return g.ws.WriteMessage(websocket.BinaryMessage, marshal(&benchv1.BeatRequest{Seq: seq}))
}

func (g gorillaClientConn) alive() bool { return true } // not tracked

// recorder counts broadcast deliveries and their latencies, per connection
// so that connections never contend.
type recorder struct {
	slots   []slot
	count   atomic.Int64
	expect  atomic.Int64
	reached chan struct{} // signalled when count reaches expect
}

type slot struct {
	mu   sync.Mutex
	lats []int64
	last int64
}

func newRecorder(n int) *recorder {
	r := &recorder{slots: make([]slot, n), reached: make(chan struct{}, 1)}
	r.expect.Store(-1)
	return r
}

func (r *recorder) deliver(i int, p *benchv1.Payload) {
	now := time.Now().UnixNano()
	s := &r.slots[i]
	s.mu.Lock()
	s.lats = append(s.lats, now-p.SentUnixNano)
	s.last = max(s.last, now)
	s.mu.Unlock()
	if r.count.Add(1) == r.expect.Load() {
		select {
		case r.reached <- struct{}{}:
		default:
		}
	}
}

func (r *recorder) reset(expect int64) {
	r.expect.Store(-1)
	for i := range r.slots {
		s := &r.slots[i]
		s.mu.Lock()
		s.lats, s.last = s.lats[:0], 0
		s.mu.Unlock()
	}
	select {
	case <-r.reached:
	default:
	}
	r.count.Store(0)
	r.expect.Store(expect)
}

// wait waits until the expected deliveries arrived, or none arrived for
// idle, and returns the deliveries, the last receipt time and the p50 and
// p99 latencies.
func (r *recorder) wait(idle time.Duration) (deliveries, last, p50, p99 int64) {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	seen, since := int64(-1), time.Now()
wait:
	for {
		select {
		case <-r.reached:
			break wait
		case <-tick.C:
			if c := r.count.Load(); c != seen {
				seen, since = c, time.Now()
			} else if time.Since(since) > idle {
				break wait
			}
		}
	}
	var all latencies
	for i := range r.slots {
		s := &r.slots[i]
		s.mu.Lock()
		for _, l := range s.lats {
			all = append(all, time.Duration(l))
		}
		last = max(last, s.last)
		s.mu.Unlock()
	}
	q := all.quantiles(50, 99)
	return int64(len(all)), last, int64(q[0]), int64(q[1])
}
