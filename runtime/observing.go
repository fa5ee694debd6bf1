package runtime

import (
	"fmt"
	"reflect"
	"sync"
	"sync/atomic"
)

// observing is a server's or client's observer with what it keeps for it.
// A config without an observer has none (nil).
type observing struct {
	o    Observer
	side Side
	biz  [256]atomic.Pointer[routeHandle] // raw routes' handles, by biz_type

	mu     sync.Mutex
	closed map[string]*TransportStats // totals of ended sessions, by transport
	live   func(yield func(*Session)) // the open sessions
}

// routeHandle holds a RouteObserver that may be nil.
type routeHandle struct{ h RouteObserver }

// sessionStats are one session's counters, kept when an observer is set.
// The read goroutine writes the in-counters and the writer the out ones;
// a scrape reads them (see observing.Stats).
type sessionStats struct {
	packetsIn, bytesIn           atomic.Uint64
	packetsOut, bytesOut, writes atomic.Uint64
	retired                      bool // folded into observing.closed; guarded by observing.mu
}

func newObserving(o Observer, side Side, live func(yield func(*Session))) *observing {
	if o == nil {
		return nil
	}
	ob := &observing{o: o, side: side, closed: make(map[string]*TransportStats), live: live}
	o.Attach(ob)
	return ob
}

// checkObserver reports an observer the runtime cannot key handles by.
func checkObserver(o Observer) error {
	if o == nil {
		return nil
	}
	if !reflect.TypeOf(o).Comparable() {
		return fmt.Errorf("msgtrans: WithObserver: %T is not comparable; pass a pointer", o)
	}
	return nil
}

// Stats implements [StatsSource].
func (ob *observing) Stats(dst []TransportStats) []TransportStats {
	ob.mu.Lock()
	defer ob.mu.Unlock()
	start := len(dst)
	for _, t := range ob.closed {
		dst = append(dst, *t)
	}
	find := func(transport string) *TransportStats {
		for i := start; i < len(dst); i++ {
			if dst[i].Transport == transport {
				return &dst[i]
			}
		}
		dst = append(dst, TransportStats{Side: ob.side, Transport: transport})
		return &dst[len(dst)-1]
	}
	ob.live(func(sess *Session) {
		st := sess.stats
		if st == nil || st.retired {
			return
		}
		t := find(sess.scheme)
		t.addSession(st)
		t.Dropped += uint64(sess.dropped.Load())
		t.Sessions++
		t.QueuedBytes += int64(sess.Queued())
	})
	return dst
}

func (t *TransportStats) addSession(st *sessionStats) {
	t.PacketsIn += st.packetsIn.Load()
	t.BytesIn += st.bytesIn.Load()
	t.PacketsOut += st.packetsOut.Load()
	t.BytesOut += st.bytesOut.Load()
	t.Writes += st.writes.Load()
}

// opened starts counting a new session's traffic and reports it opened.
func (ob *observing) opened(sess *Session) {
	if ob == nil {
		return
	}
	ob.o.ConnOpened(ConnInfo{ob.side, sess.scheme})
}

// ended folds an ended session's counters into the totals and reports it
// closed with its reason.
func (ob *observing) ended(sess *Session, reason error) {
	if ob == nil {
		return
	}
	if st := sess.stats; st != nil {
		ob.mu.Lock()
		t := ob.closed[sess.scheme]
		if t == nil {
			t = &TransportStats{Side: ob.side, Transport: sess.scheme}
			ob.closed[sess.scheme] = t
		}
		t.addSession(st)
		t.Dropped += uint64(sess.dropped.Load())
		st.retired = true
		ob.mu.Unlock()
	}
	ob.o.ConnClosed(ConnInfo{ob.side, sess.scheme}, CloseReasonOf(reason))
}

// refused reports a refused connection.
func (ob *observing) refused(transport string, why RefuseReason) {
	if ob != nil {
		ob.o.ConnRefused(ConnInfo{ob.side, transport}, why)
	}
}

// method returns the handle for the typed method m, asking the observer
// the first time. nil: nothing to record.
func (ob *observing) method(m *Method) RouteObserver {
	if ob == nil || m == nil {
		return nil
	}
	for e := m.observed.Load(); e != nil; e = e.next {
		if e.o == ob.o && e.side == ob.side {
			return e.h
		}
	}
	return ob.resolveMethod(m)
}

func (ob *observing) resolveMethod(m *Method) RouteObserver {
	m.observeMu.Lock()
	defer m.observeMu.Unlock()
	for e := m.observed.Load(); e != nil; e = e.next {
		if e.o == ob.o && e.side == ob.side {
			return e.h
		}
	}
	h := ob.o.Route(Route{Side: ob.side, Method: m})
	m.observed.Store(&methodHandle{o: ob.o, side: ob.side, h: h, next: m.observed.Load()})
	return h
}

// methodHandle is a method's handle for one observer and side; a
// [Method] keeps a list of them (usually of one).
type methodHandle struct {
	o    Observer
	side Side
	h    RouteObserver
	next *methodHandle
}

// raw returns the handle for the raw route of bizType, asking the observer
// the first time.
func (ob *observing) raw(bizType uint8) RouteObserver {
	if ob == nil {
		return nil
	}
	if r := ob.biz[bizType].Load(); r != nil {
		return r.h
	}
	r := &routeHandle{h: ob.o.Route(Route{Side: ob.side, BizType: bizType})}
	if !ob.biz[bizType].CompareAndSwap(nil, r) {
		r = ob.biz[bizType].Load()
	}
	return r.h
}

// route returns the handle for a typed method or, m nil, for the raw
// biz_type.
func (ob *observing) route(m *Method, bizType uint8) RouteObserver {
	if m != nil {
		return ob.method(m)
	}
	return ob.raw(bizType)
}

// count adds a batch written in one write.
func (st *sessionStats) count(batch [][]byte) {
	n := 0
	for _, b := range batch {
		n += len(b)
	}
	st.writes.Add(1)
	st.packetsOut.Add(uint64(len(batch)))
	st.bytesOut.Add(uint64(n))
}

// statusOf is CodeOf without its cost on success: CodeOf's errors.As moves
// a variable to the heap on every call, nil errors included.
func statusOf(err error) Code {
	if err == nil {
		return CodeOK
	}
	return CodeOf(err)
}
