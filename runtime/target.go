package runtime

import (
	"fmt"
	"strconv"
)

// Target says whom a push goes to: one session by id, the members of a
// group (all of them, or all but one session), or every session. It is
// plain data, so it can name sessions this process does not hold; see
// [Server.Push].
type Target struct {
	kind targetKind
	id   uint64 // the session (toSession), or the one left out (toGroupExcept)
	name string // the group
}

type targetKind uint8

const (
	toNobody targetKind = iota // the zero Target
	toSession
	toGroup
	toGroupExcept
	toAll
)

// ToSession is the session with the id.
func ToSession(id uint64) Target { return Target{kind: toSession, id: id} }

// ToGroup is every member of the named group.
func ToGroup(name string) Target { return Target{kind: toGroup, name: name} }

// ToGroupExcept is every member of the named group but the session with the
// id (typically the one whose action caused the message).
func ToGroupExcept(name string, except uint64) Target {
	return Target{kind: toGroupExcept, id: except, name: name}
}

// ToAll is every session of the server.
func ToAll() Target { return Target{kind: toAll} }

// Target returns the target naming s alone: ToSession(s.ID()).
func (s *Session) Target() Target { return ToSession(s.id) }

// String describes the target, for logs.
func (t Target) String() string {
	switch t.kind {
	case toSession:
		return "session " + strconv.FormatUint(t.id, 10)
	case toGroup:
		return fmt.Sprintf("group %q", t.name)
	case toGroupExcept:
		return fmt.Sprintf("group %q except session %d", t.name, t.id)
	case toAll:
		return "every session"
	}
	return "nobody"
}
