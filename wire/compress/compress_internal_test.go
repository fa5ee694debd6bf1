package compress

// This file tests the Compressor.Compress; everything else is
// tested from package runtime_test.

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/msgtrans/msgtrans-go/wire"
)

func TestCompressorCompress(t *testing.T) {
	rng := rand.New(rand.NewChaCha8([32]byte{1}))
	compressible := func(n int) []byte { return bytes.Repeat([]byte("a"), n) }
	incompressible := make([]byte, 64<<10)
	for i := range incompressible {
		incompressible[i] = byte(rng.Uint32())
	}
	tests := []struct {
		name           string
		c              Compressor
		compression    wire.Compression // of the packet given to compress
		payload        []byte
		wantCompressed bool
	}{
		{"zero_value_compresses_nothing", Compressor{}, wire.CompressionNone, compressible(8 << 10), false},
		{"explicit_none", Compressor{Algorithm: wire.CompressionNone, Threshold: 1}, wire.CompressionNone, compressible(8 << 10), false},
		{"zstd_below_default_threshold", Compressor{Algorithm: wire.CompressionZstd}, wire.CompressionNone, compressible(defaultCompressThreshold - 1), false},
		{"zstd_at_default_threshold", Compressor{Algorithm: wire.CompressionZstd}, wire.CompressionNone, compressible(defaultCompressThreshold), true},
		{"zlib_below_default_threshold", Compressor{Algorithm: wire.CompressionZlib}, wire.CompressionNone, compressible(defaultCompressThreshold - 1), false},
		{"zlib_at_default_threshold", Compressor{Algorithm: wire.CompressionZlib}, wire.CompressionNone, compressible(defaultCompressThreshold), true},
		{"negative_threshold_means_default", Compressor{Algorithm: wire.CompressionZstd, Threshold: -5}, wire.CompressionNone, compressible(defaultCompressThreshold - 1), false},
		{"custom_threshold_below", Compressor{Algorithm: wire.CompressionZlib, Threshold: 100}, wire.CompressionNone, compressible(99), false},
		{"custom_threshold_at", Compressor{Algorithm: wire.CompressionZlib, Threshold: 100}, wire.CompressionNone, compressible(100), true},
		{"custom_threshold_above_default", Compressor{Algorithm: wire.CompressionZstd, Threshold: 4 << 10}, wire.CompressionNone, compressible(2 << 10), false},
		{"zstd_incompressible_left_alone", Compressor{Algorithm: wire.CompressionZstd}, wire.CompressionNone, incompressible, false},
		{"zlib_incompressible_left_alone", Compressor{Algorithm: wire.CompressionZlib}, wire.CompressionNone, incompressible, false},
		{"already_compressed_left_alone", Compressor{Algorithm: wire.CompressionZstd}, wire.CompressionZlib, compressible(8 << 10), false},
		{"zstd_large", Compressor{Algorithm: wire.CompressionZstd}, wire.CompressionNone, compressible(1 << 20), true},
		{"zlib_large", Compressor{Algorithm: wire.CompressionZlib}, wire.CompressionNone, compressible(1 << 20), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &wire.Packet{
				Type: wire.Request, Compression: tt.compression, BizType: 7, MessageID: 31,
				Flags: wire.FlagHighPriority, Ext: []byte("ext"), Payload: tt.payload,
			}
			orig := *p
			origPayload := bytes.Clone(p.Payload)
			q := tt.c.Compress(p)

			if p.Compression != orig.Compression || &p.Payload[0] != &orig.Payload[0] || !bytes.Equal(p.Payload, origPayload) {
				t.Fatalf("compress modified its argument: got %v, want %v", p, &orig)
			}
			if !tt.wantCompressed {
				if q != p {
					t.Errorf("compress returned a new packet %v, want the argument unchanged", q)
				}
				return
			}
			if q == p {
				t.Fatalf("compress returned its argument, want a compressed copy")
			}
			if q.Compression != tt.c.Algorithm {
				t.Errorf("Compression: got %v, want %v", q.Compression, tt.c.Algorithm)
			}
			if len(q.Payload) >= len(p.Payload) {
				t.Errorf("compressed payload of %d bytes is not smaller than %d", len(q.Payload), len(p.Payload))
			}
			if q.Type != p.Type || q.BizType != p.BizType || q.MessageID != p.MessageID ||
				q.Flags != p.Flags || !bytes.Equal(q.Ext, p.Ext) {
				t.Errorf("header fields: got %v, want those of %v", q, p)
			}
			if err := Decompress(q, len(origPayload)); err != nil {
				t.Fatalf("Decompress: %v", err)
			}
			if q.Compression != wire.CompressionNone || !bytes.Equal(q.Payload, origPayload) {
				t.Errorf("after Decompress: got %v with %d payload bytes, want %d original bytes",
					q, len(q.Payload), len(origPayload))
			}
		})
	}
}

func TestCompressPayloadUnknownAlgorithm(t *testing.T) {
	for _, alg := range []wire.Compression{wire.CompressionNone, 3, 255} {
		if _, err := compressPayload(alg, []byte("x")); !errors.Is(err, wire.ErrProtocol) {
			t.Errorf("compressPayload(%v): got %v, want an error wrapping wire.ErrProtocol", alg, err)
		}
	}
}
