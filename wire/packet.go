package wire

import (
	"encoding/binary"
	"fmt"
)

// Version is the msgtrans wire format version this package speaks.
const Version = 1

// HeaderSize is the size in bytes of the fixed packet header.
const HeaderSize = 16

// PacketType is the kind of a packet: one-way, request or response.
type PacketType uint8

// The packet types of wire format v1.
const (
	OneWay   PacketType = 0
	Request  PacketType = 1
	Response PacketType = 2
)

// String returns the name of the packet type.
func (t PacketType) String() string {
	switch t {
	case OneWay:
		return "oneway"
	case Request:
		return "request"
	case Response:
		return "response"
	}
	return fmt.Sprintf("packet_type(%d)", uint8(t))
}

// Compression identifies how a packet's payload is compressed. The ext header
// is never compressed.
type Compression uint8

// The compression values of wire format v1. Note that 1 is zstd and 2 is zlib.
const (
	CompressionNone Compression = 0
	CompressionZstd Compression = 1
	CompressionZlib Compression = 2
)

// String returns the name of the compression.
func (c Compression) String() string {
	switch c {
	case CompressionNone:
		return "none"
	case CompressionZstd:
		return "zstd"
	case CompressionZlib:
		return "zlib"
	}
	return fmt.Sprintf("compression(%d)", uint8(c))
}

// Flags is the 16-bit flag field of the fixed header. Unknown bits are carried
// through untouched.
type Flags uint16

// The flag bits of wire format v1.
const (
	// FlagFragmented is reserved in v1: senders leave it clear.
	FlagFragmented Flags = 1 << 0
	// FlagHighPriority marks a packet the application wants handled first.
	FlagHighPriority Flags = 1 << 1
	// FlagHasRouteTag marks a packet whose ext header carries a route
	// (see docs/wire.md); packets without it belong to the raw API.
	FlagHasRouteTag Flags = 1 << 2
)

// Packet is one msgtrans wire v1 packet. The version byte is implied: it is
// always [Version].
//
// A Packet returned by a decoder owns its Ext and Payload (unless the
// decoder pools them, see [Decoder.PoolBodies], or lends them, see
// [Decoder.NextLent]); a Packet built by the caller may alias any memory,
// which the encoder only reads.
type Packet struct {
	Type        PacketType
	Compression Compression
	BizType     uint8
	MessageID   uint32
	Flags       Flags
	class       int8 // the pool class of pooled
	Ext         []byte
	Payload     []byte

	pooled *byte // the first byte of the pooled buffer Ext and Payload are in, if any
}

// NewOneWay returns a one-way packet of the given biz_type carrying payload.
func NewOneWay(bizType uint8, payload []byte) *Packet {
	return &Packet{Type: OneWay, BizType: bizType, Payload: payload}
}

// NewRequest returns a request packet of the given biz_type carrying payload.
// The message id is assigned when the request is sent.
func NewRequest(bizType uint8, payload []byte) *Packet {
	return &Packet{Type: Request, BizType: bizType, Payload: payload}
}

// NewResponse returns the response to a request with the given message id.
func NewResponse(messageID uint32, bizType uint8, payload []byte) *Packet {
	return &Packet{Type: Response, BizType: bizType, MessageID: messageID, Payload: payload}
}

// NewText returns a one-way packet whose payload is the UTF-8 text s.
func NewText(bizType uint8, s string) *Packet {
	return NewOneWay(bizType, []byte(s))
}

// Reply returns a response to p (which should be a request) carrying payload,
// with p's message id and biz_type.
func (p *Packet) Reply(payload []byte) *Packet {
	return NewResponse(p.MessageID, p.BizType, payload)
}

// Echo returns a response to p carrying p's own payload and ext header.
func (p *Packet) Echo() *Packet {
	r := p.Reply(p.Payload)
	r.Ext = p.Ext
	r.Flags = p.Flags
	r.Compression = p.Compression
	return r
}

// Text returns the payload as a string.
func (p *Packet) Text() string { return string(p.Payload) }

// EncodedLen returns the number of bytes [AppendPacket] writes for p.
func (p *Packet) EncodedLen() int { return HeaderSize + len(p.Ext) + len(p.Payload) }

// String describes the packet's header for logs.
func (p *Packet) String() string {
	return fmt.Sprintf("%s id=%d biz=%d flags=%#x ext=%dB payload=%dB comp=%s",
		p.Type, p.MessageID, p.BizType, uint16(p.Flags), len(p.Ext), len(p.Payload), p.Compression)
}

// Header is the decoded fixed header of a packet.
type Header struct {
	Type        PacketType
	Compression Compression
	BizType     uint8
	MessageID   uint32
	ExtLen      uint16
	PayloadLen  uint32
	Flags       Flags
}

// BodyLen is the number of bytes that follow the fixed header.
func (h Header) BodyLen() int { return int(h.ExtLen) + int(h.PayloadLen) }

// AppendPacket appends the wire encoding of p to dst and returns the extended
// slice. It allocates only when dst lacks capacity. It fails when the ext
// header is longer than 65535 bytes, the payload longer than 2³²-1 bytes, or a
// field holds a value wire v1 does not define.
func AppendPacket(dst []byte, p *Packet) ([]byte, error) {
	if err := p.validate(); err != nil {
		return dst, err
	}
	dst = appendHeader(dst, p)
	dst = append(dst, p.Ext...)
	return append(dst, p.Payload...), nil
}

