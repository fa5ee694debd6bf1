package natscluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/msgtrans/msgtrans-go/runtime"
)

// Defaults of the options.
const (
	DefaultPrefix           = "msgtrans"
	DefaultHeartbeat        = 3 * time.Second
	DefaultDeadAfter        = 7 * time.Second
	DefaultUnsubscribeDelay = time.Second
	DefaultMaxCalls         = 256
)

// probeTimeout bounds the wait for an answer to a node-id probe.
const probeTimeout = 500 * time.Millisecond

// Cluster is a [runtime.Cluster] over a NATS connection: one node of a
// logical server. Create it with [New] and give it to the server with
// runtime.WithCluster. It is safe for concurrent use.
type Cluster struct {
	nc       *nats.Conn
	opts     options
	sub      subjects
	instance uint64 // tells this process apart from another with the same node id
	log      *slog.Logger

	node runtime.ClusterNode // set by Start
	id   uint16

	mu       sync.Mutex
	started  bool
	stopped  bool
	own      []*nats.Subscription      // node, all, ctl
	interest map[string]*interestState // by subject
	alive    map[uint16]peer

	calls  chan struct{} // bounds calls served at once
	done   chan struct{} // closed by Stop
	status chan nats.Status
	wg     sync.WaitGroup

	stats Stats
}

// interestState is this node's subscription to one group or user subject.
type interestState struct {
	sub   *nats.Subscription
	names map[string]struct{} // the names that want it (more than one only on a hash collision)
	timer *time.Timer         // pending unsubscribe
}

// peer is another live node, as its heartbeats say.
type peer struct {
	instance uint64
	seen     time.Time
}

// Stats counts what crossed the bus, for metrics.
type Stats struct {
	Published       atomic.Int64 // messages published to other nodes
	PublishFailed   atomic.Int64 // pushes whose remote part failed (bus down, node gone, too large)
	Received        atomic.Int64 // deliveries received from other nodes
	Delivered       atomic.Int64 // local sessions those were queued to
	Ignored         atomic.Int64 // messages of this node's own, or malformed
	CallsServed     atomic.Int64 // calls from other nodes served
	CallsRefused    atomic.Int64 // calls from other nodes refused for want of room
	CallsMade       atomic.Int64 // calls to sessions of other nodes
	CallsUnanswered atomic.Int64 // of those, failed for a node gone or the bus down
}

type options struct {
	prefix           string
	nodeID           uint16
	logger           *slog.Logger
	heartbeat        time.Duration
	deadAfter        time.Duration
	unsubscribeDelay time.Duration
	maxCalls         int
	onReconnect      func()
}

// Option configures a [Cluster].
type Option func(*options)

// WithPrefix sets the prefix of every subject the cluster uses (see the
// package documentation), so that several logical servers can share one
// NATS system. Default "msgtrans".
func WithPrefix(prefix string) Option { return func(o *options) { o.prefix = prefix } }

// WithNodeID fixes this node's id (1 to 65535) instead of picking a free
// one at random; Start fails when a live node holds it.
func WithNodeID(id uint16) Option { return func(o *options) { o.nodeID = id } }

// WithLogger sets where the cluster logs. Default slog.Default().
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithHeartbeat sets how often a node says it is alive, and after how long
// without a word another node takes it for dead. Defaults 3 s and 7 s.
func WithHeartbeat(interval, deadAfter time.Duration) Option {
	return func(o *options) { o.heartbeat, o.deadAfter = interval, deadAfter }
}

// WithUnsubscribeDelay sets how long a node keeps its subscription to a
// group (or user) after its last local member left, so that a member
// leaving and another joining do not churn subscriptions. Default 1 s.
func WithUnsubscribeDelay(d time.Duration) Option {
	return func(o *options) { o.unsubscribeDelay = d }
}

// WithMaxCalls bounds the calls from other nodes this node serves at once;
// beyond it a call is refused with CodeResourceExhausted. Default 256.
func WithMaxCalls(n int) Option { return func(o *options) { o.maxCalls = n } }

