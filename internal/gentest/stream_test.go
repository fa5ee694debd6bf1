package gentest_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/msgtrans/msgtrans-go/internal/gentest/gentestv1"
	"github.com/msgtrans/msgtrans-go/internal/testcert"
	"github.com/msgtrans/msgtrans-go/runtime"
	"github.com/msgtrans/msgtrans-go/wire"
)

// Generated streams: every kind through the generated client and handler,
// a stream the server opens to a client through the generated pusher, the
// Unimplemented type's answer, and stream interceptors on both sides seeing
// each stream's kind and every message.

func (e *echoServer) Count(_ context.Context, _ *runtime.Session, req *gentestv1.CountRequest, stream *runtime.ServerStream[gentestv1.CountResponse]) error {
	if req.N < 0 {
		return runtime.NewError(runtime.CodeInvalidArgument, "cannot count to a negative number")
	}
	for i := range req.N {
		if err := stream.Send(&gentestv1.CountResponse{N: i + 1}); err != nil {
			return err
		}
	}
	return nil
}

func (e *echoServer) Sum(_ context.Context, _ *runtime.Session, stream *runtime.ClientStream[gentestv1.SumRequest]) (*gentestv1.SumResponse, error) {
	var sum int64
	for m, err := range stream.All() {
		if err != nil {
			return nil, err
		}
		sum += m.N
	}
	return &gentestv1.SumResponse{Sum: sum}, nil
}

func (e *echoServer) Shout(_ context.Context, _ *runtime.Session, stream *runtime.BidiStream[gentestv1.ShoutRequest, gentestv1.ShoutResponse]) error {
	for m, err := range stream.All() {
		if err != nil {
			return err
		}
		if err := stream.Send(&gentestv1.ShoutResponse{Text: strings.ToUpper(m.Text)}); err != nil {
			return err
		}
	}
	return nil
}

// Replay serves the server's stream on the client: n headlines.
func (c *eventsClient) Replay(_ context.Context, req *gentestv1.ReplayRequest, stream *runtime.ServerStream[gentestv1.ReplayResponse]) error {
	for i := range req.N {
		if err := stream.Send(&gentestv1.ReplayResponse{Headline: fmt.Sprintf("headline %d", i+1)}); err != nil {
			return err
		}
	}
	return nil
}

// traffic records what stream interceptors saw: per method, its kind and
// the messages sent and received through the stream.
type traffic struct {
	mu   sync.Mutex
	seen map[string]string // full method name -> "kind sent=N recv=M"
}

func (tr *traffic) record(m *runtime.Method, sent, recv int) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if tr.seen == nil {
		tr.seen = map[string]string{}
	}
	tr.seen[m.FullName()] = fmt.Sprintf("%s sent=%d recv=%d", m.Kind(), sent, recv)
}

func (tr *traffic) get(name string) string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.seen[name]
}

// countingStream counts the messages through a stream.
type countingStream struct {
	runtime.Stream
	mu         sync.Mutex
	sent, recv int
}

func (c *countingStream) SendMsg(m proto.Message) error {
	err := c.Stream.SendMsg(m)
	if err == nil {
		c.mu.Lock()
		c.sent++
		c.mu.Unlock()
	}
	return err
}

func (c *countingStream) RecvMsg(m proto.Message) error {
	err := c.Stream.RecvMsg(m)
	if err == nil {
		c.mu.Lock()
		c.recv++
		c.mu.Unlock()
	}
	return err
}

func (c *countingStream) counts() (int, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sent, c.recv
}

// handlerSide is a server-side stream interceptor recording into tr when a
// stream's handler returns.
func handlerSide(tr *traffic) runtime.StreamInterceptor {
	return func(next runtime.StreamHandler) runtime.StreamHandler {
		return func(ctx context.Context, s *runtime.Session, open *wire.Packet, st runtime.Stream) (*wire.Packet, error) {
			info, ok := runtime.CallInfoFromContext(ctx)
			if !ok || info.Method == nil {
				return nil, runtime.NewError(runtime.CodeInternal, "no call info in a stream handler's context")
			}
			cs := &countingStream{Stream: st}
			resp, err := next(ctx, s, open, cs)
			sent, recv := cs.counts()
			tr.record(info.Method, sent, recv)
			return resp, err
		}
	}
}

