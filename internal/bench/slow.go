package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/websocket"

	"github.com/msgtrans/msgtrans-go/internal/bench/gen/benchv1"
	"github.com/msgtrans/msgtrans-go/runtime"
	"github.com/msgtrans/msgtrans-go/wire"
)

// The slowconsumer scenario: the broadcast scenario's rounds (a burst, then
// lone broadcasts) to 1,000 sessions whose clients run in a second process,
// measured twice per round against the same connections: first with those
// sessions alone ("no-slow"), then beside one more session that never reads
// ("msgtrans"), whose writer is already blocked on a full socket when the
// measurement starts. The stalled session must then be closed as a slow
// consumer (by the write timeout, 5 s by default), and the RATIO lines show
// what its presence cost everyone else.

// implNoSlow names the measurement without the stalled session.
const implNoSlow = "no-slow"

func runSlowConsumer(e *env) error {
	n := 1000
	if e.opt.conns > 0 {
		n = e.opt.conns
	}
	for _, tr := range e.transports("tcp", "ws") {
		if err := measureSlowConsumer(e, tr, n); err != nil {
			return fmt.Errorf("%s n=%d: %w", tr, n, err)
		}
	}
	return nil
}

func measureSlowConsumer(e *env, tr string, n int) error {
	srv, err := e.startMsgtrans(tr)
	if err != nil {
		return err
	}
	var p *clientProc
	defer func() {
		srv.close()
		if p != nil {
			p.quit()
		}
	}()
	e.logf("slowconsumer %s: connecting %d clients", tr, n)
	p, connected, err := startClients(e, 120*time.Second, "-impl", implMsgtrans, "-transport", tr, "-addr", srv.addr, "-n", strconv.Itoa(n))
	if err != nil {
		return err
	}
	if err := waitCount(srv.srv.SessionCount, connected, 30*time.Second); err != nil {
		return err
	}
	broadcast := func(pl *benchv1.Payload) error {
		_, err := srv.push.SendFanout(context.Background(), runtime.ToAll(), &benchv1.FanoutRequest{Payload: pl})
		return err
	}
	record := func(impl string, burst, lone [2]time.Duration) {
		e.add(tr, impl, "burst_p99_us", "µs", micros(burst[1]))
		e.add(tr, impl, "lat_p50_us", "µs", micros(lone[0]))
		e.add(tr, impl, "lat_p99_us", "µs", micros(lone[1]))
	}
	for round := 1; round <= e.opt.rounds; round++ {
		_, burst, lone, err := fanoutRound(e, p, connected, broadcast)
		if err != nil {
			return err
		}
		record(implNoSlow, burst, lone)

		stalled, err := stall(srv, tr)
		if err != nil {
			return err
		}
		measured := time.Now()
		_, sburst, slone, err := fanoutRound(e, p, connected, broadcast)
		if err != nil {
			_ = stalled.conn.Close()
			return err
		}
		record(implMsgtrans, sburst, slone)
		openThrough := stalled.sess.Err() == nil
		after, reason := stalled.waitClosed(30 * time.Second)
		_ = stalled.conn.Close()
		if !errors.Is(reason, runtime.ErrSlowConsumer) {
			return fmt.Errorf("the stalled session ended with %v, want a slow consumer's close", reason)
		}
		e.add(tr, implMsgtrans, "stalled_closed_after_ms", "ms", float64(after.Milliseconds()))
		e.logf("slowconsumer round %d/%d %-4s lone p50/p99 %.0f/%.0fµs alone, %.0f/%.0fµs beside a stalled session "+
			"(stalled through the %v measurement: %v; closed %v after it stalled: %v)",
			round, e.opt.rounds, tr, micros(lone[0]), micros(lone[1]), micros(slone[0]), micros(slone[1]),
			time.Since(measured).Round(time.Millisecond), openThrough, after.Round(time.Millisecond), reason)
	}
	return nil
}

// stalledSession is a session whose peer never reads.
type stalledSession struct {
	conn      net.Conn
	sess      *runtime.Session
	blockedAt time.Time
}

// stall connects a peer that never reads, with a small receive buffer, and
// sends to its session until the session's writer is blocked on the full
// socket: its queue stops draining.
func stall(srv *mtServer, tr string) (*stalledSession, error) {
	var conn net.Conn
	switch tr {
	case "ws":
		ws, _, err := websocket.DefaultDialer.Dial(srv.addr, nil)
		if err != nil {
			return nil, err
		}
		conn = ws.NetConn()
	default:
		c, err := net.Dial("tcp", strings.TrimPrefix(srv.addr, "tcp://"))
		if err != nil {
			return nil, err
		}
		conn = c
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetReadBuffer(4 << 10)
	}
	st := &stalledSession{conn: conn}
	deadline := time.Now().Add(10 * time.Second)
	for st.sess == nil {
		for _, s := range srv.srv.Sessions() {
			if s.RemoteAddr().String() == conn.LocalAddr().String() {
				st.sess = s
			}
		}
		if time.Now().After(deadline) {
			_ = conn.Close()
			return nil, errors.New("the stalled connection never became a session")
		}
		time.Sleep(time.Millisecond)
	}
	// Keep the queue well under its 1 MiB bound: the point is a blocked
	// writer, not an overflowing queue.
	const mark = 256 << 10
	chunk := wire.NewOneWay(250, make([]byte, 64<<10))
	for {
		if st.sess.Queued() < mark {
			if err := st.sess.Send(chunk); err != nil {
				_ = conn.Close()
				return nil, fmt.Errorf("filling the stalled session: %w", err)
			}
			continue
		}
		time.Sleep(50 * time.Millisecond)
		if st.sess.Queued() >= mark {
			st.blockedAt = time.Now()
			return st, nil
		}
		if time.Now().After(deadline) {
			_ = conn.Close()
			return nil, errors.New("the stalled session's writer never blocked")
		}
	}
}

// waitClosed waits for the stalled session to be closed and returns its
// close reason and how long after its writer blocked that came.
func (st *stalledSession) waitClosed(timeout time.Duration) (time.Duration, error) {
	select {
	case <-st.sess.Done():
		return time.Since(st.blockedAt), st.sess.Err()
	case <-time.After(timeout):
		return timeout, errors.New("still open")
	}
}
