package runtime

import (
	"errors"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/msgtrans/msgtrans-go/wire"
)

// writeChunk is the most a stream connection gathers into one write.
const writeChunk = 64 << 10

var writeBufPool = sync.Pool{New: func() any { b := make([]byte, 0, writeChunk); return &b }}

// StreamConn is a [Conn] over a byte stream such as TCP, TLS or [net.Pipe],
// framed by the lengths in each packet's fixed header. Transports over byte
// streams wrap their net.Conn with [NewStreamConn].
type StreamConn struct {
	c   net.Conn
	dec *wire.Decoder
}

// NewStreamConn returns a packet connection over c that reads under the
// given limits. Closing it closes c.
func NewStreamConn(c net.Conn, lim wire.Limits) *StreamConn {
	dec := wire.NewDecoder(c, lim)
	dec.PoolBodies() // the session gives each packet's memory back
	return &StreamConn{c: c, dec: dec}
}

// ReadPacket implements [Conn].
func (s *StreamConn) ReadPacket() (wire.Packet, error) { return s.dec.Next() }

var (
	_ PacketIntoReader = (*StreamConn)(nil)
	_ PacketLender     = (*StreamConn)(nil)
	_ ReadAheader      = (*StreamConn)(nil)
)

// ReadPacketInto implements [PacketIntoReader].
func (s *StreamConn) ReadPacketInto(p *wire.Packet) error { return s.dec.NextInto(p) }

// LendPacketInto implements [PacketLender].
func (s *StreamConn) LendPacketInto(p *wire.Packet) error { return s.dec.NextLent(p) }

// WritePackets implements [Conn]. It gathers the packets into pooled buffers
// of up to 64 KiB, so a batch of small packets costs one system call; a
// packet larger than that is written directly.
func (s *StreamConn) WritePackets(pkts [][]byte) error {
	return GatherWrite(s.c, pkts, nil)
}

// GatherWrite writes pkts to w in order with as few Write calls as it can,
// through a pooled buffer of up to 64 KiB. When prefix is non-nil it is
// called for each packet and its result written just before the packet (the
// QUIC transport uses it for length prefixes).
func GatherWrite(w interface{ Write([]byte) (int, error) }, pkts [][]byte, prefix func(dst []byte, pkt []byte) []byte) error {
	bp := writeBufPool.Get().(*[]byte)
	buf := (*bp)[:0]
	defer func() { *bp = buf[:0]; writeBufPool.Put(bp) }()
	for _, p := range pkts {
		if prefix != nil {
			buf = prefix(buf, p)
		}
		if len(buf)+len(p) <= writeChunk {
			buf = append(buf, p...)
			continue
		}
		if len(buf) > 0 {
			if _, err := w.Write(buf); err != nil {
				return err
			}
			buf = buf[:0]
		}
		if len(p) >= writeChunk {
			if _, err := w.Write(p); err != nil {
				return err
			}
			continue
		}
		buf = append(buf, p...)
	}
	if len(buf) > 0 {
		if _, err := w.Write(buf); err != nil {
			return err
		}
	}
	return nil
}

// CloseWrite half-closes the connection when the underlying one supports it
// (TCP, TLS): the peer reads the end of the stream while this side can
// still read what the peer sends before closing.
func (s *StreamConn) CloseWrite() error {
	if hc, ok := s.c.(CloseWriter); ok {
		return hc.CloseWrite()
	}
	return errors.ErrUnsupported
}

// ParkWhenIdle implements [IdleParker] for connections over a kernel
// socket, TLS over one included: the decoder stops waiting once idle
// (a TLS connection returns what it has decrypted before it waits on the
// socket, so nothing stays buffered above it when the wait ends).
func (s *StreamConn) ParkWhenIdle(after time.Duration) (syscall.RawConn, bool) {
	rc, ok := socketOf(s.c)
	if !ok || !s.dec.SetIdleTimeout(after) {
		return nil, false
	}
	return rc, true
}

// socketOf returns the kernel socket under c, looking through
// connections that wrap another (TLS, a listener's admitted connection).
func socketOf(c net.Conn) (syscall.RawConn, bool) {
	for c != nil {
		if sc, ok := c.(syscall.Conn); ok {
			rc, err := sc.SyscallConn()
			return rc, err == nil
		}
		w, ok := c.(interface{ NetConn() net.Conn })
		if !ok {
			break
		}
		c = w.NetConn()
	}
	return nil, false
}

// SetLimits implements [LimitSetter].
func (s *StreamConn) SetLimits(lim wire.Limits) { s.dec.SetLimits(lim) }

// SetWriteDeadline implements [Conn].
func (s *StreamConn) SetWriteDeadline(t time.Time) error { return s.c.SetWriteDeadline(t) }

// Close implements [Conn].
func (s *StreamConn) Close() error { return s.c.Close() }

// LocalAddr implements [Conn].
func (s *StreamConn) LocalAddr() net.Addr { return s.c.LocalAddr() }

// RemoteAddr implements [Conn].
func (s *StreamConn) RemoteAddr() net.Addr { return s.c.RemoteAddr() }

// NetConn returns the underlying connection.
func (s *StreamConn) NetConn() net.Conn { return s.c }

// Buffered implements [ReadAheader].
func (s *StreamConn) Buffered() int { return s.dec.Buffered() }
