package runtime_test

import (
	"bytes"
	"context"
	"sync"
	"testing"

	"github.com/msgtrans/msgtrans-go/runtime"
	"github.com/msgtrans/msgtrans-go/wire"
)

// The memory of received packets is reused once nothing holds them. These
// tests hold the runtime to the ownership rules: a raw handler owns the
// packets it is given unless it is marked Borrowing, and what it keeps is
// never overwritten by the packets that follow.

// ownedPayload is the payload of packet i: its size and bytes differ from
// one packet to the next, so that reused memory would show.
func ownedPayload(i int) []byte {
	return bytes.Repeat([]byte{byte(i), byte(i >> 8)}, 1+i%700)
}

func TestRawHandlerOwnsItsPackets(t *testing.T) {
	const n = 2000
	for _, tc := range transportCases() {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, tc)
			var mu sync.Mutex
			var kept []*wire.Packet
			all := make(chan struct{})
			f.srv.Handle(bizNote, runtime.HandlerFunc(func(_ context.Context, _ *runtime.Session, p *wire.Packet) (*wire.Packet, error) {
				mu.Lock()
				defer mu.Unlock()
				if kept = append(kept, p); len(kept) == n {
					close(all)
				}
				return nil, nil
			}))
			var copies [][]byte
			f.srv.Handle(bizNote+1, runtime.Borrowing(runtime.HandlerFunc(func(_ context.Context, _ *runtime.Session, p *wire.Packet) (*wire.Packet, error) {
				mu.Lock()
				defer mu.Unlock()
				copies = append(copies, bytes.Clone(p.Payload))
				return nil, nil
			})))
			c := f.dial()
			for i := range n {
				// Interleaved: borrowed packets' memory is reused while the
				// owned ones are kept.
				for _, biz := range []uint8{bizNote, bizNote + 1} {
					if err := c.Send(wire.NewOneWay(biz, ownedPayload(i))); err != nil {
						t.Fatal(err)
					}
				}
			}
			<-all
			// A request after them (to no handler): answered once the
			// one-way packets before it are handled.
			if _, err := c.Request(context.Background(), wire.NewRequest(99, nil)); runtime.CodeOf(err) != runtime.CodeUnimplemented {
				t.Fatal(err)
			}
			mu.Lock()
			defer mu.Unlock()
			for i, p := range kept {
				if !bytes.Equal(p.Payload, ownedPayload(i)) {
					t.Fatalf("kept packet %d changed after it was handled (%d bytes, want %d)", i, len(p.Payload), len(ownedPayload(i)))
				}
			}
			if len(copies) != n {
				t.Fatalf("the borrowing handler ran %d times, want %d", len(copies), n)
			}
			for i, b := range copies {
				if !bytes.Equal(b, ownedPayload(i)) {
					t.Fatalf("borrowed packet %d had %d bytes of another packet", i, len(b))
				}
			}
		})
	}
}
