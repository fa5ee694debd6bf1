package runtime_test

import (
	"bytes"
	"compress/zlib"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	goruntime "runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/msgtrans/msgtrans-go/runtime"
	"github.com/msgtrans/msgtrans-go/transports/mem"
	"github.com/msgtrans/msgtrans-go/wire"
)

// The stream state machine, fuzzed from both ends. A script of frames
// decoded from the fuzzer's bytes is played by a raw peer: against a real
// server by FuzzStreamFrames, against a real client's streams by
// FuzzStreamOpener. Whatever the script, nothing panics or hangs, no stream
// queues more messages than its window (see runtime.StreamQueues), neither
// side sends a stream more messages than the other granted it, every
// goroutine of the connection exits when it closes, and the server goes on
// serving a well-behaved client.

// script reads a fuzzer's bytes as the parameters of a frame script;
// past the end it reads zeros.
type script struct{ b []byte }

func (s *script) done() bool { return len(s.b) == 0 }

func (s *script) byte() byte {
	if len(s.b) == 0 {
		return 0
	}
	c := s.b[0]
	s.b = s.b[1:]
	return c
}

func (s *script) u32() uint32 {
	var b [4]byte
	for i := range b {
		b[i] = s.byte()
	}
	return binary.BigEndian.Uint32(b[:])
}

// bytes reads a length byte and up to that many bytes.
func (s *script) bytes() []byte {
	n := min(int(s.byte()), len(s.b))
	out := s.b[:n:n]
	s.b = s.b[n:]
	return out
}

// id reads a stream id: mostly one of four (1-4), so that frames meet
// the streams they name; from 0xF8 on, any id (the next four bytes).
func (s *script) id() uint32 {
	if c := s.byte(); c < 0xF8 {
		return uint32(c%4) + 1
	}
	return s.u32()
}

// count reads a window or credit: none, one, a few, the most a uint32
// holds, or any.
func (s *script) count() uint32 {
	switch c := s.byte(); c % 5 {
	case 0:
		return 0
	case 1:
		return 1
	case 2:
		return uint32(c)
	case 3:
		return 0xFFFFFFFF
	default:
		return s.u32()
	}
}

// The script's operations; an operation byte is taken modulo opCount.
const (
	opOpen      = iota // method, id, flags, window, timeout, request
	opMessage          // id, flags, payload
	opHalfClose        // id, flags
	opCredit           // id, flags, credit
	opCancel           // id, flags, code, message
	opResponse         // id, code, payload: a Response from the opener's side
	opBurst            // id, n: n%48 messages at once
	opClose            // the connection closes here
	opSync             // a unary request, waiting for its answer
	opBadFrame         // a stream field in a Request: a protocol error
	opCount
)

// Flag bits of frames.
const (
	flagFromAcceptor = 1 << iota // the from-acceptor bit (wrong from an opener)
	flagCompressed               // the payload zlib-compressed
	flagTwice                    // the frame sent twice
)

// The seed scripts' builder: each method appends one operation, in the
// encoding script reads.
type seedScript []byte

func (s seedScript) open(method, id, flags, window, timeout byte, req []byte) seedScript {
	return append(append(s, opOpen, method, id, flags, window, timeout, byte(len(req))), req...)
}
func (s seedScript) openID(method byte, id uint32, window byte, req []byte) seedScript {
	s = append(s, opOpen, method, 0xF8)
	s = binary.BigEndian.AppendUint32(s, id)
	return append(append(s, 0, window, 0, byte(len(req))), req...)
}
func (s seedScript) message(id, flags byte, payload []byte) seedScript {
	return append(append(s, opMessage, id, flags, byte(len(payload))), payload...)
}
func (s seedScript) halfClose(id, flags byte) seedScript { return append(s, opHalfClose, id, flags) }
func (s seedScript) credit(id, flags, credit byte) seedScript {
	return append(s, opCredit, id, flags, credit)
}
func (s seedScript) cancel(id, flags, code byte, msg string) seedScript {
	return append(append(s, opCancel, id, flags, code, byte(len(msg))), msg...)
}
func (s seedScript) response(id, code byte, payload []byte) seedScript {
	return append(append(s, opResponse, id, code, byte(len(payload))), payload...)
}
func (s seedScript) burst(id, n byte) seedScript { return append(s, opBurst, id, n) }
func (s seedScript) close() seedScript           { return append(s, opClose) }
func (s seedScript) sync() seedScript            { return append(s, opSync) }
func (s seedScript) badFrame(id byte) seedScript { return append(s, opBadFrame, id) }

