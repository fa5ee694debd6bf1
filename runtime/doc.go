// Package runtime is the core of msgtrans-go: sessions, groups and pushes,
// the [Server] and [Client], request correlation, typed errors, options,
// the typed layer generated code calls, and the packet-level [Transport]
// interface that the TCP, WebSocket and QUIC adapters implement. The wire
// format itself lives in package wire.
//
// The name follows grpc-gateway's runtime package; programs that also need
// the standard library's runtime import this one under another name.
//
// # Serving
//
// A [Server] listens on any mix of transports by URL ("tcp://", "tls://",
// "ws://", "wss://", "quic://", or any registered scheme) and runs the same
// handlers for all of them:
//
//	srv, err := runtime.NewServer(runtime.WithTLS(tlsConfig))
//	srv.Handle(1, runtime.HandlerFunc(func(ctx context.Context, s *runtime.Session, p *wire.Packet) (*wire.Packet, error) {
//		return p.Reply(p.Payload), nil
//	}))
//	err = srv.Serve(ctx, "tcp://0.0.0.0:7001", "ws://0.0.0.0:7002/ws", "quic://0.0.0.0:7003")
//
// Each connection is a [Session]. Sends never block: packets are queued and
// one writer per session flushes each drained batch with as few system
// calls as the transport allows. [Server.Push] sends to a [Target] (a
// session by id, a group, a group but one session, everyone), encoding the
// packet once and queueing the same bytes to every recipient. A session
// whose queue exceeds its byte bound is closed as a slow consumer.
//
// An idle session holds no goroutine on Linux (tcp://, tls://, ws://): once
// its reader has waited [WithIdleParking] (500 ms by default) with nothing
// to read, the session is parked and one poller per server wakes it up
// when its socket is readable, on the server's pool of goroutines. Busy
// sessions never park; heartbeats, deadlines and limits hold for parked
// ones as for others.
//
// # Dialing
//
// [Dial] picks the transport from the address alone and reconnects with
// exponential backoff and jitter when the connection drops:
//
//	c, err := runtime.Dial(ctx, "quic://127.0.0.1:7003", runtime.WithTLS(clientTLS))
//	resp, err := c.Request(ctx, wire.NewRequest(1, []byte("ping")))
//
// Transports register themselves when their package is imported; import
// github.com/msgtrans/msgtrans-go/transports/all to have every one.
//
// # Metrics
//
// [WithObserver] reports what a server or client measures to an
// [Observer]: traffic by transport (kept in per-session atomics and summed
// when read), calls by route with their duration and status, connections
// opened, closed and refused with their reasons, broadcasts, the cluster,
// streams. It is nil by default. The adapters live in their own packages
// (observe/promobserve for Prometheus); docs/observability.md lists the
// metrics. [Server.Ready] answers readiness probes.
//
// # Files
//
// A packet's way in runs one way through the files: reader.go (the read
// loop, into a pooled inbound: inbound.go), slots.go (request slots, and
// reading ahead while waiting for one), dispatch.go (rate limit,
// authentication, decompression and the handler, with auth.go,
// ratelimit.go and control.go deciding and dispatch.go acting), serve.go
// (running the handler and answering), and pending.go for responses. Its
// way out: writer.go (queue and writer) for one session, fanout.go for
// pushes. docs/architecture.md has the map.
package runtime
