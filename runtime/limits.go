package runtime

import (
	"encoding/binary"
	"fmt"

	"github.com/msgtrans/msgtrans-go/wire"
)

// checkSend returns an error wrapping [ErrPayloadTooLarge] (with
// CodeInvalidArgument) when a packet with an ext header of ext bytes and a
// payload of payload bytes (before compression) is over the limits, which
// hold for what this side sends as for what it accepts.
func checkSend(l wire.Limits, ext, payload int) error {
	switch {
	case payload > l.MaxPayload:
		return &Error{Code: CodeInvalidArgument, Message: fmt.Sprintf("payload of %d bytes is over the limit of %d", payload, l.MaxPayload), cause: ErrPayloadTooLarge}
	case ext > l.MaxExtHeader:
		return &Error{Code: CodeInvalidArgument, Message: fmt.Sprintf("ext header of %d bytes is over the limit of %d", ext, l.MaxExtHeader), cause: ErrPayloadTooLarge}
	}
	return nil
}

// checkEncoded is checkSend for an encoded packet.
func checkEncoded(l wire.Limits, b []byte) error {
	if len(b) < wire.HeaderSize {
		return fmt.Errorf("%w: encoded packet of %d bytes, shorter than a header", wire.ErrTruncated, len(b))
	}
	ext := int(binary.BigEndian.Uint16(b[8:10]))
	payload := int(binary.BigEndian.Uint32(b[10:14]))
	if wire.HeaderSize+ext+payload != len(b) {
		return fmt.Errorf("%w: encoded packet of %d bytes declares %d", wire.ErrProtocol, len(b), wire.HeaderSize+ext+payload)
	}
	return checkSend(l, ext, payload)
}
