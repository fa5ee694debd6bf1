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

// wrap applies the configured interceptors to h.
func (c *config) wrap(h Handler) Handler {
	if h == nil {
		return nil
	}
	for i := len(c.interceptors) - 1; i >= 0; i-- {
		h = c.interceptors[i](h)
	}
	return h
}

// describe names what a packet calls, for logs: its route or biz_type.
func describe(p *wire.Packet) slog.Attr {
	if r := routeOf(p); r != "" {
		return slog.String("route", r)
	}
	return slog.Int("biz_type", int(p.BizType))
}

// Logging returns an interceptor that logs every handled packet at Debug
// level, and every one whose handler failed at Warn, with the session, the
// route or biz_type, the duration and the status code.
func Logging(logger *slog.Logger) Interceptor {
	return func(next Handler) Handler {
		return HandlerFunc(func(ctx context.Context, s *Session, p *wire.Packet) (*wire.Packet, error) {
			start := time.Now()
			resp, err := next.ServePacket(ctx, s, p)
			level := slog.LevelDebug
			if err != nil {
				level = slog.LevelWarn
			}
			logger.LogAttrs(ctx, level, "msgtrans: handled", slog.Uint64("session", s.ID()), describe(p),
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
