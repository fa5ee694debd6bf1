// Package statstest holds the transport totals the tests of
// [runtime.TransportStats] and of the observer adapters share: totals
// whose every field is told apart by its value, sources that return them
// fixed, and the sums an adapter should export for them.
package statstest

import "github.com/msgtrans/msgtrans-go/runtime"

// Totals returns the totals of side and transport whose counters and
// values, PacketsIn to QueuedBytes, are n times 1 to 8 in that order.
func Totals(side runtime.Side, transport string, n int) runtime.TransportStats {
	u, i := uint64(n), int64(n)
	return runtime.TransportStats{Side: side, Transport: transport,
		PacketsIn: u, BytesIn: 2 * u, PacketsOut: 3 * u, BytesOut: 4 * u, Writes: 5 * u, Dropped: 6 * u,
		Sessions: 7 * i, QueuedBytes: 8 * i}
}

// Source is a [runtime.StatsSource] whose totals are fixed.
type Source []runtime.TransportStats

// Stats implements [runtime.StatsSource].
func (s Source) Stats(dst []runtime.TransportStats) []runtime.TransportStats {
	return append(dst, s...)
}

// Sources are the totals of three servers and clients, one of them with
// none yet, that share a side and transport: attached to one observer,
// they are to be summed into [Sums].
func Sources() []Source {
	return []Source{
		{Totals(runtime.SideServer, "tcp", 1), Totals(runtime.SideServer, "ws", 2)},
		{},
		{Totals(runtime.SideServer, "tcp", 4), Totals(runtime.SideClient, "tcp", 8)},
	}
}

// Sum is the sum an observer should export for one side and transport:
// the [Totals] of N.
type Sum struct {
	Side, Transport string
	N               int64
}

// Sums are the sums of [Sources], with one side and transport that none
// of them has (zero: no series, or one at 0).
var Sums = []Sum{
	{"server", "tcp", 5},
	{"server", "ws", 2},
	{"client", "tcp", 8},
	{"client", "ws", 0},
}
