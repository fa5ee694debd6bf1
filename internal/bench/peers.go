package main

import (
	"fmt"
	"slices"
	"time"
)

// The peers scenario: msgtrans against what a user would pick instead of
// it, in one run.
//
//   - Request/reply on tcp: the unary scenario's typed call (16 and 256
//     concurrent callers, 16 callers to a connection) against NATS
//     request/reply (natspeer.go): the same callers on as many nats.go
//     connections calling Request, as many responder connections in a
//     queue group answering with Respond, the same protobuf messages. The
//     implementations alternate within each round.
//   - Fan-out: the broadcast scenario's measurement (a burst of
//     back-to-back broadcasts for deliveries per second, then lone
//     broadcasts for the p50 and p99 delivery latency) of one 64-byte
//     message to 1,000 and 10,000 subscribers whose clients run in a second
//     process: on tcp msgtrans against NATS (an embedded nats-server, one
//     subject, a nats.go connection per subscriber), on ws msgtrans against
//     Centrifuge (centrifugepeer.go: its WebSocket transport and in-memory
//     broker, one channel). As in the broadcast scenario, an
//     implementation's connections stay up for all its rounds: two sets of
//     10,000 would not fit one process's open-file limit.
//
// Transports pair each peer with msgtrans over what the peer speaks, so
// that the RATIO lines (transport=tcp vs=nats, transport=ws
// vs=centrifuge) compare like with like.

// The peers' implementation names.
const (
	implNATS       = "nats"
	implCentrifuge = "centrifuge"
)

// fanoutPeers start the peers' broadcasting servers (see startFanout).
var fanoutPeers = map[string]func(*env) (*fanoutServer, error){
	implNATS:       startNATSFanout,
	implCentrifuge: startCentrifugeFanout,
}

// peerOn is the peer measured beside msgtrans on each transport.
var peerOn = map[string]string{"tcp": implNATS, "ws": implCentrifuge}

func runPeers(e *env) error {
	if slices.Contains(e.transports("tcp"), "tcp") {
		if err := runPeerCalls(e); err != nil {
			return err
		}
	}
	sizes := pick(e, []int{1000, 10000}, []int{1000})
	if e.opt.conns > 0 {
		sizes = []int{e.opt.conns}
	}
	for _, n := range sizes {
		for _, tr := range e.transports("tcp", "ws") {
			for _, impl := range []string{implMsgtrans, peerOn[tr]} {
				if err := measureBroadcast(e, tr, impl, n); err != nil {
					return fmt.Errorf("%s %s n=%d: %w", tr, impl, n, err)
				}
			}
		}
	}
	return nil
}

// runPeerCalls measures msgtrans unary calls and NATS request/reply on tcp.
func runPeerCalls(e *env) error {
	d := e.phase(700*time.Millisecond, 300*time.Millisecond)
	for round := 1; round <= e.opt.rounds; round++ {
		for _, callers := range []int{16, 256} {
			conns := max(1, callers/callersPerConn)
			for _, impl := range []string{implMsgtrans, implNATS} {
				var t *callTarget
				var err error
				if impl == implNATS {
					t, err = setupNATSCalls(e, conns)
				} else {
					t, err = setupCalls(e, "tcp", impl, conns)
				}
				if err == nil {
					err = measureUnary(e, "tcp", impl, t, callers, d, round)
				}
				if err != nil {
					return fmt.Errorf("tcp %s: %w", impl, err)
				}
			}
		}
	}
	return nil
}
