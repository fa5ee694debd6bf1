//go:build race

package wire

// raceEnabled: the race detector drops some sync.Pool puts on purpose, so
// pooled paths allocate now and then.
const raceEnabled = true
