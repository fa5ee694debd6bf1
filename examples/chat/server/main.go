package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/msgtrans/msgtrans-go/examples/chat/chatserver"
	"github.com/msgtrans/msgtrans-go/runtime"
	_ "github.com/msgtrans/msgtrans-go/transports/all" // tcp, tls, ws, wss, quic
	"github.com/nats-io/nats.go"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stderr))
}

// run is the whole command; it returns the exit status.
func run(ctx context.Context, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("server", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: server [flags]\n\nRuns the msgtrans-go chat server.\n\n")
		fs.PrintDefaults()
	}
	listen := fs.String("listen", strings.Join(chatserver.DefaultListen, ","), "comma-separated `URLs` to listen on: tcp://, tls://, ws://, wss://, quic://")
	certFile := fs.String("tls-cert", "", "TLS certificate `file` (PEM) for tls://, wss:// and quic://; without it a development certificate is made")
	keyFile := fs.String("tls-key", "", "TLS private key `file` (PEM) of -tls-cert")
	devDir := fs.String("dev-cert-dir", filepath.Join(os.TempDir(), "msgtrans-chat-dev"), "`directory` keeping the development certificate and its CA (ca.pem, for clients' -ca) across restarts; empty: a new one each start")
	history := fs.Int("history", chatserver.DefaultHistorySize, "messages each room keeps for members who join later")
	historyBytes := fs.Int64("history-bytes", chatserver.DefaultMaxHistoryBytes, "`bytes` the histories of all rooms keep together; beyond it a room forgets its oldest messages")
	pingInterval := fs.Duration("ping-interval", chatserver.DefaultPingInterval, "how often to ping every client (0 for the default, negative for never)")
	pingTimeout := fs.Duration("ping-timeout", chatserver.DefaultPingTimeout, "how long a client has to answer a ping before it is disconnected")
	natsURL := fs.String("nats", "", "NATS `URL` (nats://host:4222): join the chat of every server on that NATS system, as one node")
	nodeID := fs.Uint("node-id", 0, "this server's node `id` in the cluster, 1 to 65535 (0: pick a free one)")
	natsPrefix := fs.String("nats-prefix", "chat", "NATS subject `prefix` of this chat's cluster")
	maxConns := fs.Int("max-conns", runtime.DefaultMaxConns, "connections the server holds at most")
	maxConnsPerIP := fs.Int("max-conns-per-ip", runtime.DefaultMaxConnsPerIP, "connections from one host (IPv6: one /64) at most")
	rateLimit := fs.Float64("rate-limit", runtime.DefaultRateLimit, "packets a second each session may send (a token bucket; see -rate-burst)")
	rateBurst := fs.Int("rate-burst", runtime.DefaultRateBurst, "burst of -rate-limit, in packets")
	origins := fs.String("allowed-origins", "", "comma-separated web `origins` (https://chat.example.com) whose pages may open WebSocket connections; empty: every origin")
	writeTimeout := fs.Duration("write-timeout", runtime.DefaultWriteTimeout, "how long a write to a client may take before it is closed as a slow consumer")
	sendQueue := fs.Int("send-queue-bytes", runtime.DefaultSendQueueBytes, "`bytes` queued for one client at most before it is closed as a slow consumer")
	hbInterval := fs.Duration("heartbeat-interval", runtime.DefaultHeartbeatInterval, "how often clients ping (the runtime's heartbeat)")
	hbTimeout := fs.Duration("heartbeat-timeout", runtime.DefaultHeartbeatTimeout, "a client silent this long is disconnected; more than -heartbeat-interval")
	metricsAddr := fs.String("metrics", "", "`address` (127.0.0.1:9090) of an HTTP endpoint serving /metrics (Prometheus), /healthz and /readyz; empty: none")
	logLevel := fs.String("log-level", "info", "log `level`: debug, info, warn or error")
	logJSON := fs.Bool("log-json", false, "log JSON instead of text")
	httpAddr := fs.String("http", DefaultHTTP, "`address` to serve the chat's web page on (HTTPS with -tls-cert); empty: no page")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	usageError := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "server: "+format+"\n", a...)
		fs.Usage()
		return 2
	}
	if fs.NArg() > 0 {
		return usageError("unexpected argument %q", fs.Arg(0))
	}
	var addrs []string
	for a := range strings.SplitSeq(*listen, ",") {
		if a = strings.TrimSpace(a); a != "" {
			addrs = append(addrs, a)
		}
	}
	if len(addrs) == 0 {
		return usageError("-listen names no address")
	}
	if (*certFile == "") != (*keyFile == "") {
		return usageError("-tls-cert and -tls-key go together")
	}
	if *history < 0 || *historyBytes < 0 || *pingTimeout < 0 || *maxConns < 0 || *maxConnsPerIP < 0 {
		return usageError("-history, -history-bytes, -ping-timeout, -max-conns and -max-conns-per-ip must not be negative")
	}
	if *rateLimit <= 0 || *rateBurst <= 0 || *writeTimeout <= 0 || *sendQueue <= 0 || *hbInterval <= 0 || *hbTimeout <= *hbInterval {
		return usageError("-rate-limit, -rate-burst, -write-timeout, -send-queue-bytes and -heartbeat-interval must be positive, and -heartbeat-timeout more than -heartbeat-interval")
	}
	var allowed []string
	for o := range strings.SplitSeq(*origins, ",") {
		if o = strings.TrimSpace(o); o != "" {
			allowed = append(allowed, o)
		}
	}
	if len(allowed) > 0 && *httpAddr != "" {
		// The chat's own page stays allowed (page.go).
		allowed = append(allowed, pageOrigins(*httpAddr, *certFile != "")...)
	}
	if *nodeID > 65535 || (*nodeID != 0 && *natsURL == "") {
		return usageError("-node-id is a number from 1 to 65535, for a server with -nats")
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return usageError("-log-level: %v", err)
	}
	hopts := &slog.HandlerOptions{Level: level}
	var handler slog.Handler = slog.NewTextHandler(stderr, hopts)
	if *logJSON {
		handler = slog.NewJSONHandler(stderr, hopts)
	}
	logger := slog.New(handler)

	cfg := chatserver.Config{
		Listen:          addrs,
		Logger:          logger,
		HistorySize:     *history,
		MaxHistoryBytes: *historyBytes,
		PingInterval:    *pingInterval,
		PingTimeout:     *pingTimeout,
		DevCertDir:      *devDir,
		MetricsAddr:     *metricsAddr,
		Options: []runtime.ServerOption{
			runtime.WithMaxConnections(*maxConns), runtime.WithMaxConnectionsPerIP(*maxConnsPerIP),
			runtime.WithRateLimit(*rateLimit, *rateBurst), runtime.WithWriteTimeout(*writeTimeout),
			runtime.WithSendQueueBytes(*sendQueue), runtime.WithHeartbeat(*hbInterval, *hbTimeout),
		},
	}
	if len(allowed) > 0 {
		cfg.Options = append(cfg.Options, runtime.WithAllowedOrigins(allowed...))
	}
	if *natsURL != "" {
		nc, err := nats.Connect(*natsURL, nats.Name("msgtrans chat server"), nats.MaxReconnects(-1), nats.ReconnectBufSize(-1))
		if err != nil {
			logger.Error("connecting to NATS", "url", *natsURL, "err", err)
			return 1
		}
		// Closed after the server, which leaves the cluster as it stops.
		defer nc.Close()
		cfg.Cluster = &chatserver.ClusterConfig{NATS: nc, NodeID: uint16(*nodeID), Prefix: *natsPrefix}
	}
	if *certFile != "" {
		cert, err := tls.LoadX509KeyPair(*certFile, *keyFile)
		if err != nil {
			logger.Error("loading the TLS certificate", "cert", *certFile, "key", *keyFile, "err", err)
			return 1
		}
		cfg.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	if err := serve(ctx, cfg, *httpAddr, cfg.TLS, logger); err != nil {
		logger.Error("chat server failed", "err", err)
		return 1
	}
	logger.Info("chat server stopped")
	return 0
}
