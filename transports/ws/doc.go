// Package ws is the WebSocket transport of msgtrans, built on
// github.com/gorilla/websocket. Importing it registers the URL schemes
// "ws" (WebSocket over TCP) and "wss" (WebSocket over TLS) with
// [runtime.RegisterTransport]:
//
//	ws://host:port/path
//	wss://host:port/path
//
// # Framing
//
// Each msgtrans packet travels as exactly one binary WebSocket message: the
// 16-byte fixed header, the ext header and the payload, nothing before or
// after. The message boundary must agree with the lengths in the header. A
// text message, a message shorter than its header declares, a message longer
// than its packet, or a header that fails [runtime.ParseHeader] makes
// ReadPacket return an error wrapping [runtime.ErrProtocol],
// [runtime.ErrTruncated] or [runtime.ErrTooLarge]; the caller then closes the
// connection. The header is checked against the configured
// [runtime.Limits] before the body is allocated, and a message is read no
// further than the largest packet those limits admit (a longer one is
// ErrTooLarge), so a peer can never make this side buffer more than that. A packet's read time, counted from
// its first byte, is bounded by [runtime.Limits.PacketReadTimeout]; waiting
// between packets is not.
//
// A close frame with status 1000 (normal), 1001 (going away) or 1005 (no
// status) between packets is a clean close: ReadPacket returns io.EOF; any
// other status is an error that holds the code and reason. CloseWrite sends
// this side's close frame and keeps reading until the peer's close frame
// answers: the runtime's graceful close lingers so, as it does on TCP after
// a half-close, rather than reset a connection whose peer has not read
// everything yet.
//
// # Close codes
//
// The connection implements [runtime.CloseReasoner]: its close frame says
// why the session closed, with a reason of at most 123 bytes of UTF-8 that
// a browser hands its page (CloseEvent.code and .reason):
//
//	1000 normal closure     the session or client closed; no reason
//	1001 going away         server shutdown ("server shutting down"), a refusal with status unavailable
//	1002 protocol error     input that is not a valid packet ("protocol error: …", "truncated packet: …")
//	1003 unsupported data   a text message
//	1008 policy violation   refusals (a disallowed origin, failed authentication, resource exhausted, …),
//	                        rate limit, ping flood, no hello in time, heartbeat timeout, slow consumer;
//	                        the reason begins with the status code name for a refusal ("permission_denied: …")
//	1009 message too big    a message or packet over the limits
//	1011 internal error     a status internal, unknown or data loss, or an error of no known kind
//	                        (the reason is only "internal error")
//
// Close returns at once and finishes in the background (see Released): it
// sends the close frame (best effort, within a fraction of a second), then,
// when nothing is reading, drains the connection, discarding what arrives
// until the peer answers with its close frame or closes, for at most a
// second. Closing a socket with input unread resets it, and the reset can
// destroy the close frame before the peer reads it: a browser would report
// an abnormal close (1006) instead of the code.
//
// # Subprotocol
//
// A listener selects the subprotocol "msgtrans.v1" or "msgtrans" (both
// name wire format v1), whichever the client lists first; browsers fail a
// connection that offered subprotocols and got none selected. A client
// that offers none is served without one; a client that offers only others
// is answered 400 Bad Request naming the ones spoken (RFC 6455 lets a
// server select none, but such a client would then fail or speak another
// protocol). The dialer offers "msgtrans.v1, msgtrans" and accepts a server
// that selects none (older msgtrans-go servers). permessage-deflate is
// never negotiated: msgtrans compresses payloads itself.
//
// # Buffering
//
// gorilla/websocket writes every frame straight to its net.Conn, which would
// cost one system call per message. This package hands gorilla a net.Conn
// of its own (on the server, what Hijack returns; on the client, what the
// dialer's dial function returns) that, while a WritePackets call is in
// progress, gathers the frames in a pooled 64 KiB buffer and flushes it once
// at the end: a batch of small packets becomes many binary messages sharing
// one system call. Outside a batch, writes (pongs, close frames) go straight
// through. With TLS the buffering sits above the TLS connection, so a batch
// is also encrypted into as few TLS records as it fits.
//
// Idle connections hold little memory: the batch buffer and gorilla's frame
// buffer are pooled and taken only while writing, gorilla's read buffer is
// 288 bytes on a server and 512 on a client (while data streams in, reads
// go through a pooled 16 KiB read-ahead instead, so a burst costs few
// system calls), and the HTTP handler that performs the upgrade returns as
// soon as the connection is handed to Accept, so no goroutine stays behind
// per connection. On Linux an idle server connection over ws:// has no
// reader goroutine either ([runtime.IdleParker], [runtime.WithIdleParking]):
// gorilla reads through a buffer the listener made, so the connection
// knows when nothing is buffered above the socket, and then waits for the
// next message itself rather than inside gorilla. A WebSocket ping or pong
// frame between messages is read by gorilla, which waits for the next frame
// without parking: such a connection parks again after its next message.
//
// # Listener
//
// A listener runs an [net/http.Server] on the URL's host that serves the
// URL's path (default "/"); other paths get 404 and plain HTTP requests to
// the path get 426 Upgrade Required. HTTP/2 is not offered on wss. The
// request headers, TLS handshake and upgrade response are bounded by
// [runtime.TransportConfig.HandshakeTimeout].
//
// A dial that the server answers with an HTTP status instead of an upgrade
// fails with an error holding a [*StatusError]; on 404 it says that nothing
// serves WebSocket at the dialled path, the usual cause being a wrong or
// missing path in the URL.
//
// Origins: with [runtime.TransportConfig.AllowedOrigins] set (the server
// option runtime.WithAllowedOrigins), an upgrade whose Origin header is not
// listed (compared without regard to case) is completed and closed at once
// with 1008 and the reason `permission_denied: origin "…" not allowed`,
// nothing it sends being read: a refused upgrade would show the page only a
// failed connection. Requests without an Origin header (clients other than
// browsers) are accepted. Without it every origin is accepted: msgtrans
// authenticates in band rather than with cookies, so a cross-site page
// gains nothing a direct client could not do (docs/security.md says when
// to list origins).
package ws
