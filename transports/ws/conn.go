package ws

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/msgtrans/msgtrans-go/runtime"
	"github.com/msgtrans/msgtrans-go/wire"
)

// conn is a [runtime.Conn] over a gorilla WebSocket connection.
type conn struct {
	ws        *websocket.Conn
	bc        *bufConn
	lim       wire.Limits // with defaults applied
	maxPacket int         // the largest packet (and message) lim admits

	// readMu is held by ReadPacket, and after Close by the goroutine that
	// drains the connection, so that the two never read at once.
	readMu sync.Mutex
	// Used only by the goroutine holding readMu.
	hdr       [wire.HeaderSize]byte
	inMessage bool // between NextReader returning a message and the message's end
	ahead     int  // bytes read ahead when the last packet was returned (see Buffered)
	broken    bool // gorilla's reader failed: it returns that error for good
	parkConn       // idle parking (see park.go)

	closeSent     atomic.Bool            // a close frame went out (ours, or the reply to the peer's)
	closeReceived atomic.Bool            // the peer's close frame arrived
	closeMsg      atomic.Pointer[[]byte] // our close frame's payload (see SetCloseReason); nil: normal closure
	closing       atomic.Bool            // Close has begun
	closeOnce     sync.Once
	released      chan struct{} // closed once Close has released the socket

	// onFrame is the runtime's count of control frames (see
	// NotifyControlFrames); frameErr what it returned to stop reading.
	onFrame  func(ping bool) error
	frameErr error

	// The latest ping not yet answered; one goroutine at a time answers
	// while one is pending, so a burst of pings gets one pong, not a pong
	// each (RFC 6455, section 5.5.3, allows that).
	pingMu   sync.Mutex
	ping     string
	pinged   bool // ping holds a ping not yet answered
	ponging  bool // a goroutine is answering
	pongDone sync.WaitGroup
}

func newConn(ws *websocket.Conn, bc *bufConn, cfg *runtime.TransportConfig) *conn {
	c := &conn{ws: ws, bc: bc, lim: cfg.Limits, maxPacket: cfg.MaxPacketSize(), released: make(chan struct{})}
	bc.pktTimeout = cfg.Limits.PacketReadTimeout
	// No gorilla read limit: ReadPacket holds a message to the packet its
	// header declares, which the limits bound, and reports a longer one
	// itself; gorilla's limit would close with 1009 and no reason first.
	// A control frame between messages is not the start of a packet: keep
	// waiting without the packet read deadline. Each counts toward the
	// session's rate limit; pings are answered, the latest one only.
	ws.SetPingHandler(func(s string) error {
		if err := c.controlFrame(true); err != nil {
			return err
		}
		c.answerPing(s)
		return nil
	})
	ws.SetPongHandler(func(string) error { return c.controlFrame(false) })
	// gorilla's close handler answers the peer's close frame with one of
	// its own: Close then sends none.
	closeReply := ws.CloseHandler()
	ws.SetCloseHandler(func(code int, text string) error {
		c.closeReceived.Store(true)
		if c.closeSent.Swap(true) {
			return nil
		}
		return closeReply(code, text)
	})
	return c
}

// controlFrame notes a ping or pong frame: reading goes on without the
// packet deadline when it came between messages, and the runtime counts it.
func (c *conn) controlFrame(ping bool) error {
	if !c.inMessage {
		c.bc.waiting = true
	}
	if c.onFrame != nil {
		if err := c.onFrame(ping); err != nil {
			c.frameErr = err
			return err
		}
	}
	return nil
}

// NotifyControlFrames implements [runtime.ControlFrameNotifier].
func (c *conn) NotifyControlFrames(fn func(ping bool) error) { c.onFrame = fn }

// answerPing answers the ping with the payload, or has the answer already
// on its way carry this payload instead.
func (c *conn) answerPing(payload string) {
	c.pingMu.Lock()
	c.ping, c.pinged = payload, true
	start := !c.ponging
	c.ponging = true
	c.pingMu.Unlock()
	if start {
		c.pongDone.Add(1)
		go c.writePongs()
	}
}