// The methods a server script opens, by index (the method byte modulo 5).
var fuzzMethods = []*runtime.Method{echoesMethod, countMethod, sumMethod, waitMethod, holdMethod}

const (
	mEchoes = iota // bidi: echoes each message
	mCount         // server stream: sends min(n, 64) messages
	mSum           // client stream: reads everything
	mWait          // server stream: sends nothing until its context ends
	mHold          // client stream: reads nothing until its context ends
)

// Windows and credits as script.count reads them.
const (
	wNone byte = 0
	wOne  byte = 1
	wFew  byte = 7 // 7%5 == 2: seven
	wMax  byte = 3
)

func int64Bytes(v int64) []byte {
	b, _ := proto.Marshal(wrapperspb.Int64(v))
	return b
}

func stringBytes(v string) []byte {
	b, _ := proto.Marshal(wrapperspb.String(v))
	return b
}

func streamSeeds() [][]byte {
	var s seedScript
	invalid := []byte{0xFF, 0xFF, 0xFF} // not protobuf
	return [][]byte{
		nil,
		// A bidi stream echoing three messages, half-closed.
		s.open(mEchoes, 0, 0, wNone, 0, nil).message(0, 0, stringBytes("a")).message(0, 0, stringBytes("b")).
			message(0, flagCompressed, stringBytes("c")).halfClose(0, 0).sync(),
		// A server stream of 50 with a window of one, granted one at a time.
		s.open(mCount, 1, 0, wOne, 0, int64Bytes(50)).credit(1, 0, wOne).credit(1, 0, wOne).sync().credit(1, 0, wFew).sync(),
		// The same with no window, then a grant of 2^32-1, twice.
		s.open(mCount, 1, 0, wNone, 0, int64Bytes(64)).credit(1, flagTwice, wMax).sync(),
		// A client stream with a message that is not protobuf.
		s.open(mSum, 2, 0, wNone, 0, nil).message(2, 0, int64Bytes(4)).message(2, 0, invalid).halfClose(2, 0).sync(),
		// A server stream whose request is not protobuf.
		s.open(mCount, 1, flagCompressed, wNone, 0, invalid).sync(),
		// Overrun: 40 messages to a stream granting 16 and reading none,
		// then more frames for the stream it reset.
		s.open(mHold, 0, 0, wNone, 0, nil).burst(0, 40).message(0, 0, nil).credit(0, 0, wFew).sync().halfClose(0, 0).sync(),
		// Messages after a half-close.
		s.open(mEchoes, 3, 0, wNone, 0, nil).halfClose(3, 0).message(3, 0, stringBytes("late")).sync(),
		// Cancels: with no status, with a status, twice, and for streams
		// not open.
		s.open(mWait, 0, 0, wNone, 0, nil).open(mEchoes, 1, 0, wNone, 0, nil).cancel(0, 0, 0, "").
			cancel(1, flagTwice, 13, "gone").cancel(2, 0, 0xFE, "never opened").sync(),
		// A cancel with a code past every known one.
		s.open(mHold, 0, 0, wNone, 0, nil).cancel(0, 0, 0xFF, "").sync(),
		// The from-acceptor bit wrongly set on every kind of frame.
		s.open(mEchoes, 0, 0, wNone, 0, nil).message(0, flagFromAcceptor, nil).credit(0, flagFromAcceptor, wFew).
			halfClose(0, flagFromAcceptor).cancel(0, flagFromAcceptor, 1, "x").sync().halfClose(0, 0).sync(),
		// Responses to streams the server did not open.
		s.response(0, 0, nil).response(1, 2, stringBytes("x")).open(mWait, 2, 0, wNone, 0, nil).response(2, 0, nil).sync(),
		// Frames for streams that were never opened.
		s.message(0, 0, nil).burst(1, 47).halfClose(2, 0).credit(3, 0, wMax).sync(),
		// The same stream opened twice.
		s.open(mEchoes, 0, 0, wNone, 0, nil).open(mEchoes, 0, 0, wNone, 0, nil).message(0, 0, nil).sync(),
		s.open(mHold, 0, flagTwice, wNone, 0, nil).sync(),
		// Streams with deadlines of a millisecond and of 2^32-1.
		s.open(mWait, 0, 0, wNone, 1, nil).open(mHold, 1, 0, wNone, 0xFE, nil).sync().sync(),
		// The connection closes mid-stream: while the server sends, while
		// it waits for credit, and while it waits to receive.
		s.open(mCount, 0, 0, wMax, 0, int64Bytes(64)).close(),
		s.open(mCount, 0, 0, wOne, 0, int64Bytes(64)).sync().close(),
		s.open(mEchoes, 0, 0, wNone, 0, nil).message(0, 0, nil).open(mSum, 1, 0, wNone, 0, nil).close().sync(),
		// A stream field in a Request: the connection closes.
		s.open(mEchoes, 0, 0, wNone, 0, nil).badFrame(0).sync(),
		// More streams than the cap (32): the 33rd is refused.
		cap33(),
		// One id opened 40 times.
		reuse40(),
	}
}

