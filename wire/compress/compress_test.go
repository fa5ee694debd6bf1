package compress_test

import (
	"bytes"
	"compress/flate"
	"compress/zlib"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"reflect"
	goruntime "runtime"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/msgtrans/msgtrans-go/wire"
	"github.com/msgtrans/msgtrans-go/wire/compress"
)

func zstdCompress(tb testing.TB, src []byte) []byte {
	tb.Helper()
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1))
	if err != nil {
		tb.Fatal(err)
	}
	defer enc.Close()
	return enc.EncodeAll(src, nil)
}

// zstdCompressStream compresses src as a stream, so the frame does not
// declare its content size.
func zstdCompressStream(tb testing.TB, src []byte) []byte {
	tb.Helper()
	var b bytes.Buffer
	enc, err := zstd.NewWriter(&b, zstd.WithEncoderConcurrency(1))
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := enc.Write(src); err != nil {
		tb.Fatal(err)
	}
	if err := enc.Close(); err != nil {
		tb.Fatal(err)
	}
	return b.Bytes()
}

func zlibCompress(tb testing.TB, src []byte) []byte {
	tb.Helper()
	var b bytes.Buffer
	w := zlib.NewWriter(&b)
	if _, err := w.Write(src); err != nil {
		tb.Fatal(err)
	}
	if err := w.Close(); err != nil {
		tb.Fatal(err)
	}
	return b.Bytes()
}

// zstdZeros returns a zstd frame that decompresses to n zeros (n > 0), made
// of 128 KiB RLE blocks: a few bytes per block whatever n is.
func zstdZeros(n int) []byte {
	// Magic, then a frame header descriptor without content size or
	// checksum, then a window descriptor of 2^(10+7) = 128 KiB.
	frame := []byte{0x28, 0xB5, 0x2F, 0xFD, 0x00, 7 << 3}
	for n > 0 {
		size := min(n, 128<<10)
		n -= size
		hdr := uint32(size)<<3 | 1<<1 // block type 1: RLE
		if n == 0 {
			hdr |= 1 // last block
		}
		frame = append(frame, byte(hdr), byte(hdr>>8), byte(hdr>>16), 0x00)
	}
	return frame
}

// zlibZeros returns a zlib stream that inflates to mib MiB of zeros, built
// without compressing that much: a deflate run of 1 MiB of zeros that only
// refers back to earlier zeros can be repeated as often as wanted.
func zlibZeros(tb testing.TB, mib int) []byte {
	tb.Helper()
	var d bytes.Buffer
	fw, err := flate.NewWriter(&d, flate.DefaultCompression)
	if err != nil {
		tb.Fatal(err)
	}
	zeros := make([]byte, 1<<20)
	step := func() []byte {
		if _, err := fw.Write(zeros); err != nil {
			tb.Fatal(err)
		}
		if err := fw.Flush(); err != nil { // ends on a byte boundary
			tb.Fatal(err)
		}
		b := bytes.Clone(d.Bytes())
		d.Reset()
		return b
	}
	first, unit := step(), step()
	if err := fw.Close(); err != nil {
		tb.Fatal(err)
	}
	out := []byte{0x78, 0x9C} // zlib header: deflate, 32 KiB window
	out = append(out, first...)
	for range mib - 1 {
		out = append(out, unit...)
	}
	out = append(out, d.Bytes()...) // the final, empty block
	// Adler-32 of n zeros: a stays 1 and b adds 1 per byte.
	n := uint32(uint64(mib<<20) % 65521)
	return binary.BigEndian.AppendUint32(out, n<<16|1)
}

func TestCompressBombBuilders(t *testing.T) {
	// The bomb builders are only worth something if they build what they say.
	zr, err := zlib.NewReader(bytes.NewReader(zlibZeros(t, 3)))
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("inflating zlibZeros(3): %v", err)
	}
	if len(got) != 3<<20 || !bytes.Equal(got, make([]byte, 3<<20)) {
		t.Errorf("zlibZeros(3) inflates to %d bytes, want %d zeros", len(got), 3<<20)
	}

	dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1))
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	n := 3<<20 + 5
	got, err = dec.DecodeAll(zstdZeros(n), nil)
	if err != nil {
		t.Fatalf("decoding zstdZeros: %v", err)
	}
	if len(got) != n || !bytes.Equal(got, make([]byte, n)) {
		t.Errorf("zstdZeros(%d) decodes to %d bytes, want %d zeros", n, len(got), n)
	}
}

