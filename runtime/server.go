package runtime

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/alphadose/haxmap"
	"github.com/msgtrans/msgtrans-go/wire"
)

// Server accepts connections on any number of transports at once and runs
// the same handlers for all of them. It knows its sessions: it can send to
// one, to a group, or to all of them, and call a client and await its reply.
//
// Create one with [NewServer], register handlers, then [Server.Serve] (or
// [Server.Listen] and later [Server.Shutdown]). All methods are safe for
// concurrent use.
type Server struct {
	cfg      *config
	policy   *policy // of every session
	mux      mux
	sessions *haxmap.Map[uint64, *Session]
	count    atomic.Int64
	groups   groups
	users    users
	ids      atomic.Uint32 // message ids of everything the server sends
	nextSess atomic.Uint64
	node     atomic.Uint32 // the node id in the cluster; 0 outside one
	joinMu   sync.Mutex    // serialises joining the cluster
	clock    *clock
	work     *workPool
	poller   *poller // parks idle sessions; made with the first, guarded by mu
	noPoller bool    // none could be made; guarded by mu

	mu        sync.Mutex
	listeners []boundListener
	shutdown  bool
	ticking   bool           // the heartbeat goroutine runs
	open      int            // connections holding a place under the caps
	perIP     map[string]int // of those, per remote host
	stopped   chan struct{}  // closed when Shutdown or Close begins

	refusals     logLimiter // logs of refused connections
	acceptErrors logLimiter // logs of temporary accept errors
	acceptWG     sync.WaitGroup
	// listenersDown counts listeners whose accept loop stopped on an
	// error that does not pass (see Ready).
	listenersDown atomic.Int32
	sessWG        sync.WaitGroup
}

type boundListener struct {
	l      Listener
	scheme string
	addr   string
}

// Session ids are unsigned 64-bit numbers: the high 16 bits name the node in
// a cluster (0 outside one), the low 48 count the node's sessions.
const sessionIDBits = 48

// drainTimeout bounds the graceful shutdown that Serve and a lost cluster
// start.
const drainTimeout = 5 * time.Second

// NewServer returns a server configured by opts, which are checked here:
// any invalid or client-only option makes it fail.
func NewServer(opts ...ServerOption) (*Server, error) {
	cfg, err := newServerConfig(opts)
	if err == nil {
		err = cfg.resolveIdleParking()
	}
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg:      cfg,
		sessions: haxmap.New[uint64, *Session](),
		stopped:  make(chan struct{}),
		clock:    newClock(),
		work:     newWorkPool(),
	}
	s.policy = serverPolicy(cfg, func(sess *Session) {
		s.users.add(sess)
		s.emit(Event{Kind: ConnectionEstablished, Session: sess})
	})
	cfg.obs = newObserving(cfg.observer, SideServer, func(yield func(*Session)) {
		s.sessions.ForEach(func(_ uint64, sess *Session) bool {
			yield(sess)
			return true
		})
	})
	s.groups.changed = func(name string, has bool) { s.interest(name, false, has) }
	s.users.changed = func(identity string, has bool) { s.interest(identity, true, has) }
	return s, nil
}

// Handle registers h for raw packets (no route tag) of the given biz_type,
// replacing any earlier handler; a nil h removes it. Packets with no handler
// go to the [MessageReceived] event.
func (s *Server) Handle(bizType uint8, h Handler) {
	s.cfg.obs.raw(bizType) // the observer's handle, resolved now
	s.mux.handleBiz(bizType, s.cfg.wrap(h))
}

// HandleMethod registers h for the typed method, replacing any earlier
// handler; a nil h removes it. Generated register functions call it.
func (s *Server) HandleMethod(m *Method, h Handler) {
	s.cfg.obs.method(m) // the observer's handle, resolved now
	s.mux.handleMethod(m, s.cfg.wrap(h), nil)
}

// HandleStream registers h for the streaming method, replacing any earlier
// handler; a nil h removes it. Generated register functions call it.
func (s *Server) HandleStream(m *Method, h StreamHandler) {
	s.cfg.obs.method(m)
	s.mux.handleMethod(m, registered{}, s.cfg.wrapStream(h))
}

