package runtime

import (
	"errors"
	"fmt"
	"sync"

	"github.com/msgtrans/msgtrans-go/wire"
)

// receive dispatches one packet. An error closes the connection.
//
// What a packet may cost is checked before it is spent: the rate limit
// before anything else, and the decompression budget before inflating;
// payloads nobody will read are never inflated.
func (s *Session) receive(in *inbound) error {
	p := &in.p
	if st := s.stats; st != nil {
		st.packetsIn.Add(1)
		st.bytesIn.Add(uint64(wire.HeaderSize + len(p.Ext) + len(p.Payload)))
	}
	if s.lingering.Load() {
		return nil // closing: only waiting for the peer to close too
	}
	s.lastRecv.Store(s.clock.now.Load())
	authenticating := !s.ready.Load()
	if authenticating {
		// The authenticator may keep what it is shown, the ext header's
		// credentials included: a lent packet is copied before its ext
		// header is parsed.
		in.handOver()
	}
	// A raw packet has the zero Ext: no route, status OK.
	var ext wire.Ext
	var notUnderstood *wire.CriticalFieldError
	if wire.IsTypedExt(p) {
		// Sound bytes asking for something this side does not do are
		// refused below, this packet alone, once admitted like any other;
		// nothing of their ext header is used.
		if e, err := wire.ParseExt(p.Ext); err == nil {
			ext = e
		} else if notUnderstood = criticalField(err); notUnderstood == nil {
			return err
		}
	}
	isControl := ext.HasRoute && ext.Route == wire.ControlRoute && p.Type == wire.OneWay
	if authenticating {
		identity, err := s.authenticate(p, ext, isControl && ext.Control == wire.ControlHello)
		if err != nil {
			if errors.Is(err, ErrNotAuthenticated) {
				return err
			}
			s.cfg.obs.refused(s.scheme, RefuseUnauthenticated)
			s.refuse(err)
			return errRefused
		}
		s.becomeReady(identity)
	}
	// Every packet counts toward the rate limit but the pings the
	// heartbeat needs, which the ping-flood rule bounds.
	if !isControl || ext.Control != wire.ControlPing {
		if ok, err := s.admit(); !ok {
			if err == nil {
				s.overLimit(p)
			}
			return err
		}
	}
	if notUnderstood != nil {
		s.refuseNotUnderstood(p, notUnderstood)
		return nil
	}
	if isControl {
		if p.Compression != wire.CompressionNone {
			return fmt.Errorf("%w: control packet with a %s payload", wire.ErrProtocol, p.Compression)
		}
		return s.control(p, ext.Control)
	}
	if ext.HasStream {
		if p.Type != wire.OneWay {
			return fmt.Errorf("%w: a stream frame in a %s packet", wire.ErrProtocol, p.Type)
		}
		in.keepPayload() // a stream's queue may hold it
		if p.Compression != wire.CompressionNone {
			if err := s.inflate(p); err != nil {
				return err
			}
		}
		s.streamFrame(p, ext)
		return nil
	}
	var h registered
	var m *Method
	if p.Type != wire.Response {
		h, m = s.handlerFor(p, ext)
	}
	if h.h == nil && ext.HasRoute && p.Type == wire.Request {
		if sh := s.mux.streamHandler(ext.Route); sh != nil {
			if p.Compression != wire.CompressionNone {
				if err := s.inflate(p); err != nil {
					return err
				}
			}
			in.handOver()
			return s.acceptStream(in, ext, sh, m)
		}
	}
	if p.Compression != wire.CompressionNone && s.reads(p, h.h) {
		if err := s.inflate(p); err != nil {
			return err
		}
	}
	switch p.Type {
	case wire.Response:
		// A stream that ends keeps its final packet; a waiting call gets a
		// copy of it, which owns the packet's memory from then on.
		if s.endOpened(p, ext) {
			in.handOver()
		} else {
			s.complete(p, ext)
		}
		return nil
	case wire.Request:
		if !s.takeSlot() {
			return nil // closing
		}
		// Checked and counted under mu, so that drain, which sets draining
		// under mu, waits for exactly the requests accepted before it.
		s.mu.Lock()
		if s.draining {
			s.mu.Unlock()
			<-s.inflight
			s.answer(p, nil, Errorf(CodeUnavailable, "server is shutting down"))
			return nil
		}
		s.handlers.Add(1)
		s.mu.Unlock()
		s.wg.Add(1)
		// The packet moves to an inbound of the task's, which releases
		// it; the read loop releases the emptied one.
		t := requestTasks.Get().(*requestTask)
		t.s, t.in, t.ext, t.h, t.m = s, newInbound(in.p), ext, h, m
		t.in.keep, in.p = in.keep, wire.Packet{}
		s.serving.Add(1)
		s.work.run(t.fn)
		return nil
	default:
		s.serve(in, ext, h, m)
		return nil
	}
}

