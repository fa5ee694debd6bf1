package otelobserve_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/msgtrans/msgtrans-go/cluster/natscluster"
	"github.com/msgtrans/msgtrans-go/internal/natstest"
	"github.com/msgtrans/msgtrans-go/runtime"
)

// clusterNode starts a server traced by tel as a node of the cluster on the
// NATS server at url.
func clusterNode(t *testing.T, url string, tel *telemetry) *runtime.Server {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	cl, err := natscluster.New(nc, natscluster.WithPrefix("oteltest"), natscluster.WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	srv := testServer(t, "tcp://127.0.0.1:0", make(chan string, 8), append(tel.a.ServerOptions(), runtime.WithCluster(cl))...)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	return srv
}

// TestTraceAcrossCluster: on a two-node NATS cluster, a push from one node
// to a group whose member is a client of the other, and a call from one
// node to a session of the other, join the client's spans to the node's:
// the trace context crosses the cluster with the packet.
func TestTraceAcrossCluster(t *testing.T) {
	ns := natstest.Start(t)
	telA, telB, telC := newTelemetry(t), newTelemetry(t), newTelemetry(t)
	a, b := clusterNode(t, ns.URL(), telA), clusterNode(t, ns.URL(), telB)
	for _, n := range []*runtime.Server{a, b} {
		deadline := time.Now().Add(10 * time.Second)
		for ids, _ := n.Nodes(context.Background()); len(ids) != 2; ids, _ = n.Nodes(context.Background()) {
			if time.Now().After(deadline) {
				t.Fatal("the nodes do not see each other within 10s")
			}
			time.Sleep(10 * time.Millisecond) // polling the cluster's membership
		}
	}
	notes := make(chan string, 8)
	dial(t, b, notes, telC.a.ClientOptions()...)
	sess := b.Sessions()[0]
	if err := b.Join("room", sess); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for ids, _ := a.ClusterMembers(context.Background(), "room"); len(ids) != 1; ids, _ = a.ClusterMembers(context.Background(), "room") {
		if time.Now().After(deadline) {
			t.Fatal("the group is not seen from the other node within 10s")
		}
		time.Sleep(10 * time.Millisecond) // polling the cluster's membership
	}

	if _, err := runtime.Push(context.Background(), a, runtime.ToGroup("room"), noteMethod, wrapperspb.String("across")); err != nil {
		t.Fatal(err)
	}
	push, process := telA.next(t), telC.next(t)
	want(t, push, "push test.v1.Otel/Note", trace.SpanKindProducer, codes.Unset, map[attribute.Key]string{"msgtrans.push.target": "group", "msgtrans.push.recipients": "0"})
	want(t, process, "process test.v1.Otel/Note", trace.SpanKindConsumer, codes.Unset, nil)
	childOf(t, process, push)

	resp, err := runtime.CallSession[wrapperspb.StringValue](context.Background(), a, sess.ID(), echoMethod, wrapperspb.String("across"))
	if err != nil || resp.Value != "across" {
		t.Fatalf("CallSession across the cluster = %v, %v", resp, err)
	}
	call, served := telA.next(t), telC.next(t)
	want(t, call, "test.v1.Otel/Echo", trace.SpanKindClient, codes.Unset, map[attribute.Key]string{"rpc.response.status_code": "OK"})
	want(t, served, "test.v1.Otel/Echo", trace.SpanKindServer, codes.Unset, nil)
	childOf(t, served, call)
	telB.none(t) // the node that forwards adds no span of its own
}
