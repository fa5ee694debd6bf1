package runtime

import "sync"

// users indexes a server's sessions by the identity their authenticator
// bound, for pushes to a user ([ToUser]).
type users struct {
	mu sync.RWMutex
	m  map[string]map[uint64]*Session
	// changed is told when an identity gains its first session or loses
	// its last (the cluster subscribes to the user then).
	changed func(identity string, has bool)
}

func (u *users) add(sess *Session) {
	id := sess.identity
	if id == "" {
		return
	}
	u.mu.Lock()
	if u.m == nil {
		u.m = make(map[string]map[uint64]*Session)
	}
	set := u.m[id]
	first := set == nil
	if first {
		set = make(map[uint64]*Session, 1)
		u.m[id] = set
	}
	set[sess.id] = sess
	u.mu.Unlock()
	if first && u.changed != nil {
		u.changed(id, true)
	}
}

func (u *users) remove(sess *Session) {
	id := sess.identity
	if id == "" {
		return
	}
	u.mu.Lock()
	set := u.m[id]
	delete(set, sess.id)
	last := set != nil && len(set) == 0
	if last {
		delete(u.m, id)
	}
	u.mu.Unlock()
	if last && u.changed != nil {
		u.changed(id, false)
	}
}

// sessions returns the identity's sessions.
func (u *users) sessions(identity string) []*Session {
	u.mu.RLock()
	defer u.mu.RUnlock()
	set := u.m[identity]
	out := make([]*Session, 0, len(set))
	for _, s := range set {
		out = append(out, s)
	}
	return out
}
