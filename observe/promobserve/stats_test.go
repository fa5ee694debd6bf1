package promobserve_test

import (
	"testing"

	"github.com/msgtrans/msgtrans-go/internal/statstest"
)

// TestStatsSummedAcrossSources: the totals of several servers and clients
// attached to one observer are exported summed by side and transport,
// the same at every scrape.
func TestStatsSummedAcrossSources(t *testing.T) {
	obs, m := newObserver(t)
	for _, src := range statstest.Sources() {
		obs.Attach(src)
	}
	// The series of TransportStats' fields, PacketsIn to QueuedBytes.
	names := []string{
		"msgtrans_packets_received_total", "msgtrans_received_bytes_total",
		"msgtrans_packets_sent_total", "msgtrans_sent_bytes_total",
		"msgtrans_writes_total", "msgtrans_rate_limit_dropped_total",
		"msgtrans_sessions", "msgtrans_send_queue_bytes",
	}
	for scrape := range 2 {
		for _, want := range statstest.Sums {
			for i, name := range names {
				w := float64(int64(i+1) * want.N)
				if got := m.value(name, "side", want.Side, "transport", want.Transport); got != w {
					t.Errorf("scrape %d: %s{side=%s,transport=%s} = %v, want %v", scrape, name, want.Side, want.Transport, got, w)
				}
			}
		}
	}
}
