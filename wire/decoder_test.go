package wire_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	goruntime "runtime"
	"testing"
	"testing/iotest"
	"time"

	"github.com/msgtrans/msgtrans-go/wire"
)

// chunkReader returns data in chunks whose sizes come from next (at least 1
// byte per Read). With eofWithData the last chunk comes with io.EOF, as some
// readers do.
type chunkReader struct {
	data        []byte
	next        func() int
	eofWithData bool
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	n := min(max(r.next(), 1), len(p), len(r.data))
	copy(p, r.data[:n])
	r.data = r.data[n:]
	if len(r.data) == 0 && r.eofWithData {
		return n, io.EOF
	}
	return n, nil
}

// randomChunks returns a reader over data whose Read sizes are drawn from a
// generator seeded with seed: mostly small, sometimes larger than the
// decoder's read buffer.
func randomChunks(data []byte, seed uint64, eofWithData bool) io.Reader {
	rng := rand.New(rand.NewPCG(seed, seed^0x5eed))
	return &chunkReader{data: data, eofWithData: eofWithData, next: func() int {
		switch rng.IntN(10) {
		case 0:
			return 1 + rng.IntN(100<<10)
		case 1, 2:
			return 1 + rng.IntN(2000)
		default:
			return 1 + rng.IntN(40)
		}
	}}
}

// readerCase makes a fresh reader over a stream.
type readerCase struct {
	name string
	make func(b []byte) io.Reader
}

var streamReaders = []readerCase{
	{"whole", func(b []byte) io.Reader { return bytes.NewReader(b) }},
	{"one_byte", func(b []byte) io.Reader { return iotest.OneByteReader(bytes.NewReader(b)) }},
	{"half", func(b []byte) io.Reader { return iotest.HalfReader(bytes.NewReader(b)) }},
	{"data_with_eof", func(b []byte) io.Reader { return iotest.DataErrReader(bytes.NewReader(b)) }},
	{"random_chunks_1", func(b []byte) io.Reader { return randomChunks(b, 1, false) }},
	{"random_chunks_2", func(b []byte) io.Reader { return randomChunks(b, 2, false) }},
	{"random_chunks_3_eof_with_data", func(b []byte) io.Reader { return randomChunks(b, 3, true) }},
}

