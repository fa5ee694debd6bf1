package runtime

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/msgtrans/msgtrans-go/wire"
)

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
