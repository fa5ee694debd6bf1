package ws

import (
	"bufio"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// batchPool holds the *bufio.Writer of batches in progress.
var batchPool = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, batchBufferSize) }}

// bufConn is the net.Conn gorilla reads from and writes to.
//
// Writes: between beginBatch and endBatch, everything gorilla writes (the
// batch's data frames, and any control frame another goroutine sends
// meanwhile) is gathered in a pooled buffer and flushed once by endBatch.
// Outside a batch, writes go straight to the socket. Frames never
// interleave on the wire: a direct write happens only while no batch is
// open, and gorilla writes each frame under its own lock.
//
// Reads: it times the packet read deadline. While ReadPacket waits for the
// next message (waiting), reads run without a deadline; the first read that
// returns data sets the deadline to that moment plus the packet read
// timeout.
type bufConn struct {
	net.Conn

	mu       sync.Mutex    // serialises writes to Conn; guards bw and err
	bw       *bufio.Writer // pooled; non-nil only in a batch that has written
	err      error         // first write error, returned by every later write
	batching atomic.Bool   // a batch is open; set without mu, cleared under it
	ended    *sync.Cond    // on mu: signalled when a batch ends

	// frameDeadline is the write deadline gorilla set for its next write.
	// gorilla sets it and writes under its own write lock (or during the
	// handshake, before the connection is shared).
	frameDeadline time.Time

	dlMu       sync.Mutex // guards batchDL; never held during I/O
	batchDL    time.Time  // the runtime's deadline for WritePackets
	pktTimeout time.Duration

	// Used only by the goroutine reading (gorilla's reader, during the
	// handshake and then in ReadPacket).
	waiting bool      // between messages
	filled  time.Time // when the last read that returned data returned
	readDL  time.Time // the read deadline currently set on Conn

	// Read-ahead while data streams in: gorilla's own read buffer is kept
	// small for idle connections, so under load reads go through a pooled
	// larger buffer instead, held only while it has unread bytes or the
	// last socket read filled it (more is then likely waiting).
	ra     *[]byte
	r0, r1 int  // unread bytes are (*ra)[r0:r1]
	busy   bool // the last socket read filled the buffer it was given

	parkSocket // idle parking (see park.go)
}

// readAheadSize is the pooled read-ahead buffer of a busy connection.
const readAheadSize = 16 << 10

var readAheadPool = sync.Pool{New: func() any { b := make([]byte, readAheadSize); return &b }}

func newBufConn(c net.Conn) *bufConn {
	b := &bufConn{Conn: c}
	b.ended = sync.NewCond(&b.mu)
	return b
}

// Read serves gorilla's reads: from the read-ahead buffer when it holds
// data, through it when the connection is busy, and straight from the
// socket otherwise (so an idle connection waits without it).
func (b *bufConn) Read(p []byte) (int, error) {
	if b.ra != nil {
		n := copy(p, (*b.ra)[b.r0:b.r1])
		b.r0 += n
		if b.r0 == b.r1 {
			readAheadPool.Put(b.ra)
			b.ra = nil
		}
		if b.waiting {
			// A message starts in bytes already read: time it from now.
			b.waiting = false
			if err := b.setReadDeadline(time.Now().Add(b.pktTimeout)); err != nil {
				return n, err
			}
		}
		return n, nil
	}
	if b.waitEnd != 0 {
		return 0, b.pendingError()
	}
	if !b.busy || len(p) >= readAheadSize {
		n, err := b.socketRead(p)
		b.busy = n == len(p)
		return n, err
	}
	buf := readAheadPool.Get().(*[]byte)
	n, err := b.socketRead(*buf)
	b.busy = n == len(*buf)
	c := copy(p, (*buf)[:n])
	if c < n {
		b.ra, b.r0, b.r1 = buf, c, n
	} else {
		readAheadPool.Put(buf)
	}
	return c, err
}

// socketRead reads from the socket, timing the packet read deadline.
func (b *bufConn) socketRead(p []byte) (int, error) {
	if b.waiting {
		// Wait for the next message without a deadline.
		if err := b.setReadDeadline(time.Time{}); err != nil {
			return 0, err
		}
	}
	n, err := b.Conn.Read(p)
	if n > 0 {
		b.filled = time.Now()
		if b.waiting {
			b.waiting = false
			if dlErr := b.setReadDeadline(b.filled.Add(b.pktTimeout)); dlErr != nil && err == nil {
				err = dlErr
			}
		}
	}
	return n, err
}

func (b *bufConn) setReadDeadline(t time.Time) error {
	if t.Equal(b.readDL) {
		return nil
	}
	b.readDL = t
	return b.Conn.SetReadDeadline(t)
}

// SetDeadline is called by gorilla around handshakes.
func (b *bufConn) SetDeadline(t time.Time) error {
	b.frameDeadline = t
	b.readDL = t
	return b.Conn.SetDeadline(t)
}

// SetReadDeadline is called by gorilla around handshakes.
func (b *bufConn) SetReadDeadline(t time.Time) error {
	b.readDL = t
	return b.Conn.SetReadDeadline(t)
}

// SetWriteDeadline records gorilla's deadline for its next write; the write
// applies it.
func (b *bufConn) SetWriteDeadline(t time.Time) error {
	b.frameDeadline = t
	return nil
}

// Write is gorilla's write: gathered during a batch, direct otherwise.
func (b *bufConn) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.err != nil {
		return 0, b.err
	}
	var n int
	var err error
	if b.batching.Load() {
		if b.bw == nil {
			b.bw = batchPool.Get().(*bufio.Writer)
			b.bw.Reset((*batchSink)(b))
		}
		n, err = b.bw.Write(p)
	} else {
		if err = b.Conn.SetWriteDeadline(b.frameDeadline); err == nil {
			n, err = b.Conn.Write(p)
		}
	}
	if err != nil {
		b.err = err
	}
	return n, err
}

func (b *bufConn) beginBatch() { b.batching.Store(true) }

// endBatch closes the batch: it flushes what the batch gathered and returns
// the buffer to its pool.
func (b *bufConn) endBatch() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.batching.Store(false)
	b.ended.Broadcast()
	if b.bw != nil {
		if b.err == nil {
			b.err = b.bw.Flush()
		}
		b.bw.Reset(nil)
		batchPool.Put(b.bw)
		b.bw = nil
	}
	return b.err
}

// waitBatch waits until no batch is open, so that what a batch gathered
// (a close frame written meanwhile, say) has been flushed or has failed.
func (b *bufConn) waitBatch() {
	b.mu.Lock()
	for b.batching.Load() {
		b.ended.Wait()
	}
	b.mu.Unlock()
}

func (b *bufConn) setBatchDeadline(t time.Time) error {
	b.dlMu.Lock()
	b.batchDL = t
	b.dlMu.Unlock()
	// Also apply it now, so that it reaches a write already blocked.
	return b.Conn.SetWriteDeadline(t)
}

// batchSink is where a batch's buffer flushes to: the socket, under the
// runtime's write deadline. It is only called with b.mu held.
type batchSink bufConn

func (s *batchSink) Write(p []byte) (int, error) {
	b := (*bufConn)(s)
	b.dlMu.Lock()
	dl := b.batchDL
	b.dlMu.Unlock()
	if err := b.Conn.SetWriteDeadline(dl); err != nil {
		return 0, err
	}
	return b.Conn.Write(p)
}
