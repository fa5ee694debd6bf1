package ws

import (
	"context"
	"net"
	"net/url"

	"github.com/msgtrans/msgtrans-go/runtime"
)

// DialWith is [Transport.Dial] with the TCP dial function replaced, so tests
// can watch the socket.
func DialWith(t Transport, ctx context.Context, u *url.URL, cfg *runtime.TransportConfig,
	netDial func(ctx context.Context, network, addr string) (net.Conn, error)) (runtime.Conn, error) {
	return t.dial(ctx, u, cfg, netDial)
}

// ServeOn is [Transport.Listen] on an existing listening socket.
func ServeOn(t Transport, nl net.Listener, u *url.URL, cfg *runtime.TransportConfig) runtime.Listener {
	return t.serve(nl, u, cfg.WithDefaults())
}
