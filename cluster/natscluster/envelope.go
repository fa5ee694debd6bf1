package natscluster

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/msgtrans/msgtrans-go/runtime"
)

// The envelope: what one NATS message between nodes carries, ahead of the
// packet (already encoded once by the origin). Integers are big-endian.
//
//	byte 0     version (1)
//	byte 1     op
//	bytes 2-3  origin node
//	then, by op:
//	  deliver:   kind (1 byte), session (8), name length (2), name, packet
//	  call:      session (8), timeout in ms (4), packet
//	  reply:     status code (4); on success the packet, else the message
//	  heartbeat: instance (8)
//	  leave:     instance (8)
//	  probe:     nothing (answered with a heartbeat)
//	  members:   name length (2), name (answered with a members reply)
//	  membersOf: count (4), that many session ids (8 each)
const envelopeVersion = 1

// The ops.
const (
	opDeliver byte = iota + 1
	opCall
	opReply
	opHeartbeat
	opLeave
	opProbe
	opMembers
	opMembersOf
)

// The target kinds, as the envelope numbers them.
var kinds = [...]string{"", "session", "group", "group_except", "all", "user"}

func kindByte(kind string) byte {
	for i, k := range kinds {
		if k == kind && i > 0 {
			return byte(i)
		}
	}
	return 0
}

// envelopeOverhead is the most an envelope adds to a packet, beside the
// target's name.
const envelopeOverhead = 4 + 1 + 8 + 2

var errEnvelope = errors.New("natscluster: malformed envelope")

// header starts an envelope.
func header(dst []byte, op byte, origin uint16) []byte {
	return binary.BigEndian.AppendUint16(append(dst, envelopeVersion, op), origin)
}

// parseHeader reads an envelope's header.
func parseHeader(b []byte) (op byte, origin uint16, rest []byte, err error) {
	if len(b) < 4 || b[0] != envelopeVersion {
		return 0, 0, nil, fmt.Errorf("%w: header", errEnvelope)
	}
	return b[1], binary.BigEndian.Uint16(b[2:4]), b[4:], nil
}

// appendDeliver appends a deliver envelope for the target and packet.
func appendDeliver(dst []byte, origin uint16, to runtime.Target, packet []byte) []byte {
	dst = header(dst, opDeliver, origin)
	dst = append(dst, kindByte(to.Kind()))
	dst = binary.BigEndian.AppendUint64(dst, to.Session())
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(to.Name())))
	dst = append(dst, to.Name()...)
	return append(dst, packet...)
}

// parseDeliver reads a deliver envelope's body.
func parseDeliver(b []byte) (runtime.Target, []byte, error) {
	if len(b) < 11 {
		return runtime.Target{}, nil, fmt.Errorf("%w: deliver", errEnvelope)
	}
	kind, session := b[0], binary.BigEndian.Uint64(b[1:9])
	n := int(binary.BigEndian.Uint16(b[9:11]))
	if len(b) < 11+n || int(kind) >= len(kinds) {
		return runtime.Target{}, nil, fmt.Errorf("%w: deliver", errEnvelope)
	}
	to, ok := runtime.TargetOf(kinds[kind], session, string(b[11:11+n]))
	if !ok {
		return runtime.Target{}, nil, fmt.Errorf("%w: target kind %d", errEnvelope, kind)
	}
	return to, b[11+n:], nil
}

// appendReply appends a call's reply: the response packet, or err's status.
func appendReply(dst []byte, origin uint16, packet []byte, err error) []byte {
	dst = header(dst, opReply, origin)
	if err != nil {
		var e *runtime.Error
		msg := err.Error()
		if errors.As(err, &e) {
			msg = e.Message
		}
		dst = binary.BigEndian.AppendUint32(dst, uint32(runtime.CodeOf(err)))
		return append(dst, msg...)
	}
	dst = binary.BigEndian.AppendUint32(dst, uint32(runtime.CodeOK))
	return append(dst, packet...)
}

// parseReply reads a reply's body: the packet, or the error it carries.
func parseReply(b []byte) ([]byte, error) {
	if len(b) < 4 {
		return nil, fmt.Errorf("%w: reply", errEnvelope)
	}
	if code := runtime.Code(binary.BigEndian.Uint32(b)); code != runtime.CodeOK {
		return nil, runtime.NewError(code, string(b[4:]))
	}
	return b[4:], nil
}

// appendIDs appends a members reply.
func appendIDs(dst []byte, origin uint16, ids []uint64) []byte {
	dst = header(dst, opMembersOf, origin)
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(ids)))
	for _, id := range ids {
		dst = binary.BigEndian.AppendUint64(dst, id)
	}
	return dst
}

// parseIDs reads a members reply's body.
func parseIDs(b []byte) ([]uint64, error) {
	if len(b) < 4 {
		return nil, fmt.Errorf("%w: members", errEnvelope)
	}
	n := int(binary.BigEndian.Uint32(b))
	if len(b) != 4+8*n {
		return nil, fmt.Errorf("%w: members", errEnvelope)
	}
	ids := make([]uint64, n)
	for i := range ids {
		ids[i] = binary.BigEndian.Uint64(b[4+8*i:])
	}
	return ids, nil
}

// appendName appends a name field: length (2) and bytes.
func appendName(dst []byte, name string) []byte {
	return append(binary.BigEndian.AppendUint16(dst, uint16(len(name))), name...)
}

// parseName reads a name field.
func parseName(b []byte) (string, error) {
	if len(b) < 2 || len(b) != 2+int(binary.BigEndian.Uint16(b)) {
		return "", fmt.Errorf("%w: name", errEnvelope)
	}
	return string(b[2:]), nil
}
