package runtime_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/msgtrans/msgtrans-go/runtime"
	"github.com/msgtrans/msgtrans-go/wire"
)

func TestInterceptors(t *testing.T) {
	var order []string
	trace := func(name string) runtime.Interceptor {
		return func(next runtime.Handler) runtime.Handler {
			return runtime.HandlerFunc(func(ctx context.Context, s *runtime.Session, p *wire.Packet) (*wire.Packet, error) {
				order = append(order, name+" in")
				resp, err := next.ServePacket(ctx, s, p)
				order = append(order, name+" out")
				return resp, err
			})
		}
	}
	var logs syncBuffer
	deny := runtime.Authorize(func(_ context.Context, _ *runtime.Session, p *wire.Packet) error {
		if p.Text() == "forbidden" {
			return errors.New("not for you")
		}
		return nil
	})
	recovery := runtime.Recovery(func(_ context.Context, _ *runtime.Session, _ *wire.Packet, r any) error {
		return runtime.Errorf(runtime.CodeAborted, "recovered: %v", r)
	})
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	f := newFixture(t, transportCases()[0], runtime.WithInterceptors(trace("outer"), trace("inner"), runtime.Logging(logger), deny, recovery))
	f.srv.Handle(bizEcho, runtime.HandlerFunc(func(_ context.Context, _ *runtime.Session, p *wire.Packet) (*wire.Packet, error) {
		if p.Text() == "panic" {
			panic("boom")
		}
		order = append(order, "handler")
		return p.Reply(p.Payload), nil
	}))
	c := f.dial()
	ctx := context.Background()

	if resp, err := c.Request(ctx, wire.NewRequest(bizEcho, []byte("hi"))); err != nil || resp.Text() != "hi" {
		t.Fatalf("Request = %v, %v", resp, err)
	}
	if got, want := strings.Join(order, ", "), "outer in, inner in, handler, inner out, outer out"; got != want {
		t.Errorf("order: %s, want %s", got, want)
	}
	if _, err := c.Request(ctx, wire.NewRequest(bizEcho, []byte("forbidden"))); runtime.CodeOf(err) != runtime.CodePermissionDenied {
		t.Errorf("Authorize: %v, want permission_denied", err)
	}
	var e *runtime.Error
	if _, err := c.Request(ctx, wire.NewRequest(bizEcho, []byte("panic"))); !errors.As(err, &e) || e.Code != runtime.CodeAborted || e.Message != "recovered: boom" {
		t.Errorf("Recovery: %v, want aborted: recovered: boom", err)
	}
	out := logs.String()
	for _, want := range []string{"biz_type=1", "code=ok", "code=permission_denied", "code=aborted"} {
		if !strings.Contains(out, want) {
			t.Errorf("the log lacks %q:\n%s", want, out)
		}
	}
}

// TestClientInterceptors: a client's interceptors run around the handlers
// it registers, for what the server pushes and for the server's requests.
func TestClientInterceptors(t *testing.T) {
	f := newFixture(t, transportCases()[0])
	seen := make(chan string, 4)
	mark := func(next runtime.Handler) runtime.Handler {
		return runtime.HandlerFunc(func(ctx context.Context, s *runtime.Session, p *wire.Packet) (*wire.Packet, error) {
			seen <- p.Type.String() + " " + p.Text()
			return next.ServePacket(ctx, s, p)
		})
	}
	deny := runtime.Authorize(func(_ context.Context, _ *runtime.Session, p *wire.Packet) error {
		if p.Text() == "forbidden" {
			return errors.New("the client refuses")
		}
		return nil
	})
	c := f.dial(runtime.WithInterceptors(mark, deny))
	notes := make(chan *wire.Packet, 1)
	c.Handle(bizNote, collect(notes))
	c.Handle(bizEcho, echo)
	sess := f.waitSessions(1)[0]

	if err := sess.Send(wire.NewText(bizNote, "pushed")); err != nil {
		t.Fatal(err)
	}
	recv(t, notes)
	ctx := context.Background()
	if resp, err := sess.Request(ctx, wire.NewRequest(bizEcho, []byte("asked"))); err != nil || resp.Text() != "asked" {
		t.Fatalf("server's request = %v, %v", resp, err)
	}
	if _, err := sess.Request(ctx, wire.NewRequest(bizEcho, []byte("forbidden"))); runtime.CodeOf(err) != runtime.CodePermissionDenied {
		t.Errorf("server's forbidden request: %v, want permission_denied", err)
	}
	for _, want := range []string{"oneway pushed", "request asked", "request forbidden"} {
		if got := <-seen; got != want {
			t.Errorf("interceptor saw %q, want %q", got, want)
		}
	}
}

// TestLoggingNamesTypedMethods: the Logging interceptor names a typed call
// by its method's full name (from the call's CallInfo), with the type and
// the status, and a failing one at Warn.
func TestLoggingNamesTypedMethods(t *testing.T) {
	var logs syncBuffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	f := newFixture(t, transportCases()[0], runtime.WithInterceptors(runtime.Logging(logger)))
	m := runtime.NewMethod("logging.v1.L.Echo", 0x4c4f47, runtime.MethodUnary)
	f.srv.HandleMethod(m, runtime.NewUnaryHandler(func(_ context.Context, _ *runtime.Session, req *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
		if req.GetValue() == "fail" {
			return nil, runtime.Errorf(runtime.CodeFailedPrecondition, "not now")
		}
		return req, nil
	}))
	c := f.dial()
	ctx := context.Background()
	if _, err := runtime.CallUnary[wrapperspb.StringValue](ctx, c, m, wrapperspb.String("hi")); err != nil {
		t.Fatal(err)
	}
	if _, err := runtime.CallUnary[wrapperspb.StringValue](ctx, c, m, wrapperspb.String("fail")); runtime.CodeOf(err) != runtime.CodeFailedPrecondition {
		t.Fatalf("failing call: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d log lines, want 2:\n%s", len(lines), logs.String())
	}
	for i, want := range []struct{ level, code string }{{"DEBUG", "ok"}, {"WARN", "failed_precondition"}} {
		for _, part := range []string{"level=" + want.level, `msg="msgtrans: handled"`, "method=logging.v1.L.Echo", "type=request", "code=" + want.code} {
			if !strings.Contains(lines[i], part) {
				t.Errorf("line %d lacks %s: %s", i+1, part, lines[i])
			}
		}
		if strings.Contains(lines[i], "biz_type=") {
			t.Errorf("line %d names the biz_type of a typed call: %s", i+1, lines[i])
		}
	}
}
