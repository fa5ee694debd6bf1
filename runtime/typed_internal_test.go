package runtime

import (
	"bytes"
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/msgtrans/msgtrans-go/wire"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// discardConn is a Conn that drops what is written and reads nothing.
type discardConn struct{}

func (discardConn) ReadPacket() (wire.Packet, error) { select {} }
func (discardConn) WritePackets([][]byte) error      { return nil }
func (discardConn) SetWriteDeadline(time.Time) error { return nil }
func (discardConn) Close() error                     { return nil }
func (discardConn) LocalAddr() net.Addr              { return nil }
func (discardConn) RemoteAddr() net.Addr             { return nil }

func testSession(t testing.TB) *Session {
	cfg, err := newServerConfig(nil)
	if err != nil {
		t.Fatal(err)
	}
	s := newSession(discardConn{}, "test", cfg, clientPolicy, &mux{}, new(atomic.Uint32), newClock(), testPool(t))
	s.becomeReady("")
	return s
}

// TestTypedSendAllocations: encoding a typed message for sending costs one
// allocation, the wire buffer itself.
func TestTypedSendAllocations(t *testing.T) {
	s := testSession(t)
	msg := wrapperspb.String("a message of some sixty-four bytes, as in the benchmarks....")
	allocs := testing.AllocsPerRun(1000, func() {
		if _, err := s.encodeTyped(wire.OneWay, 1, 7, 0, msg); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 1 {
		t.Errorf("typed send encodes with %v allocations, want at most 1", allocs)
	}
}

// TestTypedReceiveAllocations: reading a typed one-way packet from a
// connection and dispatching it to its handler allocates nothing of the
// framework's own: the packet and its body come from pools and go back, the
// handler's context is the session's. What is counted is the message the
// handler is given, with its string field.
func TestTypedReceiveAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector drops pooled items on purpose")
	}
	s := testSession(t)
	var got atomic.Int64
	s.mux.handleMethod(NewMethod("test.v1.T.M", 7, MethodOneWay), s.cfg.wrap(NewOneWayHandler(func(_ context.Context, _ *Session, m *wrapperspb.StringValue) error {
		got.Add(int64(len(m.Value)))
		return nil
	})), nil)
	dec := typedStream(t, s, 2000)
	allocs := testing.AllocsPerRun(1000, func() {
		p, err := dec.Next()
		if err != nil {
			t.Fatal(err)
		}
		in := newInbound(p)
		if err := s.receive(in); err != nil {
			t.Fatal(err)
		}
		in.release()
	})
	if got.Load() == 0 {
		t.Fatal("the handler did not run")
	}
	if allocs > 2 {
		t.Errorf("typed receive dispatches with %v allocations, want at most 2 (the message and its string)", allocs)
	}
}

// typedStream returns a pooling decoder over n encoded typed one-way
// packets of route 7.
func typedStream(t testing.TB, s *Session, n int) *wire.Decoder {
	t.Helper()
	b, err := s.encodeTyped(wire.OneWay, 1, 7, 0, wrapperspb.String("a message of some sixty-four bytes, as in the benchmarks...."))
	if err != nil {
		t.Fatal(err)
	}
	dec := wire.NewDecoder(bytes.NewReader(bytes.Repeat(b, n)), wire.Limits{})
	dec.PoolBodies()
	return dec
}

func BenchmarkTypedSend(b *testing.B) {
	s := testSession(b)
	msg := wrapperspb.String("a message of some sixty-four bytes, as in the benchmarks....")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.encodeTyped(wire.OneWay, 1, 7, 0, msg); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkTypedReceive(b *testing.B) {
	s := testSession(b)
	s.mux.handleMethod(NewMethod("test.v1.T.M", 7, MethodOneWay), s.cfg.wrap(NewOneWayHandler(func(_ context.Context, _ *Session, m *wrapperspb.StringValue) error { return nil })), nil)
	b.ReportAllocs()
	dec := typedStream(b, s, 0)
	n := 0
	for b.Loop() {
		if n == 0 {
			b.StopTimer()
			dec, n = typedStream(b, s, 10000), 10000
			b.StartTimer()
		}
		n--
		p, err := dec.Next()
		if err != nil {
			b.Fatal(err)
		}
		in := newInbound(p)
		if err := s.receive(in); err != nil {
			b.Fatal(err)
		}
		in.release()
	}
}

// testPool returns a work pool closed when the test ends.
func testPool(t testing.TB) *workPool {
	p := newWorkPool()
	t.Cleanup(p.close)
	return p
}
