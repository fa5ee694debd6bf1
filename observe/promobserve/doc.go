// Package promobserve records a msgtrans-go server's or client's
// measurements as Prometheus metrics: a [runtime.Observer] built on
// github.com/prometheus/client_golang.
//
//	reg := prometheus.NewRegistry()
//	obs, err := promobserve.New(reg)
//	…
//	srv, err := runtime.NewServer(runtime.WithObserver(obs))
//	http.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
//
// Names follow OpenTelemetry's RPC and messaging semantic conventions in
// Prometheus form (rpc_server_call_duration_seconds with rpc_system_name
// "msgtrans", rpc_method "pkg.Service/Method" or "biz/N" for a raw
// biz_type, rpc_status_code "OK", "NOT_FOUND", …), and msgtrans_* for the
// rest: connections opened, closed and refused with their reasons,
// packets, bytes and writes by transport, sessions and queued bytes,
// rate-limit drops, streams, broadcasts and the cluster. Nothing is
// labelled by session, user or group. docs/observability.md lists every
// metric with what it means.
//
// Cost: per-packet counts are not recorded here at all; the runtime keeps
// them in per-session atomics and this package sums them at each scrape.
// Each route's instruments are resolved once (per status code on its first
// use), so recording a call is a histogram observation with no lookup and
// no allocation.
package promobserve
