package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/msgtrans/msgtrans-go/internal/bench/gen/benchv1"
	"github.com/msgtrans/msgtrans-go/runtime"
)

// The stream scenario: each of 16 connections (the throughput scenario's
// count) carries one server stream; its client asks BenchService.Stream for
// messages without end, and the server sends them as fast as flow control
// lets it. The metric is messages received by the clients per second, all
// streams together. Measured on each transport in the same round:
//
//   - msgtrans: the msgtrans stream at the default window (32 messages);
//   - msgtrans-w256: the same with a window of 256 messages (what the
//     throughput scenario keeps in flight per connection);
//   - echo: the throughput scenario's echo of one-way messages (measureEcho)
//     over msgtrans. An echo counts once, when it reaches its client, though
//     it crossed the connection twice: both metrics count the messages a
//     client receives;
//   - grpc (tcp only): gRPC-Go's server stream of the same messages, one
//     stream per connection too.
//
// The streams also report the CPU time the process (both ends) spent per
// message received, cpu_ns_per_msg: what a message costs whether or not
// flow control kept the cores busy. The CPU profile (-cpuprofile) covers
// the msgtrans stream at the default window only.

const (
	streamConns     = throughputConns
	streamBigWindow = 256
	// maxStreamBody caps the body a stream request may ask for.
	maxStreamBody = 1 << 20
)

// Implementations of the stream scenario besides msgtrans and grpc.
const (
	implStreamEcho = "echo"
	implStreamW256 = "msgtrans-w256"
)

// streamImpls are the implementations run over each transport, in the order
// they run in a round.
var streamImpls = map[string][]string{
	"tcp":  {implMsgtrans, implStreamW256, implStreamEcho, "grpc"},
	"ws":   {implMsgtrans, implStreamW256, implStreamEcho},
	"quic": {implMsgtrans, implStreamW256, implStreamEcho},
}

func runStream(e *env) error {
	d := e.phase(time.Second, 400*time.Millisecond)
	for round := 1; round <= e.opt.rounds; round++ {
		for _, tr := range e.transports(allTransports...) {
			for _, impl := range streamImpls[tr] {
				var m streamMeasure
				var err error
				if impl == implStreamEcho {
					m.rate, m.io, err = measureEcho(e.unprofiled(), tr, implMsgtrans, d)
				} else {
					m, err = measureStream(e, tr, impl, d)
				}
				if err != nil {
					return fmt.Errorf("%s %s: %w", tr, impl, err)
				}
				e.logf("stream round %d/%d %-4s %-13s %12.0f msg/s", round, e.opt.rounds, tr, impl, m.rate)
				e.add(tr, impl, "msg_per_s", "msg/s", m.rate)
				if m.cpu > 0 {
					e.add(tr, impl, "cpu_ns_per_msg", "ns", m.cpu)
				}
				e.addSyscalls(tr, impl, "msg", m.io)
			}
		}
	}
	return nil
}

// unprofiled returns a copy of e whose measurements are not profiled: the
// echo measured beside the stream is msgtrans too, and the profile is the
// stream's.
func (e *env) unprofiled() *env {
	c := *e
	c.prof = &profiler{}
	return &c
}

// Stream implements BenchService.Stream for msgtrans servers.
func (b *benchServer) Stream(_ context.Context, _ *runtime.Session, req *benchv1.StreamRequest, st *runtime.ServerStream[benchv1.StreamResponse]) error {
	return streamMessages(req, st.Send)
}

// streamMessages sends what req asks for through send until send fails:
// the msgtrans and gRPC handlers share it, so both build each message the
// same way (a new message, the time, a body shared by the whole stream).
func streamMessages(req *benchv1.StreamRequest, send func(*benchv1.StreamResponse) error) error {
	body := bytes.Repeat([]byte{'x'}, int(min(req.BodySize, maxStreamBody)))
	for seq := uint64(0); req.Count == 0 || seq < req.Count; seq++ {
		m := &benchv1.StreamResponse{Payload: &benchv1.Payload{Seq: seq, SentUnixNano: time.Now().UnixNano(), Body: body}}
		if err := send(m); err != nil {
			return err
		}
	}
	return nil
}

// streamSetup is a server and the streams its clients opened.
type streamSetup struct {
	stopping atomic.Bool
	failed   atomic.Pointer[error]
	closers  cleanups
}

