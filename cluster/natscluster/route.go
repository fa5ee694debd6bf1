package natscluster

import (
	"context"
	"encoding/binary"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/msgtrans/msgtrans-go/runtime"
)

// maxCallTimeout bounds the time a node gives a call from another node,
// whatever that node asked.
const maxCallTimeout = time.Minute

// envelopes recycles the buffers envelopes are built in: nats.go copies a
// message into its own buffer before Publish returns.
var envelopes = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// Publish implements [runtime.Cluster].
func (c *Cluster) Publish(to runtime.Target, packet []byte) error {
	var subject string
	switch to.Kind() {
	case "session":
		node := runtime.NodeOf(to.Session())
		if !c.isAlive(node) {
			c.stats.PublishFailed.Add(1)
			return runtime.Errorf(runtime.CodeUnavailable, "natscluster: node %d is not alive", node)
		}
		subject = c.sub.node(node)
	case "group", "group_except":
		subject = c.sub.group(to.Name())
	case "user":
		subject = c.sub.user(to.Name())
	case "all":
		subject = c.sub.all()
	default:
		return runtime.Errorf(runtime.CodeInvalidArgument, "natscluster: push to %s", to)
	}
	if err := c.ready(len(packet) + len(to.Name())); err != nil {
		c.stats.PublishFailed.Add(1)
		return err
	}
	bp := envelopes.Get().(*[]byte)
	env := appendDeliver((*bp)[:0], c.id, to, packet)
	err := c.nc.Publish(subject, env)
	if cap(env) <= 1<<20 {
		*bp = env[:0]
		envelopes.Put(bp)
	}
	if err != nil {
		c.stats.PublishFailed.Add(1)
		return runtime.Errorf(runtime.CodeUnavailable, "natscluster: publish: %v", err)
	}
	c.stats.Published.Add(1)
	return nil
}

// ready checks that a message carrying size bytes can go out now: the
// connection is up and the message fits NATS's max_payload.
func (c *Cluster) ready(size int) error {
	if !c.nc.IsConnected() {
		return runtime.Errorf(runtime.CodeUnavailable, "natscluster: not connected to NATS (%s)", c.nc.Status())
	}
	if max := c.nc.MaxPayload(); int64(size+envelopeOverhead) > max {
		return runtime.Errorf(runtime.CodeInvalidArgument,
			"natscluster: a message of %d bytes does not fit NATS's max_payload of %d bytes (raise max_payload on the NATS servers, or lower the payload limit)",
			size+envelopeOverhead, max)
	}
	return nil
}

// Call implements [runtime.Cluster]: a NATS request to the session's node.
func (c *Cluster) Call(ctx context.Context, session uint64, packet []byte) ([]byte, error) {
	node := runtime.NodeOf(session)
	c.stats.CallsMade.Add(1)
	if !c.isAlive(node) {
		c.stats.CallsUnanswered.Add(1)
		return nil, runtime.Errorf(runtime.CodeUnavailable, "natscluster: node %d is not alive", node)
	}
	if err := c.ready(len(packet) + 12); err != nil {
		c.stats.CallsUnanswered.Add(1)
		return nil, err
	}
	timeout := maxCallTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = min(timeout, time.Until(dl))
	}
	env := header(nil, opCall, c.id)
	env = binary.BigEndian.AppendUint64(env, session)
	env = binary.BigEndian.AppendUint32(env, uint32(max(timeout.Milliseconds(), 1)))
	env = append(env, packet...)
	msg, err := c.nc.RequestWithContext(ctx, c.sub.node(node), env)
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		c.stats.CallsUnanswered.Add(1)
		return nil, runtime.Errorf(runtime.CodeUnavailable, "natscluster: node %d is gone", node)
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout):
		return nil, runtime.Errorf(runtime.CodeDeadlineExceeded, "natscluster: no answer from node %d in time", node)
	case errors.Is(err, context.Canceled):
		return nil, runtime.Errorf(runtime.CodeCanceled, "natscluster: call canceled")
	case err != nil:
		c.stats.CallsUnanswered.Add(1)
		return nil, runtime.Errorf(runtime.CodeUnavailable, "natscluster: call to node %d: %v", node, err)
	}
	op, _, body, err := parseHeader(msg.Data)
	if err != nil || op != opReply {
		return nil, runtime.Errorf(runtime.CodeInternal, "natscluster: malformed reply from node %d", node)
	}
	return parseReply(body)
}

