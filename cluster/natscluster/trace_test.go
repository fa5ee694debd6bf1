package natscluster_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/msgtrans/msgtrans-go/internal/natstest"
	"github.com/msgtrans/msgtrans-go/runtime"
	"github.com/msgtrans/msgtrans-go/wire"
)

// echoMethod is a typed method clients serve, for calls across nodes.
var echoMethod = runtime.NewMethod("test.v1.Cluster.Echo", wire.RouteID("test.v1.Cluster.Echo"), runtime.MethodUnary)

// TestClusterTraceContext: the trace context of a push or a call crosses
// the cluster with its packet: a client of another node receives the one
// its sender set (WithOutgoingTrace), for a push to its session, a group
// push reaching both nodes, a raw call and a typed call; without one, none.
func TestClusterTraceContext(t *testing.T) {
	ns := natstest.Start(t)
	a, b := startNode(t, ns.URL()), startNode(t, ns.URL())
	for _, n := range []*node{a, b} {
		eventually(t, 5*time.Second, "the nodes see each other", func() bool {
			ids, _ := n.srv.Nodes(context.Background())
			return len(ids) == 2
		})
	}
	seen := make(chan string, 16)
	record := func(what string, ctx context.Context) {
		ci, _ := runtime.CallInfoFromContext(ctx)
		seen <- what + " " + ci.Trace.Parent + " " + ci.Trace.State
	}
	here, there := connect(t, a, "here"), connect(t, b, "there")
	for _, m := range []*member{here, there} {
		m.c.Handle(bizNote, runtime.HandlerFunc(func(ctx context.Context, _ *runtime.Session, p *wire.Packet) (*wire.Packet, error) {
			record("push "+p.Text(), ctx)
			return nil, nil
		}))
		m.c.Handle(bizEcho, runtime.HandlerFunc(func(ctx context.Context, _ *runtime.Session, p *wire.Packet) (*wire.Packet, error) {
			record("raw call", ctx)
			return p.Reply(p.Payload), nil
		}))
		m.c.HandleMethod(echoMethod, runtime.NewUnaryHandler(func(ctx context.Context, _ *runtime.Session, m *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
			record("typed call", ctx)
			return m, nil
		}))
	}
	join(t, a, here, "room")
	join(t, b, there, "room")
	eventually(t, 5*time.Second, "the group seen from both nodes", func() bool {
		all, err := a.srv.ClusterMembers(context.Background(), "room")
		return err == nil && len(all) == 2
	})
	next := func() string {
		t.Helper()
		select {
		case s := <-seen:
			return s
		case <-time.After(5 * time.Second):
			t.Fatal("nothing received within 5s")
			return ""
		}
	}
	tc := runtime.TraceContext{Parent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", State: "congo=t61rcWkgMzE"}
	for _, traced := range []bool{true, false} {
		ctx, suffix := context.Background(), "  "
		if traced {
			ctx, suffix = runtime.WithOutgoingTrace(ctx, tc), " "+tc.Parent+" "+tc.State
		}
		if _, err := a.srv.Push(ctx, runtime.ToSession(there.sess), wire.NewText(bizNote, "one")); err != nil {
			t.Fatal(err)
		}
		if got, want := next(), "push one"+suffix; got != want {
			t.Errorf("push to a session of another node: %q, want %q", got, want)
		}
		if _, err := a.srv.Push(ctx, runtime.ToGroup("room"), wire.NewText(bizNote, "room")); err != nil {
			t.Fatal(err)
		}
		got := []string{next(), next()}
		if want := "push room" + suffix; !slices.Equal(got, []string{want, want}) {
			t.Errorf("group push over both nodes: %q, want %q twice", got, want)
		}
		if _, err := a.srv.Request(ctx, there.sess, wire.NewRequest(bizEcho, []byte("x"))); err != nil {
			t.Fatal(err)
		}
		if got, want := next(), "raw call"+suffix; got != want {
			t.Errorf("raw call to another node: %q, want %q", got, want)
		}
		if _, err := runtime.CallSession[wrapperspb.StringValue](ctx, a.srv, there.sess, echoMethod, wrapperspb.String("x")); err != nil {
			t.Fatal(err)
		}
		if got, want := next(), "typed call"+suffix; got != want {
			t.Errorf("typed call to another node: %q, want %q", got, want)
		}
	}
}
