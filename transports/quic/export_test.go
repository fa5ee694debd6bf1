package quic

// ResetKey exposes resetKey to the tests.
var ResetKey = resetKey