func randBytes(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// testPackets returns n varied packets, the same for the same seed: every
// packet type, ext headers, empty payloads, and a few payloads larger than
// the decoder's 32 KiB read buffer.
func testPackets(n int, seed uint64) []wire.Packet {
	rng := rand.New(rand.NewPCG(seed, 0x6d7367))
	ps := make([]wire.Packet, n)
	for i := range ps {
		p := wire.Packet{
			Type:        wire.PacketType(i % 3),
			Compression: wire.Compression(rng.IntN(3)),
			BizType:     uint8(rng.IntN(256)),
			MessageID:   uint32(i) + 1,
			Flags:       wire.Flags(rng.IntN(1 << 16)),
		}
		if rng.IntN(3) == 0 {
			p.Ext = randBytes(rng, 1+rng.IntN(64))
		}
		switch k := rng.IntN(25); {
		case k == 0: // empty payload
		case k == 1:
			p.Payload = randBytes(rng, 33<<10+rng.IntN(20<<10))
		default:
			p.Payload = randBytes(rng, 1+rng.IntN(200))
		}
		ps[i] = p
	}
	return ps
}

func encodeAll(tb testing.TB, ps []wire.Packet) []byte {
	tb.Helper()
	var b []byte
	for i := range ps {
		b = mustAppend(tb, b, &ps[i])
	}
	return b
}

// decodeAll reads packets until Next fails and returns them with the error.
func decodeAll(dec *wire.Decoder) ([]wire.Packet, error) {
	var ps []wire.Packet
	for {
		p, err := dec.Next()
		if err != nil {
			return ps, err
		}
		ps = append(ps, p)
	}
}

func checkPackets(t *testing.T, got, want []wire.Packet) {
	t.Helper()
	for i := range min(len(got), len(want)) {
		if d := packetDiff(got[i], want[i]); d != "" {
			t.Errorf("packet %d: %s", i, d)
		}
	}
	if len(got) != len(want) {
		t.Errorf("got %d packets, want %d", len(got), len(want))
	}
}

func TestDecoderStream(t *testing.T) {
	want := testPackets(300, 1)
	stream := encodeAll(t, want)
	for _, rc := range streamReaders {
		t.Run(rc.name, func(t *testing.T) {
			got, err := decodeAll(wire.NewDecoder(rc.make(stream), wire.Limits{}))
			if err != io.EOF {
				t.Errorf("final error: got %v, want io.EOF", err)
			}
			checkPackets(t, got, want)
		})
	}
}

func TestDecoderEOFBetweenPackets(t *testing.T) {
	tests := []struct {
		name    string
		packets []wire.Packet
	}{
		{"empty_stream", nil},
		{"after_one_packet", testPackets(1, 2)},
		{"after_many_packets", testPackets(20, 3)},
		{"after_empty_packet", []wire.Packet{{}}},
	}
	for _, tt := range tests {
		for _, rc := range streamReaders[:4] {
			t.Run(tt.name+"/"+rc.name, func(t *testing.T) {
				got, err := decodeAll(wire.NewDecoder(rc.make(encodeAll(t, tt.packets)), wire.Limits{}))
				if err != io.EOF {
					t.Errorf("final error: got %v, want io.EOF", err)
				}
				checkPackets(t, got, tt.packets)
			})
		}
	}
}

func TestDecoderTruncated(t *testing.T) {
	first := testPackets(1, 4)
	small := wire.Packet{Type: wire.Request, MessageID: 2, Ext: []byte("0123456789"), Payload: []byte("abcdefghijklmnopqrst")}
	large := wire.Packet{MessageID: 3, Ext: []byte("ext"), Payload: bytes.Repeat([]byte("L"), 100<<10)}
	type cutCase struct {
		name   string
		packet wire.Packet
		cut    int
	}
	var cuts []cutCase
	smallLen := small.EncodedLen()
	for cut := 1; cut < smallLen; cut++ {
		var where string
		switch {
		case cut < wire.HeaderSize:
			where = "header"
		case cut < wire.HeaderSize+len(small.Ext):
			where = "ext"
		default:
			where = "payload"
		}
		cuts = append(cuts, cutCase{fmt.Sprintf("small_in_%s_at_%d", where, cut), small, cut})
	}
	for _, cut := range []int{1, 15, 16, 17, 19, 20, 32 << 10, 32<<10 + 19, 50 << 10, large.EncodedLen() - 1} {
		cuts = append(cuts, cutCase{fmt.Sprintf("large_at_%d", cut), large, cut})
	}
	for _, c := range cuts {
		enc := mustAppend(t, nil, &c.packet)[:c.cut]
		for _, prefix := range []struct {
			name    string
			packets []wire.Packet
		}{{"alone", nil}, {"after_a_packet", first}} {
			stream := append(encodeAll(t, prefix.packets), enc...)
			for _, rc := range streamReaders[:2] {
				t.Run(c.name+"/"+prefix.name+"/"+rc.name, func(t *testing.T) {
					got, err := decodeAll(wire.NewDecoder(rc.make(stream), wire.Limits{}))
					if !errors.Is(err, wire.ErrTruncated) {
						t.Errorf("final error: got %v, want one wrapping ErrTruncated", err)
					}
					checkPackets(t, got, prefix.packets)
				})
			}
		}
	}
}

func TestDecoderRejectsInvalidHeader(t *testing.T) {
	first := testPackets(2, 5)
	tests := []struct {
		name   string
		mutate func([]byte)
		want   error
	}{
		{"version_0", func(b []byte) { b[0] = 0 }, wire.ErrProtocol},
		{"version_2", func(b []byte) { b[0] = 2 }, wire.ErrProtocol},
		{"packet_type_3", func(b []byte) { b[2] = 3 }, wire.ErrProtocol},
		{"compression_3", func(b []byte) { b[1] = 3 }, wire.ErrProtocol},
		{"ext_over_limit", func(b []byte) { binary.BigEndian.PutUint16(b[8:10], wire.DefaultMaxExtHeader+1) }, wire.ErrTooLarge},
		{"payload_over_limit", func(b []byte) { binary.BigEndian.PutUint32(b[10:14], wire.DefaultMaxPayload+1) }, wire.ErrTooLarge},
	}
	for _, tt := range tests {
		bad := validPacketBytes(4, 4)
		tt.mutate(bad)
		stream := append(encodeAll(t, first), bad...)
		for _, rc := range streamReaders[:2] {
			t.Run(tt.name+"/"+rc.name, func(t *testing.T) {
				got, err := decodeAll(wire.NewDecoder(rc.make(stream), wire.Limits{}))
				if !errors.Is(err, tt.want) {
					t.Errorf("final error: got %v, want one wrapping %v", err, tt.want)
				}
				checkPackets(t, got, first)
			})
		}
	}
}

func TestDecoderHugeDeclaredPayloadRejectedBeforeAllocation(t *testing.T) {
	hdr := validPacketBytes(0, 0)
	binary.BigEndian.PutUint32(hdr[10:14], 0xFFFFFFFF) // 4 GiB
	stream := append(hdr, "a few body bytes"...)
	for _, tt := range []struct {
		name string
		lim  wire.Limits
	}{
		{"default_limits", wire.Limits{}},
		{"raised_limit_still_below", wire.Limits{MaxPayload: 1 << 30}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var before, after goruntime.MemStats
			goruntime.ReadMemStats(&before)
			_, err := wire.NewDecoder(bytes.NewReader(stream), tt.lim).Next()
			goruntime.ReadMemStats(&after)
			if !errors.Is(err, wire.ErrTooLarge) {
				t.Fatalf("Next: got %v, want an error wrapping ErrTooLarge", err)
			}
			if delta := after.TotalAlloc - before.TotalAlloc; delta > 64<<10 {
				t.Errorf("rejecting the header allocated %d bytes, want less than 64 KiB", delta)
			}
			allocs := testing.AllocsPerRun(10, func() {
				_, _ = wire.NewDecoder(bytes.NewReader(stream), tt.lim).Next()
			})
			if allocs > 10 {
				t.Errorf("rejecting the header: got %v allocations per run, want at most 10", allocs)
			}
		})
	}
}

