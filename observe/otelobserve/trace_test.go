package otelobserve_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/msgtrans/msgtrans-go/internal/testcert"
	"github.com/msgtrans/msgtrans-go/observe/otelobserve"
	"github.com/msgtrans/msgtrans-go/runtime"
	_ "github.com/msgtrans/msgtrans-go/transports/all"
	"github.com/msgtrans/msgtrans-go/wire"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The methods of the tests.
var (
	echoMethod  = runtime.NewMethod("test.v1.Otel.Echo", wire.RouteID("test.v1.Otel.Echo"), runtime.MethodUnary)
	noteMethod  = runtime.NewMethod("test.v1.Otel.Note", wire.RouteID("test.v1.Otel.Note"), runtime.MethodOneWay)
	countMethod = runtime.NewMethod("test.v1.Otel.Count", wire.RouteID("test.v1.Otel.Count"), runtime.MethodServerStream)
)

const bizEcho = 7

// certs serve the servers and clients of the tests (QUIC needs TLS).
var certs = testcert.New()

var quiet = slog.New(slog.DiscardHandler)

// transports are the transports the tests run over.
var transports = []string{"tcp://127.0.0.1:0", "ws://127.0.0.1:0/ws", "quic://127.0.0.1:0"}

// telemetry is one process's OpenTelemetry SDK: spans recorded in memory,
// metrics read on demand, and the adapter recording to them.
type telemetry struct {
	spans  *tracetest.SpanRecorder
	ended  chan sdktrace.ReadOnlySpan
	reader *sdkmetric.ManualReader
	tp     *sdktrace.TracerProvider
	a      *otelobserve.Adapter
}

// ends passes every ended span to a channel, so that a test waits for the
// spans it expects instead of polling.
type ends chan sdktrace.ReadOnlySpan

func (e ends) OnStart(context.Context, sdktrace.ReadWriteSpan) {}
func (e ends) OnEnd(s sdktrace.ReadOnlySpan)                   { e <- s }
func (e ends) Shutdown(context.Context) error                  { return nil }
func (e ends) ForceFlush(context.Context) error                { return nil }

func newTelemetry(t *testing.T) *telemetry {
	t.Helper()
	tel := &telemetry{spans: tracetest.NewSpanRecorder(), ended: make(chan sdktrace.ReadOnlySpan, 1024), reader: sdkmetric.NewManualReader()}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(tel.spans), sdktrace.WithSpanProcessor(ends(tel.ended)))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(tel.reader))
	t.Cleanup(func() {
		_ = tp.Shutdown(context.Background())
		_ = mp.Shutdown(context.Background())
	})
	a, err := otelobserve.New(otelobserve.WithTracerProvider(tp), otelobserve.WithMeterProvider(mp))
	if err != nil {
		t.Fatal(err)
	}
	tel.a, tel.tp = a, tp
	return tel
}

// next returns the next span ended, failing after 10 s.
func (tel *telemetry) next(t *testing.T) sdktrace.ReadOnlySpan {
	t.Helper()
	select {
	case s := <-tel.ended:
		return s
	case <-time.After(10 * time.Second):
		t.Fatal("no span ended within 10s")
		return nil
	}
}

// none checks that no span ended beyond those taken.
func (tel *telemetry) none(t *testing.T) {
	t.Helper()
	select {
	case s := <-tel.ended:
		t.Errorf("an unexpected span: %s (%s)", s.Name(), s.SpanKind())
	default:
	}
}

