package otelobserve

import (
	"context"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"

	"github.com/msgtrans/msgtrans-go/observe/internal/percode"
	"github.com/msgtrans/msgtrans-go/runtime"
)

// Attribute keys of the connection and traffic metrics.
const (
	// SideKey is "server" or "client": which end of its connections the
	// measured server or client is.
	SideKey = attribute.Key("msgtrans.side")
	// TransportKey is the transport's URL scheme: "tcp", "ws", "quic", ….
	TransportKey = attribute.Key("msgtrans.transport")
	// ReasonKey is why a connection closed or was refused
	// ([runtime.CloseReason], [runtime.RefuseReason]).
	ReasonKey = attribute.Key("msgtrans.reason")
	// StreamRoleKey is "opener" (this side opened the stream) or
	// "acceptor" (the peer did).
	StreamRoleKey = attribute.Key("msgtrans.stream.role")
	// ResultKey is "ok" or "error": whether the cluster took a push.
	ResultKey = attribute.Key("msgtrans.result")
	// DirectionKey is "receive" or "transmit", as network.io.direction.
	DirectionKey = semconv.NetworkIODirectionKey
)

// observer is the adapter's [runtime.Observer]: its instruments, and the
// attribute sets it records with, resolved once per route (per status
// code on its first use) and per connection label set.
type observer struct {
	runtime.BaseObserver

	serverDuration metric.Float64Histogram
	clientDuration metric.Float64Histogram
	sent           metric.Int64Counter
	consumed       metric.Int64Counter
	streamsOpened  metric.Int64Counter
	streamsClosed  metric.Int64Counter

	connsOpened  metric.Int64Counter
	connsClosed  metric.Int64Counter
	connsRefused metric.Int64Counter

	broadcastRecipients metric.Int64Histogram
	broadcastDuration   metric.Float64Histogram

	clusterPublished      metric.Int64Counter
	clusterPublishedBytes metric.Int64Counter
	clusterReceived       metric.Int64Counter
	clusterDelivered      metric.Int64Counter

	// The per-transport totals, read from the attached sources when
	// collected.
	packets, bytes, writes, dropped metric.Int64ObservableCounter
	sessions                        metric.Int64ObservableUpDownCounter
	queued                          metric.Int64ObservableGauge

	mu      sync.Mutex
	sources []runtime.StatsSource

	labelSets sync.Map // labelKey → metric.MeasurementOption
}

var _ runtime.Observer = (*observer)(nil)

func newObserver(m metric.Meter, durations, recipients []float64) (*observer, error) {
	ob := &observer{}
	var errs []error
	f64h := func(name, desc, unit string, bounds []float64) metric.Float64Histogram {
		h, err := m.Float64Histogram(name, metric.WithDescription(desc), metric.WithUnit(unit), metric.WithExplicitBucketBoundaries(bounds...))
		errs = append(errs, err)
		return h
	}
	counter := func(name, desc, unit string) metric.Int64Counter {
		c, err := m.Int64Counter(name, metric.WithDescription(desc), metric.WithUnit(unit))
		errs = append(errs, err)
		return c
	}
	observable := func(name, desc, unit string) metric.Int64ObservableCounter {
		c, err := m.Int64ObservableCounter(name, metric.WithDescription(desc), metric.WithUnit(unit))
		errs = append(errs, err)
		return c
	}
	ob.serverDuration = f64h("rpc.server.call.duration", "Duration of requests served by this process's handlers.", "s", durations)
	ob.clientDuration = f64h("rpc.client.call.duration", "Duration of requests this process made, until their response or failure.", "s", durations)
	ob.sent = counter("messaging.client.sent.messages", "One-way messages sent (operation send) and pushes made (operation push, one per push however many sessions it reaches).", "{message}")
	ob.consumed = counter("messaging.client.consumed.messages", "One-way messages taken by this process's handlers.", "{message}")
	ob.streamsOpened = counter("msgtrans.streams.opened", "Streams opened, by method and role.", "{stream}")
	ob.streamsClosed = counter("msgtrans.streams.closed", "Streams ended, by method, role and status.", "{stream}")
	ob.connsOpened = counter("msgtrans.connections.opened", "Connections that became sessions.", "{connection}")
	ob.connsClosed = counter("msgtrans.connections.closed", "Sessions ended, by reason.", "{connection}")
	ob.connsRefused = counter("msgtrans.connections.refused", "Connections refused before or at their hello, by reason.", "{connection}")
	rh, err := m.Int64Histogram("msgtrans.broadcast.recipients", metric.WithDescription("Sessions of this process a push to many (group, group_except, user, all) was queued to."),
		metric.WithUnit("{session}"), metric.WithExplicitBucketBoundaries(recipients...))
	errs = append(errs, err)
	ob.broadcastRecipients = rh
	ob.broadcastDuration = f64h("msgtrans.broadcast.duration", "Time to queue a push to many to this process's sessions.", "s", durations)
	ob.clusterPublished = counter("msgtrans.cluster.published", "Pushes handed to the cluster for other nodes, by target kind and result.", "{message}")
	ob.clusterPublishedBytes = counter("msgtrans.cluster.published.size", "Encoded bytes of the pushes handed to the cluster.", "By")
	ob.clusterReceived = counter("msgtrans.cluster.received", "Pushes from other nodes delivered here, by target kind.", "{message}")
	ob.clusterDelivered = counter("msgtrans.cluster.received.recipients", "Sessions of this process the pushes from other nodes were queued to.", "{session}")

	ob.packets = observable("msgtrans.packets", "Packets read (receive) and written (transmit), control packets included.", "{packet}")
	ob.bytes = observable("msgtrans.io", "Encoded bytes of the packets read and written, as on the wire.", "By")
	ob.writes = observable("msgtrans.writes", "Write calls, each carrying one or more packets.", "{write}")
	ob.dropped = observable("msgtrans.dropped", "One-way packets dropped by the rate limit.", "{packet}")
	sessions, err := m.Int64ObservableUpDownCounter("msgtrans.sessions", metric.WithDescription("Sessions open now."), metric.WithUnit("{session}"))
	errs = append(errs, err)
	ob.sessions = sessions
	queued, err := m.Int64ObservableGauge("msgtrans.queued.size", metric.WithDescription("Bytes queued for writing now, over every open session."), metric.WithUnit("By"))
	errs = append(errs, err)
	ob.queued = queued
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	if _, err := m.RegisterCallback(ob.collect, ob.packets, ob.bytes, ob.writes, ob.dropped, ob.sessions, ob.queued); err != nil {
		return nil, err
	}
	return ob, nil
}

