package quic

import "github.com/msgtrans/msgtrans-go/runtime"

// ResetKey exposes resetKey to the tests.
var ResetKey = resetKey

// HandshakesInProgress reports the connections a listener counts as in their
// handshake: admitted, their msgtrans stream not yet arrived.
func HandshakesInProgress(l runtime.Listener) int64 { return l.(*listener).handshaking.Load() }
