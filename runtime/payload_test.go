package runtime_test

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/msgtrans/msgtrans-go/runtime"
	"github.com/msgtrans/msgtrans-go/wire"
)

// wantTooLarge fails unless err is a send over the limits: CodeInvalidArgument
// wrapping ErrPayloadTooLarge.
func wantTooLarge(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, runtime.ErrPayloadTooLarge) || runtime.CodeOf(err) != runtime.CodeInvalidArgument {
		t.Errorf("%s: %v; want invalid_argument wrapping ErrPayloadTooLarge", what, err)
	}
}

// TestPayloadLimitEdges: with the default limits, a packet with the largest
// payload and ext header they allow travels both ways on every transport
// (the send queue holds it); one byte more fails that send alone, with a
// size error, and the session lives on.
func TestPayloadLimitEdges(t *testing.T) {
	const max = wire.DefaultMaxPayload
	fill := func(n int) []byte { return bytes.Repeat([]byte{'m'}, n) }
	bigMethod := runtime.NewMethod("test.v1.Big.Echo", 0x0b16b16b, runtime.MethodUnary)
	for _, tc := range transportCases() {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, tc)
			f.srv.Handle(bizEcho, echo)
			atServer := make(chan *wire.Packet, 4)
			f.srv.Handle(bizNote, collect(atServer))
			// A handler whose response is one byte over the limit.
			f.srv.Handle(bizBlock, runtime.HandlerFunc(func(context.Context, *runtime.Session, *wire.Packet) (*wire.Packet, error) {
				return &wire.Packet{Payload: fill(max + 1)}, nil
			}))
			f.srv.HandleMethod(bigMethod, runtime.NewUnaryHandler(func(_ context.Context, _ *runtime.Session, req *wrapperspb.BytesValue) (*wrapperspb.BytesValue, error) {
				return req, nil
			}))
			c := f.dial()
			atClient := make(chan *wire.Packet, 4)
			c.Handle(bizNote, collect(atClient))
			sess := f.waitSessions(1)[0]
			ctx := context.Background()

			// Client to server and back: a request at the limit is echoed.
			resp, err := c.Request(ctx, wire.NewRequest(bizEcho, fill(max)))
			if err != nil {
				t.Fatalf("request of %d bytes: %v", max, err)
			}
			if len(resp.Payload) != max {
				t.Errorf("response of %d bytes, want %d", len(resp.Payload), max)
			}
			// The largest packet of all: ext header and payload at their caps.
			largest := &wire.Packet{BizType: bizNote, Ext: fill(wire.DefaultMaxExtHeader), Payload: fill(max)}
			if err := c.Send(largest); err != nil {
				t.Fatalf("client Send of the largest packet: %v", err)
			}
			if p := recv(t, atServer); len(p.Payload) != max || len(p.Ext) != wire.DefaultMaxExtHeader {
				t.Errorf("server got %d+%d bytes, want %d+%d", len(p.Ext), len(p.Payload), wire.DefaultMaxExtHeader, max)
			}
			if err := f.srv.Send(sess.ID(), largest); err != nil {
				t.Fatalf("server Send of the largest packet: %v", err)
			}
			if p := recv(t, atClient); len(p.Payload) != max {
				t.Errorf("client got %d bytes, want %d", len(p.Payload), max)
			}

			// One byte over: that send fails, nothing else does.
			_, err = c.Request(ctx, wire.NewRequest(bizEcho, fill(max+1)))
			wantTooLarge(t, "client Request over the limit", err)
			wantTooLarge(t, "client Send over the limit", c.Send(wire.NewOneWay(bizNote, fill(max+1))))
			wantTooLarge(t, "client Send, ext over the limit", c.Send(&wire.Packet{BizType: bizNote, Ext: fill(wire.DefaultMaxExtHeader + 1)}))
			wantTooLarge(t, "server Send over the limit", f.srv.Send(sess.ID(), wire.NewOneWay(bizNote, fill(max+1))))
			_, err = f.srv.Push(context.Background(), runtime.ToAll(), wire.NewOneWay(bizNote, fill(max+1)))
			wantTooLarge(t, "server Broadcast over the limit", err)
			_, err = sess.Request(ctx, wire.NewRequest(bizEcho, fill(max+1)))
			wantTooLarge(t, "server Request over the limit", err)
			_, err = runtime.CallUnary[wrapperspb.BytesValue](ctx, c, bigMethod, wrapperspb.Bytes(fill(max)))
			wantTooLarge(t, "typed call whose message encodes over the limit", err)

			// A handler's response over the limit reaches the caller as an
			// error, not as a wait for its deadline.
			_, err = c.Request(ctx, wire.NewRequest(bizBlock, nil))
			if runtime.CodeOf(err) != runtime.CodeResourceExhausted {
				t.Errorf("request whose response is over the limit: %v, want resource_exhausted", err)
			}

			// The session is still there, both ways.
			if _, err := c.Request(ctx, wire.NewRequest(bizEcho, []byte("still there?"))); err != nil {
				t.Errorf("request after the refused sends: %v", err)
			}
			if err := f.srv.Send(sess.ID(), wire.NewText(bizNote, "still there")); err != nil {
				t.Errorf("server Send after the refused sends: %v", err)
			}
			if p := recv(t, atClient); p.Text() != "still there" {
				t.Errorf("client got %q", p.Text())
			}
			if err := sess.Err(); err != nil {
				t.Errorf("the session closed: %v", err)
			}
		})
	}
}

// TestSendQueueMustHoldLargestPacket: a send queue smaller than the largest
// packet the limits allow is refused at construction, naming both options.
func TestSendQueueMustHoldLargestPacket(t *testing.T) {
	_, err := runtime.NewServer(runtime.WithSendQueueBytes(wire.DefaultMaxPayload))
	if err == nil || !bytes.Contains([]byte(err.Error()), []byte("WithSendQueueBytes")) {
		t.Errorf("NewServer with a queue of MaxPayload bytes: %v; want an error naming WithSendQueueBytes", err)
	}
	lim := wire.Limits{MaxPayload: 64 << 10, MaxExtHeader: 1 << 10}
	if _, err := runtime.NewServer(runtime.WithLimits(lim), runtime.WithSendQueueBytes(lim.MaxPacketSize())); err != nil {
		t.Errorf("a queue of exactly the largest packet: %v", err)
	}
}
