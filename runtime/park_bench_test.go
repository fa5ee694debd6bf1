package runtime_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/msgtrans/msgtrans-go/runtime"
	"github.com/msgtrans/msgtrans-go/wire"
)

// BenchmarkParking: one request at a time over TCP with idle parking on
// (the default) and off: a busy session never parks, so the two should
// not differ. "parked" times the request that wakes a parked session (the
// poller's hand-over to a pooled goroutine, the read, the answer); the
// wait for the session to park is not timed.
func BenchmarkParking(b *testing.B) {
	payload := bytes.Repeat([]byte{'x'}, 64)
	for _, bc := range []struct {
		name   string
		opt    runtime.ServerOption
		parked bool
	}{
		{"busy/on", runtime.WithIdleParking(0), false},
		{"busy/off", runtime.WithIdleParking(-1), false},
		{"parked", runtime.WithIdleParking(2 * time.Millisecond), true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			f := newFixture(&testing.T{}, transportCases()[1], noRateLimit, bc.opt)
			defer f.srv.Close()
			f.srv.Handle(bizEcho, echo)
			c, err := runtime.Dial(context.Background(), f.addr)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if bc.parked {
					b.StopTimer()
					for runtime.ParkedSessions(f.srv) != 1 {
						time.Sleep(100 * time.Microsecond) // polling a condition
					}
					b.StartTimer()
				}
				if _, err := c.Request(ctx, wire.NewRequest(bizEcho, payload)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
