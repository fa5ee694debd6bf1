package runtime

import (
	"context"
	"errors"
	"fmt"
)

// Sentinel errors of the packet layer. Decoding errors wrap one of them, so
// callers test with [errors.Is].
var (
	// ErrProtocol reports bytes that are not a valid wire v1 packet: a wrong
	// version, an unknown packet_type or compression, a text WebSocket message.
	ErrProtocol = errors.New("msgtrans: protocol error")
	// ErrTooLarge reports a declared or decompressed length over a limit.
	ErrTooLarge = errors.New("msgtrans: packet too large")
	// ErrTruncated reports input that ended inside a packet.
	ErrTruncated = errors.New("msgtrans: truncated packet")
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

// Code is the status code of an [Error]. The values follow the gRPC codes, so
// they read the same to anyone who knows those.
type Code uint32

// The status codes.
const (
	CodeOK                 Code = 0
	CodeCanceled           Code = 1
	CodeUnknown            Code = 2
	CodeInvalidArgument    Code = 3
	CodeDeadlineExceeded   Code = 4
	CodeNotFound           Code = 5
	CodeAlreadyExists      Code = 6
	CodePermissionDenied   Code = 7
	CodeResourceExhausted  Code = 8
	CodeFailedPrecondition Code = 9
	CodeAborted            Code = 10
	CodeOutOfRange         Code = 11
	CodeUnimplemented      Code = 12
	CodeInternal           Code = 13
	CodeUnavailable        Code = 14
	CodeDataLoss           Code = 15
	CodeUnauthenticated    Code = 16
)

var codeNames = [...]string{
	"ok", "canceled", "unknown", "invalid_argument", "deadline_exceeded", "not_found",
	"already_exists", "permission_denied", "resource_exhausted", "failed_precondition",
	"aborted", "out_of_range", "unimplemented", "internal", "unavailable", "data_loss",
	"unauthenticated",
}

// String returns the snake_case name of the code.
func (c Code) String() string {
	if int(c) < len(codeNames) {
		return codeNames[c]
	}
	return fmt.Sprintf("code_%d", uint32(c))
}

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