// WithReconnectHandler sets a function called (in a goroutine of its own)
// each time the NATS connection is back after a loss, once the
// subscriptions are restored: messages published meanwhile were lost, so
// an application can resynchronise what it keeps.
func WithReconnectHandler(f func()) Option { return func(o *options) { o.onReconnect = f } }

// New returns a cluster node over nc, which the caller owns and closes
// (after the server has shut down). Give nc nats.MaxReconnects(-1), so it
// never gives up, and nats.ReconnectBufSize(-1), so that publishing while
// disconnected fails at once instead of piling up.
func New(nc *nats.Conn, opts ...Option) (*Cluster, error) {
	o := options{
		prefix: DefaultPrefix, heartbeat: DefaultHeartbeat, deadAfter: DefaultDeadAfter,
		unsubscribeDelay: DefaultUnsubscribeDelay, maxCalls: DefaultMaxCalls, logger: slog.Default(),
	}
	for _, opt := range opts {
		opt(&o)
	}
	switch {
	case nc == nil:
		return nil, errors.New("natscluster: nil NATS connection")
	case o.heartbeat <= 0 || o.deadAfter <= o.heartbeat:
		return nil, fmt.Errorf("natscluster: heartbeat %v must be positive and below the dead-after time %v", o.heartbeat, o.deadAfter)
	case o.unsubscribeDelay < 0 || o.maxCalls <= 0:
		return nil, errors.New("natscluster: negative unsubscribe delay or no room for calls")
	}
	if err := validPrefix(o.prefix); err != nil {
		return nil, err
	}
	return &Cluster{
		nc: nc, opts: o, sub: subjects{o.prefix}, instance: rand.Uint64() | 1, log: o.logger,
		interest: make(map[string]*interestState), alive: make(map[uint16]peer),
		calls: make(chan struct{}, o.maxCalls), done: make(chan struct{}),
	}, nil
}

// Stats returns the cluster's counters.
func (c *Cluster) Stats() *Stats { return &c.stats }

// Start implements [runtime.Cluster]: it picks the node id (probing
// <p>.n.<id>: no responders means free), subscribes to the node's
// subjects, and announces the node.
func (c *Cluster) Start(ctx context.Context, n runtime.ClusterNode) (uint16, error) {
	c.mu.Lock()
	if c.started {
		c.mu.Unlock()
		return 0, errors.New("natscluster: started twice")
	}
	c.started, c.node = true, n
	c.mu.Unlock()
	if !c.nc.IsConnected() {
		return 0, runtime.Errorf(runtime.CodeUnavailable, "natscluster: not connected to NATS (%s)", c.nc.Status())
	}
	id, err := c.pickID(ctx)
	if err != nil {
		return 0, err
	}
	c.id = id
	for _, s := range []struct {
		subject string
		h       nats.MsgHandler
	}{{c.sub.node(id), c.onNode}, {c.sub.all(), c.onBroadcast}, {c.sub.ctl(), c.onCtl}} {
		sub, err := c.nc.Subscribe(s.subject, s.h)
		if err != nil {
			c.unsubscribeAll()
			return 0, fmt.Errorf("natscluster: subscribe %s: %w", s.subject, err)
		}
		c.mu.Lock()
		c.own = append(c.own, sub)
		c.mu.Unlock()
	}
	if err := c.flush(ctx); err != nil {
		c.unsubscribeAll()
		return 0, fmt.Errorf("natscluster: flush: %w", err)
	}
	// Learn the live nodes now rather than over the next heartbeats.
	c.discover(ctx)
	c.beat()
	c.status = c.nc.StatusChanged(nats.CONNECTED, nats.RECONNECTING, nats.CLOSED)
	c.wg.Add(2)
	go c.heartbeatLoop()
	go c.watch()
	c.log.Info("natscluster: joined", "node", id, "prefix", c.opts.prefix, "nodes", len(c.liveNodes()))
	return id, nil
}

