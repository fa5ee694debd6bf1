package runtime_test

import (
	"reflect"
	"slices"
	"testing"

	"github.com/msgtrans/msgtrans-go/internal/statstest"
	"github.com/msgtrans/msgtrans-go/runtime"
)

// TestTransportStatsAdd: every counter and value is added; the side and
// transport stay the receiver's.
func TestTransportStatsAdd(t *testing.T) {
	for _, tc := range []struct {
		name string
		t, o runtime.TransportStats
		want runtime.TransportStats
	}{
		{"to zero", runtime.TransportStats{Side: runtime.SideServer, Transport: "tcp"}, statstest.Totals(runtime.SideServer, "tcp", 3), statstest.Totals(runtime.SideServer, "tcp", 3)},
		{"to totals", statstest.Totals(runtime.SideClient, "ws", 2), statstest.Totals(runtime.SideClient, "ws", 5), statstest.Totals(runtime.SideClient, "ws", 7)},
		{"zero", statstest.Totals(runtime.SideServer, "quic", 4), runtime.TransportStats{}, statstest.Totals(runtime.SideServer, "quic", 4)},
		{"another side and transport", statstest.Totals(runtime.SideServer, "tcp", 1), statstest.Totals(runtime.SideClient, "ws", 1), statstest.Totals(runtime.SideServer, "tcp", 2)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.t
			got.Add(tc.o)
			if got != tc.want {
				t.Errorf("%+v.Add(%+v) = %+v, want %+v", tc.t, tc.o, got, tc.want)
			}
		})
	}
	// Every field is one of those added, or the side or transport: a field
	// added to TransportStats and not to Add fails here.
	if n := reflect.TypeFor[runtime.TransportStats]().NumField(); n != 10 {
		t.Errorf("TransportStats has %d fields, the test knows 10: is the new one added by Add?", n)
	}
}

// TestSumTransportStats: entries of one side and transport are summed into
// one, in the order each pair first appears, in place.
func TestSumTransportStats(t *testing.T) {
	const srv, cli = runtime.SideServer, runtime.SideClient
	for _, tc := range []struct {
		name string
		in   []runtime.TransportStats
		want []runtime.TransportStats
	}{
		{"nil", nil, nil},
		{"empty", []runtime.TransportStats{}, []runtime.TransportStats{}},
		{"one", []runtime.TransportStats{statstest.Totals(srv, "tcp", 1)}, []runtime.TransportStats{statstest.Totals(srv, "tcp", 1)}},
		{"all distinct",
			[]runtime.TransportStats{statstest.Totals(srv, "tcp", 1), statstest.Totals(srv, "ws", 2), statstest.Totals(cli, "tcp", 3)},
			[]runtime.TransportStats{statstest.Totals(srv, "tcp", 1), statstest.Totals(srv, "ws", 2), statstest.Totals(cli, "tcp", 3)}},
		{"one pair from two sources",
			[]runtime.TransportStats{statstest.Totals(srv, "tcp", 1), statstest.Totals(srv, "tcp", 2)},
			[]runtime.TransportStats{statstest.Totals(srv, "tcp", 3)}},
		{"interleaved, in the order first seen",
			[]runtime.TransportStats{statstest.Totals(cli, "ws", 1), statstest.Totals(srv, "tcp", 1), statstest.Totals(cli, "quic", 4), statstest.Totals(srv, "tcp", 2), statstest.Totals(cli, "ws", 10), statstest.Totals(srv, "ws", 5)},
			[]runtime.TransportStats{statstest.Totals(cli, "ws", 11), statstest.Totals(srv, "tcp", 3), statstest.Totals(cli, "quic", 4), statstest.Totals(srv, "ws", 5)}},
		{"the same transport on both sides stays apart",
			[]runtime.TransportStats{statstest.Totals(srv, "tcp", 1), statstest.Totals(cli, "tcp", 2), statstest.Totals(srv, "tcp", 4), statstest.Totals(cli, "tcp", 8)},
			[]runtime.TransportStats{statstest.Totals(srv, "tcp", 5), statstest.Totals(cli, "tcp", 10)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := slices.Clone(tc.in)
			got := runtime.SumTransportStats(in)
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("SumTransportStats(%+v)\n got %+v\nwant %+v", tc.in, got, tc.want)
			}
			if len(got) > 0 && &got[0] != &in[0] {
				t.Error("the result does not share the argument's backing array")
			}
			for i, s := range in[len(got):] {
				if s != (runtime.TransportStats{}) {
					t.Errorf("element %d past the result is %+v, want zeroed", len(got)+i, s)
				}
			}
		})
	}
}