// Attach implements [runtime.Observer]: the server's or client's totals
// are read each time the metrics are collected.
func (ob *observer) Attach(src runtime.StatsSource) {
	ob.mu.Lock()
	ob.sources = append(ob.sources, src)
	ob.mu.Unlock()
}

// collect observes the totals of every attached server and client, summed
// by side and transport.
func (ob *observer) collect(_ context.Context, o metric.Observer) error {
	ob.mu.Lock()
	sources := ob.sources
	ob.mu.Unlock()
	var stats []runtime.TransportStats
	for _, src := range sources {
		stats = src.Stats(stats)
	}
	for _, s := range runtime.SumTransportStats(stats) {
		side, transport := SideKey.String(s.Side.String()), TransportKey.String(s.Transport)
		in := metric.WithAttributes(side, transport, DirectionKey.String("receive"))
		out := metric.WithAttributes(side, transport, DirectionKey.String("transmit"))
		both := metric.WithAttributes(side, transport)
		o.ObserveInt64(ob.packets, int64(s.PacketsIn), in)
		o.ObserveInt64(ob.packets, int64(s.PacketsOut), out)
		o.ObserveInt64(ob.bytes, int64(s.BytesIn), in)
		o.ObserveInt64(ob.bytes, int64(s.BytesOut), out)
		o.ObserveInt64(ob.writes, int64(s.Writes), both)
		o.ObserveInt64(ob.dropped, int64(s.Dropped), both)
		o.ObserveInt64(ob.sessions, s.Sessions, both)
		o.ObserveInt64(ob.queued, s.QueuedBytes, both)
	}
	return nil
}

// labelKey names one set of attributes of the per-connection, broadcast
// and cluster metrics, which are few: sides, transports, reasons and
// target kinds.
type labelKey struct {
	metric string
	side   runtime.Side
	a, b   string
}

// labels returns the measurement option of the attribute set k names,
// made the first time by attrs.
func (ob *observer) labels(k labelKey, attrs func() []attribute.KeyValue) metric.MeasurementOption {
	if o, ok := ob.labelSets.Load(k); ok {
		return o.(metric.MeasurementOption)
	}
	o, _ := ob.labelSets.LoadOrStore(k, metric.WithAttributeSet(attribute.NewSet(attrs()...)))
	return o.(metric.MeasurementOption)
}

func (ob *observer) conn(name string, c runtime.ConnInfo, reason string) metric.MeasurementOption {
	return ob.labels(labelKey{metric: name, side: c.Side, a: c.Transport, b: reason}, func() []attribute.KeyValue {
		attrs := []attribute.KeyValue{SideKey.String(c.Side.String()), TransportKey.String(c.Transport)}
		if reason != "" {
			attrs = append(attrs, ReasonKey.String(reason))
		}
		return attrs
	})
}

// ConnOpened implements [runtime.Observer].
func (ob *observer) ConnOpened(c runtime.ConnInfo) {
	ob.connsOpened.Add(context.Background(), 1, ob.conn("opened", c, ""))
}

// ConnClosed implements [runtime.Observer].
func (ob *observer) ConnClosed(c runtime.ConnInfo, reason runtime.CloseReason) {
	ob.connsClosed.Add(context.Background(), 1, ob.conn("closed", c, string(reason)))
}

// ConnRefused implements [runtime.Observer].
func (ob *observer) ConnRefused(c runtime.ConnInfo, reason runtime.RefuseReason) {
	ob.connsRefused.Add(context.Background(), 1, ob.conn("refused", c, string(reason)))
}

