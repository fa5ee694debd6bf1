package quic

// ResetKey exposes resetKey to the tests.
var ResetKey = resetKey

// HandshakesInProgress reports the connections a listener counts as in their
// handshake: admitted, their msgtrans stream not yet arrived.
func HandshakesInProgress(l any) int64 { return l.(*listener).handshaking.Load() }
