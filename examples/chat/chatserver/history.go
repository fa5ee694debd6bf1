package chatserver

import (
	"sync/atomic"

	chatv1 "github.com/msgtrans/msgtrans-go/examples/chat/gen/chat/v1"
)

// messageOverhead is what a kept message costs besides its strings: the
// message, its time and its slot in the ring, rounded up.
const messageOverhead = 200

// messageCost is what keeping m counts against a [budget]: the bytes of its
// text, nick and room, and [messageOverhead]. The nick and room are shared
// with the session and the room, so this overestimates a little.
func messageCost(m *chatv1.ChatMessage) int64 {
	return int64(len(m.Text) + len(m.Nick) + len(m.Room) + messageOverhead)
}

// budget bounds what the histories of all the rooms of a server keep, in
// bytes as [messageCost] counts them. It is safe for concurrent use.
type budget struct {
	max  int64
	used atomic.Int64
}

// take reserves n bytes, or reports false if that would exceed the budget.
func (b *budget) take(n int64) bool {
	for {
		used := b.used.Load()
		if used+n > b.max {
			return false
		}
		if b.used.CompareAndSwap(used, used+n) {
			return true
		}
	}
}

// give returns n bytes taken earlier.
func (b *budget) give(n int64) { b.used.Add(-n) }

// history keeps the latest messages of a room, oldest first, in a ring of
// at most size messages, within a byte budget shared by all rooms.
//
// A message that does not fit in the budget evicts the room's own oldest
// messages until it fits; if it does not fit even once the room keeps
// nothing, it is not kept (members still receive it). Other rooms are never
// touched, so a room's lock is all that adding needs, and what a room keeps
// is always its latest messages, with no gap. The price is that when other
// rooms hold the whole budget, a room that keeps nothing yet cannot start
// keeping messages until they leave some room: members of an empty room
// release its history.
//
// It is not safe for concurrent use; its room's mu guards it.
type history struct {
	ring   []*chatv1.ChatMessage // len(ring) == size
	first  int                   // index of the oldest message
	n      int                   // number of messages kept
	bytes  int64                 // what the kept messages cost, taken from budget
	budget *budget
}

func newHistory(size int, b *budget) history {
	return history{ring: make([]*chatv1.ChatMessage, size), budget: b}
}

// add appends m, dropping the oldest messages when the history is full or
// the budget spent, and reports whether m is kept. The history keeps m: it
// must not be modified afterwards, nor hold strings that share memory with
// a request.
func (h *history) add(m *chatv1.ChatMessage) bool {
	if len(h.ring) == 0 {
		return false
	}
	if h.n == len(h.ring) {
		h.dropOldest()
	}
	cost := messageCost(m)
	for !h.budget.take(cost) {
		if h.n == 0 {
			return false
		}
		h.dropOldest()
	}
	h.ring[(h.first+h.n)%len(h.ring)] = m
	h.n++
	h.bytes += cost
	return true
}

func (h *history) dropOldest() {
	m := h.ring[h.first]
	h.ring[h.first] = nil
	h.first = (h.first + 1) % len(h.ring)
	h.n--
	cost := messageCost(m)
	h.bytes -= cost
	h.budget.give(cost)
}

// release forgets every message, returning their bytes to the budget, and
// makes the history keep nothing from then on: its room is being dropped.
func (h *history) release() {
	h.budget.give(h.bytes)
	*h = history{budget: h.budget}
}

// messages returns the kept messages, oldest first, in a new slice.
func (h *history) messages() []*chatv1.ChatMessage {
	out := make([]*chatv1.ChatMessage, 0, h.n)
	for i := range h.n {
		out = append(out, h.ring[(h.first+i)%len(h.ring)])
	}
	return out
}