func TestDecoderLargePayload(t *testing.T) {
	rng := rand.New(rand.NewPCG(6, 6))
	want := []wire.Packet{
		{Type: wire.Request, MessageID: 1, Payload: []byte("before")},
		{Type: wire.OneWay, MessageID: 2, Ext: randBytes(rng, 1000), Payload: randBytes(rng, 300<<10)},
		{Type: wire.Response, MessageID: 1, Payload: []byte("after")},
		{Type: wire.OneWay, MessageID: 3, Payload: randBytes(rng, 32<<10)}, // exactly the read buffer
		{Type: wire.OneWay, MessageID: 4, Payload: randBytes(rng, 32<<10-1)},
	}
	stream := encodeAll(t, want)
	for _, rc := range streamReaders {
		t.Run(rc.name, func(t *testing.T) {
			got, err := decodeAll(wire.NewDecoder(rc.make(stream), wire.Limits{}))
			if err != io.EOF {
				t.Errorf("final error: got %v, want io.EOF", err)
			}
			checkPackets(t, got, want)
		})
	}
}

func TestDecoderPacketsOwnMemory(t *testing.T) {
	want := testPackets(60, 7)
	src := encodeAll(t, want)
	for _, rc := range streamReaders {
		t.Run(rc.name, func(t *testing.T) {
			buf := bytes.Clone(src)
			// Later packets pass through the same pooled read buffer as
			// earlier ones, so aliasing would show up as corruption below.
			got, err := decodeAll(wire.NewDecoder(rc.make(buf), wire.Limits{}))
			if err != io.EOF {
				t.Fatalf("final error: got %v, want io.EOF", err)
			}
			for i := range buf {
				buf[i] = 0xAA
			}
			// Another decoder's traffic, likely through the same pooled buffer.
			noise := encodeAll(t, testPackets(60, 8))
			if _, err := decodeAll(wire.NewDecoder(rc.make(noise), wire.Limits{})); err != io.EOF {
				t.Fatalf("decoding other traffic: %v", err)
			}
			checkPackets(t, got, want)
			for i, p := range got {
				if cap(p.Ext) != len(p.Ext) {
					t.Errorf("packet %d: cap(Ext) = %d, want %d so that appending to Ext cannot overwrite Payload", i, cap(p.Ext), len(p.Ext))
				}
			}
		})
	}
}

