package runtime

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/msgtrans/msgtrans-go/wire"
)

// inbound is a packet read from the connection. Inbound packets are
// pooled, and so is their memory when the connection's decoder pools it
// (wire.Decoder.PoolBodies): once a packet is dispatched, what nothing
// refers to any more goes back (see release). keep says what does.
type inbound struct {
	p    wire.Packet
	keep keep
}

// keep says what of an inbound packet outlives its dispatch.
type keep uint8

const (
	// keepNothing: the packet and its memory go back to the pools.
	keepNothing keep = iota
	// keepPayload: something holds the payload (a stream's queue of
	// messages); the packet goes back, its memory to the garbage collector.
	keepPayload
	// keepPacket: something holds the packet (a handler that owns it, a
	// waiting call, an event, a stream); nothing goes back. A request's
	// goroutine, which holds its packet, releases it itself.
	keepPacket
)

var inboundPool = sync.Pool{New: func() any { return new(inbound) }}

func newInbound(p wire.Packet) *inbound {
	in := inboundPool.Get().(*inbound)
	in.p = p
	return in
}

// release gives back what of a dispatched packet nothing holds.
func (in *inbound) release() {
	switch in.keep {
	case keepPacket:
		return
	case keepPayload:
		in.p.Own()
	default:
		in.p.Release()
	}
	*in = inbound{}
	inboundPool.Put(in)
}

// handOver marks the packet as held by whatever it is given to, which owns
// its memory from now on.
func (in *inbound) handOver() {
	in.keep = keepPacket
	in.p.Own()
}

// receive dispatches one packet. An error closes the connection.
//
// What a packet may cost is checked before it is spent: the rate limit
// before anything else, and the decompression budget before inflating;
// payloads nobody will read are never inflated.
func (s *Session) receive(in *inbound) error {
	p := &in.p
	if st := s.stats; st != nil {
		st.packetsIn.Add(1)
		st.bytesIn.Add(uint64(wire.HeaderSize + len(p.Ext) + len(p.Payload)))
	}
	if s.lingering.Load() {
		return nil // closing: only waiting for the peer to close too
	}
	s.lastRecv.Store(s.clock.now.Load())
	// A raw packet has the zero Ext: no route, status OK.
	var ext wire.Ext
	var notUnderstood *wire.CriticalFieldError
	if wire.IsTypedExt(p) {
		// Sound bytes asking for something this side does not do are
		// refused below, this packet alone, once admitted like any other;
		// nothing of their ext header is used.
		if e, err := wire.ParseExt(p.Ext); err == nil {
			ext = e
		} else if notUnderstood = criticalField(err); notUnderstood == nil {
			return err
		}
	}
	isControl := ext.HasRoute && ext.Route == wire.ControlRoute && p.Type == wire.OneWay
	if !s.ready.Load() {
		in.handOver() // the authenticator may keep what it was shown
		identity, err := s.authenticate(p, ext, isControl && ext.Control == wire.ControlHello)
		if err != nil {
			if errors.Is(err, ErrNotAuthenticated) {
				return err
			}
			s.cfg.obs.refused(s.scheme, RefuseUnauthenticated)
			s.refuse(err)
			return errRefused
		}
		s.becomeReady(identity)
	}
	// Every packet counts toward the rate limit but the pings the
	// heartbeat needs, which the ping-flood rule bounds.
	if !isControl || ext.Control != wire.ControlPing {
		if ok, err := s.admit(); !ok {
			if err == nil {
				s.overLimit(p)
			}
			return err
		}
	}
	if notUnderstood != nil {
		s.refuseNotUnderstood(p, notUnderstood)
		return nil
	}
	if isControl {
		if p.Compression != wire.CompressionNone {
			return fmt.Errorf("%w: control packet with a %s payload", wire.ErrProtocol, p.Compression)
		}
		return s.control(p, ext.Control)
	}
	if ext.HasStream {
		if p.Type != wire.OneWay {
			return fmt.Errorf("%w: a stream frame in a %s packet", wire.ErrProtocol, p.Type)
		}
		if p.Compression != wire.CompressionNone {
			if err := s.inflate(p); err != nil {
				return err
			}
		}
		if in.keep == keepNothing {
			in.keep = keepPayload // a stream's queue may hold it
		}
		s.streamFrame(p, ext)
		return nil
	}
	var h registered
	var m *Method
	if p.Type != wire.Response {
		h, m = s.handlerFor(p, ext)
	}
	if h.h == nil && ext.HasRoute && p.Type == wire.Request {
		if sh := s.mux.streamHandler(ext.Route); sh != nil {
			if p.Compression != wire.CompressionNone {
				if err := s.inflate(p); err != nil {
					return err
				}
			}
			in.handOver()
			return s.acceptStream(in, ext, sh, m)
		}
	}
	if p.Compression != wire.CompressionNone && s.reads(p, h.h) {
		if err := s.inflate(p); err != nil {
			return err
		}
	}
	switch p.Type {
	case wire.Response:
		// A stream that ends keeps its final packet; a waiting call gets a
		// copy of it, which owns the packet's memory from then on.
		if s.endOpened(p, ext) {
			in.handOver()
		} else {
			s.complete(p, ext)
		}
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
		// The packet moves to an inbound of the task's, which releases
		// it; the read loop releases the emptied one.
		t := requestTasks.Get().(*requestTask)
		t.s, t.in, t.ext, t.h, t.m = s, newInbound(in.p), ext, h, m
		t.in.keep, in.p = in.keep, wire.Packet{}
		s.work.run(t.fn)
		return nil
	default:
		s.serve(in, ext, h, m)
		return nil
	}
}