// cap33 opens 33 streams that wait, with ids of their own.
func cap33() []byte {
	var s seedScript
	for i := range uint32(33) {
		s = s.openID(mWait, 100+i, wNone, nil)
	}
	return s.sync()
}

// reuse40 opens 40 streams with one id.
func reuse40() []byte {
	var s seedScript
	for range 40 {
		s = s.open(mHold, 0, 0, wNone, 0, nil)
	}
	return s.sync()
}

// fuzzStreamHandlers registers the streams a fuzzed server serves. Count
// sends at most 64 messages, so that a huge grant costs little.
func fuzzStreamHandlers(srv *runtime.Server) {
	srv.HandleStream(countMethod, runtime.NewServerStreamHandler(func(_ context.Context, _ *runtime.Session, req *wrapperspb.Int64Value, st *runtime.ServerStream[wrapperspb.Int64Value]) error {
		if req.Value < 0 {
			return runtime.NewError(runtime.CodeInvalidArgument, "negative count")
		}
		for i := range min(req.Value, 64) {
			if err := st.Send(wrapperspb.Int64(i + 1)); err != nil {
				return err
			}
		}
		return nil
	}))
	srv.HandleStream(sumMethod, runtime.NewClientStreamHandler(func(_ context.Context, _ *runtime.Session, st *runtime.ClientStream[wrapperspb.Int64Value]) (*wrapperspb.Int64Value, error) {
		var sum int64
		for m, err := range st.All() {
			if err != nil {
				return nil, err
			}
			sum += m.Value
		}
		return wrapperspb.Int64(sum), nil
	}))
	srv.HandleStream(echoesMethod, runtime.NewBidiStreamHandler(func(_ context.Context, _ *runtime.Session, st *runtime.BidiStream[wrapperspb.StringValue, wrapperspb.StringValue]) error {
		for m, err := range st.All() {
			if err != nil {
				return err
			}
			if err := st.Send(m); err != nil {
				return err
			}
		}
		return nil
	}))
	srv.HandleStream(waitMethod, runtime.NewServerStreamHandler(func(ctx context.Context, _ *runtime.Session, _ *wrapperspb.Int64Value, _ *runtime.ServerStream[wrapperspb.Int64Value]) error {
		<-ctx.Done()
		return ctx.Err()
	}))
	srv.HandleStream(holdMethod, runtime.NewClientStreamHandler(func(ctx context.Context, _ *runtime.Session, _ *runtime.ClientStream[wrapperspb.Int64Value]) (*wrapperspb.Int64Value, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	}))
	srv.Handle(bizEcho, echo)
}

