package promobserve_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/msgtrans/msgtrans-go/cluster/natscluster"
	"github.com/msgtrans/msgtrans-go/internal/natstest"
	"github.com/msgtrans/msgtrans-go/runtime"
	"github.com/msgtrans/msgtrans-go/wire"
)

// TestCluster: a push to a group on one node of a NATS cluster is counted
// as published there, and as received (with its recipients) on the node
// that holds the member.
func TestCluster(t *testing.T) {
	ns := natstest.Start(t)
	node := func(t *testing.T) (*runtime.Server, metrics) {
		obs, m := newObserver(t)
		nc, err := nats.Connect(ns.URL())
		if err != nil {
			t.Fatal(err)
		}
		cl, err := natscluster.New(nc, natscluster.WithPrefix("promtest"))
		if err != nil {
			t.Fatal(err)
		}
		srv, err := runtime.NewServer(runtime.WithCluster(cl), runtime.WithObserver(obs))
		if err != nil {
			t.Fatal(err)
		}
		if err := srv.Listen(context.Background(), "tcp://127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = srv.Shutdown(ctx)
			nc.Close()
		})
		return srv, m
	}
	a, ma := node(t)
	b, mb := node(t)

	got := make(chan struct{}, 100)
	c, err := runtime.NewClient(b.Addrs()[0])
	if err != nil {
		t.Fatal(err)
	}
	c.Handle(5, runtime.HandlerFunc(func(context.Context, *runtime.Session, *wire.Packet) (*wire.Packet, error) {
		got <- struct{}{}
		return nil, nil
	}))
	if err := c.Connect(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	mb.eventually(1, "msgtrans_sessions", "side", "server")
	if err := b.Join("g", b.Sessions()[0]); err != nil {
		t.Fatal(err)
	}
	// The node holding the member subscribes to the group's subject; push
	// until one arrives.
	pushed := 0
	deadline := time.After(10 * time.Second)
	for received := false; !received; {
		if _, err := a.Push(context.Background(), runtime.ToGroup("g"), wire.NewOneWay(5, []byte("hi"))); err != nil {
			t.Fatal(err)
		}
		pushed++
		select {
		case <-got:
			received = true
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			t.Fatal("no push crossed the cluster")
		}
	}
	ma.eventually(float64(pushed), "msgtrans_cluster_published_total", "target", "group", "result", "ok")
	ma.atLeast(float64(pushed*wire.HeaderSize), "msgtrans_cluster_published_bytes_total", "target", "group")
	mb.atLeast(1, "msgtrans_cluster_received_total", "target", "group")
	mb.atLeast(1, "msgtrans_cluster_received_recipients_total", "target", "group")
	if r, d := mb.value("msgtrans_cluster_received_total"), mb.value("msgtrans_cluster_received_recipients_total"); d != r {
		t.Errorf("node b: %v pushes received, %v recipients, want one each", r, d)
	}
	// Node a's broadcast had no local recipient.
	ma.eventually(float64(pushed), "msgtrans_broadcast_recipients", "target", "group")
}
