// Package quic is the QUIC transport of msgtrans, built on
// github.com/quic-go/quic-go. Importing it registers the URL scheme
// "quic://host:port" with [runtime.RegisterTransport]; nothing else in a
// program changes when a deployment moves from TCP or WebSocket to QUIC.
//
// # Connection set-up
//
// QUIC is always encrypted: a listener needs a certificate in
// [runtime.TransportConfig.TLS], and both sides negotiate the ALPN protocol
// [ALPN] ("msgtrans"). Every connection carries exactly one bidirectional
// stream, opened by the dialer right after the QUIC handshake. QUIC tells the
// listener about a stream only when data arrives on it, so the listener hands
// out a connection (from Accept) once the dialer's first packet has arrived;
// msgtrans clients always speak first. A dialer that completes the QUIC
// handshake but sends nothing within [runtime.TransportConfig.HandshakeTimeout]
// is closed with application error code 0x1. Streams beyond the first are not
// part of the protocol: a listener allows a peer one bidirectional stream and no
// unidirectional ones, and never accepts a second.
//
// # Framing
//
// On the stream each packet is preceded by its length:
//
//	+----------------+--------------------+-----------+---------+
//	| length (u32 BE)| fixed header (16)  | ext header| payload |
//	+----------------+--------------------+-----------+---------+
//	                 |<------------------ length ------------->|
//
// The length counts the whole encoded packet (16 + ext_header_len +
// payload_len) and must equal that sum as declared in the packet's own fixed
// header; it is at most [MaxFrame] (16 MiB) and at most what the receiver's
// [runtime.Limits] admit. A receiver checks the length and the fixed header
// before it allocates anything of the declared size, so a peer cannot make it
// allocate more than the limits allow. Violations are reported as errors
// wrapping [runtime.ErrProtocol] or [runtime.ErrTooLarge]; a stream that ends
// inside a packet, or that the peer resets (which discards unread data), gives
// [runtime.ErrTruncated]; a stream that ends between packets, or a connection
// the peer closes between packets, gives io.EOF.
//
// Writes gather a batch of packets and their length prefixes into a few
// stream writes ([runtime.GatherWrite]). Reads hold no buffer while a
// connection is idle: a read-ahead buffer is taken from a pool while packets
// are arriving and returned once everything read has been consumed.
//
// # Closing
//
// Closing a QUIC connection (CONNECTION_CLOSE) discards data in flight in
// both directions, including data the peer has received but not yet read. So
// that packets written just before [runtime.Conn.Close] still arrive, Close
// ends the stream (FIN) and lets the connection linger until the peer, having
// read everything up to the FIN, closes its side; after one second without
// that the connection is closed anyway. Close is immediate when the peer has
// already ended its side, when a write is in progress or has failed, and
// when the connection is already gone. A connection closes with application
// error code 0; a peer reading between packets sees any application close as
// io.EOF (for a non-zero code, an error wrapping io.EOF that names the code).
//
// A listener owns one UDP socket for all its connections. Closing the
// listener stops accepting, aborts connections still waiting for their stream
// (code 0x2) and waits for the goroutines it started; connections already
// returned by Accept stay open, and the UDP socket is closed when the last of
// them closes. A dialed connection uses a UDP socket of its own, closed with
// the connection.
//
// Connections send keep-alives every 15 s and close after 60 s without any
// traffic from the peer, so idle connections behind NATs stay up and dead
// peers are noticed.
//
// A server that crashes tells its clients nothing, and unlike TCP no kernel
// does it for them. A listener therefore sends stateless resets (RFC 9000,
// section 10.3) for connections it does not know, with a key derived from
// its certificate's private key: started again with the same certificate,
// it resets its previous life's connections as soon as their clients next
// send (a heartbeat at the latest), and they reconnect at once.
package quic
