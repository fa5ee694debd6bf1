package runtime

import (
	"context"
	"net"
	"sync"
	"sync/atomic"

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
	policy *policy        // what this side does; see policy
	addr   string         // client side: the address dialled
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // the writer and request handlers

	// peerComp is the bitmask of compressions the peer accepts.
	peerComp atomic.Uint32
	// A graceful close half-closes the connection and lingers until the
	// peer closes (see linger): packets arriving meanwhile are dropped.
	// (Fields are ordered so that none is padded: an idle session's size
	// counts; see TestSessionSize.)
	lingering atomic.Bool
	// Heartbeat state: when the last packet arrived (by the owner's coarse
	// clock), whether the peer sent a hello (and so heartbeats), and the
	// pings it sent since the server's last heartbeat tick.
	clock    *clock
	lastRecv atomic.Int64
	hello    atomic.Bool
	pings    atomic.Int32

	mu      sync.Mutex
	queue   [][]byte
	queued  int      // bytes in queue
	owned   [][]byte // the packets in queue this session encoded, for the pools once written
	writing bool     // a writer goroutine is running
	// sharedQueued: a shared encoding (a fan-out's) was queued since the
	// writer last started; see othersSending.
	sharedQueued bool
	closing      bool // no new sends; close once flushed
	draining     bool // new requests are refused; those running finish
	closed       bool
	flushed      chan struct{}
	closeErr     error
	groups       map[string]struct{}
	attrs        map[any]any // guarded by mu; nil until the first Set

	pmu     sync.Mutex
	pending *pendingCalls // made with the first request; see pending.go

	handlers sync.WaitGroup // request handlers running; see drain
	// serving counts the request handlers running, for the writer (see
	// othersSending).
	serving atomic.Int32
	goaway  atomic.Bool // the server said it is going away (client side)

	// Server side: ready is set once the session may be served (at once,
	// or when the authenticator accepts its hello); identity is what the
	// authenticator bound, written before ready.
	ready    atomic.Bool
	identity string

	// Lingering (see above): the read loop's end and the close reason.
	readEnded    chan struct{} // closed when the read loop ends; guarded by mu
	lingerReason error         // the close reason meanwhile; guarded by mu

	// Rate limit and decompression budget, used by the read goroutine
	// only (see admit and inflate).
	throttle throttle
	dropped  atomic.Int64
	// notUnderstood counts the packets refused for a must-understand ext
	// field this side does not know (see refuseNotUnderstood).
	notUnderstood atomic.Int64

	// inflight bounds the request handlers running at once; made by the
	// read goroutine on the first request, and drained by the handlers it
	// starts after that.
	inflight chan struct{}
	// ahead is what the read goroutine read while waiting for a request
	// slot (see takeSlot); used by the read goroutine only.
	ahead readAhead
	// oneWay are the contexts of one-way calls, by method and biz_type
	// (see oneWayContext); only the read goroutine touches them.
	oneWay []*callContext
	// work runs the session's request handlers and its writer (the
	// server's or client's pool); writeFn is writeLoop, bound once.
	work    *workPool
	writeFn func()

	// writeDeadline is the write deadline set on conn, in Unix nanoseconds;
	// used by the writer goroutine only (see refreshWriteDeadline).
	writeDeadline int64

	// first is the server's answer to a client's hello, read while
	// connecting and handled by run before anything else (client side).
	first *wire.Packet

	// streams are the session's open streams.
	streams streams

	// parking is the session's part in idle parking (server side; see
	// WithIdleParking).
	parking parking

	// stats counts the session's traffic when an observer is set (nil
	// otherwise); see observing.
	stats *sessionStats
}

func newSession(conn Conn, scheme string, cfg *config, pol *policy, m *mux, ids *atomic.Uint32, clk *clock, work *workPool) *Session {
	s := &Session{conn: conn, scheme: scheme, cfg: cfg, policy: pol, mux: m, ids: ids, clock: clk, work: work}
	s.writeFn = s.writeLoop
	if cfg.obs != nil {
		s.stats = new(sessionStats)
	}
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
	// Streams end first, as unavailable: a handler waiting on its stream
	// then sees that, not the context cancelled just after.
	s.streams.failAll(reason)
	s.cancel()
	tellCloseReason(s.conn, reason)
	_ = s.conn.Close()
	s.wake() // a parked session has no reader to see the close
	s.failPending(reason)
}

// tellCloseReason hands reason to a connection that can pass it on to the
// peer (see [CloseReasoner]).
func tellCloseReason(c Conn, reason error) {
	if r, ok := c.(CloseReasoner); ok {
		r.SetCloseReason(reason)
	}
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
