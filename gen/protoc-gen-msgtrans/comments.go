package main

import (
	"strings"
	"unicode"

	"github.com/dave/jennifer/jen"
	"google.golang.org/protobuf/compiler/protogen"
)

// Comments. Every comment line is written as a finished "// " line, never
// handed to jennifer as free text: jennifer writes a text that starts with
// "//" or "/*" as it is, and one with a newline as a /* */ block, so a proto
// comment holding "*/" or starting a line with "/*" could end generated
// code's comment early or swallow the code after it.

// commenter is a jen.File or jen.Group: something comment lines go into.
type commenter interface {
	Comment(string) *jen.Statement
}

// comment writes one line comment holding text (a single line).
func comment(out commenter, text string) {
	text = cleanLine(text)
	if text == "" {
		out.Comment("//")
		return
	}
	out.Comment("// " + text)
}

// cleanLine makes text safe inside a Go line comment: valid UTF-8 without
// control characters (tabs excepted), byte-order marks or trailing spaces.
func cleanLine(text string) string {
	text = strings.ToValidUTF8(text, "\uFFFD")
	text = strings.Map(func(r rune) rune {
		switch {
		case r == '\t':
			return r
		case r == '\uFEFF':
			return -1
		case unicode.IsControl(r):
			return ' '
		}
		return r
	}, text)
	return strings.TrimRight(text, " \t")
}

// doc writes a doc comment: the first paragraph, then the proto comment
// (when there is one, unless it is the first paragraph already), then the
// Deprecated paragraph when deprecated.
func doc(out commenter, first string, c protogen.Comments, deprecated bool) {
	var lines []string
	if first != "" {
		lines = strings.Split(first, "\n")
	}
	if proto := protoComment(c); len(proto) > 0 {
		if len(lines) > 0 {
			lines = append(lines, "")
		}
		lines = append(lines, proto...)
	}
	if deprecated {
		if len(lines) > 0 {
			lines = append(lines, "")
		}
		lines = append(lines, "Deprecated: do not use.")
	}
	for _, l := range lines {
		comment(out, l)
	}
}

// protoComment returns the lines of a leading proto comment, without the
// space that follows "//" in the source.
func protoComment(c protogen.Comments) []string {
	text := strings.TrimSpace(strings.ReplaceAll(string(c), "\r\n", "\n"))
	if text == "" {
		return nil
	}
	lines := strings.Split(text, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimPrefix(l, " ")
	}
	return lines
}

// methodDoc documents a method by its proto comment when it has one
// (which by convention starts with the method's name), else by fallback.
func methodDoc(out commenter, mm *methodModel, fallback string) {
	if len(protoComment(mm.m.Comments.Leading)) > 0 {
		fallback = ""
	}
	doc(out, fallback, mm.m.Comments.Leading, mm.deprecated)
}
