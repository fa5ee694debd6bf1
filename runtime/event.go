package runtime

import (
	"fmt"
	"time"

	"github.com/msgtrans/msgtrans-go/wire"
)

// EventKind says what an [Event] reports.
type EventKind uint8

// The event kinds. Servers report the first three for each session; clients
// report all of them for their connection.
const (
	// ConnectionEstablished: a connection is ready to carry packets.
	ConnectionEstablished EventKind = iota + 1
	// MessageReceived: a one-way packet arrived that no handler claimed.
	// (An unclaimed request is answered with CodeUnimplemented.)
	MessageReceived
	// ConnectionClosed: a connection ended; Event.Err says why.
	ConnectionClosed
	// Reconnecting: a client lost its connection and will try again after
	// Event.Delay (Event.Attempt counts from 1).
	Reconnecting
	// Reconnected: a client is connected again.
	Reconnected
)

var eventNames = [...]string{"", "connection_established", "message_received", "connection_closed", "reconnecting", "reconnected"}

// String returns the snake_case name of the kind.
func (k EventKind) String() string {
	if int(k) < len(eventNames) && k != 0 {
		return eventNames[k]
	}
	return fmt.Sprintf("event(%d)", uint8(k))
}

// Event reports a change in a connection's life or an unclaimed packet. See
// [WithEventHandler].
type Event struct {
	Kind    EventKind
	Session *Session
	// Packet is the packet of a MessageReceived event.
	Packet *wire.Packet
	// Err is the close reason of ConnectionClosed (nil when closed locally
	// without a reason), and the dial error of Reconnecting.
	Err error
	// Attempt and Delay describe a Reconnecting event.
	Attempt int
	Delay   time.Duration
}
