package quic

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	quicgo "github.com/quic-go/quic-go"

	"github.com/msgtrans/msgtrans-go/runtime"
	"github.com/msgtrans/msgtrans-go/wire"
)

// conn is a [runtime.Conn] over the single stream of a QUIC connection.
type conn struct {
	qc      *quicgo.Conn
	s       *quicgo.Stream
	dec     *wire.Decoder
	onClose func() // releases the UDP socket, or the listener's hold on it

	// closing is set by Close; reads and writes then fail.
	closing atomic.Bool
	// peerDone is set once the reader has seen the peer end the stream or
	// the connection.
	peerDone atomic.Bool
	// readFailed is set once a read failed other than at a clean end.
	readFailed atomic.Bool

	wmu     sync.Mutex // held by WritePackets, tried by Close
	wbroken bool       // a write failed: the stream may end inside a packet

	closeOnce  sync.Once
	finishOnce sync.Once
	lingerMu   sync.Mutex
	linger     *time.Timer
	released   chan struct{} // closed when finish is done
}

func newConn(qc *quicgo.Conn, s *quicgo.Stream, cfg *runtime.TransportConfig, onClose func()) *conn {
	c := &conn{qc: qc, s: s, onClose: onClose, released: make(chan struct{})}
	c.dec = wire.NewFramedDecoder(streamReader{c}, cfg.Limits, MaxFrame)
	c.dec.PoolBodies() // the session gives each packet's memory back

	return c
}

// SetLimits implements [runtime.LimitSetter].
func (c *conn) SetLimits(lim wire.Limits) { c.dec.SetLimits(lim) }

// ReadPacket implements [runtime.Conn].
func (c *conn) ReadPacket() (wire.Packet, error) {
	var p wire.Packet
	err := c.ReadPacketInto(&p)
	return p, err
}

var (
	_ runtime.PacketIntoReader = (*conn)(nil)
	_ runtime.PacketLender     = (*conn)(nil)
	_ runtime.ReadAheader      = (*conn)(nil)
)

// Buffered implements [runtime.ReadAheader]: the bytes the decoder read
// ahead (what quic-go holds for the stream is not counted).
func (c *conn) Buffered() int { return c.dec.Buffered() }

// ReadPacketInto implements [runtime.PacketIntoReader].
func (c *conn) ReadPacketInto(p *wire.Packet) error { return c.read(p, c.dec.NextInto) }

// LendPacketInto implements [runtime.PacketLender].
func (c *conn) LendPacketInto(p *wire.Packet) error { return c.read(p, c.dec.NextLent) }

// read reads a packet into p with next, one of the decoder's methods.
func (c *conn) read(p *wire.Packet, next func(*wire.Packet) error) error {
	err := next(p)
	if err != nil && !errors.Is(err, io.EOF) {
		// After bad input there is nothing worth lingering for.
		c.readFailed.Store(true)
	}
	return err
}