// requestTask is a request being served on the session's work pool: its
// packet and what dispatch found for it. Tasks are pooled, each with its
// run method bound once, so that handing a request to the pool allocates
// nothing.
type requestTask struct {
	s   *Session
	in  *inbound
	ext wire.Ext
	h   registered
	m   *Method
	fn  func() // run
}

var requestTasks sync.Pool

func init() {
	// Set here: New refers to run, which gives tasks back to the pool.
	requestTasks.New = func() any {
		t := new(requestTask)
		t.fn = t.run
		return t
	}
}

func (t *requestTask) run() {
	s := t.s
	defer s.wg.Done()
	defer s.handlers.Done()
	defer func() { <-s.inflight }()
	s.serve(t.in, t.ext, t.h, t.m)
	t.in.release()
	*t = requestTask{fn: t.fn}
	requestTasks.Put(t)
}

// overLimit handles a packet the rate limit refused: a request is answered
// resource_exhausted, a one-way packet counted as dropped, anything else
// dropped.
func (s *Session) overLimit(p *wire.Packet) {
	switch p.Type {
	case wire.Request:
		s.answer(p, nil, Errorf(CodeResourceExhausted, "rate limit of %g packets a second exceeded", s.cfg.rateLimit))
	case wire.OneWay:
		s.dropped.Add(1)
	}
}

// refuseNotUnderstood refuses a packet whose ext header holds a
// must-understand field (or a stream op) this side does not know, and
// keeps the connection: a request is answered unimplemented, a response
// fails the call or stream it answers with that status, a one-way packet
// (a stream frame, say) is dropped. Its payload is never read.
func (s *Session) refuseNotUnderstood(p *wire.Packet, why *wire.CriticalFieldError) {
	s.notUnderstood.Add(1)
	status := wire.Ext{Code: CodeUnimplemented, Message: "not understood: " + why.Detail()}
	switch p.Type {
	case wire.Request:
		s.answer(p, nil, NewError(status.Code, status.Message))
	case wire.Response:
		p.Payload, p.Compression = nil, wire.CompressionNone
		if !s.endOpened(p, status) {
			s.complete(p, status)
		}
	default:
		s.cfg.logger.Debug("msgtrans: one-way packet not understood, dropped", "session", s.id, "err", why)
	}
}

// criticalField returns the [wire.CriticalFieldError] in err's chain, if
// any. Apart from receive, so that the hot path allocates nothing for it.
func criticalField(err error) *wire.CriticalFieldError {
	var ce *wire.CriticalFieldError
	if errors.As(err, &ce) {
		return ce
	}
	return nil
}

// NotUnderstood returns how many packets from the peer were refused
// because their ext header holds a must-understand field, or a stream op,
// that this side does not know (see docs/wire.md). Such a packet is
// refused alone; the connection stays.
func (s *Session) NotUnderstood() int64 { return s.notUnderstood.Load() }

// reads reports whether anything will read the payload of p, whose handler
// is h: a pending request for a response, a handler, or the event handler
// for a one-way packet nobody handles.
func (s *Session) reads(p *wire.Packet, h Handler) bool {
	switch {
	case p.Type == wire.Response:
		s.pmu.Lock()
		_, ok := s.pending[p.MessageID]
		s.pmu.Unlock()
		if !ok {
			s.streams.mu.Lock()
			_, ok = s.streams.opened[p.MessageID]
			s.streams.mu.Unlock()
		}
		return ok
	case h != nil:
		return true
	}
	return p.Type == wire.OneWay && s.cfg.onEvent != nil
}

