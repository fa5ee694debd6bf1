package wire_test

import (
	"bytes"
	"fmt"
	"io"
	"testing"

	"github.com/msgtrans/msgtrans-go/wire"
)

// TestDecoderNextLent: NextLent returns the same packets as Next, however
// the stream is cut; those read ahead whole are lent, and a lent packet
// given memory of its own (Own, Detach) keeps its bytes through every read
// that follows, the other decoders' too, while a released one forgets
// what it borrowed.
func TestDecoderNextLent(t *testing.T) {
	want := testPackets(90, 11)
	src := encodeAll(t, want)
	for _, pool := range []bool{false, true} {
		for _, rc := range append(streamReaders, readerCase{"groups_of_3", func([]byte) io.Reader { return groupReader(t, want, 3) }}) {
			t.Run(fmt.Sprintf("pool=%v/%s", pool, rc.name), func(t *testing.T) {
				buf := bytes.Clone(src)
				noise := fillerPackets(t)
				dec := wire.NewDecoder(rc.make(buf), wire.Limits{})
				if pool {
					dec.PoolBodies()
				}
				var seen, kept []wire.Packet
				var keptAt []int
				lent := 0
				for i := 0; ; i++ {
					var p wire.Packet
					err := dec.NextLent(&p)
					if err == io.EOF {
						break
					}
					if err != nil {
						t.Fatalf("packet %d: %v", i, err)
					}
					// Another decoder at work meanwhile (taking read
					// buffers from the same pool) must not touch it.
					interlope(t, noise)
					// Copied before the next call, as a reader must.
					seen = append(seen, wire.Packet{Type: p.Type, Compression: p.Compression, BizType: p.BizType, MessageID: p.MessageID, Flags: p.Flags,
						Ext: bytes.Clone(p.Ext), Payload: bytes.Clone(p.Payload)})
					if p.Lent() {
						lent++
						if len(p.Ext)+len(p.Payload) == 0 {
							t.Errorf("packet %d: lent with an empty body", i)
						}
					}
					switch i % 3 {
					case 0:
						p.Own()
					case 1:
						p.Detach()
					default:
						wasLent := p.Lent()
						p.Release()
						if wasLent && (p.Ext != nil || p.Payload != nil || p.Lent()) {
							t.Errorf("packet %d: a released lent packet still refers to its memory", i)
						}
						continue
					}
					if p.Lent() {
						t.Errorf("packet %d: still lent after Own or Detach", i)
					}
					if cap(p.Ext) != len(p.Ext) {
						t.Errorf("packet %d: cap(Ext) = %d, want %d so that appending to Ext cannot overwrite Payload", i, cap(p.Ext), len(p.Ext))
					}
					kept = append(kept, p)
					keptAt = append(keptAt, i)
				}
				checkPackets(t, seen, want)
				if rc.name == "whole" && lent < len(want)/2 {
					t.Errorf("%d of %d packets lent from a reader that returns everything at once, want most", lent, len(want))
				}
				// The source and the pooled read buffers are overwritten:
				// what was kept must not change.
				for i := range buf {
					buf[i] = 0xAA
				}
				interlope(t, encodeAll(t, testPackets(90, 12)))
				for k, p := range kept {
					if d := packetDiff(p, want[keptAt[k]]); d != "" {
						t.Errorf("kept packet %d changed: %s", keptAt[k], d)
					}
					p.Release()
				}
			})
		}
	}
}

// groupReader returns a reader of the packets that returns them n at a
// time, each read ending at a packet's end: the last packet of each read
// is lent with nothing read ahead after it.
func groupReader(t *testing.T, ps []wire.Packet, n int) io.Reader {
	r := &chunks{}
	for i := 0; i < len(ps); i += n {
		r.c = append(r.c, encodeAll(t, ps[i:min(i+n, len(ps))]))
	}
	return r
}

type chunks struct{ c [][]byte }

func (r *chunks) Read(p []byte) (int, error) {
	if len(r.c) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.c[0])
	if r.c[0] = r.c[0][n:]; len(r.c[0]) == 0 {
		r.c = r.c[1:]
	}
	return n, nil
}

// fillerPackets returns the bytes of 40 packets of 1 KiB: more than a
// decoder's read-ahead buffer holds.
func fillerPackets(t *testing.T) []byte {
	var b []byte
	for i := range 40 {
		b = mustAppend(t, b, wire.NewOneWay(uint8(i), bytes.Repeat([]byte{0x55}, 1<<10)))
	}
	return b
}

// interlope decodes b with decoders of its own, which read ahead and take
// bodies from the pools, and scribbles over every packet. Four read at
// once, so that between them they take the read buffers most recently
// given back.
func interlope(t *testing.T, b []byte) {
	t.Helper()
	var decs []*wire.Decoder
	for range 4 {
		d := wire.NewDecoder(bytes.NewReader(b), wire.Limits{})
		d.PoolBodies()
		decs = append(decs, d)
	}
	for len(decs) > 0 {
		for i := 0; i < len(decs); i++ {
			var p wire.Packet
			if err := decs[i].NextLent(&p); err != nil {
				decs = append(decs[:i], decs[i+1:]...)
				i--
				continue
			}
			clear(p.Ext)
			clear(p.Payload)
			p.Release()
		}
	}
}

// TestPacketLentMethods: Own, Detach and Release on packets that are not
// lent behave as before lending existed.
func TestPacketLentMethods(t *testing.T) {
	p := wire.Packet{Ext: []byte("e"), Payload: []byte("payload")}
	for _, f := range []func(*wire.Packet){(*wire.Packet).Own, (*wire.Packet).Detach, (*wire.Packet).Release} {
		q := p
		f(&q)
		if q.Lent() || !bytes.Equal(q.Payload, p.Payload) || !bytes.Equal(q.Ext, p.Ext) || &q.Payload[0] != &p.Payload[0] {
			t.Errorf("a packet built by the caller was changed: %+v", q)
		}
	}
}