// testServer starts a server on addr with opts, serving the test methods:
// Echo answers its text, or fails with the code named by it ("NOT_FOUND",
// "INTERNAL"); Note reports its text on notes; Count streams n numbers; the
// raw bizEcho echoes.
func testServer(t *testing.T, addr string, notes chan<- string, opts ...runtime.ServerOption) *runtime.Server {
	t.Helper()
	srv, err := runtime.NewServer(append([]runtime.ServerOption{runtime.WithTLS(certs.Server), runtime.WithLogger(quiet)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	srv.HandleMethod(echoMethod, runtime.NewUnaryHandler(func(_ context.Context, _ *runtime.Session, m *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
		switch m.Value {
		case "NOT_FOUND":
			return nil, runtime.NewError(runtime.CodeNotFound, "no such thing")
		case "INTERNAL":
			return nil, runtime.NewError(runtime.CodeInternal, "broken")
		}
		return m, nil
	}))
	srv.HandleMethod(noteMethod, runtime.NewOneWayHandler(func(_ context.Context, _ *runtime.Session, m *wrapperspb.StringValue) error {
		notes <- m.Value
		if m.Value == "fail" {
			return runtime.NewError(runtime.CodeInvalidArgument, "bad note")
		}
		return nil
	}))
	srv.HandleStream(countMethod, runtime.NewServerStreamHandler(func(_ context.Context, _ *runtime.Session, n *wrapperspb.Int64Value, st *runtime.ServerStream[wrapperspb.Int64Value]) error {
		for i := range n.Value {
			if err := st.Send(wrapperspb.Int64(i)); err != nil {
				return err
			}
		}
		return nil
	}))
	srv.Handle(bizEcho, runtime.HandlerFunc(func(_ context.Context, _ *runtime.Session, p *wire.Packet) (*wire.Packet, error) {
		return p.Reply(p.Payload), nil
	}))
	if err := srv.Listen(context.Background(), addr); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	return srv
}

// dial connects a client to srv with opts; its Note handler reports on
// notes.
func dial(t *testing.T, srv *runtime.Server, notes chan<- string, opts ...runtime.ClientOption) *runtime.Client {
	t.Helper()
	c, err := runtime.NewClient(srv.Addrs()[0], append([]runtime.ClientOption{runtime.WithTLS(certs.Client), runtime.WithLogger(quiet)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	c.HandleMethod(noteMethod, runtime.NewOneWayHandler(func(_ context.Context, _ *runtime.Session, m *wrapperspb.StringValue) error {
		notes <- m.Value
		return nil
	}))
	c.HandleMethod(echoMethod, runtime.NewUnaryHandler(func(_ context.Context, _ *runtime.Session, m *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
		return m, nil
	}))
	if err := c.Connect(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func attr(s sdktrace.ReadOnlySpan, k attribute.Key) string {
	for _, kv := range s.Attributes() {
		if kv.Key == k {
			return kv.Value.String()
		}
	}
	return ""
}

// childOf checks that child is the child of parent, across the wire: same
// trace, parent's span id, a remote parent.
func childOf(t *testing.T, child, parent sdktrace.ReadOnlySpan) {
	t.Helper()
	if child.SpanContext().TraceID() != parent.SpanContext().TraceID() {
		t.Errorf("%s's trace %s, want %s's %s", child.Name(), child.SpanContext().TraceID(), parent.Name(), parent.SpanContext().TraceID())
	}
	if child.Parent().SpanID() != parent.SpanContext().SpanID() || !child.Parent().IsRemote() {
		t.Errorf("%s's parent %s (remote %v), want %s's span %s", child.Name(), child.Parent().SpanID(), child.Parent().IsRemote(), parent.Name(), parent.SpanContext().SpanID())
	}
}

// want checks a span's name, kind, status and attributes.
func want(t *testing.T, s sdktrace.ReadOnlySpan, name string, kind trace.SpanKind, status codes.Code, attrs map[attribute.Key]string) {
	t.Helper()
	if s.Name() != name || s.SpanKind() != kind {
		t.Errorf("span %q (%s), want %q (%s)", s.Name(), s.SpanKind(), name, kind)
	}
	if s.Status().Code != status {
		t.Errorf("span %q: status %s (%q), want %s", s.Name(), s.Status().Code, s.Status().Description, status)
	}
	for k, v := range attrs {
		if got := attr(s, k); got != v {
			t.Errorf("span %q: %s = %q, want %q", s.Name(), k, got, v)
		}
	}
}

// TestTraceUnary: a typed request has a CLIENT span where it is made and
// a SERVER span, its child, where it is served, joined over the wire on
// every transport (client and server have tracer providers of their
// own); the status code is recorded on both, and the status Error on the
// client's for any failure, on the server's for the server's failures.
func TestTraceUnary(t *testing.T) {
	for _, addr := range transports {
		t.Run(addr[:3], func(t *testing.T) {
			srvTel, cliTel := newTelemetry(t), newTelemetry(t)
			srv := testServer(t, addr, make(chan string, 1), srvTel.a.ServerOptions()...)
			c := dial(t, srv, nil, cliTel.a.ClientOptions()...)
			tests := []struct {
				text           string
				code           string
				client, server codes.Code
			}{
				{"hello", "OK", codes.Unset, codes.Unset},
				{"NOT_FOUND", "NOT_FOUND", codes.Error, codes.Unset},
				{"INTERNAL", "INTERNAL", codes.Error, codes.Error},
			}
			for _, tt := range tests {
				_, err := runtime.CallUnary[wrapperspb.StringValue](context.Background(), c, echoMethod, wrapperspb.String(tt.text))
				if got := otelobserve.StatusCode(runtime.CodeOf(err)); got != tt.code {
					t.Fatalf("call %q: %v, want %s", tt.text, err, tt.code)
				}
				cs, ss := cliTel.next(t), srvTel.next(t)
				attrs := map[attribute.Key]string{"rpc.system.name": "msgtrans", "rpc.method": "test.v1.Otel/Echo", "rpc.response.status_code": tt.code}
				want(t, cs, "test.v1.Otel/Echo", trace.SpanKindClient, tt.client, attrs)
				want(t, ss, "test.v1.Otel/Echo", trace.SpanKindServer, tt.server, attrs)
				childOf(t, ss, cs)
				if attr(cs, "server.address") != "127.0.0.1" || attr(cs, "server.port") == "" {
					t.Errorf("client span: server.address %q, server.port %q", attr(cs, "server.address"), attr(cs, "server.port"))
				}
			}
			cliTel.none(t)
			srvTel.none(t)
		})
	}
}

// TestTraceOneWayAndPush: a one-way message has a PRODUCER span and a
// CONSUMER span, its child, and a handler failing sets Error on the
// latter; a push to a group of three has one PRODUCER span, every
// recipient's handler span its child; a push to one session has one span
// too.
func TestTraceOneWayAndPush(t *testing.T) {
	for _, addr := range transports {
		t.Run(addr[:3], func(t *testing.T) {
			srvTel := newTelemetry(t)
			atServer := make(chan string, 8)
			srv := testServer(t, addr, atServer, srvTel.a.ServerOptions()...)
			atClients := make(chan string, 8)
			var tels []*telemetry
			var clients []*runtime.Client
			for range 3 {
				tel := newTelemetry(t)
				clients = append(clients, dial(t, srv, atClients, tel.a.ClientOptions()...))
				tels = append(tels, tel)
			}

			for _, tt := range []struct {
				text   string
				status codes.Code
				errTyp string
			}{{"note", codes.Unset, ""}, {"fail", codes.Error, "INVALID_ARGUMENT"}} {
				if err := runtime.SendOneWay(context.Background(), clients[0], noteMethod, wrapperspb.String(tt.text)); err != nil {
					t.Fatal(err)
				}
				<-atServer
				send, process := tels[0].next(t), srvTel.next(t)
				attrs := map[attribute.Key]string{"messaging.system": "msgtrans", "messaging.destination.name": "test.v1.Otel/Note"}
				want(t, send, "send test.v1.Otel/Note", trace.SpanKindProducer, codes.Unset, attrs)
				want(t, process, "process test.v1.Otel/Note", trace.SpanKindConsumer, tt.status, map[attribute.Key]string{"error.type": tt.errTyp})
				childOf(t, process, send)
			}

			for _, s := range srv.Sessions() {
				if err := srv.Join("room", s); err != nil {
					t.Fatal(err)
				}
			}
			n, err := runtime.Push(context.Background(), srv, runtime.ToGroup("room"), noteMethod, wrapperspb.String("to all"))
			if err != nil || n != 3 {
				t.Fatalf("Push = %d, %v", n, err)
			}
			push := srvTel.next(t)
			want(t, push, "push test.v1.Otel/Note", trace.SpanKindProducer, codes.Unset, map[attribute.Key]string{
				"messaging.system": "msgtrans", "messaging.operation.name": "push", "messaging.destination.name": "test.v1.Otel/Note",
				"msgtrans.push.target": "group", "msgtrans.push.recipients": "3",
			})
			for _, tel := range tels {
				s := tel.next(t)
				want(t, s, "process test.v1.Otel/Note", trace.SpanKindConsumer, codes.Unset, map[attribute.Key]string{"messaging.operation.type": "process"})
				childOf(t, s, push)
			}
			srvTel.none(t) // one span for the push, not one per recipient

			one := srv.Sessions()[0]
			if _, err := runtime.Push(context.Background(), srv, one.Target(), noteMethod, wrapperspb.String("to one")); err != nil {
				t.Fatal(err)
			}
			push = srvTel.next(t)
			want(t, push, "push test.v1.Otel/Note", trace.SpanKindProducer, codes.Unset, map[attribute.Key]string{"msgtrans.push.target": "session", "msgtrans.push.recipients": "1"})
			port := func(a net.Addr) string { _, p, _ := net.SplitHostPort(a.String()); return p }
			idx := slices.IndexFunc(clients, func(c *runtime.Client) bool { return port(c.Session().LocalAddr()) == port(one.RemoteAddr()) })
			if idx < 0 {
				t.Fatalf("no client at %s", one.RemoteAddr())
			}
			childOf(t, tels[idx].next(t), push)
			srvTel.none(t)
		})
	}
}

// TestTraceStream: a stream has a CLIENT span on its opener's side, ended
// when the stream is read to its end (OK) or closed (CANCELED), and a
// SERVER span, its child, on the acceptor's.
func TestTraceStream(t *testing.T) {
	for _, addr := range transports {
		t.Run(addr[:3], func(t *testing.T) {
			srvTel, cliTel := newTelemetry(t), newTelemetry(t)
			srv := testServer(t, addr, nil, srvTel.a.ServerOptions()...)
			c := dial(t, srv, nil, cliTel.a.ClientOptions()...)
			st, err := runtime.OpenServerStream[wrapperspb.Int64Value](context.Background(), c, countMethod, wrapperspb.Int64(3))
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for _, err := range st.All() {
				if err != nil {
					t.Fatal(err)
				}
				n++
			}
			if n != 3 {
				t.Fatalf("received %d messages, want 3", n)
			}
			cs, ss := cliTel.next(t), srvTel.next(t)
			attrs := map[attribute.Key]string{"rpc.method": "test.v1.Otel/Count", "rpc.response.status_code": "OK"}
			want(t, cs, "test.v1.Otel/Count", trace.SpanKindClient, codes.Unset, attrs)
			want(t, ss, "test.v1.Otel/Count", trace.SpanKindServer, codes.Unset, attrs)
			childOf(t, ss, cs)

			// Closed by its opener before its end.
			st, err = runtime.OpenServerStream[wrapperspb.Int64Value](context.Background(), c, countMethod, wrapperspb.Int64(1<<40))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := st.Recv(); err != nil {
				t.Fatal(err)
			}
			_ = st.Close()
			cs, ss = cliTel.next(t), srvTel.next(t)
			want(t, cs, "test.v1.Otel/Count", trace.SpanKindClient, codes.Error, map[attribute.Key]string{"rpc.response.status_code": "CANCELED"})
			childOf(t, ss, cs)
			cliTel.none(t)
		})
	}
}

// TestTraceServerCallsClient: a server's call to its client (a pusher's
// unary call) has its CLIENT span on the server and its SERVER span on the
// client.
func TestTraceServerCallsClient(t *testing.T) {
	srvTel, cliTel := newTelemetry(t), newTelemetry(t)
	srv := testServer(t, transports[0], nil, srvTel.a.ServerOptions()...)
	dial(t, srv, nil, cliTel.a.ClientOptions()...)
	sess := srv.Sessions()[0]
	resp, err := runtime.CallSession[wrapperspb.StringValue](context.Background(), srv, sess.ID(), echoMethod, wrapperspb.String("hi"))
	if err != nil || resp.Value != "hi" {
		t.Fatalf("CallSession = %v, %v", resp, err)
	}
	cs, ss := srvTel.next(t), cliTel.next(t)
	want(t, cs, "test.v1.Otel/Echo", trace.SpanKindClient, codes.Unset, nil)
	want(t, ss, "test.v1.Otel/Echo", trace.SpanKindServer, codes.Unset, nil)
	childOf(t, ss, cs)
}

// TestTracePeersWithout: a client that does not trace calls a server that
// does (its request carries no trace context: the server's span starts a
// trace), and a tracing client calls a server that does not: both work.
func TestTracePeersWithout(t *testing.T) {
	for _, addr := range transports {
		t.Run(addr[:3], func(t *testing.T) {
			srvTel := newTelemetry(t)
			traced := testServer(t, addr, nil, srvTel.a.ServerOptions()...)
			plain := dial(t, traced, nil)
			if _, err := runtime.CallUnary[wrapperspb.StringValue](context.Background(), plain, echoMethod, wrapperspb.String("x")); err != nil {
				t.Fatal(err)
			}
			ss := srvTel.next(t)
			if ss.Parent().IsValid() || !ss.SpanContext().IsValid() {
				t.Errorf("server span of an untraced call: parent %v, context valid %v; want a new root", ss.Parent(), ss.SpanContext().IsValid())
			}

			cliTel := newTelemetry(t)
			untraced := testServer(t, addr, nil)
			c := dial(t, untraced, nil, cliTel.a.ClientOptions()...)
			resp, err := runtime.CallUnary[wrapperspb.StringValue](context.Background(), c, echoMethod, wrapperspb.String("y"))
			if err != nil || resp.Value != "y" {
				t.Fatalf("a traced call to an untraced server = %v, %v", resp, err)
			}
			want(t, cliTel.next(t), "test.v1.Otel/Echo", trace.SpanKindClient, codes.Unset, nil)
		})
	}
}

// TestTraceMalformedContext: a trace context that does not parse is
// ignored: the call is served, in a new trace.
func TestTraceMalformedContext(t *testing.T) {
	srvTel := newTelemetry(t)
	srv := testServer(t, transports[0], nil, srvTel.a.ServerOptions()...)
	c := dial(t, srv, nil)
	for _, tc := range []runtime.TraceContext{
		{Parent: "garbage"},
		{Parent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331"},    // no flags
		{Parent: "00-00000000000000000000000000000000-b7ad6b7169203331-01"}, // zero trace id
		{Parent: "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01"}, // zero span id
		{Parent: "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}, // version ff
		{Parent: "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01"}, // upper case
		{Parent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\x00", State: "\xff\xfe"},
	} {
		ctx := runtime.WithOutgoingTrace(context.Background(), tc)
		if _, err := runtime.CallUnary[wrapperspb.StringValue](ctx, c, echoMethod, wrapperspb.String("x")); err != nil {
			t.Fatalf("a call with trace context %q: %v", tc.Parent, err)
		}
		ss := srvTel.next(t)
		if ss.Parent().IsValid() || !ss.SpanContext().IsValid() {
			t.Errorf("trace context %q: the server span's parent %v; want a new root", tc.Parent, ss.Parent())
		}
	}
	// A well-formed one, for contrast: continued.
	good := "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	ctx := runtime.WithOutgoingTrace(context.Background(), runtime.TraceContext{Parent: good, State: "congo=t61rcWkgMzE"})
	if _, err := runtime.CallUnary[wrapperspb.StringValue](ctx, c, echoMethod, wrapperspb.String("x")); err != nil {
		t.Fatal(err)
	}
	ss := srvTel.next(t)
	if got := ss.Parent().TraceID().String() + "/" + ss.Parent().SpanID().String(); got != "0af7651916cd43dd8448eb211c80319c/b7ad6b7169203331" {
		t.Errorf("the server span's parent %s, want the caller's", got)
	}
	if got := ss.SpanContext().TraceState().String(); got != "congo=t61rcWkgMzE" {
		t.Errorf("trace state %q, want the caller's", got)
	}
}

// TestTraceRawInject: a raw request made with Inject(ctx) inside a span
// carries that span's context: the handler's span is its child.
func TestTraceRawInject(t *testing.T) {
	srvTel, cliTel := newTelemetry(t), newTelemetry(t)
	srv := testServer(t, transports[0], nil, srvTel.a.ServerOptions()...)
	c := dial(t, srv, nil)
	ctx, span := cliTel.tp.Tracer("test").Start(context.Background(), "raw call", trace.WithSpanKind(trace.SpanKindClient))
	resp, err := c.Request(otelobserve.Inject(ctx), wire.NewRequest(bizEcho, []byte("raw")))
	span.End()
	if err != nil || resp.Text() != "raw" {
		t.Fatalf("raw Request = %v, %v", resp, err)
	}
	cs, ss := cliTel.next(t), srvTel.next(t)
	want(t, ss, fmt.Sprintf("biz/%d", bizEcho), trace.SpanKindServer, codes.Unset, map[attribute.Key]string{"rpc.method": fmt.Sprintf("biz/%d", bizEcho)})
	childOf(t, ss, cs)
	// Without a span, Inject adds nothing.
	if got := otelobserve.Inject(context.Background()); got != context.Background() {
		t.Error("Inject without a span changed the context")
	}
}