// rawStreamPeer plays a script's frames on a connection and reads what
// comes back: it counts the messages the other side sends each stream, and
// signals the answers to its unary requests.
type rawStreamPeer struct {
	c        net.Conn
	acceptor bool // this peer accepted the streams (it plays a server)
	nextID   uint32
	dead     bool // a write failed or the connection was closed

	mu       sync.Mutex
	received map[uint32]int64 // stream messages from the other side, by stream id
	answers  map[uint32]chan struct{}
	readDone chan struct{}

	// What this peer granted: window[id] the window in the stream's
	// opening (when this peer opened it once), granted[id] the credit
	// frames sent for it since.
	opened  map[uint32]int
	window  map[uint32]int64
	granted map[uint32]int64
}

func newRawStreamPeer(c net.Conn, dec *wire.Decoder, acceptor bool) *rawStreamPeer {
	p := &rawStreamPeer{
		c: c, acceptor: acceptor, nextID: 1000,
		received: make(map[uint32]int64), answers: make(map[uint32]chan struct{}), readDone: make(chan struct{}),
		opened: make(map[uint32]int), window: make(map[uint32]int64), granted: make(map[uint32]int64),
	}
	if dec == nil {
		dec = wire.NewDecoder(c, wire.Limits{})
	}
	go p.read(dec)
	return p
}

func (p *rawStreamPeer) read(dec *wire.Decoder) {
	defer close(p.readDone)
	for {
		got, err := dec.Next()
		if err != nil {
			return
		}
		var e wire.Ext
		if wire.IsTypedExt(&got) {
			e, _ = wire.ParseExt(got.Ext)
		}
		p.mu.Lock()
		switch {
		case got.Type == wire.Response:
			if ch := p.answers[got.MessageID]; ch != nil {
				close(ch)
				delete(p.answers, got.MessageID)
			}
		case e.HasStream && e.Stream.Op == wire.StreamMessage && e.Stream.FromAcceptor != p.acceptor:
			p.received[e.Stream.ID]++
		}
		p.mu.Unlock()
	}
}

// write sends p, or nothing once the connection is dead.
func (p *rawStreamPeer) write(pk *wire.Packet) {
	if p.dead {
		return
	}
	b, err := wire.AppendPacket(nil, pk)
	if err != nil {
		panic(err) // the script builds only valid packets
	}
	if _, err := p.c.Write(b); err != nil {
		p.dead = true
	}
}

func (p *rawStreamPeer) id() uint32 {
	p.nextID++
	return p.nextID
}

// frame sends a stream frame.
func (p *rawStreamPeer) frame(op wire.StreamOp, id uint32, flags byte, e wire.Ext, payload []byte) {
	e.HasStream = true
	e.Stream = wire.StreamFrame{Op: op, FromAcceptor: flags&flagFromAcceptor != 0, ID: id}
	pk := &wire.Packet{Type: wire.OneWay, Flags: wire.FlagHasRouteTag, Ext: wire.AppendExt(nil, &e), Payload: payload}
	if flags&flagCompressed != 0 {
		pk.Compression, pk.Payload = wire.CompressionZlib, zlibBytes(payload)
	}
	for range 1 + int(flags&flagTwice)/flagTwice {
		pk.MessageID = p.id()
		p.write(pk)
		if op == wire.StreamCredit && e.Stream.FromAcceptor == p.acceptor {
			p.granted[id] += int64(e.Credit)
		}
	}
}

// sync sends a unary request and waits for its answer, so that the other
// side has handled every frame before it; false if the connection ended.
func (p *rawStreamPeer) sync() bool {
	if p.dead {
		return false
	}
	id := 0x80000000 | p.id()
	ch := make(chan struct{})
	p.mu.Lock()
	p.answers[id] = ch
	p.mu.Unlock()
	p.write(&wire.Packet{Type: wire.Request, BizType: bizEcho, MessageID: id})
	select {
	case <-ch:
		return true
	case <-p.readDone:
		p.dead = true
		return false
	case <-time.After(10 * time.Second):
		panic("no answer to a unary request within 10s")
	}
}

