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
// Ownership: a raw handler owns the packet it is given and may keep it (or
// slices of its Ext and Payload) for as long as it likes, unless it is
// registered wrapped in [Borrowing], which promises the opposite and saves
// an allocation per packet. The packet a typed handler's message was decoded
// from is reused once the handler returns; the message is its own.
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

// borrower is implemented by handlers that keep nothing of the packet they
// are given once they return: the typed adapters (which decode the payload
// into a message of their own), and raw handlers marked with [Borrowing].
type borrower interface{ borrowsPacket() }

// Borrowing marks a raw handler as one that keeps neither the packet it is
// given nor anything sliced from its Ext or Payload once it returns (it
// copies what it keeps, or decodes it into values of its own). The runtime
// then reuses the packet's memory for the packets that follow, which saves
// an allocation per packet; without the mark a raw handler owns the packets
// it is given. Typed handlers (generated code) borrow without it.
//
// Interceptors must never keep a packet beyond their return, marked or not.
func Borrowing(h Handler) Handler { return borrowing{h} }

type borrowing struct{ Handler }

func (borrowing) borrowsPacket() {}

// borrows reports whether h keeps nothing of its packets.
func borrows(h Handler) bool {
	_, ok := h.(borrower)
	return ok
}

// registered is a handler as registered: wrapped by the interceptors, and
// whether the handler it wraps borrows its packets.
type registered struct {
	h       Handler
	borrows bool
}

// mux maps biz_types and routes to handlers. Lookups take no lock: the maps
// are replaced whole on registration, which happens rarely.
type mux struct {
	mu     sync.Mutex // serialises registrations
	biz    [256]atomic.Pointer[registered]
	routes atomic.Pointer[map[uint32]route]
}

// route is a typed method's handler: h for unary and one-way methods, sh
// for streams.
type route struct {
	h  registered
	sh StreamHandler
	m  *Method
}

func (m *mux) handleBiz(bizType uint8, h registered) {
	if h.h == nil {
		m.biz[bizType].Store(nil)
		return
	}
	m.biz[bizType].Store(&h)
}

func (m *mux) bizHandler(bizType uint8) registered {
	if h := m.biz[bizType].Load(); h != nil {
		return *h
	}
	return registered{}
}

// handleMethod registers h (or sh, for a stream) for the method's route;
// both nil removes it.
func (m *mux) handleMethod(method *Method, h registered, sh StreamHandler) {
	m.mu.Lock()
	defer m.mu.Unlock()
	old := m.routes.Load()
	next := make(map[uint32]route, 1)
	if old != nil {
		for k, v := range *old {
			next[k] = v
		}
	}
	if h.h == nil && sh == nil {
		delete(next, method.route)
	} else {
		next[method.route] = route{h, sh, method}
	}
	m.routes.Store(&next)
}

func (m *mux) routeHandler(id uint32) (registered, *Method) {
	if r := m.routes.Load(); r != nil {
		rt := (*r)[id]
		return rt.h, rt.m
	}
	return registered{}, nil
}

func (m *mux) streamHandler(id uint32) StreamHandler {
	if r := m.routes.Load(); r != nil {
		return (*r)[id].sh
	}
	return nil
}
