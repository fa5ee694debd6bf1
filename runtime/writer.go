package runtime

import (
	"errors"
	"fmt"
	"math/bits"
	"net"
	"os"
	goruntime "runtime"
	"sync"
	"time"
	"unsafe"

	"github.com/msgtrans/msgtrans-go/wire"
)

func (s *Session) nextID() uint32 {
	for {
		if id := s.ids.Add(1); id != 0 {
			return id
		}
	}
}

// Send queues p as a OneWay packet (whatever p.Type says) with the next
// message id of this side. It fails when the session is closed or the packet
// would overflow the send queue, which closes the session as a slow consumer.
func (s *Session) Send(p *wire.Packet) error {
	err := s.sendAs(p, wire.OneWay, s.nextID())
	if ob := s.cfg.obs; ob != nil && err == nil && !isTypedCall(p) {
		// A raw message; typed ones are reported by invoke.
		if h := ob.raw(p.BizType); h != nil {
			h.Sent()
		}
	}
	return err
}

// SendEncoded queues an already encoded packet (see [AppendPacket]) as it
// is, without copying: b must not be modified afterwards. It is how one
// encoding is shared by many sessions. A packet over the limits fails with
// [ErrPayloadTooLarge].
func (s *Session) SendEncoded(b []byte) error {
	if err := checkEncoded(s.cfg.limits, b); err != nil {
		return err
	}
	return s.enqueue(b)
}

func (s *Session) sendAs(p *wire.Packet, t wire.PacketType, id uint32) error {
	b, err := s.encode(p, t, id)
	if err != nil {
		return err
	}
	return s.enqueueOwned(b)
}

// encode returns the wire bytes of p with the given type and id, compressed
// when configured and accepted by the peer. A packet over the limits fails
// with [ErrPayloadTooLarge].
func (s *Session) encode(p *wire.Packet, t wire.PacketType, id uint32) ([]byte, error) {
	if err := checkSend(s.cfg.limits, len(p.Ext), len(p.Payload)); err != nil {
		return nil, err
	}
	q := *p
	q.Type, q.MessageID = t, id
	if s.compresses(len(q.Payload)) {
		q = *s.cfg.compressor.Compress(&q)
	}
	return wire.AppendPacket(wire.GetBuffer(q.EncodedLen()), &q)
}

// compresses reports whether a payload of n bytes sent on s is compressed:
// compression is configured, the peer accepts it, and n reaches the
// threshold.
func (s *Session) compresses(n int) bool {
	c := s.cfg.compressor
	return c.Algorithm != wire.CompressionNone && s.peerComp.Load()&(1<<c.Algorithm) != 0 && n >= c.MinSize()
}

// Queued returns the bytes queued for the peer that the writer has not yet
// taken: a backlog that persists means the peer reads slower than it is
// sent to. The session is closed with [ErrSlowConsumer] rather than letting
// the backlog exceed the send queue bound ([WithSendQueueBytes]).
func (s *Session) Queued() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.queued
}

// enqueue queues b, which may be shared with other sessions (a broadcast)
// or the caller (SendEncoded): the writer only reads it.
func (s *Session) enqueue(b []byte) error { return s.queueBuf(b, false) }

// enqueueOwned queues b, which nothing else refers to (a packet this
// session encoded): once written, b's memory goes back to the body pools
// (wire.PutBuffer), so that sending allocates nothing. A buffer that is not
// queued goes back at once.
func (s *Session) enqueueOwned(b []byte) error { return s.queueBuf(b, true) }

