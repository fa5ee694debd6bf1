package main

import (
	"math"
	"slices"
	"time"
)

// median returns the middle value of xs (the mean of the two middle values
// when len(xs) is even), or NaN for an empty slice. xs is not modified.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// minMax returns the smallest and largest values of xs, or NaNs for an empty
// slice.
func minMax(xs []float64) (lo, hi float64) {
	if len(xs) == 0 {
		return math.NaN(), math.NaN()
	}
	return slices.Min(xs), slices.Max(xs)
}

// percentile returns the p-th percentile (0 < p <= 100) of sorted by the
// nearest-rank method: the smallest value such that at least p% of the
// values are less than or equal to it. It returns 0 for an empty slice.
func percentile(sorted []time.Duration, p float64) time.Duration {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(n)))
	rank = min(max(rank, 1), n)
	return sorted[rank-1]
}

// latencies collects round-trip or delivery times. It is not safe for
// concurrent use.
type latencies []time.Duration

// quantiles sorts l and returns the percentiles ps of it.
func (l latencies) quantiles(ps ...float64) []time.Duration {
	slices.Sort(l)
	out := make([]time.Duration, len(ps))
	for i, p := range ps {
		out[i] = percentile(l, p)
	}
	return out
}

// micros converts d to microseconds as a float.
func micros(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
