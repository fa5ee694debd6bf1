package runtime

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/msgtrans/msgtrans-go/wire"
)

// Streams' queues, watched from the messages a stream queues (see
// testHookQueued): the fuzz targets of stream frames check that none ever
// holds more than its window.
var (
	queuedMax  atomic.Int64 // the most messages one stream held unread
	overWindow atomic.Int64 // the times a stream held more than its window
)

// onWait, when set, is called by testHookWait.
var onWait atomic.Pointer[func(*stream)]

func init() {
	testHookWait = func(st *stream) {
		if f := onWait.Load(); f != nil {
			(*f)(st)
		}
	}
	testHookQueued = func(queued, window int) {
		for {
			m := queuedMax.Load()
			if int64(queued) <= m || queuedMax.CompareAndSwap(m, int64(queued)) {
				break
			}
		}
		if queued > window {
			overWindow.Add(1)
		}
	}
}

// StreamQueues reports the most messages one stream has held unread so
// far in this process, and how many times a stream held more than its
// window.
func StreamQueues() (most, overruns int64) { return queuedMax.Load(), overWindow.Load() }

// TestStreamAcceptedThenClosed: the session closes (failAll) after a
// stream was accepted and before its handler looked at its context, with
// nothing but time ordering the two, as when a connection drops just
// after an opening request. Run with -race: the stream's context and
// cancel func must be set before the stream is in the session's table,
// where failAll finds it and cancels it.
func TestStreamAcceptedThenClosed(t *testing.T) {
	cfg, err := newServerConfig(nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg.logger = slog.New(slog.DiscardHandler)
	s := &Session{cfg: cfg, ids: new(atomic.Uint32), closed: true} // closed: the answer is not sent
	s.ctx, s.cancel = context.WithCancel(context.Background())
	release := make(chan struct{})
	var handlerErr error
	h := func(ctx context.Context, _ *Session, _ *wire.Packet, _ Stream) (*wire.Packet, error) {
		<-release
		handlerErr = ctx.Err()
		return nil, nil
	}
	m := NewMethod("test.v1.Race.Open", 0x7ace, MethodBidiStream)
	accepted := make(chan error, 1)
	go func() {
		accepted <- s.acceptStream(&inbound{p: wire.Packet{Type: wire.Request, MessageID: 1}}, wire.Ext{}, h, m)
	}()
	time.Sleep(50 * time.Millisecond) // only time orders the accept and the close
	s.streams.failAll(ErrClosed)      // as closeWith does
	s.cancel()
	close(release)
	if err := <-accepted; err != nil {
		t.Fatal(err)
	}
	s.wg.Wait()
	if handlerErr == nil {
		t.Error("the handler's context did not end with the session")
	}
}

// TestStreamEndedAsWaitBegins: a stream that ends just as a Recv or Send
// starts to wait (the Response arrives, the connection closes) has both
// its end and its context's end ready when the wait selects; the answer
// must be the stream's own, whichever select picks: io.EOF for a clean
// end, else the stream's status, never the context's canceled. (Found by
// FuzzStreamFrames: a well-behaved caller's server stream, ended by its
// Response, now and then read canceled.) Each case runs 64 times, as
// select picks among ready cases at random.
func TestStreamEndedAsWaitBegins(t *testing.T) {
	cfg, err := newServerConfig(nil)
	if err != nil {
		t.Fatal(err)
	}
	gone := NewError(CodeUnavailable, "connection closed")
	cases := []struct {
		name string
		why  error // the stream's end
		wait func(st *stream) error
		want error
	}{
		{"Recv, a clean end", nil, func(st *stream) error { return st.RecvMsg(nil) }, io.EOF},
		{"Recv, the connection closed", gone, func(st *stream) error { return st.RecvMsg(nil) }, gone},
		{"Send, the connection closed", gone, func(st *stream) error { return st.SendMsg(wrapperspb.Int64(1)) }, gone},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for range 64 {
				st := newStream(&Session{cfg: cfg}, 1, false, nil, 16, 0) // no credit: Send waits
				st.ctx, st.cancel = context.WithCancel(context.Background())
				end := func(w *stream) {
					if w == st {
						st.end(tc.why, nil)
					}
				}
				onWait.Store(&end)
				err := tc.wait(st)
				onWait.Store(nil)
				if !errors.Is(err, tc.want) {
					t.Fatalf("got %v, want %v", err, tc.want)
				}
			}
		})
	}
}
