package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/pprof/profile"
	"google.golang.org/protobuf/proto"

	"github.com/msgtrans/msgtrans-go/internal/bench/gen/benchv1"
	"github.com/msgtrans/msgtrans-go/internal/testcert"
	"github.com/msgtrans/msgtrans-go/runtime"
	_ "github.com/msgtrans/msgtrans-go/transports/all"
)

// env is what a scenario runs with: the options, the report it adds to, and
// shared helpers.
type env struct {
	opt      options
	rep      *report
	log      *slog.Logger
	stderr   io.Writer
	scenario string
	start    time.Time
	prof     *profiler
	certs    testcert.Pair
	body     []byte
}

func newEnv(o options, w io.Writer) *env {
	stderr := &syncWriter{w: w}
	return &env{
		opt:    o,
		rep:    newReport(),
		log:    newLogger(stderr, o.verbose),
		stderr: stderr,
		start:  time.Now(),
		prof:   &profiler{path: o.cpuprofile, impl: o.profImpl},
		certs:  testcert.New(),
		body:   bytes.Repeat([]byte{'x'}, o.body),
	}
}

// logf prints a progress line to stderr.
func (e *env) logf(format string, args ...any) {
	fmt.Fprintf(e.stderr, "[%6.1fs] %s\n", time.Since(e.start).Seconds(), fmt.Sprintf(format, args...))
}

// transports returns the transports to run among those the scenario
// supports, as selected by -transport.
func (e *env) transports(supported ...string) []string {
	if len(e.opt.transports) == 0 {
		return supported
	}
	var out []string
	for _, t := range supported {
		if slices.Contains(e.opt.transports, t) {
			out = append(out, t)
		}
	}
	return out
}

// pick returns quick with -quick and normal otherwise.
func pick[T any](e *env, normal, quick T) T {
	if e.opt.quick {
		return quick
	}
	return normal
}

// phase returns the length of a measured phase: -duration when given, else
// the scenario's default (normal, or quick with -quick).
func (e *env) phase(normal, quick time.Duration) time.Duration {
	if e.opt.duration > 0 {
		return e.opt.duration
	}
	return pick(e, normal, quick)
}

// add records one round's value for the current scenario.
func (e *env) add(transport, impl, metric, unit string, v float64) {
	e.rep.add(e.scenario, transport, impl, metric, unit, v)
}

// payload returns a benchmark message body.
func (e *env) payload(seq uint64) *benchv1.Payload {
	return &benchv1.Payload{Seq: seq, SentUnixNano: time.Now().UnixNano(), Body: e.body}
}

// listenURL is where a msgtrans server listens for a transport.
func listenURL(transport string) string {
	switch transport {
	case "ws":
		return "ws://127.0.0.1:0/ws"
	case "quic":
		return "quic://127.0.0.1:0"
	}
	return "tcp://127.0.0.1:0"
}

// benchServer implements the BenchService for msgtrans servers.
type benchServer struct {
	benchv1.UnimplementedBenchServiceHandler
	push  *benchv1.BenchEventsServicePusher
	beats atomic.Int64
}

func (b *benchServer) Echo(ctx context.Context, s *runtime.Session, req *benchv1.EchoRequest) error {
	_, err := b.push.SendEchoed(ctx, s.Target(), &benchv1.EchoedRequest{Payload: req.Payload})
	return err
}

func (b *benchServer) Call(_ context.Context, _ *runtime.Session, req *benchv1.CallRequest) (*benchv1.CallResponse, error) {
	return &benchv1.CallResponse{Payload: req.Payload}, nil
}

func (b *benchServer) Beat(context.Context, *runtime.Session, *benchv1.BeatRequest) error {
	b.beats.Add(1)
	return nil
}

// benchMaxConns is the connection cap of the servers under test: above
// anything the scenarios open.
const benchMaxConns = 50000

// mtServer is a msgtrans server serving the BenchService on one transport.
type mtServer struct {
	srv     *runtime.Server
	addr    string
	handler *benchServer
	push    *benchv1.BenchEventsServicePusher
}

// startMsgtrans starts a msgtrans server on the transport with the default
// options (plus a certificate and the tool's logger) and any extra ones.
func (e *env) startMsgtrans(transport string, extra ...runtime.ServerOption) (*mtServer, error) {
	opts := append([]runtime.ServerOption{
		runtime.WithTLS(e.certs.Server), runtime.WithLogger(e.log),
		// Every benchmark client comes from 127.0.0.1, up to the 19,000 the
		// file limit allows: raise the connection caps above that.
		runtime.WithMaxConnections(benchMaxConns), runtime.WithMaxConnectionsPerIP(benchMaxConns),
		// One connection carries up to about 100k calls a second here: keep
		// the per-session rate limit out of the measurement.
		runtime.WithRateLimit(10_000_000, 10_000_000),
	}, extra...)
	srv, err := runtime.NewServer(opts...)
	if err != nil {
		return nil, err
	}
	push := benchv1.NewBenchEventsServicePusher(srv)
	h := &benchServer{push: push}
	benchv1.RegisterBenchServiceHandler(srv, h)
	if err := srv.Listen(context.Background(), listenURL(transport)); err != nil {
		return nil, err
	}
	return &mtServer{srv: srv, addr: srv.Addrs()[0], handler: h, push: push}, nil
}

