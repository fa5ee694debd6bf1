package chatserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/msgtrans/msgtrans-go/observe/promobserve"
	"github.com/msgtrans/msgtrans-go/runtime"
)

// ops is the server's operations endpoint (Config.MetricsAddr).
type ops struct {
	reg  *prometheus.Registry
	srv  *http.Server
	addr net.Addr
	done chan struct{}
}

// newOps makes the metrics registry, with the Go runtime's and the
// process's collectors and a promobserve observer, and returns the
// observer's option for the runtime server.
func newOps() (*ops, runtime.ServerOption, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	obs, err := promobserve.New(reg)
	if err != nil {
		return nil, nil, err
	}
	return &ops{reg: reg}, runtime.WithObserver(obs), nil
}

// startOps binds and serves the operations endpoint.
func (s *Server) startOps() error {
	o := s.ops
	ln, err := net.Listen("tcp", s.cfg.MetricsAddr)
	if err != nil {
		return fmt.Errorf("chatserver: metrics endpoint: %w", err)
	}
	o.addr = ln.Addr()
	o.srv = &http.Server{Handler: s.OpsHandler(o.reg), ReadHeaderTimeout: 5 * time.Second}
	o.done = make(chan struct{})
	go func() {
		defer close(o.done)
		if err := o.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("metrics endpoint stopped", "err", err)
		}
	}()
	s.log.Info("metrics endpoint listening", "addr", o.addr.String(), "paths", "/metrics /healthz /readyz")
	return nil
}

// stopOps stops the operations endpoint, if it runs.
func (s *Server) stopOps() {
	o := s.ops
	if o == nil || o.srv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = o.srv.Shutdown(ctx)
	<-o.done
}

// MetricsAddr returns the address the operations endpoint listens on
// (useful after asking for port 0), or "" without one.
func (s *Server) MetricsAddr() string {
	if s.ops == nil || s.ops.addr == nil {
		return ""
	}
	return s.ops.addr.String()
}

// Ready reports whether the server is serving: started, every listener
// still accepting connections, and no shutdown begun. While it drains
// after [Server.Shutdown] it is not ready, so that a load balancer sends
// new clients elsewhere.
func (s *Server) Ready() bool {
	s.life.Lock()
	started := s.started
	s.life.Unlock()
	return started && !s.stopping.Load() && s.rt.Ready()
}

// OpsHandler returns the HTTP handler an operator's probes and Prometheus
// use (the server serves it on Config.MetricsAddr):
//
//   - /healthz answers 200 while the process runs (liveness);
//   - /readyz answers 200 when [Server.Ready], 503 otherwise (readiness);
//   - /metrics serves g's metrics in Prometheus's text format (absent when
//     g is nil).
func (s *Server) OpsHandler(g prometheus.Gatherer) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !s.Ready() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	if g != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{}))
	}
	return mux
}