func TestCompressDecompress(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 11))
	text := bytes.Repeat([]byte("msgtrans wire format v1 payload "), 400)
	random := randBytes(rng, 5000)
	tests := []struct {
		name     string
		alg      wire.Compression
		payload  []byte
		original []byte
	}{
		{"zstd_text", wire.CompressionZstd, zstdCompress(t, text), text},
		{"zstd_random", wire.CompressionZstd, zstdCompress(t, random), random},
		{"zstd_stream_without_content_size", wire.CompressionZstd, zstdCompressStream(t, text), text},
		{"zstd_two_frames", wire.CompressionZstd, append(zstdCompress(t, text[:100]), zstdCompress(t, random)...), append(bytes.Clone(text[:100]), random...)},
		{"zstd_empty", wire.CompressionZstd, zstdCompress(t, nil), nil},
		{"zstd_rle_1MiB", wire.CompressionZstd, zstdZeros(1 << 20), make([]byte, 1<<20)},
		{"zlib_text", wire.CompressionZlib, zlibCompress(t, text), text},
		{"zlib_random", wire.CompressionZlib, zlibCompress(t, random), random},
		{"zlib_empty", wire.CompressionZlib, zlibCompress(t, nil), nil},
		{"zlib_zeros_2MiB", wire.CompressionZlib, zlibZeros(t, 2), make([]byte, 2<<20)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := wire.Packet{
				Type: wire.Request, Compression: tt.alg, BizType: 4, MessageID: 99,
				Flags: wire.FlagHasRouteTag, Ext: []byte("route"), Payload: tt.payload,
			}
			if err := compress.Decompress(&p, wire.DefaultMaxDecompressed); err != nil {
				t.Fatalf("Decompress: %v", err)
			}
			want := wire.Packet{
				Type: wire.Request, Compression: wire.CompressionNone, BizType: 4, MessageID: 99,
				Flags: wire.FlagHasRouteTag, Ext: []byte("route"), Payload: tt.original,
			}
			if !reflect.DeepEqual(p, want) {
				t.Errorf("after Decompress: got %v, want %v", &p, &want)
			}
		})
	}
}

func TestCompressDecompressNoneIsNoOp(t *testing.T) {
	payload := []byte("not compressed at all, and longer than the cap")
	p := wire.Packet{Payload: payload}
	if err := compress.Decompress(&p, 4); err != nil {
		t.Fatalf("Decompress: got %v, want nil", err)
	}
	if p.Compression != wire.CompressionNone {
		t.Errorf("Compression: got %v, want none", p.Compression)
	}
	if len(p.Payload) != len(payload) || &p.Payload[0] != &payload[0] {
		t.Errorf("Decompress replaced an uncompressed payload")
	}
	var empty wire.Packet
	if err := compress.Decompress(&empty, 0); err != nil || empty.Payload != nil {
		t.Errorf("Decompress of an empty packet: got payload %q err %v, want nil and nil", empty.Payload, err)
	}
}

func TestCompressDecompressCap(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789abcdef"), 1<<10) // 16 KiB
	for _, alg := range []struct {
		name    string
		alg     wire.Compression
		payload []byte
	}{
		{"zstd", wire.CompressionZstd, zstdCompress(t, data)},
		{"zstd_stream", wire.CompressionZstd, zstdCompressStream(t, data)},
		{"zlib", wire.CompressionZlib, zlibCompress(t, data)},
	} {
		for _, tt := range []struct {
			name string
			max  int
			want error
		}{
			{"at_cap", len(data), nil},
			{"over_cap_by_one", len(data) - 1, wire.ErrTooLarge},
			{"far_over_cap", 100, wire.ErrTooLarge},
			{"zero_cap", 0, wire.ErrTooLarge},
		} {
			t.Run(alg.name+"/"+tt.name, func(t *testing.T) {
				p := wire.Packet{Compression: alg.alg, Payload: alg.payload}
				err := compress.Decompress(&p, tt.max)
				if tt.want == nil {
					if err != nil {
						t.Fatalf("Decompress: got %v, want nil", err)
					}
					if !bytes.Equal(p.Payload, data) {
						t.Errorf("payload: got %d bytes, want the %d original bytes", len(p.Payload), len(data))
					}
					return
				}
				if !errors.Is(err, tt.want) {
					t.Errorf("Decompress: got %v, want an error wrapping %v", err, tt.want)
				}
			})
		}
	}
}

