package runtime

import (
	"context"
	"errors"
	"io"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/msgtrans/msgtrans-go/wire"
)

// Stream is one end of a stream of messages on a session: what the typed
// stream types wrap ([ServerStream], [ClientStreamClient], …), and what
// stream interceptors see and may wrap. A stream is opened by a Request and
// ended by its Response; its messages travel as stream frames between them
// (see docs/wire.md, "Streams").
//
// SendMsg and RecvMsg may be called from different goroutines, but each from
// one at a time.
type Stream interface {
	// Context returns a context that ends when the stream does; a handler's
	// carries the call's [CallInfo].
	Context() context.Context
	// SendMsg sends one message, waiting while the peer has granted no
	// room for it. It fails once the stream has ended.
	SendMsg(m proto.Message) error
	// RecvMsg receives the next message into m. It returns io.EOF when the
	// peer has finished sending (or the stream ended cleanly), and the
	// stream's error when it ended otherwise.
	RecvMsg(m proto.Message) error
}

// OpenedStream is the opener's end of a stream: a [Stream] it can also
// half-close and abandon. The typed client streams ([ServerStreamClient],
// …) wrap one, and stream open interceptors see and may wrap it.
type OpenedStream interface {
	Stream
	// CloseSend says this side has sent all its messages: the peer's
	// RecvMsg returns io.EOF once it has read them.
	CloseSend() error
	// Close abandons the stream: the peer's handler sees its context
	// cancelled. It is harmless after the stream's end.
	Close() error
}

// Stream defaults.
const (
	// DefaultMaxStreams caps the streams a peer may have open on one
	// session at once.
	DefaultMaxStreams = 32
	// DefaultMaxStreamDuration is how long a stream the peer opened may run
	// at most (WithMaxStreamDuration).
	DefaultMaxStreamDuration = 24 * time.Hour
	// DefaultStreamWindow is how many messages an opener lets the acceptor
	// send ahead of its reading (it travels in the opening request).
	DefaultStreamWindow = 32
	// acceptorWindow is how many messages an acceptor lets the opener send
	// ahead: a protocol constant, so the opener knows it without asking.
	acceptorWindow = 16
)

// errStreamEnded is the error of sending on a stream that ended cleanly.
var errStreamEnded = NewError(CodeFailedPrecondition, "the stream has ended")

// stream is a [Stream]: the state of one stream on one side.
type stream struct {
	s        *Session
	id       uint32 // the opening request's message id, in the opener's numbering
	acceptor bool   // this side accepted the stream (the peer opened it)
	method   *Method
	ctx      context.Context
	cancel   context.CancelFunc

	mu        sync.Mutex
	in        []wire.Packet // messages received and not yet read (their memory may be pooled)
	head      int           // in[head:] are unread
	window    int           // the messages the peer may send ahead of our reading
	peerLeft  int           // the messages the peer may still send: what we granted, less what came
	consumed  int           // read since the last grant
	peerDone  bool          // the peer half-closed
	credit    int           // messages we may still send
	sentClose bool          // we half-closed
	ended     bool
	err       error        // why it ended (nil: cleanly)
	final     *wire.Packet // the opener's: the Response that ended it
	recvWake  chan struct{}
	sendWake  chan struct{}
	done      chan struct{} // closed when the stream ends

	// obs records the stream's end; set, before the stream is in its
	// session's table, when its opening was reported to the observer.
	obs RouteObserver
}

func newStream(s *Session, id uint32, acceptor bool, m *Method, window, credit int) *stream {
	return &stream{
		s: s, id: id, acceptor: acceptor, method: m, window: window, peerLeft: window, credit: credit,
		recvWake: make(chan struct{}, 1), sendWake: make(chan struct{}, 1), done: make(chan struct{}),
	}
}

func (st *stream) Context() context.Context { return st.ctx }

