package runtime

import (
	"errors"

	"github.com/msgtrans/msgtrans-go/wire"
)

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
