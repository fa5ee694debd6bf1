package runtime

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/msgtrans/msgtrans-go/wire"
)

// Client is one logical connection to a server over the transport named by
// the address's scheme. When the connection drops it reconnects by itself
// with exponential backoff and jitter (see [WithReconnect]); requests
// pending at the drop fail at once with CodeUnavailable, and message ids
// start again from 1 on each new connection.
//
// All methods are safe for concurrent use.
type Client struct {
	cfg   *config
	mux   mux
	t     Transport
	u     *url.URL
	addr  string
	clock *clock

	mu      sync.Mutex
	sess    *Session // nil while disconnected
	closed  bool
	started bool  // Connect was called
	err     error // why the client closed, if it gave up
	done    chan struct{}
	wg      sync.WaitGroup
}

// Dial connects to addr ("tcp://host:port", "ws://host:port/path",
// "quic://host:port", …) and returns a connected client: [NewClient]
// followed by [Client.Connect]. The first connection must succeed within ctx
// and the connect timeout; later drops are repaired in the background.
//
// Handlers registered after Dial returns can miss what the server sends
// right away; register them between NewClient and Connect instead.
func Dial(ctx context.Context, addr string, opts ...ClientOption) (*Client, error) {
	c, err := NewClient(addr, opts...)
	if err != nil {
		return nil, err
	}
	if err := c.Connect(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// NewClient returns a client for addr that is not connected yet, so that
// handlers can be registered before anything arrives. Options are checked
// here.
func NewClient(addr string, opts ...ClientOption) (*Client, error) {
	cfg, err := newClientConfig(opts)
	if err != nil {
		return nil, err
	}
	t, u, err := lookupTransport(addr)
	if err != nil {
		return nil, err
	}
	return &Client{cfg: cfg, t: t, u: u, addr: addr, done: make(chan struct{}), clock: newClock()}, nil
}

// Connect makes the client's first connection, within ctx and the connect
// timeout. It may be called once; later drops are repaired in the
// background.
func (c *Client) Connect(ctx context.Context) error {
	c.mu.Lock()
	switch {
	case c.closed:
		c.mu.Unlock()
		return fmt.Errorf("%w: client", ErrClosed)
	case c.started:
		c.mu.Unlock()
		return errors.New("msgtrans: Connect called twice")
	}
	c.started = true
	c.mu.Unlock()
	sess, err := c.connect(ctx)
	if err != nil {
		return err
	}
	c.start(sess)
	return nil
}

// Handle registers h for raw packets of the given biz_type pushed or
// requested by the server; a nil h removes it.
func (c *Client) Handle(bizType uint8, h Handler) { c.mux.handleBiz(bizType, c.cfg.wrap(h)) }

// HandleMethod registers h for the typed method, replacing any earlier
// handler; a nil h removes it. Generated register functions call it.
func (c *Client) HandleMethod(m *Method, h Handler) { c.mux.handleMethod(m, c.cfg.wrap(h)) }

// Addr returns the address the client dials.
func (c *Client) Addr() string { return c.addr }

// connect dials once, sends the hello and waits for the server's answer,
// all within the connect timeout. A connection counts as established only
// once the server has answered (with its hello, or any packet a raw peer
// sends first): a refusal (a go-away with a status), a go-away, a peer
// that closes at once, and one that does not speak wire v1 each fail the
// attempt instead.
func (c *Client) connect(ctx context.Context) (*Session, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.connectTimeout)
	defer cancel()
	conn, err := c.t.Dial(ctx, c.u, c.cfg.transportConfig())
	if err != nil {
		return nil, err
	}
	sess := newSession(conn, c.u.Scheme, c.cfg, clientPolicy, &c.mux, new(atomic.Uint32), c.clock)
	sess.becomeReady("")
	err = sess.Send(helloPacket(c.cfg))
	if err == nil {
		sess.first, err = c.awaitAnswer(ctx, conn)
	}
	if err != nil {
		sess.discard(err)
		return nil, err
	}
	return sess, nil
}

// awaitAnswer reads the server's first packet, which answers the hello, and
// returns it to be handled as the session's first; or the error that fails
// the attempt.
func (c *Client) awaitAnswer(ctx context.Context, conn Conn) (*wire.Packet, error) {
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	p, err := conn.ReadPacket()
	if !stop() {
		return nil, Errorf(CodeDeadlineExceeded, "%s did not answer the hello within %v", c.addr, c.cfg.connectTimeout)
	}
	var ve *wire.VersionError
	switch {
	case errors.As(err, &ve) && ve.Got == 'H':
		return nil, fmt.Errorf("msgtrans: %s answered in HTTP, not msgtrans (a WebSocket endpoint is dialled as ws://host:port/path): %w", c.addr, err)
	case errors.Is(err, wire.ErrProtocol):
		return nil, fmt.Errorf("msgtrans: %s does not speak msgtrans wire v1: %w", c.addr, err)
	case errors.Is(err, io.EOF):
		return nil, fmt.Errorf("msgtrans: %s closed the connection before answering the hello: %w", c.addr, ErrPeerClosed)
	case err != nil:
		return nil, fmt.Errorf("msgtrans: reading the answer of %s to the hello: %w", c.addr, err)
	}
	if wire.IsTypedExt(&p) && p.Type == wire.OneWay {
		if e, err := wire.ParseExt(p.Ext); err == nil && e.HasRoute && e.Route == wire.ControlRoute && e.Control == wire.ControlGoAway {
			if e.Code != CodeOK {
				return nil, refusal(e)
			}
			return nil, ErrGoAway
		}
	}
	return &p, nil
}

// refusedError is a server's refusal of a connection: the status its
// go-away carried, and how long it asked the client to wait.
type refusedError struct {
	status     *Error
	retryAfter time.Duration
}

func (e *refusedError) Error() string { return e.status.Error() }
func (e *refusedError) Unwrap() error { return e.status }

// refusal returns the close reason for a go-away carrying a status.
func refusal(e wire.Ext) error {
	return Refusal(&Error{Code: e.Code, Message: e.Message}, time.Duration(min(e.RetryAfterMS, 1<<31))*time.Millisecond)
}

// Refusal returns the error for a server's refusal of a connection, with
// its status, asking the client to wait at least retryAfter (when not 0)
// before trying again. A transport whose handshake can carry a refusal
// (a WebSocket upgrade answered 503 with Retry-After) reports it so from
// Dial; a [Client] then waits as asked.
func Refusal(status *Error, retryAfter time.Duration) error {
	return &refusedError{status: status, retryAfter: retryAfter}
}

// start makes sess the current session and runs it in the background.
func (c *Client) start(sess *Session) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		sess.closeWith(ErrClosed)
		return
	}
	c.sess = sess
	c.wg.Add(1)
	c.mu.Unlock()
	go c.run(sess)
}

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
		ended := make(chan error, 1)
		go func() { ended <- sess.run() }()
		c.wg.Add(1)
		go c.heartbeat(sess)
		c.emit(Event{Kind: kind, Session: sess, Attempt: r.count})
		reason := <-ended
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
		c.cfg.logger.Debug("msgtrans: reconnect failed", "addr", c.addr, "attempt", r.count, "err", err)
	}
	return nil, fmt.Errorf("msgtrans: gave up reconnecting to %s after %d attempts: %w", c.addr, b.MaxAttempts, lastErr)
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