func wake(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// SendMsg implements [Stream].
func (st *stream) SendMsg(m proto.Message) error {
	size := proto.Size(m)
	if err := checkSend(st.s.cfg.limits, 0, size); err != nil {
		return err
	}
	for {
		st.mu.Lock()
		switch {
		case st.ended:
			err := st.err
			st.mu.Unlock()
			if err == nil {
				err = errStreamEnded
			}
			return err
		case st.sentClose:
			st.mu.Unlock()
			return NewError(CodeFailedPrecondition, "send after CloseSend")
		case st.credit > 0:
			st.credit--
			st.mu.Unlock()
			return st.sent(st.sendMessage(m, size))
		}
		st.mu.Unlock()
		if testHookWait != nil {
			testHookWait(st)
		}
		select {
		case <-st.sendWake:
		case <-st.done:
		case <-st.ctx.Done():
			if !st.hasEnded() {
				return contextError(st.ctx.Err())
			}
		}
	}
}

// RecvMsg implements [Stream].
func (st *stream) RecvMsg(m proto.Message) error {
	for {
		st.mu.Lock()
		if st.head < len(st.in) {
			p := st.in[st.head]
			st.in[st.head] = wire.Packet{}
			st.head++
			if st.head == len(st.in) {
				st.in, st.head = st.in[:0], 0
			}
			grant := 0
			if st.consumed++; st.consumed >= max(st.window/2, 1) {
				grant, st.consumed = st.consumed, 0
				st.peerLeft += grant // granted now: the peer cannot use it before
			}
			ended := st.ended
			st.mu.Unlock()
			if grant > 0 && !ended {
				_ = st.frame(wire.StreamCredit, uint32(grant), nil)
			}
			err := proto.Unmarshal(p.Payload, m) // copies what it keeps
			p.Release()
			if err != nil {
				return Errorf(CodeInvalidArgument, "stream message is not a valid %s: %v", m.ProtoReflect().Descriptor().FullName(), err)
			}
			return nil
		}
		switch {
		case st.ended && st.err != nil:
			err := st.err
			st.mu.Unlock()
			return err
		case st.ended, st.peerDone:
			st.mu.Unlock()
			return io.EOF
		}
		st.mu.Unlock()
		if testHookWait != nil {
			testHookWait(st)
		}
		select {
		case <-st.recvWake:
		case <-st.done:
		case <-st.ctx.Done():
			if !st.hasEnded() {
				return contextError(st.ctx.Err())
			}
		}
	}
}

// CloseSend implements [OpenedStream]; for an acceptor it half-closes too,
// though returning from the handler ends the stream anyway.
func (st *stream) CloseSend() error {
	st.mu.Lock()
	if st.sentClose || st.ended {
		st.mu.Unlock()
		return nil
	}
	st.sentClose = true
	st.mu.Unlock()
	return st.sent(st.frame(wire.StreamHalfClose, 0, nil))
}

// hasEnded reports whether the stream has ended. A wait that sees its
// context end asks it: ending a stream cancels its context too, and when
// the end came first (a Response arriving as the wait began, say), both
// are ready and select picks either; the stream's own status (io.EOF, the
// peer's, unavailable) is then the answer, not the context's.
func (st *stream) hasEnded() bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.ended
}

// sent returns what sending a frame returns, given the error of queueing
// it: a frame that could not be queued fails with the stream's status if
// it has ended, else unavailable (the session is closing, which ends the
// stream as unavailable too), never with the session's bare error.
func (st *stream) sent(err error) error {
	if err == nil {
		return nil
	}
	st.mu.Lock()
	ended, why := st.ended, st.err
	st.mu.Unlock()
	var e *Error
	switch {
	case ended && why != nil:
		return why
	case ended:
		return errStreamEnded
	case errors.As(err, &e):
		return err
	}
	return wrapError(CodeUnavailable, err)
}

// Close implements [OpenedStream].
func (st *stream) Close() error {
	st.cancel()
	return nil
}

// sendMessage sends m, of the given size, as a message frame: header, ext
// header and message encoded into one buffer.
func (st *stream) sendMessage(m proto.Message, size int) error {
	s := st.s
	e := wire.Ext{HasStream: true, Stream: wire.StreamFrame{Op: wire.StreamMessage, FromAcceptor: st.acceptor, ID: st.id}}
	b, err := s.encodeMessage(wire.OneWay, s.nextID(), 0, &e, m, size)
	if err != nil {
		// Not sent (a message protobuf refuses to encode, such as a
		// string that is not UTF-8): its credit is still ours.
		st.mu.Lock()
		st.credit++
		st.mu.Unlock()
		wake(st.sendWake)
		return err
	}
	return s.enqueueOwned(b)
}