func (ob *observer) target(name, kind, result string) metric.MeasurementOption {
	return ob.labels(labelKey{metric: name, a: kind, b: result}, func() []attribute.KeyValue {
		attrs := []attribute.KeyValue{PushTargetKey.String(kind)}
		if result != "" {
			attrs = append(attrs, ResultKey.String(result))
		}
		return attrs
	})
}

// Broadcast implements [runtime.Observer].
func (ob *observer) Broadcast(kind string, recipients int, d time.Duration) {
	o := ob.target("broadcast", kind, "")
	ob.broadcastRecipients.Record(context.Background(), int64(recipients), o)
	ob.broadcastDuration.Record(context.Background(), d.Seconds(), o)
}

// ClusterPublished implements [runtime.Observer].
func (ob *observer) ClusterPublished(kind string, bytes int, ok bool) {
	result := "ok"
	if !ok {
		result = "error"
	}
	ob.clusterPublished.Add(context.Background(), 1, ob.target("published", kind, result))
	ob.clusterPublishedBytes.Add(context.Background(), int64(bytes), ob.target("published", kind, ""))
}

// ClusterReceived implements [runtime.Observer].
func (ob *observer) ClusterReceived(kind string, recipients int) {
	o := ob.target("received", kind, "")
	ob.clusterReceived.Add(context.Background(), 1, o)
	ob.clusterDelivered.Add(context.Background(), int64(recipients), o)
}

// Route implements [runtime.Observer]: a handle whose attribute sets for
// the route are made here, once, and per status code on its first use.
func (ob *observer) Route(r runtime.Route) runtime.RouteObserver {
	name := r.Name()
	op := "send"
	if r.Side == runtime.SideServer {
		op = "push"
	}
	h := &route{ob: ob, name: name}
	h.sent = []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(
		semconv.MessagingSystemKey.String(SystemName),
		semconv.MessagingOperationNameKey.String(op),
		semconv.MessagingDestinationNameKey.String(name),
	))}
	for i, role := range []string{"opener", "acceptor"} {
		h.opened[i] = []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(semconv.RPCMethodKey.String(name), StreamRoleKey.String(role)))}
	}
	h.code(runtime.CodeOK) // the status every route sees most, resolved now
	return h
}

// route is the [runtime.RouteObserver] of one route. Recording costs no
// lookup beyond an atomic load, and no allocation of its own.
type route struct {
	ob     *observer
	name   string
	sent   []metric.AddOption
	opened [2][]metric.AddOption // by role: opener, acceptor
	codes  percode.Cache[byCode]
}

// byCode are a route's attribute sets for one status code.
type byCode struct {
	call     []metric.RecordOption // the rpc.*.call.duration histograms
	consumed []metric.AddOption
	closed   [2][]metric.AddOption // by role
}

// code returns the route's attribute sets for c, making them the first
// time.
func (r *route) code(c runtime.Code) *byCode { return r.codes.Get(c, r.makeCode) }

func (r *route) makeCode(c runtime.Code) *byCode {
	code := StatusCode(c)
	consumed := []attribute.KeyValue{
		semconv.MessagingSystemKey.String(SystemName),
		semconv.MessagingOperationNameKey.String("process"),
		semconv.MessagingDestinationNameKey.String(r.name),
	}
	if c != runtime.CodeOK {
		consumed = append(consumed, semconv.ErrorTypeKey.String(code))
	}
	b := &byCode{
		call: []metric.RecordOption{metric.WithAttributeSet(attribute.NewSet(
			semconv.RPCSystemNameKey.String(SystemName),
			semconv.RPCMethodKey.String(r.name),
			semconv.RPCResponseStatusCodeKey.String(code),
		))},
		consumed: []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(consumed...))},
	}
	for i, role := range []string{"opener", "acceptor"} {
		b.closed[i] = []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(
			semconv.RPCMethodKey.String(r.name), StreamRoleKey.String(role), semconv.RPCResponseStatusCodeKey.String(code)))}
	}
	return b
}

func (r *route) Handled(d time.Duration, c runtime.Code) {
	r.ob.serverDuration.Record(context.Background(), d.Seconds(), r.code(c).call...)
}

func (r *route) Called(d time.Duration, c runtime.Code) {
	r.ob.clientDuration.Record(context.Background(), d.Seconds(), r.code(c).call...)
}

func (r *route) Received(c runtime.Code) {
	r.ob.consumed.Add(context.Background(), 1, r.code(c).consumed...)
}

func (r *route) Sent() { r.ob.sent.Add(context.Background(), 1, r.sent...) }

func (r *route) StreamOpened(accepted bool) {
	r.ob.streamsOpened.Add(context.Background(), 1, r.opened[role(accepted)]...)
}

func (r *route) StreamClosed(accepted bool, c runtime.Code) {
	r.ob.streamsClosed.Add(context.Background(), 1, r.code(c).closed[role(accepted)]...)
}

func role(accepted bool) int {
	if accepted {
		return 1
	}
	return 0
}