func TestCompressDecompressBomb(t *testing.T) {
	const declared = 100 << 20
	const limit = 1 << 20
	tests := []struct {
		name    string
		alg     wire.Compression
		payload []byte
	}{
		{"zlib_100MiB_of_zeros", wire.CompressionZlib, zlibZeros(t, declared>>20)},
		{"zstd_100MiB_of_zeros", wire.CompressionZstd, zstdZeros(declared)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Logf("%d compressed bytes", len(tt.payload))
			p := wire.Packet{Compression: tt.alg, Payload: tt.payload}
			var before, after goruntime.MemStats
			goruntime.ReadMemStats(&before)
			err := compress.Decompress(&p, limit)
			goruntime.ReadMemStats(&after)
			if !errors.Is(err, wire.ErrTooLarge) {
				t.Fatalf("Decompress: got %v, want an error wrapping ErrTooLarge", err)
			}
			if delta := after.TotalAlloc - before.TotalAlloc; delta >= 16<<20 {
				t.Errorf("Decompress allocated %d MiB for a %d MiB cap, want less than 16 MiB", delta>>20, limit>>20)
			}
		})
	}
}

func TestCompressDecompressCorrupt(t *testing.T) {
	text := bytes.Repeat([]byte("corrupt me "), 200)
	flip := func(b []byte, i int) []byte {
		b = bytes.Clone(b)
		if i < 0 {
			i += len(b)
		}
		b[i] ^= 0xFF
		return b
	}
	zs := zstdCompress(t, text)
	zl := zlibCompress(t, text)
	tests := []struct {
		name    string
		alg     wire.Compression
		payload []byte
	}{
		{"zstd_garbage", wire.CompressionZstd, []byte("this is not zstd at all")},
		{"zstd_bad_magic", wire.CompressionZstd, flip(zs, 0)},
		{"zstd_truncated", wire.CompressionZstd, zs[:len(zs)/2]},
		{"zstd_bad_checksum", wire.CompressionZstd, flip(zs, -1)},
		{"zstd_zlib_bytes", wire.CompressionZstd, zl},
		{"zlib_garbage", wire.CompressionZlib, []byte("this is not zlib at all")},
		{"zlib_empty_input", wire.CompressionZlib, nil},
		{"zlib_bad_header", wire.CompressionZlib, flip(zl, 0)},
		{"zlib_truncated", wire.CompressionZlib, zl[:len(zl)/2]},
		{"zlib_bad_adler32", wire.CompressionZlib, flip(zl, -1)},
		{"zlib_zstd_bytes", wire.CompressionZlib, zs},
		{"unknown_compression_3", 3, zs},
		{"unknown_compression_255", 255, zl},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := wire.Packet{Compression: tt.alg, Payload: tt.payload}
			if err := compress.Decompress(&p, wire.DefaultMaxDecompressed); !errors.Is(err, wire.ErrProtocol) {
				t.Errorf("Decompress: got %v, want an error wrapping ErrProtocol", err)
			}
		})
	}
}

func TestCompressDecompressLargeWindow(t *testing.T) {
	// A frame that declares a 512 MiB window and holds one byte.
	frame := []byte{0x28, 0xB5, 0x2F, 0xFD, 0x00, 19 << 3, 0x09, 0x00, 0x00, 'a'}
	p := wire.Packet{Compression: wire.CompressionZstd, Payload: frame}
	var before, after goruntime.MemStats
	goruntime.ReadMemStats(&before)
	err := compress.Decompress(&p, 1<<20)
	goruntime.ReadMemStats(&after)
	if delta := after.TotalAlloc - before.TotalAlloc; delta >= 16<<20 {
		t.Errorf("Decompress of a %d-byte payload allocated %d MiB (err %v), want less than 16 MiB",
			len(frame), delta>>20, err)
	}
	if !errors.Is(err, wire.ErrTooLarge) {
		t.Errorf("Decompress: got %v, want an error wrapping ErrTooLarge", err)
	}
}

// randBytes returns n bytes from rng.
func randBytes(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}
