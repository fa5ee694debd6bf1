package runtime

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	goruntime "runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/msgtrans/msgtrans-go/wire"
)

// Session is one connection between a server and a client, seen from either
// end: the server has one per connected client, a [Client] one per
// connection it makes.
//
// Sending never blocks: packets are encoded and queued, and one writer
// drains the queue, flushing once per drain so that many packets share a
// system call. The queue is bounded in bytes; a session that falls that far
// behind is closed with [ErrSlowConsumer] and never slows anyone else.
// Packets sent on one session arrive in the order they were sent.
//
// All methods are safe for concurrent use.
type Session struct {
	id     uint64
	conn   Conn
	scheme string
	cfg    *config
	mux    *mux
	ids    *atomic.Uint32 // message-id counter of the sending side
	srv    *Server        // nil on the client side
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // the writer and request handlers

	// peerComp is the bitmask of compressions the peer accepts.
	peerComp atomic.Uint32
	// Heartbeat state: when the last packet arrived (by the owner's coarse
	// clock), whether the peer sent a hello (and so heartbeats), and the
	// pings it sent since the server's last heartbeat tick.
	clock    *clock
	lastRecv atomic.Int64
	hello    atomic.Bool
	pings    atomic.Int32

	mu       sync.Mutex
	queue    [][]byte
	queued   int  // bytes in queue
	writing  bool // a writer goroutine is running
	closing  bool // no new sends; close once flushed
	draining bool // new requests are refused; those running finish
	flushed  chan struct{}
	closed   bool
	closeErr error
	groups   map[string]struct{}
	attrs    map[any]any // guarded by mu; nil until the first Set

	pmu     sync.Mutex
	pending map[uint32]chan reply

	handlers sync.WaitGroup // request handlers running; see drain
	goaway   atomic.Bool    // the server said it is going away (client side)

	// Server side: ready is set once the session may be served (at once,
	// or when the authenticator accepts its hello); identity is what the
	// authenticator bound, written before ready.
	ready    atomic.Bool
	identity string

	// A graceful close half-closes the connection and lingers until the
	// peer closes (see linger): packets arriving meanwhile are dropped.
	lingering    atomic.Bool
	readEnded    chan struct{} // closed when the read loop ends; guarded by mu
	lingerReason error         // the close reason meanwhile; guarded by mu

	// Rate limit and decompression budget, used by the read goroutine
	// only (see admit and inflate).
	throttle throttle
	dropped  atomic.Int64

	// inflight bounds the request handlers running at once; made by the
	// read goroutine on the first request, and drained by the handlers it
	// starts after that.
	inflight chan struct{}
	// ahead is what the read goroutine read while waiting for a request
	// slot (see takeSlot); used by the read goroutine only.
	ahead readAhead

	// writeDeadline is the write deadline set on conn, in Unix nanoseconds;
	// used by the writer goroutine only (see refreshWriteDeadline).
	writeDeadline int64

	// first is the server's answer to a client's hello, read while
	// connecting and handled by run before anything else (client side).
	first *wire.Packet
}

type reply struct {
	p   *wire.Packet
	err error
}

func newSession(conn Conn, scheme string, cfg *config, m *mux, ids *atomic.Uint32, clk *clock) *Session {
	s := &Session{conn: conn, scheme: scheme, cfg: cfg, mux: m, ids: ids, clock: clk}
	s.lastRecv.Store(clk.tick())
	s.ctx, s.cancel = context.WithCancel(context.Background())
	if n, ok := conn.(ControlFrameNotifier); ok {
		n.NotifyControlFrames(s.controlFrame)
	}
	return s
}

// ID returns the session's id, unique within its server. On the client side
// it is 0.
func (s *Session) ID() uint64 { return s.id }

// Transport returns the URL scheme the session arrived by ("tcp", "ws", …).
func (s *Session) Transport() string { return s.scheme }

// RemoteAddr returns the peer's network address.
func (s *Session) RemoteAddr() net.Addr { return s.conn.RemoteAddr() }