// frame sends a stream frame of this stream.
func (st *stream) frame(op wire.StreamOp, credit uint32, payload []byte) error {
	e := wire.Ext{HasStream: true, Stream: wire.StreamFrame{Op: op, FromAcceptor: st.acceptor, ID: st.id}, Credit: credit}
	return st.s.sendAs(&wire.Packet{Flags: wire.FlagHasRouteTag, Ext: wire.AppendExt(make([]byte, 0, 16), &e), Payload: payload}, wire.OneWay, st.s.nextID())
}

// cancelFrame tells the peer this side abandons the stream, with why.
func (st *stream) cancelFrame(why error) {
	e := wire.Ext{HasStream: true, Stream: wire.StreamFrame{Op: wire.StreamCancel, FromAcceptor: st.acceptor, ID: st.id},
		Code: CodeOf(why), Message: messageOf(why)}
	_ = st.s.sendAs(&wire.Packet{Flags: wire.FlagHasRouteTag, Ext: wire.AppendExt(nil, &e)}, wire.OneWay, st.s.nextID())
}

// end ends the stream with err (nil: cleanly), once; it reports whether
// this call ended it.
func (st *stream) end(err error, final *wire.Packet) bool {
	st.mu.Lock()
	if st.ended {
		st.mu.Unlock()
		return false
	}
	st.ended, st.err, st.final = true, err, final
	st.mu.Unlock()
	close(st.done)
	if st.obs != nil {
		st.obs.StreamClosed(st.acceptor, statusOf(err))
	}
	if st.cancel != nil {
		st.cancel()
	}
	return true
}

// deliver takes a frame from the peer. It runs on the session's read
// goroutine and never blocks: a peer that sends more than it was granted
// has the stream reset. A message's packet is queued as it is, its pooled
// memory with it, for RecvMsg to release once unmarshalled; the caller
// must not release p.
func (st *stream) deliver(op wire.StreamOp, ext wire.Ext, p *wire.Packet) {
	st.mu.Lock()
	if st.ended {
		st.mu.Unlock()
		return
	}
	switch op {
	case wire.StreamMessage:
		switch {
		case st.peerDone:
			st.mu.Unlock()
			st.reset(Errorf(CodeFailedPrecondition, "the peer sent a message after its half-close"))
			return
		case st.peerLeft <= 0:
			st.mu.Unlock()
			st.reset(Errorf(CodeResourceExhausted, "the peer sent past the credit it was granted (a window of %d messages)", st.window))
			return
		}
		st.peerLeft--
		st.in = append(st.in, *p)
		queued := len(st.in) - st.head
		st.mu.Unlock()
		if testHookQueued != nil {
			testHookQueued(queued, st.window)
		}
		wake(st.recvWake)
	case wire.StreamHalfClose:
		st.peerDone = true
		st.mu.Unlock()
		wake(st.recvWake)
	case wire.StreamCredit:
		st.credit += int(ext.Credit)
		st.mu.Unlock()
		wake(st.sendWake)
	case wire.StreamCancel:
		st.mu.Unlock()
		why := error(&Error{Code: ext.Code, Message: ext.Message})
		if ext.Code == CodeOK {
			why = NewError(CodeCanceled, "the peer canceled the stream")
		}
		st.s.streams.forget(st)
		st.end(why, nil)
	default:
		st.mu.Unlock()
	}
}

// reset ends the stream for a fault of the peer's and tells it so: an
// acceptor ends it with its Response, an opener with a cancel frame.
func (st *stream) reset(why error) {
	if !st.end(why, nil) {
		return
	}
	st.s.streams.forget(st)
	if st.acceptor {
		st.s.answer(&wire.Packet{Type: wire.Request, MessageID: st.id}, nil, why)
	} else {
		st.cancelFrame(why)
	}
}

// Hooks, set only by tests (before any session runs): testHookQueued is
// told how many messages a stream holds unread each time it queues one,
// and the window that must bound them; testHookWait is called when a send
// or a receive has found nothing to do and is about to wait.
var (
	testHookQueued func(queued, window int)
	testHookWait   func(st *stream)
)

// isEOF reports whether err is a clean end of receiving.
func isEOF(err error) bool { return errors.Is(err, io.EOF) }
