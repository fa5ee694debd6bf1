package chatserver

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	chatv1 "github.com/msgtrans/msgtrans-go/examples/chat/gen/chat/v1"
	"github.com/msgtrans/msgtrans-go/runtime"
)

// DefaultListen are the addresses a server listens on when
// [Config.Listen] is empty: TCP, WebSocket and QUIC on the loopback
// interface.
var DefaultListen = []string{"tcp://127.0.0.1:7001", "ws://127.0.0.1:7002/ws", "quic://127.0.0.1:7003"}

// Defaults of [Config].
const (
	DefaultHistorySize = 50
	// DefaultMaxHistoryBytes is 64 MiB: about 15,000 messages of the
	// longest kind, 300 rooms' worth.
	DefaultMaxHistoryBytes = 64 << 20
	DefaultPingInterval    = 30 * time.Second
	DefaultPingTimeout     = 10 * time.Second
	// ShutdownGrace is how long [Server.Serve] lets sessions flush their
	// queues when its context ends.
	ShutdownGrace = 5 * time.Second
)

// Config configures a [Server]. The zero value serves [DefaultListen] with
// a development certificate.
type Config struct {
	// Listen lists the addresses to listen on, as URLs: tcp://, tls://,
	// ws://, wss://, quic:// (any scheme whose transport is registered).
	// Default [DefaultListen].
	Listen []string
	// TLS holds the certificate for tls://, wss:// and quic:// listeners.
	// When it is nil and a listener needs one, the server makes a
	// development certificate for localhost, 127.0.0.1 and ::1, signed by a
	// throw-away CA, at start-up (valid for 30 days) and logs that it did;
	// clients then verify it with the CA kept in DevCertDir, or skip
	// verification.
	TLS *tls.Config
	// DevCertDir keeps the development certificate (cert.pem, key.pem) and
	// its CA (ca.pem, for clients' -ca), so that a restarted server presents
	// the same certificate and connected clients can reconnect. Empty: a new
	// certificate at every start, kept nowhere.
	DevCertDir string
	// Logger receives the server's structured logs and the runtime's.
	// Default slog.Default().
	Logger *slog.Logger
	// HistorySize is how many of its latest messages each room keeps for
	// members who join later. Default [DefaultHistorySize].
	HistorySize int
	// MaxHistoryBytes bounds what the histories of all rooms keep together,
	// counting each message as its text, nick and room plus 200 bytes. A
	// message that does not fit evicts its own room's oldest messages; if
	// it does not fit once its room keeps nothing, members receive it but
	// it is not kept. Default [DefaultMaxHistoryBytes].
	MaxHistoryBytes int64
	// PingInterval is how often the server calls every client's Ping. A
	// client that does not answer within PingTimeout is disconnected.
	// Default [DefaultPingInterval]; negative turns periodic pings off.
	PingInterval time.Duration
	// PingTimeout bounds each ping. Default [DefaultPingTimeout].
	PingTimeout time.Duration
	// Cluster, when set, makes the server one node of a chat spread over
	// several processes on one NATS system (see [ClusterConfig]).
	Cluster *ClusterConfig
	// Options are more options for the runtime server: caps, rate limits,
	// heartbeats (see package runtime).
	Options []runtime.ServerOption
	// MetricsAddr, when set ("127.0.0.1:9090"), is where the server serves
	// its operations endpoint while it runs: /metrics (Prometheus: the
	// runtime's metrics through package promobserve, and the Go runtime's
	// and the process's), /healthz and /readyz (see [Server.OpsHandler]).
	// It is up before the chat's listeners and down after the drain, so
	// that /readyz answers 503 meanwhile.
	MetricsAddr string
}

// Server is a chat server. Create one with [New], then [Server.Serve] (or
// [Server.Start] and later [Server.Shutdown]). It implements
// [chatv1.ChatServiceHandler], registered on its runtime server by [New].
//
// All methods are safe for concurrent use.
type Server struct {
	cfg    Config
	log    *slog.Logger
	rt     *runtime.Server
	events *chatv1.ChatEventsServicePusher
	peers  *peers // the other nodes of a clustered chat; nil for a single server

	// mu serialises membership changes (join, leave, nick, disconnect) and
	// guards rooms. Lock order: mu, then a room's mu.
	mu    sync.Mutex
	rooms map[string]*room

	historyBudget budget // shared by the histories of all rooms

	watch watchers // the Watch streams, by room

	ops *ops // the operations endpoint; nil without Config.MetricsAddr

	pingSeq  atomic.Uint64
	stopping atomic.Bool // set when shutdown begins: departures are not announced

	life     sync.Mutex
	started  bool
	stopped  chan struct{} // closed when Shutdown or Close begins
	stopPing context.CancelFunc
	pingWG   sync.WaitGroup
}

