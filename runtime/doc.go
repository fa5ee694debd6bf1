// Package runtime is the core of msgtrans-go: the msgtrans wire format v1,
// sessions, groups and broadcast, the [Server] and [Client], request
// correlation, typed errors, options, and the packet-level [Transport]
// interface that the TCP, WebSocket and QUIC adapters implement.
//
// The name follows grpc-gateway's runtime package; programs that also need
// the standard library's runtime import this one under another name.
//
// # Packets
//
// Every message is a [Packet]: a 16-byte fixed header (version, compression,
// packet type, biz_type, message id, lengths, flags), an ext header and a
// payload. [AppendPacket] encodes without allocating; [ParsePacket] and the
// streaming [Decoder] decode, checking every declared length against
// [Limits] before allocating anything of that size.
//
// # Serving
//
// A [Server] listens on any mix of transports by URL ("tcp://", "tls://",
// "ws://", "wss://", "quic://", or any registered scheme) and runs the same
// handlers for all of them:
//
//	srv, err := runtime.NewServer(runtime.WithTLS(tlsConfig))
//	srv.Handle(1, runtime.HandlerFunc(func(ctx context.Context, s *runtime.Session, p *runtime.Packet) (*runtime.Packet, error) {
//		return p.Reply(p.Payload), nil
//	}))
//	err = srv.Serve(ctx, "tcp://0.0.0.0:7001", "ws://0.0.0.0:7002/ws", "quic://0.0.0.0:7003")
//
// Each connection is a [Session]. Sends never block: packets are queued and
// one writer per session flushes each drained batch with as few system
// calls as the transport allows. [Server.Broadcast] and [Server.SendGroup]
// encode a packet once and queue the same bytes to every recipient. A
// session whose queue exceeds its byte bound is closed as a slow consumer.
//
// # Dialing
//
// [Dial] picks the transport from the address alone and reconnects with
// exponential backoff and jitter when the connection drops:
//
//	c, err := runtime.Dial(ctx, "quic://127.0.0.1:7003", runtime.WithTLS(clientTLS))
//	resp, err := c.Request(ctx, runtime.NewRequest(1, []byte("ping")))
//
// Transports register themselves when their package is imported; import
// github.com/msgtrans/msgtrans-go/transports/all to have every one.
package runtime