// writePongs answers the latest ping until none is pending.
func (c *conn) writePongs() {
	defer c.pongDone.Done()
	for {
		c.pingMu.Lock()
		if !c.pinged {
			c.ponging = false
			c.pingMu.Unlock()
			return
		}
		payload := c.ping
		c.pinged = false
		c.pingMu.Unlock()
		if err := c.ws.WriteControl(websocket.PongMessage, []byte(payload), time.Now().Add(closeGrace)); err != nil {
			c.pingMu.Lock()
			c.pinged, c.ponging = false, false
			c.pingMu.Unlock()
			return
		}
	}
}

// SetLimits implements [runtime.LimitSetter].
func (c *conn) SetLimits(lim wire.Limits) {
	c.lim = (&runtime.TransportConfig{Limits: lim}).WithDefaults().Limits
	c.maxPacket = lim.MaxPacketSize()
	c.bc.pktTimeout = c.lim.PacketReadTimeout
}

var _ runtime.ReadAheader = (*conn)(nil)

// Buffered implements [runtime.ReadAheader]: the bytes read from the socket
// and not yet returned when ReadPacket last returned a packet. It is noted
// then, under readMu, because after a Close the goroutine draining the
// connection reads those buffers without the session's reader knowing.
func (c *conn) Buffered() int { return c.ahead }

// aheadNow counts the bytes read ahead, in the read-ahead buffer and
// (server side) in gorilla's. readMu is held.
func (c *conn) aheadNow() int {
	n := 0
	if c.br != nil {
		n = c.br.Buffered()
	}
	if b := c.bc; b.ra != nil {
		n += b.r1 - b.r0
	}
	return n
}

// ReadPacket implements [runtime.Conn]: it reads one binary message and
// returns the packet it holds, which owns its memory.
func (c *conn) ReadPacket() (wire.Packet, error) {
	c.readMu.Lock()
	defer c.readMu.Unlock()
	if c.closing.Load() {
		return wire.Packet{}, fmt.Errorf("msgtrans: ws read: %w", net.ErrClosed)
	}
	b := c.bc
	b.waiting = true
	c.inMessage = false
	if err := c.idleWait(); err != nil {
		return wire.Packet{}, err
	}
	mt, r, err := c.ws.NextReader()
	if err != nil {
		return wire.Packet{}, c.readError(err)
	}
	c.inMessage = true
	if b.waiting {
		// The message was already buffered: its time counts from when it
		// arrived.
		b.waiting = false
		if err := b.setReadDeadline(b.filled.Add(c.lim.PacketReadTimeout)); err != nil {
			return wire.Packet{}, fmt.Errorf("msgtrans: ws read: %w", err)
		}
	}
	if mt != websocket.BinaryMessage {
		return wire.Packet{}, errTextMessage
	}
	if n, err := io.ReadFull(r, c.hdr[:]); err != nil {
		if isMessageEnd(err) {
			return wire.Packet{}, fmt.Errorf("%w: binary message of %d bytes, shorter than a packet header", wire.ErrTruncated, n)
		}
		return wire.Packet{}, c.readError(err)
	}
	h, err := wire.ParseHeader(c.hdr[:], c.lim)
	if err != nil {
		return wire.Packet{}, err
	}
	// The session gives the packet's memory back once it is done with it.
	p, body := h.PooledPacket()
	if n, err := io.ReadFull(r, body); err != nil {
		p.Release()
		if isMessageEnd(err) {
			return wire.Packet{}, fmt.Errorf("%w: binary message of %d bytes, its packet header declares %d",
				wire.ErrTruncated, wire.HeaderSize+n, wire.HeaderSize+len(body))
		}
		return wire.Packet{}, c.readError(err)
	}
	// The message must end with the packet.
	for {
		n, err := r.Read(c.hdr[:1])
		if n > 0 {
			p.Release()
			return wire.Packet{}, c.overlong(r, wire.HeaderSize+len(body))
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			p.Release()
			return wire.Packet{}, c.readError(err)
		}
	}
	c.inMessage = false
	c.ahead = c.aheadNow()
	return p, nil
}

