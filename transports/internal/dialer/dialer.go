// Package dialer makes the TCP dialers of the TCP and WebSocket transports.
package dialer

import "net"

// TCP returns a dialer that connects from local when it is set. On Linux
// the local port is then chosen at connect time, for the whole address
// pair, instead of at bind time: a bind with port 0 takes a port no other
// socket of local holds and scans ever longer for one as they fill, so a
// client process holding tens of thousands of connections from one
// address would connect ever more slowly and run out at about 28,000
// (the default ephemeral range) rather than per server address.
func TCP(local net.IP) *net.Dialer {
	d := &net.Dialer{}
	if local != nil {
		d.LocalAddr = &net.TCPAddr{IP: local}
		d.Control = bindNoPort
	}
	return d
}
