package promobserve

import (
	"errors"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/msgtrans/msgtrans-go/observe/internal/percode"
	"github.com/msgtrans/msgtrans-go/runtime"
)

// SystemName is the value of the rpc_system_name and messaging_system
// labels.
const SystemName = "msgtrans"

// DefaultDurationBuckets are the buckets of the call duration histograms,
// in seconds: from 100 µs (a call over loopback) to 10 s (the default
// request timeout).
var DefaultDurationBuckets = []float64{
	0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
}

// DefaultRecipientBuckets are the buckets of the broadcast fan-out
// histogram.
var DefaultRecipientBuckets = []float64{1, 10, 100, 1000, 10000, 100000}

// Option configures an [Observer].
type Option func(*options)

type options struct {
	durations  []float64
	recipients []float64
}

// WithDurationBuckets sets the buckets, in seconds, of the call and
// broadcast duration histograms. Default [DefaultDurationBuckets].
func WithDurationBuckets(b ...float64) Option { return func(o *options) { o.durations = b } }

// WithRecipientBuckets sets the buckets of the broadcast fan-out
// histogram. Default [DefaultRecipientBuckets].
func WithRecipientBuckets(b ...float64) Option { return func(o *options) { o.recipients = b } }

// Observer is a [runtime.Observer] that records into Prometheus metrics
// (see the package documentation for their list). Create it with [New]
// and give it to servers and clients with [runtime.WithObserver]; one
// Observer serves any number of them, their figures summed. Safe for
// concurrent use.
type Observer struct {
	runtime.BaseObserver

	serverDuration *prometheus.HistogramVec
	clientDuration *prometheus.HistogramVec
	sent           *prometheus.CounterVec
	consumed       *prometheus.CounterVec
	streamsOpened  *prometheus.CounterVec
	streamsClosed  *prometheus.CounterVec

	connsOpened  *prometheus.CounterVec
	connsClosed  *prometheus.CounterVec
	connsRefused *prometheus.CounterVec

	broadcastRecipients *prometheus.HistogramVec
	broadcastDuration   *prometheus.HistogramVec

	clusterPublished      *prometheus.CounterVec
	clusterPublishedBytes *prometheus.CounterVec
	clusterReceived       *prometheus.CounterVec
	clusterDelivered      *prometheus.CounterVec

	stats statsCollector
}

var _ runtime.Observer = (*Observer)(nil)

// New returns an Observer whose metrics are registered with reg
// (prometheus.DefaultRegisterer, or a registry of the caller's). It fails
// when reg holds metrics of the same names already.
func New(reg prometheus.Registerer, opts ...Option) (*Observer, error) {
	o := options{durations: DefaultDurationBuckets, recipients: DefaultRecipientBuckets}
	for _, opt := range opts {
		if opt != nil {
			opt(&o)
		}
	}
	if reg == nil {
		return nil, errors.New("promobserve: New: nil Registerer")
	}
	rpc := []string{"rpc_system_name", "rpc_method", "rpc_status_code"}
	msg := []string{"messaging_system", "messaging_operation_name", "messaging_destination_name"}
	conn := []string{"side", "transport"}
	ob := &Observer{
		serverDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "rpc_server_call_duration_seconds", Help: "Duration of requests served by this process's handlers, by method and status.", Buckets: o.durations,
		}, rpc),
		clientDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "rpc_client_call_duration_seconds", Help: "Duration of requests this process made, until their response or failure, by method and status.", Buckets: o.durations,
		}, rpc),
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "messaging_client_sent_messages_total", Help: "One-way messages sent (operation send) and pushes made (operation push, one per push however many sessions it reaches).",
		}, msg),
		consumed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "messaging_client_consumed_messages_total", Help: "One-way messages taken by this process's handlers, by the status their handler returned.",
		}, append(msg, "rpc_status_code")),
		streamsOpened: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "msgtrans_streams_opened_total", Help: "Streams opened, by method and role (opener: this side opened it; acceptor: the peer did).",
		}, []string{"rpc_method", "role"}),
		streamsClosed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "msgtrans_streams_closed_total", Help: "Streams ended, by method, role and status.",
		}, []string{"rpc_method", "role", "rpc_status_code"}),
		connsOpened: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "msgtrans_connections_opened_total", Help: "Connections that became sessions.",
		}, conn),
		connsClosed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "msgtrans_connections_closed_total", Help: "Sessions ended, by reason (slow_consumer, heartbeat_timeout, rate_limited, peer, local, shutdown, refused, protocol_error, error).",
		}, append(conn, "reason")),
		connsRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "msgtrans_connections_refused_total", Help: "Connections refused before or at their hello, by reason (max_conns, max_conns_per_ip, shutting_down, unauthenticated, origin, handshake_timeout, handshake_failed, max_handshakes).",
		}, append(conn, "reason")),
		broadcastRecipients: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "msgtrans_broadcast_recipients", Help: "Sessions of this process a push to many (group, group_except, user, all) was queued to.", Buckets: o.recipients,
		}, []string{"target"}),
		broadcastDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "msgtrans_broadcast_duration_seconds", Help: "Time to queue a push to many to this process's sessions.", Buckets: o.durations,
		}, []string{"target"}),
		clusterPublished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "msgtrans_cluster_published_total", Help: "Pushes handed to the cluster for other nodes, by target kind and result (ok, error).",
		}, []string{"target", "result"}),
		clusterPublishedBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "msgtrans_cluster_published_bytes_total", Help: "Encoded bytes of the pushes handed to the cluster.",
		}, []string{"target"}),
		clusterReceived: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "msgtrans_cluster_received_total", Help: "Pushes from other nodes delivered here, by target kind.",
		}, []string{"target"}),
		clusterDelivered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "msgtrans_cluster_received_recipients_total", Help: "Sessions of this process the pushes from other nodes were queued to.",
		}, []string{"target"}),
	}
	ob.stats.init()
	for _, c := range []prometheus.Collector{
		ob.serverDuration, ob.clientDuration, ob.sent, ob.consumed, ob.streamsOpened, ob.streamsClosed,
		ob.connsOpened, ob.connsClosed, ob.connsRefused, ob.broadcastRecipients, ob.broadcastDuration,
		ob.clusterPublished, ob.clusterPublishedBytes, ob.clusterReceived, ob.clusterDelivered, &ob.stats,
	} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return ob, nil
}

