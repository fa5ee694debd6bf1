// Package compress compresses and decompresses the payloads of msgtrans wire
// v1 packets: zstd (compression 1) and zlib (compression 2), with a cap on
// what a payload may inflate to that holds before the memory is spent.
package compress

import (
	"bytes"
	"compress/zlib"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/klauspost/compress/zstd"
	"github.com/msgtrans/msgtrans-go/wire"
)

// Compressor configures compression of outgoing payloads. The zero value
// compresses nothing.
type Compressor struct {
	// Algorithm is CompressionZstd or CompressionZlib; CompressionNone
	// disables compression.
	Algorithm wire.Compression
	// Threshold is the smallest payload, in bytes, that is compressed.
	// Zero means 1 KiB; smaller payloads rarely shrink.
	Threshold int
}

const defaultCompressThreshold = 1 << 10

// MinSize returns the smallest payload c compresses: Threshold, or 1 KiB.
func (c Compressor) MinSize() int {
	if c.Threshold <= 0 {
		return defaultCompressThreshold
	}
	return c.Threshold
}

// Compress returns p with its payload compressed when c asks for it and
// that makes the payload smaller; otherwise p unchanged.
func (c Compressor) Compress(p *wire.Packet) *wire.Packet {
	if c.Algorithm == wire.CompressionNone || p.Compression != wire.CompressionNone || len(p.Payload) < c.MinSize() {
		return p
	}
	out, err := compressPayload(c.Algorithm, p.Payload)
	if err != nil || len(out) >= len(p.Payload) {
		return p
	}
	q := *p
	q.Compression = c.Algorithm
	q.Payload = out
	return &q
}

var (
	zstdEncoders = sync.Pool{New: func() any {
		e, _ := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1), zstd.WithLowerEncoderMem(true))
		return e
	}}
	zstdDecoders = sync.Pool{New: func() any {
		d, _ := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true),
			zstd.WithDecoderMaxWindow(zstdMaxWindow))
		return d
	}}
	zlibWriters = sync.Pool{New: func() any { return zlib.NewWriter(nil) }}
)

// zstdMaxWindow is the largest zstd window Decompress accepts: 8 MiB, what
// RFC 8878 recommends every decoder support. A frame may declare a window
// far larger than its output, and the decoder allocates the window up
// front, so without this bound a 10-byte payload could cost 512 MiB.
const zstdMaxWindow = 8 << 20

func compressPayload(alg wire.Compression, src []byte) ([]byte, error) {
	switch alg {
	case wire.CompressionZstd:
		e := zstdEncoders.Get().(*zstd.Encoder)
		defer zstdEncoders.Put(e)
		return e.EncodeAll(src, nil), nil
	case wire.CompressionZlib:
		var b bytes.Buffer
		w := zlibWriters.Get().(*zlib.Writer)
		defer zlibWriters.Put(w)
		w.Reset(&b)
		if _, err := w.Write(src); err != nil {
			return nil, err
		}
		if err := w.Close(); err != nil {
			return nil, err
		}
		return b.Bytes(), nil
	}
	return nil, fmt.Errorf("%w: unknown compression %d", wire.ErrProtocol, alg)
}

// Decompress replaces a compressed payload of p with its decompressed bytes
// and sets p.Compression to CompressionNone. Output beyond max bytes fails
// with an error wrapping [ErrTooLarge]; corrupt input fails with one wrapping
// [ErrProtocol]. Memory grows with the output as it is produced, never to the
// size a peer claims.
func Decompress(p *wire.Packet, max int) error {
	if p.Compression == wire.CompressionNone {
		return nil
	}
	var r io.Reader
	switch p.Compression {
	case wire.CompressionZstd:
		d := zstdDecoders.Get().(*zstd.Decoder)
		if err := d.Reset(bytes.NewReader(p.Payload)); err != nil {
			zstdDecoders.Put(d)
			return fmt.Errorf("%w: zstd: %v", wire.ErrProtocol, err)
		}
		defer func() {
			_ = d.Reset(nil)
			zstdDecoders.Put(d)
		}()
		r = d
	case wire.CompressionZlib:
		zr, err := zlib.NewReader(bytes.NewReader(p.Payload))
		if err != nil {
			return fmt.Errorf("%w: zlib: %v", wire.ErrProtocol, err)
		}
		r = zr
	default:
		return fmt.Errorf("%w: unknown compression %d", wire.ErrProtocol, p.Compression)
	}
	out, err := io.ReadAll(io.LimitReader(r, int64(max)+1))
	if errors.Is(err, zstd.ErrWindowSizeExceeded) || errors.Is(err, zstd.ErrDecoderSizeExceeded) {
		return fmt.Errorf("%w: zstd window over %d bytes", wire.ErrTooLarge, zstdMaxWindow)
	}
	if err != nil {
		return fmt.Errorf("%w: %s payload: %v", wire.ErrProtocol, p.Compression, err)
	}
	if len(out) > max {
		return fmt.Errorf("%w: payload decompresses to more than %d bytes", wire.ErrTooLarge, max)
	}
	if len(out) == 0 {
		out = nil
	}
	p.Payload = out
	p.Compression = wire.CompressionNone
	return nil
}
