package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// readBufSize is the size of the pooled read-ahead buffer a [Decoder] holds
// while a connection has data in flight.
const readBufSize = 32 << 10

var readBufPool = sync.Pool{New: func() any { b := make([]byte, readBufSize); return &b }}

// readDeadliner is implemented by connections whose reads can time out.
type readDeadliner interface{ SetReadDeadline(time.Time) error }

// idleReader is implemented by readers (kernel sockets, see socketReader)
// that can wait for data without a buffer: readIdle waits, then reads what
// has arrived into the decoder's read-ahead buffer (takeBuf), which it
// returns (release) whenever it has not filled it: while waiting, and with an
// error. A decoder over such a reader stays bufferless while idle, yet
// reads a packet that arrives whole with one system call rather than one
// for the header and one for the rest.
type idleReader interface {
	readIdle(d *Decoder) (int, error)
}

// Decoder reads packets one at a time from a byte stream: TCP, where the
// header's lengths frame each packet, or a QUIC stream, where each packet is
// also preceded by its length (see [NewFramedDecoder]).
//
// An idle Decoder holds no read buffer: it waits for the next header in a
// small array inside itself (or, on a kernel socket, waits for data to
// arrive before taking a buffer) and holds a pooled buffer only while
// packets are arriving, returning it once everything read has been
// consumed. Each packet it returns owns its memory (one allocation for ext
// header and payload, or one pooled buffer: see [Decoder.PoolBodies]),
// except those [Decoder.NextLent] lends.
//
// A Decoder is not safe for concurrent use.
type Decoder struct {
	r        io.Reader
	lim      Limits
	pre      int // length-prefix bytes before each packet: 0 or 4
	maxFrame int // the largest length prefix accepted
	frameCap int // the framing's own maximum, which maxFrame never exceeds
	head     [4 + HeaderSize]byte
	buf      *[]byte // pooled read-ahead, nil while idle
	r0, r1   int     // unread bytes are (*buf)[r0:r1]

	// Whole-packet read deadline, used when r has SetReadDeadline.
	dl readDeadliner
	// Unix nanoseconds (0: unset), not time.Time: idle connections are
	// many, so a decoder is kept small.
	filled   int64 // when the last read that returned data returned
	pktStart int64 // when the current packet's first byte arrived
	deadline int64 // the read deadline currently set on r

	pool bool // take bodies from the pools (PoolBodies)
	// lent: the packet returned last borrows the read-ahead buffer (see
	// NextLent), which is kept until the next call.
	lent bool
	// idle is how long a wait between packets may last before Next
	// returns ErrIdle (0: without end); see SetIdleTimeout.
	idle int64
}

// NewDecoder returns a decoder reading packets back to back from r under
// the given limits. When r has a SetReadDeadline method, the decoder bounds
// each packet's read time by [Limits.PacketReadTimeout], counted from the
// packet's first byte; waiting between packets is not bounded. When r is a
// kernel socket (a net.Conn that is a [syscall.Conn], such as a TCP
// connection), the decoder waits for data without holding a buffer and
// then reads all that has arrived with one system call.
func NewDecoder(r io.Reader, lim Limits) *Decoder {
	if c, ok := r.(net.Conn); ok {
		r = newSocketReader(c)
	}
	d := &Decoder{r: r, lim: lim.WithDefaults()}
	d.dl, _ = r.(readDeadliner)
	return d
}

// NewFramedDecoder is [NewDecoder] for streams on which each packet is
// preceded by its length as a big-endian u32, as on QUIC. A prefix over
// maxFrame (or over what the limits admit) fails with [ErrTooLarge]; one
// shorter than a header, or disagreeing with the header's lengths, with
// [ErrProtocol]. Both are detected before the body is allocated.
func NewFramedDecoder(r io.Reader, lim Limits, maxFrame int) *Decoder {
	d := NewDecoder(r, lim)
	d.pre = 4
	d.frameCap = maxFrame
	d.maxFrame = min(maxFrame, d.lim.MaxPacketSize())
	return d
}

// PoolBodies makes the decoder take the memory of each packet's ext header
// and payload from pools, so that a reader done with a packet can give it
// back with [Packet.Release] instead of leaving it to the garbage collector.
// A packet never released is simply collected.
func (d *Decoder) PoolBodies() { d.pool = true }

