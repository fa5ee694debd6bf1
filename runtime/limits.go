package runtime

import (
	"encoding/binary"
	"fmt"
	"time"
)

// The default limits. None of them can be switched off: a zero field of
// [Limits] means "use the default", never "unlimited".
const (
	DefaultMaxPayload        = 1 << 20
	DefaultMaxExtHeader      = 4 << 10
	DefaultMaxDecompressed   = 10 * DefaultMaxPayload
	DefaultPacketReadTimeout = 30 * time.Second
)

// Limits bounds what a peer may make this side allocate or wait for. They are
// checked against the fixed header before anything of the declared size is
// allocated. A zero field takes its default.
type Limits struct {
	// MaxPayload caps payload_len (as on the wire). Default 1 MiB.
	MaxPayload int
	// MaxExtHeader caps ext_header_len. Default 4 KiB.
	MaxExtHeader int
	// MaxDecompressed caps a payload's size after decompression. Default 10 MiB.
	MaxDecompressed int
	// PacketReadTimeout bounds the time from the first byte of a packet to its
	// last; an idle connection between packets is not affected. Default 30 s.
	PacketReadTimeout time.Duration
}

func (l Limits) withDefaults() Limits {
	if l.MaxPayload <= 0 {
		l.MaxPayload = DefaultMaxPayload
	}
	if l.MaxExtHeader <= 0 {
		l.MaxExtHeader = DefaultMaxExtHeader
	}
	if l.MaxExtHeader > 0xFFFF {
		l.MaxExtHeader = 0xFFFF
	}
	if l.MaxDecompressed <= 0 {
		l.MaxDecompressed = DefaultMaxDecompressed
	}
	if l.PacketReadTimeout <= 0 {
		l.PacketReadTimeout = DefaultPacketReadTimeout
	}
	return l
}

// maxPacket is the largest encoded packet the limits admit.
func (l Limits) maxPacket() int { return HeaderSize + l.MaxExtHeader + l.MaxPayload }

// MaxPacketSize returns the largest encoded packet the limits admit (the
// fixed header plus the ext header and payload caps), defaults applied.
func (l Limits) MaxPacketSize() int { return l.withDefaults().maxPacket() }

// LimitSetter is implemented by connections whose limits can change while
// they are open; the runtime uses it to hold a connection to tighter limits
// until it has authenticated (see [WithAuthenticator]). It is called by the
// goroutine that reads the connection, between packets.
type LimitSetter interface {
	SetLimits(Limits)
}

// checkSend returns an error wrapping [ErrPayloadTooLarge] (with
// CodeInvalidArgument) when a packet with an ext header of ext bytes and a
// payload of payload bytes (before compression) is over the limits, which
// hold for what this side sends as for what it accepts.
func (l Limits) checkSend(ext, payload int) error {
	switch {
	case payload > l.MaxPayload:
		return &Error{Code: CodeInvalidArgument, Message: fmt.Sprintf("payload of %d bytes is over the limit of %d", payload, l.MaxPayload), cause: ErrPayloadTooLarge}
	case ext > l.MaxExtHeader:
		return &Error{Code: CodeInvalidArgument, Message: fmt.Sprintf("ext header of %d bytes is over the limit of %d", ext, l.MaxExtHeader), cause: ErrPayloadTooLarge}
	}
	return nil
}

// checkEncoded is checkSend for an encoded packet.
func (l Limits) checkEncoded(b []byte) error {
	if len(b) < HeaderSize {
		return fmt.Errorf("%w: encoded packet of %d bytes, shorter than a header", ErrTruncated, len(b))
	}
	ext := int(binary.BigEndian.Uint16(b[8:10]))
	payload := int(binary.BigEndian.Uint32(b[10:14]))
	if HeaderSize+ext+payload != len(b) {
		return fmt.Errorf("%w: encoded packet of %d bytes declares %d", ErrProtocol, len(b), HeaderSize+ext+payload)
	}
	return l.checkSend(ext, payload)
}
