package runtime

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/msgtrans/msgtrans-go/wire"
)

// connect dials once, sends the hello and waits for the server's answer,
// all within the connect timeout. A connection counts as established only
// once the server has answered (with its hello, or any packet a raw peer
// sends first): a refusal (a go-away with a status), a go-away, a peer
// that closes at once, and one that does not speak wire v1 each fail the
// attempt instead.
//
// It dials the next of the server's addresses, and moves on to the one
// after for the next attempt.
func (c *Client) connect(ctx context.Context) (*Session, error) {
	c.mu.Lock()
	d := c.dials[c.next]
	c.next = (c.next + 1) % len(c.dials)
	c.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, c.cfg.connectTimeout)
	defer cancel()
	conn, err := d.t.Dial(ctx, d.u, c.cfg.transportConfig())
	if err != nil {
		return nil, err
	}
	sess := newSession(conn, d.u.Scheme, c.cfg, clientPolicy, &c.mux, new(atomic.Uint32), c.clock, c.work)
	sess.addr = d.addr
	sess.becomeReady("")
	err = sess.Send(helloPacket(c.cfg))
	if err == nil {
		sess.first, err = c.awaitAnswer(ctx, conn, d.addr)
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
func (c *Client) awaitAnswer(ctx context.Context, conn Conn, addr string) (*wire.Packet, error) {
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	p, err := conn.ReadPacket()
	if !stop() {
		return nil, Errorf(CodeDeadlineExceeded, "%s did not answer the hello within %v", addr, c.cfg.connectTimeout)
	}
	var ve *wire.VersionError
	switch {
	case errors.As(err, &ve) && ve.Got == 'H':
		return nil, fmt.Errorf("msgtrans: %s answered in HTTP, not msgtrans (a WebSocket endpoint is dialled as ws://host:port/path): %w", addr, err)
	case errors.Is(err, wire.ErrProtocol):
		return nil, fmt.Errorf("msgtrans: %s does not speak msgtrans wire v1: %w", addr, err)
	case errors.Is(err, io.EOF):
		return nil, fmt.Errorf("msgtrans: %s closed the connection before answering the hello: %w", addr, ErrPeerClosed)
	case err != nil:
		return nil, fmt.Errorf("msgtrans: reading the answer of %s to the hello: %w", addr, err)
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
