// Package wire is the msgtrans wire format v1, byte for byte, and nothing
// else: the 16-byte fixed header and [Packet], their append-style encoder
// and checked parsers ([AppendPacket], [ParseHeader], [ParsePacket]), the
// streaming [Decoder] for byte streams (TCP, QUIC), the [Limits] every
// decoder checks before it allocates, the typed layer's ext header ([Ext],
// [AppendExt], [ParseExt]), the status [Code]s responses carry, and the
// route ids of typed methods ([RouteID]).
//
// It imports only the standard library, so code generators, tools and
// other implementations' tests can use it without the runtime. Payload
// compression lives beside it in package compress; sessions, servers and
// clients in package runtime. docs/wire.md describes the format; the
// conformance vectors in testdata/wire-v1 are the judge.
package wire