// openedCounting counts the messages through a stream this side opened,
// recording the counts into tr after each.
type openedCounting struct {
	countingStream
	opened runtime.OpenedStream
	method *runtime.Method
	tr     *traffic
}

func (o *openedCounting) SendMsg(m proto.Message) error {
	err := o.countingStream.SendMsg(m)
	sent, recv := o.counts()
	o.tr.record(o.method, sent, recv)
	return err
}

func (o *openedCounting) RecvMsg(m proto.Message) error {
	err := o.countingStream.RecvMsg(m)
	sent, recv := o.counts()
	o.tr.record(o.method, sent, recv)
	return err
}

func (o *openedCounting) CloseSend() error { return o.opened.CloseSend() }
func (o *openedCounting) Close() error     { return o.opened.Close() }

// openerSide is a stream open interceptor recording into tr.
func openerSide(tr *traffic) runtime.StreamOpenInterceptor {
	return func(next runtime.StreamOpener) runtime.StreamOpener {
		return func(ctx context.Context, m *runtime.Method, req proto.Message) (runtime.OpenedStream, error) {
			if info, ok := runtime.CallInfoFromContext(ctx); !ok || !info.Outbound || info.Method != m {
				return nil, runtime.NewError(runtime.CodeInternal, "no outbound call info in an opener's context")
			}
			st, err := next(ctx, m, req)
			if err != nil {
				return nil, err
			}
			return &openedCounting{countingStream: countingStream{Stream: st}, opened: st, method: m, tr: tr}, nil
		}
	}
}

func TestGeneratedStreams(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			var serverSaw, clientSaw, serverOpened, clientServed traffic
			f := startWith(t, tr.listen(),
				runtime.WithStreamInterceptors(handlerSide(&serverSaw)),
				runtime.WithStreamOpenInterceptors(openerSide(&serverOpened)))
			c, err := runtime.Dial(context.Background(), f.addr, runtime.WithTLS(f.certs.Client),
				runtime.WithStreamOpenInterceptors(openerSide(&clientSaw)),
				runtime.WithStreamInterceptors(handlerSide(&clientServed)))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = c.Close() })
			gentestv1.RegisterEchoEventsServiceHandler(c, &eventsClient{news: make(chan string, 16)})
			sess := within(t, f.joined)
			client := gentestv1.NewEchoServiceClient(c)
			pusher := gentestv1.NewEchoEventsServicePusher(f.srv)
			ctx := context.Background()

			t.Run("server stream error", func(t *testing.T) {
				st, err := client.Count(ctx, &gentestv1.CountRequest{N: -1})
				if err != nil {
					t.Fatal(err)
				}
				_, err = st.Recv()
				if runtime.CodeOf(err) != runtime.CodeInvalidArgument || !strings.Contains(err.Error(), "negative") {
					t.Fatalf("Recv = %v, want the handler's invalid_argument", err)
				}
			})
			t.Run("server stream", func(t *testing.T) {
				st, err := client.Count(ctx, &gentestv1.CountRequest{N: 5})
				if err != nil {
					t.Fatal(err)
				}
				var got []int64
				for m, err := range st.All() {
					if err != nil {
						t.Fatal(err)
					}
					got = append(got, m.N)
				}
				if fmt.Sprint(got) != "[1 2 3 4 5]" {
					t.Fatalf("Count(5) streamed %v", got)
				}
				if _, err := st.Recv(); !errors.Is(err, io.EOF) {
					t.Fatalf("Recv after the end = %v, want io.EOF", err)
				}
			})
			t.Run("client stream", func(t *testing.T) {
				st, err := client.Sum(ctx)
				if err != nil {
					t.Fatal(err)
				}
				for i := range int64(100) { // more than the acceptor's window of 16
					if err := st.Send(&gentestv1.SumRequest{N: i + 1}); err != nil {
						t.Fatal(err)
					}
				}
				sum, err := st.CloseAndRecv()
				if err != nil || sum.Sum != 5050 {
					t.Fatalf("CloseAndRecv = %v, %v; want 5050", sum, err)
				}
			})
			t.Run("bidirectional stream", func(t *testing.T) {
				st, err := client.Shout(ctx)
				if err != nil {
					t.Fatal(err)
				}
				for _, w := range []string{"hey", "you"} {
					if err := st.Send(&gentestv1.ShoutRequest{Text: w}); err != nil {
						t.Fatal(err)
					}
					m, err := st.Recv()
					if err != nil || m.Text != strings.ToUpper(w) {
						t.Fatalf("Recv = %v, %v; want %q", m, err, strings.ToUpper(w))
					}
				}
				if err := st.CloseSend(); err != nil {
					t.Fatal(err)
				}
				if m, err := st.Recv(); !errors.Is(err, io.EOF) {
					t.Fatalf("Recv after CloseSend = %v, %v; want io.EOF", m, err)
				}
			})
			t.Run("server opens a stream to a client", func(t *testing.T) {
				st, err := pusher.OpenReplay(ctx, sess.ID(), &gentestv1.ReplayRequest{N: 3})
				if err != nil {
					t.Fatal(err)
				}
				var got []string
				for m, err := range st.All() {
					if err != nil {
						t.Fatal(err)
					}
					got = append(got, m.Headline)
				}
				if strings.Join(got, ",") != "headline 1,headline 2,headline 3" {
					t.Fatalf("Replay streamed %q", got)
				}
				if _, err := pusher.OpenReplay(ctx, sess.ID()+1000, &gentestv1.ReplayRequest{N: 1}); runtime.CodeOf(err) != runtime.CodeNotFound {
					t.Fatalf("OpenReplay to no session = %v, want not_found", err)
				}
			})
			t.Run("interceptors saw every stream", func(t *testing.T) {
				// Each method's last stream is recorded (Count's is the
				// one counting to 5).
				want := []struct {
					tr   *traffic
					name string
					saw  string
				}{
					{&serverSaw, gentestv1.EchoServiceCountFullMethod, "server_stream sent=5 recv=0"},
					{&clientSaw, gentestv1.EchoServiceCountFullMethod, "server_stream sent=0 recv=5"},
					{&serverSaw, gentestv1.EchoServiceSumFullMethod, "client_stream sent=0 recv=100"},
					// The opener receives the client-streaming response as
					// the stream's last message.
					{&clientSaw, gentestv1.EchoServiceSumFullMethod, "client_stream sent=100 recv=1"},
					{&serverSaw, gentestv1.EchoServiceShoutFullMethod, "bidi_stream sent=2 recv=2"},
					{&clientSaw, gentestv1.EchoServiceShoutFullMethod, "bidi_stream sent=2 recv=2"},
					{&clientServed, gentestv1.EchoEventsServiceReplayFullMethod, "server_stream sent=3 recv=0"},
					{&serverOpened, gentestv1.EchoEventsServiceReplayFullMethod, "server_stream sent=0 recv=3"},
				}
				// The handler side records when the handler returns, before
				// the Response that ends the stream is sent: every record
				// is in by now.
				for _, w := range want {
					if got := w.tr.get(w.name); got != w.saw {
						t.Errorf("%s: an interceptor saw %q, want %q", w.name, got, w.saw)
					}
				}
			})
		})
	}
}

