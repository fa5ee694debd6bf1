package runtime

import (
	"context"
	"sync"
	"time"

	"github.com/msgtrans/msgtrans-go/wire"
)

// CallInfo describes a call: one a handler serves (inbound), or one a
// generated client makes (outbound, as call interceptors see it). The
// runtime parses it from the packet once; it travels in the context, where
// [CallInfoFromContext] finds it.
type CallInfo struct {
	// Method is the typed method called; nil for a raw packet.
	Method *Method
	// BizType is the packet's biz_type, by which raw packets are
	// dispatched.
	BizType uint8
	// Type is wire.Request or wire.OneWay.
	Type wire.PacketType
	// Session is the session the call arrived on, or leaves on; nil for an
	// outbound call of a client that is not connected.
	Session *Session
	// Outbound reports whether this side makes the call rather than
	// serves it.
	Outbound bool
	// Trace is the W3C trace context the call arrived with (docs/wire.md,
	// "Trace context"): the caller's span, for a tracer to continue.
	// Empty when the caller sent none, and for outbound calls, whose trace
	// context is set with [WithOutgoingTrace].
	Trace TraceContext
}

// callInfoKey is the context key of a call's [CallInfo].
type callInfoKey struct{}

// callContext carries a call's [CallInfo] under its parent context, one
// allocation for both.
type callContext struct {
	context.Context
	info CallInfo
}

func (c *callContext) Value(key any) any {
	if key == (callInfoKey{}) {
		return &c.info
	}
	return c.Context.Value(key)
}

// withCallInfo returns ctx carrying info.
func withCallInfo(ctx context.Context, info CallInfo) context.Context {
	return &callContext{Context: ctx, info: info}
}

// CallInfoFromContext returns the description of the call ctx belongs to:
// the ctx of a handler, of an interceptor, or of an outbound call as its
// call interceptors see it.
func CallInfoFromContext(ctx context.Context) (CallInfo, bool) {
	if ci, ok := ctx.Value(callInfoKey{}).(*CallInfo); ok {
		return *ci, true
	}
	return CallInfo{}, false
}

// requestContext is the context of a request's handler: the session's
// context, the call's [CallInfo], and the handler's deadline. It is one
// allocation: the channel Done returns, the deadline's timer and the link
// to the session's context are made only if the handler asks for Done, which
// a handler that does not wait on anything never does. It ends at the
// deadline, when the session's context ends, or when the handler returns
// (finish), as context.WithTimeout's would with its cancel deferred.
type requestContext struct {
	context.Context // the session's
	info            CallInfo
	deadline        time.Time

	mu         sync.Mutex
	done       chan struct{}
	err        error
	timer      *time.Timer
	stopParent func() bool
}

func newRequestContext(parent context.Context, info CallInfo, deadline time.Time) *requestContext {
	return &requestContext{Context: parent, info: info, deadline: deadline}
}

func (c *requestContext) Value(key any) any {
	if key == (callInfoKey{}) {
		return &c.info
	}
	return c.Context.Value(key)
}

func (c *requestContext) Deadline() (time.Time, bool) { return c.deadline, true }

func (c *requestContext) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done != nil {
		return c.done
	}
	c.done = make(chan struct{})
	switch {
	case c.err != nil:
		close(c.done)
	case c.Context.Err() != nil:
		c.err = c.Context.Err()
		close(c.done)
	default:
		d := time.Until(c.deadline)
		if d <= 0 {
			c.err = context.DeadlineExceeded
			close(c.done)
			break
		}
		c.timer = time.AfterFunc(d, func() { c.end(context.DeadlineExceeded) })
		c.stopParent = context.AfterFunc(c.Context, func() { c.end(c.Context.Err()) })
	}
	return c.done
}

func (c *requestContext) Err() error {
	c.mu.Lock()
	err := c.err
	c.mu.Unlock()
	switch {
	case err != nil:
		return err
	case !time.Now().Before(c.deadline):
		c.end(context.DeadlineExceeded)
	case c.Context.Err() != nil:
		c.end(c.Context.Err())
	default:
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// end ends the context with err, once.
func (c *requestContext) end(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return
	}
	c.err = err
	if c.done != nil {
		close(c.done)
	}
	if c.timer != nil {
		c.timer.Stop()
	}
	if c.stopParent != nil {
		c.stopParent()
	}
}

// finish ends the context once its handler has returned.
func (c *requestContext) finish() { c.end(context.Canceled) }
