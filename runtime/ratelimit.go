package runtime

import (
	"errors"
	"fmt"
	"time"

	"github.com/msgtrans/msgtrans-go/wire"
	"github.com/msgtrans/msgtrans-go/wire/compress"
	"golang.org/x/time/rate"
)

// The default per-session rate limit: 50,000 packets a second, with bursts
// of as many. Far above what an application session sends, it stops one
// connection from monopolising a server.
const (
	DefaultRateLimit = 50000
	DefaultRateBurst = 50000
)

// DefaultDecompressionRate is the default budget of bytes a session's
// compressed payloads may inflate to, per second (see
// [WithDecompressionRate]).
const DefaultDecompressionRate = wire.DefaultMaxDecompressed

// rateWindow is the window over which refused packets are counted: a
// session refused more than a burst's worth within one is closed.
const rateWindow = time.Second

// WithRateLimit limits the packets each session may send to the server: a
// token bucket refilled at perSecond with room for burst. Every packet
// counts (requests, responses, one-way and control packets, and WebSocket
// ping and pong frames) except the in-band pings of the heartbeat, which
// the ping-flood rule bounds instead. Over the limit a request is answered
// CodeResourceExhausted and any other packet dropped (one-way packets are
// counted, see [Session.Dropped]); a session refused more than burst
// packets within a second is closed with [ErrRateLimited]. Default
// 50,000/s, burst 50,000.
func WithRateLimit(perSecond float64, burst int) ServerOption {
	return serverOption{"WithRateLimit", func(c *config) { c.rateLimit, c.rateBurst = perSecond, burst }}
}

// WithDecompressionRate bounds the bytes the compressed payloads a session
// receives may inflate to, per second, with room for a burst of the larger
// of one second's worth and twice [Limits.MaxDecompressed]. The budget is
// checked before inflating: a payload is inflated at most up to what is
// left of it, and a session whose payload needs more is closed with
// [ErrRateLimited]. Payloads nobody reads (a response to no pending
// request, a one-way packet with no handler) are never inflated. Default
// 10 MiB a second.
func WithDecompressionRate(bytesPerSecond int) Option {
	return option{"WithDecompressionRate", func(c *config) { c.inflateRate = bytesPerSecond }}
}

// Dropped returns how many one-way packets from the peer were dropped for
// exceeding the rate limit.
func (s *Session) Dropped() int64 { return s.dropped.Load() }

// admitChunk is how many tokens admit takes from the limiter at a time
// while it has them, so that a busy session consults it (a lock and a clock
// read) once per chunk rather than once per packet. Taking tokens early
// never admits more than the bucket holds.
const admitChunk = 64

// throttle holds a session's rate-limit and decompression-budget state. It
// is used by the session's read goroutine only.
type throttle struct {
	limiter     *rate.Limiter // nil until first needed: idle sessions hold none
	credit      int           // tokens taken from the limiter ahead of use
	windowStart time.Time     // the current refusal window
	refused     int           // packets refused in it

	inflate byteBudget
}

// admit applies the rate limit to one packet or transport frame. It
// reports whether to process it: when not, and without an error, the
// caller drops it (see overLimit); an error closes the session.
func (s *Session) admit() (bool, error) {
	if !s.policy.limitPeer {
		return true, nil
	}
	l := &s.throttle
	if l.credit > 0 {
		l.credit--
		return true, nil
	}
	if l.limiter == nil {
		l.limiter = rate.NewLimiter(rate.Limit(s.cfg.rateLimit), s.cfg.rateBurst)
	}
	now := time.Now()
	if n := min(admitChunk, s.cfg.rateBurst); n > 1 && l.limiter.AllowN(now, n) {
		l.credit = n - 1
		return true, nil
	}
	if l.limiter.AllowN(now, 1) {
		return true, nil
	}
	if now.Sub(l.windowStart) >= rateWindow {
		l.windowStart, l.refused = now, 0
	}
	if l.refused++; l.refused > s.cfg.rateBurst {
		return false, fmt.Errorf("%w: over %d packets refused within %v", ErrRateLimited, s.cfg.rateBurst, rateWindow)
	}
	return false, nil
}

// inflate decompresses p's payload within the limits and within what is
// left of the session's decompression budget, which it charges.
func (s *Session) inflate(p *wire.Packet) error {
	limit := s.cfg.limits.MaxDecompressed
	if !s.ready.Load() {
		limit = s.cfg.preAuthLimits().MaxDecompressed
	}
	b := &s.throttle.inflate
	left := b.left(time.Now(), s.cfg.inflateRate, max(s.cfg.inflateRate, 2*s.cfg.limits.MaxDecompressed))
	budgeted := left < limit
	if budgeted {
		limit = left
	}
	err := compress.Decompress(p, limit)
	if budgeted && errors.Is(err, wire.ErrTooLarge) {
		return fmt.Errorf("%w: compressed payloads inflating to over %d bytes a second", ErrRateLimited, s.cfg.inflateRate)
	}
	if err == nil {
		b.spend(len(p.Payload))
	}
	return err
}

// byteBudget is a token bucket of bytes, kept by hand because it is spent
// after the fact: what a payload inflates to is known only once it has.
type byteBudget struct {
	tokens float64
	last   time.Time
}

// left refills the bucket to now and returns the whole bytes in it.
func (b *byteBudget) left(now time.Time, rate, burst int) int {
	if b.last.IsZero() {
		b.tokens = float64(burst)
	} else {
		b.tokens = min(float64(burst), b.tokens+now.Sub(b.last).Seconds()*float64(rate))
	}
	b.last = now
	return max(int(b.tokens), 0)
}

func (b *byteBudget) spend(n int) { b.tokens -= float64(n) }

// controlFrame counts a transport's own frame (a WebSocket ping or pong)
// toward the rate limit, and a ping toward the ping-flood rule; see
// [ControlFrameNotifier].
func (s *Session) controlFrame(ping bool) error {
	if ping && s.policy.limitPeer && s.pings.Add(1) > pingFloodLimit {
		return ErrPingFlood
	}
	_, err := s.admit()
	return err
}
