package natscluster

import (
	"context"
	"encoding/binary"
	"time"

	"github.com/nats-io/nats.go"
)

// discoverWait bounds how long Start listens for the live nodes' answers.
const discoverWait = 250 * time.Millisecond

func appendInstance(dst []byte, instance uint64) []byte {
	return binary.BigEndian.AppendUint64(dst, instance)
}

// beat announces this node on the control subject.
func (c *Cluster) beat() {
	_ = c.nc.Publish(c.sub.ctl(), appendInstance(header(nil, opHeartbeat, c.id), c.instance))
}

// discover asks the live nodes to say so, and notes those that answer
// within ctx and discoverWait.
func (c *Cluster) discover(ctx context.Context) {
	inbox := c.nc.NewInbox()
	sub, err := c.nc.SubscribeSync(inbox)
	if err != nil {
		return
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := c.nc.PublishRequest(c.sub.ctl(), inbox, header(nil, opProbe, c.id)); err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, discoverWait)
	defer cancel()
	for {
		msg, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			return
		}
		c.noteHeartbeat(msg.Data)
	}
}

// heartbeatLoop announces the node every heartbeat and forgets nodes not
// heard from for the dead-after time.
func (c *Cluster) heartbeatLoop() {
	defer c.wg.Done()
	t := time.NewTicker(c.opts.heartbeat)
	defer t.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-t.C:
		}
		c.beat()
		now := time.Now()
		c.mu.Lock()
		for id, p := range c.alive {
			if now.Sub(p.seen) > c.opts.deadAfter {
				delete(c.alive, id)
				c.log.Warn("natscluster: node went silent; taken for dead", "node", id, "silent", now.Sub(p.seen).Round(time.Second))
			}
		}
		c.mu.Unlock()
	}
}

// onCtl handles the control subject: heartbeats, leaves, probes and
// member surveys.
func (c *Cluster) onCtl(msg *nats.Msg) {
	op, origin, body, err := parseHeader(msg.Data)
	if err != nil {
		c.stats.Ignored.Add(1)
		return
	}
	switch op {
	case opHeartbeat:
		c.noteHeartbeat(msg.Data)
	case opLeave:
		if origin != c.id && len(body) == 8 {
			c.mu.Lock()
			if p, ok := c.alive[origin]; ok && p.instance == binary.BigEndian.Uint64(body) {
				delete(c.alive, origin)
			}
			c.mu.Unlock()
			c.log.Info("natscluster: node left", "node", origin)
		}
	case opProbe:
		if msg.Reply != "" {
			_ = msg.Respond(appendInstance(header(nil, opHeartbeat, c.id), c.instance))
		}
	case opMembers:
		name, err := parseName(body)
		if err != nil || msg.Reply == "" {
			c.stats.Ignored.Add(1)
			return
		}
		_ = msg.Respond(appendIDs(nil, c.id, c.node.LocalMembers(name)))
	default:
		c.stats.Ignored.Add(1)
	}
}

// noteHeartbeat records a heartbeat envelope's node as alive.
func (c *Cluster) noteHeartbeat(data []byte) {
	op, origin, body, err := parseHeader(data)
	if err != nil || op != opHeartbeat || len(body) != 8 || origin == 0 {
		return
	}
	instance := binary.BigEndian.Uint64(body)
	if origin == c.id {
		if instance != c.instance {
			c.log.Error("natscluster: another process claims this node's id; session ids may collide", "node", c.id)
		}
		return
	}
	c.mu.Lock()
	p, known := c.alive[origin]
	c.alive[origin] = peer{instance: instance, seen: time.Now()}
	c.mu.Unlock()
	if !known || p.instance != instance {
		c.log.Info("natscluster: node alive", "node", origin)
	}
}
