package runtime

import (
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
	s := newSession(discardConn{}, "test", cfg, clientPolicy, &mux{}, new(atomic.Uint32), newClock())
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

// TestTypedReceiveAllocations: dispatching a received typed one-way packet
// to its handler allocates nothing of the framework's own: what is counted
// is the packet (which the decoder allocates, with its body, when it reads
// it) and the message with its string field.
func TestTypedReceiveAllocations(t *testing.T) {
	s := testSession(t)
	var got atomic.Int64
	s.mux.handleMethod(NewMethod("test.v1.T.M", 7, MethodOneWay), NewOneWayHandler(func(_ context.Context, _ *Session, m *wrapperspb.StringValue) error {
		got.Add(int64(len(m.Value)))
		return nil
	}), nil)
	b, err := s.encodeTyped(wire.OneWay, 1, 7, 0, wrapperspb.String("a message of some sixty-four bytes, as in the benchmarks...."))
	if err != nil {
		t.Fatal(err)
	}
	p, _, err := wire.ParsePacket(b, wire.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(1000, func() {
		if err := s.receive(&inbound{p: p}); err != nil {
			t.Fatal(err)
		}
	})
	if got.Load() == 0 {
		t.Fatal("the handler did not run")
	}
	if allocs > 3 {
		t.Errorf("typed receive dispatches with %v allocations, want at most 3 (packet, message, string)", allocs)
	}
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
	s.mux.handleMethod(NewMethod("test.v1.T.M", 7, MethodOneWay), NewOneWayHandler(func(_ context.Context, _ *Session, m *wrapperspb.StringValue) error { return nil }), nil)
	enc, _ := s.encodeTyped(wire.OneWay, 1, 7, 0, wrapperspb.String("a message of some sixty-four bytes, as in the benchmarks...."))
	p, _, _ := wire.ParsePacket(enc, wire.Limits{})
	b.ReportAllocs()
	for b.Loop() {
		if err := s.receive(&inbound{p: p}); err != nil {
			b.Fatal(err)
		}
	}
}
