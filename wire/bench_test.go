package wire_test

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

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

// BenchmarkDecoder reads a stream of packets with Next; with NextInto into
// one packet whose pooled memory is given back after each (what the
// runtime's read loop does with requests and responses); and with NextLent,
// each packet left in the read buffer (its one-way packets).
func BenchmarkDecoder(b *testing.B) {
	const packets = 1024
	p := benchPacket()
	stream := make([]byte, 0, packets*p.EncodedLen())
	for range packets {
		stream = mustAppend(b, stream, p)
	}
	for _, how := range []string{"next", "into", "lent"} {
		b.Run(how, func(b *testing.B) {
			r := bytes.NewReader(stream)
			b.SetBytes(int64(len(stream)))
			b.ReportAllocs()
			for b.Loop() {
				r.Reset(stream)
				dec := wire.NewDecoder(r, wire.Limits{})
				if how != "next" {
					dec.PoolBodies()
				}
				var q wire.Packet
				var err error
				n := 0
				for {
					switch how {
					case "into":
						err = dec.NextInto(&q)
						q.Release()
					case "lent":
						err = dec.NextLent(&q)
						q.Release()
					default:
						_, err = dec.Next()
					}
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
		})
	}
}

// BenchmarkDecoderSocket reads packets that a writer sends in batches over
// loopback TCP, with and without an idle timeout (SetIdleTimeout), which
// costs a clock reading per wait between batches and a deadline set about
// once per half idle time.
func BenchmarkDecoderSocket(b *testing.B) {
	for _, idle := range []time.Duration{0, 500 * time.Millisecond} {
		b.Run(fmt.Sprint("idle=", idle), func(b *testing.B) {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			client, err := net.Dial("tcp", l.Addr().String())
			if err != nil {
				b.Fatal(err)
			}
			defer client.Close()
			server, err := l.Accept()
			if err != nil {
				b.Fatal(err)
			}
			defer server.Close()
			const batch = 16
			p := benchPacket()
			var burst []byte
			for range batch {
				burst = mustAppend(b, burst, p)
			}
			dec := wire.NewDecoder(server, wire.Limits{})
			dec.PoolBodies()
			dec.SetIdleTimeout(idle)
			done := make(chan struct{})
			defer close(done)
			go func() {
				for {
					select {
					case <-done:
						return
					default:
					}
					if _, err := client.Write(burst); err != nil {
						return
					}
				}
			}()
			b.SetBytes(int64(len(burst) / batch))
			b.ReportAllocs()
			for b.Loop() {
				q, err := dec.Next()
				if err != nil {
					b.Fatal(err)
				}
				q.Release()
			}
		})
	}
}
