package runtime

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/msgtrans/msgtrans-go/wire"
)

// sinkConn is a Conn that discards what is written and counts the packets,
// so that a sender can wait for the session's writer to catch up.
type sinkConn struct {
	discardConn // reads block forever; nothing here reads
	mu          sync.Mutex
	written     int
	more        sync.Cond // signalled when written grows
}

func newSinkConn() *sinkConn {
	c := &sinkConn{}
	c.more.L = &c.mu
	return c
}

func (c *sinkConn) WritePackets(pkts [][]byte) error {
	c.mu.Lock()
	c.written += len(pkts)
	c.mu.Unlock()
	c.more.Broadcast()
	return nil
}

// waitWritten waits until n packets have been written.
func (c *sinkConn) waitWritten(n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for c.written < n {
		c.more.Wait()
	}
}

// sinkSession returns a server-side session writing to a new sinkConn.
func sinkSession(tb testing.TB) (*Session, *sinkConn) {
	cfg, err := newServerConfig(nil)
	if err != nil {
		tb.Fatal(err)
	}
	c := newSinkConn()
	s := newSession(c, "sink", cfg, clientPolicy, &mux{}, new(atomic.Uint32), newClock(), testPool(tb))
	s.becomeReady("")
	return s, c
}

// TestSendEncodedAllocations: queueing an already encoded packet, which is
// what each recipient of a broadcast or group send costs the sender,
// allocates nothing. The session writes to a connection that discards, so
// only the sender's side is counted: the queue, the writer that drains it
// and the write. (BenchmarkSendEncoded counts a receiving client too.) The
// count is an average rounded down, as in a benchmark's allocs/op:
// starting the writer and growing the queue while the writer lags allocate
// now and then, not per packet.
func TestSendEncodedAllocations(t *testing.T) {
	tests := []struct {
		name string
		p    *wire.Packet
	}{
		{"empty", wire.NewOneWay(1, nil)},
		{"64 bytes", wire.NewOneWay(1, bytes.Repeat([]byte{'x'}, 64))},
		// 1,001 packets of 512 bytes stay under the send queue's bound
		// (at least 1 MiB) even if the writer never ran.
		{"512 bytes with ext", &wire.Packet{Type: wire.OneWay, BizType: 1, Ext: []byte("ext"), Payload: make([]byte, 512)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, conn := sinkSession(t)
			enc, err := wire.AppendPacket(nil, tt.p)
			if err != nil {
				t.Fatal(err)
			}
			sent := 0
			allocs := testing.AllocsPerRun(1000, func() {
				if err := s.SendEncoded(enc); err != nil {
					t.Fatal(err)
				}
				sent++
			})
			conn.waitWritten(sent) // the writer has exited or is about to
			if allocs != 0 {
				t.Errorf("SendEncoded: got %v allocations per packet, want 0", allocs)
			}
		})
	}
}

// BenchmarkSendEncodedSender is BenchmarkSendEncoded without a receiver:
// the sender's cost of one broadcast recipient, writer included.
func BenchmarkSendEncodedSender(b *testing.B) {
	s, conn := sinkSession(b)
	enc, err := wire.AppendPacket(nil, wire.NewOneWay(1, bytes.Repeat([]byte{'x'}, 64)))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	sent := 0
	for b.Loop() {
		if err := s.SendEncoded(enc); err != nil {
			b.Fatal(err)
		}
		if sent++; sent%1024 == 0 {
			conn.waitWritten(sent) // keep the queue under its bound
		}
	}
	conn.waitWritten(sent)
}

// TestSendAllocations: a packet the session encodes itself (Send, a typed
// one-way message) is encoded into a buffer from the body pools, which
// goes back once the writer has written it: sending allocates nothing.
// (The race detector drops pooled buffers on purpose.)
func TestSendAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector drops pooled items on purpose")
	}
	msg := wrapperspb.String("a message of some sixty-four bytes, as in the benchmarks....")
	m := NewMethod("test.v1.T.M", 7, MethodOneWay)
	payload := bytes.Repeat([]byte{'x'}, 64)
	tests := []struct {
		name string
		send func(s *Session) error
	}{
		{"Send, 64 bytes", func(s *Session) error {
			return s.Send(&wire.Packet{BizType: 1, Payload: payload})
		}},
		{"typed one-way", func(s *Session) error { return SendOneWay(context.Background(), s, m, msg) }},
	}
	for _, tt := range tests {
		// In bursts the writer runs on; one at a time it exits after
		// each packet and gives its queue back to the pool.
		for _, burst := range []int{64, 1} {
			t.Run(fmt.Sprintf("%s, bursts of %d", tt.name, burst), func(t *testing.T) {
				s, conn := sinkSession(t)
				sent := 0
				allocs := testing.AllocsPerRun(1000, func() {
					if err := tt.send(s); err != nil {
						t.Fatal(err)
					}
					if sent++; sent%burst == 0 {
						conn.waitWritten(sent) // buffers back in the pools
					}
				})
				conn.waitWritten(sent)
				if allocs != 0 {
					t.Errorf("got %v allocations per packet sent, want 0", allocs)
				}
			})
		}
	}
}

// TestBatchPool: send queues go back to the pool of their capacity and
// come out again; queues of other capacities are dropped.
func TestBatchPool(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector drops pooled items on purpose")
	}
	for _, n := range []int{1, 64, 65, 300, 600} {
		b := getBatch()
		for range n {
			b = append(b, []byte{1})
		}
		putBatch(b)
		got := getBatch()
		want := cap(b)
		if want > 512 || want&(want-1) != 0 {
			want = 64 // not pooled: a new one
		}
		if len(got) != 0 || cap(got) != want {
			t.Errorf("after a queue of %d entries (capacity %d): got len %d cap %d, want 0 and %d", n, cap(b), len(got), cap(got), want)
		}
		for _, e := range got[:cap(got)] {
			if e != nil {
				t.Fatalf("a pooled queue holds an entry")
			}
		}
		putBatch(got)
	}
	if allocs := testing.AllocsPerRun(1000, func() { putBatch(getBatch()) }); allocs != 0 {
		t.Errorf("a queue taken and given back: %v allocations, want 0", allocs)
	}
}
