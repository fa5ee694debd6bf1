package ws

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"

	"github.com/msgtrans/msgtrans-go/runtime"
	"github.com/msgtrans/msgtrans-go/wire"
)

// maxCloseReason is the longest reason a close frame can carry: a control
// frame's payload is at most 125 bytes, two of which hold the code.
const maxCloseReason = 123

// drainTime bounds how long a closing connection keeps reading (and
// discarding) after its close frame, waiting for the peer's close frame or
// end of stream: closing the socket with input unread would reset it, and
// the reset can reach the peer before the close frame is read, so the peer
// (a browser) would see an abnormal close (1006) instead of the code.
const drainTime = time.Second

// errTextMessage is the error of a text message: msgtrans sends packets in
// binary messages only. It is closed with 1003 (unsupported data).
var errTextMessage = fmt.Errorf("%w: text websocket message (msgtrans sends one packet per binary message)", wire.ErrProtocol)

// closeStatus returns the close code and reason that tell a peer why a
// connection closes with reason (the session's close reason, see
// [runtime.CloseReasoner]):
//
//	1000 normal closure: nil, ErrClosed, ErrPeerClosed, ErrGoAway (nothing went wrong)
//	1001 going away: server shutdown, a refusal with status unavailable
//	1002 protocol error: input that is not a valid packet
//	1003 unsupported data: a text message
//	1008 policy violation: rate limit, ping flood, not authenticated, slow
//	     consumer, heartbeat timeout, a packet too slow to arrive, a refusal
//	     (unauthenticated, permission denied, resource exhausted, …)
//	1009 message too big: a message or packet over the limits
//	1011 internal error: a status internal, unknown or data loss, or any
//	     error the runtime does not classify (its text is not sent)
func closeStatus(reason error) (code int, text string) {
	var se *runtime.Error
	var ne net.Error
	switch {
	case reason == nil, errors.Is(reason, runtime.ErrClosed), errors.Is(reason, runtime.ErrPeerClosed),
		errors.Is(reason, runtime.ErrGoAway), errors.Is(reason, io.EOF):
		return websocket.CloseNormalClosure, ""
	case errors.Is(reason, runtime.ErrServerShutdown):
		return websocket.CloseGoingAway, "server shutting down"
	case errors.Is(reason, errTextMessage):
		return websocket.CloseUnsupportedData, reasonText(reason)
	case errors.Is(reason, wire.ErrTooLarge):
		return websocket.CloseMessageTooBig, reasonText(reason)
	case errors.Is(reason, wire.ErrProtocol), errors.Is(reason, wire.ErrTruncated):
		return websocket.CloseProtocolError, reasonText(reason)
	case errors.Is(reason, runtime.ErrRateLimited), errors.Is(reason, runtime.ErrPingFlood),
		errors.Is(reason, runtime.ErrNotAuthenticated), errors.Is(reason, runtime.ErrSlowConsumer),
		errors.Is(reason, runtime.ErrHeartbeatTimeout):
		return websocket.ClosePolicyViolation, reasonText(reason)
	case errors.As(reason, &se):
		switch se.Code {
		case runtime.CodeOK:
			return websocket.CloseNormalClosure, reasonText(reason)
		case runtime.CodeInternal, runtime.CodeUnknown, runtime.CodeDataLoss:
			return websocket.CloseInternalServerErr, "internal error"
		case runtime.CodeUnavailable:
			return websocket.CloseGoingAway, reasonText(reason)
		}
		return websocket.ClosePolicyViolation, reasonText(reason)
	case errors.As(reason, &ne) && ne.Timeout():
		// A packet that did not arrive whole within the packet read
		// timeout.
		return websocket.ClosePolicyViolation, reasonText(reason)
	}
	return websocket.CloseInternalServerErr, "internal error"
}

// reasonText is the close reason for err: a status's code and message, or
// the error's text without the "msgtrans: " prefix, cut to fit a close
// frame at a character boundary, valid UTF-8.
func reasonText(err error) string {
	var se *runtime.Error
	var msg string
	if errors.As(err, &se) {
		msg = se.Code.String()
		if se.Message != "" {
			msg += ": " + se.Message
		}
	} else {
		msg = strings.TrimPrefix(err.Error(), "msgtrans: ")
	}
	msg = strings.ToValidUTF8(msg, "\uFFFD")
	if len(msg) > maxCloseReason {
		i := maxCloseReason
		for i > 0 && !utf8.RuneStart(msg[i]) {
			i--
		}
		msg = msg[:i]
	}
	return msg
}

// closePayload is the payload of a close frame saying why reason closes the
// connection.
func closePayload(reason error) []byte {
	code, text := closeStatus(reason)
	return websocket.FormatCloseMessage(code, text)
}

// halfClose ends the sending side of c below WebSocket: after a TLS
// close_notify, the TCP connection's (a peer that saw the close frame may
// then close without waiting for the server to, as RFC 6455 asks).
func halfClose(c net.Conn) {
	if tc, ok := c.(interface{ NetConn() net.Conn }); ok {
		if cw, ok := c.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		}
		c = tc.NetConn()
	}
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
}
