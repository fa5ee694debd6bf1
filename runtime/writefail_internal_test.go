package runtime

import (
	"context"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/msgtrans/msgtrans-go/wire"
)

// goneConn is a peer that answers the first request written to it and goes
// away at once: every later write fails, as writes to a closed connection
// do, while the answer is still to be read.
type goneConn struct {
	in     chan wire.Packet
	mu     sync.Mutex
	writes int
	wrote  chan struct{} // closed once the first write is done
	failed chan struct{} // closed once a write has failed
	closed chan struct{}
	once   sync.Once
}

func (c *goneConn) ReadPacket() (wire.Packet, error) {
	select {
	case p := <-c.in:
		return p, nil
	case <-c.closed:
		return wire.Packet{}, io.EOF
	}
}

func (c *goneConn) WritePackets(pkts [][]byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.writes++
	if c.writes > 1 {
		if c.writes == 2 {
			defer close(c.failed)
		}
		return io.ErrClosedPipe
	}
	defer close(c.wrote)
	p, _, err := wire.ParsePacket(pkts[0], wire.Limits{})
	if err != nil {
		return err
	}
	// The answer is what the peer sent before it went; it is read only
	// after the next write has failed (the test sends one first).
	go func(id uint32) { c.in <- *wire.NewResponse(id, p.BizType, []byte("answer")) }(p.MessageID)
	return nil
}

func (c *goneConn) SetWriteDeadline(time.Time) error { return nil }
func (c *goneConn) Close() error                     { c.once.Do(func() { close(c.closed) }); return nil }
func (c *goneConn) LocalAddr() net.Addr              { return nil }
func (c *goneConn) RemoteAddr() net.Addr             { return nil }

// TestWriteFailureKeepsReading: a write failing because the peer went away
// does not fail the requests whose answers the peer sent before it went:
// the session reads on to the end of its input (here a server's responses
// written just before it closed, met by a write of the client's own).
func TestWriteFailureKeepsReading(t *testing.T) {
	cfg, err := newClientConfig(nil)
	if err != nil {
		t.Fatal(err)
	}
	c := &goneConn{in: make(chan wire.Packet), wrote: make(chan struct{}), failed: make(chan struct{}), closed: make(chan struct{})}
	s := newSession(c, "test", cfg, clientPolicy, &mux{}, new(atomic.Uint32), newClock(), testPool(t))
	s.becomeReady("")
	type result struct {
		p   *wire.Packet
		err error
	}
	got := make(chan result, 1)
	go func() {
		p, err := s.Request(context.Background(), wire.NewRequest(1, []byte("question")))
		got <- result{p, err}
	}()
	// Once the request is written, a write fails; only then does the
	// session start reading, and find the answer.
	<-c.wrote
	if err := s.Send(wire.NewOneWay(2, []byte("after"))); err != nil {
		t.Fatalf("Send: %v", err)
	}
	<-c.failed
	ended := make(chan error, 1)
	go func() { ended <- s.run() }()
	r := <-got
	if r.err != nil || r.p.Text() != "answer" {
		t.Errorf("the request got %v, %v; want its answer", r.p, r.err)
	}
	c.Close()
	<-ended
}
