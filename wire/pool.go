package wire

import (
	"math/bits"
	"sync"
	"unsafe"
)

// Pooled packet bodies. A [Decoder] that pools its bodies ([Decoder.PoolBodies])
// takes each packet's ext header and payload from size-classed pools; the
// packet's reader gives the memory back with [Packet.Release] once nothing
// refers to it any more, or keeps it for good with [Packet.Own]. A packet
// nobody releases is collected as any other memory: pooling only saves
// allocations, it never leaks.

// Body size classes: powers of two from 64 bytes to 64 KiB. Larger bodies
// are allocated each time: they are rare, and a pool would hold on to them.
const (
	minPoolShift = 6
	maxPoolShift = 16
)

// bodyPools hold free buffers by class, each as an unsafe.Pointer to the
// buffer's first byte: a pointer goes into a sync.Pool without allocating,
// and the buffer's length is its class's, so the pointer is all there is
// to keep (a *[]byte handle would cost an allocation of its own for every
// buffer a packet's reader keeps for good).
var bodyPools [maxPoolShift - minPoolShift + 1]sync.Pool

// poolClass returns the class of a body of n bytes, or -1 when it is too
// large to pool.
func poolClass(n int) int {
	if n <= 1<<minPoolShift {
		return 0
	}
	c := bits.Len(uint(n-1)) - minPoolShift
	if c >= len(bodyPools) {
		return -1
	}
	return c
}

// getBody returns a buffer of n bytes, with its first byte and class when
// it is pooled (nil and -1 when n is too large to pool).
func getBody(n int) ([]byte, *byte, int8) {
	c := poolClass(n)
	if c < 0 {
		return make([]byte, n), nil, -1
	}
	size := 1 << (c + minPoolShift)
	if v := bodyPools[c].Get(); v != nil {
		base := (*byte)(v.(unsafe.Pointer))
		return unsafe.Slice(base, size)[:n], base, int8(c)
	}
	b := make([]byte, n, size)
	return b, unsafe.SliceData(b), int8(c)
}

// PooledPacket returns a packet headed by h whose ext header and payload
// lie in one pooled buffer of h.BodyLen() bytes, and that buffer, for the
// caller to fill: a transport that reads packet bodies itself (the
// WebSocket one) gets memory that goes back to the pools as a pooling
// [Decoder]'s does. [Packet.Release] gives it back (also when filling it
// failed), [Packet.Own] keeps it for good.
func (h Header) PooledPacket() (Packet, []byte) {
	n := h.BodyLen()
	if n == 0 {
		return h.Packet(nil), nil
	}
	body, pooled, class := getBody(n)
	var p Packet
	h.fill(&p, body)
	p.pooled, p.class = pooled, class
	return p, body
}

// putBody gives a buffer back to the pool of its class.
func putBody(base *byte, class int8) {
	bodyPools[class].Put(unsafe.Pointer(base))
}

// classLent is the class of a packet whose memory is lent by its decoder
// (see Decoder.NextLent); pooled is then nil.
const classLent int8 = -2

// Release gives the memory of a packet read by a pooling [Decoder] back to
// the pool, and empties the packet's Ext and Payload. Nothing may refer to
// that memory afterwards: not the packet's slices, nor anything sliced from
// them. A lent packet (see [Packet.Lent]) only forgets the memory it
// borrowed. Release does nothing to other packets, and nothing the second
// time.
func (p *Packet) Release() {
	switch {
	case p.pooled != nil:
		putBody(p.pooled, p.class)
		p.pooled = nil
	case p.class == classLent:
		p.class = 0
	default:
		return
	}
	p.Ext, p.Payload = nil, nil
}

// Own makes a packet read by a pooling [Decoder] the owner of its memory,
// for good: [Packet.Release] will no longer give it back, and the garbage
// collector frees it once nothing refers to it. A lent packet (see
// [Packet.Lent]) gets a copy of its ext header and payload in memory of
// its own.
func (p *Packet) Own() {
	if p.class == classLent {
		p.class = 0
		b := make([]byte, len(p.Ext)+len(p.Payload))
		p.setBody(b)
	}
	p.pooled = nil
}

// Lent reports whether the packet's ext header and payload are borrowed
// from the decoder that read it (see [Decoder.NextLent]): valid only until
// that decoder's next call.
func (p *Packet) Lent() bool { return p.class == classLent }

// Detach gives a lent packet (see [Packet.Lent]) a copy of its ext header
// and payload in a buffer from the pools, as a pooling decoder's packet
// holds, for [Packet.Release] to give back; other packets are unchanged.
func (p *Packet) Detach() {
	if p.class != classLent {
		return
	}
	b, pooled, class := getBody(len(p.Ext) + len(p.Payload))
	p.setBody(b)
	p.pooled, p.class = pooled, class
}

// setBody copies the packet's ext header and payload into b, which holds
// exactly both, and points them there.
func (p *Packet) setBody(b []byte) {
	n := copy(b, p.Ext)
	copy(b[n:], p.Payload)
	p.Ext, p.Payload = nilIfEmpty(b[:n:n]), nilIfEmpty(b[n:len(b):len(b)])
}

// GetBuffer returns an empty buffer with room for n bytes, from the pools
// of packet bodies when n is small enough to pool. Appending a packet of n
// bytes to it (see [AppendPacket]) allocates nothing more. Give it back with
// [PutBuffer] once nothing refers to it; a buffer never given back is
// collected as any other memory.
func GetBuffer(n int) []byte {
	b, _, _ := getBody(n)
	return b[:0]
}

// PutBuffer gives b's memory to the pools of packet bodies, for
// [GetBuffer] and pooling decoders to hand out again: nothing may refer to
// it afterwards, b nor anything sliced from it. A buffer whose capacity is
// not one of the pools' sizes is left to the garbage collector.
func PutBuffer(b []byte) {
	c := cap(b)
	if c == 0 {
		return
	}
	class := poolClass(c)
	if class < 0 || 1<<(class+minPoolShift) != c {
		return
	}
	putBody(unsafe.SliceData(b[:1]), int8(class))
}