// play plays one operation of s; the caller has read its operation byte.
// streams maps the script's stream ids to the connection's (identity when
// nil).
func (p *rawStreamPeer) play(op byte, s *script, streams func(uint32) uint32) {
	if streams == nil {
		streams = func(id uint32) uint32 { return id }
	}
	switch op % opCount {
	case opOpen:
		m := fuzzMethods[int(s.byte())%len(fuzzMethods)]
		id, flags, window := s.id(), s.byte(), s.count()
		timeout := uint64(s.byte())
		if timeout == 0xFE {
			timeout = 0xFFFFFFFF
		}
		req := s.bytes()
		e := wire.Ext{HasRoute: true, Route: m.Route(), Credit: window, TimeoutMS: timeout}
		pk := &wire.Packet{Type: wire.Request, MessageID: id, Flags: wire.FlagHasRouteTag, Ext: wire.AppendExt(nil, &e), Payload: req}
		if flags&flagCompressed != 0 {
			pk.Compression, pk.Payload = wire.CompressionZlib, zlibBytes(req)
		}
		for range 1 + int(flags&flagTwice)/flagTwice {
			p.write(pk)
			if p.opened[id]++; p.opened[id] == 1 {
				p.window[id] = int64(window)
				if window == 0 {
					p.window[id] = 16 // the acceptor's default for the opener
				}
				p.granted[id] = 0
			}
		}
	case opMessage:
		id, flags := s.id(), s.byte()
		p.frame(wire.StreamMessage, streams(id), flags, wire.Ext{}, s.bytes())
	case opHalfClose:
		id, flags := s.id(), s.byte()
		p.frame(wire.StreamHalfClose, streams(id), flags, wire.Ext{}, nil)
	case opCredit:
		id, flags := s.id(), s.byte()
		p.frame(wire.StreamCredit, streams(id), flags, wire.Ext{Credit: s.count()}, nil)
	case opCancel:
		id, flags := s.id(), s.byte()
		code := runtime.Code(s.byte())
		if code == 0xFF {
			code = runtime.Code(s.u32())
		}
		p.frame(wire.StreamCancel, streams(id), flags, wire.Ext{Code: code, Message: string(s.bytes())}, nil)
	case opResponse:
		id, code := streams(s.id()), runtime.Code(s.byte())
		payload := s.bytes()
		pk := &wire.Packet{Type: wire.Response, MessageID: id, Payload: payload}
		if code != runtime.CodeOK {
			pk.Flags, pk.Ext = wire.FlagHasRouteTag, wire.AppendExt(nil, &wire.Ext{Code: code, Message: "fuzzed"})
		}
		p.write(pk)
	case opBurst:
		id, n := streams(s.id()), int(s.byte()%48)
		for i := range n {
			p.frame(wire.StreamMessage, id, flagFromAcceptorIf(p.acceptor), wire.Ext{}, []byte{0x08, byte(i)})
		}
	case opClose:
		_ = p.c.Close()
		p.dead = true
	case opSync:
		p.sync()
	case opBadFrame:
		e := wire.Ext{HasStream: true, Stream: wire.StreamFrame{Op: wire.StreamMessage, ID: streams(s.id())}}
		p.write(&wire.Packet{Type: wire.Request, MessageID: p.id(), Flags: wire.FlagHasRouteTag, Ext: wire.AppendExt(nil, &e)})
	}
}

func flagFromAcceptorIf(acceptor bool) byte {
	if acceptor {
		return flagFromAcceptor
	}
	return 0
}

// finish closes the connection, waits for the reader, and checks that the
// other side sent no stream more messages than this peer granted it (for
// each stream opened once, when this peer opened them).
func (p *rawStreamPeer) finish(t *testing.T) {
	t.Helper()
	_ = p.c.Close()
	p.dead = true
	select {
	case <-p.readDone:
	case <-time.After(10 * time.Second):
		t.Fatal("reading did not end when the connection closed")
	}
	for id, n := range p.opened {
		if n != 1 {
			continue
		}
		if got, allowed := p.received[id], p.window[id]+p.granted[id]; got > allowed {
			t.Fatalf("stream %d: the server sent %d messages, granted %d", id, got, allowed)
		}
	}
}

func zlibBytes(b []byte) []byte {
	var buf bytes.Buffer
	w := zlib.NewWriter(&buf)
	_, _ = w.Write(b)
	_ = w.Close()
	return buf.Bytes()
}

