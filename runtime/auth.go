package runtime

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/msgtrans/msgtrans-go/wire"
)

// AuthInfo is what an [Authenticator] decides on: the connection and the
// credentials its hello carried.
type AuthInfo struct {
	// Transport is the URL scheme the connection arrived by.
	Transport string
	// RemoteAddr is the peer's network address.
	RemoteAddr net.Addr
	// Credentials are the bytes the client gave [WithCredentials]; nil when
	// it gave none.
	Credentials []byte
}

// Authenticator decides whether a connection may proceed, from its hello.
// It returns the identity to bind to the session (for example a user id,
// then available as [Session.Identity]) or an error: the connection is
// then refused, with the error's code (CodeUnauthenticated unless the error
// carries one) and message sent to the client, which does not reconnect.
// ctx ends at the authentication timeout.
//
// Until it succeeds nothing but the hello is processed: any other packet
// closes the connection, and so does a hello not sent within the
// handshake timeout.
type Authenticator func(ctx context.Context, info AuthInfo) (identity string, err error)

// WithAuthenticator makes the server authenticate every connection with a
// at its hello, before anything else of it is processed. See
// [Authenticator].
func WithAuthenticator(a Authenticator) ServerOption {
	return serverOption{"WithAuthenticator", func(c *config) { c.authenticator = a }}
}

// WithCredentials gives the credentials a client sends in its hello to the
// server's [Authenticator], on every connection it makes.
func WithCredentials(credentials []byte) ClientOption {
	return clientOption{"WithCredentials", func(c *config) { c.credentials = credentials }}
}

// PreAuthMaxPacket caps a connection's payload and ext header until it has
// authenticated: a hello needs little, and an unauthenticated peer should be
// able to make the server hold little.
const PreAuthMaxPacket = 4 << 10

// preAuthLimits returns the limits for a connection not yet authenticated.
func (c *config) preAuthLimits() wire.Limits {
	l := c.limits
	l.MaxPayload = min(l.MaxPayload, PreAuthMaxPacket)
	l.MaxExtHeader = min(l.MaxExtHeader, PreAuthMaxPacket)
	l.MaxDecompressed = min(l.MaxDecompressed, 10*PreAuthMaxPacket)
	return l
}

// Identity returns the identity the server's authenticator bound to the
// session, "" without one.
func (s *Session) Identity() string {
	if !s.ready.Load() {
		return ""
	}
	return s.identity
}

// authenticate decides on the packet that must be a session's first when
// the server authenticates: the hello. It returns the identity to bind, or
// why the session may not proceed: an error wrapping ErrNotAuthenticated
// (the peer sent something else first), or the refusal to send it.
func (s *Session) authenticate(p *wire.Packet, ext wire.Ext, isHello bool) (string, error) {
	if !isHello {
		return "", fmt.Errorf("%w: %s packet before the hello", ErrNotAuthenticated, p.Type)
	}
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.handshakeTimeout)
	defer cancel()
	id, err := s.policy.authenticate(ctx, AuthInfo{Transport: s.scheme, RemoteAddr: s.conn.RemoteAddr(), Credentials: ext.Auth})
	if err != nil {
		if CodeOf(err) == CodeUnknown {
			err = wrapError(CodeUnauthenticated, err)
		}
		s.cfg.logger.Info("msgtrans: authentication failed", "session", s.id, "transport", s.scheme,
			"remote", addrString(s.conn.RemoteAddr()), "err", err)
		return "", err
	}
	return id, nil
}

// becomeReady binds the identity to the session, lifts the
// pre-authentication limits and reports the session ready to be served.
func (s *Session) becomeReady(identity string) {
	s.identity = identity
	if ls, ok := s.conn.(LimitSetter); ok {
		ls.SetLimits(s.cfg.limits)
	}
	s.ready.Store(true)
	s.policy.ready(s)
}

// authTimer holds the session to the pre-authentication limits and closes
// it if it has not authenticated within the handshake timeout.
func (s *Session) authTimer() *time.Timer {
	if ls, ok := s.conn.(LimitSetter); ok {
		ls.SetLimits(s.cfg.preAuthLimits())
	}
	return time.AfterFunc(s.cfg.handshakeTimeout, func() {
		if !s.ready.Load() {
			s.closeWith(fmt.Errorf("%w within %v", ErrNotAuthenticated, s.cfg.handshakeTimeout))
		}
	})
}
