package runtime

import (
	"context"
	"iter"

	"google.golang.org/protobuf/proto"

	"github.com/msgtrans/msgtrans-go/wire"
)

// The typed streams, in grpc-go's generic shape: the handler side gets a
// ServerStream, ClientStream or BidiStream; the caller side a
// ServerStreamClient, ClientStreamClient or BidiStreamClient. Recv returns
// io.EOF at a clean end and the stream's error otherwise; All ranges over
// what Recv returns until then.

// recv receives the next message of a typed stream.
func recv[T any](st Stream) (*T, error) {
	m := new(T)
	if err := st.RecvMsg(any(m).(proto.Message)); err != nil {
		return nil, err
	}
	return m, nil
}

// all ranges over a typed stream's messages; a final error other than
// io.EOF is yielded last.
func all[T any](st Stream) iter.Seq2[*T, error] {
	return func(yield func(*T, error) bool) {
		for {
			m, err := recv[T](st)
			if isEOF(err) {
				return
			}
			if !yield(m, err) || err != nil {
				return
			}
		}
	}
}

// ServerStream is the handler's side of a server-streaming method: it sends
// the responses.
type ServerStream[Res any] struct{ st Stream }

// Send sends one response, waiting while the caller has granted no room.
func (s *ServerStream[Res]) Send(m *Res) error { return s.st.SendMsg(any(m).(proto.Message)) }

// Context returns the stream's context.
func (s *ServerStream[Res]) Context() context.Context { return s.st.Context() }

// ClientStream is the handler's side of a client-streaming method: it
// receives the requests.
type ClientStream[Req any] struct{ st Stream }

// Recv returns the next request, io.EOF once the caller has sent them all.
func (s *ClientStream[Req]) Recv() (*Req, error) { return recv[Req](s.st) }

// All ranges over the requests.
func (s *ClientStream[Req]) All() iter.Seq2[*Req, error] { return all[Req](s.st) }

// Context returns the stream's context.
func (s *ClientStream[Req]) Context() context.Context { return s.st.Context() }

// BidiStream is the handler's side of a bidirectional method.
type BidiStream[Req, Res any] struct{ st Stream }

// Recv returns the next request, io.EOF once the caller has sent them all.
func (s *BidiStream[Req, Res]) Recv() (*Req, error) { return recv[Req](s.st) }

// All ranges over the requests.
func (s *BidiStream[Req, Res]) All() iter.Seq2[*Req, error] { return all[Req](s.st) }

// Send sends one response.
func (s *BidiStream[Req, Res]) Send(m *Res) error { return s.st.SendMsg(any(m).(proto.Message)) }

// Context returns the stream's context.
func (s *BidiStream[Req, Res]) Context() context.Context { return s.st.Context() }

// NewServerStreamHandler adapts a typed server-streaming function to a
// [StreamHandler]: it decodes the request the stream was opened with.
func NewServerStreamHandler[Req, Res any, PReq message[Req]](fn func(context.Context, *Session, PReq, *ServerStream[Res]) error) StreamHandler {
	return func(ctx context.Context, s *Session, open *wire.Packet, st Stream) (*wire.Packet, error) {
		req := PReq(new(Req))
		if err := unmarshalNew(open.Payload, req); err != nil {
			return nil, Errorf(CodeInvalidArgument, "request is not a valid %s: %v", req.ProtoReflect().Descriptor().FullName(), err)
		}
		return nil, fn(ctx, s, req, &ServerStream[Res]{st})
	}
}

// NewClientStreamHandler adapts a typed client-streaming function to a
// [StreamHandler]: its response ends the stream.
func NewClientStreamHandler[Req, Res any, PRes message[Res]](fn func(context.Context, *Session, *ClientStream[Req]) (PRes, error)) StreamHandler {
	return func(ctx context.Context, s *Session, open *wire.Packet, st Stream) (*wire.Packet, error) {
		resp, err := fn(ctx, s, &ClientStream[Req]{st})
		if err != nil {
			return nil, err
		}
		if resp == nil {
			return nil, Errorf(CodeInternal, "handler returned neither a response nor an error")
		}
		payload, err := proto.Marshal(resp)
		if err != nil {
			return nil, Errorf(CodeInternal, "marshal response: %v", err)
		}
		return &wire.Packet{BizType: open.BizType, Payload: payload}, nil
	}
}