// Listen starts listening on each address ("tcp://0.0.0.0:7001",
// "ws://0.0.0.0:7002/ws", "quic://0.0.0.0:7003", …) and accepting
// connections in the background. It returns once all are bound, or the
// first error (after closing those already bound). It may be called more
// than once.
func (s *Server) Listen(ctx context.Context, addrs ...string) error {
	if len(addrs) == 0 {
		return errors.New("msgtrans: no listen address given")
	}
	if err := s.startCluster(ctx); err != nil {
		return err
	}
	var bound []boundListener
	fail := func(err error) error {
		for _, b := range bound {
			_ = b.l.Close()
		}
		return err
	}
	for _, a := range addrs {
		t, u, err := lookupTransport(a)
		if err != nil {
			return fail(err)
		}
		tc := s.cfg.transportConfig()
		scheme := u.Scheme
		tc.Admit = func(remote net.Addr) (func(), error) { return s.admit(scheme, remote) }
		if s.cfg.obs != nil {
			tc.Refused = func(why RefuseReason) { s.cfg.obs.refused(scheme, why) }
		}
		l, err := t.Listen(ctx, u, tc)
		if err != nil {
			return fail(err)
		}
		bound = append(bound, boundListener{l: l, scheme: u.Scheme, addr: a})
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shutdown {
		return fail(fmt.Errorf("%w: server is shut down", ErrClosed))
	}
	if !s.ticking {
		s.ticking = true
		s.acceptWG.Add(1)
		go s.heartbeat()
	}
	for _, b := range bound {
		s.listeners = append(s.listeners, b)
		s.acceptWG.Add(1)
		go s.acceptLoop(b)
		s.cfg.logger.Info("msgtrans: listening", "transport", b.scheme, "addr", b.l.Addr().String())
	}
	return nil
}

// Serve listens on the addresses (in addition to any bound earlier with
// [Server.Listen]) and serves until ctx is cancelled, then shuts down
// gracefully as [Server.Shutdown] does, allowing 5 s for queues to flush. It
// returns nil after a shutdown caused by ctx or by a call to Shutdown or
// Close, and the listen error otherwise.
func (s *Server) Serve(ctx context.Context, addrs ...string) error {
	if len(addrs) > 0 || len(s.Addrs()) == 0 {
		if err := s.Listen(ctx, addrs...); err != nil {
			return err
		}
	}
	select {
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return s.Shutdown(sctx)
	case <-s.stopped:
		return nil
	}
}

// Addrs returns the addresses the server listens on, in the order bound,
// as URLs with the actual ports (useful after listening on port 0).
func (s *Server) Addrs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.listeners))
	for _, b := range s.listeners {
		out = append(out, replaceHost(b.addr, b.l.Addr()))
	}
	return out
}