// TestUnimplementedStreams: a stream method the handler does not implement
// ends with CodeUnimplemented, the session staying up.
func TestUnimplementedStreams(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			certs := testcert.New()
			srv, err := runtime.NewServer(runtime.WithTLS(certs.Server))
			if err != nil {
				t.Fatal(err)
			}
			gentestv1.RegisterEchoServiceHandler(srv, gentestv1.UnimplementedEchoServiceHandler{})
			if err := srv.Listen(context.Background(), tr.listen()); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = srv.Close() })
			c, err := runtime.Dial(context.Background(), srv.Addrs()[0], runtime.WithTLS(certs.Client))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = c.Close() })
			client := gentestv1.NewEchoServiceClient(c)
			ctx := context.Background()
			count, err := client.Count(ctx, &gentestv1.CountRequest{N: 1})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := count.Recv(); runtime.CodeOf(err) != runtime.CodeUnimplemented || !strings.Contains(err.Error(), gentestv1.EchoServiceCountFullMethod) {
				t.Fatalf("Count's Recv = %v, want unimplemented naming the method", err)
			}
			sum, err := client.Sum(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := sum.CloseAndRecv(); runtime.CodeOf(err) != runtime.CodeUnimplemented {
				t.Fatalf("Sum's CloseAndRecv = %v, want unimplemented", err)
			}
			if _, err := client.Echo(ctx, &gentestv1.EchoRequest{Text: "still here"}); runtime.CodeOf(err) != runtime.CodeUnimplemented {
				t.Fatalf("Echo after the streams = %v, want unimplemented from a live session", err)
			}
		})
	}
}