// pipe returns both ends of an in-memory connection, closed when the test ends.
func pipe(t *testing.T) (client, server net.Conn) {
	client, server = net.Pipe()
	t.Cleanup(func() {
		client.Close()
		server.Close()
	})
	return client, server
}

// goWrite runs write in a goroutine owned by the test: at cleanup, conn is
// closed (which unblocks a pending Write) and the goroutine is waited for.
func goWrite(t *testing.T, conn net.Conn, write func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		write()
	}()
	t.Cleanup(func() {
		conn.Close()
		<-done
	})
}

type nextResult struct {
	p   wire.Packet
	err error
	at  time.Time
}

// nextWithin calls dec.Next and fails the test if it has not returned within
// limit; it then closes conn so that the call returns.
func nextWithin(t *testing.T, dec *wire.Decoder, conn net.Conn, limit time.Duration) nextResult {
	t.Helper()
	ch := make(chan nextResult, 1)
	go func() {
		p, err := dec.Next()
		ch <- nextResult{p, err, time.Now()}
	}()
	timer := time.NewTimer(limit)
	defer timer.Stop()
	select {
	case r := <-ch:
		return r
	case <-timer.C:
		conn.Close()
		<-ch
		t.Fatalf("Next did not return within %v", limit)
		return nextResult{}
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) && os.IsTimeout(err) && errors.As(err, &ne) && ne.Timeout()
}

func TestDecoderPacketReadTimeout(t *testing.T) {
	const timeout = 50 * time.Millisecond
	lim := wire.Limits{PacketReadTimeout: timeout}
	small := validPacketBytes(10, 90)
	large := validPacketBytes(0, 100<<10)
	complete := testPackets(3, 9)
	tests := []struct {
		name     string
		complete []wire.Packet // written in full first
		partial  []byte        // then these bytes, and nothing more
	}{
		{"header_partial", nil, small[:10]},
		{"header_only", nil, small[:wire.HeaderSize]},
		{"ext_partial", nil, small[:wire.HeaderSize+5]},
		{"payload_partial", nil, small[:wire.HeaderSize+50]},
		{"large_payload_partial", nil, large[:wire.HeaderSize+40<<10]},
		{"header_partial_after_packets", complete, small[:10]},
		{"payload_partial_after_packets", complete, small[:len(small)-1]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client, server := pipe(t)
			dec := wire.NewDecoder(server, lim)
			data := append(encodeAll(t, tt.complete), tt.partial...)
			start := time.Now()
			goWrite(t, client, func() {
				_, _ = client.Write(data)
			})
			for i := range tt.complete {
				r := nextWithin(t, dec, server, 10*time.Second)
				if r.err != nil {
					t.Fatalf("Next for complete packet %d: %v", i, r.err)
				}
				if d := packetDiff(r.p, tt.complete[i]); d != "" {
					t.Errorf("complete packet %d: %s", i, d)
				}
			}
			r := nextWithin(t, dec, server, 10*time.Second)
			if !isTimeout(r.err) {
				t.Fatalf("Next on a stalled packet: got %v, want a timeout (os.ErrDeadlineExceeded)", r.err)
			}
			if elapsed := r.at.Sub(start); elapsed < timeout {
				t.Errorf("Next timed out after %v, want at least the PacketReadTimeout of %v", elapsed, timeout)
			}
		})
	}
}