// goroutinesBack waits until the process runs no more goroutines than
// before.
func goroutinesBack(t *testing.T, before int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for n := goruntime.NumGoroutine(); n > before; n = goruntime.NumGoroutine() {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines, %d before:\n%s", n, before, buf[:goruntime.Stack(buf, true)])
		}
		time.Sleep(time.Millisecond)
	}
}

// steady waits until the number of goroutines holds still for 20ms (at
// most a second): the goroutines a server and a client start are all
// running before the first input is measured against them.
func steady() {
	n := goruntime.NumGoroutine()
	for deadline, still := time.Now().Add(time.Second), 0; still < 4 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
		if m := goruntime.NumGoroutine(); m == n {
			still++
		} else {
			n, still = m, 0
		}
	}
}

// queuesBounded fails t if a stream ever held more messages than its window.
func queuesBounded(t *testing.T) {
	t.Helper()
	if most, over := runtime.StreamQueues(); over > 0 {
		t.Fatalf("a stream held more messages than its window %d times (at most %d)", over, most)
	}
}

// FuzzStreamFrames plays each input as a script of stream frames from a
// raw client to a server over the mem transport, closes the connection
// (when the script did not), and checks the server: no more stream
// handlers ran at once than the cap of streams, the session's goroutines
// all exit, no stream held more than its window, no stream was sent more
// than its window and grants, and a well-behaved client is still served,
// streams and calls.
func FuzzStreamFrames(f *testing.F) {
	for _, s := range streamSeeds() {
		f.Add(s)
	}
	closed := make(chan struct{}, 16)
	// The handlers running at once, and the most there were in an input.
	var running, most atomic.Int64
	count := func(next runtime.StreamHandler) runtime.StreamHandler {
		return func(ctx context.Context, s *runtime.Session, open *wire.Packet, st runtime.Stream) (*wire.Packet, error) {
			n := running.Add(1)
			defer running.Add(-1)
			for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
			}
			return next(ctx, s, open, st)
		}
	}
	srv, err := runtime.NewServer(
		runtime.WithStreamInterceptors(count),
		runtime.WithLogger(slog.New(slog.DiscardHandler)),
		runtime.WithEventHandler(func(e runtime.Event) {
			if e.Kind == runtime.ConnectionClosed {
				closed <- struct{}{}
			}
		}),
	)
	if err != nil {
		f.Fatal(err)
	}
	fuzzStreamHandlers(srv)
	addr := fmt.Sprintf("mem://fuzz-streams-%d", memCounter.Add(1))
	if err := srv.Listen(context.Background(), addr); err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = srv.Close() })
	good, err := runtime.Dial(context.Background(), addr, runtime.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = good.Close() })
	wellServed(f, good)
	steady()

	f.Fuzz(func(t *testing.T, in []byte) {
		before := goruntime.NumGoroutine()
		most.Store(0)
		c, err := runtime.DialConn(context.Background(), addr, nil)
		if err != nil {
			t.Fatal(err)
		}
		p := newRawStreamPeer(c.(*runtime.StreamConn).NetConn(), nil, false)
		s := &script{b: in}
		for ops := 0; !s.done() && !p.dead && ops < 256; ops++ {
			p.play(s.byte(), s, nil)
		}
		p.sync() // the server has handled every frame
		p.finish(t)
		select {
		case <-closed:
		case <-time.After(10 * time.Second):
			t.Fatal("the server did not end the session within 10s")
		}
		goroutinesBack(t, before)
		queuesBounded(t)
		if n := most.Load(); n > runtime.DefaultMaxStreams {
			t.Fatalf("%d stream handlers ran at once for one session (the cap is %d)", n, runtime.DefaultMaxStreams)
		}
		wellServed(t, good)
	})
}

// wellServed checks that c is served: a call, and a stream of three.
func wellServed(t testing.TB, c *runtime.Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Request(ctx, wire.NewRequest(bizEcho, []byte("x"))); err != nil {
		t.Fatalf("a well-behaved client's call: %v", err)
	}
	st, err := runtime.OpenServerStream[wrapperspb.Int64Value](ctx, c, countMethod, wrapperspb.Int64(3))
	if err != nil {
		t.Fatalf("a well-behaved client's stream: %v", err)
	}
	n := 0
	for _, err := range st.All() {
		if err != nil {
			t.Fatalf("a well-behaved client's stream: %v", err)
		}
		n++
	}
	if n != 3 {
		t.Fatalf("a well-behaved client's stream: %d messages, want 3", n)
	}
}

