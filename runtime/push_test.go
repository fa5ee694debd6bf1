package runtime_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/msgtrans/msgtrans-go/runtime"
	"github.com/msgtrans/msgtrans-go/wire"
)

// Typed methods for the tests: a one-way note the server pushes, and a
// unary echo either side serves.
var (
	noteMethod = runtime.NewMethod("test.v1.Push.Note", wire.RouteID("test.v1.Push.Note"), runtime.MethodOneWay)
	echoMethod = runtime.NewMethod("test.v1.Push.Echo", wire.RouteID("test.v1.Push.Echo"), runtime.MethodUnary)
)

// notes collects the typed notes a client receives.
type notes struct{ ch chan string }

func newNotes(c *runtime.Client) *notes {
	n := &notes{ch: make(chan string, 64)}
	c.HandleMethod(noteMethod, runtime.NewOneWayHandler(func(_ context.Context, _ *runtime.Session, m *wrapperspb.StringValue) error {
		n.ch <- m.Value
		return nil
	}))
	return n
}

// next returns the next note, failing the test after 10 s.
func (n *notes) next(t *testing.T) string {
	t.Helper()
	select {
	case v := <-n.ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatal("no note within 10s")
		return ""
	}
}

// TestPushTargets: a push reaches exactly its target, on every transport: a
// session by id, a group, a group but one session, every session; a session
// that is not there is CodeNotFound for sends and calls alike.
func TestPushTargets(t *testing.T) {
	for _, tc := range transportCases() {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, tc)
			var clients []*runtime.Client
			var got []*notes
			for range 3 {
				c, err := runtime.NewClient(f.addr, runtime.WithTLS(f.certs.Client))
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, newNotes(c))
				c.HandleMethod(echoMethod, runtime.NewUnaryHandler(func(_ context.Context, _ *runtime.Session, m *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
					return wrapperspb.String("client: " + m.Value), nil
				}))
				if err := c.Connect(context.Background()); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = c.Close() })
				clients = append(clients, c)
			}
			ss := f.waitSessions(3)
			// Sessions in the order of the clients: each client's session
			// has its local address as remote address.
			slices.SortFunc(ss, func(a, b *runtime.Session) int {
				return index(clients, a) - index(clients, b)
			})
			for _, s := range ss[:2] {
				if err := f.srv.Join("room", s); err != nil {
					t.Fatal(err)
				}
			}
			ctx := context.Background()
			push := func(to runtime.Target, text string) int {
				t.Helper()
				n, err := runtime.Push(ctx, f.srv, to, noteMethod, wrapperspb.String(text))
				if err != nil {
					t.Fatalf("Push(%s): %v", to, err)
				}
				return n
			}
			tests := []struct {
				to   runtime.Target
				want []bool // which clients get it
			}{
				{runtime.ToSession(ss[1].ID()), []bool{false, true, false}},
				{ss[2].Target(), []bool{false, false, true}},
				{runtime.ToGroup("room"), []bool{true, true, false}},
				{runtime.ToGroupExcept("room", ss[0].ID()), []bool{false, true, false}},
				{runtime.ToGroup("nobody's room"), []bool{false, false, false}},
				{runtime.ToAll(), []bool{true, true, true}},
			}
			for i, tt := range tests {
				text := fmt.Sprintf("%d: %s", i, tt.to)
				want := 0
				for _, w := range tt.want {
					if w {
						want++
					}
				}
				if n := push(tt.to, text); n != want {
					t.Errorf("Push(%s) reached %d sessions, want %d", tt.to, n, want)
				}
				// A marker to everyone closes the round: what a client
				// gets before it is what the push delivered to it.
				push(runtime.ToAll(), "end")
				for c, w := range tt.want {
					first := got[c].next(t)
					if w && first != text {
						t.Errorf("client %d got %q, want %q", c, first, text)
					}
					if w {
						first = got[c].next(t)
					}
					if first != "end" {
						t.Errorf("client %d got %q after %s, want the end marker", c, first, tt.to)
					}
				}
			}

			// Calls by session id.
			resp, err := runtime.CallSession[wrapperspb.StringValue](ctx, f.srv, ss[1].ID(), echoMethod, wrapperspb.String("hi"))
			if err != nil || resp.Value != "client: hi" {
				t.Errorf("CallSession = %v, %v", resp, err)
			}

			// A session that is not there.
			const gone = 1 << 40
			notFound := []struct {
				name string
				err  func() error
			}{
				{"Push", func() error {
					_, err := runtime.Push(ctx, f.srv, runtime.ToSession(gone), noteMethod, wrapperspb.String("x"))
					return err
				}},
				{"Server.Push", func() error {
					_, err := f.srv.Push(ctx, runtime.ToSession(gone), wire.NewText(bizNote, "x"))
					return err
				}},
				{"Server.Send", func() error { return f.srv.Send(gone, wire.NewText(bizNote, "x")) }},
				{"Server.Request", func() error {
					_, err := f.srv.Request(ctx, gone, wire.NewRequest(bizEcho, nil))
					return err
				}},
				{"CallSession", func() error {
					_, err := runtime.CallSession[wrapperspb.StringValue](ctx, f.srv, gone, echoMethod, wrapperspb.String("x"))
					return err
				}},
			}
			for _, nf := range notFound {
				if err := nf.err(); runtime.CodeOf(err) != runtime.CodeNotFound {
					t.Errorf("%s to a missing session: %v, want not_found", nf.name, err)
				}
			}
			// A cancelled context pushes nothing.
			cctx, cancel := context.WithCancel(ctx)
			cancel()
			if _, err := runtime.Push(cctx, f.srv, runtime.ToAll(), noteMethod, wrapperspb.String("x")); runtime.CodeOf(err) != runtime.CodeCanceled {
				t.Errorf("Push with a cancelled context: %v, want canceled", err)
			}
		})
	}
}

