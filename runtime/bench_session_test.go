package runtime_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"

	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/msgtrans/msgtrans-go/runtime"
	"github.com/msgtrans/msgtrans-go/wire"
)

// BenchmarkSendEncoded queues an already encoded packet: the cost of one
// recipient of a broadcast. It should not allocate.
func BenchmarkSendEncoded(b *testing.B) {
	f := newFixture(&testing.T{}, countCase, noRateLimit)
	defer f.srv.Close()
	c, err := runtime.Dial(context.Background(), f.addr)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	got := make(chan *wire.Packet, 1)
	c.Handle(bizNote, runtime.HandlerFunc(func(_ context.Context, _ *runtime.Session, p *wire.Packet) (*wire.Packet, error) {
		if p.Text() == "last" {
			got <- p
		}
		return nil, nil
	}))
	sess := (<-f.events).Session
	enc, _ := wire.AppendPacket(nil, wire.NewOneWay(bizNote, bytes.Repeat([]byte{'x'}, 64)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if err := sess.SendEncoded(enc); err != nil {
			b.Fatal(err)
		}
		if i%256 == 255 {
			// Let the writer keep up so that the queue bound is not hit.
			if _, err := c.Request(context.Background(), wire.NewRequest(99, nil)); runtime.CodeOf(err) != runtime.CodeUnimplemented {
				b.Fatal(err)
			}
		}
	}
	b.StopTimer()
	_ = sess.Send(wire.NewText(bizNote, "last"))
	<-got
}

// BenchmarkEcho measures pipelined one-way messages echoed back by a raw
// handler, over each network transport: messages per second both ways.
func BenchmarkEcho(b *testing.B) {
	for _, tc := range transportCases() {
		if tc.name == "mem" {
			continue
		}
		b.Run(tc.name, func(b *testing.B) {
			t := &testing.T{}
			f := newFixture(t, tc, noRateLimit)
			defer f.srv.Close()
			f.srv.Handle(bizNote, runtime.HandlerFunc(func(_ context.Context, s *runtime.Session, p *wire.Packet) (*wire.Packet, error) {
				return nil, s.Send(p)
			}))
			c, err := runtime.Dial(context.Background(), f.addr, runtime.WithTLS(f.certs.Client))
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			back := make(chan struct{}, 4096)
			c.Handle(bizNote, runtime.HandlerFunc(func(context.Context, *runtime.Session, *wire.Packet) (*wire.Packet, error) {
				back <- struct{}{}
				return nil, nil
			}))
			payload := bytes.Repeat([]byte{'x'}, 64)
			const window = 1024
			b.ReportAllocs()
			b.ResetTimer()
			sent, recvd := 0, 0
			for b.Loop() {
				for sent-recvd >= window {
					<-back
					recvd++
				}
				if err := c.Send(wire.NewOneWay(bizNote, payload)); err != nil {
					b.Fatal(err)
				}
				sent++
			}
			for recvd < sent {
				<-back
				recvd++
			}
			b.ReportMetric(float64(sent)/b.Elapsed().Seconds(), "msg/s")
		})
	}
}

// BenchmarkTypedUnary is one typed-equivalent request/response round trip at
// a time over TCP.
func BenchmarkUnaryTCP(b *testing.B) {
	for _, inflight := range []int{1, 16} {
		b.Run(fmt.Sprint("inflight=", inflight), func(b *testing.B) {
			f := newFixture(&testing.T{}, transportCases()[1], noRateLimit)
			defer f.srv.Close()
			f.srv.Handle(bizEcho, echo)
			c, err := runtime.Dial(context.Background(), f.addr)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			payload := bytes.Repeat([]byte{'x'}, 64)
			b.ReportAllocs()
			b.SetParallelism(inflight)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := c.Request(context.Background(), wire.NewRequest(bizEcho, payload)); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
		})
	}
}

// noRateLimit keeps the per-session rate limit out of the benchmarks.
var noRateLimit = runtime.WithRateLimit(1e9, 1e9)

// BenchmarkTypedUnaryTCP is a typed unary call (CallUnary to a handler
// made by NewUnaryHandler, the generated code's path) over TCP: allocs/op
// counts both sides, the messages protobuf makes included.
func BenchmarkTypedUnaryTCP(b *testing.B) {
	m := runtime.NewMethod("bench.v1.B.Echo", 0x1234, runtime.MethodUnary)
	for _, inflight := range []int{1, 16} {
		b.Run(fmt.Sprint("inflight=", inflight), func(b *testing.B) {
			f := newFixture(&testing.T{}, transportCases()[1], noRateLimit)
			defer f.srv.Close()
			f.srv.HandleMethod(m, runtime.NewUnaryHandler(func(_ context.Context, _ *runtime.Session, req *wrapperspb.BytesValue) (*wrapperspb.BytesValue, error) {
				return req, nil
			}))
			c, err := runtime.Dial(context.Background(), f.addr)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			req := wrapperspb.Bytes(bytes.Repeat([]byte{'x'}, 64))
			b.ReportAllocs()
			b.SetParallelism(inflight)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := runtime.CallUnary[wrapperspb.BytesValue](context.Background(), c, m, req); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
		})
	}
}
