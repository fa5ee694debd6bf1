package runtime

// Ready reports whether the server is serving: it listens on at least one
// address, every listener it bound still accepts connections, and no
// shutdown has begun ([Server.Shutdown], [Server.Close], or the one a lost
// cluster starts). A readiness probe answers with it: a server that is
// draining is not ready, so that a load balancer sends new clients
// elsewhere while the sessions it holds finish.
func (s *Server) Ready() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return !s.shutdown && len(s.listeners) > 0 && s.listenersDown.Load() == 0
}