// FuzzStreamOpener answers a real client's three streams (one of each
// kind, the client sending and receiving on each) with each input played
// as a script of frames by a raw server over the mem transport, then
// closes. Every Recv
// and Send of the client ends, with io.EOF or an error with a code; the
// client sends no stream more than the server granted it; its goroutines
// exit once it is closed.
func FuzzStreamOpener(f *testing.F) {
	for _, s := range openerSeeds() {
		f.Add(s)
	}
	name := fmt.Sprintf("fuzz-opener-%d", memCounter.Add(1))
	ln, err := mem.Transport{}.Listen(context.Background(), &url.URL{Scheme: "mem", Host: name}, nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = ln.Close() })
	hello, err := wire.AppendPacket(nil, &wire.Packet{Type: wire.OneWay, MessageID: 1, Flags: wire.FlagHasRouteTag,
		Ext: wire.AppendExt(nil, &wire.Ext{HasRoute: true, Route: wire.ControlRoute, Control: wire.ControlHello}), Payload: []byte{0}})
	if err != nil {
		f.Fatal(err)
	}

	f.Fuzz(func(t *testing.T, in []byte) {
		before := goruntime.NumGoroutine()
		c, err := runtime.NewClient("mem://"+name, runtime.WithoutReconnect(),
			runtime.WithLogger(slog.New(slog.DiscardHandler)))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		connected := make(chan error, 1)
		go func() { connected <- c.Connect(context.Background()) }()
		accepted, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		conn := accepted.(*runtime.StreamConn).NetConn()
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
		dec := wire.NewDecoder(conn, wire.Limits{})
		if _, err := dec.Next(); err != nil { // the client's hello
			t.Fatal(err)
		}
		if _, err := conn.Write(hello); err != nil {
			t.Fatal(err)
		}
		if err := <-connected; err != nil {
			t.Fatal(err)
		}

		// The client opens one stream of each kind, reads each to its
		// end, and sends on two of them.
		ctx := context.Background()
		var ends sync.WaitGroup
		check := func(what string, err error) {
			var re *runtime.Error
			if err != nil && !errors.Is(err, io.EOF) && !errors.As(err, &re) {
				t.Errorf("%s ended with %v: neither io.EOF nor a status", what, err)
			}
		}
		count, err := runtime.OpenServerStream[wrapperspb.Int64Value](ctx, c, countMethod, wrapperspb.Int64(3))
		if err != nil {
			t.Fatal(err)
		}
		sum, err := runtime.OpenClientStream[wrapperspb.Int64Value, wrapperspb.Int64Value](ctx, c, sumMethod)
		if err != nil {
			t.Fatal(err)
		}
		echoes, err := runtime.OpenBidiStream[wrapperspb.StringValue, wrapperspb.StringValue](ctx, c, echoesMethod)
		if err != nil {
			t.Fatal(err)
		}
		ends.Add(4)
		go func() {
			defer ends.Done()
			for _, err := range count.All() {
				if err != nil {
					check("count's Recv", err)
				}
			}
		}()
		go func() {
			defer ends.Done()
			for i := range 40 { // more than the 16 an acceptor grants
				if err := sum.Send(wrapperspb.Int64(int64(i))); err != nil {
					check("sum's Send", err)
					break
				}
			}
			_, err := sum.CloseAndRecv()
			check("sum's CloseAndRecv", err)
		}()
		go func() {
			defer ends.Done()
			for range 40 {
				if err := echoes.Send(wrapperspb.String("x")); err != nil {
					check("echoes' Send", err)
					return
				}
			}
			_ = echoes.CloseSend()
		}()
		go func() {
			defer ends.Done()
			for _, err := range echoes.All() {
				if err != nil {
					check("echoes' Recv", err)
				}
			}
		}()

		// The raw server learns the streams' ids from their opening
		// requests; the script names them 1-3 (1 count, 2 sum, 3 echoes),
		// and 4 a stream that is not open.
		ids := map[uint32]uint32{4: 0x7FFFFFFF}
		for len(ids) < 4 {
			pk, err := dec.Next()
			if err != nil {
				t.Fatalf("reading the streams' openings: %v", err)
			}
			if pk.Type != wire.Request {
				continue
			}
			e, err := wire.ParseExt(pk.Ext)
			if err != nil {
				t.Fatal(err)
			}
			for i, m := range []*runtime.Method{countMethod, sumMethod, echoesMethod} {
				if e.Route == m.Route() {
					ids[uint32(i+1)] = pk.MessageID
				}
			}
		}
		p := newRawStreamPeer(conn, dec, true)
		for id := range uint32(3) {
			p.opened[ids[id+1]], p.window[ids[id+1]] = 1, 16 // the acceptor's window
		}
		s := &script{b: in}
		streams := func(id uint32) uint32 {
			if x, ok := ids[id]; ok {
				return x
			}
			return id
		}
		for ops := 0; !s.done() && !p.dead && ops < 256; ops++ {
			p.play(s.byte(), s, streams)
		}
		// The client sends no stream more than it was granted; and once
		// the connection closes, every Recv and Send ends.
		p.finish(t)
		waited := make(chan struct{})
		go func() { ends.Wait(); close(waited) }()
		select {
		case <-waited:
		case <-time.After(10 * time.Second):
			t.Fatal("the client's streams did not end when the connection closed")
		}
		_ = c.Close()
		goroutinesBack(t, before)
		queuesBounded(t)
	})
}

