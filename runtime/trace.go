package runtime

import (
	"context"

	"github.com/msgtrans/msgtrans-go/wire"
)

// TraceContext is the W3C trace context (https://www.w3.org/TR/trace-context/)
// a call carries: the traceparent and tracestate values, as text. The
// runtime carries it in the ext header (docs/wire.md, "Trace context") and
// never interprets it; a tracer reads and writes it, and one that cannot
// parse it ignores it.
//
// A *TraceContext is a text map carrier of the shape tracers' propagators
// take (Get, Set, Keys; OpenTelemetry's propagation.TextMapCarrier, say)
// for the keys "traceparent" and "tracestate": a W3C trace context
// propagator injects into it and extracts from it as it would from HTTP
// headers. Only those two keys travel: Set of any other key is not
// carried, so a propagator of anything else (baggage, other formats) has
// nothing to write here.
type TraceContext struct {
	// Parent is the traceparent value, e.g.
	// "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"; empty when
	// the call carries no trace context.
	Parent string
	// State is the tracestate value; it travels only beside a Parent.
	State string
}

// The carrier keys of a [TraceContext].
const (
	TraceParentKey = "traceparent"
	TraceStateKey  = "tracestate"
)

// Get returns the value of the key: Parent for "traceparent", State for
// "tracestate", "" for any other key.
func (tc *TraceContext) Get(key string) string {
	switch key {
	case TraceParentKey:
		return tc.Parent
	case TraceStateKey:
		return tc.State
	}
	return ""
}

// Set sets Parent for the key "traceparent" and State for "tracestate";
// other keys are not carried (see [TraceContext]).
func (tc *TraceContext) Set(key, value string) {
	switch key {
	case TraceParentKey:
		tc.Parent = value
	case TraceStateKey:
		tc.State = value
	}
}

// Keys returns the keys that hold a value.
func (tc *TraceContext) Keys() []string {
	switch {
	case tc.Parent == "":
		return nil
	case tc.State == "":
		return []string{TraceParentKey}
	}
	return []string{TraceParentKey, TraceStateKey}
}

// outgoingTraceKey is the context key of the trace context calls carry.
type outgoingTraceKey struct{}

// WithOutgoingTrace returns a copy of ctx under which the calls this side
// makes carry tc to the peer: typed and raw requests ([Session.Request],
// [Client.Request], [Server.Request], generated client methods, pushers'
// calls, across a cluster too), typed one-way calls, pushes ([Server.Push]
// and generated pushers, one encoding for every recipient) and stream
// opens. A tc with no Parent carries nothing. The calls that take no
// context ([Session.Send], [Client.Send], [Server.Send]) carry what their
// packet's ext header holds ([wire.Ext.TraceParent]).
//
// A handler's context does not pass its caller's trace context on: what a
// call received is in its [CallInfo], and a tracer continuing the trace
// sets its own span's context here (see observe/otelobserve).
func WithOutgoingTrace(ctx context.Context, tc TraceContext) context.Context {
	return context.WithValue(ctx, outgoingTraceKey{}, tc)
}

// OutgoingTrace returns the trace context that calls made with ctx carry,
// set by [WithOutgoingTrace].
func OutgoingTrace(ctx context.Context) (TraceContext, bool) {
	tc, ok := ctx.Value(outgoingTraceKey{}).(TraceContext)
	return tc, ok && tc.Parent != ""
}

// tracePacket returns p, or a copy of p carrying the trace context of ctx
// when it has one. The copy's ext header is new: p's, which the caller
// may reuse, is never written. A packet that carries a trace context of
// its own keeps it, and one whose ext header is not in the typed layout
// (a raw peer's text tag, say) is left as it is. A packet with no ext
// header gets a typed one holding the trace context alone.
func tracePacket(ctx context.Context, p *wire.Packet) *wire.Packet {
	tc, ok := OutgoingTrace(ctx)
	if !ok {
		return p
	}
	var ext []byte
	switch {
	case len(p.Ext) == 0:
		ext = make([]byte, 1, 1+traceExtLen(tc))
		ext[0] = wire.ExtVersion
	case wire.IsTypedExt(p):
		if e, err := wire.ParseExt(p.Ext); err != nil || e.TraceParent != "" {
			return p // the packet's own, or a header not ours to extend
		}
		ext = append(make([]byte, 0, len(p.Ext)+traceExtLen(tc)), p.Ext...)
	default:
		return p
	}
	q := *p
	q.Flags |= wire.FlagHasRouteTag
	q.Ext = wire.AppendTraceContext(ext, tc.Parent, tc.State)
	return &q
}

// traceExtLen bounds the bytes the trace context fields of tc take: each
// field's tag, a length of at most 3 bytes (ext headers are under 64 KiB),
// and its text.
func traceExtLen(tc TraceContext) int {
	return 2*(1+3) + len(tc.Parent) + len(tc.State)
}

// inboundTrace returns the trace context a received packet's ext header
// carries.
func inboundTrace(ext *wire.Ext) TraceContext {
	return TraceContext{Parent: ext.TraceParent, State: ext.TraceState}
}

// hasOutgoingTrace reports whether calls made with ctx carry a trace
// context: the paths that encode a typed call straight into its packet
// leave those for the general one.
func hasOutgoingTrace(ctx context.Context) bool {
	_, ok := OutgoingTrace(ctx)
	return ok
}

// isTypedCall reports whether p is a typed call: its ext header, in the
// typed layout, names a route. A raw packet may carry a typed ext header
// too, holding only a trace context, say; the observer counts it raw.
func isTypedCall(p *wire.Packet) bool {
	if !wire.IsTypedExt(p) {
		return false
	}
	e, err := wire.ParseExt(p.Ext)
	return err == nil && e.HasRoute
}