func (s *mtServer) close() { _ = s.srv.Close() }

// dialMsgtrans connects a msgtrans client that does not reconnect.
func dialMsgtrans(ctx context.Context, addr string, tlsConf *tls.Config, log *slog.Logger) (*runtime.Client, error) {
	return runtime.Dial(ctx, addr, runtime.WithTLS(tlsConf), runtime.WithLogger(log), runtime.WithoutReconnect())
}

// eventsHandler implements the BenchEventsService on msgtrans clients by
// calling the functions it holds (nil ones do nothing).
type eventsHandler struct {
	echoed func(*benchv1.Payload)
	fanout func(*benchv1.Payload)
}

func (h *eventsHandler) Echoed(_ context.Context, req *benchv1.EchoedRequest) error {
	if h.echoed != nil {
		h.echoed(req.Payload)
	}
	return nil
}

func (h *eventsHandler) Fanout(_ context.Context, req *benchv1.FanoutRequest) error {
	if h.fanout != nil {
		h.fanout(req.Payload)
	}
	return nil
}

// cleanups are functions that undo a setup, run in the reverse order of
// their addition.
type cleanups []func()

func (c *cleanups) add(f func()) { *c = append(*c, f) }

func (c cleanups) run() {
	for i := len(c) - 1; i >= 0; i-- {
		c[i]()
	}
}

// marshal encodes m, panicking on failure (which a benchmark message cannot
// cause).
func marshal(m proto.Message) []byte {
	b, err := proto.Marshal(m)
	if err != nil {
		panic(err)
	}
	return b
}

// leafPool returns a pool trusting exactly the certificate whose DER is
// given: how a client process trusts the parent's throw-away certificate.
func leafPool(der []byte) (*x509.CertPool, error) {
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return pool, nil
}

// profiler records CPU profiles of one implementation's measurements
// (msgtrans unless -profile-impl says otherwise) and merges them into one
// file.
type profiler struct {
	path  string
	impl  string
	buf   bytes.Buffer
	on    bool
	parts []*profile.Profile
	mu    sync.Mutex
}

// start begins profiling when impl is the one profiled and -cpuprofile
// was given.
func (p *profiler) start(impl string) {
	if p.path == "" || impl != p.impl {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.buf.Reset()
	if err := pprof.StartCPUProfile(&p.buf); err == nil {
		p.on = true
	}
}

// stop ends a profile begun by start.
func (p *profiler) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.on {
		return
	}
	pprof.StopCPUProfile()
	p.on = false
	if prof, err := profile.Parse(bytes.NewReader(p.buf.Bytes())); err == nil {
		p.parts = append(p.parts, prof)
	}
}

// write merges the recorded profiles into the file.
func (p *profiler) write() error {
	if p.path == "" {
		return nil
	}
	if len(p.parts) == 0 {
		return fmt.Errorf("no %s measurement was profiled", p.impl)
	}
	merged, err := profile.Merge(p.parts)
	if err != nil {
		return err
	}
	f, err := os.Create(p.path)
	if err != nil {
		return err
	}
	if err := merged.Write(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// syncWriter serialises writes: progress lines, log records and child
// processes' error output share stderr.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// ioCounts returns the read and write system calls this process has made
// (syscr and syscw of /proc/self/io: read and write on sockets count, UDP's
// sendmsg and recvmsg do not), or zeros where that file is missing.
func ioCounts() (reads, writes int64) {
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return 0, 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ": ")
		if !ok {
			continue
		}
		n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		switch k {
		case "syscr":
			reads = n
		case "syscw":
			writes = n
		}
	}
	return reads, writes
}

// ioDelta is the system calls made during a measurement, and the
// operations it completed.
type ioDelta struct{ reads, writes, ops int64 }

func startIO() ioDelta {
	r, w := ioCounts()
	return ioDelta{reads: r, writes: w}
}

// stop turns the counts taken by startIO into differences.
func (d *ioDelta) stop(ops int64) {
	r, w := ioCounts()
	d.reads, d.writes, d.ops = r-d.reads, w-d.writes, ops
}

// addSyscalls records the read and write system calls per operation, for
// the transports whose system calls /proc/self/io counts.
func (e *env) addSyscalls(transport, impl, op string, d ioDelta) {
	if transport == "quic" || d.ops <= 0 {
		return
	}
	e.add(transport, impl, "read_syscalls_per_"+op, "", float64(d.reads)/float64(d.ops))
	e.add(transport, impl, "write_syscalls_per_"+op, "", float64(d.writes)/float64(d.ops))
}
