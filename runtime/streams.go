package runtime

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/msgtrans/msgtrans-go/wire"
)

// StreamHandler serves a stream the peer opened: open is the opening
// request (its payload is a server-streaming method's request message), st
// the stream. The returned packet's payload, if any, goes in the Response
// that ends the stream (a client-streaming method's response message); an
// error ends it with the error's status. Generated code adapts typed
// handlers to it (NewServerStreamHandler and its kin).
type StreamHandler func(ctx context.Context, s *Session, open *wire.Packet, st Stream) (*wire.Packet, error)

// StreamInterceptor wraps a [StreamHandler], as [Interceptor] wraps a
// Handler: it may read the call from [CallInfoFromContext] (its method's
// kind says which stream), and wrap st to see every message.
type StreamInterceptor func(next StreamHandler) StreamHandler

// WithStreamInterceptors adds interceptors around every stream handler
// registered on the server or client; the first given is the outermost.
func WithStreamInterceptors(interceptors ...StreamInterceptor) Option {
	return option{"WithStreamInterceptors", func(c *config) {
		c.streamInterceptors = append(c.streamInterceptors, interceptors...)
	}}
}

// StreamOpener opens a stream of m: req is a server-streaming method's
// request, nil for the other kinds. [CallInfoFromContext] describes the
// call (Outbound set).
type StreamOpener func(ctx context.Context, m *Method, req proto.Message) (OpenedStream, error)

// StreamOpenInterceptor wraps the opening of the streams this side opens,
// as [CallInterceptor] wraps its calls: it may refuse, change the request,
// and wrap the opened stream to see every message both ways.
type StreamOpenInterceptor func(next StreamOpener) StreamOpener

// WithStreamOpenInterceptors adds interceptors around every stream opened
// through a client, or by a server to its sessions' clients; the first
// given is the outermost.
func WithStreamOpenInterceptors(interceptors ...StreamOpenInterceptor) Option {
	return option{"WithStreamOpenInterceptors", func(c *config) {
		c.streamOpenInterceptors = append(c.streamOpenInterceptors, interceptors...)
	}}
}

// open opens a stream of m on the session c stands for, through the
// configured stream open interceptors.
func open(ctx context.Context, c Caller, m *Method, req proto.Message) (OpenedStream, error) {
	s, err := streamSession(c)
	if err != nil {
		return nil, err
	}
	var next StreamOpener = func(ctx context.Context, m *Method, req proto.Message) (OpenedStream, error) {
		return s.openStream(ctx, m, req)
	}
	its := s.cfg.streamOpenInterceptors
	if len(its) == 0 {
		return next(ctx, m, req)
	}
	for i := len(its) - 1; i >= 0; i-- {
		next = its[i](next)
	}
	return next(withCallInfo(ctx, CallInfo{Method: m, Type: wire.Request, Session: s, Outbound: true}), m, req)
}

// streamSession returns the session a stream is opened on.
func streamSession(c Caller) (*Session, error) {
	if p, ok := c.(peer); ok && !p.srv.local(p.id) {
		return nil, Errorf(CodeUnimplemented, "streams to a session of another node (session %d) are not supported", p.id)
	}
	s, _, err := sessionOf(c)
	if err == nil && s == nil {
		err = NewError(CodeUnimplemented, "streams need a *runtime.Client, a *runtime.Session or a Server.Peer")
	}
	return s, err
}

// WithMaxStreams caps the streams a peer may have open on one session at
// once; one more is refused with CodeResourceExhausted. A stream holds its
// place until its handler returns, even when the peer has cancelled it
// already. Default 32.
func WithMaxStreams(n int) Option {
	return option{"WithMaxStreams", func(c *config) { c.maxStreams = n }}
}

// WithMaxStreamDuration caps how long a stream the peer opened may run:
// its handler's context ends at the peer's deadline or after d, whichever
// comes first, and the stream with deadline_exceeded. Default
// [DefaultMaxStreamDuration]; a stream meant to outlive it (a watch) is
// opened again by its caller.
func WithMaxStreamDuration(d time.Duration) Option {
	return option{"WithMaxStreamDuration", func(c *config) { c.maxStreamDuration = d }}
}