var _ chatv1.ChatServiceHandler = (*Server)(nil)

// New returns a server configured by cfg, with the chat service registered.
// It does not listen yet.
func New(cfg Config) (*Server, error) {
	cfg.Listen = slices.Clone(cfg.Listen)
	if len(cfg.Listen) == 0 {
		cfg.Listen = slices.Clone(DefaultListen)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	switch {
	case cfg.HistorySize < 0:
		return nil, fmt.Errorf("chatserver: negative history size %d", cfg.HistorySize)
	case cfg.HistorySize == 0:
		cfg.HistorySize = DefaultHistorySize
	}
	switch {
	case cfg.MaxHistoryBytes < 0:
		return nil, fmt.Errorf("chatserver: negative history budget %d", cfg.MaxHistoryBytes)
	case cfg.MaxHistoryBytes == 0:
		cfg.MaxHistoryBytes = DefaultMaxHistoryBytes
	}
	if cfg.PingInterval == 0 {
		cfg.PingInterval = DefaultPingInterval
	}
	switch {
	case cfg.PingTimeout < 0:
		return nil, fmt.Errorf("chatserver: negative ping timeout %v", cfg.PingTimeout)
	case cfg.PingTimeout == 0:
		cfg.PingTimeout = DefaultPingTimeout
	}
	if cfg.TLS == nil && needsTLS(cfg.Listen) {
		// testcert makes exactly the development certificate we want: a
		// throw-away CA and a certificate for localhost, 127.0.0.1 and ::1.
		dev, reused, err := devCertificate(cfg.DevCertDir)
		if err != nil {
			return nil, err
		}
		cfg.TLS = dev
		how := "clients must skip verification (-insecure)"
		if cfg.DevCertDir != "" {
			how = "clients verify it with -ca " + filepath.Join(cfg.DevCertDir, devCAFile) + " or skip verification with -insecure"
			if reused {
				how = "reused from " + cfg.DevCertDir + "; " + how
			}
		}
		cfg.Logger.Warn("no TLS certificate configured: using a development certificate for localhost, 127.0.0.1 and ::1; " + how)
	}

	s := &Server{
		cfg:     cfg,
		log:     cfg.Logger,
		rooms:   make(map[string]*room),
		stopped: make(chan struct{}),
	}
	s.historyBudget.max = cfg.MaxHistoryBytes
	opts := append([]runtime.ServerOption{runtime.WithLogger(cfg.Logger), runtime.WithEventHandler(s.onEvent)}, cfg.Options...)
	if cfg.TLS != nil {
		opts = append(opts, runtime.WithTLS(cfg.TLS))
	}
	if cfg.MetricsAddr != "" {
		o, opt, err := newOps()
		if err != nil {
			return nil, err
		}
		s.ops = o
		opts = append(opts, opt)
	}
	if cfg.Cluster != nil {
		if cfg.Cluster.NATS == nil {
			return nil, errors.New("chatserver: a cluster needs a NATS connection")
		}
		opt, p, err := clusterOptions(cfg.Cluster, cfg.Logger)
		if err != nil {
			return nil, err
		}
		opts = append(opts, opt)
		s.peers = p
	}
	rt, err := runtime.NewServer(opts...)
	if err != nil {
		return nil, err
	}
	s.rt = rt
	if s.peers != nil {
		s.peers.rt = rt
	}
	s.events = chatv1.NewChatEventsServicePusher(rt)
	chatv1.RegisterChatServiceHandler(rt, s)
	return s, nil
}

// needsTLS reports whether any of the addresses is for a transport that
// needs a certificate.
func needsTLS(addrs []string) bool {
	for _, a := range addrs {
		if u, err := url.Parse(a); err == nil {
			switch u.Scheme {
			case "tls", "wss", "quic":
				return true
			}
		}
	}
	return false
}

// Start listens on the configured addresses and starts the periodic pings.
// It returns once every listener is bound, or with the first error. A
// server starts once.
func (s *Server) Start(ctx context.Context) error { return s.start(ctx, false) }

func (s *Server) start(ctx context.Context, again bool) error {
	s.life.Lock()
	defer s.life.Unlock()
	if s.started {
		if again {
			return nil
		}
		return errors.New("chatserver: already started")
	}
	select {
	case <-s.stopped:
		return fmt.Errorf("chatserver: %w", runtime.ErrClosed)
	default:
	}
	if s.ops != nil && s.ops.srv == nil {
		if err := s.startOps(); err != nil {
			return err
		}
	}
	if err := s.rt.Listen(ctx, s.cfg.Listen...); err != nil {
		s.stopOps()
		return err
	}
	if s.peers != nil {
		if err := s.peers.serve(s); err != nil {
			return err
		}
	}
	s.started = true
	if s.cfg.PingInterval > 0 {
		pctx, cancel := context.WithCancel(context.Background())
		s.stopPing = cancel
		s.pingWG.Add(1)
		go s.pingLoop(pctx)
	}
	s.log.Info("chat server ready", "addrs", s.rt.Addrs(), "history", s.cfg.HistorySize, "history_bytes", s.cfg.MaxHistoryBytes, "ping_interval", s.cfg.PingInterval, "node", s.rt.Node())
	return nil
}

// Serve starts the server (unless [Server.Start] did already) and serves
// until ctx is cancelled, then shuts down gracefully, allowing
// [ShutdownGrace] for queues to flush. It returns nil after a shutdown
// caused by ctx or by a call to Shutdown or Close.
func (s *Server) Serve(ctx context.Context) error {
	if err := s.start(ctx, true); err != nil {
		return err
	}
	select {
	case <-ctx.Done():
	case <-s.stopped:
		return nil
	}
	sctx, cancel := context.WithTimeout(context.Background(), ShutdownGrace)
	defer cancel()
	return s.Shutdown(sctx)
}

// Run is [New] followed by [Server.Serve].
func Run(ctx context.Context, cfg Config) error {
	s, err := New(cfg)
	if err != nil {
		return err
	}
	return s.Serve(ctx)
}

// Addrs returns the addresses the server listens on, with the actual ports
// (useful after listening on port 0).
func (s *Server) Addrs() []string { return s.rt.Addrs() }

// Shutdown stops accepting, tells every client that the server is going
// away (clients reconnect by themselves), lets each session flush what is
// queued, and returns once every session has closed. If ctx ends first,
// the remaining sessions are closed at once and ctx's error is returned.
func (s *Server) Shutdown(ctx context.Context) error {
	s.beginStop()
	s.log.Info("chat server shutting down", "sessions", s.rt.SessionCount())
	defer s.stopOps()
	return s.rt.Shutdown(ctx)
}

// Close closes every session at once and stops the server.
func (s *Server) Close() error {
	s.beginStop()
	defer s.stopOps()
	return s.rt.Close()
}

// beginStop marks the server as stopping and stops the pings.
func (s *Server) beginStop() {
	s.life.Lock()
	if !s.stopping.Swap(true) {
		close(s.stopped)
	}
	stop := s.stopPing
	s.life.Unlock()
	if stop != nil {
		stop()
	}
	s.pingWG.Wait()
	if s.peers != nil {
		s.peers.stop()
	}
}

// Disconnect closes the session with the id, as a moderator's kick would;
// its room hears that it left. A msgtrans client reconnects by itself. It
// reports whether there was such a session.
func (s *Server) Disconnect(sessionID uint64) bool { return s.rt.CloseSession(sessionID) }

// Member describes one member of a room.
type Member struct {
	// SessionID is the member's session, as in [Server.Ping].
	SessionID uint64
	// Nick is the member's nick.
	Nick string
	// Transport is the URL scheme the member connected by ("tcp", "ws", …).
	Transport string
}

// Members returns the members of a room, sorted by nick (then by session).
func (s *Server) Members(room string) []Member {
	sessions := s.rt.Members(room)
	out := make([]Member, 0, len(sessions))
	for _, sess := range sessions {
		out = append(out, Member{SessionID: sess.ID(), Nick: nickOf(sess), Transport: sess.Transport()})
	}
	slices.SortFunc(out, func(a, b Member) int {
		return cmp.Or(strings.Compare(a.Nick, b.Nick), cmp.Compare(a.SessionID, b.SessionID))
	})
	return out
}

// onEvent logs sessions opening and closing, and makes a closed session
// leave its room. The runtime calls it on the session's goroutine after the
// session's handlers have returned.
func (s *Server) onEvent(e runtime.Event) {
	switch e.Kind {
	case runtime.ConnectionEstablished:
		s.log.Info("session opened", sessionAttrs(e.Session)...)
	case runtime.ConnectionClosed:
		s.sessionClosed(e.Session, e.Err)
	case runtime.MessageReceived:
		s.log.Debug("raw packet ignored", "session", e.Session.ID(), "biz_type", e.Packet.BizType)
	}
}

func (s *Server) sessionClosed(sess *runtime.Session, reason error) {
	s.mu.Lock()
	if r := roomOf(sess); r != nil {
		s.leaveLocked(sess, r, "disconnected", !s.stopping.Load())
	}
	s.mu.Unlock()
	reasonText := "closed"
	if reason != nil {
		reasonText = reason.Error()
	}
	s.log.Info("session closed", append(sessionAttrs(sess), "nick", nickOf(sess), "reason", reasonText)...)
}

func sessionAttrs(sess *runtime.Session) []any {
	remote := ""
	if a := sess.RemoteAddr(); a != nil {
		remote = a.String()
	}
	return []any{"session", sess.ID(), "transport", sess.Transport(), "remote", remote}
}
