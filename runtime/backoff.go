package runtime

import (
	"fmt"
	"math/rand/v2"
	"time"
)

// Backoff is a client's reconnection schedule: exponential growth with full
// jitter. Attempt n (from 0) waits a random duration in
// [Base·Multiplier^n / 2, Base·Multiplier^n], capped at MaxDelay. Zero fields
// take their defaults.
type Backoff struct {
	// Base is the delay before the first reconnection attempt. Default 100 ms.
	Base time.Duration
	// Multiplier is the growth factor per attempt, at least 1. Default 2.
	Multiplier float64
	// MaxDelay caps the delay. Default 10 s.
	MaxDelay time.Duration
	// MaxAttempts is how many attempts are made after a drop before the
	// client gives up and closes; 0 means no limit.
	MaxAttempts int
}

func (b Backoff) validate() error {
	switch {
	case b.Base < 0 || b.MaxDelay < 0 || b.MaxAttempts < 0:
		return fmt.Errorf("msgtrans: backoff fields must not be negative")
	case b.Multiplier != 0 && b.Multiplier < 1:
		return fmt.Errorf("msgtrans: backoff multiplier %v is below 1", b.Multiplier)
	case b.MaxDelay != 0 && b.Base > b.MaxDelay:
		return fmt.Errorf("msgtrans: backoff base %v exceeds max delay %v", b.Base, b.MaxDelay)
	}
	return nil
}

func (b Backoff) withDefaults() Backoff {
	if b.Base == 0 {
		b.Base = 100 * time.Millisecond
	}
	if b.Multiplier == 0 {
		b.Multiplier = 2
	}
	if b.MaxDelay == 0 {
		b.MaxDelay = 10 * time.Second
	}
	return b
}

// Delay returns the wait before attempt n (counting from 0), jittered.
func (b Backoff) Delay(n int) time.Duration {
	b = b.withDefaults()
	d := float64(b.Base)
	for i := 0; i < n && d < float64(b.MaxDelay); i++ {
		d *= b.Multiplier
	}
	if d > float64(b.MaxDelay) {
		d = float64(b.MaxDelay)
	}
	half := d / 2
	return time.Duration(half + rand.Float64()*half)
}
