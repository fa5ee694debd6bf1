package compress_test

import (
	"bytes"
	"errors"
	goruntime "runtime"
	"testing"

	"github.com/msgtrans/msgtrans-go/wire"
	"github.com/msgtrans/msgtrans-go/wire/compress"
)

// maxDecompressAlloc bounds what one Decompress call with a cap of at most
// 1 MiB may allocate: the output, its growth, and a zstd window of up to the
// 8 MiB every zstd decoder is expected to support.
const maxDecompressAlloc = 32 << 20

func FuzzDecompress(f *testing.F) {
	text := bytes.Repeat([]byte("fuzz the decompressor "), 100)
	f.Add(zstdCompress(f, text), uint8(wire.CompressionZstd), uint32(1<<20))
	f.Add(zstdCompress(f, text), uint8(wire.CompressionZstd), uint32(100))
	f.Add(zstdCompressStream(f, text), uint8(wire.CompressionZstd), uint32(len(text)))
	f.Add(zstdZeros(4<<20), uint8(wire.CompressionZstd), uint32(1<<20))
	f.Add(zlibCompress(f, text), uint8(wire.CompressionZlib), uint32(1<<20))
	f.Add(zlibCompress(f, text), uint8(wire.CompressionZlib), uint32(len(text)-1))
	f.Add(zlibZeros(f, 2), uint8(wire.CompressionZlib), uint32(1<<20))
	f.Add([]byte("garbage"), uint8(wire.CompressionZstd), uint32(100))
	f.Add([]byte("garbage"), uint8(wire.CompressionZlib), uint32(100))
	f.Add(text, uint8(wire.CompressionNone), uint32(0))
	f.Add(text, uint8(3), uint32(100))
	f.Fuzz(func(t *testing.T, payload []byte, alg uint8, limit uint32) {
		maxOut := int(limit % (1<<20 + 1))
		orig := bytes.Clone(payload)
		p := wire.Packet{Compression: wire.Compression(alg), Payload: payload}
		var before, after goruntime.MemStats
		goruntime.ReadMemStats(&before)
		err := compress.Decompress(&p, maxOut)
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
			if !errors.Is(err, wire.ErrProtocol) && !errors.Is(err, wire.ErrTooLarge) {
				t.Fatalf("Decompress: %v wraps neither ErrProtocol nor ErrTooLarge", err)
			}
			if alg == uint8(wire.CompressionNone) {
				t.Fatalf("Decompress of an uncompressed payload failed: %v", err)
			}
		case alg == uint8(wire.CompressionNone):
			if !bytes.Equal(p.Payload, orig) {
				t.Fatalf("Decompress changed an uncompressed payload")
			}
		default:
			if p.Compression != wire.CompressionNone {
				t.Fatalf("Compression after Decompress: got %v, want none", p.Compression)
			}
			if len(p.Payload) > maxOut {
				t.Fatalf("Decompress returned %d bytes, over the cap of %d", len(p.Payload), maxOut)
			}
		}
	})
}
