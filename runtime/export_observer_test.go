package runtime

import (
	"bytes"
	"context"
	"sync/atomic"
	"testing"

	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/msgtrans/msgtrans-go/wire"
)

// RaceEnabled says whether the race detector is on (for tests of
// package runtime_test that count allocations).
const RaceEnabled = raceEnabled

// ObservedAllocs measures, with testing.AllocsPerRun, the allocations per
// packet of a server session's hot paths with the observer o installed
// (nil: none): a typed one-way message received and handled, a typed
// request received, handled and answered, a typed one-way message sent
// through SendOneWay, and an encoded packet queued and written. The
// session writes to a connection that discards; everything the observer
// is fed on those paths (packets and bytes in and out, writes, handler
// durations and status, messages sent and taken) is fed.
func ObservedAllocs(tb testing.TB, o Observer) map[string]float64 {
	cfg, err := newServerConfig([]ServerOption{WithObserver(o)})
	if err != nil {
		tb.Fatal(err)
	}
	var s *Session
	cfg.obs = newObserving(o, SideServer, func(yield func(*Session)) { yield(s) })
	conn := newSinkConn()
	s = newSession(conn, "sink", cfg, clientPolicy, &mux{}, new(atomic.Uint32), newClock(), testPool(tb))
	s.becomeReady("")
	oneWay := NewMethod("test.v1.T.OneWay", 7, MethodOneWay)
	unary := NewMethod("test.v1.T.Unary", 8, MethodUnary)
	var handled atomic.Int64
	s.mux.handleMethod(oneWay, cfg.wrap(NewOneWayHandler(func(_ context.Context, _ *Session, m *wrapperspb.StringValue) error {
		handled.Add(int64(len(m.Value)))
		return nil
	})), nil)
	s.mux.handleMethod(unary, cfg.wrap(NewUnaryHandler(func(_ context.Context, _ *Session, m *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
		return m, nil
	})), nil)
	cfg.obs.method(oneWay) // as registration does
	cfg.obs.method(unary)
	msg := wrapperspb.String("a message of some sixty-four bytes, as in the benchmarks....")
	out := map[string]float64{}
	written := 0

	dec := typedStream(tb, s, 2000)
	out["one-way received"] = testing.AllocsPerRun(1000, func() {
		p, err := dec.Next()
		if err != nil {
			tb.Fatal(err)
		}
		in := newInbound(p)
		if err := s.receive(in); err != nil {
			tb.Fatal(err)
		}
		in.release()
	})
	if handled.Load() == 0 {
		tb.Fatal("the one-way handler did not run")
	}

	var reqs []byte
	for i := range 2000 {
		b, err := s.encodeTyped(wire.Request, uint32(i+1), unary.route, 1000, msg)
		if err != nil {
			tb.Fatal(err)
		}
		reqs = append(reqs, b...)
	}
	rdec := wire.NewDecoder(bytes.NewReader(reqs), wire.Limits{})
	rdec.PoolBodies()
	out["request served"] = testing.AllocsPerRun(1000, func() {
		p, err := rdec.Next()
		if err != nil {
			tb.Fatal(err)
		}
		in := newInbound(p)
		if err := s.receive(in); err != nil {
			tb.Fatal(err)
		}
		in.release()
		written++
		conn.waitWritten(written) // the response
	})

	ctx := context.Background()
	out["one-way sent"] = testing.AllocsPerRun(1000, func() {
		if err := SendOneWay(ctx, s, oneWay, msg); err != nil {
			tb.Fatal(err)
		}
		written++
		conn.waitWritten(written)
	})

	enc, err := wire.AppendPacket(nil, wire.NewOneWay(1, bytes.Repeat([]byte{'x'}, 64)))
	if err != nil {
		tb.Fatal(err)
	}
	out["encoded queued and written"] = testing.AllocsPerRun(1000, func() {
		if err := s.SendEncoded(enc); err != nil {
			tb.Fatal(err)
		}
		written++
	})
	conn.waitWritten(written)
	if o != nil {
		st := cfg.obs.Stats(nil)
		if len(st) != 1 || st[0].PacketsIn < 2000 || st[0].PacketsOut < 2000 || st[0].Writes == 0 {
			tb.Fatalf("the session's traffic was not counted: %+v", st)
		}
	}
	return out
}
