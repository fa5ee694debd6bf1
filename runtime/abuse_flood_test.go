package runtime_test

import (
	"bytes"
	"compress/zlib"
	"context"
	"errors"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/msgtrans/msgtrans-go/runtime"
	"github.com/msgtrans/msgtrans-go/wire"
)

// Floods at full speed, from one connection, of every kind of packet: each
// either costs the server next to nothing or closes the connection.

// packetBytes encodes p, failing the test on error.
func packetBytes(t testing.TB, p *wire.Packet) []byte {
	t.Helper()
	b, err := wire.AppendPacket(nil, p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// zlibBomb returns a zlib stream of n zero bytes (about n/1000 bytes long).
func zlibBomb(t testing.TB, n int) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, _ := zlib.NewWriterLevel(&buf, zlib.BestCompression)
	zeros := make([]byte, 64<<10)
	for n > 0 {
		k := min(n, len(zeros))
		_, _ = w.Write(zeros[:k])
		n -= k
	}
	_ = w.Close()
	return buf.Bytes()
}

// flood writes frame over and over, as fast as the connection takes it,
// until the server closes the connection or d passes; it reports whether
// the server closed it.
func flood(p rawPeer, frame []byte, d time.Duration) bool {
	deadline := time.Now().Add(d)
	n := max(1, 16<<10/len(frame))
	batch := bytes.Repeat(frame, n)
	for time.Now().Before(deadline) {
		var err error
		switch p := p.(type) {
		case streamPeer:
			err = p.WriteFrame(batch, len(batch))
		case wsPeer:
			err = p.WriteFrames(frame, n)
		default:
			err = p.WriteFrame(frame, len(frame))
		}
		if err != nil {
			return true
		}
	}
	return false
}

// TestAbuseFlood: one connection sends a kind of packet as fast as it can.
// One-way packets, responses to nothing, control packets and WebSocket
// ping frames all count toward the rate limit (or the ping-flood rule), so
// the flood is closed within moments rather than dropped forever; a second
// hello is a protocol error; compressed payloads inflate only within the
// session's budget.
func TestAbuseFlood(t *testing.T) {
	hello := func(t *testing.T) []byte { return controlBytes(t, wire.ControlHello, []byte{0}) }
	tests := []struct {
		name  string
		ws    bool // WebSocket only
		frame func(t *testing.T) []byte
		ping  bool // WebSocket ping frames instead of packets
		pongs bool // WebSocket pong frames, framed by the test, instead of packets
		want  error
	}{
		{name: "one-way", frame: func(t *testing.T) []byte {
			return packetBytes(t, wire.NewText(bizNote, "flood"))
		}, want: runtime.ErrRateLimited},
		{name: "responses to nothing", frame: func(t *testing.T) []byte {
			return packetBytes(t, wire.NewResponse(7, bizEcho, []byte("flood")))
		}, want: runtime.ErrRateLimited},
		{name: "unknown control packets", frame: func(t *testing.T) []byte {
			return controlBytes(t, wire.ControlKind(99), nil)
		}, want: runtime.ErrRateLimited},
		{name: "pongs", frame: func(t *testing.T) []byte {
			return controlBytes(t, wire.ControlPong, nil)
		}, want: runtime.ErrRateLimited},
		{name: "hellos", frame: hello, want: wire.ErrProtocol},
		{name: "pings", frame: func(t *testing.T) []byte {
			return controlBytes(t, wire.ControlPing, nil)
		}, want: runtime.ErrPingFlood},
		{name: "websocket ping frames", ws: true, ping: true, want: runtime.ErrPingFlood},
		{name: "websocket pong frames", ws: true, pongs: true, want: runtime.ErrRateLimited},
		{name: "decompression bombs", frame: func(t *testing.T) []byte {
			// 10 MiB each, to a handler: inflated until the budget is spent.
			return packetBytes(t, &wire.Packet{BizType: bizNote, Compression: wire.CompressionZlib, Payload: zlibBomb(t, 10<<20)})
		}, want: runtime.ErrRateLimited},
	}
	for _, tc := range abuseCases() {
		for _, tt := range tests {
			if tt.ws && tc.name != "ws" {
				continue
			}
			t.Run(tc.name+"/"+tt.name, func(t *testing.T) {
				settled(t)
				f := newFixture(t, tc)
				f.srv.Handle(bizEcho, echo)
				var notes atomic.Int64
				f.srv.Handle(bizNote, runtime.HandlerFunc(func(context.Context, *runtime.Session, *wire.Packet) (*wire.Packet, error) {
					notes.Add(1)
					return nil, nil
				}))
				p := tc.raw(t, f.addr, f.certs.Client)
				defer p.Close()
				if err := p.WriteFrame(hello(t), 0); err != nil {
					t.Fatal(err)
				}
				f.waitSessions(1)
				start := time.Now()
				var closed bool
				switch {
				case tt.ping:
					wp := p.(wsPeer)
					for i := 0; i < 1e6 && !closed; i++ {
						closed = wp.c.WriteControl(websocket.PingMessage, []byte("p"), time.Now().Add(time.Second)) != nil
					}
				case tt.pongs:
					// Unsolicited pongs, 2,048 frames a write: FIN and the
					// pong opcode, the mask bit and a one-byte length, a zero
					// masking key, the payload.
					batch := bytes.Repeat([]byte{0x8a, 0x81, 0, 0, 0, 0, 'p'}, 2048)
					conn := p.(wsPeer).c.UnderlyingConn()
					for deadline := time.Now().Add(20 * time.Second); !closed && time.Now().Before(deadline); {
						_, err := conn.Write(batch)
						closed = err != nil
					}
				default:
					closed = flood(p, tt.frame(t), 20*time.Second)
				}
				err := f.waitEvent(runtime.ConnectionClosed).Err
				t.Logf("closed after %v (flooder saw it: %v): %v", time.Since(start).Round(time.Millisecond), closed, err)
				if !errors.Is(err, tt.want) {
					t.Errorf("closed with %v, want %v", err, tt.want)
				}
				f.healthy()
			})
		}
	}
}

// TestAbuseBombsNobodyReads: compressed payloads that nothing would read (a
// response to no pending request, a one-way packet with no handler) are
// never inflated: a stream of 10 MiB bombs costs the server next to no CPU.
func TestAbuseBombsNobodyReads(t *testing.T) {
	for _, tc := range abuseCases() {
		t.Run(tc.name, func(t *testing.T) {
			settled(t)
			f := newFixture(t, tc)
			f.srv.Handle(bizEcho, echo)
			p := tc.raw(t, f.addr, f.certs.Client)
			defer p.Close()
			bomb := zlibBomb(t, 10<<20)
			frames := [][]byte{
				packetBytes(t, &wire.Packet{Type: wire.Response, MessageID: 9, Compression: wire.CompressionZlib, Payload: bomb}),
				packetBytes(t, &wire.Packet{BizType: 200, Compression: wire.CompressionZlib, Payload: bomb}),
			}
			before := cpuTime(t)
			const n = 200 // 2 GiB, were they inflated: several seconds of CPU
			for i := range n {
				if err := p.WriteFrame(frames[i%2], 0); err != nil {
					t.Fatalf("write %d: %v", i, err)
				}
			}
			f.healthy() // every bomb has been read by now
			spent := cpuTime(t) - before
			t.Logf("%d bombs of 10 MiB read in %v of CPU", n, spent)
			if spent > 2*time.Second {
				t.Errorf("reading %d bombs nobody reads took %v of CPU: were they inflated?", n, spent)
			}
		})
	}
}

// cpuTime returns the CPU time the process has used.
func cpuTime(t *testing.T) time.Duration {
	t.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestAbusePeerGoneWhileHandlersWait: a peer fills its request slots with
// requests whose handlers wait for their context (asking for the longest
// deadline the wire can carry), sends more, and goes away. Its session
// ends at once, its handlers are cancelled, and its host's place under the
// per-host cap is free for the next connection.
func TestAbusePeerGoneWhileHandlersWait(t *testing.T) {
	for _, tc := range transportCases() {
		if tc.name == "mem" {
			continue // no per-host cap: mem peers have no address
		}
		t.Run(tc.name, func(t *testing.T) {
			settled(t)
			f := newFixture(t, tc, runtime.WithMaxConnectionsPerIP(1))
			f.srv.Handle(bizEcho, echo)
			var waiting, ended atomic.Int64
			f.srv.Handle(bizBlock, runtime.HandlerFunc(func(ctx context.Context, _ *runtime.Session, _ *wire.Packet) (*wire.Packet, error) {
				waiting.Add(1)
				<-ctx.Done()
				ended.Add(1)
				return nil, ctx.Err()
			}))
			p := tc.raw(t, f.addr, f.certs.Client)
			ext := wire.AppendExt(nil, &wire.Ext{TimeoutMS: 1<<32 - 1})
			for i := range runtime.DefaultMaxInFlight + 4 {
				req := packetBytes(t, &wire.Packet{Type: wire.Request, BizType: bizBlock, MessageID: uint32(i + 1), Flags: wire.FlagHasRouteTag, Ext: ext})
				if err := p.WriteFrame(req, len(req)); err != nil {
					t.Fatal(err)
				}
			}
			f.waitSessions(1)
			for waiting.Load() < runtime.DefaultMaxInFlight {
				time.Sleep(time.Millisecond) // polling for the handlers to start
			}
			start := time.Now()
			_ = p.Close()
			f.waitEvent(runtime.ConnectionClosed)
			took := time.Since(start)
			if n := ended.Load(); n != waiting.Load() {
				t.Errorf("%d handlers ended, %d started", n, waiting.Load())
			}
			t.Logf("the session ended %v after its peer left", took.Round(time.Millisecond))
			if took > 5*time.Second {
				t.Errorf("the session outlived its peer by %v", took)
			}
			f.healthy() // the host's one place is free again
		})
	}
}

// TestMaxHandlerTimeout: a handler's deadline is the caller's, capped by
// the server's maximum whatever the caller asks, and the cap when the
// caller sends none.
func TestMaxHandlerTimeout(t *testing.T) {
	const limit = 300 * time.Millisecond
	f := newFixture(t, transportCases()[1], runtime.WithMaxHandlerTimeout(limit))
	left := make(chan time.Duration, 1)
	f.srv.Handle(bizBlock, runtime.HandlerFunc(func(ctx context.Context, _ *runtime.Session, p *wire.Packet) (*wire.Packet, error) {
		dl, ok := ctx.Deadline()
		if !ok {
			left <- -1
		} else {
			left <- time.Until(dl)
		}
		return p.Reply(nil), nil
	}))
	p := tcpRaw(t, f.addr, nil)
	defer p.Close()
	tests := []struct {
		name      string
		timeoutMS uint64
		want      time.Duration
	}{
		{"none sent", 0, limit},
		{"the longest the wire carries", 1<<32 - 1, limit},
		{"shorter than the cap", 100, 100 * time.Millisecond},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := &wire.Packet{Type: wire.Request, BizType: bizBlock, MessageID: uint32(i + 1)}
			if tt.timeoutMS != 0 {
				req.Flags, req.Ext = wire.FlagHasRouteTag, wire.AppendExt(nil, &wire.Ext{TimeoutMS: tt.timeoutMS})
			}
			if err := p.WriteFrame(packetBytes(t, req), 0); err != nil {
				t.Fatal(err)
			}
			got := <-left
			if got <= 0 || got > tt.want {
				t.Errorf("handler deadline %v away, want at most %v", got, tt.want)
			}
		})
	}
}
