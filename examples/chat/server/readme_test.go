package main

import (
	"bufio"
	"context"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// The chat READMEs show the server's start-up log and how to run a second
// server beside the first; these tests keep both true as flags and log
// lines change.

// readmes are the documents that show the chat server's commands.
var readmes = []string{"../../../README.md", "../README.md"}

// logLine is what a sample log line must share with the real one: its
// level and message, and the names of its attributes.
type logLine struct {
	level, msg string
	keys       []string
}

var (
	logMsg = regexp.MustCompile(`msg=("(?:[^"\\]|\\.)*"|\S+)`)
	// An attribute's key: a word followed by '=' outside quoted values.
	logKey = regexp.MustCompile(`(?:^|\s)([a-z_]+)=("(?:[^"\\]|\\.)*"|\S*)`)
)

func parseLogLine(line string) (logLine, bool) {
	m := logMsg.FindStringSubmatch(line)
	if m == nil || !strings.Contains(line, "level=") {
		return logLine{}, false
	}
	var l logLine
	for _, kv := range logKey.FindAllStringSubmatch(line, -1) {
		switch kv[1] {
		case "time":
		case "level":
			l.level = kv[2]
		case "msg":
			l.msg = strings.Trim(kv[2], `"`)
		default:
			l.keys = append(l.keys, kv[1])
		}
	}
	slices.Sort(l.keys)
	return l, true
}

// sameMessage reports whether a sample's message is the real one's: equal,
// or equal up to the first path (the development certificate's directory
// differs between the README and a test).
func sameMessage(sample, real string) bool {
	if sample == real {
		return true
	}
	i := strings.Index(sample, "/")
	return i > 0 && strings.HasPrefix(real, sample[:i])
}

// TestReadmeStartupLog: every log line the chat README shows for a server
// started with the defaults is one the server writes, with the same level,
// message and attribute names, and the server writes no line at start-up
// that the sample leaves out.
func TestReadmeStartupLog(t *testing.T) {
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var sample []logLine
	for line := range strings.SplitSeq(string(b), "\n") {
		if l, ok := parseLogLine(line); ok && strings.HasPrefix(line, "time=") {
			sample = append(sample, l)
		}
	}
	if len(sample) == 0 {
		t.Fatal("examples/chat/README.md shows no start-up log")
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel() // start, log, and shut down at once
	var stderr strings.Builder
	args := []string{"-dev-cert-dir", t.TempDir(), "-http", "127.0.0.1:0", "-listen", "tcp://127.0.0.1:0,ws://127.0.0.1:0/ws,quic://127.0.0.1:0"}
	if got := run(ctx, args, &stderr); got != 0 {
		t.Fatalf("status %d; stderr:\n%s", got, stderr.String())
	}
	var real []logLine
	for line := range strings.SplitSeq(stderr.String(), "\n") {
		l, ok := parseLogLine(line)
		if !ok {
			continue
		}
		if strings.HasPrefix(l.msg, "chat server shutting down") || strings.HasPrefix(l.msg, "chat server stopped") {
			break // the start-up is over
		}
		real = append(real, l)
	}
	used := make([]bool, len(real))
	for _, s := range sample {
		found := false
		for i, r := range real {
			if used[i] || s.level != r.level || !sameMessage(s.msg, r.msg) {
				continue
			}
			if !slices.Equal(s.keys, r.keys) {
				t.Errorf("README shows %q with attributes %v; the server writes %v", s.msg, s.keys, r.keys)
			}
			used[i], found = true, true
			break
		}
		if !found {
			t.Errorf("README shows a %s line %q the server does not write at start-up", s.level, s.msg)
		}
	}
	for i, r := range real {
		if !used[i] {
			t.Errorf("the server writes a %s line %q at start-up that the README's sample leaves out", r.level, r.msg)
		}
	}
}

// addressFlags returns the server's flags that take a listening address,
// with their defaults: those whose usage names an address or URLs.
func addressFlags(t *testing.T) map[string]string {
	t.Helper()
	var usage strings.Builder
	if got := run(context.Background(), []string{"-h"}, &usage); got != 0 {
		t.Fatalf("-h: status %d", got)
	}
	flags := map[string]string{}
	header := regexp.MustCompile(`^\s+-([a-z-]+) (address|URLs)$`)
	def := regexp.MustCompile(`\(default "([^"]*)"\)`)
	sc := bufio.NewScanner(strings.NewReader(usage.String()))
	name := ""
	for sc.Scan() {
		line := sc.Text()
		if m := header.FindStringSubmatch(line); m != nil {
			name = m[1]
			flags[name] = ""
			continue
		}
		if name != "" {
			if m := def.FindStringSubmatch(line); m != nil {
				flags[name] = m[1]
			}
		}
		if strings.HasPrefix(strings.TrimSpace(line), "-") {
			name = ""
		}
	}
	if _, ok := flags["listen"]; !ok {
		t.Fatalf("no -listen among the server's address flags; usage:\n%s", usage.String())
	}
	return flags
}

// hostPorts returns the host:port parts of a flag value: URLs or an
// address, comma-separated.
func hostPorts(v string) []string {
	var out []string
	for a := range strings.SplitSeq(v, ",") {
		a = strings.TrimSpace(a)
		if i := strings.Index(a, "://"); i >= 0 {
			a = a[i+3:]
		}
		if i := strings.Index(a, "/"); i >= 0 {
			a = a[:i]
		}
		if a != "" {
			out = append(out, a)
		}
	}
	return out
}

// TestReadmeSecondServer: the READMEs' commands for a server beside one on
// the default ports (those whose -listen avoids the defaults) move every
// address the server listens on by default (its transports, its web page,
// …) to addresses of their own, so that the second server starts.
func TestReadmeSecondServer(t *testing.T) {
	flags := addressFlags(t)
	var defaults []string
	for _, v := range flags {
		defaults = append(defaults, hostPorts(v)...)
	}
	for _, doc := range readmes {
		b, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for line := range strings.SplitSeq(string(b), "\n") {
			if !strings.HasPrefix(line, "go run ./examples/chat/server ") || !strings.Contains(line, " -listen ") {
				continue
			}
			n++
			args := strings.Fields(strings.TrimPrefix(line, "go run ./examples/chat/server "))
			set := map[string]string{}
			for i := 0; i+1 < len(args); i += 2 {
				set[strings.TrimLeft(args[i], "-")] = args[i+1]
			}
			if slices.ContainsFunc(hostPorts(set["listen"]), func(hp string) bool { return slices.Contains(defaults, hp) }) {
				continue // the first server, on the default ports
			}
			for name, def := range flags {
				if def == "" {
					continue // not listening unless asked to
				}
				v, ok := set[name]
				if !ok {
					t.Errorf("%s: %q leaves -%s at its default %s, where the first server listens", doc, line, name, def)
					continue
				}
				for _, hp := range hostPorts(v) {
					if slices.Contains(defaults, hp) {
						t.Errorf("%s: %q: -%s %s takes %s, a default address", doc, line, name, v, hp)
					}
				}
			}
		}
		if n == 0 {
			t.Errorf("%s shows no command for a second server (go run ./examples/chat/server -listen …)", doc)
		}
	}
}
