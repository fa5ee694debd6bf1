package promobserve

import (
	"slices"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/msgtrans/msgtrans-go/runtime"
)

// statsCollector turns the attached servers' and clients' running totals
// ([runtime.StatsSource]) into metrics at each scrape: the runtime counts
// packets in per-session atomics and nothing is recorded per packet here.
type statsCollector struct {
	mu      sync.Mutex
	sources []runtime.StatsSource
	buf     []runtime.TransportStats

	packetsIn, bytesIn, packetsOut, bytesOut, writes, dropped *prometheus.Desc
	sessions, queued                                          *prometheus.Desc
}

func (c *statsCollector) init() {
	labels := []string{"side", "transport"}
	d := func(name, help string) *prometheus.Desc { return prometheus.NewDesc(name, help, labels, nil) }
	c.packetsIn = d("msgtrans_packets_received_total", "Packets read from connections, control packets included.")
	c.bytesIn = d("msgtrans_received_bytes_total", "Encoded bytes of the packets read (compressed payloads as sent).")
	c.packetsOut = d("msgtrans_packets_sent_total", "Packets written to connections.")
	c.bytesOut = d("msgtrans_sent_bytes_total", "Encoded bytes of the packets written.")
	c.writes = d("msgtrans_writes_total", "Write calls, each carrying one or more packets: packets sent over writes is the mean batch.")
	c.dropped = d("msgtrans_rate_limit_dropped_total", "One-way packets from peers dropped by the rate limit.")
	c.sessions = d("msgtrans_sessions", "Sessions open now.")
	c.queued = d("msgtrans_send_queue_bytes", "Bytes queued for writing now, over every open session.")
}

func (c *statsCollector) attach(src runtime.StatsSource) {
	c.mu.Lock()
	c.sources = append(c.sources, src)
	c.mu.Unlock()
}

// Describe implements prometheus.Collector.
func (c *statsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.packetsIn, c.bytesIn, c.packetsOut, c.bytesOut, c.writes, c.dropped, c.sessions, c.queued} {
		ch <- d
	}
}

// Collect implements prometheus.Collector: the sources' totals, summed by
// side and transport.
func (c *statsCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	buf := c.buf[:0]
	for _, src := range c.sources {
		buf = src.Stats(buf)
	}
	// The sums are copied out of buf, which the next Collect reuses, before
	// it is unlocked.
	sums := slices.Clone(runtime.SumTransportStats(buf))
	c.buf = buf
	c.mu.Unlock()
	for _, s := range sums {
		side, transport := s.Side.String(), s.Transport
		counter := func(d *prometheus.Desc, v uint64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), side, transport)
		}
		counter(c.packetsIn, s.PacketsIn)
		counter(c.bytesIn, s.BytesIn)
		counter(c.packetsOut, s.PacketsOut)
		counter(c.bytesOut, s.BytesOut)
		counter(c.writes, s.Writes)
		counter(c.dropped, s.Dropped)
		ch <- prometheus.MustNewConstMetric(c.sessions, prometheus.GaugeValue, float64(s.Sessions), side, transport)
		ch <- prometheus.MustNewConstMetric(c.queued, prometheus.GaugeValue, float64(s.QueuedBytes), side, transport)
	}
}
