package runtime

import (
	"errors"
	"fmt"
	"time"

	"github.com/msgtrans/msgtrans-go/wire"
)

// Observer receives what a server or client measures, for metrics. It is
// the one hook the metric adapters (Prometheus, OpenTelemetry) implement;
// set it with [WithObserver]. Without one the runtime pays a nil check at
// each place it would report something, and nothing else.
//
// How it is fed, cheapest first:
//
//   - Per-packet counts (packets and bytes in and out, writes, one-way
//     packets dropped by the rate limit, bytes queued, sessions open) are
//     never reported one by one. Each session keeps them in atomics of its
//     own; [Observer.Attach] hands the observer a [StatsSource] that sums
//     them, by side and transport, when it is called. Call it when scraped.
//   - Per-call measurements go to a [RouteObserver], the observer's handle
//     for one route (a typed method, or a raw biz_type), asked for once per
//     route by [Observer.Route] (when a handler is registered, or at a
//     route's first outbound call) and kept by the runtime. A handle should
//     hold its pre-resolved instruments (a Prometheus child, an OTel
//     attribute set), so that recording costs no lookup and no allocation.
//   - Events per connection, per broadcast and per cluster message are
//     reported to the Observer itself, with their labels as small values.
//
// Nothing is reported per session, user or group: no method gets a session
// id, an identity or a group name, so no adapter can label by them.
//
// Concurrency: every method may be called from many goroutines at once,
// and from a session's read goroutine, so none may block. An observer must
// be comparable (a pointer, typically): the runtime keeps route handles per
// observer. One observer may serve any number of servers and clients.
//
// Embed [BaseObserver] to implement only part of it: methods added to this
// interface later come with a no-op in BaseObserver.
type Observer interface {
	// Attach is called by [NewServer] and [NewClient], once for each
	// server or client built with the observer, with the source of its
	// running totals. The observer keeps src for good (a closed server's
	// totals stay, as counters must) and reads it when it is scraped.
	Attach(src StatsSource)
	// Route returns the handle for one route, or nil to record nothing of
	// it. It is called once per route and observer (when a handler is
	// registered, or at the route's first outbound call), possibly from
	// several goroutines; the runtime keeps the handle. Packets for routes
	// with no handler are not reported per route, so a peer cannot make an
	// observer grow a handle per route id it invents.
	Route(r Route) RouteObserver
	// ConnOpened reports a connection that became a session: accepted and
	// admitted under the caps (server), or connected (client).
	ConnOpened(c ConnInfo)
	// ConnClosed reports a session's end and why.
	ConnClosed(c ConnInfo, reason CloseReason)
	// ConnRefused reports a connection refused before it became a
	// session, or at its hello: over a cap, not authenticated, a
	// WebSocket origin not allowed, a transport handshake that timed out
	// or failed. Transport is "" when the listener does not say.
	ConnRefused(c ConnInfo, reason RefuseReason)
	// Broadcast reports a push to many sessions (a group, a user's
	// sessions, or all): the sessions of this process it was queued to
	// and how long queueing took. Pushes to one session are not reported
	// here (see [RouteObserver.Sent]).
	Broadcast(kind string, recipients int, d time.Duration)
	// ClusterPublished reports a push handed to the cluster ([Cluster]),
	// by target kind ("session", "group", "group_except", "all", "user"),
	// with its encoded size; ok is false when the cluster refused it.
	ClusterPublished(kind string, bytes int, ok bool)
	// ClusterReceived reports a push from another node delivered here,
	// with the local sessions it was queued to.
	ClusterReceived(kind string, recipients int)
}

// RouteObserver is an [Observer]'s handle for one route, from
// [Observer.Route]. Its methods are called on hot paths, from many
// goroutines at once; they must not block or allocate.
type RouteObserver interface {
	// Handled reports a request this side's handler served (the RPC
	// server role): its duration, from the request's dispatch until its
	// handler returned, and its status.
	Handled(d time.Duration, code Code)
	// Received reports a one-way message this side's handler took (a
	// message consumed), with the status its handler returned.
	Received(code Code)
	// Called reports a request this side made (the RPC client role),
	// answered or failed: the time until its response or failure, and its
	// status.
	Called(d time.Duration, code Code)
	// Sent reports a one-way message this side sent: a client's one-way
	// call, or a server's push (one per push, however many sessions it
	// reaches; see [Observer.Broadcast] for those).
	Sent()
	// StreamOpened reports a stream of the route opened: by this side
	// (accepted false) or by the peer and accepted here.
	StreamOpened(accepted bool)
	// StreamClosed reports such a stream's end, with its status.
	StreamClosed(accepted bool, code Code)
}

// BaseObserver implements every method of [Observer] and
// [RouteObserver] by doing nothing (Route returns nil). Embed it in an
// observer to implement only what it records.
type BaseObserver struct{}

// Attach does nothing.
func (BaseObserver) Attach(StatsSource) {}

// Route returns nil: the route is not recorded.
func (BaseObserver) Route(Route) RouteObserver { return nil }

// ConnOpened does nothing.
func (BaseObserver) ConnOpened(ConnInfo) {}

// ConnClosed does nothing.
func (BaseObserver) ConnClosed(ConnInfo, CloseReason) {}

// ConnRefused does nothing.
func (BaseObserver) ConnRefused(ConnInfo, RefuseReason) {}

// Broadcast does nothing.
func (BaseObserver) Broadcast(string, int, time.Duration) {}

