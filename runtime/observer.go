package runtime

import (
	"errors"
	"fmt"
	"reflect"
	"sync"
	"sync/atomic"
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

// StatsSource reads the running totals of one server or client (see
// [Observer.Attach]). It is safe for concurrent use; each call costs a
// walk over the open sessions.
type StatsSource interface {
	// Stats appends the totals, one [TransportStats] per transport that
	// has carried a session, to dst and returns it.
	Stats(dst []TransportStats) []TransportStats
}

// TransportStats are the totals of one server or client over one
// transport, since it was created. Counters only grow; Sessions and
// QueuedBytes are the values now.
type TransportStats struct {
	Side      Side
	Transport string

	PacketsIn  uint64 // packets read, control packets included
	BytesIn    uint64 // their encoded size, as on the wire (compressed payloads compressed)
	PacketsOut uint64 // packets written
	BytesOut   uint64 // their encoded size
	Writes     uint64 // write calls, each carrying one or more packets: PacketsOut/Writes is the mean batch
	Dropped    uint64 // one-way packets dropped by the rate limit (WithRateLimit)

	Sessions    int64 // sessions open now
	QueuedBytes int64 // bytes queued for writing now, over every open session
}

// Add adds o's counters and values (PacketsIn to QueuedBytes) to t's.
// t keeps its Side and Transport, whatever o's.
func (t *TransportStats) Add(o TransportStats) {
	t.PacketsIn += o.PacketsIn
	t.BytesIn += o.BytesIn
	t.PacketsOut += o.PacketsOut
	t.BytesOut += o.BytesOut
	t.Writes += o.Writes
	t.Dropped += o.Dropped
	t.Sessions += o.Sessions
	t.QueuedBytes += o.QueuedBytes
}

// SumTransportStats sums the entries of stats that share a Side and a
// Transport into one, as an observer does with the totals of several
// sources ([StatsSource.Stats] appends one entry per transport of one
// server or client). It returns one entry per (Side, Transport), in the
// order each pair first appears in stats.
//
// Like [slices.Compact], it works in place: the result shares stats'
// backing array, whose elements past the result's length are zeroed.
// Each entry is compared with the pairs found before it, which suits the
// few transports a process has.
func SumTransportStats(stats []TransportStats) []TransportStats {
	n := 0
next:
	for i := range stats {
		for j := range n {
			if stats[j].Side == stats[i].Side && stats[j].Transport == stats[i].Transport {
				stats[j].Add(stats[i])
				continue next
			}
		}
		stats[n] = stats[i]
		n++
	}
	clear(stats[n:])
	return stats[:n]
}

// observing is a server's or client's observer with what it keeps for it.
// A config without an observer has none (nil).
type observing struct {
	o    Observer
	side Side
	biz  [256]atomic.Pointer[routeHandle] // raw routes' handles, by biz_type

	mu     sync.Mutex
	closed map[string]*TransportStats // totals of ended sessions, by transport
	live   func(yield func(*Session)) // the open sessions
}

// routeHandle holds a RouteObserver that may be nil.
type routeHandle struct{ h RouteObserver }

// sessionStats are one session's counters, kept when an observer is set.
// The read goroutine writes the in-counters and the writer the out ones;
// a scrape reads them (see observing.Stats).
type sessionStats struct {
	packetsIn, bytesIn           atomic.Uint64
	packetsOut, bytesOut, writes atomic.Uint64
	retired                      bool // folded into observing.closed; guarded by observing.mu
}

func newObserving(o Observer, side Side, live func(yield func(*Session))) *observing {
	if o == nil {
		return nil
	}
	ob := &observing{o: o, side: side, closed: make(map[string]*TransportStats), live: live}
	o.Attach(ob)
	return ob
}

// checkObserver reports an observer the runtime cannot key handles by.
func checkObserver(o Observer) error {
	if o == nil {
		return nil
	}
	if !reflect.TypeOf(o).Comparable() {
		return fmt.Errorf("msgtrans: WithObserver: %T is not comparable; pass a pointer", o)
	}
	return nil
}

// Stats implements [StatsSource].
func (ob *observing) Stats(dst []TransportStats) []TransportStats {
	ob.mu.Lock()
	defer ob.mu.Unlock()
	start := len(dst)
	for _, t := range ob.closed {
		dst = append(dst, *t)
	}
	find := func(transport string) *TransportStats {
		for i := start; i < len(dst); i++ {
			if dst[i].Transport == transport {
				return &dst[i]
			}
		}
		dst = append(dst, TransportStats{Side: ob.side, Transport: transport})
		return &dst[len(dst)-1]
	}
	ob.live(func(sess *Session) {
		st := sess.stats
		if st == nil || st.retired {
			return
		}
		t := find(sess.scheme)
		t.addSession(st)
		t.Dropped += uint64(sess.dropped.Load())
		t.Sessions++
		t.QueuedBytes += int64(sess.Queued())
	})
	return dst
}

func (t *TransportStats) addSession(st *sessionStats) {
	t.PacketsIn += st.packetsIn.Load()
	t.BytesIn += st.bytesIn.Load()
	t.PacketsOut += st.packetsOut.Load()
	t.BytesOut += st.bytesOut.Load()
	t.Writes += st.writes.Load()
}

// opened starts counting a new session's traffic and reports it opened.
func (ob *observing) opened(sess *Session) {
	if ob == nil {
		return
	}
	ob.o.ConnOpened(ConnInfo{ob.side, sess.scheme})
}

// ended folds an ended session's counters into the totals and reports it
// closed with its reason.
func (ob *observing) ended(sess *Session, reason error) {
	if ob == nil {
		return
	}
	if st := sess.stats; st != nil {
		ob.mu.Lock()
		t := ob.closed[sess.scheme]
		if t == nil {
			t = &TransportStats{Side: ob.side, Transport: sess.scheme}
			ob.closed[sess.scheme] = t
		}
		t.addSession(st)
		t.Dropped += uint64(sess.dropped.Load())
		st.retired = true
		ob.mu.Unlock()
	}
	ob.o.ConnClosed(ConnInfo{ob.side, sess.scheme}, CloseReasonOf(reason))
}

// refused reports a refused connection.
func (ob *observing) refused(transport string, why RefuseReason) {
	if ob != nil {
		ob.o.ConnRefused(ConnInfo{ob.side, transport}, why)
	}
}

// method returns the handle for the typed method m, asking the observer
// the first time. nil: nothing to record.
func (ob *observing) method(m *Method) RouteObserver {
	if ob == nil || m == nil {
		return nil
	}
	for e := m.observed.Load(); e != nil; e = e.next {
		if e.o == ob.o && e.side == ob.side {
			return e.h
		}
	}
	return ob.resolveMethod(m)
}

func (ob *observing) resolveMethod(m *Method) RouteObserver {
	m.observeMu.Lock()
	defer m.observeMu.Unlock()
	for e := m.observed.Load(); e != nil; e = e.next {
		if e.o == ob.o && e.side == ob.side {
			return e.h
		}
	}
	h := ob.o.Route(Route{Side: ob.side, Method: m})
	m.observed.Store(&methodHandle{o: ob.o, side: ob.side, h: h, next: m.observed.Load()})
	return h
}

// methodHandle is a method's handle for one observer and side; a
// [Method] keeps a list of them (usually of one).
type methodHandle struct {
	o    Observer
	side Side
	h    RouteObserver
	next *methodHandle
}

// raw returns the handle for the raw route of bizType, asking the observer
// the first time.
func (ob *observing) raw(bizType uint8) RouteObserver {
	if ob == nil {
		return nil
	}
	if r := ob.biz[bizType].Load(); r != nil {
		return r.h
	}
	r := &routeHandle{h: ob.o.Route(Route{Side: ob.side, BizType: bizType})}
	if !ob.biz[bizType].CompareAndSwap(nil, r) {
		r = ob.biz[bizType].Load()
	}
	return r.h
}

// route returns the handle for a typed method or, m nil, for the raw
// biz_type.
func (ob *observing) route(m *Method, bizType uint8) RouteObserver {
	if m != nil {
		return ob.method(m)
	}
	return ob.raw(bizType)
}

// count adds a batch written in one write.
func (st *sessionStats) count(batch [][]byte) {
	n := 0
	for _, b := range batch {
		n += len(b)
	}
	st.writes.Add(1)
	st.packetsOut.Add(uint64(len(batch)))
	st.bytesOut.Add(uint64(n))
}

// statusOf is CodeOf without its cost on success: CodeOf's errors.As moves
// a variable to the heap on every call, nil errors included.
func statusOf(err error) Code {
	if err == nil {
		return CodeOK
	}
	return CodeOf(err)
}
