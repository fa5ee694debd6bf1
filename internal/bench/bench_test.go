package main

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"

	"github.com/msgtrans/msgtrans-go/internal/bench/gen/benchv1"
	"github.com/msgtrans/msgtrans-go/runtime"
	"github.com/msgtrans/msgtrans-go/wire"
)

// Micro-benchmarks of the typed layer's per-message work, with allocations:
// the sending side (marshal and packet encoding), the receiving side
// (packet decoding, ext header, unmarshal, handler), and whole typed
// exchanges over the in-memory transport (the runtime's dispatch and
// queues without sockets). CI runs each once (-benchtime=1x).

func benchPayload() *benchv1.Payload {
	return &benchv1.Payload{Seq: 12345, SentUnixNano: 1_700_000_000_000_000_000, Body: bytes.Repeat([]byte{'x'}, 64)}
}

// encodingCaller is a runtime.Caller that encodes what it is given as a
// session would before queueing it.
type encodingCaller struct{ buf []byte }

func (c *encodingCaller) Send(p *wire.Packet) error {
	var err error
	c.buf, err = wire.AppendPacket(c.buf[:0], p)
	return err
}

// Request encodes p and answers with an empty response.
func (c *encodingCaller) Request(_ context.Context, p *wire.Packet) (*wire.Packet, error) {
	return &wire.Packet{Type: wire.Response}, c.Send(p)
}

// routeTable is a runtime.Registrar that keeps the handlers by route.
type routeTable map[uint32]runtime.Handler

func (r routeTable) HandleMethod(m *runtime.Method, h runtime.Handler) { r[m.Route()] = h }

func (r routeTable) HandleStream(*runtime.Method, runtime.StreamHandler) {}

// nopHandler implements the BenchService without pushing anything.
type nopHandler struct {
	benchv1.UnimplementedBenchServiceHandler
}

func (nopHandler) Echo(context.Context, *runtime.Session, *benchv1.EchoRequest) error { return nil }

func (nopHandler) Call(_ context.Context, _ *runtime.Session, req *benchv1.CallRequest) (*benchv1.CallResponse, error) {
	return &benchv1.CallResponse{Payload: req.Payload}, nil
}

// BenchmarkTypedSend is the sending side of a typed one-way message:
// proto.Marshal, ext header and packet encoding.
func BenchmarkTypedSend(b *testing.B) {
	c := &encodingCaller{}
	client := benchv1.NewBenchServiceClient(c)
	req := &benchv1.EchoRequest{Payload: benchPayload()}
	b.ReportAllocs()
	for b.Loop() {
		if err := client.Echo(context.Background(), req); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(len(c.buf)))
}

// encodedEcho returns the wire bytes of a typed Echo message.
func encodedEcho(b *testing.B) []byte {
	c := &encodingCaller{}
	if err := benchv1.NewBenchServiceClient(c).Echo(context.Background(), &benchv1.EchoRequest{Payload: benchPayload()}); err != nil {
		b.Fatal(err)
	}
	return c.buf
}

// BenchmarkTypedReceive is the receiving side of a typed one-way message:
// packet and ext-header decoding, route lookup, proto.Unmarshal and the
// handler call.
func BenchmarkTypedReceive(b *testing.B) {
	enc := encodedEcho(b)
	routes := routeTable{}
	benchv1.RegisterBenchServiceHandler(routes, nopHandler{})
	ctx := context.Background()
	b.SetBytes(int64(len(enc)))
	b.ReportAllocs()
	for b.Loop() {
		p, _, err := wire.ParsePacket(enc, wire.Limits{})
		if err != nil {
			b.Fatal(err)
		}
		ext, err := wire.ParseExt(p.Ext)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := routes[ext.Route].ServePacket(ctx, nil, &p); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkTypedUnaryHandler is the server's work for a typed call besides
// I/O: decoding the request, the handler, encoding the response.
func BenchmarkTypedUnaryHandler(b *testing.B) {
	c := &encodingCaller{}
	if _, err := benchv1.NewBenchServiceClient(c).Call(context.Background(), &benchv1.CallRequest{Payload: benchPayload()}); err != nil {
		b.Fatal(err)
	}
	enc := c.buf
	routes := routeTable{}
	benchv1.RegisterBenchServiceHandler(routes, nopHandler{})
	ctx := context.Background()
	out := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		p, _, err := wire.ParsePacket(enc, wire.Limits{})
		if err != nil {
			b.Fatal(err)
		}
		ext, err := wire.ParseExt(p.Ext)
		if err != nil {
			b.Fatal(err)
		}
		resp, err := routes[ext.Route].ServePacket(ctx, nil, &p)
		if err != nil {
			b.Fatal(err)
		}
		resp.Type, resp.MessageID = wire.Response, p.MessageID
		if out, err = wire.AppendPacket(out[:0], resp); err != nil {
			b.Fatal(err)
		}
	}
}

var memServers atomic.Int64

// memPair starts a msgtrans server with the bench service on the in-memory
// transport and connects a client.
func memPair(b *testing.B, events *eventsHandler) (*benchv1.BenchServiceClient, func()) {
	quiet := runtime.WithLogger(slog.New(slog.DiscardHandler))
	srv, err := runtime.NewServer(quiet)
	if err != nil {
		b.Fatal(err)
	}
	push := benchv1.NewBenchEventsServicePusher(srv)
	benchv1.RegisterBenchServiceHandler(srv, &benchServer{push: push})
	addr := fmt.Sprintf("mem://bench-%d", memServers.Add(1))
	if err := srv.Listen(context.Background(), addr); err != nil {
		b.Fatal(err)
	}
	c, err := runtime.Dial(context.Background(), addr, quiet, runtime.WithoutReconnect())
	if err != nil {
		srv.Close()
		b.Fatal(err)
	}
	benchv1.RegisterBenchEventsServiceHandler(c, events)
	return benchv1.NewBenchServiceClient(c), func() {
		_ = c.Close()
		_ = srv.Close()
	}
}

// BenchmarkDispatchEchoMem is a typed one-way message echoed back by the
// generated handler and pusher over the in-memory transport, pipelined: the
// whole typed path both ways, without sockets.
func BenchmarkDispatchEchoMem(b *testing.B) {
	const window = 256
	back := make(chan struct{}, window)
	client, done := memPair(b, &eventsHandler{echoed: func(*benchv1.Payload) { back <- struct{}{} }})
	defer done()
	req := &benchv1.EchoRequest{Payload: benchPayload()}
	ctx := context.Background()
	inflight := 0
	b.ReportAllocs()
	for b.Loop() {
		if inflight == window {
			<-back
			inflight--
		}
		if err := client.Echo(ctx, req); err != nil {
			b.Fatal(err)
		}
		inflight++
	}
	for ; inflight > 0; inflight-- {
		<-back
	}
}

// BenchmarkDispatchCallMem is one typed call at a time over the in-memory
// transport.
func BenchmarkDispatchCallMem(b *testing.B) {
	client, done := memPair(b, &eventsHandler{})
	defer done()
	req := &benchv1.CallRequest{Payload: benchPayload()}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := client.Call(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
}
