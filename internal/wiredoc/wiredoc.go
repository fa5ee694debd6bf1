// Package wiredoc reads the byte examples of docs/wire.md, so that tests
// can pin every example to what the code encodes and sends: the page and
// its tests cannot drift apart.
//
// An example is a fenced block right after a line
//
//	<!-- wire-example: NAME -->
//
// holding one packet. Lines that begin, at the left margin, with a byte in
// two hex digits hold bytes: the run of such two-digit tokens that starts
// the line, up to the first other token, which begins the line's
// annotation. Every other line (indented, or starting with a word) is
// annotation only.
package wiredoc

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

const marker = "<!-- wire-example:"

// Examples returns the examples of the markdown file at path, by name.
func Examples(path string) (map[string][]byte, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(src)
}

// Parse returns the examples of a markdown text, by name. A marker not
// followed by a fenced block, an unterminated block, an empty example and
// a name used twice are errors.
func Parse(md []byte) (map[string][]byte, error) {
	out := make(map[string][]byte)
	sc := bufio.NewScanner(bytes.NewReader(md))
	line := 0
	next := func() (string, bool) {
		if !sc.Scan() {
			return "", false
		}
		line++
		return sc.Text(), true
	}
	for {
		l, ok := next()
		if !ok {
			break
		}
		rest, found := strings.CutPrefix(strings.TrimSpace(l), marker)
		if !found {
			continue
		}
		name, found := strings.CutSuffix(strings.TrimSpace(rest), "-->")
		name = strings.TrimSpace(name)
		if !found || name == "" {
			return nil, fmt.Errorf("line %d: malformed example marker %q", line, l)
		}
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("line %d: example %q named twice", line, name)
		}
		at := line
		if fence, ok := next(); !ok || !strings.HasPrefix(fence, "```") {
			return nil, fmt.Errorf("line %d: example %q is not followed by a fenced block", at, name)
		}
		var b []byte
		closed := false
		for {
			l, ok := next()
			if !ok {
				break
			}
			if strings.HasPrefix(l, "```") {
				closed = true
				break
			}
			b = appendLine(b, l)
		}
		if !closed {
			return nil, fmt.Errorf("line %d: example %q: unterminated block", at, name)
		}
		if len(b) == 0 {
			return nil, fmt.Errorf("line %d: example %q holds no bytes", at, name)
		}
		out[name] = b
	}
	return out, sc.Err()
}

// appendLine appends the bytes a line of an example holds.
func appendLine(b []byte, l string) []byte {
	if l == "" || l[0] == ' ' || l[0] == '\t' {
		return b
	}
	for _, tok := range strings.Fields(l) {
		if len(tok) != 2 {
			break
		}
		v, err := hex.DecodeString(tok)
		if err != nil {
			break
		}
		b = append(b, v[0])
	}
	return b
}

// Path returns docs/wire.md of the module that holds the working
// directory: the first directory above it with a go.mod.
func Path() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for dir := wd; ; {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, "docs", "wire.md"), nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above %s", wd)
		}
		dir = parent
	}
}