func TestDecoderIdleConnectionDoesNotTimeOut(t *testing.T) {
	const timeout = 50 * time.Millisecond
	client, server := pipe(t)
	dec := wire.NewDecoder(server, wire.Limits{PacketReadTimeout: timeout})
	want := testPackets(2, 10)
	first := mustAppend(t, nil, &want[0])
	second := mustAppend(t, nil, &want[1])
	idle1, idle2 := make(chan struct{}), make(chan struct{})
	start := time.Now()
	goWrite(t, client, func() {
		// Stay silent for several read timeouts before each packet.
		timer := time.NewTimer(4 * timeout)
		<-timer.C
		close(idle1)
		if _, err := client.Write(first); err != nil {
			return
		}
		timer.Reset(4 * timeout)
		<-timer.C
		close(idle2)
		if _, err := client.Write(second[:10]); err != nil {
			return
		}
		if _, err := client.Write(second[10:]); err != nil {
			return
		}
		client.Close()
	})

	for i, idle := range []chan struct{}{idle1, idle2} {
		r := nextWithin(t, dec, server, 10*time.Second)
		if r.err != nil {
			t.Fatalf("Next after idle period %d: %v", i+1, r.err)
		}
		select {
		case <-idle:
		default:
			t.Fatalf("packet %d arrived before the idle period ended", i+1)
		}
		if d := packetDiff(r.p, want[i]); d != "" {
			t.Errorf("packet %d: %s", i+1, d)
		}
	}
	if waited := time.Since(start); waited < 8*timeout {
		t.Errorf("test waited %v, want at least %v of idle time", waited, 8*timeout)
	}
	if r := nextWithin(t, dec, server, 10*time.Second); r.err != io.EOF {
		t.Errorf("Next after the peer closed: got %v, want io.EOF", r.err)
	}
}

func TestDecoderDeadlineIsPerPacket(t *testing.T) {
	// Packets that each arrive quickly never time out, however long the
	// stream runs. The writer sends fixed-size chunks that straddle packet
	// boundaries, so the decoder is nearly always in the middle of a packet.
	const timeout = 100 * time.Millisecond
	const chunk = 37
	client, server := pipe(t)
	dec := wire.NewDecoder(server, wire.Limits{PacketReadTimeout: timeout})
	sent := make(chan uint32, 1)
	start := time.Now()
	goWrite(t, client, func() {
		timer := time.NewTimer(5 * timeout)
		defer timer.Stop()
		var pending []byte
		payload := bytes.Repeat([]byte("x"), 64)
		for id := uint32(1); ; id++ {
			p := wire.Packet{Type: wire.OneWay, MessageID: id, Payload: payload}
			pending, _ = wire.AppendPacket(pending, &p)
			for len(pending) >= chunk {
				if _, err := client.Write(pending[:chunk]); err != nil {
					sent <- id
					return
				}
				pending = pending[chunk:]
			}
			select {
			case <-timer.C:
				_, _ = client.Write(pending)
				client.Close()
				sent <- id
				return
			default:
			}
		}
	})
	var count uint32
	for {
		r := nextWithin(t, dec, server, 10*time.Second)
		if r.err == io.EOF {
			break
		}
		if r.err != nil {
			t.Fatalf("Next after %d packets and %v: %v", count, time.Since(start), r.err)
		}
		count++
		if r.p.MessageID != count {
			t.Fatalf("packet %d: got message id %d", count, r.p.MessageID)
		}
	}
	if want := <-sent; count != want {
		t.Errorf("decoded %d packets, want %d", count, want)
	}
	if elapsed := time.Since(start); elapsed < 5*timeout {
		t.Errorf("stream lasted %v, want at least %v", elapsed, 5*timeout)
	}
	t.Logf("%d packets in %v with a %v per-packet deadline", count, time.Since(start), timeout)
}