// WritePackets implements [runtime.Conn]. Each packet is prefixed with its
// length; the batch is gathered into as few stream writes as possible. A
// packet longer than [MaxFrame] fails the whole batch before anything is
// written.
func (c *conn) WritePackets(pkts [][]byte) error {
	for _, p := range pkts {
		if len(p) > MaxFrame {
			return fmt.Errorf("%w: packet of %d bytes exceeds the quic frame maximum of %d", wire.ErrTooLarge, len(p), MaxFrame)
		}
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.closing.Load() {
		return fmt.Errorf("msgtrans: quic write: %w", net.ErrClosed)
	}
	if err := runtime.GatherWrite(c.s, pkts, appendPrefix); err != nil {
		c.wbroken = true
		return fmt.Errorf("msgtrans: quic write: %w", err)
	}
	return nil
}

// appendPrefix appends the length prefix of pkt to dst.
func appendPrefix(dst, pkt []byte) []byte {
	return binary.BigEndian.AppendUint32(dst, uint32(len(pkt)))
}

// SetWriteDeadline implements [runtime.Conn].
func (c *conn) SetWriteDeadline(t time.Time) error { return c.s.SetWriteDeadline(t) }

// Close implements [runtime.Conn]. It unblocks ReadPacket and WritePackets
// at once. When no write is in progress, no read failed, and the peer has
// not ended its side, it ends the stream and lets the connection linger
// (without a goroutine) until the peer closes, at most closeLinger, so that
// what was written reaches the peer; otherwise it closes the connection
// immediately. Released reports when either is done.
func (c *conn) Close() error {
	c.closeOnce.Do(func() {
		graceful := false
		if c.wmu.TryLock() {
			c.closing.Store(true)
			if !c.wbroken && !c.peerDone.Load() && !c.readFailed.Load() {
				// Stream.Close must not run concurrently with Write: wmu
				// guarantees it.
				graceful = c.s.Close() == nil
			}
			c.wmu.Unlock()
		} else {
			c.closing.Store(true)
		}
		if !graceful {
			c.finish()
			return
		}
		// Unblock the reader: it sees closing once its Read fails.
		_ = c.s.SetReadDeadline(time.Unix(1, 0))
		c.lingerMu.Lock()
		c.linger = time.AfterFunc(closeLinger, c.finish)
		c.lingerMu.Unlock()
		context.AfterFunc(c.qc.Context(), c.finish)
	})
	return nil
}

// abort closes the connection at once with the given application error code.
func (c *conn) abort(code quicgo.ApplicationErrorCode, msg string) {
	c.closeOnce.Do(func() {
		c.closing.Store(true)
		_ = c.qc.CloseWithError(code, msg)
		c.finish()
	})
}

// finish closes the QUIC connection and releases its socket.
func (c *conn) finish() {
	c.finishOnce.Do(func() {
		c.lingerMu.Lock()
		if c.linger != nil {
			c.linger.Stop()
		}
		c.lingerMu.Unlock()
		_ = c.qc.CloseWithError(codeNoError, "")
		if c.onClose != nil {
			c.onClose()
		}
		close(c.released)
	})
}

// Released implements the runtime's optional release notice: the returned
// channel is closed once a Close has finished lingering and the connection
// and its share of the UDP socket are released.
func (c *conn) Released() <-chan struct{} { return c.released }

// LocalAddr implements [runtime.Conn].
func (c *conn) LocalAddr() net.Addr { return c.qc.LocalAddr() }

// RemoteAddr implements [runtime.Conn].
func (c *conn) RemoteAddr() net.Addr { return c.qc.RemoteAddr() }

// streamReader is the stream as the runtime's decoder reads it: quic-go's
// ways of ending a stream or a connection become the io.EOF, ErrTruncated
// and net.ErrClosed that the runtime expects.
type streamReader struct{ c *conn }

func (r streamReader) Read(p []byte) (int, error) {
	// Checked after the decoder set its deadline: either Close sees that
	// deadline and overrides it, or this sees closing.
	if r.c.closing.Load() {
		return 0, fmt.Errorf("msgtrans: quic read: %w", net.ErrClosed)
	}
	n, err := r.c.s.Read(p)
	if err != nil {
		err = r.c.readErr(err)
	}
	return n, err
}

func (r streamReader) SetReadDeadline(t time.Time) error { return r.c.s.SetReadDeadline(t) }

// readErr maps an error of the stream's Read.
func (c *conn) readErr(err error) error {
	if c.closing.Load() {
		return fmt.Errorf("msgtrans: quic read: %w", net.ErrClosed)
	}
	var appErr *quicgo.ApplicationError
	isApp := errors.As(err, &appErr) && appErr.Remote
	var streamErr *quicgo.StreamError
	isReset := errors.As(err, &streamErr) && streamErr.Remote
	if isApp || isReset || errors.Is(err, io.EOF) {
		c.peerDone.Store(true)
	}
	switch {
	case isReset:
		// A reset discards whatever the peer sent and we have not read, so
		// it never marks a clean end between packets.
		return fmt.Errorf("%w: the peer reset the stream with code %#x", wire.ErrTruncated, uint64(streamErr.ErrorCode))
	case errors.Is(err, io.EOF):
		return io.EOF
	case isApp && appErr.ErrorCode == codeNoError:
		return io.EOF
	case isApp:
		return fmt.Errorf("msgtrans: quic peer closed the connection with code %#x %q: %w", uint64(appErr.ErrorCode), appErr.ErrorMessage, io.EOF)
	}
	return err
}
