package chatserver

import (
	"bytes"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	chatv1 "github.com/msgtrans/msgtrans-go/examples/chat/gen/chat/v1"
)

func TestHistory(t *testing.T) {
	texts := func(ms []*chatv1.ChatMessage) []string {
		out := make([]string, len(ms))
		for i, m := range ms {
			out[i] = m.Text
		}
		return out
	}
	numbers := func(from, to int) []string {
		var out []string
		for i := from; i <= to; i++ {
			out = append(out, fmt.Sprint(i))
		}
		return out
	}
	tests := []struct {
		size, added int
		want        []string
	}{
		{size: 50, added: 0, want: nil},
		{size: 50, added: 1, want: numbers(1, 1)},
		{size: 50, added: 49, want: numbers(1, 49)},
		{size: 50, added: 50, want: numbers(1, 50)},
		{size: 50, added: 51, want: numbers(2, 51)},
		{size: 50, added: 120, want: numbers(71, 120)},
		{size: 1, added: 3, want: numbers(3, 3)},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d in %d", tt.added, tt.size), func(t *testing.T) {
			h := newHistory(tt.size)
			for i := 1; i <= tt.added; i++ {
				h.add(&chatv1.ChatMessage{Text: fmt.Sprint(i)})
			}
			got := texts(h.messages())
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
	// messages returns a copy: adding more does not change it.
	h := newHistory(2)
	h.add(&chatv1.ChatMessage{Text: "a"})
	h.add(&chatv1.ChatMessage{Text: "b"})
	snap := h.messages()
	h.add(&chatv1.ChatMessage{Text: "c"})
	if got := texts(snap); !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("snapshot changed to %q", got)
	}
}

func TestCheckName(t *testing.T) {
	for _, tt := range []struct {
		name string
		ok   bool
	}{
		{"lobby", true},
		{"#go-nuts", true},
		{"Zoë", true},
		{"日本語", true},
		{"", false},
		{"two words", false},
		{"tab\there", false},
		{"bell\a", false},
		{"\u00a0nbsp", false},
		{"abcdefghijklmnopqrstuvwxyz012345", true},   // 32
		{"abcdefghijklmnopqrstuvwxyz0123456", false}, // 33
	} {
		if err := checkName("nick", tt.name); (err == nil) != tt.ok {
			t.Errorf("checkName(%q) = %v, want ok=%v", tt.name, err, tt.ok)
		}
	}
}

func TestCleanText(t *testing.T) {
	long := string(slices.Repeat([]rune("é"), MaxTextLen+5))
	for _, tt := range []struct{ in, want string }{
		{"hello", "hello"},
		{"  padded  ", "padded"},
		{"two\nlines", "two lines"},
		{"\x1b[31mred\x1b[0m", "[31mred [0m"},
		{"\r\n\t", ""},
		{long, long[:2*MaxTextLen]},
	} {
		if got := cleanText(tt.in); got != tt.want {
			t.Errorf("cleanText(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestDevCertificateKept: a restarted server presents the same development
// certificate, so clients that trust its CA reconnect.
func TestDevCertificateKept(t *testing.T) {
	dir := t.TempDir()
	first, reused, err := devCertificate(dir)
	if err != nil || reused {
		t.Fatalf("first: reused=%v err=%v", reused, err)
	}
	second, reused, err := devCertificate(dir)
	if err != nil || !reused {
		t.Fatalf("second: reused=%v err=%v", reused, err)
	}
	if !bytes.Equal(first.Certificates[0].Certificate[0], second.Certificates[0].Certificate[0]) {
		t.Error("the second start made a different certificate")
	}
	ca, err := os.ReadFile(filepath.Join(dir, devCAFile))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		t.Fatal("ca.pem holds no certificate")
	}
	leaf, err := x509.ParseCertificate(second.Certificates[0].Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: "localhost"}); err != nil {
		t.Errorf("the kept certificate does not verify against ca.pem: %v", err)
	}
	if fresh, reused, err := devCertificate(""); err != nil || reused || fresh == nil {
		t.Errorf("without a directory: reused=%v err=%v", reused, err)
	}
}