func openerSeeds() [][]byte {
	var s seedScript
	const count, sum, echoes, none = 0, 1, 2, 3 // as script.id reads them: ids 1-4
	invalid := []byte{0xFF, 0xFF}
	ok := runtime.CodeOK
	return [][]byte{
		nil,
		// Each stream served well: count's three messages and its end,
		// sum's grants and its answer, echoes' echo and end.
		s.message(count, flagFromAcceptor, int64Bytes(1)).message(count, flagFromAcceptor, int64Bytes(2)).
			message(count, flagFromAcceptor|flagCompressed, int64Bytes(3)).response(count, byte(ok), nil).
			credit(sum, flagFromAcceptor, wFew).credit(sum, flagFromAcceptor, wMax).response(sum, byte(ok), int64Bytes(780)).
			message(echoes, flagFromAcceptor, stringBytes("x")).credit(echoes, flagFromAcceptor, wFew).response(echoes, byte(ok), nil),
		// Messages the clients cannot decode, and past the window of 32.
		s.message(count, flagFromAcceptor, invalid).burst(echoes, 47).burst(count, 40),
		// Frames without the from-acceptor bit (as if the client had
		// accepted the streams), and for a stream not open.
		s.message(count, 0, nil).credit(sum, 0, wMax).cancel(echoes, 0, 1, "x").burst(none, 10).credit(none, flagFromAcceptor, wMax),
		// Cancels, with codes known and not, twice; then a response.
		s.cancel(count, flagFromAcceptor, 0, "").cancel(sum, flagFromAcceptor|flagTwice, 0xFF, "?").
			cancel(echoes, flagFromAcceptor, 8, "tired").response(echoes, 14, nil),
		// Half-closes, twice, then messages after them.
		s.halfClose(count, flagFromAcceptor|flagTwice).message(count, flagFromAcceptor, nil).halfClose(echoes, flagFromAcceptor),
		// Ends with errors, a response with a payload to a server stream,
		// responses to nothing.
		s.response(count, 13, int64Bytes(9)).response(sum, 3, nil).response(echoes, byte(ok), stringBytes("last")).response(none, 2, nil),
		// Requests from the server: a stream the client does not serve,
		// and a stream field in a Request.
		s.open(mEchoes, 0xF7, 0, wNone, 0, nil).badFrame(count),
		// Grants of nothing, then the most, then the connection closes.
		s.credit(sum, flagFromAcceptor, wNone).credit(echoes, flagFromAcceptor|flagTwice, wMax).close(),
		s.close(),
	}
}
