package runtime

import (
	"sync"

	"github.com/msgtrans/msgtrans-go/wire"
)

// inbound is a packet read from the connection. Inbound packets are
// pooled, and so is their memory when the connection's decoder pools it
// (wire.Decoder.PoolBodies): once a packet is dispatched, what nothing
// refers to any more goes back (see release). keep says what does. A
// one-way packet's memory may be lent by the connection (see
// PacketLender): whatever keeps it past its dispatch takes a copy through
// handOver or keepPayload.
type inbound struct {
	p    wire.Packet
	keep keep
}

// keep says what of an inbound packet outlives its dispatch.
type keep uint8

const (
	// keepNothing: the packet and its memory go back to the pools.
	keepNothing keep = iota
	// keepPayload: something holds the payload (a stream's queue of
	// messages); the packet goes back, its memory to the garbage collector.
	keepPayload
	// keepPacket: something holds the packet (a handler that owns it, a
	// waiting call, an event, a stream); nothing goes back. A request's
	// goroutine, which holds its packet, releases it itself.
	keepPacket
)

var inboundPool = sync.Pool{New: func() any { return new(inbound) }}

func newInbound(p wire.Packet) *inbound {
	in := getInbound()
	in.p = p
	return in
}

// getInbound takes an empty inbound from the pool (release empties those
// it gives back).
func getInbound() *inbound { return inboundPool.Get().(*inbound) }

// release gives back what of a dispatched packet nothing holds.
func (in *inbound) release() {
	switch in.keep {
	case keepPacket:
		return
	case keepPayload:
		in.p.Own()
	default:
		in.p.Release()
	}
	*in = inbound{}
	inboundPool.Put(in)
}

// handOver marks the packet as held by whatever it is given to, which owns
// its memory from now on (a copy, if the connection lent it). Called
// before the packet is given.
func (in *inbound) handOver() {
	in.keep = keepPacket
	in.p.Own()
}

// keepPayload marks the packet's memory as held by whatever its payload is
// given to (a copy from the pools, if the connection lent it), unless the
// packet is held already. Called before the payload is given.
func (in *inbound) keepPayload() {
	if in.keep == keepNothing {
		in.keep = keepPayload
	}
	in.p.Detach()
}
