package chatserver

import (
	"context"
	"slices"
	"strings"
	"sync"

	chatv1 "github.com/msgtrans/msgtrans-go/examples/chat/gen/chat/v1"
	"github.com/msgtrans/msgtrans-go/runtime"
)

// room is a chat room: the runtime group of the same name holds its
// members, and the room itself its history.
//
// mu orders everything pushed to the room: a message is numbered, added to
// the history and queued to the members under it, and so are announcements
// and membership changes. Every member therefore receives the room's events
// in one order, the order of the history.
type room struct {
	name string

	mu      sync.Mutex
	seq     uint64 // number of the last message posted
	history history
}

// Session attributes: the nick (a string) and the room (a *room, nil when
// in none). They change only under Server.mu, and the room attribute also
// under the room's mu, so either lock gives a stable view.
type attrKey int

const (
	nickAttr attrKey = iota
	roomAttr
)

// setNick sets the session's nick to a copy of nick, which may be part of
// a request: the session keeps it, and so do the messages it posts.
func setNick(s *runtime.Session, nick string) { s.Set(nickAttr, strings.Clone(nick)) }

func nickOf(s *runtime.Session) string {
	v, _ := s.Get(nickAttr)
	nick, _ := v.(string)
	return nick
}

func roomOf(s *runtime.Session) *room {
	v, _ := s.Get(roomAttr)
	r, _ := v.(*room)
	return r
}

// nicksLocked returns the sorted nicks of r's members. r.mu is held.
func (s *Server) nicksLocked(r *room) []string {
	members := s.rt.Members(r.name)
	nicks := make([]string, 0, len(members))
	for _, m := range members {
		nicks = append(nicks, nickOf(m))
	}
	slices.Sort(nicks)
	return nicks
}

// roomLocked returns the room with the name, creating it. A new room keeps
// a copy of name, which may be part of a request. s.mu is held.
func (s *Server) roomLocked(name string) *room {
	r := s.rooms[name]
	if r == nil {
		name = strings.Clone(name)
		r = &room{name: name, history: newHistory(s.cfg.HistorySize, &s.historyBudget)}
		s.rooms[name] = r
	}
	return r
}

// dropIfEmptyLocked forgets r once it has no members, so that rooms nobody
// is in cost nothing: its history returns its bytes to the budget and keeps
// nothing more, even if a closing member's Say still gets to r. s.mu is
// held, r.mu is not.
func (s *Server) dropIfEmptyLocked(r *room) {
	if len(s.rt.Members(r.name)) == 0 && s.rooms[r.name] == r {
		delete(s.rooms, r.name)
		r.mu.Lock()
		r.history.release()
		r.mu.Unlock()
	}
}

// leaveLocked takes sess out of r, announcing it to the members (sess
// included, when it can still receive) if announce is set. s.mu is held.
func (s *Server) leaveLocked(sess *runtime.Session, r *room, why string, announce bool) {
	r.mu.Lock()
	nick := nickOf(sess)
	if announce {
		left := &chatv1.MemberLeftRequest{Room: r.name, Nick: nick}
		if _, err := s.events.SendMemberLeft(context.Background(), runtime.ToGroup(r.name), left); err != nil {
			s.log.Error("announcing a departure", "room", r.name, "err", err)
		}
		s.watchEvent(r, &chatv1.WatchResponse{Event: &chatv1.WatchResponse_Left{Left: left}})
	}
	s.rt.Leave(r.name, sess)
	sess.Delete(roomAttr)
	r.mu.Unlock()
	s.dropIfEmptyLocked(r)
	s.log.Info("left room", "session", sess.ID(), "nick", nick, "room", r.name, "why", why)
}
