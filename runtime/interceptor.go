package runtime

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/msgtrans/msgtrans-go/wire"
)

// Interceptor wraps a [Handler]: it returns a handler that runs around next,
// before and after it, and may answer without calling it. Interceptors apply
// to every handler registered on a server or client, raw and typed alike.
//
// An interceptor must not keep the packet it is given, nor anything sliced
// from it, once it has returned: the memory may be reused for the packets
// that follow (see [Borrowing]). It copies what it keeps.
type Interceptor func(next Handler) Handler

// WithInterceptors adds interceptors around every handler registered on the
// server or client; the first given is the outermost. They are applied when
// a handler is registered, so they cost nothing per packet beyond their own
// work.
func WithInterceptors(interceptors ...Interceptor) Option {
	return option{"WithInterceptors", func(c *config) {
		c.interceptors = append(c.interceptors, interceptors...)
	}}
}

// Invoker sends an outbound call: p is the typed Request or OneWay packet,
// built already; for a Request it returns the response. [CallInfoFromContext]
// describes the call.
type Invoker func(ctx context.Context, p *wire.Packet) (*wire.Packet, error)

// CallInterceptor wraps the calls this side makes through generated
// clients and pushers' session calls: typed requests and one-way sends. It
// returns an invoker that runs around next; it may read the call from
// [CallInfoFromContext], add fields to p's ext header, answer without
// calling next, or change the error. Call interceptors are how metrics and
// tracing see outbound calls.
type CallInterceptor func(next Invoker) Invoker

// WithCallInterceptors adds interceptors around every typed call and
// one-way send made through a client, or through a server's sessions; the
// first given is the outermost. With none, typed calls take a path that
// encodes each message straight into its packet.
func WithCallInterceptors(interceptors ...CallInterceptor) Option {
	return option{"WithCallInterceptors", func(c *config) {
		c.callInterceptors = append(c.callInterceptors, interceptors...)
	}}
}

// Pusher sends a push: p as a OneWay packet to the target, as
// [Server.Push] does; it returns how many local sessions it was queued to.
// [CallInfoFromContext] describes the push (Outbound set; Method nil for a
// raw packet).
type Pusher func(ctx context.Context, to Target, p *wire.Packet) (int, error)

// PushInterceptor wraps the pushes a server makes: [Server.Push],
// [Server.Send] and generated pushers' Push methods. It runs once per
// push, however many sessions the push reaches. It may read the push from
// [CallInfoFromContext], set the trace context the push carries
// ([WithOutgoingTrace]), refuse it, or change its count or error; p is
// encoded once for every recipient after it.
type PushInterceptor func(next Pusher) Pusher

// WithPushInterceptors adds interceptors around every push the server
// makes; the first given is the outermost. With none, a typed push to one
// session takes a path that encodes its message straight into its packet.
func WithPushInterceptors(interceptors ...PushInterceptor) ServerOption {
	return serverOption{"WithPushInterceptors", func(c *config) {
		c.pushInterceptors = append(c.pushInterceptors, interceptors...)
	}}
}

// wrapStream applies the configured stream interceptors to h.
func (c *config) wrapStream(h StreamHandler) StreamHandler {
	if h == nil {
		return nil
	}
	for i := len(c.streamInterceptors) - 1; i >= 0; i-- {
		h = c.streamInterceptors[i](h)
	}
	return h
}

// wrap applies the configured interceptors to h.
func (c *config) wrap(h Handler) registered {
	if h == nil {
		return registered{}
	}
	r := registered{borrows: borrows(h)}
	for i := len(c.interceptors) - 1; i >= 0; i-- {
		h = c.interceptors[i](h)
	}
	r.h = h
	return r
}

// describe names what a call calls, for logs: its method or biz_type.
func describe(ctx context.Context, p *wire.Packet) slog.Attr {
	if ci, ok := CallInfoFromContext(ctx); ok && ci.Method != nil {
		return slog.String("method", ci.Method.FullName())
	}
	return slog.Int("biz_type", int(p.BizType))
}

// Logging returns an interceptor that logs every handled packet at Debug
// level, and every one whose handler failed at Warn, with the session, the
// method or biz_type, the duration and the status code.
func Logging(logger *slog.Logger) Interceptor {
	return func(next Handler) Handler {
		return HandlerFunc(func(ctx context.Context, s *Session, p *wire.Packet) (*wire.Packet, error) {
			start := time.Now()
			resp, err := next.ServePacket(ctx, s, p)
			level := slog.LevelDebug
			if err != nil {
				level = slog.LevelWarn
			}
			logger.LogAttrs(ctx, level, "msgtrans: handled", slog.Uint64("session", s.ID()), describe(ctx, p),
				slog.String("type", p.Type.String()), slog.Duration("took", time.Since(start)),
				slog.String("code", CodeOf(err).String()))
			return resp, err
		})
	}
}

// Authorize returns an interceptor that lets a packet through only when
// allow returns nil; otherwise the packet is answered with allow's error
// (CodePermissionDenied unless it carries a code). With
// [WithAuthenticator], allow typically checks [Session.Identity].
func Authorize(allow func(ctx context.Context, s *Session, p *wire.Packet) error) Interceptor {
	return func(next Handler) Handler {
		return HandlerFunc(func(ctx context.Context, s *Session, p *wire.Packet) (*wire.Packet, error) {
			if err := allow(ctx, s, p); err != nil {
				if CodeOf(err) == CodeUnknown {
					err = wrapError(CodePermissionDenied, err)
				}
				return nil, err
			}
			return next.ServePacket(ctx, s, p)
		})
	}
}

// Recovery returns an interceptor that turns a handler's panic into the
// error onPanic returns (which might log the stack or count the event). The
// runtime recovers panics regardless, answering CodeInternal; this lets an
// application decide the answer.
func Recovery(onPanic func(ctx context.Context, s *Session, p *wire.Packet, recovered any) error) Interceptor {
	return func(next Handler) Handler {
		return HandlerFunc(func(ctx context.Context, s *Session, p *wire.Packet) (resp *wire.Packet, err error) {
			defer func() {
				if r := recover(); r != nil {
					resp, err = nil, onPanic(ctx, s, p, r)
					if err == nil {
						err = Errorf(CodeInternal, "handler panic: %v", fmt.Sprint(r))
					}
				}
			}()
			return next.ServePacket(ctx, s, p)
		})
	}
}