// read counts the messages of one stream with onMsg until recv fails; a
// failure before the measurement ends is the setup's error.
func (s *streamSetup) read(recv func() error, onMsg func(), done chan<- struct{}) {
	defer close(done)
	for {
		err := recv()
		if err == nil {
			onMsg()
			continue
		}
		if !s.stopping.Load() {
			s.fail(err)
		}
		return
	}
}

// fail records the first failure of a stream. (A function of its own so
// that the loop's err does not escape: one allocation per message.)
func (s *streamSetup) fail(err error) {
	if errors.Is(err, io.EOF) {
		err = errors.New("the stream ended early")
	}
	s.failed.CompareAndSwap(nil, &err)
}

// close ends the streams, then closes the clients and the server.
func (s *streamSetup) close() {
	s.stopping.Store(true)
	s.closers.run()
}

// err returns the first failure of a stream.
func (s *streamSetup) err() error {
	if p := s.failed.Load(); p != nil {
		return *p
	}
	return nil
}

// streamMeasure is what one measurement found.
type streamMeasure struct {
	rate float64 // messages received per second
	io   ioDelta // system calls made meanwhile, by both ends
	// cpu is the CPU time this process (both ends) spent per message
	// received, in nanoseconds: what a message costs whether or not flow
	// control kept the cores busy. 0 when not measured.
	cpu float64
}

// measureStream runs one stream measurement.
func measureStream(e *env, transport, impl string, d time.Duration) (streamMeasure, error) {
	var received atomic.Int64
	s, err := setupStreams(e, transport, impl, streamConns, func() { received.Add(1) })
	if err != nil {
		return streamMeasure{}, err
	}
	time.Sleep(d / 4) // warm-up
	e.prof.start(impl)
	io := startIO()
	cpu0 := processCPU()
	n0, t0 := received.Load(), time.Now()
	time.Sleep(d)
	n1, t1 := received.Load(), time.Now()
	cpu := processCPU() - cpu0
	io.stop(n1 - n0)
	e.prof.stop()
	s.close()
	if err := s.err(); err != nil {
		return streamMeasure{}, err
	}
	m := streamMeasure{rate: float64(n1-n0) / t1.Sub(t0).Seconds(), io: io}
	if cpu > 0 && n1 > n0 {
		m.cpu = float64(cpu.Nanoseconds()) / float64(n1-n0)
	}
	return m, nil
}

// processCPU returns the user and system CPU time this process has used, 0
// where it cannot be read.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// setupStreams starts a server of impl on the transport, connects n
// clients and opens one endless stream on each; onMsg is called for each
// message a client receives.
func setupStreams(e *env, transport, impl string, n int, onMsg func()) (*streamSetup, error) {
	ctx := context.Background()
	s := &streamSetup{}
	fail := func(err error) (*streamSetup, error) {
		s.close()
		return nil, err
	}
	req := &benchv1.StreamRequest{BodySize: uint32(len(e.body))}
	switch impl {
	case implMsgtrans, implStreamW256:
		window := runtime.DefaultStreamWindow
		if impl == implStreamW256 {
			window = streamBigWindow
		}
		srv, err := e.startMsgtrans(transport)
		if err != nil {
			return nil, err
		}
		s.closers.add(srv.close)
		for range n {
			c, err := runtime.Dial(ctx, srv.addr, runtime.WithTLS(e.certs.Client), runtime.WithLogger(e.log),
				runtime.WithoutReconnect(), runtime.WithStreamWindow(window))
			if err != nil {
				return fail(err)
			}
			s.closers.add(func() { _ = c.Close() })
			st, err := benchv1.NewBenchServiceClient(c).Stream(ctx, req)
			if err != nil {
				return fail(err)
			}
			done := make(chan struct{})
			go s.read(func() error { _, err := st.Recv(); return err }, onMsg, done)
			s.closers.add(func() { _ = st.Close(); <-done })
		}
	case "grpc":
		srv, err := startGRPC()
		if err != nil {
			return nil, err
		}
		s.closers.add(srv.close)
		for range n {
			cc, err := dialGRPC(ctx, srv.addr)
			if err != nil {
				return fail(err)
			}
			s.closers.add(func() { cc.Close() })
			sctx, cancel := context.WithCancel(ctx)
			st, err := grpcStream(sctx, cc, req)
			if err != nil {
				cancel()
				return fail(err)
			}
			done := make(chan struct{})
			go s.read(func() error { return st.RecvMsg(new(benchv1.StreamResponse)) }, onMsg, done)
			s.closers.add(func() { cancel(); <-done })
		}
	default:
		return nil, fmt.Errorf("no stream implementation %q", impl)
	}
	return s, nil
}