// serve runs the handler for a Request or OneWay packet, with the call's
// [CallInfo] in its context, and sends a Request's response. A handler that
// does not borrow its packet is handed it.
func (s *Session) serve(in *inbound, ext wire.Ext, h registered, m *Method) {
	p := &in.p
	if h.h == nil {
		switch {
		case ext.HasRoute:
			s.answer(p, nil, Errorf(CodeUnimplemented, "no handler for route %#08x", ext.Route))
		case p.Type == wire.Request:
			s.answer(p, nil, Errorf(CodeUnimplemented, "no handler for biz_type %d", p.BizType))
		case s.cfg.onEvent != nil:
			in.handOver()
			s.cfg.onEvent(Event{Kind: MessageReceived, Session: s, Packet: p})
		}
		return
	}
	if !h.borrows {
		in.handOver()
	}
	obs := s.cfg.obs.route(m, p.BizType)
	if p.Type != wire.Request {
		ctx := s.oneWayContext(m, p.BizType)
		if ext.TraceParent != "" {
			ctx = &callContext{Context: s.ctx, info: CallInfo{Method: m, BizType: p.BizType, Type: wire.OneWay, Session: s, Trace: inboundTrace(&ext)}}
		}
		_, err := s.call(ctx, h.h, p)
		if obs != nil {
			obs.Received(statusOf(err))
		}
		s.answer(p, nil, err)
		return
	}
	// The caller's deadline, within the server's cap whatever the caller
	// asked (see WithMaxHandlerTimeout).
	timeout := s.cfg.maxHandlerTimeout
	if ext.TimeoutMS > 0 {
		timeout = min(timeout, time.Duration(min(ext.TimeoutMS, 1<<40))*time.Millisecond)
	}
	start := time.Now()
	ctx := newRequestContext(s.ctx, CallInfo{Method: m, BizType: p.BizType, Type: p.Type, Session: s, Trace: inboundTrace(&ext)}, start.Add(timeout))
	defer ctx.finish()
	if ms, ok := h.h.(messageServer); ok {
		// A typed unary handler with no interceptor: its response is
		// encoded straight into the response packet.
		msg, err := s.callMessage(ctx, ms, p)
		if obs != nil {
			obs.Handled(time.Since(start), statusOf(err))
		}
		s.answerMessage(p, msg, err)
		return
	}
	resp, err := s.call(ctx, h.h, p)
	if obs != nil {
		obs.Handled(time.Since(start), statusOf(err))
	}
	s.answer(p, resp, err)
}

// oneWayContext returns the context of a one-way call of m (nil for a raw
// packet) with the biz_type: the session's, carrying the call's
// [CallInfo]. It is the same for every such call, so each session keeps
// those of the first few kinds it serves instead of allocating one per
// packet. Only the session's read goroutine calls it.
func (s *Session) oneWayContext(m *Method, bizType uint8) context.Context {
	for _, c := range s.oneWay {
		if c.info.Method == m && c.info.BizType == bizType {
			return c
		}
	}
	c := &callContext{Context: s.ctx, info: CallInfo{Method: m, BizType: bizType, Type: wire.OneWay, Session: s}}
	if len(s.oneWay) < maxOneWayContexts {
		s.oneWay = append(s.oneWay, c)
	}
	return c
}

// maxOneWayContexts bounds the one-way call contexts a session keeps.
const maxOneWayContexts = 8

// handlerFor returns the handler of a typed packet's route (with its
// method) or of a raw packet's biz_type.
func (s *Session) handlerFor(p *wire.Packet, ext wire.Ext) (registered, *Method) {
	if ext.HasRoute {
		return s.mux.routeHandler(ext.Route)
	}
	return s.mux.bizHandler(p.BizType), nil
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

// callMessage runs a typed unary handler, turning a panic into
// CodeInternal so the session survives.
func (s *Session) callMessage(ctx context.Context, h messageServer, p *wire.Packet) (msg proto.Message, err error) {
	defer func() {
		if r := recover(); r != nil {
			s.cfg.logger.Error("msgtrans: handler panic", "session", s.id, "route", routeOf(p), "panic", r)
			msg, err = nil, Errorf(CodeInternal, "handler panic")
		}
	}()
	return h.serveMessage(ctx, s, p)
}

// answerMessage sends a typed unary handler's response message, encoded
// straight into the response packet, or its error.
func (s *Session) answerMessage(req *wire.Packet, msg proto.Message, err error) {
	if err == nil {
		size := proto.Size(msg)
		var b []byte
		if err = checkSend(s.cfg.limits, 0, size); err == nil {
			b, err = s.encodeMessage(wire.Response, req.MessageID, req.BizType, nil, msg, size)
		}
		if err == nil {
			if err := s.enqueueOwned(b); err != nil && !errors.Is(err, ErrClosed) {
				s.cfg.logger.Warn("msgtrans: sending response", "session", s.id, "err", err)
			}
			return
		}
		if !errors.Is(err, ErrPayloadTooLarge) {
			err = Errorf(CodeInternal, "marshal response: %v", err)
		}
	}
	s.answer(req, nil, err)
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