// requestTask is a request being served on the session's work pool: its
// packet and what dispatch found for it. Tasks are pooled, each with its
// run method bound once, so that handing a request to the pool allocates
// nothing.
type requestTask struct {
	s   *Session
	in  *inbound
	ext wire.Ext
	h   registered
	m   *Method
	fn  func() // run
}

var requestTasks sync.Pool

func init() {
	// Set here: New refers to run, which gives tasks back to the pool.
	requestTasks.New = func() any {
		t := new(requestTask)
		t.fn = t.run
		return t
	}
}

func (t *requestTask) run() {
	s := t.s
	defer s.wg.Done()
	defer s.handlers.Done()
	defer func() { <-s.inflight }()
	s.serve(t.in, t.ext, t.h, t.m)
	s.serving.Add(-1)
	t.in.release()
	*t = requestTask{fn: t.fn}
	requestTasks.Put(t)
}

// overLimit handles a packet the rate limit refused: a request is answered
// resource_exhausted, a one-way packet counted as dropped, anything else
// dropped.
func (s *Session) overLimit(p *wire.Packet) {
	switch p.Type {
	case wire.Request:
		s.answer(p, nil, Errorf(CodeResourceExhausted, "rate limit of %g packets a second exceeded", s.cfg.rateLimit))
	case wire.OneWay:
		s.dropped.Add(1)
	}
}

// refuseNotUnderstood refuses a packet whose ext header holds a
// must-understand field (or a stream op) this side does not know, and
// keeps the connection: a request is answered unimplemented, a response
// fails the call or stream it answers with that status, a one-way packet
// (a stream frame, say) is dropped. Its payload is never read.
func (s *Session) refuseNotUnderstood(p *wire.Packet, why *wire.CriticalFieldError) {
	s.notUnderstood.Add(1)
	status := wire.Ext{Code: CodeUnimplemented, Message: "not understood: " + why.Detail()}
	switch p.Type {
	case wire.Request:
		s.answer(p, nil, NewError(status.Code, status.Message))
	case wire.Response:
		p.Payload, p.Compression = nil, wire.CompressionNone
		if !s.endOpened(p, status) {
			s.complete(p, status)
		}
	default:
		s.cfg.logger.Debug("msgtrans: one-way packet not understood, dropped", "session", s.id, "err", why)
	}
}

// criticalField returns the [wire.CriticalFieldError] in err's chain, if
// any. Apart from receive, so that the hot path allocates nothing for it.
func criticalField(err error) *wire.CriticalFieldError {
	var ce *wire.CriticalFieldError
	if errors.As(err, &ce) {
		return ce
	}
	return nil
}

// NotUnderstood returns how many packets from the peer were refused
// because their ext header holds a must-understand field, or a stream op,
// that this side does not know (see docs/wire.md). Such a packet is
// refused alone; the connection stays.
func (s *Session) NotUnderstood() int64 { return s.notUnderstood.Load() }

// reads reports whether anything will read the payload of p, whose handler
// is h: a pending request for a response, a handler, or the event handler
// for a one-way packet nobody handles.
func (s *Session) reads(p *wire.Packet, h Handler) bool {
	switch {
	case p.Type == wire.Response:
		s.pmu.Lock()
		_, ok := s.pending.get(p.MessageID)
		s.pmu.Unlock()
		if !ok {
			s.streams.mu.Lock()
			_, ok = s.streams.opened[p.MessageID]
			s.streams.mu.Unlock()
		}
		return ok
	case h != nil:
		return true
	}
	return p.Type == wire.OneWay && s.cfg.onEvent != nil
}
