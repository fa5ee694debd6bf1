package runtime

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/msgtrans/msgtrans-go/wire"
)

// run supervises the client's connections: it reads each one in a
// goroutine of its own (so that event handlers may make requests), reports
// its events, and reconnects when it drops.
//
// The backoff starts again from its first step only after a connection has
// stayed up for a while (see healthyAfter): a server that accepts and then
// drops connections at once is retried ever more slowly, not in a loop.
func (c *Client) run(sess *Session) {
	defer c.wg.Done()
	kind := ConnectionEstablished
	var r retries
	for {
		up := time.Now()
		c.cfg.obs.opened(sess)
		ended := make(chan error, 1)
		go func() { ended <- sess.run() }()
		c.wg.Add(1)
		go c.heartbeat(sess)
		c.emit(Event{Kind: kind, Session: sess, Attempt: r.count})
		reason := <-ended
		c.cfg.obs.ended(sess, reason)
		c.mu.Lock()
		c.sess = nil
		closed := c.closed
		c.mu.Unlock()
		c.emit(Event{Kind: ConnectionClosed, Session: sess, Err: reason})
		if closed || !c.cfg.reconnect || terminal(reason) {
			c.finish(reason)
			return
		}
		if time.Since(up) >= healthyAfter(r.delay) {
			r = retries{}
		}
		next, err := c.reconnect(&r, reason)
		if err != nil {
			c.finish(err)
			return
		}
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			next.closeWith(ErrClosed)
			c.finish(ErrClosed)
			return
		}
		c.sess = next
		c.mu.Unlock()
		sess, kind = next, Reconnected
	}
}

// retries is a client's reconnection state since its last healthy
// connection.
type retries struct {
	count int           // attempts made
	step  int           // the backoff step of the next attempt
	delay time.Duration // the wait before the last attempt
}

// protocolStep is the backoff step taken after an attempt that reached a
// peer not speaking msgtrans: far enough for any schedule's maximum delay.
const protocolStep = 64

// healthyAfter is how long a connection must stay up before the backoff
// starts again from its first step: a second, or the wait that preceded
// the connection when that was longer.
func healthyAfter(lastDelay time.Duration) time.Duration { return max(time.Second, lastDelay) }

// terminal reports whether a close reason forbids reconnecting: the server
// refused the client's credentials.
func terminal(reason error) bool {
	var e *Error
	return errors.As(reason, &e) && (e.Code == CodeUnauthenticated || e.Code == CodePermissionDenied)
}

// reconnect dials until it succeeds, the attempts run out, the server
// refuses the credentials, or the client is closed. cause is why the last
// connection ended.
func (c *Client) reconnect(r *retries, cause error) (*Session, error) {
	b := c.cfg.backoff
	lastErr := cause
	for b.MaxAttempts == 0 || r.count < b.MaxAttempts {
		d := retryDelay(b, r.step, lastErr)
		r.count++
		r.step++
		r.delay = d
		c.emit(Event{Kind: Reconnecting, Attempt: r.count, Delay: d, Err: lastErr})
		t := time.NewTimer(d)
		select {
		case <-c.done:
			t.Stop()
			return nil, ErrClosed
		case <-t.C:
		}
		ctx, cancel := context.WithCancel(context.Background())
		go func() { // Close aborts an attempt in progress
			select {
			case <-c.done:
				cancel()
			case <-ctx.Done():
			}
		}()
		sess, err := c.connect(ctx)
		cancel()
		if err == nil {
			return sess, nil
		}
		if terminal(err) {
			return nil, err
		}
		if errors.Is(err, wire.ErrProtocol) {
			r.step = protocolStep
		}
		lastErr = err
		c.cfg.logger.Debug("msgtrans: reconnect failed", "addr", c.Addr(), "attempt", r.count, "err", err)
	}
	return nil, fmt.Errorf("msgtrans: gave up reconnecting to %s after %d attempts: %w", c.Addr(), b.MaxAttempts, lastErr)
}

// retryDelay is the wait before an attempt at the given backoff step after
// lastErr: the backoff's delay, or longer when a refusal asked for more
// (its retry-after, plus up to half as much again, so that the clients a
// server refused together do not come back together).
func retryDelay(b Backoff, step int, lastErr error) time.Duration {
	d := b.Delay(step)
	var re *refusedError
	if errors.As(lastErr, &re) && re.retryAfter > 0 {
		d = max(d, re.retryAfter+rand.N(re.retryAfter/2+1))
	}
	return d
}
