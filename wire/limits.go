package wire

import "time"

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

// WithDefaults returns l with every zero (or negative) field set to its
// default, and MaxExtHeader capped at what the wire can carry.
func (l Limits) WithDefaults() Limits {
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

// MaxPacketSize returns the largest encoded packet the limits admit (the
// fixed header plus the ext header and payload caps), defaults applied.
func (l Limits) MaxPacketSize() int {
	l = l.WithDefaults()
	return HeaderSize + l.MaxExtHeader + l.MaxPayload
}
