package main

import (
	"slices"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/msgtrans/msgtrans-go/observe/promobserve"
	"github.com/msgtrans/msgtrans-go/runtime"
)

// implProm is msgtrans with the Prometheus adapter (observe/promobserve)
// installed on the server, recording into a registry of its own:
// -metrics-compare alternates it with msgtrans in the throughput, unary and
// broadcast rounds, the cost gate of issue 17. The clients run without
// one, so the figures show what metrics cost the server.
const implProm = "msgtrans-prom"

// metricsOptions returns the server options of impl's metrics.
func metricsOptions(impl string) ([]runtime.ServerOption, error) {
	if impl != implProm {
		return nil, nil
	}
	obs, err := promobserve.New(prometheus.NewRegistry())
	if err != nil {
		return nil, err
	}
	return []runtime.ServerOption{runtime.WithObserver(obs)}, nil
}

// withProm returns impls with implProm after msgtrans when -metrics-compare
// asks for it.
func (e *env) withProm(impls []string) []string {
	if !e.opt.metricsCompare {
		return impls
	}
	i := slices.Index(impls, implMsgtrans)
	if i < 0 {
		return impls
	}
	return slices.Insert(slices.Clone(impls), i+1, implProm)
}

// startMsgtransImpl starts the msgtrans server of impl (msgtrans, or one of
// its variants) on the transport.
func (e *env) startMsgtransImpl(transport, impl string) (*mtServer, error) {
	opts, err := metricsOptions(impl)
	if err != nil {
		return nil, err
	}
	return e.startMsgtrans(transport, append(parkingOptions(impl), opts...)...)
}
