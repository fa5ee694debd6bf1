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
	toUser
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

// ToAll is every session of the server (of every node, in a cluster).
func ToAll() Target { return Target{kind: toAll} }

// ToUser is every session of the user identity an authenticator bound (see
// [Session.Identity]), on every node.
func ToUser(identity string) Target { return Target{kind: toUser, name: identity} }

// Kind names the kind of target: "session", "group", "group_except",
// "all", "user", or "" for the zero Target. With [Target.Session] and
// [Target.Name] it lets a cluster adapter route a target.
func (t Target) Kind() string {
	return [...]string{"", "session", "group", "group_except", "all", "user"}[t.kind]
}

// Session returns the session a session target names, or the one a
// group_except target leaves out.
func (t Target) Session() uint64 { return t.id }

// Name returns the group of a group target, or the identity of a user one.
func (t Target) Name() string { return t.name }

// TargetOf rebuilds a target from its parts (see [Target.Kind]); a cluster
// adapter uses it for targets that crossed the bus.
func TargetOf(kind string, session uint64, name string) (Target, bool) {
	switch kind {
	case "session":
		return ToSession(session), true
	case "group":
		return ToGroup(name), true
	case "group_except":
		return ToGroupExcept(name, session), true
	case "all":
		return ToAll(), true
	case "user":
		return ToUser(name), true
	}
	return Target{}, false
}

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
	case toUser:
		return fmt.Sprintf("user %q", t.name)
	}
	return "nobody"
}