// index returns the position of the client whose connection s serves.
func index(clients []*runtime.Client, s *runtime.Session) int {
	for i, c := range clients {
		if cs := c.Session(); cs != nil && cs.LocalAddr().String() == s.RemoteAddr().String() {
			return i
		}
	}
	return len(clients)
}

// TestCallInfo: handlers find the call in their context, parsed once:
// typed calls with their method, raw packets with their biz_type.
func TestCallInfo(t *testing.T) {
	f := newFixture(t, transportCases()[0])
	infos := make(chan runtime.CallInfo, 4)
	record := func(ctx context.Context) {
		ci, ok := runtime.CallInfoFromContext(ctx)
		if !ok {
			t.Error("no CallInfo in the handler's context")
		}
		infos <- ci
	}
	f.srv.HandleMethod(echoMethod, runtime.NewUnaryHandler(func(ctx context.Context, _ *runtime.Session, m *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
		record(ctx)
		return m, nil
	}))
	f.srv.HandleMethod(noteMethod, runtime.NewOneWayHandler(func(ctx context.Context, _ *runtime.Session, _ *wrapperspb.StringValue) error {
		record(ctx)
		return nil
	}))
	f.srv.Handle(bizEcho, runtime.HandlerFunc(func(ctx context.Context, _ *runtime.Session, p *wire.Packet) (*wire.Packet, error) {
		record(ctx)
		return p.Reply(nil), nil
	}))
	c := f.dial()
	sess := f.waitSessions(1)[0]
	ctx := context.Background()
	if _, err := runtime.CallUnary[wrapperspb.StringValue](ctx, c, echoMethod, wrapperspb.String("x")); err != nil {
		t.Fatal(err)
	}
	if err := runtime.SendOneWay(ctx, c, noteMethod, wrapperspb.String("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Request(ctx, wire.NewRequest(bizEcho, nil)); err != nil {
		t.Fatal(err)
	}
	want := []runtime.CallInfo{
		{Method: echoMethod, Type: wire.Request, Session: sess},
		{Method: noteMethod, Type: wire.OneWay, Session: sess},
		{BizType: bizEcho, Type: wire.Request, Session: sess},
	}
	for _, w := range want {
		if got := <-infos; got != w {
			t.Errorf("CallInfo %+v, want %+v", got, w)
		}
	}
}

// TestCallInterceptors: a client's call interceptors wrap its typed calls
// and one-way sends, in order, see each call's CallInfo and may refuse it;
// a one-way send honours its context.
func TestCallInterceptors(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	trace := func(name string) runtime.CallInterceptor {
		return func(next runtime.Invoker) runtime.Invoker {
			return func(ctx context.Context, p *wire.Packet) (*wire.Packet, error) {
				ci, _ := runtime.CallInfoFromContext(ctx)
				mu.Lock()
				seen = append(seen, fmt.Sprintf("%s %s %s outbound=%v", name, ci.Method.Name(), ci.Type, ci.Outbound))
				mu.Unlock()
				return next(ctx, p)
			}
		}
	}
	refuse := func(next runtime.Invoker) runtime.Invoker {
		return func(ctx context.Context, p *wire.Packet) (*wire.Packet, error) {
			if ci, _ := runtime.CallInfoFromContext(ctx); ci.Method == noteMethod && strings.Contains(string(p.Payload), "secret") {
				return nil, runtime.NewError(runtime.CodePermissionDenied, "not that")
			}
			return next(ctx, p)
		}
	}
	f := newFixture(t, transportCases()[1])
	notes := make(chan string, 4)
	f.srv.HandleMethod(echoMethod, runtime.NewUnaryHandler(func(_ context.Context, _ *runtime.Session, m *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
		return m, nil
	}))
	f.srv.HandleMethod(noteMethod, runtime.NewOneWayHandler(func(_ context.Context, _ *runtime.Session, m *wrapperspb.StringValue) error {
		notes <- m.Value
		return nil
	}))
	c := f.dial(runtime.WithCallInterceptors(trace("outer"), trace("inner"), refuse))
	ctx := context.Background()
	resp, err := runtime.CallUnary[wrapperspb.StringValue](ctx, c, echoMethod, wrapperspb.String("hi"))
	if err != nil || resp.Value != "hi" {
		t.Fatalf("CallUnary = %v, %v", resp, err)
	}
	if err := runtime.SendOneWay(ctx, c, noteMethod, wrapperspb.String("note")); err != nil {
		t.Fatal(err)
	}
	if got := <-notes; got != "note" {
		t.Errorf("server got %q", got)
	}
	if err := runtime.SendOneWay(ctx, c, noteMethod, wrapperspb.String("secret")); runtime.CodeOf(err) != runtime.CodePermissionDenied {
		t.Errorf("a send the interceptor refuses: %v, want permission_denied", err)
	}
	want := []string{
		"outer Echo request outbound=true", "inner Echo request outbound=true",
		"outer Note oneway outbound=true", "inner Note oneway outbound=true",
		"outer Note oneway outbound=true", "inner Note oneway outbound=true",
	}
	mu.Lock()
	if !slices.Equal(seen, want) {
		t.Errorf("interceptors saw\n%q\nwant\n%q", seen, want)
	}
	mu.Unlock()

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	for _, kind := range []string{"with interceptors", "without"} {
		cc := c
		if kind == "without" {
			cc = f.dial()
		}
		if err := runtime.SendOneWay(cctx, cc, noteMethod, wrapperspb.String("late")); !errors.Is(err, context.Canceled) || runtime.CodeOf(err) != runtime.CodeCanceled {
			t.Errorf("a one-way send with a cancelled context (%s): %v, want canceled", kind, err)
		}
	}
	// The refused and the cancelled sends reached nobody.
	if _, err := runtime.CallUnary[wrapperspb.StringValue](ctx, c, echoMethod, wrapperspb.String("sync")); err != nil {
		t.Fatal(err)
	}
	select {
	case n := <-notes:
		t.Errorf("the server got %q", n)
	default:
	}
}
