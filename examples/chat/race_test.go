//go:build race

package chat_test

// raceEnabled reports whether the tests run under the race detector, which
// makes the node processes (the same binary) several times slower.
const raceEnabled = true