// Attach implements [runtime.Observer]: the server's or client's totals
// are read at each scrape.
func (ob *Observer) Attach(src runtime.StatsSource) { ob.stats.attach(src) }

// ConnOpened implements [runtime.Observer].
func (ob *Observer) ConnOpened(c runtime.ConnInfo) {
	ob.connsOpened.WithLabelValues(c.Side.String(), c.Transport).Inc()
}

// ConnClosed implements [runtime.Observer].
func (ob *Observer) ConnClosed(c runtime.ConnInfo, reason runtime.CloseReason) {
	ob.connsClosed.WithLabelValues(c.Side.String(), c.Transport, string(reason)).Inc()
}

// ConnRefused implements [runtime.Observer].
func (ob *Observer) ConnRefused(c runtime.ConnInfo, reason runtime.RefuseReason) {
	ob.connsRefused.WithLabelValues(c.Side.String(), c.Transport, string(reason)).Inc()
}

// Broadcast implements [runtime.Observer].
func (ob *Observer) Broadcast(kind string, recipients int, d time.Duration) {
	ob.broadcastRecipients.WithLabelValues(kind).Observe(float64(recipients))
	ob.broadcastDuration.WithLabelValues(kind).Observe(d.Seconds())
}

// ClusterPublished implements [runtime.Observer].
func (ob *Observer) ClusterPublished(kind string, bytes int, ok bool) {
	result := "ok"
	if !ok {
		result = "error"
	}
	ob.clusterPublished.WithLabelValues(kind, result).Inc()
	ob.clusterPublishedBytes.WithLabelValues(kind).Add(float64(bytes))
}

// ClusterReceived implements [runtime.Observer].
func (ob *Observer) ClusterReceived(kind string, recipients int) {
	ob.clusterReceived.WithLabelValues(kind).Inc()
	ob.clusterDelivered.WithLabelValues(kind).Add(float64(recipients))
}

// Route implements [runtime.Observer]: a handle whose instruments for the
// route are resolved here, once, and per status code on its first use.
func (ob *Observer) Route(r runtime.Route) runtime.RouteObserver {
	name := r.Name()
	op := "send"
	if r.Side == runtime.SideServer {
		op = "push"
	}
	h := &route{ob: ob, name: name,
		sent:    ob.sent.WithLabelValues(SystemName, op, name),
		opened:  [2]prometheus.Counter{ob.streamsOpened.WithLabelValues(name, "opener"), ob.streamsOpened.WithLabelValues(name, "acceptor")},
		msgRole: op,
	}
	// The status every route sees most, resolved now.
	h.code(runtime.CodeOK)
	return h
}

// route is the [runtime.RouteObserver] of one route.
type route struct {
	ob      *Observer
	name    string
	msgRole string
	sent    prometheus.Counter
	opened  [2]prometheus.Counter // by role: opener, acceptor
	codes   percode.Cache[byCode]
}

// byCode are a route's instruments for one status code.
type byCode struct {
	server, client prometheus.Observer
	consumed       prometheus.Counter
	closed         [2]prometheus.Counter
}

// code returns the route's instruments for c, making them the first time.
func (r *route) code(c runtime.Code) *byCode { return r.codes.Get(c, r.makeCode) }

func (r *route) makeCode(c runtime.Code) *byCode {
	code := StatusCode(c)
	ob := r.ob
	return &byCode{
		server:   ob.serverDuration.WithLabelValues(SystemName, r.name, code),
		client:   ob.clientDuration.WithLabelValues(SystemName, r.name, code),
		consumed: ob.consumed.WithLabelValues(SystemName, "process", r.name, code),
		closed: [2]prometheus.Counter{
			ob.streamsClosed.WithLabelValues(r.name, "opener", code),
			ob.streamsClosed.WithLabelValues(r.name, "acceptor", code),
		},
	}
}

// StatusCode is the rpc_status_code label of a status: its name in upper
// case, "OK", "NOT_FOUND", "DEADLINE_EXCEEDED", ….
func StatusCode(c runtime.Code) string { return strings.ToUpper(c.String()) }

func (r *route) Handled(d time.Duration, c runtime.Code) { r.code(c).server.Observe(d.Seconds()) }
func (r *route) Called(d time.Duration, c runtime.Code)  { r.code(c).client.Observe(d.Seconds()) }
func (r *route) Received(c runtime.Code)                 { r.code(c).consumed.Inc() }
func (r *route) Sent()                                   { r.sent.Inc() }

func (r *route) StreamOpened(accepted bool) { r.opened[role(accepted)].Inc() }

func (r *route) StreamClosed(accepted bool, c runtime.Code) {
	r.code(c).closed[role(accepted)].Inc()
}

func role(accepted bool) int {
	if accepted {
		return 1
	}
	return 0
}