func TestDecoderDeadlineExcludesCallerDelay(t *testing.T) {
	// The peer sends packet A and the first 20 bytes of packet B at once, and
	// the rest of B as soon as the caller asks for it. The caller spends three
	// read timeouts between the two Next calls. B must still decode.
	const timeout = 50 * time.Millisecond
	client, server := pipe(t)
	dec := wire.NewDecoder(server, wire.Limits{PacketReadTimeout: timeout})
	a := wire.Packet{MessageID: 1, Payload: []byte("first")}
	b := wire.Packet{MessageID: 2, Payload: bytes.Repeat([]byte("b"), 40)}
	encB := mustAppend(t, nil, &b)
	firstWrite := append(mustAppend(t, nil, &a), encB[:20]...)
	resume := make(chan struct{})
	goWrite(t, client, func() {
		if _, err := client.Write(firstWrite); err != nil {
			return
		}
		select {
		case <-resume:
			_, _ = client.Write(encB[20:])
		case <-t.Context().Done():
		}
	})
	if r := nextWithin(t, dec, server, 10*time.Second); r.err != nil {
		t.Fatalf("Next for A: %v", r.err)
	}
	busy := time.NewTimer(3 * timeout) // the caller is busy handling A
	<-busy.C
	close(resume)
	r := nextWithin(t, dec, server, 10*time.Second)
	if r.err != nil {
		t.Fatalf("Next for B: got %v, want the packet", r.err)
	}
	if d := packetDiff(r.p, b); d != "" {
		t.Error(d)
	}
}

// TestDecoderNextInto: NextInto reads the same packets as Next into a
// packet it overwrites whole (nothing of the previous packet survives in
// fields the next one leaves empty), and leaves it zero on an error.
func TestDecoderNextInto(t *testing.T) {
	want := []wire.Packet{
		{Type: wire.Request, Compression: wire.CompressionZstd, BizType: 9, MessageID: 7, Flags: wire.FlagHasRouteTag, Ext: []byte("ext"), Payload: []byte("payload")},
		{MessageID: 8},
		{Type: wire.Response, BizType: 1, MessageID: 9, Payload: []byte("p")},
		{Ext: []byte("only an ext")},
	}
	cut := mustAppend(t, nil, &want[0])
	stream := append(encodeAll(t, want), cut[:len(cut)-1]...)
	for _, pool := range []bool{false, true} {
		for _, rc := range streamReaders {
			t.Run(fmt.Sprintf("pool=%v/%s", pool, rc.name), func(t *testing.T) {
				dec := wire.NewDecoder(rc.make(stream), wire.Limits{})
				if pool {
					dec.PoolBodies()
				}
				p := wire.Packet{Type: wire.OneWay, BizType: 200, MessageID: 99, Ext: []byte("stale"), Payload: []byte("stale")}
				var got []wire.Packet
				for range want {
					if err := dec.NextInto(&p); err != nil {
						t.Fatalf("packet %d: %v", len(got), err)
					}
					got = append(got, wire.Packet{Type: p.Type, Compression: p.Compression, BizType: p.BizType, MessageID: p.MessageID, Flags: p.Flags,
						Ext: bytes.Clone(p.Ext), Payload: bytes.Clone(p.Payload)})
					p.Release()
				}
				checkPackets(t, got, want)
				err := dec.NextInto(&p)
				if !errors.Is(err, wire.ErrTruncated) {
					t.Fatalf("truncated last packet: got %v, want one wrapping ErrTruncated", err)
				}
				if d := packetDiff(p, wire.Packet{}); d != "" {
					t.Errorf("after an error the packet is not zero: %s", d)
				}
			})
		}
	}
}
