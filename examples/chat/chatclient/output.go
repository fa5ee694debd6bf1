package chatclient

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"unicode"

	chatv1 "github.com/msgtrans/msgtrans-go/examples/chat/gen/chat/v1"
)

// The output format: one line per event, stable so that scripts (and the
// tests) can read it.
//
//	[room] nick: text              a message (the client's own ones too)
//	[room 15:04:05] nick: text     a message from the room's history
//	* nick joined room             someone (or this client) joined
//	* nick left room               someone (or this client) left
//	* old is now known as new      someone (or this client) changed nick
//	* members of room: a, b, c     the answer to /who, and after a join
//	! text                         the client's own notices and errors

func formatMessage(m *chatv1.ChatMessage) string {
	return fmt.Sprintf("[%s] %s: %s", clean(m.Room), clean(m.Nick), clean(m.Text))
}

// formatHistory shows a message from the history with its time of day
// (local time), so it does not read like a new one.
func formatHistory(m *chatv1.ChatMessage) string {
	return fmt.Sprintf("[%s %s] %s: %s", clean(m.Room), m.Time.AsTime().Local().Format("15:04:05"), clean(m.Nick), clean(m.Text))
}

func formatJoined(room, nick string) string {
	return fmt.Sprintf("* %s joined %s", clean(nick), clean(room))
}

func formatLeft(room, nick string) string {
	return fmt.Sprintf("* %s left %s", clean(nick), clean(room))
}

func formatNickChanged(prev, nick string) string {
	return fmt.Sprintf("* %s is now known as %s", clean(prev), clean(nick))
}

// formatMembers lists the nicks as the server sent them (sorted).
func formatMembers(room string, nicks []string) string {
	cleaned := make([]string, len(nicks))
	for i, n := range nicks {
		cleaned[i] = clean(n)
	}
	return fmt.Sprintf("* members of %s: %s", clean(room), strings.Join(cleaned, ", "))
}

// clean keeps one event on one line and the terminal safe whatever the
// server sends: control characters (newlines, escape sequences) become
// U+FFFD.
func clean(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return unicode.ReplacementChar
		}
		return r
	}, s)
}

// printer writes lines to the output, one whole line per write, from any
// goroutine.
//
// While the client waits for a Join response it holds the events of the
// room it is joining: the server may queue some of them before the
// response (its handler returns before the response is sent), and they
// must be printed after the room's history. See [printer.hold].
type printer struct {
	mu      sync.Mutex
	w       io.Writer
	holding string // the room whose events are held; "" when none
	held    []heldEvent
	failed  chan struct{} // closed at the first write error
	err     error
}

type heldEvent struct {
	line   string
	joined string // the nick, for a "joined" event
}

func newPrinter(w io.Writer) *printer {
	return &printer{w: w, failed: make(chan struct{})}
}

// line prints a line now.
func (p *printer) line(s string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.writeLocked(s)
}

// notice prints one of the client's own notices.
func (p *printer) notice(format string, args ...any) {
	p.line("! " + clean(fmt.Sprintf(format, args...)))
}

// event prints an event of a room, or holds it while that room is being
// joined. joined is the nick of a "joined" event, "" for other events.
func (p *printer) event(room, s, joined string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if room != "" && room == p.holding {
		p.held = append(p.held, heldEvent{line: s, joined: joined})
		return
	}
	p.writeLocked(s)
}

// hold starts holding the events of room.
func (p *printer) hold(room string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.holding, p.held = room, nil
}

// release stops holding and prints, in order: the held announcement of our
// own arrival (joiner, when it is the first held event, as the server sends
// it before anything else of the room), then lines (the history and the
// members), then the other held events.
func (p *printer) release(joiner string, lines []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	held := p.held
	p.holding, p.held = "", nil
	if len(held) > 0 && joiner != "" && held[0].joined == joiner {
		p.writeLocked(held[0].line)
		held = held[1:]
	}
	for _, l := range lines {
		p.writeLocked(l)
	}
	for _, e := range held {
		p.writeLocked(e.line)
	}
}

func (p *printer) writeLocked(s string) {
	if p.err != nil {
		return
	}
	if _, err := io.WriteString(p.w, s+"\n"); err != nil {
		p.err = err
		close(p.failed)
	}
}

// Err returns the first write error.
func (p *printer) Err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}
