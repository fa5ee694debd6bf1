package runtime_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	goruntime "runtime"
	"testing"

	"github.com/msgtrans/msgtrans-go/runtime"
)

// fuzzLimits keep declared sizes small, so that the decoder's allocations do
// not slow fuzzing down, while still admitting payloads larger than its
// 32 KiB read buffer.
var fuzzLimits = runtime.Limits{MaxPayload: 64 << 10, MaxExtHeader: 1 << 10}

// errClass names the kind of error a decoder reports.
func errClass(err error) string {
	switch {
	case err == nil:
		return "nil"
	case err == io.EOF:
		return "EOF"
	case errors.Is(err, runtime.ErrTruncated):
		return "truncated"
	case errors.Is(err, runtime.ErrTooLarge):
		return "too-large"
	case errors.Is(err, runtime.ErrProtocol):
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
	everything := mustAppend(tb, nil, &runtime.Packet{
		Type: runtime.Response, Compression: runtime.CompressionZlib, BizType: 255,
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
		p, n, err := runtime.ParsePacket(b, fuzzLimits)
		dp, derr := runtime.NewDecoder(bytes.NewReader(b), fuzzLimits).Next()
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
		if n < runtime.HeaderSize || n > len(b) || n != p.EncodedLen() {
			t.Fatalf("ParsePacket consumed %d of %d bytes for a packet of EncodedLen %d", n, len(b), p.EncodedLen())
		}
		enc, err := runtime.AppendPacket(nil, &p)
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
	var stream []runtime.Packet
	for i := range 12 {
		stream = append(stream, runtime.Packet{
			Type: runtime.PacketType(i % 3), MessageID: uint32(i), BizType: uint8(i * 20),
			Flags: runtime.Flags(i), Ext: make([]byte, i%4), Payload: bytes.Repeat([]byte{byte(i)}, i*7),
		})
	}
	f.Add(encodeAll(f, stream), uint64(99))
	f.Fuzz(func(t *testing.T, data []byte, seed uint64) {
		// The reference: repeated ParsePacket over the whole buffer.
		var want []runtime.Packet
		wantErr := "EOF"
		for rest := data; len(rest) > 0; {
			p, n, err := runtime.ParsePacket(rest, fuzzLimits)
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
		got, err := decodeAll(runtime.NewDecoder(r, fuzzLimits))
		for i := range min(len(got), len(want)) {
			if d := packetDiff(got[i], want[i]); d != "" {
				t.Fatalf("packet %d: %s", i, d)
			}
		}
		if len(got) != len(want) {
			t.Fatalf("decoder returned %d packets, ParsePacket %d", len(got), len(want))
		}
		if gotErr := errClass(err); gotErr != wantErr {
			t.Fatalf("final error: got %s (%v), want %s", gotErr, err, wantErr)
		}
	})
}

// maxDecompressAlloc bounds what one Decompress call with a cap of at most
// 1 MiB may allocate: the output, its growth, and a zstd window of up to the
// 8 MiB every zstd decoder is expected to support.
const maxDecompressAlloc = 32 << 20

func FuzzDecompress(f *testing.F) {
	text := bytes.Repeat([]byte("fuzz the decompressor "), 100)
	f.Add(zstdCompress(f, text), uint8(runtime.CompressionZstd), uint32(1<<20))
	f.Add(zstdCompress(f, text), uint8(runtime.CompressionZstd), uint32(100))
	f.Add(zstdCompressStream(f, text), uint8(runtime.CompressionZstd), uint32(len(text)))
	f.Add(zstdZeros(4<<20), uint8(runtime.CompressionZstd), uint32(1<<20))
	f.Add(zlibCompress(f, text), uint8(runtime.CompressionZlib), uint32(1<<20))
	f.Add(zlibCompress(f, text), uint8(runtime.CompressionZlib), uint32(len(text)-1))
	f.Add(zlibZeros(f, 2), uint8(runtime.CompressionZlib), uint32(1<<20))
	f.Add([]byte("garbage"), uint8(runtime.CompressionZstd), uint32(100))
	f.Add([]byte("garbage"), uint8(runtime.CompressionZlib), uint32(100))
	f.Add(text, uint8(runtime.CompressionNone), uint32(0))
	f.Add(text, uint8(3), uint32(100))
	f.Fuzz(func(t *testing.T, payload []byte, alg uint8, limit uint32) {
		maxOut := int(limit % (1<<20 + 1))
		orig := bytes.Clone(payload)
		p := runtime.Packet{Compression: runtime.Compression(alg), Payload: payload}
		var before, after goruntime.MemStats
		goruntime.ReadMemStats(&before)
		err := runtime.Decompress(&p, maxOut)
		goruntime.ReadMemStats(&after)

		if !bytes.Equal(payload, orig) {
			t.Fatalf("Decompress modified its input")
		}
		if delta := after.TotalAlloc - before.TotalAlloc; delta > maxDecompressAlloc {
			t.Fatalf("Decompress of %d bytes with a cap of %d allocated %d MiB (err %v)",
				len(payload), maxOut, delta>>20, err)
		}
		switch {
		case err != nil:
			if !errors.Is(err, runtime.ErrProtocol) && !errors.Is(err, runtime.ErrTooLarge) {
				t.Fatalf("Decompress: %v wraps neither ErrProtocol nor ErrTooLarge", err)
			}
			if alg == uint8(runtime.CompressionNone) {
				t.Fatalf("Decompress of an uncompressed payload failed: %v", err)
			}
		case alg == uint8(runtime.CompressionNone):
			if !bytes.Equal(p.Payload, orig) {
				t.Fatalf("Decompress changed an uncompressed payload")
			}
		default:
			if p.Compression != runtime.CompressionNone {
				t.Fatalf("Compression after Decompress: got %v, want none", p.Compression)
			}
			if len(p.Payload) > maxOut {
				t.Fatalf("Decompress returned %d bytes, over the cap of %d", len(p.Payload), maxOut)
			}
		}
	})
}