// LocalAddr returns this side's network address.
func (s *Session) LocalAddr() net.Addr { return s.conn.LocalAddr() }

// Context returns a context cancelled when the session closes.
func (s *Session) Context() context.Context { return s.ctx }

// Done returns a channel closed when the session closes.
func (s *Session) Done() <-chan struct{} { return s.ctx.Done() }

// Set stores an attribute on the session, for example the user id bound at
// login.
func (s *Session) Set(key, value any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.attrs == nil {
		s.attrs = make(map[any]any, 1)
	}
	s.attrs[key] = value
}

// Get returns an attribute stored with [Session.Set].
func (s *Session) Get(key any) (any, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.attrs[key]
	return v, ok
}

// Delete removes an attribute.
func (s *Session) Delete(key any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.attrs, key)
}

// Err returns why the session closed, or nil while it is open.
func (s *Session) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closeErr
}

// Groups returns the names of the groups the session belongs to.
func (s *Session) Groups() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.groups))
	for g := range s.groups {
		out = append(out, g)
	}
	return out
}

func (s *Session) nextID() uint32 {
	for {
		if id := s.ids.Add(1); id != 0 {
			return id
		}
	}
}

// Send queues p as a OneWay packet (whatever p.Type says) with the next
// message id of this side. It fails when the session is closed or the packet
// would overflow the send queue, which closes the session as a slow consumer.
func (s *Session) Send(p *wire.Packet) error {
	return s.sendAs(p, wire.OneWay, s.nextID())
}

// SendEncoded queues an already encoded packet (see [AppendPacket]) as it
// is, without copying: b must not be modified afterwards. It is how one
// encoding is shared by many sessions. A packet over the limits fails with
// [ErrPayloadTooLarge].
func (s *Session) SendEncoded(b []byte) error {
	if err := checkEncoded(s.cfg.limits, b); err != nil {
		return err
	}
	return s.enqueue(b)
}

func (s *Session) sendAs(p *wire.Packet, t wire.PacketType, id uint32) error {
	b, err := s.encode(p, t, id)
	if err != nil {
		return err
	}
	return s.enqueue(b)
}

// encode returns the wire bytes of p with the given type and id, compressed
// when configured and accepted by the peer. A packet over the limits fails
// with [ErrPayloadTooLarge].
func (s *Session) encode(p *wire.Packet, t wire.PacketType, id uint32) ([]byte, error) {
	if err := checkSend(s.cfg.limits, len(p.Ext), len(p.Payload)); err != nil {
		return nil, err
	}
	q := *p
	q.Type, q.MessageID = t, id
	if s.compresses(len(q.Payload)) {
		q = *s.cfg.compressor.Compress(&q)
	}
	return wire.AppendPacket(make([]byte, 0, q.EncodedLen()), &q)
}

// compresses reports whether a payload of n bytes sent on s is compressed:
// compression is configured, the peer accepts it, and n reaches the
// threshold.
func (s *Session) compresses(n int) bool {
	c := s.cfg.compressor
	return c.Algorithm != wire.CompressionNone && s.peerComp.Load()&(1<<c.Algorithm) != 0 && n >= c.MinSize()
}

// Queued returns the bytes queued for the peer that the writer has not yet
// taken: a backlog that persists means the peer reads slower than it is
// sent to. The session is closed with [ErrSlowConsumer] rather than letting
// the backlog exceed the send queue bound ([WithSendQueueBytes]).
func (s *Session) Queued() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.queued
}

func (s *Session) enqueue(b []byte) error {
	s.mu.Lock()
	if s.closed || s.closing {
		s.mu.Unlock()
		return fmt.Errorf("%w: session %d", ErrClosed, s.id)
	}
	if queued := s.queued; queued+len(b) > s.cfg.sendQueueBytes {
		s.mu.Unlock()
		s.cfg.logger.Warn("msgtrans: closing slow consumer", "session", s.id, "remote", addrString(s.conn.RemoteAddr()), "queued_bytes", queued)
		s.closeWith(ErrSlowConsumer)
		return ErrSlowConsumer
	}
	s.pushLocked(b)
	s.mu.Unlock()
	return nil
}