// overlong reads on a message found longer than the packet of size bytes
// it starts with (one byte past it is read), as far as the read limit, to
// say which it is: a message over the limit, or a protocol error.
func (c *conn) overlong(r io.Reader, size int) error {
	extra, err := io.Copy(io.Discard, io.LimitReader(r, int64(c.maxPacket-size)))
	switch {
	case int64(size)+1+extra > int64(c.maxPacket):
		return fmt.Errorf("%w: websocket message over the %d-byte packet limit", wire.ErrTooLarge, c.maxPacket)
	case err != nil:
		return c.readError(err)
	}
	return fmt.Errorf("%w: binary message of %d bytes, longer than the %d-byte packet it starts with",
		wire.ErrProtocol, int64(size)+1+extra, size)
}

// isMessageEnd reports whether err from io.ReadFull on a message reader
// means the message ended early.
func isMessageEnd(err error) bool { return err == io.EOF || err == io.ErrUnexpectedEOF }

// readError turns an error from gorilla's reader into the error ReadPacket
// reports.
func (c *conn) readError(err error) error {
	c.broken = true
	var ce *websocket.CloseError
	var ne net.Error
	switch {
	case c.frameErr != nil:
		return c.frameErr
	case errors.As(err, &ce):
		switch ce.Code {
		case websocket.CloseNormalClosure, websocket.CloseGoingAway, websocket.CloseNoStatusReceived:
			if !c.inMessage {
				return io.EOF
			}
		case websocket.CloseAbnormalClosure: // gorilla's report of a connection ending without a close frame
			if !c.inMessage {
				return fmt.Errorf("msgtrans: ws: connection ended without a close frame: %w", io.ErrUnexpectedEOF)
			}
		default:
			return fmt.Errorf("msgtrans: ws: peer closed the connection: %w", err)
		}
		return fmt.Errorf("%w: connection closed inside a websocket message", wire.ErrTruncated)
	case errors.Is(err, websocket.ErrReadLimit):
		return fmt.Errorf("%w: websocket message over the %d-byte packet limit", wire.ErrTooLarge, c.maxPacket)
	case errors.As(err, &ne):
		if ne.Timeout() && c.inMessage {
			return fmt.Errorf("msgtrans: ws: packet not read within %v: %w", c.lim.PacketReadTimeout, err)
		}
		return fmt.Errorf("msgtrans: ws read: %w", err)
	default:
		// What remains are gorilla's framing errors: bad opcode, unmasked
		// client frame, invalid close frame and the like.
		return fmt.Errorf("%w: %v", wire.ErrProtocol, err)
	}
}

// WritePackets implements [runtime.Conn]: each packet becomes one binary
// message, and the whole batch reaches the socket in one flush.
func (c *conn) WritePackets(pkts [][]byte) error {
	if c.closing.Load() {
		return fmt.Errorf("msgtrans: ws write: %w", net.ErrClosed)
	}
	if len(pkts) == 0 {
		return nil
	}
	c.bc.beginBatch()
	var err error
	for _, p := range pkts {
		if err = c.ws.WriteMessage(websocket.BinaryMessage, p); err != nil {
			break
		}
	}
	if ferr := c.bc.endBatch(); err == nil {
		err = ferr
	}
	switch {
	case errors.Is(err, websocket.ErrCloseSent):
		// The closing handshake has begun (the peer's close frame was
		// answered, or CloseWrite sent ours): the connection is closing,
		// not failing.
		return fmt.Errorf("msgtrans: ws write after the closing handshake began: %w", net.ErrClosed)
	case err != nil:
		return fmt.Errorf("msgtrans: ws write: %w", err)
	}
	return nil
}

