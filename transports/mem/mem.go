package mem

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"sync"

	"github.com/msgtrans/msgtrans-go/runtime"
	"github.com/msgtrans/msgtrans-go/wire"
)

func init() { runtime.RegisterTransport("mem", Transport{}) }

// Transport carries packets between a listener and dialers in the same
// process over synchronous in-memory pipes ([net.Pipe]), addressed as
// "mem://name". It needs no sockets, so unit tests and examples run anywhere;
// it is also the smallest complete example of a custom transport.
type Transport struct{}

var registry = struct {
	sync.Mutex
	m map[string]*listener
}{m: make(map[string]*listener)}

// Listen implements [runtime.Transport]. The name (the URL's host) must not
// be in use by another open listener.
func (Transport) Listen(_ context.Context, u *url.URL, cfg *runtime.TransportConfig) (runtime.Listener, error) {
	cfg = cfg.WithDefaults()
	registry.Lock()
	defer registry.Unlock()
	if _, ok := registry.m[u.Host]; ok {
		return nil, fmt.Errorf("msgtrans: mem listener %q already exists", u.Host)
	}
	l := &listener{name: u.Host, lim: cfg.Limits, conns: make(chan net.Conn), done: make(chan struct{})}
	registry.m[u.Host] = l
	return l, nil
}

// Dial implements [runtime.Transport].
func (Transport) Dial(ctx context.Context, u *url.URL, cfg *runtime.TransportConfig) (runtime.Conn, error) {
	cfg = cfg.WithDefaults()
	registry.Lock()
	l := registry.m[u.Host]
	registry.Unlock()
	if l == nil {
		return nil, fmt.Errorf("msgtrans: dial %s: no mem listener named %q", u, u.Host)
	}
	client, server := net.Pipe()
	select {
	case l.conns <- server:
		return runtime.NewStreamConn(client, cfg.Limits), nil
	case <-l.done:
		client.Close()
		server.Close()
		return nil, fmt.Errorf("msgtrans: dial %s: %w", u, net.ErrClosed)
	case <-ctx.Done():
		client.Close()
		server.Close()
		return nil, fmt.Errorf("msgtrans: dial %s: %w", u, ctx.Err())
	}
}

type listener struct {
	name  string
	lim   wire.Limits
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func (l *listener) Accept() (runtime.Conn, error) {
	select {
	case c := <-l.conns:
		return runtime.NewStreamConn(c, l.lim), nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *listener) Close() error {
	l.once.Do(func() {
		close(l.done)
		registry.Lock()
		delete(registry.m, l.name)
		registry.Unlock()
	})
	return nil
}

func (l *listener) Addr() net.Addr { return addr(l.name) }

type addr string

func (a addr) Network() string { return "mem" }
func (a addr) String() string  { return string(a) }