// pushLocked queues b and starts the writer if it is not running. s.mu is held.
func (s *Session) pushLocked(b []byte) {
	if s.queue == nil {
		s.queue = getBatch()
	}
	s.queue = append(s.queue, b)
	s.queued += len(b)
	if !s.writing {
		s.writing = true
		s.wg.Add(1)
		go s.writeLoop()
	}
}

// batchPool recycles send queues, so that a session whose writer comes and
// goes (it exits whenever the queue drains) does not grow a new queue for
// every burst, while an idle session holds none.
var batchPool = sync.Pool{New: func() any { b := make([][]byte, 0, 64); return &b }}

func getBatch() [][]byte { return (*batchPool.Get().(*[][]byte))[:0] }

// putBatch returns a queue to the pool. Entries beyond a queue's length are
// always nil (a queue only grows by appending, and the writer clears what it
// wrote before reusing a queue), so clearing its length is enough.
func putBatch(b [][]byte) {
	if b == nil || cap(b) > 4096 {
		return // let an unusually large queue go
	}
	clear(b)
	b = b[:0]
	batchPool.Put(&b)
}

// writeLoop drains the queue, one WritePackets call per drain. It runs only
// while there is something to write, so an idle session has no writer
// goroutine and holds no queue.
func (s *Session) writeLoop() {
	defer s.wg.Done()
	// Let goroutines that are ready to send on this session (request
	// handlers answering a batch of requests, say) queue their packets
	// first, so that they share this write.
	goruntime.Gosched()
	var spare [][]byte // the previous batch, emptied, to queue into next
	for {
		s.mu.Lock()
		if len(s.queue) == 0 || s.closed {
			s.writing = false
			putBatch(s.queue)
			putBatch(spare)
			s.queue, s.queued = nil, 0
			if s.closing && s.flushed != nil {
				close(s.flushed)
				s.flushed = nil
			}
			s.mu.Unlock()
			return
		}
		batch := s.queue
		s.queue, s.queued = spare, 0
		if s.queue == nil {
			s.queue = getBatch()
		}
		s.mu.Unlock()

		err := s.refreshWriteDeadline()
		if err == nil {
			err = s.conn.WritePackets(batch)
		}
		clear(batch)
		spare = batch[:0]
		if err != nil {
			s.closeWith(s.writeFailure(err))
		}
	}
}

// refreshWriteDeadline gives the coming write the write timeout. Setting a
// deadline costs about as much as a small write's own work outside the
// system call, so one still at least 7/8 of the timeout away is kept: a
// write then times out between 7/8 of the timeout and all of it after it
// began. Only the writer goroutine calls it.
func (s *Session) refreshWriteDeadline() error {
	now, timeout := time.Now().UnixNano(), int64(s.cfg.writeTimeout)
	if s.writeDeadline-now >= timeout-timeout/8 {
		return nil
	}
	s.writeDeadline = now + timeout
	return s.conn.SetWriteDeadline(time.Unix(0, s.writeDeadline))
}

// writeFailure is the close reason for a failed write: a peer that accepted
// nothing within the write timeout is a slow consumer.
func (s *Session) writeFailure(err error) error {
	if errors.Is(err, net.ErrClosed) {
		// Closed under the writer: by this side (then the session is
		// closed already) or as the peer's close was handled.
		return ErrPeerClosed
	}
	var ne net.Error
	if errors.Is(err, os.ErrDeadlineExceeded) || errors.As(err, &ne) && ne.Timeout() {
		s.cfg.logger.Warn("msgtrans: closing slow consumer", "session", s.id, "remote", addrString(s.conn.RemoteAddr()), "write_timeout", s.cfg.writeTimeout)
		return fmt.Errorf("%w: a write did not complete within %v: %w", ErrSlowConsumer, s.cfg.writeTimeout, err)
	}
	return fmt.Errorf("msgtrans: write: %w", err)
}