// SetWriteDeadline implements [runtime.Conn]. It may be called while
// WritePackets is blocked, to unblock it.
func (c *conn) SetWriteDeadline(t time.Time) error { return c.bc.setBatchDeadline(t) }

// SetCloseReason implements [runtime.CloseReasoner]: the close frame that
// CloseWrite or Close sends carries the code and reason closeStatus gives
// reason (1000, no reason, until it is called).
func (c *conn) SetCloseReason(reason error) {
	p := closePayload(reason)
	c.closeMsg.Store(&p)
}

// normalClose is the payload of a close frame without fault.
var normalClose = websocket.FormatCloseMessage(websocket.CloseNormalClosure, "")

// closeFrame returns the payload of the close frame to send.
func (c *conn) closeFrame() []byte {
	if p := c.closeMsg.Load(); p != nil {
		return *p
	}
	return normalClose
}

// CloseWrite starts the WebSocket closing handshake: it sends the close
// frame (see SetCloseReason), after which nothing more is written. Reading
// goes on until the peer's close frame answers it (ReadPacket returns
// io.EOF): a graceful close lingers so, because closing the socket with
// input unread would reset it and could destroy what the peer has not read.
func (c *conn) CloseWrite() error {
	if c.closeSent.Swap(true) {
		return nil
	}
	return c.ws.WriteControl(websocket.CloseMessage, c.closeFrame(), time.Now().Add(closeGrace))
}

// Close implements [runtime.Conn]. It returns at once and finishes in the
// background, within closeGrace plus drainTime; Released is closed when it
// has. Reads and writes that begin after it fail with net.ErrClosed. It
// bounds a write in progress by closeGrace, then sends the close frame (see
// SetCloseReason) after what that write gathered. Then, unless the peer's
// close frame has arrived or ReadPacket is reading, the connection is
// drained rather than closed at once: it ends its sending side and reads
// and discards what comes until the peer closes or answers with its close
// frame, for at most drainTime, so that input left unread does not reset
// the connection before the peer has read the close frame (it would see an
// abnormal close, 1006, instead of the code).
func (c *conn) Close() error {
	c.closeOnce.Do(func() {
		c.closing.Store(true)
		go c.finish(c.readMu.TryLock())
	})
	return nil
}

// finish is the work of Close; drain says whether it holds readMu (nothing
// is reading) and so may drain the connection.
func (c *conn) finish(drain bool) {
	if drain {
		defer c.readMu.Unlock()
	}
	_ = c.bc.setBatchDeadline(time.Now().Add(closeGrace))
	if !c.closeSent.Swap(true) {
		_ = c.ws.WriteControl(websocket.CloseMessage, c.closeFrame(), time.Now().Add(closeGrace))
	}
	c.bc.waitBatch()
	if drain && !c.closeReceived.Load() {
		timer := time.AfterFunc(drainTime, func() { _ = c.bc.Conn.Close() })
		halfClose(c.bc.Conn)
		if c.broken {
			// gorilla's reader has failed for good (the stream may be
			// cut inside a frame): discard bytes until the peer closes.
			_, _ = io.Copy(io.Discard, c.bc.Conn)
		} else {
			// Discard messages until the peer's close frame (the close
			// handler then sends nothing, ours being out) or the end.
			for {
				if _, _, err := c.ws.NextReader(); err != nil {
					break
				}
			}
		}
		timer.Stop()
	}
	_ = c.bc.Conn.Close()
	c.pongDone.Wait()
	close(c.released)
}

// Released implements [runtime.Releaser]: it is closed once Close has
// closed the socket, at most drainTime after Close.
func (c *conn) Released() <-chan struct{} { return c.released }

// LocalAddr implements [runtime.Conn].
func (c *conn) LocalAddr() net.Addr { return c.bc.LocalAddr() }

// RemoteAddr implements [runtime.Conn].
func (c *conn) RemoteAddr() net.Addr { return c.bc.RemoteAddr() }
