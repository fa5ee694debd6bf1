package runtime

import (
	"math"
	"sync/atomic"
	"testing"
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
