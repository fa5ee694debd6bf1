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
