package otelobserve

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/msgtrans/msgtrans-go/runtime"
)

// ScopeName is the instrumentation scope of the adapter's tracer and
// meter.
const ScopeName = "github.com/msgtrans/msgtrans-go/observe/otelobserve"

// SystemName is the value of the rpc.system.name and messaging.system
// attributes.
const SystemName = "msgtrans"

// DefaultDurationBuckets are the bucket boundaries, in seconds, of the
// duration histograms: from 100 µs (a call over loopback) to 10 s (the
// default request timeout), as the Prometheus adapter's.
var DefaultDurationBuckets = []float64{
	0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
}

// DefaultRecipientBuckets are the bucket boundaries of the broadcast
// fan-out histogram.
var DefaultRecipientBuckets = []float64{1, 10, 100, 1000, 10000, 100000}

// Option configures an [Adapter].
type Option func(*options)

type options struct {
	tp         trace.TracerProvider
	mp         metric.MeterProvider
	durations  []float64
	recipients []float64
}

// WithTracerProvider sets where spans go. Default otel.GetTracerProvider()
// at the time of [New].
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(o *options) { o.tp = tp }
}

// WithMeterProvider sets where metrics go. Default otel.GetMeterProvider()
// at the time of [New].
func WithMeterProvider(mp metric.MeterProvider) Option {
	return func(o *options) { o.mp = mp }
}

// WithDurationBuckets sets the bucket boundaries, in seconds, of the
// duration histograms. Default [DefaultDurationBuckets].
func WithDurationBuckets(b ...float64) Option {
	return func(o *options) { o.durations = b }
}

// WithRecipientBuckets sets the bucket boundaries of the broadcast fan-out
// histogram. Default [DefaultRecipientBuckets].
func WithRecipientBuckets(b ...float64) Option {
	return func(o *options) { o.recipients = b }
}

// Adapter traces and measures msgtrans-go servers and clients with
// OpenTelemetry. Make one with [New] and give its options to servers
// ([Adapter.ServerOptions]) and clients ([Adapter.ClientOptions]), or pick
// its parts: the interceptors for tracing, [Adapter.Observer] for metrics.
// One Adapter serves any number of servers and clients; it is safe for
// concurrent use.
type Adapter struct {
	tracer trace.Tracer
	prop   propagation.TraceContext
	obs    *observer
}

// New returns an Adapter recording to the providers given (the global ones
// by default). It fails when an instrument cannot be made, or an option is
// invalid.
func New(opts ...Option) (*Adapter, error) {
	o := options{durations: DefaultDurationBuckets, recipients: DefaultRecipientBuckets}
	for _, opt := range opts {
		if opt != nil {
			opt(&o)
		}
	}
	if o.tp == nil {
		o.tp = otel.GetTracerProvider()
	}
	if o.mp == nil {
		o.mp = otel.GetMeterProvider()
	}
	if err := checkBuckets("WithDurationBuckets", o.durations); err != nil {
		return nil, err
	}
	if err := checkBuckets("WithRecipientBuckets", o.recipients); err != nil {
		return nil, err
	}
	obs, err := newObserver(o.mp.Meter(ScopeName), o.durations, o.recipients)
	if err != nil {
		return nil, err
	}
	return &Adapter{tracer: o.tp.Tracer(ScopeName), obs: obs}, nil
}

// checkBuckets refuses bucket boundaries that are empty or not increasing.
func checkBuckets(option string, b []float64) error {
	if len(b) == 0 {
		return errors.New("otelobserve: " + option + ": no bucket boundaries")
	}
	for i := 1; i < len(b); i++ {
		if !(b[i] > b[i-1]) {
			return errors.New("otelobserve: " + option + ": bucket boundaries must increase")
		}
	}
	return nil
}

