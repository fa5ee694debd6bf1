package main

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/msgtrans/msgtrans-go/cluster/natscluster"
	"github.com/msgtrans/msgtrans-go/internal/bench/gen/benchv1"
	"github.com/msgtrans/msgtrans-go/runtime"
)

// The cluster scenario: the same group broadcast on one server and on three
// nodes of a cluster (NATS embedded in this process), and a push to a
// session on another node against the same push made locally. With -max it
// instead holds 100,000 idle connections on six chat-server processes
// (see clusteridle.go).
//
// Broadcast: 3,000 sessions, all in one group, their clients in other
// processes; on one node all 3,000 are on it, in the cluster 1,000 on each
// node and the push is made on the first. Deliveries per second and lone
// broadcast latency as in the broadcast scenario.
//
// Push: one session on the second node; the first node pushes to it
// (through NATS) or the second does (locally), one push at a time, each
// once the previous has arrived; p50 and p99 over the pushes.
const (
	clusterNodes   = 3
	clusterMembers = 3000
	clusterGroup   = "bench"
	clusterPushes  = 500
)

func runCluster(e *env) error {
	if e.opt.max {
		return runClusterIdle(e)
	}
	ns, err := startNATS()
	if err != nil {
		return err
	}
	defer ns.Shutdown()
	members := pick(e, clusterMembers, 600)
	if e.opt.conns > 0 {
		members = e.opt.conns
	}
	for _, nodes := range []int{1, clusterNodes} {
		if err := measureClusterBroadcast(e, ns.ClientURL(), nodes, members); err != nil {
			return fmt.Errorf("broadcast over %d nodes: %w", nodes, err)
		}
	}
	return measureRemotePush(e, ns.ClientURL())
}

// startNATS starts a NATS server in this process on a free loopback port,
// with room for the largest packet the runtime sends.
func startNATS() (*server.Server, error) {
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, MaxPayload: 2 << 20, NoLog: true, NoSigs: true})
	if err != nil {
		return nil, err
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		return nil, fmt.Errorf("nats server not ready")
	}
	return ns, nil
}

// clusterNode is a msgtrans server that is a node of the cluster on NATS
// (or stands alone when url is "").
type clusterNode struct {
	*mtServer
	nc *nats.Conn
}

func startClusterNode(e *env, url string) (*clusterNode, error) {
	var extra []runtime.ServerOption
	var nc *nats.Conn
	if url != "" {
		var err error
		nc, err = nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectBufSize(-1))
		if err != nil {
			return nil, err
		}
		cl, err := natscluster.New(nc, natscluster.WithPrefix("bench"), natscluster.WithLogger(e.log))
		if err != nil {
			nc.Close()
			return nil, err
		}
		extra = append(extra, runtime.WithCluster(cl))
	}
	// Every session joins the group as it arrives.
	var rt atomic.Pointer[runtime.Server]
	extra = append(extra, runtime.WithEventHandler(func(ev runtime.Event) {
		if srv := rt.Load(); srv != nil && ev.Kind == runtime.ConnectionEstablished {
			_ = srv.Join(clusterGroup, ev.Session)
		}
	}))
	srv, err := e.startMsgtrans("tcp", extra...)
	if err != nil {
		if nc != nil {
			nc.Close()
		}
		return nil, err
	}
	rt.Store(srv.srv)
	return &clusterNode{mtServer: srv, nc: nc}, nil
}

func (n *clusterNode) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = n.srv.Shutdown(ctx)
	if n.nc != nil {
		n.nc.Close()
	}
}

// measureClusterBroadcast measures the group broadcast with the members
// spread over the given number of nodes.
func measureClusterBroadcast(e *env, url string, nodes, members int) error {
	// The cluster is "msgtrans" and one node its baseline, so that the
	// report gives their ratio.
	impl := implMsgtrans
	if nodes == 1 {
		url, impl = "", "1node"
	}
	var all []*clusterNode
	var procs []*clientProc
	defer func() {
		for _, n := range all {
			n.close()
		}
		for _, p := range procs {
			p.quit()
		}
	}()
	t0 := time.Now()
	per := members / nodes
	for range nodes {
		n, err := startClusterNode(e, url)
		if err != nil {
			return err
		}
		all = append(all, n)
		p, connected, err := startClients(e, 120*time.Second, "-impl", implMsgtrans, "-transport", "tcp", "-addr", n.addr, "-n", strconv.Itoa(per))
		if err != nil {
			return err
		}
		procs = append(procs, p)
		if err := waitCount(func() int { return len(n.srv.Members(clusterGroup)) }, connected, 30*time.Second); err != nil {
			return err
		}
	}
	if nodes > 1 {
		if err := waitNodes(all[0].srv, nodes); err != nil {
			return err
		}
		// Until every node has subscribed to the group, a push misses some.
		if err := waitClusterMembers(all[0].srv, per*nodes); err != nil {
			return err
		}
	}
	e.logf("cluster: %d members on %d node(s) in %v", per*nodes, nodes, time.Since(t0).Round(time.Millisecond))
	push := func(p *benchv1.Payload) error {
		_, err := all[0].push.SendFanout(context.Background(), runtime.ToGroup(clusterGroup), &benchv1.FanoutRequest{Payload: p})
		return err
	}
	suffix := fmt.Sprintf("_n%d", per*nodes)
	for round := 1; round <= e.opt.rounds; round++ {
		e.prof.start(impl)
		rate, burst, lone, err := multiRound(e, procs, per, push)
		e.prof.stop()
		if err != nil {
			return err
		}
		e.add("tcp", impl, "deliveries_per_s"+suffix, "msg/s", rate)
		e.add("tcp", impl, "burst_p99_us"+suffix, "µs", micros(burst[1]))
		e.add("tcp", impl, "lat_p50_us"+suffix, "µs", micros(lone[0]))
		e.add("tcp", impl, "lat_p99_us"+suffix, "µs", micros(lone[1]))
		e.logf("cluster broadcast round %d/%d %d members on %d node(s): %10.0f deliveries/s; lone broadcast p50 %.0fµs p99 %.0fµs",
			round, e.opt.rounds, per*nodes, nodes, rate, micros(lone[0]), micros(lone[1]))
	}
	return nil
}

