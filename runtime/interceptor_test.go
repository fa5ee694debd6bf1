package runtime_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/msgtrans/msgtrans-go/runtime"
)

func TestInterceptors(t *testing.T) {
	var order []string
	trace := func(name string) runtime.Interceptor {
		return func(next runtime.Handler) runtime.Handler {
			return runtime.HandlerFunc(func(ctx context.Context, s *runtime.Session, p *runtime.Packet) (*runtime.Packet, error) {
				order = append(order, name+" in")
				resp, err := next.ServePacket(ctx, s, p)
				order = append(order, name+" out")
				return resp, err
			})
		}
	}
	var logs syncBuffer
	deny := runtime.Authorize(func(_ context.Context, _ *runtime.Session, p *runtime.Packet) error {
		if p.Text() == "forbidden" {
			return errors.New("not for you")
		}
		return nil
	})
	recovery := runtime.Recovery(func(_ context.Context, _ *runtime.Session, _ *runtime.Packet, r any) error {
		return runtime.Errorf(runtime.CodeAborted, "recovered: %v", r)
	})
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	f := newFixture(t, transportCases()[0], runtime.WithInterceptors(trace("outer"), trace("inner"), runtime.Logging(logger), deny, recovery))
	f.srv.Handle(bizEcho, runtime.HandlerFunc(func(_ context.Context, _ *runtime.Session, p *runtime.Packet) (*runtime.Packet, error) {
		if p.Text() == "panic" {
			panic("boom")
		}
		order = append(order, "handler")
		return p.Reply(p.Payload), nil
	}))
	c := f.dial()
	ctx := context.Background()

	if resp, err := c.Request(ctx, runtime.NewRequest(bizEcho, []byte("hi"))); err != nil || resp.Text() != "hi" {
		t.Fatalf("Request = %v, %v", resp, err)
	}
	if got, want := strings.Join(order, ", "), "outer in, inner in, handler, inner out, outer out"; got != want {
		t.Errorf("order: %s, want %s", got, want)
	}
	if _, err := c.Request(ctx, runtime.NewRequest(bizEcho, []byte("forbidden"))); runtime.CodeOf(err) != runtime.CodePermissionDenied {
		t.Errorf("Authorize: %v, want permission_denied", err)
	}
	var e *runtime.Error
	if _, err := c.Request(ctx, runtime.NewRequest(bizEcho, []byte("panic"))); !errors.As(err, &e) || e.Code != runtime.CodeAborted || e.Message != "recovered: boom" {
		t.Errorf("Recovery: %v, want aborted: recovered: boom", err)
	}
	out := logs.String()
	for _, want := range []string{"biz_type=1", "code=ok", "code=permission_denied", "code=aborted"} {
		if !strings.Contains(out, want) {
			t.Errorf("the log lacks %q:\n%s", want, out)
		}
	}
}