// Interest implements [runtime.Cluster]. A subscription is made at once;
// one no longer wanted is dropped after the unsubscribe delay, unless it
// is wanted again meanwhile.
func (c *Cluster) Interest(name string, user, has bool) {
	subject := c.sub.group(name)
	if user {
		subject = c.sub.user(name)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return
	}
	st := c.interest[subject]
	if has {
		if st == nil {
			sub, err := c.nc.Subscribe(subject, c.onBroadcast)
			if err != nil {
				c.log.Error("natscluster: subscribe", "subject", subject, "err", err)
				return
			}
			st = &interestState{sub: sub, names: make(map[string]struct{}, 1)}
			c.interest[subject] = st
		}
		if st.timer != nil {
			st.timer.Stop()
			st.timer = nil
		}
		st.names[name] = struct{}{}
		return
	}
	if st == nil {
		return
	}
	delete(st.names, name)
	if len(st.names) > 0 || st.timer != nil {
		return
	}
	st.timer = time.AfterFunc(c.opts.unsubscribeDelay, func() {
		c.mu.Lock()
		if cur := c.interest[subject]; cur == st && len(st.names) == 0 {
			delete(c.interest, subject)
			_ = st.sub.Unsubscribe()
		}
		c.mu.Unlock()
	})
}

// Members implements [runtime.Cluster]: a survey of the live nodes on the
// control subject, collected until each has answered or ctx (at most a
// second when it has no deadline) is done.
func (c *Cluster) Members(ctx context.Context, group string) ([]uint64, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Second)
		defer cancel()
	}
	if err := c.ready(len(group)); err != nil {
		return c.node.LocalMembers(group), err
	}
	want := len(c.liveNodes())
	inbox := c.nc.NewInbox()
	sub, err := c.nc.SubscribeSync(inbox)
	if err != nil {
		return nil, runtime.Errorf(runtime.CodeUnavailable, "natscluster: %v", err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := c.nc.PublishRequest(c.sub.ctl(), inbox, appendName(header(nil, opMembers, c.id), group)); err != nil {
		return nil, runtime.Errorf(runtime.CodeUnavailable, "natscluster: %v", err)
	}
	var all []uint64
	answered := map[uint16]bool{}
	for len(answered) < want {
		msg, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			c.log.Debug("natscluster: member survey ended before every node answered", "group", group, "answered", len(answered), "live", want)
			break
		}
		op, origin, body, err := parseHeader(msg.Data)
		if err != nil || op != opMembersOf || answered[origin] {
			continue
		}
		ids, err := parseIDs(body)
		if err != nil {
			continue
		}
		answered[origin] = true
		all = append(all, ids...)
	}
	slices.Sort(all)
	return all, nil
}

// onNode handles the node's own subject: deliveries to its sessions, calls
// and probes.
func (c *Cluster) onNode(msg *nats.Msg) {
	op, _, body, err := parseHeader(msg.Data)
	if err != nil {
		c.stats.Ignored.Add(1)
		return
	}
	switch op {
	case opDeliver:
		c.deliver(body)
	case opCall:
		select {
		case c.calls <- struct{}{}:
		default:
			c.stats.CallsRefused.Add(1)
			_ = msg.Respond(appendReply(nil, c.id, nil, runtime.Errorf(runtime.CodeResourceExhausted, "node %d serves its most calls at once", c.id)))
			return
		}
		c.wg.Add(1)
		go c.serveCall(msg, body)
	case opProbe:
		if msg.Reply != "" {
			_ = msg.Respond(appendInstance(header(nil, opHeartbeat, c.id), c.instance))
		}
	default:
		c.stats.Ignored.Add(1)
	}
}

// onBroadcast handles group, user and everyone subjects. The origin node
// delivered to its own sessions itself.
func (c *Cluster) onBroadcast(msg *nats.Msg) {
	op, origin, body, err := parseHeader(msg.Data)
	if err != nil || op != opDeliver || origin == c.id {
		c.stats.Ignored.Add(1)
		return
	}
	c.deliver(body)
}

// deliver hands a deliver envelope's packet to the local sessions. It only
// queues: it never blocks the NATS callback.
func (c *Cluster) deliver(body []byte) {
	to, packet, err := parseDeliver(body)
	if err != nil {
		c.stats.Ignored.Add(1)
		return
	}
	c.stats.Received.Add(1)
	// The packet is queued as it is, and queues keep what they are given:
	// NATS reuses nothing of a delivered message, so it needs no copy.
	c.stats.Delivered.Add(int64(c.node.Deliver(to, packet)))
}

// serveCall serves a call from another node and replies.
func (c *Cluster) serveCall(msg *nats.Msg, body []byte) {
	defer c.wg.Done()
	defer func() { <-c.calls }()
	c.stats.CallsServed.Add(1)
	if len(body) < 12 {
		_ = msg.Respond(appendReply(nil, c.id, nil, runtime.Errorf(runtime.CodeInvalidArgument, "malformed call")))
		return
	}
	session := binary.BigEndian.Uint64(body)
	timeout := min(time.Duration(binary.BigEndian.Uint32(body[8:]))*time.Millisecond, maxCallTimeout)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	go func() { // the node stopping ends the calls it serves
		select {
		case <-c.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	resp, err := c.node.Call(ctx, session, body[12:])
	_ = msg.Respond(appendReply(nil, c.id, resp, err))
}
