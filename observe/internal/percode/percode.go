// Package percode keeps one value per status code, made on its first use:
// what the observer adapters resolve once per route and code (label
// values, attribute sets) and then find again on every recorded call.
package percode

import (
	"sync"
	"sync/atomic"

	"github.com/msgtrans/msgtrans-go/runtime"
)

// known is how many status codes have a slot of their own: those of the
// wire protocol, [runtime.CodeOK] to [runtime.CodeUnauthenticated].
// Others, which only a misbehaving peer sends, go through a map.
const known = runtime.CodeUnauthenticated + 1

// Cache holds a *T per [runtime.Code]. Its zero value is empty and ready
// to use; it must not be copied after first use. It is safe for
// concurrent use: finding a value made already costs one atomic load for
// a code of the wire protocol (a map lookup for any other) and allocates
// nothing.
type Cache[T any] struct {
	known [known]atomic.Pointer[T]
	other sync.Map // runtime.Code ≥ known → *T
}

// Get returns the value for c, calling newValue(c) to make it the first
// time; newValue must not return nil. Callers that race on a new code may
// each call newValue, but all of them get the same value, the one stored
// first, and the others are dropped: newValue must be safe to repeat.
func (m *Cache[T]) Get(c runtime.Code, newValue func(runtime.Code) *T) *T {
	if c < known {
		if v := m.known[c].Load(); v != nil {
			return v
		}
		v := newValue(c)
		if !m.known[c].CompareAndSwap(nil, v) {
			v = m.known[c].Load()
		}
		return v
	}
	if v, ok := m.other.Load(c); ok {
		return v.(*T)
	}
	v, _ := m.other.LoadOrStore(c, newValue(c))
	return v.(*T)
}
