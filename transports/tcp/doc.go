// Package tcp is the msgtrans transport over TCP ("tcp://host:port") and
// TCP with TLS ("tls://host:port"). Packets are framed by the lengths in
// their fixed headers, exactly as on the wire; reads go through the
// runtime's pooled [runtime.Decoder] and a batch of writes is gathered into
// one system call. TLS handshakes run off the accepting goroutine, bounded
// by the handshake timeout. Importing the package registers both schemes.
package tcp
