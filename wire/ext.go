package wire

import (
	"encoding/binary"
	"fmt"
)

// ExtVersion is the first byte of an ext header laid out by this package's
// typed layer. Ext headers that start otherwise (a raw peer's text route tag,
// say) are left to the raw API untouched.
const ExtVersion = 1

// Ext field tags. A tag with the high bit set is critical: a receiver that
// does not know it must reject the packet rather than skip the field.
const (
	extCritical    = 0x80
	tagRoute       = 0x01 | extCritical // u32 route id; 0 is the control route
	tagControl     = 0x02 | extCritical // one byte: the control kind
	tagCode        = 0x03               // uvarint status code of a response
	tagMessage     = 0x04               // UTF-8 status message of a response
	tagTimeoutMS   = 0x05               // uvarint: the caller's remaining time, in milliseconds
	tagAuth        = 0x06               // bytes: credentials, in a hello
	tagRetryMS     = 0x07               // uvarint: how long a refused client should wait before retrying, in milliseconds
	tagStream      = 0x08 | extCritical // 6 bytes: stream op, flags (bit 0: from the acceptor), stream id (u32)
	tagCredit      = 0x09               // uvarint: messages the sender may be sent more (a window, or a grant)
	tagTraceParent = 0x0A               // text: the W3C traceparent of the call
	tagTraceState  = 0x0B               // text: the W3C tracestate, beside a traceparent
)

// StreamOp says what a stream frame does. Stream frames are OneWay packets
// with a stream field (see docs/wire.md, "Streams"); a stream is opened by
// a Request and ended by its Response.
type StreamOp uint8

// The stream ops.
const (
	// StreamMessage carries one message of the stream as its payload.
	StreamMessage StreamOp = 1
	// StreamHalfClose says the sender will send no more messages.
	StreamHalfClose StreamOp = 2
	// StreamCredit grants the receiver Ext.Credit more messages.
	StreamCredit StreamOp = 3
	// StreamCancel abandons the stream, with a status (code and message).
	StreamCancel StreamOp = 4
)

// StreamFrame is the stream field of a stream frame: which stream (the
// message id of the Request that opened it, numbered by its opener), and
// whether the frame comes from the side that accepted it.
type StreamFrame struct {
	Op           StreamOp
	FromAcceptor bool
	ID           uint32
}

// ControlRoute is the route id of the runtime's own control packets.
const ControlRoute = 0

// ControlKind says what a control packet is for.
type ControlKind uint8

// The control kinds.
const (
	// ControlHello is the first packet a client sends; its payload is a
	// bitmask of the compressions the sender accepts (bit n = Compression n).
	ControlHello ControlKind = 1
	// ControlPing asks the peer for a ControlPong.
	ControlPing ControlKind = 2
	// ControlPong answers a ControlPing.
	ControlPong ControlKind = 3
	// ControlGoAway tells the peer the sender is shutting down: reconnect later.
	ControlGoAway ControlKind = 4
)

// Ext is the parsed typed-layer ext header. See docs/wire.md for the layout.
type Ext struct {
	// HasRoute reports whether Route is set.
	HasRoute bool
	// Route is the route id of a typed packet; ControlRoute for control packets.
	Route uint32
	// Control is the kind of a control packet, 0 otherwise.
	Control ControlKind
	// Code and Message are a response's status; CodeOK when absent.
	Code    Code
	Message string
	// TimeoutMS is the caller's remaining time in milliseconds; 0 when absent.
	TimeoutMS uint64
	// Auth is the credentials a hello carries for the server's
	// authenticator; nil when absent.
	Auth []byte
	// RetryAfterMS is how long, in milliseconds, a server that refused a
	// connection (a go-away with a status) asks the client to wait at
	// least before it tries again; 0 when absent.
	RetryAfterMS uint64
	// HasStream reports whether Stream is set: the packet is a stream
	// frame.
	HasStream bool
	Stream    StreamFrame
	// Credit is the messages a stream's receiver lets its sender send: in
	// an opening Request the opener's window, in a credit frame a grant.
	// 0 when absent.
	Credit uint32
	// TraceParent and TraceState are the W3C trace context
	// (https://www.w3.org/TR/trace-context/) of the call the packet makes:
	// the traceparent and tracestate header values, as text. The wire
	// carries them and never interprets them; empty when absent.
	// TraceState travels only beside a TraceParent: AppendExt leaves it
	// out without one, and ParseExt drops it when it came alone.
	TraceParent string
	TraceState  string
}

// IsTypedExt reports whether p carries an ext header in this package's
// layout: FlagHasRouteTag set and the ext header starting with [ExtVersion].
func IsTypedExt(p *Packet) bool {
	return p.Flags&FlagHasRouteTag != 0 && len(p.Ext) > 0 && p.Ext[0] == ExtVersion
}

