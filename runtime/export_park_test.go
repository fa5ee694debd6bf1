package runtime

// ParkedSessions returns how many of the server's sessions are parked:
// held by no goroutine, waited on by the poller (for tests).
func ParkedSessions(s *Server) int {
	n := 0
	s.sessions.ForEach(func(_ uint64, sess *Session) bool {
		if sess.parking.state.Load() == readParked {
			n++
		}
		return true
	})
	return n
}
