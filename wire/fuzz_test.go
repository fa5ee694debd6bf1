package wire_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/msgtrans/msgtrans-go/wire"
)

// fuzzLimits keep declared sizes small, so that the decoder's allocations do
// not slow fuzzing down, while still admitting payloads larger than its
// 32 KiB read buffer.
var fuzzLimits = wire.Limits{MaxPayload: 64 << 10, MaxExtHeader: 1 << 10}

// errClass names the kind of error a decoder reports.
func errClass(err error) string {
	switch {
	case err == nil:
		return "nil"
	case err == io.EOF:
		return "EOF"
	case errors.Is(err, wire.ErrTruncated):
		return "truncated"
	case errors.Is(err, wire.ErrTooLarge):
		return "too-large"
	case errors.Is(err, wire.ErrProtocol):
		return "protocol"
	}
	return "unexpected error: " + err.Error()
}

// decodeSeeds returns the fixtures' encodings, when the fixtures are present,
// and a few hand-made inputs. The seeds stay small: the fuzzer minimizes
// every input that finds new coverage, which is slow for large inputs, and
// the unit tests already cover packets larger than the read buffer.
func decodeSeeds(tb testing.TB) [][]byte {
	var seeds [][]byte
	if dir, ok := wireFixturesDir(); ok {
		for _, fx := range loadWireFixtures(tb, dir) {
			seeds = append(seeds, fx.bin)
		}
	}
	hugePayload := validPacketBytes(0, 0)
	binary.BigEndian.PutUint32(hugePayload[10:14], 0xFFFFFFFF)
	badVersion := validPacketBytes(2, 3)
	badVersion[0] = 2
	everything := mustAppend(tb, nil, &wire.Packet{
		Type: wire.Response, Compression: wire.CompressionZlib, BizType: 255,
		MessageID: 0xFFFFFFFF, Flags: 0xFFFF, Ext: []byte("ext"), Payload: []byte("payload"),
	})
	return append(seeds,
		nil,
		validPacketBytes(0, 0),
		validPacketBytes(3, 4),
		validPacketBytes(3, 4)[:9],
		validPacketBytes(3, 4)[:20],
		append(validPacketBytes(1, 2), validPacketBytes(0, 5)...),
		validPacketBytes(0, 300),
		everything,
		badVersion,
		hugePayload,
	)
}

func FuzzDecode(f *testing.F) {
	for _, s := range decodeSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, n, err := wire.ParsePacket(b, fuzzLimits)
		dp, derr := wire.NewDecoder(bytes.NewReader(b), fuzzLimits).Next()
		if err != nil {
			class := errClass(err)
			if class != "truncated" && class != "protocol" && class != "too-large" {
				t.Fatalf("ParsePacket: %s", class)
			}
			if n != 0 {
				t.Fatalf("ParsePacket failed with %v but consumed %d bytes", err, n)
			}
			want := class
			if len(b) == 0 {
				want = "EOF" // a stream that ends before any packet ends cleanly
			}
			if got := errClass(derr); got != want {
				t.Fatalf("Decoder: got %s (%v), want %s like ParsePacket (%v)", got, derr, want, err)
			}
			return
		}
		if n < wire.HeaderSize || n > len(b) || n != p.EncodedLen() {
			t.Fatalf("ParsePacket consumed %d of %d bytes for a packet of EncodedLen %d", n, len(b), p.EncodedLen())
		}
		enc, err := wire.AppendPacket(nil, &p)
		if err != nil {
			t.Fatalf("AppendPacket of a parsed packet: %v", err)
		}
		if !bytes.Equal(enc, b[:n]) {
			t.Fatalf("AppendPacket(ParsePacket(b)):\n got % x\nwant % x", enc, b[:n])
		}
		if derr != nil {
			t.Fatalf("Decoder failed with %v where ParsePacket succeeded", derr)
		}
		if d := packetDiff(dp, p); d != "" {
			t.Fatalf("Decoder and ParsePacket disagree: %s", d)
		}
	})
}

func FuzzDecodeChunked(f *testing.F) {
	for i, s := range decodeSeeds(f) {
		f.Add(s, uint64(i))
	}
	var stream []wire.Packet
	for i := range 12 {
		stream = append(stream, wire.Packet{
			Type: wire.PacketType(i % 3), MessageID: uint32(i), BizType: uint8(i * 20),
			Flags: wire.Flags(i), Ext: make([]byte, i%4), Payload: bytes.Repeat([]byte{byte(i)}, i*7),
		})
	}
	f.Add(encodeAll(f, stream), uint64(99))
	f.Fuzz(func(t *testing.T, data []byte, seed uint64) {
		// The reference: repeated ParsePacket over the whole buffer.
		var want []wire.Packet
		wantErr := "EOF"
		for rest := data; len(rest) > 0; {
			p, n, err := wire.ParsePacket(rest, fuzzLimits)
			if err != nil {
				wantErr = errClass(err)
				break
			}
			want = append(want, p)
			rest = rest[n:]
		}

		// The same bytes through the decoder, in chunks chosen by seed; odd
		// seeds deliver io.EOF along with the last chunk.
		rng := rand.New(rand.NewPCG(seed, ^seed))
		maxChunk := 1 + int((seed>>1)%64)
		r := &chunkReader{data: data, eofWithData: seed&1 == 1, next: func() int {
			if rng.IntN(16) == 0 {
				return 1 + rng.IntN(64<<10)
			}
			return 1 + rng.IntN(maxChunk)
		}}
		got, err := decodeAll(wire.NewDecoder(r, fuzzLimits))
		checkDecoded(t, "Next", got, want, err, wantErr)
		// The same again through NextLent, each packet copied before the
		// next call.
		rng = rand.New(rand.NewPCG(seed, ^seed))
		r.data = data
		got, err = decodeAllLent(wire.NewDecoder(r, fuzzLimits))
		checkDecoded(t, "NextLent", got, want, err, wantErr)
	})
}

// checkDecoded compares a decoder's packets and final error with those of
// ParsePacket.
func checkDecoded(t *testing.T, how string, got, want []wire.Packet, err error, wantErr string) {
	t.Helper()
	for i := range min(len(got), len(want)) {
		if d := packetDiff(got[i], want[i]); d != "" {
			t.Fatalf("%s: packet %d: %s", how, i, d)
		}
	}
	if len(got) != len(want) {
		t.Fatalf("%s: decoder returned %d packets, ParsePacket %d", how, len(got), len(want))
	}
	if gotErr := errClass(err); gotErr != wantErr {
		t.Fatalf("%s: final error: got %s (%v), want %s", how, gotErr, err, wantErr)
	}
}

// decodeAllLent is decodeAll through NextLent: each packet is given
// memory of its own before the next call.
func decodeAllLent(dec *wire.Decoder) ([]wire.Packet, error) {
	var ps []wire.Packet
	for {
		var p wire.Packet
		if err := dec.NextLent(&p); err != nil {
			return ps, err
		}
		p.Own()
		ps = append(ps, p)
	}
}
