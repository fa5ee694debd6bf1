package runtime

import (
	"math"
	"sync/atomic"
	"testing"
	"unsafe"
)

// TestMessageIDsSkipZero: ids count from 1 and skip 0 when they wrap.
func TestMessageIDsSkipZero(t *testing.T) {
	s := &Session{ids: new(atomic.Uint32)}
	if got := s.nextID(); got != 1 {
		t.Errorf("first id = %d, want 1", got)
	}
	s.ids.Store(math.MaxUint32 - 1)
	for _, want := range []uint32{math.MaxUint32, 1, 2} {
		if got := s.nextID(); got != want {
			t.Errorf("id = %d, want %d", got, want)
		}
	}
}

// TestSessionSize: every idle session holds one Session, allocated in the
// 704-byte size class; a field that pushes it into the next (768 bytes)
// costs 64 bytes per idle connection, which WebSocket's idle memory target
// (4 KiB, BENCHMARKS.md) has no room for. Order new fields so that none is
// padded, or make room.
func TestSessionSize(t *testing.T) {
	if size := unsafe.Sizeof(Session{}); size > 704 {
		t.Errorf("a Session is %d bytes, over the 704-byte size class", size)
	}
}
