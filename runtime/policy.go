package runtime

// policy is what a session does differently on either side of a
// connection. It is chosen once, when the session is created (see
// serverPolicy and clientPolicy), so session code asks what to do rather
// than which side it is on.
type policy struct {
	// answerHello: the peer's hello is answered with this side's own.
	answerHello bool
	// limitPeer: the peer is held to the rate limit, the ping-flood rule,
	// the decompression budget's pre-authentication cap and, until its
	// session is ready, the pre-authentication limits.
	limitPeer bool
	// followGoAway: a go-away from the peer means its server is leaving
	// (or, with a status, refuses the connection).
	followGoAway bool
	// authenticate, when set, must accept the peer's hello before anything
	// else of the connection is served.
	authenticate Authenticator
	// ready is called once the session may be served: at once, or when
	// authenticate has accepted the hello.
	ready func(*Session)
}

// clientPolicy is the policy of a client's sessions: it serves what its
// server sends and follows its go-aways.
var clientPolicy = &policy{followGoAway: true, ready: func(*Session) {}}

// serverPolicy returns the policy of a server's sessions: they answer
// hellos, hold their peers to the limits, authenticate when the server
// does, and report themselves to ready when they may be served.
func serverPolicy(cfg *config, ready func(*Session)) *policy {
	return &policy{answerHello: true, limitPeer: true, authenticate: cfg.authenticator, ready: ready}
}
