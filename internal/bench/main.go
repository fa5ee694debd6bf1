// Command bench measures msgtrans-go against baselines written with the same
// care (raw framing over the same transports, gRPC-Go, gorilla/websocket),
// interleaved in one invocation, several rounds each:
//
//	go -C internal/bench run . <scenario> [flags]
//
// Scenarios: throughput, rawpath, stream, unary, latency, broadcast, peers,
// slowconsumer, idle, cluster, connect (and all).
// It prints a table (median, min and max over the rounds), then one line per
// result and one per comparison:
//
//	RESULT scenario=<s> transport=<t> impl=<impl> metric=<m> value=<v>
//	RATIO scenario=<s> transport=<t> vs=<baseline> value=<msgtrans/baseline> metric=<m>
//
// Scenarios with many connections (broadcast, idle) run their clients in a
// second process: the tool runs itself with the hidden subcommand "clients"
// (see clients.go).
package main

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"syscall"
	"time"
)

// scenario is one named measurement.
type scenario struct {
	name string
	// about is the one-line description in the usage message.
	about string
	// transports are those the scenario can run over.
	transports []string
	run        func(e *env) error
}

// scenarios is the registry, in the order "all" runs them.
var scenarios = []scenario{
	{"throughput", "typed one-way messages echoed back, 16 connections, windowed", allTransports, runThroughput},
	{"rawpath", "raw biz_type packets echoed (no protobuf) vs raw framed bytes, 16 connections x 64 in flight", allTransports, runRawPath},
	{"stream", "server streams on 16 connections (window 32, 256) vs the echo and gRPC", allTransports, runStream},
	{"unary", "typed request/response with 16 and 256 concurrent callers", allTransports, runUnary},
	{"latency", "one call in flight: p50/p99/p99.9; then calls and (tcp) one-way echoes paced at 50% of the maximum", allTransports, runLatency},
	{"broadcast", "one server broadcast to 1,000 and 10,000 sessions in another process", allTransports, runBroadcast},
	{"peers", "vs NATS and Centrifuge: request/reply (16, 256 callers); broadcast to 1,000 and 10,000 subscribers", []string{"tcp", "ws"}, runPeers},
	{"slowconsumer", "broadcast to 1,000 sessions, alone and beside one that never reads", []string{"tcp", "ws"}, runSlowConsumer},
	{"idle", "server memory per idle connection (-max: the most held with heartbeats)", allTransports, runIdle},
	{"cluster", "group broadcast over 3 nodes vs 1, remote push vs local (-max: 100,000 idle conns on 6 chat nodes)", []string{"tcp"}, runCluster},
	{"connect", "connections established per second (dial + first round trip)", allTransports, runConnect},
}

var allTransports = []string{"tcp", "ws", "quic"}

// options are the command-line flags shared by every scenario.
type options struct {
	quick      bool
	rounds     int
	transports []string
	jsonPath   string
	cpuprofile string
	profImpl   string // the implementation -cpuprofile records
	body       int
	duration   time.Duration // 0: the scenario's default
	max        bool
	conns      int // 0: the scenario's default
	verbose    bool
	// parkCompare adds msgtrans with idle parking off (implNoPark) to
	// the throughput and unary rounds on tcp and ws.
	parkCompare bool
	// metricsCompare adds msgtrans with the Prometheus adapter (implProm)
	// to the throughput, unary and broadcast rounds.
	metricsCompare bool
}

func main() {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case clientsCommand:
			os.Exit(clientsMain(os.Args[2:]))
		case idleServerCommand:
			os.Exit(idleServerMain(os.Args[2:]))
		}
	}
	os.Exit(benchMain(os.Args[1:], os.Stdout, os.Stderr))
}

