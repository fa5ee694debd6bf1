package runtime

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"sync"

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
	dials []dialTarget // the server's addresses: the first, then WithAddrs's
	clock *clock
	work  *workPool

	mu      sync.Mutex
	next    int      // the index in dials of the address to dial next
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
		_ = c.Close()
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
	c := &Client{cfg: cfg, done: make(chan struct{}), clock: newClock(), work: newWorkPool()}
	for _, a := range append([]string{addr}, cfg.addrs...) {
		t, u, err := lookupTransport(a)
		if err != nil {
			return nil, err
		}
		c.dials = append(c.dials, dialTarget{t, u, a})
	}
	cfg.obs = newObserving(cfg.observer, SideClient, func(yield func(*Session)) {
		if sess := c.Session(); sess != nil {
			yield(sess)
		}
	})
	return c, nil
}

// dialTarget is one address of the server, its transport found.
type dialTarget struct {
	t    Transport
	u    *url.URL
	addr string
}

// WithLocalIP makes the client connect from the given local address (on a
// host with several), on every transport.
func WithLocalIP(ip net.IP) ClientOption {
	return clientOption{"WithLocalIP", func(c *config) { c.localIP = ip }}
}

// WithAddrs gives the client more addresses of the same logical server
// (other nodes of a cluster, say), beside the one it was created with.
// Connect tries them in turn until one answers; after a drop, each
// reconnection attempt dials the next, round the list.
func WithAddrs(addrs ...string) ClientOption {
	return clientOption{"WithAddrs", func(c *config) { c.addrs = append(c.addrs, addrs...) }}
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
	var err error
	for range c.dials {
		var sess *Session
		if sess, err = c.connect(ctx); err == nil {
			c.start(sess)
			return nil
		}
		if terminal(err) || ctx.Err() != nil {
			break
		}
	}
	return err
}

// Handle registers h for raw packets of the given biz_type pushed or
// requested by the server; a nil h removes it.
func (c *Client) Handle(bizType uint8, h Handler) {
	c.cfg.obs.raw(bizType) // the observer's handle, resolved now
	c.mux.handleBiz(bizType, c.cfg.wrap(h))
}

// HandleMethod registers h for the typed method, replacing any earlier
// handler; a nil h removes it. Generated register functions call it.
func (c *Client) HandleMethod(m *Method, h Handler) {
	c.cfg.obs.method(m) // the observer's handle, resolved now
	c.mux.handleMethod(m, c.cfg.wrap(h), nil)
}

// HandleStream registers h for the streaming method, replacing any earlier
// handler; a nil h removes it. Generated register functions call it.
func (c *Client) HandleStream(m *Method, h StreamHandler) {
	c.cfg.obs.method(m)
	c.mux.handleMethod(m, registered{}, c.cfg.wrapStream(h))
}

// Addr returns the address of the server the client is connected to, or
// will dial next.
func (c *Client) Addr() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sess != nil {
		return c.sess.addr
	}
	return c.dials[c.next].addr
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
	c.work.close()
	return nil
}
