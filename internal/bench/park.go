package main

import (
	"slices"

	"github.com/msgtrans/msgtrans-go/runtime"
)

// implNoPark is msgtrans with idle parking off (runtime.WithIdleParking(-1)):
// every session keeps its reader goroutine, as before parking existed. The
// idle scenario measures it beside msgtrans on tcp and ws; -park-compare
// adds it to the throughput and unary rounds, to show what parking costs
// a busy server (it should cost nothing: a busy session never parks).
const implNoPark = "msgtrans-nopark"

// parkingOptions returns the server options of impl's parking.
func parkingOptions(impl string) []runtime.ServerOption {
	if impl == implNoPark {
		return []runtime.ServerOption{runtime.WithIdleParking(-1)}
	}
	return nil
}

// withNoPark returns impls with implNoPark after msgtrans when -park-compare
// asks for it and sessions park on the transport.
func (e *env) withNoPark(transport string, impls []string) []string {
	if !e.opt.parkCompare || (transport != "tcp" && transport != "ws") {
		return impls
	}
	i := slices.Index(impls, implMsgtrans)
	if i < 0 {
		return impls
	}
	return slices.Insert(slices.Clone(impls), i+1, implNoPark)
}