func (c *Client) finish(reason error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closed {
		c.closed = true
		c.err = reason
		close(c.done)
	}
}

func (c *Client) emit(e Event) {
	if c.cfg.onEvent != nil {
		c.cfg.onEvent(e)
	}
}

// Session returns the current connection's session, or nil while the
// client is reconnecting or closed.
func (c *Client) Session() *Session {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sess
}

func (c *Client) current() (*Session, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sess != nil && !c.sess.goaway.Load() {
		return c.sess, nil
	}
	if c.sess != nil {
		return nil, NewError(CodeUnavailable, "the server is going away; reconnecting")
	}
	if c.closed {
		if c.err != nil && c.err != ErrClosed {
			return nil, wrapError(CodeUnavailable, c.err)
		}
		return nil, NewError(CodeUnavailable, "client closed")
	}
	return nil, NewError(CodeUnavailable, "not connected (reconnecting)")
}

// Send sends p to the server as a OneWay packet. It fails with
// CodeUnavailable while the client is disconnected.
func (c *Client) Send(p *wire.Packet) error {
	s, err := c.current()
	if err != nil {
		return err
	}
	if err := s.Send(p); err != nil {
		if errors.Is(err, ErrClosed) || errors.Is(err, ErrSlowConsumer) {
			return wrapError(CodeUnavailable, err)
		}
		return err
	}
	return nil
}

// Request sends p to the server as a Request and waits for the response, as
// [Session.Request] does.
func (c *Client) Request(ctx context.Context, p *wire.Packet) (*wire.Packet, error) {
	s, err := c.current()
	if err != nil {
		return nil, err
	}
	return s.Request(ctx, p)
}

// Done returns a channel closed when the client has closed, by
// [Client.Close] or by giving up reconnecting.
func (c *Client) Done() <-chan struct{} { return c.done }

// Err returns why the client closed, or nil while it is open.
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Close stops reconnecting, lets what is queued be written (within the
// write timeout), closes the connection, and waits for the client's
// goroutines to exit. It is idempotent.
func (c *Client) Close() error {
	c.mu.Lock()
	sess := c.sess
	if !c.closed {
		c.closed = true
		c.err = ErrClosed
		close(c.done)
	}
	c.mu.Unlock()
	if sess != nil {
		ctx, cancel := context.WithTimeout(context.Background(), c.cfg.writeTimeout)
		sess.closeFlushed(ctx, ErrClosed, nil)
		cancel()
	}
	c.wg.Wait()
	return nil
}