func benchMain(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		usage(stderr, nil)
		return 2
	}
	name := args[0]
	var torun []scenario
	for _, s := range scenarios {
		if s.name == name || name == "all" {
			torun = append(torun, s)
		}
	}
	if len(torun) == 0 {
		fmt.Fprintf(stderr, "bench: unknown scenario %q\n", name)
		usage(stderr, nil)
		return 2
	}
	fs := flag.NewFlagSet("bench "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	var transports string
	fs.BoolVar(&o.quick, "quick", false, "a short run: fewer rounds, shorter phases, fewer connections")
	fs.IntVar(&o.rounds, "rounds", 0, "rounds per measurement (default 3, 1 with -quick)")
	fs.StringVar(&transports, "transport", "", "comma-separated transports to run: tcp,ws,quic (default all)")
	fs.StringVar(&o.jsonPath, "json", "", "also write the results to this JSON file")
	fs.StringVar(&o.cpuprofile, "cpuprofile", "", "write a CPU profile of one implementation's measurements to this file")
	fs.StringVar(&o.profImpl, "profile-impl", implMsgtrans, "the implementation -cpuprofile records (msgtrans, raw, grpc, ...)")
	fs.IntVar(&o.body, "body", 64, "bytes in each message's body")
	fs.DurationVar(&o.duration, "duration", 0, "length of each measured phase (default per scenario)")
	fs.BoolVar(&o.max, "max", false, "idle: find the most connections held with heartbeats running")
	fs.IntVar(&o.conns, "conns", 0, "connections (idle, broadcast: the count to hold; default per scenario)")
	fs.BoolVar(&o.verbose, "v", false, "log the runtime's informational messages")
	fs.BoolVar(&o.parkCompare, "park-compare", false, "throughput, unary: also run msgtrans with idle parking off ("+implNoPark+"), alternated in each round")
	fs.BoolVar(&o.metricsCompare, "metrics-compare", false, "throughput, unary, broadcast: also run msgtrans with the Prometheus adapter on the server ("+implProm+"), alternated in each round")
	fs.Usage = func() { usage(stderr, fs) }
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "bench: unexpected arguments %q\n", fs.Args())
		return 2
	}
	if o.rounds <= 0 {
		o.rounds = 3
		if o.quick {
			o.rounds = 1
		}
	}
	if transports != "" {
		o.transports = strings.Split(transports, ",")
		for _, t := range o.transports {
			if !slices.Contains(allTransports, t) {
				fmt.Fprintf(stderr, "bench: unknown transport %q (want tcp, ws or quic)\n", t)
				return 2
			}
		}
	}
	if err := raiseFileLimit(); err != nil {
		fmt.Fprintf(stderr, "bench: %v\n", err)
	}

	e := newEnv(o, stderr)
	start := time.Now()
	failed := false
	for _, s := range torun {
		e.scenario = s.name
		e.logf("scenario %s: start", s.name)
		if err := s.run(e); err != nil {
			fmt.Fprintf(stderr, "bench: %s: %v\n", s.name, err)
			failed = true
		}
	}
	e.logf("done in %v", time.Since(start).Round(time.Millisecond))
	if err := e.rep.print(stdout); err != nil {
		fmt.Fprintf(stderr, "bench: %v\n", err)
		return 1
	}
	if o.jsonPath != "" {
		if err := e.rep.writeJSON(o.jsonPath); err != nil {
			fmt.Fprintf(stderr, "bench: %v\n", err)
			return 1
		}
	}
	if err := e.prof.write(); err != nil {
		fmt.Fprintf(stderr, "bench: cpu profile: %v\n", err)
		return 1
	}
	if failed {
		return 1
	}
	return 0
}

func usage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprintln(w, "usage: go -C internal/bench run . <scenario> [flags]")
	fmt.Fprintln(w, "\nscenarios:")
	for _, s := range scenarios {
		fmt.Fprintf(w, "  %-11s %s\n", s.name, s.about)
	}
	fmt.Fprintf(w, "  %-11s %s\n", "all", "every scenario in turn")
	if fs != nil {
		fmt.Fprintln(w, "\nflags:")
		fs.PrintDefaults()
	}
}

// raiseFileLimit raises the soft limit on open files to the hard limit.
func raiseFileLimit() error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("getrlimit: %w", err)
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			return fmt.Errorf("setrlimit: %w", err)
		}
	}
	return nil
}

// fileLimit returns the soft limit on open files.
func fileLimit() int {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 1024
	}
	return int(lim.Cur)
}

// newLogger returns the logger given to msgtrans servers and clients:
// warnings and errors to w (informational messages too with -v).
func newLogger(w io.Writer, verbose bool) *slog.Logger {
	level := slog.LevelWarn
	if verbose {
		level = slog.LevelInfo
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}
