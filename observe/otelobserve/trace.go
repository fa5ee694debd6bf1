package otelobserve

import (
	"context"
	"errors"
	"io"
	"sync"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"

	"github.com/msgtrans/msgtrans-go/runtime"
	"github.com/msgtrans/msgtrans-go/wire"
)

// Attribute keys of msgtrans's own.
const (
	// PushTargetKey is the kind of target of a push span: "session",
	// "group", "group_except", "user" or "all" (never the group, user or
	// session itself).
	PushTargetKey = attribute.Key("msgtrans.push.target")
	// PushRecipientsKey is the sessions of this process a push was queued
	// to.
	PushRecipientsKey = attribute.Key("msgtrans.push.recipients")
)

// Interceptor returns the interceptor that traces the calls a server or
// client serves: a span of kind SERVER per request (and per stream, see
// [Adapter.StreamInterceptor]), of kind CONSUMER per one-way message,
// continuing the trace whose context the call carried ([runtime.CallInfo]
// Trace); a call that carried none, or one that does not parse, starts a
// new trace.
func (a *Adapter) Interceptor() runtime.Interceptor {
	return func(next runtime.Handler) runtime.Handler {
		return runtime.HandlerFunc(func(ctx context.Context, s *runtime.Session, p *wire.Packet) (*wire.Packet, error) {
			ci, _ := runtime.CallInfoFromContext(ctx)
			ctx, span := a.startServer(ctx, ci)
			resp, err := next.ServePacket(ctx, s, p)
			endServer(span, ci.Type, err)
			return resp, err
		})
	}
}

// StreamInterceptor returns the interceptor that traces the streams a
// server or client accepts: a span of kind SERVER from the opening of the
// stream until its handler returns, continuing the opener's trace.
func (a *Adapter) StreamInterceptor() runtime.StreamInterceptor {
	return func(next runtime.StreamHandler) runtime.StreamHandler {
		return func(ctx context.Context, s *runtime.Session, open *wire.Packet, st runtime.Stream) (*wire.Packet, error) {
			ci, _ := runtime.CallInfoFromContext(ctx)
			ctx, span := a.startServer(ctx, ci)
			resp, err := next(ctx, s, open, tracedStream{st, ctx})
			endServer(span, wire.Request, err)
			return resp, err
		}
	}
}

// tracedStream is a stream whose context carries its span.
type tracedStream struct {
	runtime.Stream
	ctx context.Context
}

func (t tracedStream) Context() context.Context { return t.ctx }

// startServer starts the span of a call this side serves, as the child of
// the span the call's trace context names.
func (a *Adapter) startServer(ctx context.Context, ci runtime.CallInfo) (context.Context, trace.Span) {
	opts := make([]trace.SpanStartOption, 0, 3)
	if ci.Trace.Parent != "" {
		ctx = a.prop.Extract(ctx, &ci.Trace)
	}
	if sc := trace.SpanContextFromContext(ctx); !sc.IsValid() || !sc.IsRemote() {
		// No trace context from the caller, or none that parsed: a new
		// trace, whatever span the session's own context might hold.
		opts = append(opts, trace.WithNewRoot())
	}
	name := routeName(ci)
	if ci.Type == wire.OneWay {
		opts = append(opts, trace.WithSpanKind(trace.SpanKindConsumer), trace.WithAttributes(
			semconv.MessagingSystemKey.String(SystemName),
			semconv.MessagingOperationTypeKey.String("process"),
			semconv.MessagingOperationNameKey.String("process"),
			semconv.MessagingDestinationNameKey.String(name),
		))
		return a.tracer.Start(ctx, "process "+name, opts...)
	}
	attrs := append([]attribute.KeyValue{
		semconv.RPCSystemNameKey.String(SystemName),
		semconv.RPCMethodKey.String(name),
	}, serverAddr(ci, false)...)
	opts = append(opts, trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(attrs...))
	return a.tracer.Start(ctx, name, opts...)
}

