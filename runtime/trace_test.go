package runtime_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/msgtrans/msgtrans-go/runtime"
	"github.com/msgtrans/msgtrans-go/wire"
)

// traceA and traceB are two W3C trace contexts a test tells apart.
var (
	traceA = runtime.TraceContext{Parent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", State: "congo=t61rcWkgMzE"}
	traceB = runtime.TraceContext{Parent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"}
)

// traced records the CallInfo of every call a handler serves, by a name.
type traced struct{ ch chan string }

func newTraced() *traced { return &traced{ch: make(chan string, 64)} }

func (tr *traced) record(name string, ctx context.Context) {
	ci, _ := runtime.CallInfoFromContext(ctx)
	tr.ch <- fmt.Sprintf("%s %s", name, ci.Trace.Parent)
}

func (tr *traced) next(t *testing.T) string {
	t.Helper()
	select {
	case s := <-tr.ch:
		return s
	case <-time.After(10 * time.Second):
		t.Fatal("no call within 10s")
		return ""
	}
}

// TestTraceTravels: a trace context set with WithOutgoingTrace travels
// with every kind of call (typed and raw requests, one-way calls, pushes
// to one session and to a group, a server's call to its client, stream
// opens) and reaches the handler's CallInfo, on every transport; calls
// made without one carry none, and a handler's context does not pass on
// the trace context its call arrived with.
func TestTraceTravels(t *testing.T) {
	for _, tc := range transportCases() {
		t.Run(tc.name, func(t *testing.T) { testTraceTravels(t, tc) })
	}
}

func testTraceTravels(t *testing.T, tc transportCase) {
	f := newFixture(t, tc)
	atServer, atClient := newTraced(), newTraced()
	f.srv.HandleMethod(echoMethod, runtime.NewUnaryHandler(func(ctx context.Context, s *runtime.Session, m *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
		atServer.record("echo", ctx)
		if m.Value == "forward" {
			// The handler's context calls on without a trace context of
			// its own: the caller's does not travel further.
			if _, err := runtime.CallUnary[wrapperspb.StringValue](ctx, s, echoMethod, wrapperspb.String("back")); err != nil {
				return nil, err
			}
		}
		return m, nil
	}))
	f.srv.HandleMethod(noteMethod, runtime.NewOneWayHandler(func(ctx context.Context, _ *runtime.Session, _ *wrapperspb.StringValue) error {
		atServer.record("note", ctx)
		return nil
	}))
	f.srv.Handle(bizEcho, runtime.HandlerFunc(func(ctx context.Context, _ *runtime.Session, p *wire.Packet) (*wire.Packet, error) {
		atServer.record("raw "+string(p.Payload), ctx)
		return p.Reply(p.Payload), nil
	}))
	f.srv.HandleStream(countMethod, runtime.NewServerStreamHandler(func(ctx context.Context, _ *runtime.Session, req *wrapperspb.Int64Value, st *runtime.ServerStream[wrapperspb.Int64Value]) error {
		atServer.record("stream", ctx)
		return st.Send(req)
	}))
	clients := make([]*runtime.Client, 2)
	for i := range clients {
		c := f.dial()
		c.HandleMethod(noteMethod, runtime.NewOneWayHandler(func(ctx context.Context, _ *runtime.Session, m *wrapperspb.StringValue) error {
			atClient.record("note "+m.Value, ctx)
			return nil
		}))
		c.HandleMethod(echoMethod, runtime.NewUnaryHandler(func(ctx context.Context, _ *runtime.Session, m *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
			atClient.record("echo "+m.Value, ctx)
			return m, nil
		}))
		c.Handle(bizNote, runtime.HandlerFunc(func(ctx context.Context, _ *runtime.Session, p *wire.Packet) (*wire.Packet, error) {
			atClient.record("raw "+string(p.Payload), ctx)
			return nil, nil
		}))
		clients[i] = c
	}
	sessions := f.waitSessions(2)
	for _, s := range sessions {
		if err := f.srv.Join("room", s); err != nil {
			t.Fatal(err)
		}
	}
	c := clients[0]
	for i, tr := range []runtime.TraceContext{traceA, {}} {
		ctx := context.Background()
		if i == 0 {
			ctx = runtime.WithOutgoingTrace(ctx, tr)
		}
		want := func(s string) string { return s + " " + tr.Parent }

		if _, err := runtime.CallUnary[wrapperspb.StringValue](ctx, c, echoMethod, wrapperspb.String("x")); err != nil {
			t.Fatal(err)
		}
		if got := atServer.next(t); got != want("echo") {
			t.Errorf("typed request: %q, want %q", got, want("echo"))
		}
		if err := runtime.SendOneWay(ctx, c, noteMethod, wrapperspb.String("x")); err != nil {
			t.Fatal(err)
		}
		if got := atServer.next(t); got != want("note") {
			t.Errorf("typed one-way: %q, want %q", got, want("note"))
		}
		resp, err := c.Request(ctx, wire.NewRequest(bizEcho, []byte("ping")))
		if err != nil || resp.Text() != "ping" {
			t.Fatalf("raw request = %v, %v", resp, err)
		}
		if got := atServer.next(t); got != want("raw ping") {
			t.Errorf("raw request: %q, want %q", got, want("raw ping"))
		}
		st, err := runtime.OpenServerStream[wrapperspb.Int64Value](ctx, c, countMethod, wrapperspb.Int64(7))
		if err != nil {
			t.Fatal(err)
		}
		if m, err := st.Recv(); err != nil || m.Value != 7 {
			t.Fatalf("stream Recv = %v, %v", m, err)
		}
		_ = st.Close()
		if got := atServer.next(t); got != want("stream") {
			t.Errorf("stream open: %q, want %q", got, want("stream"))
		}

		// The server's side: a typed push to one session, to the group, a
		// raw push, and a call to the client.
		one := sessions[1]
		if n, err := runtime.Push(ctx, f.srv, one.Target(), noteMethod, wrapperspb.String("one")); err != nil || n != 1 {
			t.Fatalf("Push to one = %d, %v", n, err)
		}
		if got := atClient.next(t); got != want("note one") {
			t.Errorf("push to one: %q, want %q", got, want("note one"))
		}
		if n, err := runtime.Push(ctx, f.srv, runtime.ToGroup("room"), noteMethod, wrapperspb.String("all")); err != nil || n != 2 {
			t.Fatalf("Push to the group = %d, %v", n, err)
		}
		got := []string{atClient.next(t), atClient.next(t)}
		slices.Sort(got)
		if w := []string{want("note all"), want("note all")}; !slices.Equal(got, w) {
			t.Errorf("push to the group: %q, want %q", got, w)
		}
		if _, err := f.srv.Push(ctx, one.Target(), wire.NewOneWay(bizNote, []byte("raw"))); err != nil {
			t.Fatal(err)
		}
		if got := atClient.next(t); got != want("raw raw") {
			t.Errorf("raw push: %q, want %q", got, want("raw raw"))
		}
		if _, err := runtime.CallSession[wrapperspb.StringValue](ctx, f.srv, one.ID(), echoMethod, wrapperspb.String("call")); err != nil {
			t.Fatal(err)
		}
		if got := atClient.next(t); got != want("echo call") {
			t.Errorf("server's call: %q, want %q", got, want("echo call"))
		}
	}

	// A traced call's handler calls back with its own context: nothing
	// travels on.
	ctx := runtime.WithOutgoingTrace(context.Background(), traceB)
	if _, err := runtime.CallUnary[wrapperspb.StringValue](ctx, c, echoMethod, wrapperspb.String("forward")); err != nil {
		t.Fatal(err)
	}
	if got, want := atServer.next(t), "echo "+traceB.Parent; got != want {
		t.Errorf("forwarding call: %q, want %q", got, want)
	}
	if got, want := atClient.next(t), "echo back "; got != want {
		t.Errorf("the handler's own call: %q, want %q", got, want)
	}
}

// TestTracePacket: what a raw packet carries. A trace context in the
// packet's own ext header wins over the context's; a raw ext header of
// another layout is left untouched (and no trace context travels); the
// caller's packet is never written; tracestate travels with its parent.
func TestTracePacket(t *testing.T) {
	f := newFixture(t, transportCases()[0])
	got := make(chan *wire.Packet, 4)
	f.srv.Handle(bizEcho, runtime.HandlerFunc(func(ctx context.Context, _ *runtime.Session, p *wire.Packet) (*wire.Packet, error) {
		ci, _ := runtime.CallInfoFromContext(ctx)
		q := &wire.Packet{BizType: p.BizType, Flags: p.Flags, Ext: slices.Clone(p.Ext), Payload: []byte(ci.Trace.Parent + "|" + ci.Trace.State)}
		got <- q
		return p.Reply(nil), nil
	}))
	c := f.dial()
	ctx := runtime.WithOutgoingTrace(context.Background(), traceA)

	own := wire.NewRequest(bizEcho, nil)
	own.Flags |= wire.FlagHasRouteTag
	own.Ext = wire.AppendExt(nil, &wire.Ext{TraceParent: traceB.Parent})
	ownExt := slices.Clone(own.Ext)
	textTag := wire.NewRequest(bizEcho, nil)
	textTag.Flags |= wire.FlagHasRouteTag
	textTag.Ext = []byte("route:abc")
	plain := wire.NewRequest(bizEcho, nil)

	tests := []struct {
		name    string
		p       *wire.Packet
		want    string
		wantExt []byte
	}{
		{"no ext header: one holding the trace context", plain, traceA.Parent + "|" + traceA.State, nil},
		{"its own trace context wins", own, traceB.Parent + "|", ownExt},
		{"an ext header of another layout is left as it is", textTag, "|", []byte("route:abc")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := *tt.p
			if _, err := c.Request(ctx, tt.p); err != nil {
				t.Fatal(err)
			}
			if tt.p.Flags != before.Flags || !slices.Equal(tt.p.Ext, before.Ext) {
				t.Errorf("the caller's packet changed: %+v, was %+v", tt.p, before)
			}
			q := recv(t, got)
			if string(q.Payload) != tt.want {
				t.Errorf("trace context received %q, want %q", q.Payload, tt.want)
			}
			if tt.wantExt != nil && !slices.Equal(q.Ext, tt.wantExt) {
				t.Errorf("ext header received % x, want % x", q.Ext, tt.wantExt)
			}
		})
	}
}

// TestPushInterceptors: push interceptors wrap every push once, however
// many sessions it reaches, in order; they see the push's CallInfo and
// target, may set the trace context it carries, and may refuse it.
func TestPushInterceptors(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	see := func(name string) runtime.PushInterceptor {
		return func(next runtime.Pusher) runtime.Pusher {
			return func(ctx context.Context, to runtime.Target, p *wire.Packet) (int, error) {
				ci, _ := runtime.CallInfoFromContext(ctx)
				n, err := next(ctx, to, p)
				mu.Lock()
				method := fmt.Sprintf("biz %d", ci.BizType)
				if ci.Method != nil {
					method = ci.Method.Name()
				}
				seen = append(seen, fmt.Sprintf("%s %s to %s %s outbound=%v: %d", name, method, to.Kind(), ci.Type, ci.Outbound, n))
				mu.Unlock()
				return n, err
			}
		}
	}
	setTrace := func(next runtime.Pusher) runtime.Pusher {
		return func(ctx context.Context, to runtime.Target, p *wire.Packet) (int, error) {
			return next(runtime.WithOutgoingTrace(ctx, traceB), to, p)
		}
	}
	refuse := func(next runtime.Pusher) runtime.Pusher {
		return func(ctx context.Context, to runtime.Target, p *wire.Packet) (int, error) {
			if to.Kind() == "all" {
				return 0, runtime.NewError(runtime.CodePermissionDenied, "not to everyone")
			}
			return next(ctx, to, p)
		}
	}
	f := newFixture(t, transportCases()[1], runtime.WithPushInterceptors(see("outer"), see("inner"), setTrace, refuse))
	at := newTraced()
	for range 3 {
		c := f.dial()
		c.HandleMethod(noteMethod, runtime.NewOneWayHandler(func(ctx context.Context, _ *runtime.Session, m *wrapperspb.StringValue) error {
			at.record(m.Value, ctx)
			return nil
		}))
		c.Handle(bizNote, runtime.HandlerFunc(func(ctx context.Context, _ *runtime.Session, p *wire.Packet) (*wire.Packet, error) {
			at.record(string(p.Payload), ctx)
			return nil, nil
		}))
	}
	sessions := f.waitSessions(3)
	for _, s := range sessions {
		if err := f.srv.Join("room", s); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	if n, err := runtime.Push(ctx, f.srv, runtime.ToGroup("room"), noteMethod, wrapperspb.String("typed")); err != nil || n != 3 {
		t.Fatalf("Push = %d, %v", n, err)
	}
	if n, err := runtime.Push(ctx, f.srv, sessions[0].Target(), noteMethod, wrapperspb.String("typed")); err != nil || n != 1 {
		t.Fatalf("Push to one = %d, %v", n, err)
	}
	if err := f.srv.Send(sessions[1].ID(), wire.NewOneWay(bizNote, []byte("raw"))); err != nil {
		t.Fatal(err)
	}
	var got []string
	for range 5 {
		got = append(got, at.next(t))
	}
	slices.Sort(got)
	typed, raw := "typed "+traceB.Parent, "raw "+traceB.Parent
	if want := []string{raw, typed, typed, typed, typed}; !slices.Equal(got, want) {
		t.Errorf("the pushes were received as %q, want %q", got, want)
	}
	if _, err := f.srv.Push(ctx, runtime.ToAll(), wire.NewOneWay(bizNote, []byte("refused"))); runtime.CodeOf(err) != runtime.CodePermissionDenied {
		t.Errorf("a push the interceptor refuses: %v, want permission_denied", err)
	}
	want := []string{
		"inner Note to group oneway outbound=true: 3", "outer Note to group oneway outbound=true: 3",
		"inner Note to session oneway outbound=true: 1", "outer Note to session oneway outbound=true: 1",
		fmt.Sprintf("inner biz %d to session oneway outbound=true: 1", bizNote), fmt.Sprintf("outer biz %d to session oneway outbound=true: 1", bizNote),
		fmt.Sprintf("inner biz %d to all oneway outbound=true: 0", bizNote), fmt.Sprintf("outer biz %d to all oneway outbound=true: 0", bizNote),
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(seen, want) {
		t.Errorf("interceptors saw\n%q\nwant\n%q", seen, want)
	}
}

// TestTraceContextCarrier: a *TraceContext is a text map carrier for the
// keys traceparent and tracestate, and for no other.
func TestTraceContextCarrier(t *testing.T) {
	var tc runtime.TraceContext
	if keys := tc.Keys(); len(keys) != 0 {
		t.Errorf("Keys of an empty trace context = %q", keys)
	}
	tc.Set("tracestate", "k=v")
	if keys := tc.Keys(); len(keys) != 0 {
		t.Errorf("Keys with a state and no parent = %q, want none (a state travels only beside a parent)", keys)
	}
	tc.Set("traceparent", traceA.Parent)
	tc.Set("baggage", "user=x")
	tests := []struct{ key, want string }{
		{"traceparent", traceA.Parent},
		{"tracestate", "k=v"},
		{"baggage", ""},
		{"Traceparent", ""},
	}
	for _, tt := range tests {
		if got := tc.Get(tt.key); got != tt.want {
			t.Errorf("Get(%q) = %q, want %q", tt.key, got, tt.want)
		}
	}
	if keys := tc.Keys(); !slices.Equal(keys, []string{"traceparent", "tracestate"}) {
		t.Errorf("Keys = %q", keys)
	}
	if _, ok := runtime.OutgoingTrace(runtime.WithOutgoingTrace(context.Background(), runtime.TraceContext{State: "k=v"})); ok {
		t.Error("a trace context with no parent counts as one to send")
	}
	if got, ok := runtime.OutgoingTrace(runtime.WithOutgoingTrace(context.Background(), tc)); !ok || got != tc {
		t.Errorf("OutgoingTrace = %+v, %v; want %+v", got, ok, tc)
	}
}

// countingObserver counts the calls and sends reported per route.
type countingObserver struct {
	runtime.BaseObserver
	mu     sync.Mutex
	counts map[string]int
}

type countingRoute struct {
	runtime.BaseObserver
	o    *countingObserver
	name string
}

func (o *countingObserver) Route(r runtime.Route) runtime.RouteObserver {
	return &countingRoute{o: o, name: r.Name()}
}

func (r *countingRoute) add(what string) {
	r.o.mu.Lock()
	r.o.counts[what+" "+r.name]++
	r.o.mu.Unlock()
}

func (r *countingRoute) Called(time.Duration, runtime.Code) { r.add("called") }
func (r *countingRoute) Sent()                              { r.add("sent") }

// TestTraceRawPacketsObserved: a raw packet whose ext header holds only a
// trace context is still a raw call to the observer, counted under its
// biz_type, sent or requested.
func TestTraceRawPacketsObserved(t *testing.T) {
	f := newFixture(t, transportCases()[0])
	f.srv.Handle(bizEcho, echo)
	got := make(chan *wire.Packet, 1)
	f.srv.Handle(bizNote, collect(got))
	o := &countingObserver{counts: make(map[string]int)}
	c := f.dial(runtime.WithObserver(o))
	traced := func(p *wire.Packet) *wire.Packet {
		p.Flags |= wire.FlagHasRouteTag
		p.Ext = wire.AppendExt(nil, &wire.Ext{TraceParent: traceA.Parent})
		return p
	}
	if err := c.Send(traced(wire.NewOneWay(bizNote, []byte("x")))); err != nil {
		t.Fatal(err)
	}
	recv(t, got)
	if _, err := c.Request(context.Background(), traced(wire.NewRequest(bizEcho, []byte("x")))); err != nil {
		t.Fatal(err)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, k := range []string{fmt.Sprintf("sent biz/%d", bizNote), fmt.Sprintf("called biz/%d", bizEcho)} {
		if o.counts[k] != 1 {
			t.Errorf("%s: %d, want 1 (counts %v)", k, o.counts[k], o.counts)
		}
	}
}