// WithStreamWindow sets how many messages this side, opening a stream, lets
// the other side send ahead of its reading (more are granted as it reads).
// Default 32.
func WithStreamWindow(n int) Option {
	return option{"WithStreamWindow", func(c *config) { c.streamWindow = n }}
}

// streams is a session's table of open streams. Its maps are made when the
// session first has a stream.
type streams struct {
	mu       sync.Mutex
	opened   map[uint32]*stream // by this side, by opening request id
	accepted map[uint32]*stream // by the peer
	running  int                // handlers of accepted streams not yet returned
	closed   error              // the session closed: no new streams
	unknown  atomic.Int64       // frames for no open stream, dropped
}

// UnknownStreamFrames returns how many stream frames arrived for no open
// stream (one just ended, typically) and were dropped.
func (s *Session) UnknownStreamFrames() int64 { return s.streams.unknown.Load() }

func (t *streams) forget(st *stream) {
	t.mu.Lock()
	if st.acceptor {
		if t.accepted[st.id] == st {
			delete(t.accepted, st.id)
		}
	} else if t.opened[st.id] == st {
		delete(t.opened, st.id)
	}
	t.mu.Unlock()
}

// failAll ends every stream of a closing session.
func (t *streams) failAll(reason error) {
	t.mu.Lock()
	t.closed = reason
	var all []*stream
	for _, st := range t.opened {
		all = append(all, st)
	}
	for _, st := range t.accepted {
		all = append(all, st)
	}
	t.opened, t.accepted = nil, nil
	t.mu.Unlock()
	why := &Error{Code: CodeUnavailable, Message: "connection closed: " + reasonText(reason), cause: reason}
	for _, st := range all {
		st.end(why, nil)
	}
}

// streamFrame hands a stream frame to its stream; a frame for no open
// stream is dropped and counted.
func (s *Session) streamFrame(p *wire.Packet, ext wire.Ext) {
	f := ext.Stream
	s.streams.mu.Lock()
	var st *stream
	if f.FromAcceptor {
		st = s.streams.opened[f.ID]
	} else {
		st = s.streams.accepted[f.ID]
	}
	s.streams.mu.Unlock()
	if st == nil {
		s.streams.unknown.Add(1)
		return
	}
	st.deliver(f.Op, ext, p)
}

// endOpened ends the stream this side opened that a Response answers; it
// reports whether there was one.
func (s *Session) endOpened(p *wire.Packet, ext wire.Ext) bool {
	s.streams.mu.Lock()
	st := s.streams.opened[p.MessageID]
	delete(s.streams.opened, p.MessageID)
	s.streams.mu.Unlock()
	if st == nil {
		return false
	}
	var err error
	if ext.Code != CodeOK {
		err = &Error{Code: ext.Code, Message: ext.Message}
	} else if len(p.Payload) > 0 {
		// A client-streaming method's response: the stream's last message.
		st.mu.Lock()
		st.in = append(st.in, wire.Packet{Payload: p.Payload})
		st.mu.Unlock()
	}
	st.end(err, p)
	wake(st.recvWake)
	return true
}