// Request sends p as a Request and waits for its Response. Without a
// deadline on ctx it waits the configured request timeout (default 10 s).
// Failures are [*Error]s: CodeDeadlineExceeded on timeout, CodeCanceled when
// ctx is cancelled, CodeUnavailable when the connection drops, and the
// peer's code when it answers with an error.
func (s *Session) Request(ctx context.Context, p *wire.Packet) (*wire.Packet, error) {
	return s.request(ctx, func(id uint32) ([]byte, error) { return s.encode(p, wire.Request, id) })
}

// request registers a pending request, queues what encode returns for its
// id, and waits for the response.
func (s *Session) request(ctx context.Context, encode func(id uint32) ([]byte, error)) (*wire.Packet, error) {
	var timeout <-chan time.Time
	if _, ok := ctx.Deadline(); !ok {
		t := time.NewTimer(s.cfg.requestTimeout)
		defer t.Stop()
		timeout = t.C
	}
	id := s.nextID()
	ch := replyPool.Get().(chan reply)
	s.pmu.Lock()
	if s.pending == nil {
		if s.isClosed() {
			s.pmu.Unlock()
			replyPool.Put(ch)
			return nil, NewError(CodeUnavailable, "connection closed")
		}
		s.pending = make(map[uint32]chan reply)
	}
	s.pending[id] = ch
	s.pmu.Unlock()

	b, err := encode(id)
	if err == nil {
		err = s.enqueue(b)
	}
	if err != nil {
		s.abandon(id, ch)
		if errors.Is(err, ErrClosed) || errors.Is(err, ErrSlowConsumer) {
			return nil, wrapError(CodeUnavailable, err)
		}
		return nil, err
	}
	select {
	case r := <-ch:
		replyPool.Put(ch)
		return r.p, r.err
	case <-timeout:
		err = Errorf(CodeDeadlineExceeded, "no response within %v", s.cfg.requestTimeout)
	case <-ctx.Done():
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			err = wrapError(CodeDeadlineExceeded, ctx.Err())
		} else {
			err = wrapError(CodeCanceled, ctx.Err())
		}
	}
	s.abandon(id, ch)
	return nil, err
}

// replyPool recycles the channels requests wait on. A channel goes back only
// when no reply can still be sent on it (see abandon).
var replyPool = sync.Pool{New: func() any { return make(chan reply, 1) }}

// abandon stops waiting for the response to id. When the response is
// already being delivered, it waits for it, so that ch can be reused.
func (s *Session) abandon(id uint32, ch chan reply) {
	s.pmu.Lock()
	_, waiting := s.pending[id]
	delete(s.pending, id)
	s.pmu.Unlock()
	if !waiting {
		<-ch // complete or failPending took it from the map and sends now
	}
	replyPool.Put(ch)
}

func (s *Session) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// complete hands a Response to the request waiting for it.
func (s *Session) complete(p *wire.Packet, ext wire.Ext) {
	s.pmu.Lock()
	ch, ok := s.pending[p.MessageID]
	delete(s.pending, p.MessageID)
	s.pmu.Unlock()
	if !ok {
		s.cfg.logger.Debug("msgtrans: response to no pending request", "session", s.id, "message_id", p.MessageID)
		return
	}
	if ext.Code != CodeOK {
		ch <- reply{err: &Error{Code: ext.Code, Message: ext.Message}}
		return
	}
	ch <- reply{p: p}
}

// failPending fails every waiting request: the connection is gone.
func (s *Session) failPending(reason error) {
	s.pmu.Lock()
	pending := s.pending
	s.pending = nil
	s.pmu.Unlock()
	for _, ch := range pending {
		ch <- reply{err: &Error{Code: CodeUnavailable, Message: "connection closed: " + reasonText(reason), cause: reason}}
	}
}

// Close closes the session at once; queued packets not yet written are
// dropped. Close is idempotent.
func (s *Session) Close() error {
	s.closeWith(ErrClosed)
	return nil
}

// CloseWithReason closes the session at once, reporting reason in the
// [ConnectionClosed] event.
func (s *Session) CloseWithReason(reason error) { s.closeWith(reason) }

