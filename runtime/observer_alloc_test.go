package runtime_test

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/msgtrans/msgtrans-go/observe/promobserve"
	"github.com/msgtrans/msgtrans-go/runtime"
)

// TestObserverAllocations: installing the Prometheus adapter adds no
// allocation per packet on the hot paths (a typed one-way message
// received, a request served, a one-way message sent, an encoded packet
// queued and written): each is measured with and without it.
func TestObserverAllocations(t *testing.T) {
	if runtime.RaceEnabled {
		t.Skip("the race detector drops pooled items on purpose")
	}
	obs, err := promobserve.New(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	without := runtime.ObservedAllocs(t, nil)
	with := runtime.ObservedAllocs(t, obs)
	for path, base := range without {
		if got := with[path]; got > base {
			t.Errorf("%s: %v allocations per packet with the Prometheus adapter, %v without", path, got, base)
		} else {
			t.Logf("%s: %v allocations per packet with the adapter, %v without", path, got, base)
		}
	}
}
