package chatserver

import (
	"bytes"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
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
			h := newHistory(tt.size, &budget{max: 1 << 30})
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
	h := newHistory(2, &budget{max: 1 << 30})
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

func TestHistoryBudget(t *testing.T) {
	// Messages cost a number of units; textOf gives the text bytes of one
	// costing n units.
	const unit = 300
	textOf := func(n int64) int { return int(n*unit - messageCost(&chatv1.ChatMessage{Room: "r", Nick: "n"})) }
	small := textOf(1)
	type post struct {
		room int // index of the room's history
		text int // bytes of text
	}
	posts := func(room, n, text int) []post {
		return slices.Repeat([]post{{room: room, text: text}}, n)
	}
	var many []post // 100 rooms, 20 rounds of messages of assorted sizes
	for i := range 2000 {
		many = append(many, post{room: i % 100, text: (i * 37) % 1000})
	}
	tests := []struct {
		name  string
		size  int   // of each history
		max   int64 // of the budget
		rooms int
		posts []post
		want  [][]uint64 // seqs kept by each room, nil to check only invariants
	}{
		{"within the budget", 50, 10 * unit, 2, append(posts(0, 3, small), posts(1, 2, small)...),
			[][]uint64{{1, 2, 3}, {1, 2}}},
		{"the ring is full before the budget", 2, 10 * unit, 1, posts(0, 5, small),
			[][]uint64{{4, 5}}},
		{"a room evicts its own oldest", 50, 3 * unit, 1, posts(0, 5, small),
			[][]uint64{{3, 4, 5}}},
		{"other rooms are never evicted", 50, 3 * unit, 2, append(posts(0, 3, small), posts(1, 2, small)...),
			[][]uint64{{1, 2, 3}, nil}},
		{"a big message evicts several", 50, 3 * unit, 1, append(posts(0, 3, small), post{text: textOf(2)}),
			[][]uint64{{3, 4}}},
		{"a message over the budget empties its room", 50, unit, 1, append(posts(0, 1, small), post{text: textOf(2)}),
			[][]uint64{nil}},
		{"a room keeps messages again after one did not fit", 50, unit, 1, append(append(posts(0, 1, small), post{text: textOf(2)}), posts(0, 1, small)...),
			[][]uint64{{3}}},
		{"many rooms", 50, 64 * 1024, 100, many, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := &budget{max: tt.max}
			hs := make([]history, tt.rooms)
			for i := range hs {
				hs[i] = newHistory(tt.size, b)
			}
			sent := make([][]*chatv1.ChatMessage, tt.rooms)
			for _, p := range tt.posts {
				m := &chatv1.ChatMessage{Room: "r", Nick: "n", Text: strings.Repeat("x", p.text), Seq: uint64(len(sent[p.room]) + 1)}
				sent[p.room] = append(sent[p.room], m)
				hs[p.room].add(m)
				if used := b.used.Load(); used > tt.max {
					t.Fatalf("after message %d of room %d the histories keep %d bytes, over %d", m.Seq, p.room, used, tt.max)
				}
			}
			var sum int64
			for i := range hs {
				kept := hs[i].messages()
				// What a room keeps is its latest messages, with no gap.
				if !slices.Equal(kept, sent[i][len(sent[i])-len(kept):]) {
					t.Errorf("room %d keeps %v, not its latest messages", i, seqs(kept))
				}
				if tt.want != nil && !slices.Equal(seqs(kept), tt.want[i]) {
					t.Errorf("room %d keeps %v, want %v", i, seqs(kept), tt.want[i])
				}
				for _, m := range kept {
					sum += messageCost(m)
				}
			}
			if used := b.used.Load(); used != sum {
				t.Errorf("budget counts %d bytes, the histories keep %d", used, sum)
			}
			// Releasing every history returns every byte, and a released
			// history keeps nothing more.
			for i := range hs {
				hs[i].release()
			}
			if used := b.used.Load(); used != 0 {
				t.Errorf("after release the budget counts %d bytes", used)
			}
			if hs[0].add(&chatv1.ChatMessage{Text: "late"}) || len(hs[0].messages()) != 0 || b.used.Load() != 0 {
				t.Error("a released history kept a message")
			}
		})
	}
}

func seqs(ms []*chatv1.ChatMessage) []uint64 {
	var out []uint64
	for _, m := range ms {
		out = append(out, m.Seq)
	}
	return out
}