// waitNodes waits until the server sees the cluster's nodes.
func waitNodes(srv *runtime.Server, want int) error {
	return waitCount(func() int { ids, _ := srv.Nodes(context.Background()); return len(ids) }, want, 30*time.Second)
}

// waitClusterMembers waits until the group's members on every node are
// seen, and a little more for the subscriptions behind them to settle.
func waitClusterMembers(srv *runtime.Server, want int) error {
	err := waitCount(func() int {
		ids, _ := srv.ClusterMembers(context.Background(), clusterGroup)
		return len(ids)
	}, want, 30*time.Second)
	time.Sleep(200 * time.Millisecond)
	return err
}

// multiRound is fanoutRound over several clients processes, each holding
// per of the recipients: the burst's rate counts every delivery up to the
// last one anywhere; the latencies are the medians of the processes' p50
// and the largest of their p99.
func multiRound(e *env, procs []*clientProc, per int, broadcast func(*benchv1.Payload) error) (rate float64, burst, lone [2]time.Duration, err error) {
	n := per * len(procs)
	reset := func(each int) error {
		for _, p := range procs {
			if err := p.send("RESET " + strconv.Itoa(each)); err != nil {
				return err
			}
			if _, err := p.expect("OK", 10*time.Second); err != nil {
				return err
			}
		}
		return nil
	}
	collect := func() (got, last int64, p50, p99 []float64, err error) {
		for _, p := range procs {
			f, err := p.expect("DONE", 60*time.Second)
			if err != nil {
				return 0, 0, nil, nil, err
			}
			got += atoi64(f[1])
			last = max(last, atoi64(f[2]))
			p50 = append(p50, float64(atoi64(f[3])))
			p99 = append(p99, float64(atoi64(f[4])))
		}
		return got, last, p50, p99, nil
	}
	bursts := max(4, burstDeliveries/n)
	if err := reset(bursts * per); err != nil {
		return 0, burst, lone, err
	}
	t0 := time.Now()
	for i := range bursts {
		if err := broadcast(e.payload(uint64(i))); err != nil {
			return 0, burst, lone, err
		}
	}
	got, last, p50, p99, err := collect()
	if err != nil {
		return 0, burst, lone, err
	}
	if got < int64(bursts*n) {
		e.logf("cluster: only %d of %d deliveries arrived", got, bursts*n)
	}
	rate = float64(got) / time.Duration(last-t0.UnixNano()).Seconds()
	burst = [2]time.Duration{time.Duration(median(p50)), time.Duration(maxOf(p99))}
	var p50s, p99s []float64
	for i := range loneBroadcasts(n) {
		if err := reset(per); err != nil {
			return 0, burst, lone, err
		}
		if err := broadcast(e.payload(uint64(i))); err != nil {
			return 0, burst, lone, err
		}
		_, _, p50, p99, err := collect()
		if err != nil {
			return 0, burst, lone, err
		}
		p50s = append(p50s, median(p50))
		p99s = append(p99s, maxOf(p99))
	}
	return rate, burst, [2]time.Duration{time.Duration(median(p50s)), time.Duration(median(p99s))}, nil
}

func maxOf(xs []float64) float64 {
	m := 0.0
	for _, x := range xs {
		m = max(m, x)
	}
	return m
}

// measureRemotePush measures pushes to one session from its own node
// (local) and from another (remote, through NATS).
func measureRemotePush(e *env, url string) error {
	a, err := startClusterNode(e, url)
	if err != nil {
		return err
	}
	defer a.close()
	b, err := startClusterNode(e, url)
	if err != nil {
		return err
	}
	defer b.close()
	if err := waitNodes(a.srv, 2); err != nil {
		return err
	}
	p, connected, err := startClients(e, 60*time.Second, "-impl", implMsgtrans, "-transport", "tcp", "-addr", b.addr, "-n", "1")
	if err != nil {
		return err
	}
	defer p.quit()
	if err := waitCount(b.srv.SessionCount, connected, 10*time.Second); err != nil {
		return err
	}
	id := b.srv.Sessions()[0].ID()
	for round := 1; round <= e.opt.rounds; round++ {
		for _, from := range []struct {
			impl string
			n    *clusterNode
		}{{"local", b}, {implMsgtrans, a}} { // remote: the report's ratio is remote/local
			var lats latencies
			for i := range pick(e, clusterPushes, 100) {
				if err := p.send("RESET 1"); err != nil {
					return err
				}
				if _, err := p.expect("OK", 10*time.Second); err != nil {
					return err
				}
				if _, err := from.n.push.SendFanout(context.Background(), runtime.ToSession(id), &benchv1.FanoutRequest{Payload: e.payload(uint64(i))}); err != nil {
					return err
				}
				f, err := p.expect("DONE", 10*time.Second)
				if err != nil {
					return err
				}
				lats = append(lats, time.Duration(atoi64(f[3])))
			}
			q := lats.quantiles(50, 99)
			e.add("tcp", from.impl, "push_p50_us", "µs", micros(q[0]))
			e.add("tcp", from.impl, "push_p99_us", "µs", micros(q[1]))
			e.logf("cluster push round %d/%d %-8s p50 %.0fµs p99 %.0fµs", round, e.opt.rounds, from.impl, micros(q[0]), micros(q[1]))
		}
	}
	return nil
}
