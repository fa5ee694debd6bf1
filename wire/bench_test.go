package wire_test

import (
	"bytes"
	"io"
	"testing"

	"github.com/msgtrans/msgtrans-go/wire"
)

// benchPacket is a typical small message: a 64-byte payload and a short ext
// header.
func benchPacket() *wire.Packet {
	return &wire.Packet{
		Type: wire.Request, BizType: 1, MessageID: 42, Flags: wire.FlagHasRouteTag,
		Ext: make([]byte, 8), Payload: bytes.Repeat([]byte{'x'}, 64),
	}
}

func BenchmarkAppendPacket(b *testing.B) {
	p := benchPacket()
	buf := make([]byte, 0, p.EncodedLen())
	b.SetBytes(int64(p.EncodedLen()))
	b.ReportAllocs()
	for b.Loop() {
		var err error
		buf, err = wire.AppendPacket(buf[:0], p)
		if err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParsePacket(b *testing.B) {
	enc := mustAppend(b, nil, benchPacket())
	b.SetBytes(int64(len(enc)))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := wire.ParsePacket(enc, wire.Limits{}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecoder(b *testing.B) {
	const packets = 1024
	p := benchPacket()
	stream := make([]byte, 0, packets*p.EncodedLen())
	for range packets {
		stream = mustAppend(b, stream, p)
	}
	r := bytes.NewReader(stream)
	b.SetBytes(int64(len(stream)))
	b.ReportAllocs()
	for b.Loop() {
		r.Reset(stream)
		dec := wire.NewDecoder(r, wire.Limits{})
		n := 0
		for {
			_, err := dec.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			n++
		}
		if n != packets {
			b.Fatalf("decoded %d packets, want %d", n, packets)
		}
	}
}
