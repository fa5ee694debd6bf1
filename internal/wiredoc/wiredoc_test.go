package wiredoc

import (
	"bytes"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	md := strings.Join([]string{
		"# Title",
		"",
		"<!-- wire-example: one -->",
		"```",
		"01 02  0a ff   header: two bytes, then words 0b 0c",
		"ver typ        annotation only",
		"   03 04       indented: annotation only",
		"05 zz 06       bytes stop at the first other token",
		"```",
		"",
		"```",
		"07 08 an unmarked block is no example",
		"```",
		"<!-- wire-example: two -->",
		"```text",
		"AB cd",
		"```",
	}, "\n")
	got, err := Parse([]byte(md))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]byte{"one": {1, 2, 0x0a, 0xff, 5}, "two": {0xab, 0xcd}}
	if len(got) != len(want) {
		t.Fatalf("Parse = %v, want %v", got, want)
	}
	for name, b := range want {
		if !bytes.Equal(got[name], b) {
			t.Errorf("%s = % x, want % x", name, got[name], b)
		}
	}
}

func TestParseRejects(t *testing.T) {
	tests := []struct {
		name, md, want string
	}{
		{"no block", "<!-- wire-example: a -->\ntext\n", "not followed by a fenced block"},
		{"unterminated", "<!-- wire-example: a -->\n```\n01\n", "unterminated"},
		{"empty", "<!-- wire-example: a -->\n```\nwords\n```\n", "holds no bytes"},
		{"twice", "<!-- wire-example: a -->\n```\n01\n```\n<!-- wire-example: a -->\n```\n02\n```\n", "named twice"},
		{"no name", "<!-- wire-example: -->\n```\n01\n```\n", "malformed"},
		{"not closed", "<!-- wire-example: a\n```\n01\n```\n", "malformed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Parse([]byte(tt.md)); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Parse = %v, want an error saying %q", err, tt.want)
			}
		})
	}
}