func (p *Packet) validate() error {
	switch {
	case p.Type > Response:
		return fmt.Errorf("%w: unknown packet_type %d", ErrProtocol, p.Type)
	case p.Compression > CompressionZlib:
		return fmt.Errorf("%w: unknown compression %d", ErrProtocol, p.Compression)
	case len(p.Ext) > 0xFFFF:
		return fmt.Errorf("%w: ext header of %d bytes exceeds 65535", ErrTooLarge, len(p.Ext))
	case uint64(len(p.Payload)) > 0xFFFFFFFF:
		return fmt.Errorf("%w: payload of %d bytes exceeds 2^32-1", ErrTooLarge, len(p.Payload))
	}
	return nil
}

func appendHeader(dst []byte, p *Packet) []byte {
	dst = append(dst, make([]byte, HeaderSize)...)
	Header{Type: p.Type, Compression: p.Compression, BizType: p.BizType, MessageID: p.MessageID,
		ExtLen: uint16(len(p.Ext)), PayloadLen: uint32(len(p.Payload)), Flags: p.Flags}.Put(dst[len(dst)-HeaderSize:])
	return dst
}

// Put writes h as a fixed header into b[:HeaderSize], for encoders that
// write a packet's body first and its header last.
func (h Header) Put(b []byte) {
	_ = b[HeaderSize-1]
	b[0], b[1], b[2], b[3] = Version, byte(h.Compression), byte(h.Type), h.BizType
	binary.BigEndian.PutUint32(b[4:8], h.MessageID)
	binary.BigEndian.PutUint16(b[8:10], h.ExtLen)
	binary.BigEndian.PutUint32(b[10:14], h.PayloadLen)
	binary.BigEndian.PutUint16(b[14:16], uint16(h.Flags))
}

// ParseHeader decodes and checks the fixed header at the start of b, which
// must hold at least [HeaderSize] bytes. It rejects a version other than 1,
// an unknown packet_type or compression, and lengths over the limits, before
// anything of the declared size is allocated.
func ParseHeader(b []byte, lim Limits) (Header, error) {
	if len(b) < HeaderSize {
		return Header{}, fmt.Errorf("%w: %d header bytes, need %d", ErrTruncated, len(b), HeaderSize)
	}
	h := Header{
		Compression: Compression(b[1]),
		Type:        PacketType(b[2]),
		BizType:     b[3],
		MessageID:   binary.BigEndian.Uint32(b[4:8]),
		ExtLen:      binary.BigEndian.Uint16(b[8:10]),
		PayloadLen:  binary.BigEndian.Uint32(b[10:14]),
		Flags:       Flags(binary.BigEndian.Uint16(b[14:16])),
	}
	lim = lim.WithDefaults()
	switch {
	case b[0] != Version:
		return h, &VersionError{Got: b[0]}
	case h.Type > Response:
		return h, fmt.Errorf("%w: unknown packet_type %d", ErrProtocol, h.Type)
	case h.Compression > CompressionZlib:
		return h, fmt.Errorf("%w: unknown compression %d", ErrProtocol, h.Compression)
	case int(h.ExtLen) > lim.MaxExtHeader:
		return h, fmt.Errorf("%w: ext header of %d bytes exceeds the limit of %d", ErrTooLarge, h.ExtLen, lim.MaxExtHeader)
	case uint64(h.PayloadLen) > uint64(lim.MaxPayload):
		return h, fmt.Errorf("%w: payload of %d bytes exceeds the limit of %d", ErrTooLarge, h.PayloadLen, lim.MaxPayload)
	}
	return h, nil
}

// ParsePacket decodes the packet at the start of b. It returns the packet and
// the number of bytes it used. When b holds less than a whole packet it
// returns an error wrapping [ErrTruncated] and n == 0; any other error means b
// does not start with a valid packet. The returned packet's Ext and Payload
// alias b.
func ParsePacket(b []byte, lim Limits) (p Packet, n int, err error) {
	h, err := ParseHeader(b, lim)
	if err != nil {
		return Packet{}, 0, err
	}
	n = HeaderSize + h.BodyLen()
	if len(b) < n {
		return Packet{}, 0, fmt.Errorf("%w: packet of %d bytes, have %d", ErrTruncated, n, len(b))
	}
	return h.Packet(b[HeaderSize:n:n]), n, nil
}

// Packet builds the packet for h from its body (ext header then payload),
// which must hold exactly h.BodyLen() bytes; the packet aliases body.
func (h Header) Packet(body []byte) Packet {
	var p Packet
	h.fill(&p, body)
	return p
}

// fill sets the fields of a zero *p to the packet h heads, with body.
func (h Header) fill(p *Packet, body []byte) {
	p.Type, p.Compression, p.BizType = h.Type, h.Compression, h.BizType
	p.MessageID, p.Flags = h.MessageID, h.Flags
	p.Ext = nilIfEmpty(body[:h.ExtLen:h.ExtLen])
	p.Payload = nilIfEmpty(body[h.ExtLen:len(body):len(body)])
}

func nilIfEmpty(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}