// acceptStream serves a stream the peer opens with p. It holds no request
// slot: streams are capped on their own. A peer opening a stream with the
// id of one still open breaks both streams' identity (their frames and
// Responses would be either's): that is a protocol error.
func (s *Session) acceptStream(in *inbound, ext wire.Ext, h StreamHandler, m *Method) error {
	p := &in.p
	credit := int(ext.Credit)
	if credit <= 0 {
		credit = acceptorWindow
	}
	st := newStream(s, p.MessageID, true, m, acceptorWindow, credit)
	// The context is the stream's before the stream is in the table, where
	// a closing session finds it and cancels it.
	timeout := s.cfg.maxStreamDuration
	if ext.TimeoutMS > 0 {
		timeout = min(timeout, time.Duration(min(ext.TimeoutMS, 1<<40))*time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(s.ctx, timeout)
	st.ctx = &callContext{Context: ctx, info: CallInfo{Method: m, BizType: p.BizType, Type: p.Type, Session: s, Trace: inboundTrace(&ext)}}
	st.cancel = cancel
	s.mu.Lock()
	draining := s.draining
	s.mu.Unlock()
	s.streams.mu.Lock()
	_, reused := s.streams.accepted[st.id]
	switch {
	case reused:
		s.streams.mu.Unlock()
		cancel()
		return fmt.Errorf("%w: stream %d opened again while open", wire.ErrProtocol, st.id)
	case draining || s.streams.closed != nil:
		s.streams.mu.Unlock()
		cancel()
		s.answer(p, nil, Errorf(CodeUnavailable, "server is shutting down"))
		return nil
	case s.streams.running >= s.cfg.maxStreams:
		// A place is held until the stream's handler returns, not just
		// until the stream ends: a handler that ignores its context still
		// counts, so cancelling and reopening cannot pile them up.
		s.streams.mu.Unlock()
		cancel()
		s.answer(p, nil, Errorf(CodeResourceExhausted, "at most %d streams at once", s.cfg.maxStreams))
		return nil
	}
	if st.obs = s.cfg.obs.method(m); st.obs != nil {
		st.obs.StreamOpened(true)
	}
	if s.streams.accepted == nil {
		s.streams.accepted = make(map[uint32]*stream)
	}
	s.streams.accepted[st.id] = st
	s.streams.running++
	s.streams.mu.Unlock()

	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		resp, err := s.callStream(h, st, p)
		s.streams.mu.Lock()
		s.streams.running--
		s.streams.mu.Unlock()
		if !st.end(err, nil) {
			return // the peer canceled it, or the session closed
		}
		s.streams.forget(st)
		s.answer(p, resp, err)
	}()
	return nil
}

// callStream runs a stream handler, turning a panic into CodeInternal.
func (s *Session) callStream(h StreamHandler, st *stream, p *wire.Packet) (resp *wire.Packet, err error) {
	defer func() {
		if r := recover(); r != nil {
			s.cfg.logger.Error("msgtrans: stream handler panic", "session", s.id, "method", st.method.FullName(), "panic", r)
			resp, err = nil, Errorf(CodeInternal, "handler panic")
		}
	}()
	return h(st.ctx, s, p, st)
}

// openStream opens a stream of the method on s, sending req (nil for none)
// in the opening request.
func (s *Session) openStream(ctx context.Context, m *Method, req proto.Message) (*stream, error) {
	if err := ctx.Err(); err != nil {
		return nil, contextError(err)
	}
	var payload []byte
	if req != nil {
		var err error
		if payload, err = proto.Marshal(req); err != nil {
			return nil, marshalError(req, err)
		}
	}
	id := s.nextID()
	st := newStream(s, id, false, m, s.cfg.streamWindow, acceptorWindow)
	st.ctx, st.cancel = context.WithCancel(ctx)
	s.streams.mu.Lock()
	if s.streams.closed != nil || s.isClosed() {
		s.streams.mu.Unlock()
		st.cancel()
		return nil, NewError(CodeUnavailable, "connection closed")
	}
	if st.obs = s.cfg.obs.method(m); st.obs != nil {
		st.obs.StreamOpened(false)
	}
	if s.streams.opened == nil {
		s.streams.opened = make(map[uint32]*stream)
	}
	s.streams.opened[id] = st
	s.streams.mu.Unlock()
	e := wire.Ext{HasRoute: true, Route: m.route, Credit: uint32(s.cfg.streamWindow)}
	if dl, ok := ctx.Deadline(); ok {
		e.TimeoutMS = timeoutMS(time.Until(dl))
	}
	if tc, ok := OutgoingTrace(ctx); ok {
		e.TraceParent, e.TraceState = tc.Parent, tc.State
	}
	if err := s.sendAs(&wire.Packet{Flags: wire.FlagHasRouteTag, Ext: wire.AppendExt(nil, &e), Payload: payload}, wire.Request, id); err != nil {
		s.streams.forget(st)
		st.end(wrapError(CodeUnavailable, err), nil)
		return nil, st.err
	}
	// The caller's context ending (or Close) abandons the stream.
	context.AfterFunc(st.ctx, func() {
		if st.end(contextError(st.ctx.Err()), nil) {
			s.streams.forget(st)
			st.cancelFrame(st.err)
		}
	})
	return st, nil
}
