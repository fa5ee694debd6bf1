package otelobserve_test

import (
	"testing"

	"github.com/msgtrans/msgtrans-go/internal/statstest"
)

// TestStatsSummedAcrossSources: the totals of several servers and clients
// attached to one observer are observed summed by side and transport,
// the same at every collection.
func TestStatsSummedAcrossSources(t *testing.T) {
	tel := newTelemetry(t)
	for _, src := range statstest.Sources() {
		tel.a.Observer().Attach(src)
	}
	// The instruments, and directions, of TransportStats' fields,
	// PacketsIn to QueuedBytes.
	fields := []struct{ name, direction string }{
		{"msgtrans.packets", "receive"}, {"msgtrans.io", "receive"},
		{"msgtrans.packets", "transmit"}, {"msgtrans.io", "transmit"},
		{"msgtrans.writes", ""}, {"msgtrans.dropped", ""},
		{"msgtrans.sessions", ""}, {"msgtrans.queued.size", ""},
	}
	for collection := range 2 {
		m := collect(t, tel.reader)
		for _, want := range statstest.Sums {
			for i, f := range fields {
				attrs := map[string]string{"msgtrans.side": want.Side, "msgtrans.transport": want.Transport}
				if f.direction != "" {
					attrs["network.io.direction"] = f.direction
				}
				if got, w := m.sum(f.name, attrs), int64(i+1)*want.N; got != w {
					t.Errorf("collection %d: %s%v = %d, want %d", collection, f.name, attrs, got, w)
				}
			}
		}
	}
}
