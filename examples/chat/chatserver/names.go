package chatserver

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/msgtrans/msgtrans-go/runtime"
)

// Limits on what clients send.
const (
	// MaxNameLen is the longest nick or room name, in characters.
	MaxNameLen = 32
	// MaxTextLen is the longest message, in characters; longer ones are cut.
	MaxTextLen = 1000
	// MaxTextBytes is the longest message received, in bytes: room enough
	// for MaxTextLen characters of any size. Longer ones are dropped whole,
	// before any work is spent on them.
	MaxTextBytes = utf8.UTFMax * MaxTextLen
)

// checkName checks a nick or room name: 1 to [MaxNameLen] characters, none
// of them a space or a control character. The error is a CodeInvalidArgument
// [*runtime.Error], so the client sees why.
func checkName(what, v string) error {
	switch n := utf8.RuneCountInString(v); {
	case n == 0:
		return runtime.Errorf(runtime.CodeInvalidArgument, "%s is empty", what)
	case n > MaxNameLen:
		return runtime.Errorf(runtime.CodeInvalidArgument, "%s %q is longer than %d characters", what, v, MaxNameLen)
	}
	for _, r := range v {
		if unicode.IsSpace(r) || !unicode.IsGraphic(r) {
			return runtime.Errorf(runtime.CodeInvalidArgument, "%s %q contains a space or a control character", what, v)
		}
	}
	return nil
}

// cleanText makes a message one line: control characters (newlines, tabs,
// terminal escapes) become spaces, surrounding space goes, and the text is
// cut to [MaxTextLen] characters. The result is a copy, sharing no memory
// with t: the history keeps it, and t may be a small part of a big request.
func cleanText(t string) string {
	t = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, t)
	t = strings.TrimSpace(t)
	if utf8.RuneCountInString(t) > MaxTextLen {
		return string([]rune(t)[:MaxTextLen])
	}
	return strings.Clone(t)
}