// ClusterPublished does nothing.
func (BaseObserver) ClusterPublished(string, int, bool) {}

// ClusterReceived does nothing.
func (BaseObserver) ClusterReceived(string, int) {}

// Handled does nothing.
func (BaseObserver) Handled(time.Duration, Code) {}

// Received does nothing.
func (BaseObserver) Received(Code) {}

// Called does nothing.
func (BaseObserver) Called(time.Duration, Code) {}

// Sent does nothing.
func (BaseObserver) Sent() {}

// StreamOpened does nothing.
func (BaseObserver) StreamOpened(bool) {}

// StreamClosed does nothing.
func (BaseObserver) StreamClosed(bool, Code) {}

// WithObserver sets the observer that the server or client reports its
// measurements to (see [Observer]); the metric adapters provide one.
// Default none. An observer that is not comparable fails the option.
func WithObserver(o Observer) Option {
	return option{"WithObserver", func(c *config) { c.observer = o }}
}

// Side says which end of connections a server or client is.
type Side uint8

// The sides.
const (
	SideServer Side = iota + 1
	SideClient
)

// String returns "server" or "client".
func (s Side) String() string {
	switch s {
	case SideServer:
		return "server"
	case SideClient:
		return "client"
	}
	return fmt.Sprintf("side(%d)", uint8(s))
}

// Route names what a [RouteObserver] records: a typed method, or (Method
// nil) the raw packets of a biz_type.
type Route struct {
	Side    Side    // the side that registered or calls the route
	Method  *Method // nil for a raw route
	BizType uint8   // a raw route's biz_type
}

// Name returns the route's name as RPC metrics label it (rpc.method):
// "pkg.Service/Method" for a typed method, "biz/N" for a raw biz_type.
func (r Route) Name() string {
	if r.Method != nil {
		if svc := r.Method.Service(); svc != "" {
			return svc + "/" + r.Method.Name()
		}
		return r.Method.FullName()
	}
	return fmt.Sprintf("biz/%d", r.BizType)
}

// ConnInfo describes a connection to an [Observer]: the side and the
// transport's URL scheme ("tcp", "ws", "quic", …).
type ConnInfo struct {
	Side      Side
	Transport string
}

// CloseReason classifies why a session ended, for metrics.
type CloseReason string

// The close reasons.
const (
	CloseLocal            CloseReason = "local"             // closed by this side (Close, CloseSession)
	ClosePeer             CloseReason = "peer"              // the peer closed the connection
	CloseShutdown         CloseReason = "shutdown"          // the server shut down (its side), or said it is going away (the client's)
	CloseSlowConsumer     CloseReason = "slow_consumer"     // the send queue overflowed or a write timed out
	CloseHeartbeatTimeout CloseReason = "heartbeat_timeout" // the peer went silent
	CloseRateLimited      CloseReason = "rate_limited"      // over the rate limit repeatedly, or the ping-flood rule
	CloseRefused          CloseReason = "refused"           // refused at its hello (see [RefuseUnauthenticated])
	CloseProtocolError    CloseReason = "protocol_error"    // the peer sent what is not valid msgtrans
	CloseError            CloseReason = "error"             // any other failure (a read or write error)
)

// CloseReasonOf classifies a session's close reason ([Session.Err], the
// [ConnectionClosed] event's Err).
func CloseReasonOf(err error) CloseReason {
	switch {
	case err == nil, errors.Is(err, ErrClosed):
		return CloseLocal
	case errors.Is(err, ErrPeerClosed):
		return ClosePeer
	case errors.Is(err, ErrServerShutdown), errors.Is(err, ErrGoAway):
		return CloseShutdown
	case errors.Is(err, ErrSlowConsumer):
		return CloseSlowConsumer
	case errors.Is(err, ErrHeartbeatTimeout):
		return CloseHeartbeatTimeout
	case errors.Is(err, ErrRateLimited), errors.Is(err, ErrPingFlood):
		return CloseRateLimited
	case errors.Is(err, ErrNotAuthenticated), errors.Is(err, errRefused):
		return CloseRefused
	case errors.Is(err, wire.ErrProtocol), errors.Is(err, wire.ErrTooLarge), errors.Is(err, wire.ErrTruncated):
		return CloseProtocolError
	}
	var e *Error
	if errors.As(err, &e) && e.Code == CodeUnauthenticated {
		return CloseRefused
	}
	return CloseError
}

// RefuseReason classifies why a connection was refused, for metrics.
type RefuseReason string

// The refusal reasons. Listeners report the transport's own
// ([TransportConfig.Refused]).
const (
	RefuseMaxConns         RefuseReason = "max_conns"         // WithMaxConnections reached
	RefuseMaxConnsPerIP    RefuseReason = "max_conns_per_ip"  // WithMaxConnectionsPerIP reached for the peer's host
	RefuseShuttingDown     RefuseReason = "shutting_down"     // the server is shutting down
	RefuseUnauthenticated  RefuseReason = "unauthenticated"   // the authenticator refused the hello
	RefuseOrigin           RefuseReason = "origin"            // a WebSocket Origin not allowed (WithAllowedOrigins)
	RefuseHandshakeTimeout RefuseReason = "handshake_timeout" // the transport handshake took longer than WithHandshakeTimeout
	RefuseHandshakeFailed  RefuseReason = "handshake_failed"  // the transport handshake failed (TLS, WebSocket upgrade, QUIC stream)
	RefuseMaxHandshakes    RefuseReason = "max_handshakes"    // WithMaxHandshakes handshakes were in progress
)