// NewBidiStreamHandler adapts a typed bidirectional function to a
// [StreamHandler].
func NewBidiStreamHandler[Req, Res any](fn func(context.Context, *Session, *BidiStream[Req, Res]) error) StreamHandler {
	return func(ctx context.Context, s *Session, _ *wire.Packet, st Stream) (*wire.Packet, error) {
		return nil, fn(ctx, s, &BidiStream[Req, Res]{st})
	}
}

// ServerStreamClient is the caller's side of a server-streaming method.
type ServerStreamClient[Res any] struct{ st OpenedStream }

// Recv returns the next response; io.EOF at the stream's clean end.
func (c *ServerStreamClient[Res]) Recv() (*Res, error) { return recv[Res](c.st) }

// All ranges over the responses.
func (c *ServerStreamClient[Res]) All() iter.Seq2[*Res, error] { return all[Res](c.st) }

// Close abandons the stream (the handler's context is cancelled); it is
// harmless after the end.
func (c *ServerStreamClient[Res]) Close() error { return c.st.Close() }

// ClientStreamClient is the caller's side of a client-streaming method.
type ClientStreamClient[Req, Res any] struct{ st OpenedStream }

// Send sends one request, waiting while the handler has granted no room.
func (c *ClientStreamClient[Req, Res]) Send(m *Req) error {
	return c.st.SendMsg(any(m).(proto.Message))
}

// CloseAndRecv says the requests are all sent and waits for the response.
func (c *ClientStreamClient[Req, Res]) CloseAndRecv() (*Res, error) {
	if err := c.st.CloseSend(); err != nil {
		return nil, err
	}
	return recv[Res](c.st)
}

// Close abandons the stream.
func (c *ClientStreamClient[Req, Res]) Close() error { return c.st.Close() }

// BidiStreamClient is the caller's side of a bidirectional method.
type BidiStreamClient[Req, Res any] struct{ st OpenedStream }

// Send sends one request.
func (c *BidiStreamClient[Req, Res]) Send(m *Req) error { return c.st.SendMsg(any(m).(proto.Message)) }

// CloseSend says the requests are all sent; responses may go on arriving.
func (c *BidiStreamClient[Req, Res]) CloseSend() error { return c.st.CloseSend() }

// Recv returns the next response; io.EOF at the stream's clean end.
func (c *BidiStreamClient[Req, Res]) Recv() (*Res, error) { return recv[Res](c.st) }

// All ranges over the responses.
func (c *BidiStreamClient[Req, Res]) All() iter.Seq2[*Res, error] { return all[Res](c.st) }

// Close abandons the stream.
func (c *BidiStreamClient[Req, Res]) Close() error { return c.st.Close() }

// OpenServerStream opens a server-streaming call of m on c with req.
// Generated client methods call it. The stream ends with ctx.
func OpenServerStream[Res any](ctx context.Context, c Caller, m *Method, req proto.Message) (*ServerStreamClient[Res], error) {
	st, err := open(ctx, c, m, req)
	if err != nil {
		return nil, err
	}
	return &ServerStreamClient[Res]{st}, nil
}

// OpenClientStream opens a client-streaming call of m on c.
func OpenClientStream[Req, Res any](ctx context.Context, c Caller, m *Method) (*ClientStreamClient[Req, Res], error) {
	st, err := open(ctx, c, m, nil)
	if err != nil {
		return nil, err
	}
	return &ClientStreamClient[Req, Res]{st}, nil
}

// OpenBidiStream opens a bidirectional call of m on c.
func OpenBidiStream[Req, Res any](ctx context.Context, c Caller, m *Method) (*BidiStreamClient[Req, Res], error) {
	st, err := open(ctx, c, m, nil)
	if err != nil {
		return nil, err
	}
	return &BidiStreamClient[Req, Res]{st}, nil
}
