package runtime

import (
	"testing"

	"github.com/msgtrans/msgtrans-go/wire"
)

// TestOthersSending: a writer yields before its first write only when
// goroutines other than the one that started it are likely to queue more
// on its session; a session whose only sender is its reader does not.
func TestOthersSending(t *testing.T) {
	cases := []struct {
		name  string
		setup func(s *Session)
		want  bool
	}{
		{"nothing else sends", func(*Session) {}, false},
		{"own packet queued", func(s *Session) {
			s.mu.Lock()
			s.owned = append(s.owned, wire.GetBuffer(16))
			s.mu.Unlock()
		}, false},
		{"the request handler that answered", func(s *Session) { s.serving.Add(1) }, false},
		{"request handlers running", func(s *Session) { s.serving.Add(2) }, true},
		{"a lone call awaiting its response", func(s *Session) {
			s.pmu.Lock()
			s.pending = &pendingCalls{m: map[uint32]pendingCall{7: {ch: make(chan reply, 1)}}}
			s.pmu.Unlock()
		}, false},
		{"calls awaiting their responses", func(s *Session) {
			s.pmu.Lock()
			s.pending = &pendingCalls{m: map[uint32]pendingCall{7: {ch: make(chan reply, 1)}, 9: {ch: make(chan reply, 1)}}}
			s.pmu.Unlock()
		}, true},
		{"stream open", func(s *Session) {
			s.streams.mu.Lock()
			s.streams.opened = map[uint32]*stream{3: {s: s, id: 3}}
			s.streams.accepted = map[uint32]*stream{4: {s: s, id: 4, acceptor: true}}
			s.streams.mu.Unlock()
		}, false},
		{"fan-out queued", func(s *Session) {
			s.mu.Lock()
			s.sharedQueued = true
			s.mu.Unlock()
		}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := testSession(t)
			tc.setup(s)
			if got := s.othersSending(); got != tc.want {
				t.Fatalf("othersSending() = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestSharedQueuedOncePerStart: a fan-out's packet makes the writer that
// takes it yield once; the next writer start yields only if another shared
// encoding was queued meanwhile.
func TestSharedQueuedOncePerStart(t *testing.T) {
	s := testSession(t)
	enc, err := wire.AppendPacket(nil, wire.NewOneWay(1, []byte("shared")))
	if err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	s.writing = true // keep the writer from starting: the test plays it
	s.mu.Unlock()
	if err := s.SendEncoded(enc); err != nil {
		t.Fatal(err)
	}
	if !s.othersSending() {
		t.Fatal("a writer taking a fan-out's packet does not yield")
	}
	if s.othersSending() {
		t.Fatal("the fan-out mark outlived the writer start that saw it")
	}
	// Cleared also when running handlers alone decide the yield.
	if err := s.SendEncoded(enc); err != nil {
		t.Fatal(err)
	}
	s.serving.Add(2)
	if !s.othersSending() {
		t.Fatal("running handlers did not make the writer yield")
	}
	s.serving.Add(-2)
	if s.othersSending() {
		t.Fatal("the fan-out mark outlived a writer start that yielded for handlers")
	}
	if err := s.Send(wire.NewOneWay(1, []byte("own"))); err != nil {
		t.Fatal(err)
	}
	if s.othersSending() {
		t.Fatal("a packet the session encoded itself made the writer yield")
	}
}
