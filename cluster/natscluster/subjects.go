package natscluster

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
)

// Subjects, under the prefix <p>:
//
//	<p>.n.<node>   a node's own: pushes to its sessions, calls, probes
//	<p>.g.<group>  a group's members; subscribed by the nodes that have one
//	<p>.u.<user>   a user's sessions; subscribed by the nodes that have one
//	<p>.all        every session
//	<p>.ctl        heartbeats, leaves, and surveys (group members)
//
// A name becomes one subject token: bytes in [A-Za-z0-9_-] as they are,
// every other character as u+XXXX (its code point in hex), and a token
// longer than maxToken as h+ and a hash of the name. The envelope carries
// the name itself, so a hash that two names share only sends a node
// messages it then finds no member for.

// maxToken bounds one subject token.
const maxToken = 96

// validPrefix reports whether p is a usable subject prefix: tokens of
// [A-Za-z0-9_-], separated by dots.
func validPrefix(p string) error {
	if p == "" {
		return fmt.Errorf("natscluster: empty subject prefix")
	}
	for _, tok := range strings.Split(p, ".") {
		if tok == "" {
			return fmt.Errorf("natscluster: subject prefix %q has an empty token", p)
		}
		for _, r := range tok {
			if !plain(r) {
				return fmt.Errorf("natscluster: subject prefix %q: %q is not one of [A-Za-z0-9_-]", p, r)
			}
		}
	}
	return nil
}

func plain(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-'
}

// token returns name as one subject token.
func token(name string) string {
	var b strings.Builder
	for _, r := range name {
		if plain(r) {
			b.WriteRune(r)
		} else {
			fmt.Fprintf(&b, "u+%04X", r)
		}
		if b.Len() > maxToken {
			sum := sha256.Sum256([]byte(name))
			return "h+" + hex.EncodeToString(sum[:16])
		}
	}
	if b.Len() == 0 {
		return "u+"
	}
	return b.String()
}

// subjects names the subjects of one cluster.
type subjects struct{ prefix string }

func (s subjects) node(n uint16) string { return s.prefix + ".n." + strconv.Itoa(int(n)) }
func (s subjects) group(name string) string {
	return s.prefix + ".g." + token(name)
}
func (s subjects) user(name string) string { return s.prefix + ".u." + token(name) }
func (s subjects) all() string             { return s.prefix + ".all" }
func (s subjects) ctl() string             { return s.prefix + ".ctl" }
