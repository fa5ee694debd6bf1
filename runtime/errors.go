package runtime

import (
	"context"
	"errors"
	"fmt"

	"github.com/msgtrans/msgtrans-go/wire"
)

// Sentinel errors of the runtime. Close reasons and failures wrap one of
// them, so callers test with [errors.Is]. The packet layer's own
// (wire.ErrProtocol, wire.ErrTooLarge, wire.ErrTruncated) live in package
// wire.
var (
	// ErrClosed reports use of a closed client, server or session.
	ErrClosed = errors.New("msgtrans: closed")
	// ErrSlowConsumer is the close reason of a session whose send queue overflowed.
	ErrSlowConsumer = errors.New("msgtrans: slow consumer")
	// ErrUnknownScheme reports a URL whose scheme has no registered transport.
	ErrUnknownScheme = errors.New("msgtrans: unknown transport scheme")
	// ErrPayloadTooLarge reports a send whose payload or ext header is over
	// this side's limits ([WithLimits]): that send fails (with
	// CodeInvalidArgument) and the session stays open. Sends are held to
	// the same limits as what this side accepts.
	ErrPayloadTooLarge = errors.New("msgtrans: payload too large")
)

// Code is the status code of an [Error]: [wire.Code], named here too
// because it is mostly used with [Error].
type Code = wire.Code

// The status codes, as in package wire.
const (
	CodeOK                 = wire.CodeOK
	CodeCanceled           = wire.CodeCanceled
	CodeUnknown            = wire.CodeUnknown
	CodeInvalidArgument    = wire.CodeInvalidArgument
	CodeDeadlineExceeded   = wire.CodeDeadlineExceeded
	CodeNotFound           = wire.CodeNotFound
	CodeAlreadyExists      = wire.CodeAlreadyExists
	CodePermissionDenied   = wire.CodePermissionDenied
	CodeResourceExhausted  = wire.CodeResourceExhausted
	CodeFailedPrecondition = wire.CodeFailedPrecondition
	CodeAborted            = wire.CodeAborted
	CodeOutOfRange         = wire.CodeOutOfRange
	CodeUnimplemented      = wire.CodeUnimplemented
	CodeInternal           = wire.CodeInternal
	CodeUnavailable        = wire.CodeUnavailable
	CodeDataLoss           = wire.CodeDataLoss
	CodeUnauthenticated    = wire.CodeUnauthenticated
)

// Error is an error with a status [Code]. It is the error type that crosses
// the wire in responses, and the type of every request failure the runtime
// reports (timeout, disconnect, cancellation).
type Error struct {
	Code    Code
	Message string
	cause   error
}

// NewError returns an [*Error] with the code and message.
func NewError(code Code, message string) *Error {
	return &Error{Code: code, Message: message}
}

// Errorf returns an [*Error] with the code and a formatted message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

func wrapError(code Code, cause error) *Error {
	return &Error{Code: code, Message: cause.Error(), cause: cause}
}

// Error implements error.
func (e *Error) Error() string {
	if e.Message == "" {
		return "msgtrans: " + e.Code.String()
	}
	return "msgtrans: " + e.Code.String() + ": " + e.Message
}

// Unwrap returns the underlying cause, if any.
func (e *Error) Unwrap() error { return e.cause }

// messageOf returns the message of the first [*Error] in err's chain, or
// err's text for any other error.
func messageOf(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	if err == nil {
		return ""
	}
	return err.Error()
}

// CodeOf returns the code of the first [*Error] in err's chain, CodeOK for a
// nil err, CodeDeadlineExceeded and CodeCanceled for the context package's
// errors, and CodeUnknown for any other error.
func CodeOf(err error) Code {
	var e *Error
	switch {
	case err == nil:
		return CodeOK
	case errors.As(err, &e):
		return e.Code
	case errors.Is(err, context.DeadlineExceeded):
		return CodeDeadlineExceeded
	case errors.Is(err, context.Canceled):
		return CodeCanceled
	}
	return CodeUnknown
}

// ErrPeerClosed is the close reason of a session whose peer closed the
// connection between packets.
var ErrPeerClosed = errors.New("msgtrans: closed by peer")

// ErrGoAway is the close reason of a client connection whose server said it
// is shutting down.
var ErrGoAway = errors.New("msgtrans: server is going away")

// ErrServerShutdown is the close reason of sessions closed by
// [Server.Shutdown] or [Server.Close].
var ErrServerShutdown = errors.New("msgtrans: server shut down")

// ErrHeartbeatTimeout is the close reason of a connection whose peer sent
// nothing, not even a heartbeat, for the heartbeat timeout.
var ErrHeartbeatTimeout = errors.New("msgtrans: heartbeat timeout: the peer went silent")

// ErrPingFlood is the close reason of a session that sent pings far faster
// than any heartbeat needs.
var ErrPingFlood = errors.New("msgtrans: ping flood")

// ErrRateLimited is the close reason of a session that kept sending over
// its rate limit, or inflating more than its decompression budget.
var ErrRateLimited = errors.New("msgtrans: rate limit exceeded repeatedly")

// ErrNotAuthenticated is the close reason of a connection that sent
// something other than its hello before authenticating, or nothing within
// the handshake timeout.
var ErrNotAuthenticated = errors.New("msgtrans: not authenticated")

// errRefused ends the read loop of a session that was refused; its close
// reason is already set.
var errRefused = errors.New("msgtrans: connection refused")
