package runtime

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/msgtrans/msgtrans-go/wire"
)

// Handler handles packets that arrive on a session: raw packets by biz_type
// (see [Server.Handle], [Client.Handle]) and, through generated code, typed
// ones by route.
//
// For a Request, the returned packet's ext header, flags, biz_type and
// payload become the Response (its type and message id are set by the
// runtime; a nil packet sends an empty response); a returned error is sent
// as an error response carrying its [Code] (see [CodeOf]). For a OneWay
// packet the returned packet is ignored and an error is logged.
//
// Concurrency: one-way packets of a session are handled one at a time in
// arrival order, on the session's read goroutine, so a one-way handler must
// not wait for a response on its own session (start a goroutine for that).
// Requests run each in a goroutine of their own, at most the configured
// in-flight count per session at once. ctx is cancelled when the session
// closes, and for a typed request also at the caller's deadline, which the
// request carries.
type Handler interface {
	ServePacket(ctx context.Context, s *Session, p *wire.Packet) (*wire.Packet, error)
}

// HandlerFunc adapts a function to [Handler].
type HandlerFunc func(ctx context.Context, s *Session, p *wire.Packet) (*wire.Packet, error)

// ServePacket calls f.
func (f HandlerFunc) ServePacket(ctx context.Context, s *Session, p *wire.Packet) (*wire.Packet, error) {
	return f(ctx, s, p)
}

// mux maps biz_types and routes to handlers. Lookups take no lock: the maps
// are replaced whole on registration, which happens rarely.
type mux struct {
	mu     sync.Mutex // serialises registrations
	biz    [256]atomic.Pointer[Handler]
	routes atomic.Pointer[map[uint32]route]
}

// route is a typed method's handler: h for unary and one-way methods, sh
// for streams.
type route struct {
	h  Handler
	sh StreamHandler
	m  *Method
}

func (m *mux) handleBiz(bizType uint8, h Handler) {
	if h == nil {
		m.biz[bizType].Store(nil)
		return
	}
	m.biz[bizType].Store(&h)
}

func (m *mux) bizHandler(bizType uint8) Handler {
	if h := m.biz[bizType].Load(); h != nil {
		return *h
	}
	return nil
}

// handleMethod registers h (or sh, for a stream) for the method's route;
// both nil removes it.
func (m *mux) handleMethod(method *Method, h Handler, sh StreamHandler) {
	m.mu.Lock()
	defer m.mu.Unlock()
	old := m.routes.Load()
	next := make(map[uint32]route, 1)
	if old != nil {
		for k, v := range *old {
			next[k] = v
		}
	}
	if h == nil && sh == nil {
		delete(next, method.route)
	} else {
		next[method.route] = route{h, sh, method}
	}
	m.routes.Store(&next)
}

func (m *mux) routeHandler(id uint32) (Handler, *Method) {
	if r := m.routes.Load(); r != nil {
		rt := (*r)[id]
		return rt.h, rt.m
	}
	return nil, nil
}

func (m *mux) streamHandler(id uint32) StreamHandler {
	if r := m.routes.Load(); r != nil {
		return (*r)[id].sh
	}
	return nil
}