// SetIdleTimeout makes Next stop waiting for the next packet when it has
// waited about d (between d/2 and d) at a packet boundary with nothing
// buffered, and return [ErrIdle]; the decoder stays usable, and a later
// Next reads on. It needs a reader with a SetReadDeadline method, whose
// deadline it uses between packets (inside a packet the packet read
// timeout applies as before), and reports false, changing nothing,
// without one. 0 turns it off. A caller uses it to leave a connection
// that has gone quiet without a goroutine waiting on it, and comes back
// when the connection has data again.
func (d *Decoder) SetIdleTimeout(t time.Duration) bool {
	if d.dl == nil {
		return false
	}
	d.idle = int64(max(t, 0))
	return true
}

// SetLimits changes the limits for the packets read from now on.
func (d *Decoder) SetLimits(lim Limits) {
	d.lim = lim.WithDefaults()
	if d.pre > 0 {
		d.maxFrame = min(d.frameCap, d.lim.MaxPacketSize())
	}
}

// Next reads the next packet. At a clean end of stream between packets it
// returns io.EOF; a stream that ends inside a packet gives an error wrapping
// [ErrTruncated]; invalid bytes give an error wrapping [ErrProtocol] or
// [ErrTooLarge], detected from the header before the body is allocated.
// After an error the Decoder must not be used again, but for [ErrIdle].
func (d *Decoder) Next() (Packet, error) {
	var p Packet
	err := d.NextInto(&p)
	return p, err
}

// NextInto is [Decoder.Next] reading into *p, which it overwrites: a
// reader on a hot path saves the copies of a returned Packet. On error *p
// is left zero.
func (d *Decoder) NextInto(p *Packet) error {
	err := d.next(p, false)
	if err != nil {
		d.release()
	}
	return err
}

// NextLent is [Decoder.NextInto], except that the packet may borrow its
// memory from the decoder: when its whole ext header and payload were read
// ahead with earlier bytes, they are left in the read-ahead buffer rather
// than copied out, and are valid only until the decoder is next called.
// [Packet.Lent] tells such a packet; [Packet.Own] and [Packet.Detach] give
// it memory of its own, and [Packet.Release] forgets it. A reader that
// consumes most packets before reading the next (unmarshalling a message
// copies what it keeps) saves a copy and a buffer per packet.
func (d *Decoder) NextLent(p *Packet) error {
	err := d.next(p, true)
	if err != nil {
		d.release()
	}
	return err
}

func (d *Decoder) next(p *Packet, lend bool) error {
	if d.lent {
		// The packet lent last is done with: its bytes are consumed.
		d.lent = false
		if d.Buffered() == 0 {
			d.release()
		}
	}
	d.pktStart = 0 // set by the packet's first read (fill, read)
	*p = Packet{}
	var frame uint32
	if d.pre > 0 {
		if err := d.fill(0, d.pre); err != nil {
			return err
		}
		frame = binary.BigEndian.Uint32(d.head[:d.pre])
		switch {
		case uint64(frame) > uint64(d.maxFrame):
			return fmt.Errorf("%w: frame of %d bytes exceeds the limit of %d", ErrTooLarge, frame, d.maxFrame)
		case frame < HeaderSize:
			return fmt.Errorf("%w: frame of %d bytes is shorter than a packet header", ErrProtocol, frame)
		}
	}
	if err := d.fill(d.pre, d.pre+HeaderSize); err != nil {
		return err
	}
	h, err := ParseHeader(d.head[d.pre:d.pre+HeaderSize], d.lim)
	if err != nil {
		return err
	}
	if want := HeaderSize + h.BodyLen(); d.pre > 0 && int(frame) != want {
		return fmt.Errorf("%w: frame length %d does not match the packet header's %d", ErrProtocol, frame, want)
	}
	n := h.BodyLen()
	if lend && n > 0 && d.Buffered() >= n {
		b := (*d.buf)[d.r0 : d.r0+n : d.r0+n]
		d.r0 += n
		d.lent = true
		h.fill(p, b)
		p.class = classLent
		return nil
	}
	var body []byte
	var pooled *byte
	var class int8
	if d.pool && n > 0 {
		body, pooled, class = getBody(n)
	} else {
		body = make([]byte, n)
	}
	if err := d.readBody(body); err != nil {
		if pooled != nil {
			putBody(pooled, class)
		}
		return err
	}
	if d.Buffered() == 0 {
		d.release()
	}
	h.fill(p, body)
	p.pooled, p.class = pooled, class
	return nil
}

// Buffered reports the bytes read ahead and not yet decoded: while it is
// above zero, the next packet's first bytes need no read.
func (d *Decoder) Buffered() int { return d.r1 - d.r0 }

