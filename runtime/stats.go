package runtime

// StatsSource reads the running totals of one server or client (see
// [Observer.Attach]). It is safe for concurrent use; each call costs a
// walk over the open sessions.
type StatsSource interface {
	// Stats appends the totals, one [TransportStats] per transport that
	// has carried a session, to dst and returns it.
	Stats(dst []TransportStats) []TransportStats
}

// TransportStats are the totals of one server or client over one
// transport, since it was created. Counters only grow; Sessions and
// QueuedBytes are the values now.
type TransportStats struct {
	Side      Side
	Transport string

	PacketsIn  uint64 // packets read, control packets included
	BytesIn    uint64 // their encoded size, as on the wire (compressed payloads compressed)
	PacketsOut uint64 // packets written
	BytesOut   uint64 // their encoded size
	Writes     uint64 // write calls, each carrying one or more packets: PacketsOut/Writes is the mean batch
	Dropped    uint64 // one-way packets dropped by the rate limit (WithRateLimit)

	Sessions    int64 // sessions open now
	QueuedBytes int64 // bytes queued for writing now, over every open session
}

// Add adds o's counters and values (PacketsIn to QueuedBytes) to t's.
// t keeps its Side and Transport, whatever o's.
func (t *TransportStats) Add(o TransportStats) {
	t.PacketsIn += o.PacketsIn
	t.BytesIn += o.BytesIn
	t.PacketsOut += o.PacketsOut
	t.BytesOut += o.BytesOut
	t.Writes += o.Writes
	t.Dropped += o.Dropped
	t.Sessions += o.Sessions
	t.QueuedBytes += o.QueuedBytes
}

// SumTransportStats sums the entries of stats that share a Side and a
// Transport into one, as an observer does with the totals of several
// sources ([StatsSource.Stats] appends one entry per transport of one
// server or client). It returns one entry per (Side, Transport), in the
// order each pair first appears in stats.
//
// Like [slices.Compact], it works in place: the result shares stats'
// backing array, whose elements past the result's length are zeroed.
// Each entry is compared with the pairs found before it, which suits the
// few transports a process has.
func SumTransportStats(stats []TransportStats) []TransportStats {
	n := 0
next:
	for i := range stats {
		for j := range n {
			if stats[j].Side == stats[i].Side && stats[j].Transport == stats[i].Transport {
				stats[j].Add(stats[i])
				continue next
			}
		}
		stats[n] = stats[i]
		n++
	}
	clear(stats[n:])
	return stats[:n]
}
