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
