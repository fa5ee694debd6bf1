package chatclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"

	chatv1 "github.com/msgtrans/msgtrans-go/examples/chat/gen/chat/v1"
	"github.com/msgtrans/msgtrans-go/runtime"
)

// newClient returns a runtime client for cfg, not yet connected, whose
// connection events go to onEvent.
func newClient(cfg Config, onEvent func(runtime.Event)) (*runtime.Client, error) {
	opts := []runtime.ClientOption{
		runtime.WithLogger(cfg.Logger),
		runtime.WithEventHandler(onEvent),
		runtime.WithReconnect(cfg.Reconnect),
	}
	if cfg.TLS != nil {
		opts = append(opts, runtime.WithTLS(cfg.TLS))
	}
	if cfg.ConnectTimeout > 0 {
		opts = append(opts, runtime.WithConnectTimeout(cfg.ConnectTimeout))
	}
	addrs := strings.Split(cfg.Server, ",")
	for i := range addrs {
		addrs[i] = strings.TrimSpace(addrs[i])
	}
	if len(addrs) > 1 {
		opts = append(opts, runtime.WithAddrs(addrs[1:]...))
	}
	rc, err := runtime.NewClient(addrs[0], opts...)
	if err != nil {
		return nil, fmt.Errorf("chatclient: %w", err)
	}
	return rc, nil
}

// watcher is the client in watch mode: it serves only the server's Ping
// (the server drops clients that do not answer) and prints the room's
// events from a Watch stream.
type watcher struct {
	chatv1.UnimplementedChatEventsServiceHandler
	out         *printer
	reconnected chan struct{}
	last        msgID // the last message printed
	printed     bool  // whether any message was
}

// Ping answers the server's liveness check.
func (w *watcher) Ping(_ context.Context, req *chatv1.PingRequest) (*chatv1.PingResponse, error) {
	return &chatv1.PingResponse{Seq: req.Seq}, nil
}

// watch is [Run] with cfg.Watch set.
func watch(ctx context.Context, cfg Config, stdout io.Writer) error {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	w := &watcher{out: newPrinter(stdout), reconnected: make(chan struct{}, 1)}
	var closing atomic.Bool
	rc, err := newClient(cfg, func(e runtime.Event) {
		switch e.Kind {
		case runtime.ConnectionClosed:
			if !closing.Load() {
				w.out.notice("connection lost (%s); reconnecting", reasonText(e.Err))
			}
		case runtime.Reconnected:
			select {
			case w.reconnected <- struct{}{}:
			default:
			}
		}
	})
	if err != nil {
		return err
	}
	chatv1.RegisterChatEventsServiceHandler(rc, w)
	if err := rc.Connect(ctx); err != nil {
		_ = rc.Close()
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("chatclient: connect to %s: %w", cfg.Server, err)
	}
	defer func() {
		closing.Store(true)
		_ = rc.Close()
	}()
	api := chatv1.NewChatServiceClient(rc)
	w.out.notice("watching %s (read-only; Ctrl-C ends)", cfg.Watch)
	for {
		err := w.watchOnce(ctx, api, cfg.Watch)
		switch {
		case ctx.Err() != nil:
			return nil
		case w.out.Err() != nil:
			return fmt.Errorf("chatclient: write output: %w", w.out.Err())
		case runtime.CodeOf(err) == runtime.CodeResourceExhausted:
			// Dropped for reading too slowly: watch again at once.
			w.out.notice("fell behind the room (%s); watching again", errorText(err))
			continue
		case runtime.CodeOf(err) == runtime.CodeDeadlineExceeded:
			continue // the server's cap on a stream's life: watch on

		case !unavailable(err):
			return fmt.Errorf("chatclient: watch %s: %s", cfg.Watch, errorText(err))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-rc.Done():
			return fmt.Errorf("chatclient: %w", rc.Err())
		case <-w.reconnected:
			w.out.notice("reconnected to %s", rc.Addr())
		}
	}
}

// watchOnce watches the room until the stream ends, and returns why.
func (w *watcher) watchOnce(ctx context.Context, api *chatv1.ChatServiceClient, room string) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st, err := api.Watch(ctx, &chatv1.WatchRequest{Room: room})
	if err != nil {
		return err
	}
	for {
		ev, err := st.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return runtime.NewError(runtime.CodeUnavailable, "the watch ended")
			}
			return err
		}
		switch e := ev.Event.(type) {
		case *chatv1.WatchResponse_Watching:
			w.out.line(formatMembers(e.Watching.Room, e.Watching.Members))
			for _, m := range w.unseen(e.Watching.History) {
				w.note(m)
				w.out.line(formatHistory(m))
			}
		case *chatv1.WatchResponse_Message:
			w.note(e.Message)
			w.out.line(formatMessage(e.Message))
		case *chatv1.WatchResponse_Joined:
			w.out.line(formatJoined(e.Joined.Room, e.Joined.Nick))
		case *chatv1.WatchResponse_Left:
			w.out.line(formatLeft(e.Left.Room, e.Left.Nick))
		case *chatv1.WatchResponse_NickChanged:
			w.out.line(formatNickChanged(e.NickChanged.PreviousNick, e.NickChanged.Nick))
		}
		if w.out.Err() != nil {
			return w.out.Err()
		}
	}
}

// unseen returns the part of history after the last message printed, or
// all of it when that message is not in it (a new watch, or a restarted
// server).
func (w *watcher) unseen(history []*chatv1.ChatMessage) []*chatv1.ChatMessage {
	if w.printed {
		for i, m := range history {
			if idOf(m) == w.last {
				return history[i+1:]
			}
		}
	}
	return history
}

func (w *watcher) note(m *chatv1.ChatMessage) { w.last, w.printed = idOf(m), true }
