package ws

import (
	"bufio"
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"time"

	"github.com/msgtrans/msgtrans-go/wire"
)

// Idle parking (runtime.IdleParker) on the server side of plain ws://: the
// listener gives gorilla a read buffer of ours (see hijackWriter), so that
// ReadPacket can tell when nothing of the connection's input is buffered
// above the socket; it then waits for the next message itself, not inside
// gorilla (whose reader fails for good on a timeout), and returns
// wire.ErrIdle once it has waited the idle time. A WebSocket ping or pong
// frame between messages is read by gorilla, which then waits for the next
// frame without an idle time: such a session parks again after its next
// message.

// serverReadBufferSize is gorilla's read buffer on the server side, held
// for the connection's life: the smallest that gorilla takes from Hijack
// rather than making its own (over 256 bytes) and that holds a control
// frame whole (125 bytes and a 14-byte header). Under load, reads go
// through the pooled read-ahead buffer of bufConn.
const serverReadBufferSize = 288

// ParkWhenIdle implements [runtime.IdleParker] for server connections over
// plain TCP; dialed connections and wss:// ones report false.
func (c *conn) ParkWhenIdle(after time.Duration) (syscall.RawConn, bool) {
	if c.br == nil {
		return nil, false
	}
	sc, ok := c.bc.Conn.(syscall.Conn)
	if !ok {
		return nil, false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil, false
	}
	c.bc.idle = max(after, 0)
	c.bc.rc = rc
	if c.bc.tryRead == nil {
		c.bc.tryRead = c.bc.readSocket
	}
	return rc, true
}

// idleWait is ReadPacket's wait for the next message while the connection
// may park: it returns wire.ErrIdle after about b.idle with nothing
// arrived, and nil otherwise, the bytes that arrived (or the error that
// ended the wait) being left for gorilla's next read.
func (c *conn) idleWait() error {
	b := c.bc
	if b.idle <= 0 || c.br.Buffered() > 0 || b.ra != nil || b.waitEnd != 0 {
		return nil
	}
	// A deadline between idle/2 and idle ahead is kept, so that a busy
	// connection sets it about once per idle/2.
	now := time.Now()
	if left := b.readDL.Sub(now); left < b.idle/2 || left > b.idle {
		if b.setReadDeadline(now.Add(b.idle)) != nil {
			return nil // closed: gorilla's read says so
		}
	}
	b.waitEnd = 0
	if err := b.rc.Read(b.tryRead); err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return wire.ErrIdle
		}
		return nil // closed: gorilla's read says so
	}
	return nil
}

// pendingError returns, once, what ended the last idle wait without data:
// the peer's end of the stream or a read error.
func (b *bufConn) pendingError() error {
	e := b.waitEnd
	b.waitEnd = 0
	switch {
	case e == 0:
		return nil
	case e < 0:
		return io.EOF
	}
	return &net.OpError{Op: "read", Net: "tcp", Source: b.LocalAddr(), Addr: b.RemoteAddr(), Err: os.NewSyscallError("read", syscall.Errno(e))}
}

// readSocket reads once what has arrived into a pooled read-ahead buffer,
// taken only now: it returns false, having given the buffer back, when
// nothing has, and RawConn.Read then waits for the socket to be readable.
func (b *bufConn) readSocket(fd uintptr) bool {
	buf := readAheadPool.Get().(*[]byte)
	for {
		n, err := syscall.Read(int(fd), *buf)
		if err == syscall.EINTR {
			continue
		}
		if err == syscall.EAGAIN {
			readAheadPool.Put(buf)
			return false
		}
		if err != nil || n <= 0 {
			readAheadPool.Put(buf)
			b.waitEnd = -1
			if errno, ok := err.(syscall.Errno); ok {
				b.waitEnd = int32(errno)
			}
			return true
		}
		b.filled = time.Now()
		b.busy = n == len(*buf)
		b.ra, b.r0, b.r1 = buf, 0, n
		return true
	}
}

// parkConn is a conn's part in idle parking.
type parkConn struct {
	br *bufio.Reader // gorilla's read buffer, when it is ours (server side)
}

// parkSocket is a bufConn's part in idle parking, used by the goroutine
// reading only.
type parkSocket struct {
	idle    time.Duration // ReadPacket's idle time (0: none); set by ParkWhenIdle
	rc      syscall.RawConn
	tryRead func(fd uintptr) bool // readSocket, made once
	// waitEnd says what ended the last idle wait without data, for
	// gorilla's next read (see pendingError): 0 nothing, -1 the end of
	// the stream, else the read's errno.
	waitEnd int32
}
