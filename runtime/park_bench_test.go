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
// not differ. "pause/parked" times a request after a pause long enough for
// the session to park (the poller's hand-over to a pooled goroutine, the
// read, the answer), "pause/off" one after the same pause without parking;
// the pauses are not timed.
func BenchmarkParking(b *testing.B) {
	payload := bytes.Repeat([]byte{'x'}, 64)
	for _, bc := range []struct {
		name   string
		opt    runtime.ServerOption
		pause  bool
		parked bool
	}{
		{"busy/on", runtime.WithIdleParking(0), false, false},
		{"busy/off", runtime.WithIdleParking(-1), false, false},
		{"pause/parked", runtime.WithIdleParking(time.Millisecond), true, true},
		{"pause/off", runtime.WithIdleParking(-1), true, false},
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
				if bc.pause {
					b.StopTimer()
					time.Sleep(3 * time.Millisecond) // the pause measured; parks within 1 ms
					if bc.parked && runtime.ParkedSessions(f.srv) != 1 {
						b.Fatal("the session did not park")
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
