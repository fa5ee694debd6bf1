package wire

import (
	"bytes"
	"testing"
)

func TestPoolClass(t *testing.T) {
	tests := []struct{ n, class int }{
		{0, 0}, {1, 0}, {64, 0}, {65, 1}, {128, 1}, {129, 2}, {4096, 6}, {65536, 10}, {65537, -1}, {1 << 20, -1},
	}
	for _, tt := range tests {
		if got := poolClass(tt.n); got != tt.class {
			t.Errorf("poolClass(%d) = %d, want %d", tt.n, got, tt.class)
		}
	}
}

// TestPooledDecoder: a pooling decoder's packets are the same packets, and
// released bodies are reused; a released packet is empty, and releasing it
// again, or releasing a packet that is not pooled, does nothing.
func TestPooledDecoder(t *testing.T) {
	var stream []byte
	for i := range 50 {
		p := NewOneWay(7, bytes.Repeat([]byte{byte(i)}, i*100))
		p.MessageID = uint32(i + 1)
		stream, _ = AppendPacket(stream, p)
	}
	dec := NewDecoder(bytes.NewReader(stream), Limits{})
	dec.PoolBodies()
	for i := range 50 {
		p, err := dec.Next()
		if err != nil {
			t.Fatal(err)
		}
		if p.MessageID != uint32(i+1) || !bytes.Equal(p.Payload, bytes.Repeat([]byte{byte(i)}, i*100)) {
			t.Fatalf("packet %d: id %d, %d payload bytes", i, p.MessageID, len(p.Payload))
		}
		if i > 0 && p.pooled == nil {
			t.Fatalf("packet %d of %d bytes is not pooled", i, i*100)
		}
		p.Release()
		if p.Payload != nil || p.pooled != nil {
			t.Fatal("a released packet keeps its memory")
		}
		p.Release()
	}
	plain := NewText(1, "mine")
	plain.Release()
	if string(plain.Payload) != "mine" {
		t.Error("Release emptied a packet that was not pooled")
	}
}

// TestPooledBodiesAllocations: reading and releasing packets of one size
// allocates nothing once the pools are warm.
func TestPooledBodiesAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector drops pooled buffers on purpose")
	}
	pkt, _ := AppendPacket(nil, NewOneWay(7, bytes.Repeat([]byte{'x'}, 300)))
	stream := bytes.Repeat(pkt, 2000)
	r := bytes.NewReader(stream)
	dec := NewDecoder(r, Limits{})
	dec.PoolBodies()
	allocs := testing.AllocsPerRun(1000, func() {
		p, err := dec.Next()
		if err != nil {
			t.Fatal(err)
		}
		p.Release()
	})
	if allocs != 0 {
		t.Errorf("%.1f allocations per pooled packet, want 0", allocs)
	}
}

func TestGetPutBuffer(t *testing.T) {
	for _, n := range []int{0, 1, 64, 65, 1000, 1 << 16, 1<<16 + 1} {
		b := GetBuffer(n)
		if len(b) != 0 || cap(b) < n {
			t.Errorf("GetBuffer(%d): len %d cap %d", n, len(b), cap(b))
		}
		PutBuffer(append(b, make([]byte, n)...))
	}
	// Buffers of other capacities, and empty ones, are not taken.
	PutBuffer(make([]byte, 10, 100))
	PutBuffer(nil)
	if got := GetBuffer(100); cap(got) != 128 {
		t.Errorf("GetBuffer(100) has capacity %d, want its class's 128", cap(got))
	}
	allocs := testing.AllocsPerRun(1000, func() {
		b := GetBuffer(200)
		b = append(b, "payload"...)
		PutBuffer(b)
	})
	if allocs != 0 && !raceEnabled {
		t.Errorf("a buffer taken and given back: %v allocations, want 0", allocs)
	}
}

// TestPooledPacket: a packet made for a header has its ext header and
// payload in the buffer it returns, which comes from the pools when it
// can, goes back with Release and stays with Own.
func TestPooledPacket(t *testing.T) {
	tests := []struct {
		name           string
		ext, payload   int
		pooled         bool
		wantExt, wantP bool
	}{
		{"empty", 0, 0, false, false, false},
		{"payload only", 0, 100, true, false, true},
		{"ext only", 9, 0, true, true, false},
		{"both", 9, 4000, true, true, true},
		{"too large to pool", 0, 1<<16 + 1, false, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := Header{Type: Request, BizType: 3, MessageID: 42, ExtLen: uint16(tt.ext), PayloadLen: uint32(tt.payload)}
			p, body := h.PooledPacket()
			if len(body) != tt.ext+tt.payload {
				t.Fatalf("body of %d bytes, want %d", len(body), tt.ext+tt.payload)
			}
			for i := range body {
				body[i] = byte(i)
			}
			if p.Type != Request || p.BizType != 3 || p.MessageID != 42 {
				t.Fatalf("header fields not carried: %+v", p)
			}
			if (p.Ext != nil) != tt.wantExt || (p.Payload != nil) != tt.wantP || len(p.Ext) != tt.ext || len(p.Payload) != tt.payload {
				t.Fatalf("ext %d bytes, payload %d bytes; want %d and %d", len(p.Ext), len(p.Payload), tt.ext, tt.payload)
			}
			if tt.payload > 0 && p.Payload[0] != byte(tt.ext) {
				t.Fatal("the payload does not follow the ext header in the buffer")
			}
			if (p.pooled != nil) != tt.pooled {
				t.Fatalf("pooled = %v, want %v", p.pooled != nil, tt.pooled)
			}
			kept := p
			kept.Own()
			if kept.pooled != nil || len(kept.Payload) != tt.payload {
				t.Fatal("Own did not keep the packet's memory")
			}
			p.Release()
			if tt.pooled && (p.Payload != nil || p.Ext != nil || p.pooled != nil) {
				t.Fatal("a released packet keeps its memory")
			}
		})
	}
}
