package wire

import (
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
	// ErrIdle reports that a reader asked to stop waiting on an idle
	// connection ([Decoder.SetIdleTimeout]) has waited that long between
	// packets with nothing buffered. It is no failure: the connection
	// stays usable, and the next read goes on where this one stopped.
	ErrIdle = errors.New("msgtrans: connection idle")
)

// VersionError reports a packet whose version byte is not [Version]. It
// wraps [ErrProtocol]. A peer that answers in another protocol shows in
// Got: 'H' (72) for HTTP, say.
type VersionError struct{ Got byte }

func (e *VersionError) Error() string {
	return fmt.Sprintf("%v: version %d, want %d", ErrProtocol, e.Got, Version)
}

// Unwrap returns [ErrProtocol].
func (e *VersionError) Unwrap() error { return ErrProtocol }

// CriticalFieldError reports a typed-layer ext header that is well formed
// but holds a critical (must-understand) field this package does not know,
// or a stream field whose op it does not know. It wraps [ErrProtocol]. The
// bytes are sound, so a receiver refuses this packet alone, not the
// connection (see docs/wire.md, "Unknown critical fields").
type CriticalFieldError struct {
	// Tag is the field's tag: an unknown one, or the stream field's.
	Tag byte
	// Op is the stream field's op when Tag is the stream field's.
	Op StreamOp
}

func (e *CriticalFieldError) Error() string {
	return fmt.Sprintf("%v: %s", ErrProtocol, e.Detail())
}

// Detail says what was not understood, without the "protocol error"
// prefix: the text a receiver puts in its refusal.
func (e *CriticalFieldError) Detail() string {
	if e.Tag == tagStream {
		return fmt.Sprintf("unknown stream op %d", e.Op)
	}
	return fmt.Sprintf("unknown critical ext field %#x", e.Tag)
}

// Unwrap returns [ErrProtocol].
func (e *CriticalFieldError) Unwrap() error { return ErrProtocol }
