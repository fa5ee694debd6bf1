package runtime

import (
	"context"

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