// pickID returns the configured node id once checked free, or a free one
// picked at random.
func (c *Cluster) pickID(ctx context.Context) (uint16, error) {
	if c.opts.nodeID != 0 {
		taken, err := c.probe(ctx, c.opts.nodeID)
		switch {
		case err != nil:
			return 0, err
		case taken:
			return 0, fmt.Errorf("natscluster: node id %d is in use by a live node", c.opts.nodeID)
		}
		return c.opts.nodeID, nil
	}
	for range 16 {
		id := uint16(1 + rand.N(65535))
		taken, err := c.probe(ctx, id)
		if err != nil {
			return 0, err
		}
		if !taken {
			return id, nil
		}
	}
	return 0, errors.New("natscluster: found no free node id in 16 tries")
}

// probe reports whether a live node answers on id's subject.
func (c *Cluster) probe(ctx context.Context, id uint16) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	_, err := c.nc.RequestWithContext(ctx, c.sub.node(id), header(nil, opProbe, 0))
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, nats.ErrNoResponders):
		return false, nil
	case errors.Is(err, context.DeadlineExceeded):
		return true, nil // something holds the subject without answering: not free
	}
	return false, fmt.Errorf("natscluster: probing node id %d: %w", id, err)
}

// Stop implements [runtime.Cluster]: it tells the other nodes this one
// leaves, unsubscribes, and stops its goroutines. The NATS connection stays
// open: it is the caller's.
func (c *Cluster) Stop(ctx context.Context) error {
	c.mu.Lock()
	if c.stopped || !c.started {
		c.stopped = true
		c.mu.Unlock()
		return nil
	}
	c.stopped = true
	c.mu.Unlock()
	close(c.done)
	var err error
	if c.nc.IsConnected() {
		_ = c.nc.Publish(c.sub.ctl(), appendInstance(header(nil, opLeave, c.id), c.instance))
		err = c.flush(ctx)
	}
	c.unsubscribeAll()
	if c.status != nil {
		c.nc.RemoveStatusListener(c.status)
	}
	c.wg.Wait()
	c.log.Info("natscluster: left", "node", c.id)
	return err
}

// flushTimeout bounds a flush when the caller's context has no deadline.
const flushTimeout = 5 * time.Second

// flush waits until the NATS server has processed what was sent.
func (c *Cluster) flush(ctx context.Context) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, flushTimeout)
		defer cancel()
	}
	return c.nc.FlushWithContext(ctx)
}

func (c *Cluster) unsubscribeAll() {
	c.mu.Lock()
	subs := c.own
	c.own = nil
	for subj, st := range c.interest {
		if st.timer != nil {
			st.timer.Stop()
		}
		subs = append(subs, st.sub)
		delete(c.interest, subj)
	}
	c.mu.Unlock()
	for _, s := range subs {
		_ = s.Unsubscribe()
	}
}

// watch follows the connection's status: after a reconnect it announces
// the node again and tells the application; when the connection is closed
// for good, it tells the server, which drains its clients.
func (c *Cluster) watch() {
	defer c.wg.Done()
	lost := false
	for {
		select {
		case <-c.done:
			return
		case st, ok := <-c.status:
			if !ok {
				return
			}
			switch st {
			case nats.RECONNECTING:
				lost = true
				c.log.Warn("natscluster: NATS connection lost; local sessions are still served, remote sends fail until it is back")
			case nats.CONNECTED:
				if lost {
					lost = false
					c.log.Info("natscluster: NATS connection back; subscriptions restored", "node", c.id)
					c.beat()
					if c.opts.onReconnect != nil {
						go c.opts.onReconnect()
					}
				}
			case nats.CLOSED:
				select {
				case <-c.done:
				default:
					c.node.Lost(fmt.Errorf("natscluster: the NATS connection is closed: %v", c.nc.LastError()))
				}
				return
			}
		}
	}
}

// Nodes implements [runtime.Cluster].
func (c *Cluster) Nodes(context.Context) ([]uint16, error) { return c.liveNodes(), nil }

// liveNodes returns the live nodes, this one included, sorted.
func (c *Cluster) liveNodes() []uint16 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := []uint16{c.id}
	for id := range c.alive {
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}

// isAlive reports whether the node has been heard from lately.
func (c *Cluster) isAlive(id uint16) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.alive[id]
	return ok || id == c.id
}
