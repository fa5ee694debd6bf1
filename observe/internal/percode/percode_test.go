package percode

import (
	"math"
	goruntime "runtime"
	"sync"
	"testing"

	"go.uber.org/goleak"

	"github.com/msgtrans/msgtrans-go/runtime"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// value is what a test keeps per code: the code it was made for.
type value struct{ code runtime.Code }

// maker makes values and counts its calls, as a route's makeCode would.
type maker struct {
	mu    sync.Mutex
	calls map[runtime.Code]int
}

func (m *maker) make(c runtime.Code) *value {
	m.mu.Lock()
	if m.calls == nil {
		m.calls = make(map[runtime.Code]int)
	}
	m.calls[c]++
	m.mu.Unlock()
	// Other goroutines run here, so that racing callers make values of
	// their own: all but one must be dropped.
	goruntime.Gosched()
	return &value{code: c}
}

// TestCacheGet: the first Get of a code makes its value, later ones find
// it without making another, and each code has a value of its own, for
// the codes of the wire protocol (kept in slots) and others (in a map).
func TestCacheGet(t *testing.T) {
	for _, tc := range []struct {
		name string
		code runtime.Code
	}{
		{"ok, the first slot", runtime.CodeOK},
		{"not_found", runtime.CodeNotFound},
		{"unauthenticated, the last slot", runtime.CodeUnauthenticated},
		{"the first code past the slots", runtime.CodeUnauthenticated + 1},
		{"an unknown code", 1000},
		{"the largest code", math.MaxUint32},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c Cache[value]
			var m maker
			first := c.Get(tc.code, m.make)
			if first == nil || first.code != tc.code {
				t.Fatalf("Get(%d) = %+v, want the value made for %d", tc.code, first, tc.code)
			}
			for range 3 {
				if got := c.Get(tc.code, m.make); got != first {
					t.Fatalf("Get(%d) again = %p, want the first value %p", tc.code, got, first)
				}
			}
			if n := m.calls[tc.code]; n != 1 {
				t.Errorf("newValue called %d times for %d, want 1", n, tc.code)
			}
			// Another code, in a slot and in the map, gets another value
			// and leaves this one as it is.
			for _, other := range []runtime.Code{runtime.CodeInternal, 99} {
				if other == tc.code {
					continue
				}
				if got := c.Get(other, m.make); got == first || got.code != other {
					t.Errorf("Get(%d) = %+v (%p), want a value of its own, not %p", other, got, got, first)
				}
			}
			if got := c.Get(tc.code, m.make); got != first {
				t.Errorf("Get(%d) after other codes = %p, want %p", tc.code, got, first)
			}
		})
	}
}

// TestCacheConcurrentGet: goroutines racing to get the same codes, new
// ones included, all get one value per code (run it with -race).
func TestCacheConcurrentGet(t *testing.T) {
	codes := []runtime.Code{runtime.CodeOK, runtime.CodeCanceled, runtime.CodeDeadlineExceeded, runtime.CodeUnauthenticated, runtime.CodeUnauthenticated + 1, 1 << 20}
	const goroutines = 8
	var c Cache[value]
	var m maker
	got := make([][]*value, goroutines)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			<-start
			for range 100 {
				for _, code := range codes {
					got[g] = append(got[g], c.Get(code, m.make))
				}
			}
		})
	}
	close(start)
	wg.Wait()
	for i, code := range codes {
		want := c.Get(code, m.make)
		if want.code != code {
			t.Fatalf("Get(%d) = a value made for %d", code, want.code)
		}
		for g := range goroutines {
			for j := i; j < len(got[g]); j += len(codes) {
				if got[g][j] != want {
					t.Fatalf("goroutine %d got %p for code %d, others %p", g, got[g][j], code, want)
				}
			}
		}
	}
}

// TestCacheGetAllocations: finding a value made already allocates
// nothing, with a method value as newValue, as the adapters pass it.
func TestCacheGetAllocations(t *testing.T) {
	var c Cache[value]
	m := &maker{}
	for _, code := range []runtime.Code{runtime.CodeOK, runtime.CodeUnauthenticated, runtime.CodeUnauthenticated + 1, 1000} {
		c.Get(code, m.make)
		if n := testing.AllocsPerRun(1000, func() { c.Get(code, m.make) }); n != 0 {
			t.Errorf("Get(%d) of a value made already allocates %v times, want none", code, n)
		}
	}
}