// acceptLoop accepts the listener's connections until it is closed. A
// temporary error (out of file descriptors, say) is retried after a
// growing delay; only an error that will not pass stops the listener.
func (s *Server) acceptLoop(b boundListener) {
	defer s.acceptWG.Done()
	admits := false
	if a, ok := b.l.(Admitter); ok {
		admits = a.AdmitsConnections()
	}
	var retry time.Duration
	for {
		c, err := b.l.Accept()
		if err == nil {
			retry = 0
			s.startSession(c, b.scheme, admits)
			continue
		}
		select {
		case <-s.stopped:
			return
		default:
		}
		if errors.Is(err, net.ErrClosed) || !TemporaryAcceptError(err) {
			if !errors.Is(err, net.ErrClosed) {
				s.cfg.logger.Error("msgtrans: accept failed; listener stopped", "transport", b.scheme, "err", err)
				s.listenersDown.Add(1)
			}
			return
		}
		retry = AcceptRetryDelay(retry)
		s.acceptFailed(b.scheme, err, retry)
		t := time.NewTimer(retry)
		select {
		case <-s.stopped:
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// startSession serves a connection Accept returned. admitted says whether
// its listener took its place under the caps already (see [Admitter]); if
// not, it is taken here.
func (s *Server) startSession(c Conn, scheme string, admitted bool) {
	s.mu.Lock()
	if s.shutdown {
		s.mu.Unlock()
		_ = c.Close()
		return
	}
	s.sessWG.Add(1)
	p := s.pollerLocked()
	s.mu.Unlock()
	release := func() {}
	if !admitted {
		r, err := s.admit(scheme, c.RemoteAddr())
		if err != nil {
			go s.refuse(c, err)
			return
		}
		release = r
	}

	sess := newSession(c, scheme, s.cfg, s.policy, &s.mux, &s.ids, s.clock, s.work)
	sess.id = uint64(s.Node())<<sessionIDBits | s.nextSess.Add(1)&(1<<sessionIDBits-1)
	s.sessions.Set(sess.id, sess)
	s.count.Add(1)
	s.cfg.obs.opened(sess)
	// Only a connection its listener admitted parks: it gives its place
	// back itself, so a parked session keeps nothing of this call.
	if admitted && sess.parkable(s, p, s.cfg.idleParking) {
		// Read by the pool's goroutines while it has data, and by none
		// while parked; resume ends it.
		s.work.run(func() {
			s.beginSession(sess, &sess.parking.authTimer)
			sess.resume()
		})
		return
	}
	go func() {
		var authTimer *time.Timer
		s.beginSession(sess, &authTimer)
		reason := sess.run()
		s.endSession(sess, reason, authTimer, release)
	}()
}

// beginSession makes a new session ready, or starts its authentication
// timer (set in *authTimer), on the goroutine that reads it.
func (s *Server) beginSession(sess *Session, authTimer **time.Timer) {
	if sess.policy.authenticate == nil {
		sess.becomeReady("")
	} else {
		*authTimer = sess.authTimer()
	}
}

// endSession forgets a session that has ended with reason; release (nil
// for a connection its listener admitted) gives its place under the caps
// back.
func (s *Server) endSession(sess *Session, reason error, authTimer *time.Timer, release func()) {
	defer s.sessWG.Done()
	if authTimer != nil {
		authTimer.Stop()
	}
	s.cfg.obs.ended(sess, reason)
	s.groups.leaveAll(sess)
	s.users.remove(sess)
	s.sessions.Del(sess.id)
	s.count.Add(-1)
	if release != nil {
		release()
	}
	if sess.ready.Load() {
		s.emit(Event{Kind: ConnectionClosed, Session: sess, Err: reason})
	}
}

// pollerLocked returns the server's poller, made on first use; nil when
// parking is off or unsupported here. s.mu must be held.
func (s *Server) pollerLocked() *poller {
	if s.poller == nil && !s.noPoller && s.cfg.idleParking > 0 {
		p, err := newPoller(s.wakeSession)
		if err != nil {
			if !errors.Is(err, errors.ErrUnsupported) {
				s.cfg.logger.Warn("msgtrans: no poller for idle sessions; each keeps a reader goroutine", "err", err)
			}
			s.noPoller = true
			return nil
		}
		s.poller = p
	}
	return s.poller
}

// wakeSession takes up the parked session with the id, whose socket is
// ready; an id whose session has ended is ignored.
func (s *Server) wakeSession(id uint64) {
	if sess, ok := s.sessions.Get(id); ok {
		sess.wake()
	}
}

// closePoller closes the poller, once no session is left to park.
func (s *Server) closePoller() {
	s.mu.Lock()
	p := s.poller
	s.poller = nil
	s.mu.Unlock()
	if p != nil {
		p.close()
	}
}

// refuse tells a connection over the caps why it is refused (a go-away
// carrying the status, which a msgtrans-go client reports as its close
// reason) and closes it.
func (s *Server) refuse(c Conn, why error) {
	defer s.sessWG.Done()
	p := refusalPacket(why, RefusalRetryAfter)
	p.MessageID = s.nextID()
	if b, err := wire.AppendPacket(nil, p); err == nil && c.SetWriteDeadline(time.Now().Add(time.Second)) == nil {
		_ = c.WritePackets([][]byte{b})
	}
	// Read until the peer closes (a msgtrans-go client does on reading the
	// refusal) or a second passes: closing with unread input would reset
	// the connection and could destroy the refusal before it is read.
	t := time.AfterFunc(time.Second, func() { _ = c.Close() })
	for {
		if _, err := c.ReadPacket(); err != nil {
			break
		}
	}
	t.Stop()
	_ = c.Close()
	if r, ok := c.(Releaser); ok {
		<-r.Released()
	}
}

func (s *Server) emit(e Event) {
	if s.cfg.onEvent != nil {
		s.cfg.onEvent(e)
	}
}

// Session returns the open session with the id.
func (s *Server) Session(id uint64) (*Session, bool) { return s.sessions.Get(id) }

// Sessions returns the open sessions, in no particular order.
func (s *Server) Sessions() []*Session {
	out := make([]*Session, 0, s.count.Load())
	s.sessions.ForEach(func(_ uint64, v *Session) bool {
		out = append(out, v)
		return true
	})
	return out
}

// SessionCount returns the number of open sessions.
func (s *Server) SessionCount() int { return int(s.count.Load()) }

// Send sends p as a OneWay packet to the session with the id: [Server.Push]
// to [ToSession](id).
func (s *Server) Send(id uint64, p *wire.Packet) error {
	_, err := s.Push(context.Background(), ToSession(id), p)
	return err
}

// Request sends p as a Request to the session with the id and waits for the
// response, as [Session.Request] does; a session that is not there fails
// with CodeNotFound.
func (s *Server) Request(ctx context.Context, id uint64, p *wire.Packet) (*wire.Packet, error) {
	if !s.local(id) {
		if _, ok := ctx.Deadline(); !ok {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, s.cfg.requestTimeout)
			defer cancel()
		}
		return s.callRemote(ctx, id, p)
	}
	sess, err := s.session(id)
	if err != nil {
		return nil, err
	}
	return sess.Request(ctx, p)
}

// session returns the open session with the id, or a CodeNotFound error.
func (s *Server) session(id uint64) (*Session, error) {
	if sess, ok := s.sessions.Get(id); ok && sess.ready.Load() {
		return sess, nil
	}
	return nil, Errorf(CodeNotFound, "no session %d", id)
}

// CloseSession closes the session with the id. It reports whether there was
// such a session.
func (s *Server) CloseSession(id uint64) bool {
	sess, ok := s.sessions.Get(id)
	if ok {
		_ = sess.Close()
	}
	return ok
}

func (s *Server) nextID() uint32 {
	for {
		if id := s.ids.Add(1); id != 0 {
			return id
		}
	}
}

// Shutdown stops accepting, tells every client the server is going away
// (spread over the lame-duck window, see [WithLameDuck]),
// lets the request handlers already running finish (requests arriving after
// the go-away are answered CodeUnavailable), lets each session flush what is
// queued, closes the sessions, and returns once every goroutine the server
// started has exited. If ctx ends first,
// the remaining sessions are closed at once and ctx's error is returned
// after they have exited.
func (s *Server) Shutdown(ctx context.Context) error {
	if !s.stop() {
		s.sessWG.Wait()
		s.closePoller()
		s.work.close()
		return nil
	}
	var wg sync.WaitGroup
	sessions := s.Sessions()
	for i, sess := range sessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if d := s.cfg.lameDuck * time.Duration(i) / time.Duration(len(sessions)); d > 0 {
				t := time.NewTimer(d)
				select {
				case <-t.C:
				case <-ctx.Done():
					t.Stop()
				}
			}
			_ = sess.Send(controlPacket(wire.ControlGoAway, nil))
			sess.drain(ctx)
			sess.closeFlushed(ctx, ErrServerShutdown, nil)
		}()
	}
	wg.Wait()
	s.sessWG.Wait()
	s.closePoller()
	s.work.close()
	s.stopCluster(ctx)
	return ctx.Err()
}

// Close stops accepting and closes every session at once, then waits for
// the server's goroutines to exit.
func (s *Server) Close() error {
	s.stop()
	for _, sess := range s.Sessions() {
		sess.closeWith(ErrServerShutdown)
	}
	s.sessWG.Wait()
	s.closePoller()
	s.work.close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	s.stopCluster(ctx)
	return nil
}

// stop closes the listeners and waits for the accept loops; it reports
// whether this call did it.
func (s *Server) stop() bool {
	s.mu.Lock()
	if s.shutdown {
		s.mu.Unlock()
		return false
	}
	s.shutdown = true
	close(s.stopped)
	ls := s.listeners
	s.listeners = nil
	s.mu.Unlock()
	for _, b := range ls {
		_ = b.l.Close()
	}
	s.acceptWG.Wait()
	return true
}

// replaceHost returns addr with its host:port replaced by a's.
func replaceHost(addr string, a net.Addr) string {
	_, u, err := lookupTransport(addr)
	if err != nil || a == nil {
		return addr
	}
	if _, _, err := net.SplitHostPort(a.String()); err == nil {
		u.Host = a.String()
	}
	return u.String()
}
