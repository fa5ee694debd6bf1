package main

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	"github.com/msgtrans/msgtrans-go/internal/bench/gen/benchv1"
)

// NATS as a peer (peers.go): a nats-server/v2 embedded in this process
// (startNATS, as the cluster scenario runs it), nats.go clients.
//
//   - Fan-out: every subscriber is a nats.go connection of the clients
//     process subscribed to one subject with a callback; the server side
//     publishes each message once on that subject from one more
//     connection, and the NATS server copies it to every subscriber.
//   - Request/reply: callers share nats.go connections as msgtrans callers
//     share sessions (16 to a connection) and call Request; as many
//     responder connections, in one queue group, answer each request from
//     their callback with Respond.
//
// Both carry the same protobuf messages as msgtrans (FanoutRequest,
// CallRequest/CallResponse), marshalled once per message by each side.

const (
	natsFanoutSubject = "bench.fanout"
	natsCallSubject   = "bench.call"
	natsCallQueue     = "bench"
	natsCallTimeout   = 10 * time.Second
)

// startNATSFanout starts a NATS server and a publishing connection.
func startNATSFanout(*env) (*fanoutServer, error) {
	ns, err := startNATS()
	if err != nil {
		return nil, err
	}
	pub, err := nats.Connect(ns.ClientURL(), nats.NoReconnect())
	if err != nil {
		ns.Shutdown()
		return nil, err
	}
	return &fanoutServer{
		addr: ns.ClientURL(),
		broadcast: func(p *benchv1.Payload) error {
			return pub.Publish(natsFanoutSubject, marshal(&benchv1.FanoutRequest{Payload: p}))
		},
		// The publisher is a client too; the subscribers flushed their
		// subscription before reporting themselves connected.
		count: func() int { return ns.NumClients() - 1 },
		stop: func() {
			pub.Close()
			ns.Shutdown()
			ns.WaitForShutdown()
		},
	}, nil
}

// natsClientConn is one subscriber of the clients process.
type natsClientConn struct{ nc *nats.Conn }

func (c natsClientConn) beat(uint64) error { return nil }

func (c natsClientConn) alive() bool { return c.nc.IsConnected() }

// dialNATSSubscriber connects to the NATS server at url, subscribes to the
// fan-out subject and waits until the server has the subscription.
func dialNATSSubscriber(ctx context.Context, url string, deliver func(*benchv1.Payload)) (clientConn, error) {
	timeout := 30 * time.Second
	if d, ok := ctx.Deadline(); ok {
		timeout = time.Until(d)
	}
	nc, err := nats.Connect(url, nats.NoReconnect(), nats.Timeout(timeout))
	if err != nil {
		return nil, err
	}
	if _, err := nc.Subscribe(natsFanoutSubject, func(m *nats.Msg) {
		var req benchv1.FanoutRequest
		if proto.Unmarshal(m.Data, &req) == nil && req.Payload != nil {
			deliver(req.Payload)
		}
	}); err != nil {
		nc.Close()
		return nil, err
	}
	if err := nc.FlushWithContext(ctx); err != nil {
		nc.Close()
		return nil, err
	}
	return natsClientConn{nc}, nil
}

// setupNATSCalls starts a NATS server with conns responder connections and
// conns caller connections; caller w uses connection w % conns.
func setupNATSCalls(e *env, conns int) (*callTarget, error) {
	ns, err := startNATS()
	if err != nil {
		return nil, err
	}
	var closers cleanups
	closers.add(func() { ns.Shutdown(); ns.WaitForShutdown() })
	t := &callTarget{close: func() { closers.run() }}
	fail := func(err error) (*callTarget, error) {
		t.close()
		return nil, err
	}
	for range conns {
		rc, err := nats.Connect(ns.ClientURL(), nats.NoReconnect())
		if err != nil {
			return fail(err)
		}
		closers.add(rc.Close)
		if _, err := rc.QueueSubscribe(natsCallSubject, natsCallQueue, natsRespond); err != nil {
			return fail(err)
		}
		if err := rc.Flush(); err != nil {
			return fail(err)
		}
	}
	var callers []*nats.Conn
	for range conns {
		nc, err := nats.Connect(ns.ClientURL(), nats.NoReconnect())
		if err != nil {
			return fail(err)
		}
		closers.add(nc.Close)
		callers = append(callers, nc)
	}
	t.call = func(w int, seq uint64) error {
		m, err := callers[w%len(callers)].Request(natsCallSubject, marshal(&benchv1.CallRequest{Payload: e.payload(seq)}), natsCallTimeout)
		if err != nil {
			return err
		}
		var resp benchv1.CallResponse
		if err := proto.Unmarshal(m.Data, &resp); err != nil {
			return err
		}
		if resp.Payload == nil {
			return fmt.Errorf("nats: empty response")
		}
		return nil
	}
	return t, nil
}

// natsRespond answers a CallRequest with a CallResponse carrying its
// payload, as the msgtrans handler does (benchServer.Call).
func natsRespond(m *nats.Msg) {
	var req benchv1.CallRequest
	if proto.Unmarshal(m.Data, &req) != nil {
		return
	}
	_ = m.Respond(marshal(&benchv1.CallResponse{Payload: req.Payload}))
}