// ServerOptions returns the options that trace and measure a server: its
// handlers, stream handlers, calls to its clients, streams it opens,
// pushes, and the observer.
func (a *Adapter) ServerOptions() []runtime.ServerOption {
	return []runtime.ServerOption{
		runtime.WithInterceptors(a.Interceptor()),
		runtime.WithStreamInterceptors(a.StreamInterceptor()),
		runtime.WithCallInterceptors(a.CallInterceptor()),
		runtime.WithStreamOpenInterceptors(a.StreamOpenInterceptor()),
		runtime.WithPushInterceptors(a.PushInterceptor()),
		runtime.WithObserver(a.Observer()),
	}
}

// ClientOptions returns the options that trace and measure a client: its
// calls and streams, the handlers of what its server pushes or asks, and
// the observer.
func (a *Adapter) ClientOptions() []runtime.ClientOption {
	return []runtime.ClientOption{
		runtime.WithInterceptors(a.Interceptor()),
		runtime.WithStreamInterceptors(a.StreamInterceptor()),
		runtime.WithCallInterceptors(a.CallInterceptor()),
		runtime.WithStreamOpenInterceptors(a.StreamOpenInterceptor()),
		runtime.WithObserver(a.Observer()),
	}
}

// Observer returns the [runtime.Observer] that records the adapter's
// metrics (see the package documentation); [Adapter.ServerOptions] and
// [Adapter.ClientOptions] include it.
func (a *Adapter) Observer() runtime.Observer { return a.obs }

// Inject returns ctx carrying the trace context of the span in ctx to the
// peer of the calls made with it ([runtime.WithOutgoingTrace]). The
// interceptors do this for the calls they trace; Inject is for the others,
// such as raw requests ([runtime.Session.Request]), which the call
// interceptors do not wrap: start a span, and call with Inject(ctx). A ctx
// with no valid span context is returned as it is.
func Inject(ctx context.Context) context.Context {
	var tc runtime.TraceContext
	propagation.TraceContext{}.Inject(ctx, &tc)
	if tc.Parent == "" {
		return ctx
	}
	return runtime.WithOutgoingTrace(ctx, tc)
}

// routeName is a call's rpc.method: "pkg.Service/Method" for a typed
// method, "biz/N" for a raw biz_type (as [runtime.Route.Name]).
func routeName(ci runtime.CallInfo) string {
	return runtime.Route{Method: ci.Method, BizType: ci.BizType}.Name()
}

// StatusCode is the rpc.response.status_code of a status: its name in
// upper case, "OK", "NOT_FOUND", "DEADLINE_EXCEEDED", … (the codes are
// gRPC's, and so are their names).
func StatusCode(c runtime.Code) string {
	if int(c) < len(statusCodes) {
		return statusCodes[c]
	}
	return strings.ToUpper(c.String())
}

// statusCodes are the names of the wire protocol's 17 codes, made once.
var statusCodes = func() []string {
	s := make([]string, 17)
	for i := range s {
		s[i] = strings.ToUpper(runtime.Code(i).String())
	}
	return s
}()

// addrAttrs returns the address and port attributes of a, under the keys
// given; none for an address that is not host:port.
func addrAttrs(a net.Addr, hostKey, portKey attribute.Key) []attribute.KeyValue {
	if a == nil {
		return nil
	}
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return nil
	}
	attrs := []attribute.KeyValue{hostKey.String(host)}
	if p, err := strconv.Atoi(port); err == nil {
		attrs = append(attrs, portKey.Int(p))
	}
	return attrs
}

// serverAddr returns the server.address and server.port of a call's
// session: the peer's address on the client's side, its own on the
// server's.
func serverAddr(ci runtime.CallInfo, clientSide bool) []attribute.KeyValue {
	if ci.Session == nil {
		return nil
	}
	if clientSide {
		return addrAttrs(ci.Session.RemoteAddr(), semconv.ServerAddressKey, semconv.ServerPortKey)
	}
	return addrAttrs(ci.Session.LocalAddr(), semconv.ServerAddressKey, semconv.ServerPortKey)
}