func (s *Session) queueBuf(b []byte, owned bool) error {
	s.mu.Lock()
	if s.closed || s.closing {
		s.mu.Unlock()
		if owned {
			wire.PutBuffer(b)
		}
		return fmt.Errorf("%w: session %d", ErrClosed, s.id)
	}
	if queued := s.queued; queued+len(b) > s.cfg.sendQueueBytes {
		s.mu.Unlock()
		if owned {
			wire.PutBuffer(b)
		}
		s.cfg.logger.Warn("msgtrans: closing slow consumer", "session", s.id, "remote", addrString(s.conn.RemoteAddr()), "queued_bytes", queued)
		s.closeWith(ErrSlowConsumer)
		return ErrSlowConsumer
	}
	if owned {
		if s.owned == nil {
			s.owned = getBatch()
		}
		s.owned = append(s.owned, b)
	} else {
		s.sharedQueued = true
	}
	s.pushLocked(b)
	s.mu.Unlock()
	return nil
}

// pushLocked queues b and starts the writer if it is not running. s.mu is held.
func (s *Session) pushLocked(b []byte) {
	if s.queue == nil {
		s.queue = getBatch()
	}
	s.queue = append(s.queue, b)
	s.queued += len(b)
	if !s.writing {
		s.writing = true
		s.wg.Add(1)
		s.work.run(s.writeFn)
	}
}

// batchPools recycle send queues, so that a session whose writer comes and
// goes (it exits whenever the queue drains) does not grow a new queue for
// every burst, while an idle session holds none. A queue is kept as a bare
// pointer to its first element in the pool of its capacity (64 to 512
// entries, powers of two), so that giving one back allocates nothing;
// queues grown to other capacities are left to the garbage collector.
var batchPools [batchClasses]sync.Pool

const (
	minBatchShift = 6 // 64 entries
	batchClasses  = 4 // up to 512
)

// getBatch takes the largest queue the pools have: a queue is only held
// while its session is writing, and a busy session would grow a small one.
func getBatch() [][]byte {
	for class := batchClasses - 1; class >= 0; class-- {
		if v := batchPools[class].Get(); v != nil {
			return unsafe.Slice((*[]byte)(v.(unsafe.Pointer)), 1<<(class+minBatchShift))[:0]
		}
	}
	return make([][]byte, 0, 1<<minBatchShift)
}

// putBatch returns a queue to the pool. Entries beyond a queue's length are
// always nil (a queue only grows by appending, and the writer clears what it
// wrote before reusing a queue), so clearing its length is enough.
func putBatch(b [][]byte) {
	c := cap(b)
	if c == 0 {
		return
	}
	class := bits.Len(uint(c)) - 1 - minBatchShift
	if class < 0 || class >= batchClasses || c != 1<<(class+minBatchShift) {
		return // let an unusually large queue go
	}
	clear(b)
	batchPools[class].Put(unsafe.Pointer(unsafe.SliceData(b[:1])))
}

// writeLoop drains the queue, one WritePackets call per drain. It runs only
// while there is something to write, so an idle session has no writer
// goroutine and holds no queue.
func (s *Session) writeLoop() {
	defer s.wg.Done()
	if s.othersSending() {
		// Let goroutines that are ready to send on this session (request
		// handlers answering a batch of requests, say) queue their
		// packets first, so that they share this write.
		goruntime.Gosched()
	}
	var spare [][]byte // the previous batch, emptied, to queue into next
	var spareOwned [][]byte
	for {
		s.mu.Lock()
		if len(s.queue) == 0 || s.closed {
			s.writing = false
			putBatch(s.queue)
			putBatch(spare)
			// Owned buffers not written (the session closed) are left to
			// the garbage collector.
			putBatch(s.owned)
			putBatch(spareOwned)
			s.queue, s.queued, s.owned = nil, 0, nil
			if s.closing && s.flushed != nil {
				close(s.flushed)
				s.flushed = nil
			}
			s.mu.Unlock()
			return
		}
		batch, owned := s.queue, s.owned
		s.queue, s.queued, s.owned = spare, 0, spareOwned
		if s.queue == nil {
			s.queue = getBatch()
		}
		s.mu.Unlock()

		err := s.refreshWriteDeadline()
		if err == nil {
			err = s.conn.WritePackets(batch)
		}
		if st := s.stats; st != nil && err == nil {
			st.count(batch)
		}
		clear(batch)
		spare = batch[:0]
		// The transport keeps nothing of what it was given ([Conn]).
		for _, b := range owned {
			wire.PutBuffer(b)
		}
		clear(owned)
		spareOwned = owned[:0]
		if err != nil {
			reason := s.writeFailure(err)
			if errors.Is(reason, ErrSlowConsumer) || errors.Is(err, net.ErrClosed) {
				s.closeWith(reason)
				continue
			}
			// The peer is gone (it closed or reset the connection), but
			// what it sent before is still to be read: responses to
			// requests of this side among it. The reader ends the session
			// at the end of that input, failing only what is left
			// unanswered; lingerTime bounds the wait.
			s.stopSending(reason)
		}
	}
}