// fill fills head[from:to], first from the read-ahead buffer and then from
// the reader directly, so that an idle connection waits without a buffer.
func (d *Decoder) fill(from, to int) error {
	n := from
	if d.buf != nil {
		c := copy(d.head[n:to], (*d.buf)[d.r0:d.r1])
		d.r0 += c
		n += c
		if d.Buffered() == 0 {
			d.release()
		}
	}
	if ir, ok := d.r.(idleReader); ok && n == 0 && to > 0 {
		d.setDeadline(false)
		m, err := ir.readIdle(d)
		if err != nil {
			return d.readErr(err, 0)
		}
		if d.dl != nil {
			d.filled = time.Now().UnixNano()
			d.pktStart = d.filled
		}
		d.r0, d.r1 = 0, m
		c := copy(d.head[:to], (*d.buf)[:m])
		d.r0 += c
		n += c
		if d.Buffered() == 0 {
			d.release()
		}
	}
	for n < to {
		m, err := d.read(d.head[n:to], 1, n > 0)
		if n == 0 && m > 0 {
			d.pktStart = d.filled
		}
		n += m
		if err != nil && n < to {
			return d.readErr(err, n)
		}
	}
	return nil
}

// readBody fills body from the buffer and then the reader, reading ahead into
// a pooled buffer so that following packets need no further system calls.
func (d *Decoder) readBody(body []byte) error {
	n := 0
	if d.buf != nil {
		n = copy(body, (*d.buf)[d.r0:d.r1])
		d.r0 += n
	}
	got := d.pre + HeaderSize
	for n < len(body) {
		need := len(body) - n
		if need >= readBufSize {
			// A large remainder is read straight into the packet.
			m, err := d.read(body[n:], need, true)
			if err != nil {
				return d.readErr(err, got+n+m)
			}
			return nil
		}
		if d.buf == nil {
			d.buf = readBufPool.Get().(*[]byte)
		}
		m, err := d.read(*d.buf, need, true)
		c := copy(body[n:], (*d.buf)[:m])
		d.r0, d.r1 = c, m
		n += c
		if err != nil && n < len(body) {
			return d.readErr(err, got+n)
		}
	}
	return nil
}

// read reads at least min bytes into p. While a packet is partly read
// (partial), the read deadline is the packet's start plus the packet read
// timeout; between packets no deadline is set.
func (d *Decoder) read(p []byte, min int, partial bool) (int, error) {
	d.setDeadline(partial)
	n, err := io.ReadAtLeast(d.r, p, min)
	if n > 0 && d.dl != nil {
		d.filled = time.Now().UnixNano()
	}
	return n, err
}

// setDeadline sets the read deadline for a read inside a packet (partial)
// or between packets (none).
func (d *Decoder) setDeadline(partial bool) {
	if d.dl == nil {
		return
	}
	var want int64
	switch {
	case partial:
		if d.pktStart == 0 {
			// The packet began in read-ahead bytes: time it from now,
			// so the caller's own delays never count against the peer.
			d.pktStart = time.Now().UnixNano()
		}
		want = d.pktStart + int64(d.lim.PacketReadTimeout)
	case d.idle > 0:
		// Waiting between packets on a connection that may go idle: a
		// deadline between idle/2 and idle ahead is kept, so that a busy
		// connection sets it about once per idle/2 rather than per wait.
		now := time.Now().UnixNano()
		if left := d.deadline - now; left >= d.idle/2 && left <= d.idle {
			return
		}
		want = now + d.idle
	}
	// A failure here means the connection is closed; the read that follows
	// then reports that (or the peer's EOF) better than this would.
	if want != d.deadline && d.dl.SetReadDeadline(unixNanoTime(want)) == nil {
		d.deadline = want
	}
}

// takeBuf lends the read-ahead buffer to an idleReader, which gives it back
// with release when it has not filled it.
func (d *Decoder) takeBuf() []byte {
	if d.buf == nil {
		d.buf = readBufPool.Get().(*[]byte)
	}
	return *d.buf
}

func (d *Decoder) release() {
	if d.buf != nil {
		readBufPool.Put(d.buf)
		d.buf = nil
	}
	d.r0, d.r1 = 0, 0
}

// readErr turns a read error after got bytes of a packet into the error Next
// reports.
func (d *Decoder) readErr(err error, got int) error {
	if got == 0 && errors.Is(err, io.EOF) {
		return io.EOF
	}
	if got == 0 && d.idle > 0 && isTimeout(err) {
		return ErrIdle
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: stream ended after %d bytes of a packet", ErrTruncated, got)
	}
	return err // a packet read timeout stays a net.Error with Timeout() true
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// unixNanoTime is the time of Unix nanoseconds n, the zero Time for 0.
func unixNanoTime(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}
