package runtime

import (
	"fmt"
	"sync"
)

// groups holds a server's named groups (rooms). A group exists while it has
// members.
type groups struct {
	mu sync.RWMutex
	m  map[string]*group
	// changed is told, under mu, when a group gains its first member or
	// loses its last (the cluster subscribes to the group then).
	changed func(name string, has bool)
}

type group struct {
	mu      sync.RWMutex
	members map[uint64]*Session
}

// Join adds the session to the named group. Joining twice is harmless. A
// closed session cannot join, nor one already in as many groups as
// [WithMaxGroupsPerSession] allows (CodeResourceExhausted).
func (s *Server) Join(group string, sess *Session) error {
	return s.groups.join(group, sess)
}

// Leave removes the session from the named group. It reports whether the
// session was a member.
func (s *Server) Leave(group string, sess *Session) bool {
	sess.mu.Lock()
	_, ok := sess.groups[group]
	delete(sess.groups, group)
	sess.mu.Unlock()
	if ok {
		s.groups.remove(group, sess)
	}
	return ok
}

// Members returns the sessions in the named group, in no particular order.
func (s *Server) Members(group string) []*Session {
	s.groups.mu.RLock()
	g := s.groups.m[group]
	s.groups.mu.RUnlock()
	if g == nil {
		return nil
	}
	g.mu.RLock()
	defer g.mu.RUnlock()
	out := make([]*Session, 0, len(g.members))
	for _, m := range g.members {
		out = append(out, m)
	}
	return out
}

// GroupNames returns the names of the groups that have members.
func (s *Server) GroupNames() []string {
	s.groups.mu.RLock()
	defer s.groups.mu.RUnlock()
	out := make([]string, 0, len(s.groups.m))
	for name := range s.groups.m {
		out = append(out, name)
	}
	return out
}

func (gs *groups) join(name string, sess *Session) error {
	// Holding sess.mu while adding the member orders this join against the
	// session's close: either the close sees the group in sess.groups and
	// removes the member, or the join sees the session closed.
	sess.mu.Lock()
	defer sess.mu.Unlock()
	if sess.closed {
		return fmt.Errorf("%w: session %d cannot join %q", ErrClosed, sess.id, name)
	}
	if _, ok := sess.groups[name]; ok {
		return nil
	}
	if len(sess.groups) >= sess.cfg.maxGroups {
		return Errorf(CodeResourceExhausted, "session %d is in %d groups, the most allowed", sess.id, sess.cfg.maxGroups)
	}
	if sess.groups == nil {
		sess.groups = make(map[string]struct{})
	}
	sess.groups[name] = struct{}{}
	gs.mu.Lock()
	if gs.m == nil {
		gs.m = make(map[string]*group)
	}
	g := gs.m[name]
	if g == nil {
		g = &group{members: make(map[uint64]*Session)}
		gs.m[name] = g
		if gs.changed != nil {
			gs.changed(name, true)
		}
	}
	g.mu.Lock()
	g.members[sess.id] = sess
	g.mu.Unlock()
	gs.mu.Unlock()
	return nil
}

func (gs *groups) remove(name string, sess *Session) {
	gs.mu.Lock()
	defer gs.mu.Unlock()
	g := gs.m[name]
	if g == nil {
		return
	}
	g.mu.Lock()
	delete(g.members, sess.id)
	empty := len(g.members) == 0
	g.mu.Unlock()
	if empty {
		delete(gs.m, name)
		if gs.changed != nil {
			gs.changed(name, false)
		}
	}
}

// leaveAll removes a closed session from every group it belonged to.
func (gs *groups) leaveAll(sess *Session) {
	sess.mu.Lock()
	names := sess.groups
	sess.groups = nil
	sess.mu.Unlock()
	for name := range names {
		gs.remove(name, sess)
	}
}
