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
// [runtime.Limits] before the body is allocated, and the connection's read
// limit is set to the largest packet those limits admit, so a peer can never
// make this side buffer more than that. A packet's read time, counted from
// its first byte, is bounded by [runtime.Limits.PacketReadTimeout]; waiting
// between packets is not.
//
// A close frame with status 1000 (normal), 1001 (going away) or 1005 (no
// status) between packets is a clean close: ReadPacket returns io.EOF. Close
// sends such a frame (best effort, never waiting long) before closing the
// socket. CloseWrite sends it and keeps reading until the peer's close frame
// answers: the runtime's graceful close lingers so, as it does on TCP after
// a half-close, rather than reset a connection whose peer has not read
// everything yet.
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
// 512 bytes (while data streams in, reads go through a pooled 16 KiB
// read-ahead instead, so a burst costs few system calls), and the HTTP handler that performs the upgrade returns as soon as the
// connection is handed to Accept, so no goroutine stays behind per
// connection.
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
// listed is refused with 403; requests without an Origin header (clients
// other than browsers) are accepted. Without it every origin is accepted:
// msgtrans authenticates in band rather than with cookies, so a cross-site
// page gains nothing a direct client could not do.
package ws
