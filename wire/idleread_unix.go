//go:build unix

package wire

import (
	"io"
	"net"
	"os"
	"syscall"
)

// socketReader reads a kernel socket for a Decoder. Besides ordinary reads,
// it can wait for data without holding a buffer and then read all that has
// arrived into the decoder's pooled one (see idleReader). Idle connections
// are many, so what stays allocated while one waits is kept small: the
// read callback is made once, and its results are fields.
type socketReader struct {
	net.Conn
	rc    syscall.RawConn
	dec   *Decoder
	try   func(fd uintptr) bool // tryRead, made once
	n     int
	errno syscall.Errno
}

// newSocketReader returns a socketReader over c when c is a kernel socket
// that gives access to its descriptor ([syscall.Conn]: a TCP or Unix
// socket, or a type that embeds one without changing its bytes), and c
// itself otherwise.
func newSocketReader(c net.Conn) io.Reader {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return c
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return c
	}
	r := &socketReader{Conn: c, rc: rc}
	r.try = r.tryRead
	return r
}

// tryRead reads once into the decoder's buffer. It returns false, having
// returned the buffer, when nothing has arrived: RawConn.Read then waits
// until something has and calls it again.
func (r *socketReader) tryRead(fd uintptr) bool {
	buf := r.dec.takeBuf()
	for {
		n, err := syscall.Read(int(fd), buf)
		r.n, r.errno = max(n, 0), 0
		if err == nil {
			return true
		}
		r.errno, _ = err.(syscall.Errno)
		switch r.errno {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			r.dec.release()
			return false
		}
		return true
	}
}

func (r *socketReader) readIdle(d *Decoder) (int, error) {
	r.dec = d
	if err := r.rc.Read(r.try); err != nil { // closed, or a deadline passed
		d.release()
		return 0, err
	}
	switch {
	case r.errno != 0:
		d.release()
		return 0, &net.OpError{Op: "read", Net: r.LocalAddr().Network(), Source: r.LocalAddr(), Addr: r.RemoteAddr(), Err: os.NewSyscallError("read", r.errno)}
	case r.n == 0:
		d.release()
		return 0, io.EOF
	}
	return r.n, nil
}
