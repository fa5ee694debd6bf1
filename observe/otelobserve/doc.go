// Package otelobserve traces and measures msgtrans-go servers and clients
// with OpenTelemetry (go.opentelemetry.io/otel).
//
//	otelAdapter, err := otelobserve.New(otelobserve.WithTracerProvider(tp), otelobserve.WithMeterProvider(mp))
//	srv, err := runtime.NewServer(otelAdapter.ServerOptions()...)
//	cli, err := runtime.Dial(ctx, addr, otelAdapter.ClientOptions()...)
//
// # Traces
//
// Every request gets a span on both sides: kind CLIENT where it is made
// (typed calls through generated clients and pushers), kind SERVER where
// its handler serves it, the server's the child of the client's, joined by
// the W3C trace context that travels in the request's ext header
// (docs/wire.md, "Trace context"). A one-way message gets a PRODUCER span
// where it is sent and a CONSUMER span where it is handled; a push gets one
// PRODUCER span however many sessions it reaches (each recipient's handler
// span is its child); a stream gets a CLIENT span on its opener's side and
// a SERVER span on its acceptor's.
//
// Span names are the method, "pkg.Service/Method" ("biz/N" for a raw
// biz_type), prefixed "send ", "process " or "push " for one-way messages.
// Attributes follow OpenTelemetry's semantic conventions (v1.43): for
// requests rpc.system.name "msgtrans", rpc.method, rpc.response.status_code
// (the runtime's code in upper case: "OK", "NOT_FOUND", …), server.address
// and server.port where the transport has them, and error.type on failure;
// for one-way messages and pushes messaging.system "msgtrans",
// messaging.operation.type and .name, messaging.destination.name (the
// method), and for pushes msgtrans.push.target (the kind of target) and
// msgtrans.push.recipients. A client span's status is Error on any failure;
// a server span's on the codes that say the server failed (unknown,
// deadline_exceeded, unimplemented, internal, unavailable, data_loss), not
// on those that blame the request (not_found, invalid_argument, …).
//
// A call that arrives with no trace context, or with one that does not
// parse, starts a new trace. Only the W3C trace context (traceparent,
// tracestate) travels; baggage does not. Raw calls ([runtime.Session.Request]
// with a packet of one's own) are not wrapped by call interceptors: their
// handlers' spans are, and [Inject] sends the caller's span along.
//
// # Metrics
//
// [Adapter.Observer] is a [runtime.Observer] recording (nothing labelled by
// session, user or group; attribute sets made once per method and status):
//
//   - rpc.server.call.duration, rpc.client.call.duration (histograms, s):
//     requests served and made, by rpc.system.name, rpc.method,
//     rpc.response.status_code.
//   - messaging.client.sent.messages: one-way messages sent
//     (messaging.operation.name "send") and pushes (operation "push", one
//     per push), by messaging.destination.name (the method).
//   - messaging.client.consumed.messages: one-way messages handled, with
//     error.type when the handler failed.
//   - msgtrans.streams.opened, msgtrans.streams.closed: by rpc.method,
//     msgtrans.stream.role (opener, acceptor) and, closed, the status.
//   - msgtrans.connections.opened, .closed, .refused: by msgtrans.side,
//     msgtrans.transport and (closed, refused) msgtrans.reason.
//   - msgtrans.broadcast.recipients, msgtrans.broadcast.duration
//     (histograms): pushes to many, by msgtrans.push.target.
//   - msgtrans.cluster.published (with msgtrans.result), .published.size,
//     .received, .received.recipients: pushes between cluster nodes.
//   - msgtrans.packets, msgtrans.io (bytes), msgtrans.writes,
//     msgtrans.dropped, msgtrans.sessions, msgtrans.queued.size: traffic
//     totals by side, transport and (packets, bytes) network.io.direction,
//     read from the runtime's counters when the metrics are collected.
package otelobserve
