package runtime

import (
	"errors"
	"time"

	"golang.org/x/time/rate"
)

// The default per-session rate limit: 50,000 packets a second, with bursts
// of as many. Far above what an application session sends, it stops one
// connection from monopolising a server.
const (
	DefaultRateLimit = 50000
	DefaultRateBurst = 50000
)

// ErrRateLimited is the close reason of a session that kept sending over
// its rate limit.
var ErrRateLimited = errors.New("msgtrans: rate limit exceeded repeatedly")

// WithRateLimit limits the packets each session may send to the server: a
// token bucket refilled at perSecond with room for burst. Over the limit a
// request is answered CodeResourceExhausted and a one-way packet dropped
// (and counted, see [Session.Dropped]); a session that sends a further
// burst's worth while over the limit is closed with [ErrRateLimited].
// Control packets (hello, heartbeats) are not counted. Default 50,000/s,
// burst 50,000.
func WithRateLimit(perSecond float64, burst int) Option {
	return option{"WithRateLimit", serverSide, func(c *config) { c.rateLimit, c.rateBurst = perSecond, burst }}
}

// Dropped returns how many one-way packets from the peer were dropped for
// exceeding the rate limit.
func (s *Session) Dropped() int64 { return s.dropped.Load() }

// admitChunk is how many tokens admit takes from the limiter at a time
// while it has them, so that a busy session consults it (a lock and a clock
// read) once per chunk rather than once per packet. Taking tokens early
// never admits more than the bucket holds.
const admitChunk = 64

// admit applies the rate limit to a packet that is not a control packet. It
// reports whether to process it; an error closes the session.
func (s *Session) admit(p *Packet) (bool, error) {
	if s.srv == nil {
		return true, nil
	}
	if s.credit > 0 {
		s.credit--
		return true, nil
	}
	if s.limiter == nil { // made on first use: idle sessions hold none
		s.limiter = rate.NewLimiter(rate.Limit(s.cfg.rateLimit), s.cfg.rateBurst)
	}
	now := time.Now()
	if n := min(admitChunk, s.cfg.rateBurst); n > 1 && s.limiter.AllowN(now, n) {
		s.credit, s.overLimit = n-1, 0
		return true, nil
	}
	if s.limiter.AllowN(now, 1) {
		s.overLimit = 0
		return true, nil
	}
	if s.overLimit++; s.overLimit > s.cfg.rateBurst {
		return false, ErrRateLimited
	}
	if p.Type == Request {
		s.answer(p, nil, Errorf(CodeResourceExhausted, "rate limit of %g packets a second exceeded", s.cfg.rateLimit))
	} else if p.Type == OneWay {
		s.dropped.Add(1)
	}
	return false, nil
}