func (s *Session) closeWith(reason error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	s.closeErr = reason
	s.mu.Unlock()
	s.cancel()
	_ = s.conn.Close()
	s.failPending(reason)
}

// drain refuses new requests (answering them CodeUnavailable) and waits,
// until ctx is done, for the request handlers already running to finish, so
// that every request accepted before a shutdown gets its response.
func (s *Session) drain(ctx context.Context) {
	s.mu.Lock()
	s.draining = true
	s.mu.Unlock()
	done := make(chan struct{})
	go func() {
		s.handlers.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		// Handlers still running end with the session's context.
	}
}

// closeFlushed stops new sends, queues final (when not nil) as the last
// packet, waits until the queue is written or ctx is done, and closes the
// session.
func (s *Session) closeFlushed(ctx context.Context, reason error, final *wire.Packet) {
	var fb []byte
	if final != nil {
		fb, _ = s.encode(final, wire.OneWay, s.nextID())
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	if fb != nil && !s.closing {
		s.pushLocked(fb)
	}
	var wait chan struct{}
	s.closing = true
	if s.writing {
		if s.flushed == nil {
			s.flushed = make(chan struct{})
		}
		wait = s.flushed
	}
	s.mu.Unlock()
	if wait != nil {
		select {
		case <-wait:
		case <-ctx.Done():
		}
	}
	s.linger(ctx, reason)
	s.closeWith(reason)
}

// lingerTime bounds how long a graceful close waits for the peer to close
// its side.
const lingerTime = time.Second

// linger half-closes a connection that supports it and waits (at most
// lingerTime, or until ctx is done) for the peer to close its side,
// discarding what arrives meanwhile. Closing with input unread would reset
// the connection, and a reset can destroy data the peer has not read yet.
func (s *Session) linger(ctx context.Context, reason error) {
	hc, ok := s.conn.(interface{ CloseWrite() error })
	if !ok {
		return
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	ended := make(chan struct{})
	s.readEnded, s.lingerReason = ended, reason
	s.lingering.Store(true)
	s.mu.Unlock()
	if hc.CloseWrite() != nil {
		return
	}
	t := time.NewTimer(lingerTime)
	defer t.Stop()
	select {
	case <-ended:
	case <-t.C:
	case <-ctx.Done():
	}
}

// run reads and dispatches packets until the connection fails or closes,
// then waits for the session's goroutines and returns the close reason.
func (s *Session) run() error {
	var err error
	if first := s.first; first != nil {
		s.first = nil
		err = s.receive(first)
	}
	for err == nil {
		var read wire.Packet
		if read, err = s.next(); err == nil {
			// The packet escapes (handlers may keep it): copied to the heap
			// only once read, so that a session waiting for its next
			// packet holds none.
			p := read
			err = s.receive(&p)
		}
	}
	s.mu.Lock()
	closedLocally := s.closed
	if s.readEnded != nil {
		close(s.readEnded)
		s.readEnded = nil
		closedLocally, err = true, s.lingerReason
	}
	s.mu.Unlock()
	if !closedLocally && !errors.Is(err, io.EOF) && !s.goaway.Load() {
		s.cfg.logger.Warn("msgtrans: closing connection", "session", s.id, "transport", s.scheme, "remote", addrString(s.conn.RemoteAddr()), "err", err)
	}
	switch {
	case s.goaway.Load() && !closedLocally:
		// However the connection ends after the server's go-away (a close,
		// or a reset if the server closed with input unread), it is the
		// shutdown the go-away announced.
		err = ErrGoAway
	case errors.Is(err, io.EOF):
		err = ErrPeerClosed
	}
	s.discard(err)
	return s.Err()
}

// discard closes the session with reason (unless it is closed already) and
// waits until its goroutines have exited and its connection is released.
func (s *Session) discard(reason error) {
	s.closeWith(reason)
	s.wg.Wait()
	if r, ok := s.conn.(interface{ Released() <-chan struct{} }); ok {
		<-r.Released()
	}
}

// ErrPeerClosed is the close reason of a session whose peer closed the
// connection between packets.
var ErrPeerClosed = errors.New("msgtrans: closed by peer")

// receive dispatches one packet. An error closes the connection.
//
// What a packet may cost is checked before it is spent: the rate limit
// before anything else, and the decompression budget before inflating;
// payloads nobody will read are never inflated.
func (s *Session) receive(p *wire.Packet) error {
	if s.lingering.Load() {
		return nil // closing: only waiting for the peer to close too
	}
	s.lastRecv.Store(s.clock.now.Load())
	// A raw packet has the zero Ext: no route, status OK.
	var ext wire.Ext
	if wire.IsTypedExt(p) {
		e, err := wire.ParseExt(p.Ext)
		if err != nil {
			return err
		}
		ext = e
	}
	isControl := ext.HasRoute && ext.Route == wire.ControlRoute && p.Type == wire.OneWay
	if s.srv != nil && !s.ready.Load() {
		if err := s.authenticate(p, ext, isControl && ext.Control == wire.ControlHello); err != nil {
			return err
		}
	}
	// Every packet counts toward the rate limit but the pings the
	// heartbeat needs, which the ping-flood rule bounds.
	if !isControl || ext.Control != wire.ControlPing {
		if ok, err := s.admit(p); !ok {
			return err
		}
	}
	if isControl {
		if p.Compression != wire.CompressionNone {
			return fmt.Errorf("%w: control packet with a %s payload", wire.ErrProtocol, p.Compression)
		}
		return s.control(p, ext.Control)
	}
	var h Handler
	if p.Type != wire.Response {
		h = s.handlerFor(p, ext)
	}
	if p.Compression != wire.CompressionNone && s.reads(p, h) {
		if err := s.inflate(p); err != nil {
			return err
		}
	}
	switch p.Type {
	case wire.Response:
		s.complete(p, ext)
		return nil
	case wire.Request:
		if !s.takeSlot() {
			return nil // closing
		}
		// Checked and counted under mu, so that drain, which sets draining
		// under mu, waits for exactly the requests accepted before it.
		s.mu.Lock()
		if s.draining {
			s.mu.Unlock()
			<-s.inflight
			s.answer(p, nil, Errorf(CodeUnavailable, "server is shutting down"))
			return nil
		}
		s.handlers.Add(1)
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer s.handlers.Done()
			defer func() { <-s.inflight }()
			s.serve(p, ext, h)
		}()
		return nil
	default:
		s.serve(p, ext, h)
		return nil
	}
}

// reads reports whether anything will read the payload of p, whose handler
// is h: a pending request for a response, a handler, or the event handler
// for a one-way packet nobody handles.
func (s *Session) reads(p *wire.Packet, h Handler) bool {
	switch {
	case p.Type == wire.Response:
		s.pmu.Lock()
		_, ok := s.pending[p.MessageID]
		s.pmu.Unlock()
		return ok
	case h != nil:
		return true
	}
	return p.Type == wire.OneWay && s.cfg.onEvent != nil
}

// maxHeld bounds the packets the read goroutine reads ahead while it waits
// for a free request slot (see takeSlot).
const maxHeld = 16

// takeSlot takes one of the session's request slots, waiting while all are
// in use. Meanwhile it keeps reading the connection, holding what arrives
// (up to maxHeld packets and the largest packet's size in bytes), so that
// a peer that goes away is noticed at once and its handlers cancelled,
// rather than at their deadlines. It reports false once the session is
// closing.
func (s *Session) takeSlot() bool {
	if s.inflight == nil { // made on first use: idle sessions hold none
		s.inflight = make(chan struct{}, s.cfg.maxInFlight)
	}
	select {
	case s.inflight <- struct{}{}:
		return true
	default:
	}
	r := &s.ahead
	for {
		if !r.busy && r.err == nil && len(r.held) < maxHeld && r.heldBytes < s.cfg.limits.MaxPacketSize() {
			r.busy = true
			if r.ch == nil {
				r.ch = make(chan readResult, 1)
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				p, err := s.conn.ReadPacket()
				r.ch <- readResult{p, err}
			}()
		}
		var next chan readResult
		if r.busy {
			next = r.ch
		}
		select {
		case s.inflight <- struct{}{}:
			return true
		case res := <-next:
			r.busy = false
			if res.err != nil {
				// The peer is gone (or broke the protocol): cancel its
				// handlers now. The read loop reports why once it has
				// had what was held.
				r.err = res.err
				s.closeWith(readFailure(res.err))
				return false
			}
			r.held = append(r.held, res.p)
			r.heldBytes += wire.HeaderSize + len(res.p.Ext) + len(res.p.Payload)
		case <-s.ctx.Done():
			return false
		}
	}
}

// readAhead is what the read goroutine read while waiting for a request
// slot, for the read loop to take before reading again.
type readAhead struct {
	ch        chan readResult // the read in progress, when busy
	busy      bool
	held      []wire.Packet
	heldBytes int
	err       error // the read that ended the connection
}

type readResult struct {
	p   wire.Packet
	err error
}

// next returns the session's next packet: one read ahead, or the result of
// the read in progress, or a new read.
func (s *Session) next() (wire.Packet, error) {
	r := &s.ahead
	switch {
	case r.err != nil:
		// The peer went away while requests waited: what it sent last
		// would only reach handlers of a closed session.
		r.held = nil
		return wire.Packet{}, r.err
	case len(r.held) > 0:
		p := r.held[0]
		r.held[0] = wire.Packet{}
		r.held = r.held[1:]
		r.heldBytes -= wire.HeaderSize + len(p.Ext) + len(p.Payload)
		if len(r.held) == 0 {
			r.held = nil
		}
		return p, nil
	case r.busy:
		res := <-r.ch
		r.busy = false
		return res.p, res.err
	}
	return s.conn.ReadPacket()
}

// readFailure is the close reason for a failed read.
func readFailure(err error) error {
	if errors.Is(err, io.EOF) {
		return ErrPeerClosed
	}
	return err
}

// serve runs the handler for a Request or OneWay packet and sends a
// Request's response.
func (s *Session) serve(p *wire.Packet, ext wire.Ext, h Handler) {
	if h == nil {
		switch {
		case ext.HasRoute:
			s.answer(p, nil, Errorf(CodeUnimplemented, "no handler for route %#08x", ext.Route))
		case p.Type == wire.Request:
			s.answer(p, nil, Errorf(CodeUnimplemented, "no handler for biz_type %d", p.BizType))
		case s.cfg.onEvent != nil:
			s.cfg.onEvent(Event{Kind: MessageReceived, Session: s, Packet: p})
		}
		return
	}
	ctx := s.ctx
	if p.Type == wire.Request {
		// The caller's deadline, within the server's cap whatever the
		// caller asked (see WithMaxHandlerTimeout).
		timeout := s.cfg.maxHandlerTimeout
		if ext.TimeoutMS > 0 {
			timeout = min(timeout, time.Duration(min(ext.TimeoutMS, 1<<40))*time.Millisecond)
		}
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	resp, err := s.call(ctx, h, p)
	s.answer(p, resp, err)
}

func (s *Session) handlerFor(p *wire.Packet, ext wire.Ext) Handler {
	if ext.HasRoute {
		return s.mux.routeHandler(ext.Route)
	}
	return s.mux.bizHandler(p.BizType)
}

// call runs h, turning a panic into CodeInternal so the session survives.
func (s *Session) call(ctx context.Context, h Handler, p *wire.Packet) (resp *wire.Packet, err error) {
	defer func() {
		if r := recover(); r != nil {
			s.cfg.logger.Error("msgtrans: handler panic", "session", s.id, "biz_type", p.BizType, "panic", r)
			resp, err = nil, Errorf(CodeInternal, "handler panic")
		}
	}()
	return h.ServePacket(ctx, s, p)
}

// answer sends the response to a Request; for a OneWay packet it logs err.
func (s *Session) answer(req *wire.Packet, resp *wire.Packet, err error) {
	if req.Type != wire.Request {
		if err != nil {
			s.cfg.logger.Warn("msgtrans: one-way handler failed", "session", s.id, "biz_type", req.BizType, "route", routeOf(req), "err", err)
		}
		return
	}
	r := &wire.Packet{BizType: req.BizType}
	switch {
	case err != nil:
		r.Flags = wire.FlagHasRouteTag
		r.Ext = errorExt(err)
	case resp != nil:
		r = resp
	}
	err = s.sendAs(r, wire.Response, req.MessageID)
	if errors.Is(err, ErrPayloadTooLarge) {
		// The caller learns why instead of waiting out its deadline.
		s.cfg.logger.Warn("msgtrans: response over the limits", "session", s.id, "biz_type", req.BizType, "route", routeOf(req), "err", err)
		err = s.sendAs(&wire.Packet{BizType: req.BizType, Flags: wire.FlagHasRouteTag, Ext: errorExt(Errorf(CodeResourceExhausted, "response not sent: %s", messageOf(err)))}, wire.Response, req.MessageID)
	}
	if err != nil && !errors.Is(err, ErrClosed) {
		s.cfg.logger.Warn("msgtrans: sending response", "session", s.id, "err", err)
	}
}

// control handles the runtime's own control packets. A reply that cannot
// be queued (the session is closing or overflowed, which closes it anyway)
// is not an error of the packet, so it never ends the read loop.
func (s *Session) control(p *wire.Packet, kind wire.ControlKind) error {
	switch kind {
	case wire.ControlHello:
		if s.hello.Swap(true) {
			return fmt.Errorf("%w: a second hello", wire.ErrProtocol)
		}
		if len(p.Payload) > 0 {
			s.peerComp.Store(uint32(p.Payload[0]))
		}
		if s.srv != nil {
			_ = s.sendAs(helloPacket(s.cfg), wire.OneWay, s.nextID())
		}
	case wire.ControlPing:
		if s.srv != nil && s.pings.Add(1) > pingFloodLimit {
			return ErrPingFlood
		}
		_ = s.sendAs(controlPacket(wire.ControlPong, p.Payload), wire.OneWay, s.nextID())
	case wire.ControlPong:
	case wire.ControlGoAway:
		// The server stops taking requests, answers those it has, and
		// closes: the client sends nothing new here and reconnects later.
		// A go-away with a status refuses the connection outright; the
		// status becomes the close reason.
		if s.srv == nil {
			s.goaway.Store(true)
			if e, err := wire.ParseExt(p.Ext); err == nil && e.Code != CodeOK {
				s.closeWith(refusal(e))
			}
		}
	default:
		s.cfg.logger.Debug("msgtrans: unknown control packet", "session", s.id, "kind", kind)
	}
	return nil
}

// ErrGoAway is the close reason of a client connection whose server said it
// is shutting down.
var ErrGoAway = errors.New("msgtrans: server is going away")

// helloPacket announces the compressions this side accepts: all of them.
func helloPacket(cfg *config) *wire.Packet {
	p := controlPacket(wire.ControlHello, []byte{1<<wire.CompressionZstd | 1<<wire.CompressionZlib})
	if cfg.credentials != nil {
		p.Ext = wire.AppendExt(nil, &wire.Ext{HasRoute: true, Route: wire.ControlRoute, Control: wire.ControlHello, Auth: cfg.credentials})
	}
	return p
}

// routeOf returns the route of a typed packet as text, "" for a raw one.
func routeOf(p *wire.Packet) string {
	if !wire.IsTypedExt(p) {
		return ""
	}
	if e, err := wire.ParseExt(p.Ext); err == nil && e.HasRoute {
		return fmt.Sprintf("%#08x", e.Route)
	}
	return ""
}

func addrString(a net.Addr) string {
	if a == nil {
		return ""
	}
	return a.String()
}

func reasonText(err error) string {
	if err == nil {
		return "closed"
	}
	return err.Error()
}