// AppendExt appends the encoding of e to dst.
func AppendExt(dst []byte, e *Ext) []byte {
	dst = append(dst, ExtVersion)
	if e.HasRoute {
		dst = append(dst, tagRoute, 4)
		dst = binary.BigEndian.AppendUint32(dst, e.Route)
	}
	if e.Control != 0 {
		dst = append(dst, tagControl, 1, byte(e.Control))
	}
	if e.Code != CodeOK {
		dst = append(dst, tagCode, byte(uvarintLen(uint64(e.Code))))
		dst = binary.AppendUvarint(dst, uint64(e.Code))
	}
	if e.Message != "" {
		dst = append(dst, tagMessage)
		dst = binary.AppendUvarint(dst, uint64(len(e.Message)))
		dst = append(dst, e.Message...)
	}
	if e.TimeoutMS != 0 {
		dst = append(dst, tagTimeoutMS, byte(uvarintLen(e.TimeoutMS)))
		dst = binary.AppendUvarint(dst, e.TimeoutMS)
	}
	if e.Auth != nil {
		dst = append(dst, tagAuth)
		dst = binary.AppendUvarint(dst, uint64(len(e.Auth)))
		dst = append(dst, e.Auth...)
	}
	if e.RetryAfterMS != 0 {
		dst = append(dst, tagRetryMS, byte(uvarintLen(e.RetryAfterMS)))
		dst = binary.AppendUvarint(dst, e.RetryAfterMS)
	}
	if e.HasStream {
		flags := byte(0)
		if e.Stream.FromAcceptor {
			flags = 1
		}
		dst = append(dst, tagStream, 6, byte(e.Stream.Op), flags)
		dst = binary.BigEndian.AppendUint32(dst, e.Stream.ID)
	}
	if e.Credit != 0 {
		dst = append(dst, tagCredit, byte(uvarintLen(uint64(e.Credit))))
		dst = binary.AppendUvarint(dst, uint64(e.Credit))
	}
	return AppendTraceContext(dst, e.TraceParent, e.TraceState)
}

// AppendTraceContext appends the trace context fields ([Ext.TraceParent],
// [Ext.TraceState]) to dst, an ext header in this package's layout being
// built, and returns it; it appends nothing when parent is empty, and no
// state without a parent. Fields may come in any order, so it serves to add
// a trace context to an ext header already encoded.
func AppendTraceContext(dst []byte, parent, state string) []byte {
	if parent == "" {
		return dst
	}
	dst = appendText(dst, tagTraceParent, parent)
	if state != "" {
		dst = appendText(dst, tagTraceState, state)
	}
	return dst
}

// appendText appends a field whose value is the bytes of s.
func appendText(dst []byte, tag byte, s string) []byte {
	dst = append(dst, tag)
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// ParseExt decodes a typed-layer ext header. Unknown fields are skipped
// unless critical. A malformed header fails with an error wrapping
// [ErrProtocol]. A well-formed header holding a critical field this
// package does not know, or a stream field with an op it does not know,
// fails with a [*CriticalFieldError] (which wraps ErrProtocol too): the
// packet is not understood, though the bytes are sound, and a receiver
// refuses that packet alone.
func ParseExt(b []byte) (Ext, error) {
	var e Ext
	if len(b) == 0 || b[0] != ExtVersion {
		return e, fmt.Errorf("%w: ext header is not layout version %d", ErrProtocol, ExtVersion)
	}
	b = b[1:]
	// The first field not understood; parsing goes on, so that a header
	// malformed further on is reported as malformed.
	var notUnderstood *CriticalFieldError
	for len(b) > 0 {
		tag := b[0]
		n, k := binary.Uvarint(b[1:])
		if k <= 0 || n > uint64(len(b)-1-k) {
			return e, fmt.Errorf("%w: ext field %#x: bad length", ErrProtocol, tag)
		}
		v := b[1+k : 1+k+int(n)]
		b = b[1+k+int(n):]
		var err error
		switch tag {
		case tagRoute:
			if len(v) != 4 {
				return e, fmt.Errorf("%w: ext route of %d bytes", ErrProtocol, len(v))
			}
			e.HasRoute, e.Route = true, binary.BigEndian.Uint32(v)
		case tagControl:
			if len(v) != 1 {
				return e, fmt.Errorf("%w: ext control of %d bytes", ErrProtocol, len(v))
			}
			e.Control = ControlKind(v[0])
		case tagCode:
			var c uint64
			c, err = fieldUvarint(v)
			e.Code = Code(c)
		case tagMessage:
			e.Message = string(v)
		case tagTimeoutMS:
			e.TimeoutMS, err = fieldUvarint(v)
		case tagAuth:
			e.Auth = v
		case tagRetryMS:
			e.RetryAfterMS, err = fieldUvarint(v)
		case tagStream:
			if len(v) != 6 {
				return e, fmt.Errorf("%w: ext stream field of %d bytes", ErrProtocol, len(v))
			}
			if v[0] < byte(StreamMessage) || v[0] > byte(StreamCancel) {
				if notUnderstood == nil {
					notUnderstood = &CriticalFieldError{Tag: tag, Op: StreamOp(v[0])}
				}
				continue
			}
			e.HasStream = true
			e.Stream = StreamFrame{Op: StreamOp(v[0]), FromAcceptor: v[1]&1 != 0, ID: binary.BigEndian.Uint32(v[2:])}
		case tagCredit:
			var c uint64
			c, err = fieldUvarint(v)
			e.Credit = uint32(c)
		case tagTraceParent:
			e.TraceParent = string(v)
		case tagTraceState:
			e.TraceState = string(v)
		default:
			if tag&extCritical != 0 && notUnderstood == nil {
				notUnderstood = &CriticalFieldError{Tag: tag}
			}
		}
		if err != nil {
			return e, fmt.Errorf("%w: ext field %#x: %v", ErrProtocol, tag, err)
		}
	}
	if e.TraceParent == "" {
		e.TraceState = ""
	}
	if notUnderstood != nil {
		return e, notUnderstood
	}
	return e, nil
}

func fieldUvarint(v []byte) (uint64, error) {
	x, k := binary.Uvarint(v)
	if k <= 0 || k != len(v) || x > 0xFFFFFFFF {
		return 0, fmt.Errorf("bad varint")
	}
	return x, nil
}

func uvarintLen(x uint64) int {
	n := 1
	for x >= 0x80 {
		x >>= 7
		n++
	}
	return n
}