// othersSending reports whether many goroutines other than the one that
// started the writer are likely to queue packets on s shortly: request
// handlers running, callers awaiting responses (more than one of each), or
// a fan-out (shared encodings, queued by broadcasts going through many
// sessions, one after the other). Only then does the writer yield before
// its first write. A yield is not free: it puts the writer on the global
// run queue and wakes an idle processor to take it, and a session with one
// busy sender (its reader answering one-way messages inline, or a stream's
// handler) gains little batching from it and pays for the thread
// hand-offs: on 2 cores they left a third of the CPU idle (BENCHMARKS.md,
// rawpath and stream). It clears the fan-out mark, which concerns only
// the writer start that sees it.
func (s *Session) othersSending() bool {
	s.mu.Lock()
	shared := s.sharedQueued
	s.sharedQueued = false
	s.mu.Unlock()
	// More than one: a handler that has just answered (and started this
	// writer) may still be counted, and a lone call's own request is
	// pending; a yield would only delay their packets.
	if shared || s.serving.Load() > 1 {
		return true
	}
	s.pmu.Lock()
	calls := s.pending.len()
	s.pmu.Unlock()
	return calls > 1
}

// stopSending ends a session's sending after a write failed because the
// peer is gone: what is queued is dropped and new sends fail as on a
// closing session, while the reader reads what the peer sent before it
// went. The session is closed with reason after lingerTime if its reading
// has not ended it by then.
func (s *Session) stopSending(reason error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closing = true
	clear(s.queue)
	s.queue, s.queued = s.queue[:0], 0
	clear(s.owned)
	s.owned = s.owned[:0]
	s.mu.Unlock()
	time.AfterFunc(lingerTime, func() { s.closeWith(reason) })
}

// refreshWriteDeadline gives the coming write the write timeout. Setting a
// deadline costs about as much as a small write's own work outside the
// system call, so one still at least 7/8 of the timeout away is kept: a
// write then times out between 7/8 of the timeout and all of it after it
// began. Only the writer goroutine calls it.
func (s *Session) refreshWriteDeadline() error {
	now, timeout := time.Now().UnixNano(), int64(s.cfg.writeTimeout)
	if s.writeDeadline-now >= timeout-timeout/8 {
		return nil
	}
	s.writeDeadline = now + timeout
	return s.conn.SetWriteDeadline(time.Unix(0, s.writeDeadline))
}

// writeFailure is the close reason for a failed write: a peer that accepted
// nothing within the write timeout is a slow consumer.
func (s *Session) writeFailure(err error) error {
	if errors.Is(err, net.ErrClosed) {
		// Closed under the writer: by this side (then the session is
		// closed already) or as the peer's close was handled.
		return ErrPeerClosed
	}
	var ne net.Error
	if errors.Is(err, os.ErrDeadlineExceeded) || errors.As(err, &ne) && ne.Timeout() {
		s.cfg.logger.Warn("msgtrans: closing slow consumer", "session", s.id, "remote", addrString(s.conn.RemoteAddr()), "write_timeout", s.cfg.writeTimeout)
		return fmt.Errorf("%w: a write did not complete within %v: %w", ErrSlowConsumer, s.cfg.writeTimeout, err)
	}
	return fmt.Errorf("msgtrans: write: %w", err)
}