// endServer ends the span of a call this side served with its status: a
// request's status code, and the span's status Error for the codes that
// say the server failed (unknown, deadline exceeded, unimplemented,
// internal, unavailable, data loss), as OpenTelemetry's RPC conventions
// have it; a one-way message's handler failing sets Error whatever its
// code.
func endServer(span trace.Span, t wire.PacketType, err error) {
	code := runtime.CodeOf(err)
	if t == wire.OneWay {
		if err != nil {
			span.SetAttributes(semconv.ErrorTypeKey.String(StatusCode(code)))
			span.SetStatus(codes.Error, err.Error())
		}
		span.End()
		return
	}
	span.SetAttributes(semconv.RPCResponseStatusCodeKey.String(StatusCode(code)))
	if serverFault(code) {
		span.SetAttributes(semconv.ErrorTypeKey.String(StatusCode(code)))
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

// serverFault reports whether a status says the server failed, rather than
// the caller's request (OpenTelemetry's RPC conventions).
func serverFault(c runtime.Code) bool {
	switch c {
	case runtime.CodeUnknown, runtime.CodeDeadlineExceeded, runtime.CodeUnimplemented,
		runtime.CodeInternal, runtime.CodeUnavailable, runtime.CodeDataLoss:
		return true
	}
	return false
}

// CallInterceptor returns the call interceptor that traces the typed calls
// a server or client makes: a span of kind CLIENT per request, of kind
// PRODUCER per one-way message, whose trace context travels with the call
// so that the peer's span is its child. Its status is Error for any
// failure.
func (a *Adapter) CallInterceptor() runtime.CallInterceptor {
	return func(next runtime.Invoker) runtime.Invoker {
		return func(ctx context.Context, p *wire.Packet) (*wire.Packet, error) {
			ci, _ := runtime.CallInfoFromContext(ctx)
			ctx, span := a.startClient(ctx, ci)
			resp, err := next(a.outgoing(ctx), p)
			endClient(span, ci.Type, err)
			return resp, err
		}
	}
}

// StreamOpenInterceptor returns the stream open interceptor that traces
// the streams a server or client opens: a span of kind CLIENT from the
// opening until the stream ends as its opener sees it (a receive that
// returns io.EOF or an error, a send that fails, or Close), whose trace
// context travels in the opening request. A stream its opener neither
// reads to its end nor closes leaves its span unended, and so unexported.
func (a *Adapter) StreamOpenInterceptor() runtime.StreamOpenInterceptor {
	return func(next runtime.StreamOpener) runtime.StreamOpener {
		return func(ctx context.Context, m *runtime.Method, req proto.Message) (runtime.OpenedStream, error) {
			ci, _ := runtime.CallInfoFromContext(ctx)
			ci.Type = wire.Request
			ctx, span := a.startClient(ctx, ci)
			st, err := next(a.outgoing(ctx), m, req)
			if err != nil {
				endClient(span, wire.Request, err)
				return nil, err
			}
			return &openedStream{OpenedStream: st, span: span}, nil
		}
	}
}

// openedStream ends its span when the stream ends.
type openedStream struct {
	runtime.OpenedStream
	span trace.Span
	once sync.Once
}

func (s *openedStream) end(err error) {
	s.once.Do(func() { endClient(s.span, wire.Request, err) })
}

func (s *openedStream) RecvMsg(m proto.Message) error {
	err := s.OpenedStream.RecvMsg(m)
	switch {
	case errors.Is(err, io.EOF):
		s.end(nil)
	case err != nil:
		s.end(err)
	}
	return err
}

func (s *openedStream) SendMsg(m proto.Message) error {
	err := s.OpenedStream.SendMsg(m)
	if err != nil && !errors.Is(err, io.EOF) {
		s.end(err)
	}
	return err
}

func (s *openedStream) Close() error {
	err := s.OpenedStream.Close()
	s.end(runtime.NewError(runtime.CodeCanceled, "closed by its opener"))
	return err
}

// PushInterceptor returns the push interceptor that traces a server's
// pushes: one span of kind PRODUCER per push, however many sessions it
// reaches, whose trace context every recipient receives.
func (a *Adapter) PushInterceptor() runtime.PushInterceptor {
	return func(next runtime.Pusher) runtime.Pusher {
		return func(ctx context.Context, to runtime.Target, p *wire.Packet) (int, error) {
			ci, _ := runtime.CallInfoFromContext(ctx)
			name := routeName(ci)
			ctx, span := a.tracer.Start(ctx, "push "+name, trace.WithSpanKind(trace.SpanKindProducer), trace.WithAttributes(
				semconv.MessagingSystemKey.String(SystemName),
				semconv.MessagingOperationTypeKey.String("send"),
				semconv.MessagingOperationNameKey.String("push"),
				semconv.MessagingDestinationNameKey.String(name),
				PushTargetKey.String(to.Kind()),
			))
			n, err := next(a.outgoing(ctx), to, p)
			span.SetAttributes(PushRecipientsKey.Int(n))
			endClient(span, wire.OneWay, err)
			return n, err
		}
	}
}

// startClient starts the span of a call this side makes.
func (a *Adapter) startClient(ctx context.Context, ci runtime.CallInfo) (context.Context, trace.Span) {
	name := routeName(ci)
	if ci.Type == wire.OneWay {
		return a.tracer.Start(ctx, "send "+name, trace.WithSpanKind(trace.SpanKindProducer), trace.WithAttributes(
			semconv.MessagingSystemKey.String(SystemName),
			semconv.MessagingOperationTypeKey.String("send"),
			semconv.MessagingOperationNameKey.String("send"),
			semconv.MessagingDestinationNameKey.String(name),
		))
	}
	attrs := append([]attribute.KeyValue{
		semconv.RPCSystemNameKey.String(SystemName),
		semconv.RPCMethodKey.String(name),
	}, serverAddr(ci, true)...)
	return a.tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrs...))
}

// endClient ends the span of a call this side made with its status; any
// failure sets the span's status Error.
func endClient(span trace.Span, t wire.PacketType, err error) {
	code := runtime.CodeOf(err)
	if t != wire.OneWay {
		span.SetAttributes(semconv.RPCResponseStatusCodeKey.String(StatusCode(code)))
	}
	if err != nil {
		span.SetAttributes(semconv.ErrorTypeKey.String(StatusCode(code)))
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

// outgoing returns ctx carrying its span's trace context to the peer.
func (a *Adapter) outgoing(ctx context.Context) context.Context {
	var tc runtime.TraceContext
	a.prop.Inject(ctx, &tc)
	if tc.Parent == "" {
		return ctx // no valid span context: nothing to send
	}
	return runtime.WithOutgoingTrace(ctx, tc)
}
