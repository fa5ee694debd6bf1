package runtime

import (
	"errors"
	"fmt"
	"time"

	"github.com/msgtrans/msgtrans-go/wire"
)

// control handles the runtime's own control packets. A reply that cannot
// be queued (the session is closing or overflowed, which closes it anyway)
// is not an error of the packet, so it never ends the read loop.
func (s *Session) control(p *wire.Packet, kind wire.ControlKind) error {
	switch kind {
	case wire.ControlHello:
		if s.hello.Swap(true) {
			return fmt.Errorf("%w: a second hello", wire.ErrProtocol)
		}
		if len(p.Payload) > 0 {
			s.peerComp.Store(uint32(p.Payload[0]))
		}
		if s.policy.answerHello {
			_ = s.sendAs(helloPacket(s.cfg), wire.OneWay, s.nextID())
		}
	case wire.ControlPing:
		if s.policy.limitPeer && s.pings.Add(1) > pingFloodLimit {
			return ErrPingFlood
		}
		_ = s.sendAs(controlPacket(wire.ControlPong, p.Payload), wire.OneWay, s.nextID())
	case wire.ControlPong:
	case wire.ControlGoAway:
		// The server stops taking requests, answers those it has, and
		// closes: the client sends nothing new here and reconnects later.
		// A go-away with a status refuses the connection outright; the
		// status becomes the close reason.
		if s.policy.followGoAway {
			s.goaway.Store(true)
			if e, err := wire.ParseExt(p.Ext); err == nil && e.Code != CodeOK {
				s.closeWith(refusal(e))
			}
		}
	default:
		s.cfg.logger.Debug("msgtrans: unknown control packet", "session", s.id, "kind", kind)
	}
	return nil
}

// helloPacket announces the compressions this side accepts: all of them.
func helloPacket(cfg *config) *wire.Packet {
	p := controlPacket(wire.ControlHello, []byte{1<<wire.CompressionZstd | 1<<wire.CompressionZlib})
	if cfg.credentials != nil {
		p.Ext = wire.AppendExt(nil, &wire.Ext{HasRoute: true, Route: wire.ControlRoute, Control: wire.ControlHello, Auth: cfg.credentials})
	}
	return p
}

// controlPacket returns a control packet of the given kind.
func controlPacket(kind wire.ControlKind, payload []byte) *wire.Packet {
	return &wire.Packet{
		Type:    wire.OneWay,
		Flags:   wire.FlagHasRouteTag,
		Ext:     wire.AppendExt(nil, &wire.Ext{HasRoute: true, Route: wire.ControlRoute, Control: kind}),
		Payload: payload,
	}
}

// errorExt returns the ext header of an error response carrying err.
func errorExt(err error) []byte {
	e := &wire.Ext{Code: CodeOf(err), Message: err.Error()}
	var te *Error
	if errors.As(err, &te) {
		e.Message = te.Message
	}
	if e.Code == CodeOK {
		e.Code = CodeUnknown
	}
	return wire.AppendExt(nil, e)
}

// RefusalRetryAfter is how long a server asks a client it refused for
// want of room (the connection caps) to wait at least before trying again;
// a msgtrans-go client waits that long plus up to half as much again, or
// its backoff delay when that is longer.
const RefusalRetryAfter = 2 * time.Second

// refusalPacket is a go-away carrying why a connection is refused and, when
// retryAfter is not 0, how long the client should wait before trying again.
func refusalPacket(why error, retryAfter time.Duration) *wire.Packet {
	e := wire.Ext{HasRoute: true, Route: wire.ControlRoute, Control: wire.ControlGoAway, Code: CodeOf(why), Message: why.Error(), RetryAfterMS: uint64(retryAfter.Milliseconds())}
	var te *Error
	if errors.As(why, &te) {
		e.Message = te.Message
	}
	p := controlPacket(wire.ControlGoAway, nil)
	p.Ext = wire.AppendExt(nil, &e)
	return p
}
