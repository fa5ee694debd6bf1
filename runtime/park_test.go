package runtime_test

import (
	"context"
	"errors"
	goruntime "runtime"
	"strings"
	"testing"
	"time"

	"github.com/msgtrans/msgtrans-go/runtime"
	"github.com/msgtrans/msgtrans-go/wire"
)

// parkingCases are the transports whose server sessions park on this
// platform.
func parkingCases(t *testing.T) []transportCase {
	if goruntime.GOOS != "linux" {
		t.Skip("idle sessions park on Linux only")
	}
	var out []transportCase
	for _, tc := range transportCases() {
		switch tc.name {
		case "tcp", "tls", "ws":
			out = append(out, tc)
		}
	}
	return out
}

// waitParked waits until n of the server's sessions are parked, failing
// after 10 s.
func waitParked(t *testing.T, srv *runtime.Server, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for runtime.ParkedSessions(srv) != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d sessions parked after 10 s, want %d", runtime.ParkedSessions(srv), n)
		}
		time.Sleep(2 * time.Millisecond) // polling a condition
	}
}

// TestIdleParking: idle sessions park (no goroutine reads them), wake for
// each request, one at a time or all at once, and park again; the server's
// pushes reach parked sessions; a packet that arrives in two parts with a
// pause longer than the idle wait between them is read whole.
func TestIdleParking(t *testing.T) {
	for _, tc := range parkingCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, tc, runtime.WithIdleParking(20*time.Millisecond))
			f.srv.Handle(bizEcho, echo)
			const n = 20
			clients := make([]*runtime.Client, n)
			for i := range clients {
				clients[i] = f.dial()
			}
			f.waitSessions(n)
			waitParked(t, f.srv, n)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			for round := range 3 {
				for i, c := range clients {
					if round == 1 && i%2 == 1 {
						continue // half of them stay parked
					}
					resp, err := c.Request(ctx, wire.NewRequest(bizEcho, []byte("wake up")))
					if err != nil || resp.Text() != "wake up" {
						t.Fatalf("round %d client %d: Request = %q, %v", round, i, resp.Text(), err)
					}
				}
				waitParked(t, f.srv, n)
			}
			// All at once.
			errs := make(chan error, n)
			for _, c := range clients {
				go func() {
					_, err := c.Request(ctx, wire.NewRequest(bizEcho, []byte("all")))
					errs <- err
				}()
			}
			for range n {
				if err := <-errs; err != nil {
					t.Fatal(err)
				}
			}
			waitParked(t, f.srv, n)

			// The server sends to parked sessions: writing needs no reader.
			got := make(chan *wire.Packet, n)
			for _, c := range clients {
				c.Handle(bizNote, collect(got))
			}
			if _, err := f.srv.Push(ctx, runtime.ToAll(), wire.NewOneWay(bizNote, []byte("to the parked"))); err != nil {
				t.Fatal(err)
			}
			for range n {
				if p := recv(t, got); string(p.Payload) != "to the parked" {
					t.Fatalf("push: got %q", p.Payload)
				}
			}

			// Half a packet, a pause, the rest.
			raw := tc.raw(t, f.addr, f.certs.Client)
			defer raw.Close()
			sess := f.waitSessions(1)[0]
			waitParked(t, f.srv, n+1)
			gotRaw := make(chan *wire.Packet, 1)
			f.srv.Handle(bizNote, collect(gotRaw))
			b := validPacket("in two parts")
			if tc.name == "ws" {
				// A message is one frame: the pause is between frames.
				if err := raw.WriteFrame(b, 0); err != nil {
					t.Fatal(err)
				}
			} else {
				if err := raw.WriteFrame(b[:7], 0); err != nil {
					t.Fatal(err)
				}
				time.Sleep(60 * time.Millisecond) // a slow peer, longer than the idle wait
				if err := raw.WriteFrame(b[7:], 0); err != nil {
					t.Fatal(err)
				}
			}
			if p := recv(t, gotRaw); p.Text() != "in two parts" {
				t.Fatalf("raw peer's packet: got %q", p.Text())
			}
			if _, ok := f.srv.Session(sess.ID()); !ok {
				t.Fatalf("the raw peer's session was closed: %v", sess.Err())
			}
		})
	}
}

// TestIdleParkingEnds: a parked session ends as any other: when its peer
// goes away (ErrPeerClosed), when it goes silent past the heartbeat
// timeout although it said hello (ErrHeartbeatTimeout), when the server
// closes it, and when the server shuts down (its client hears the
// go-away) or closes.
func TestIdleParkingEnds(t *testing.T) {
	for _, tc := range parkingCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, tc, runtime.WithIdleParking(20*time.Millisecond),
				runtime.WithHeartbeat(50*time.Millisecond, 400*time.Millisecond))
			f.srv.Handle(bizEcho, echo)

			// The peer goes away.
			gone := f.dial(runtime.WithoutReconnect())
			goneSess := f.waitSessions(1)[0]
			waitParked(t, f.srv, 1)
			_ = gone.Close()
			if e := f.waitEvent(runtime.ConnectionClosed); e.Session != goneSess || !errors.Is(e.Err, runtime.ErrPeerClosed) {
				t.Fatalf("closed session %d with %v, want %d with ErrPeerClosed", e.Session.ID(), e.Err, goneSess.ID())
			}

			// Silent after its hello: a raw peer says hello, then nothing.
			silent := tc.raw(t, f.addr, f.certs.Client)
			defer silent.Close()
			silentSess := f.waitSessions(1)[0]
			if err := silent.WriteFrame(controlBytes(t, wire.ControlHello, []byte{0}), 0); err != nil {
				t.Fatal(err)
			}
			waitParked(t, f.srv, 1)
			if e := f.waitEvent(runtime.ConnectionClosed); e.Session != silentSess || !errors.Is(e.Err, runtime.ErrHeartbeatTimeout) {
				t.Fatalf("closed session %d with %v, want %d with ErrHeartbeatTimeout", e.Session.ID(), e.Err, silentSess.ID())
			}

			// Closed by the server.
			c := f.dial(runtime.WithoutReconnect())
			sess := f.waitSessions(1)[0]
			waitParked(t, f.srv, 1)
			f.srv.CloseSession(sess.ID())
			if e := f.waitEvent(runtime.ConnectionClosed); e.Session != sess {
				t.Fatalf("closed session %d, want %d", e.Session.ID(), sess.ID())
			}
			select {
			case <-c.Done():
			case <-time.After(10 * time.Second):
				t.Fatal("client still connected after the server closed its session")
			}

			// Shutdown: parked sessions hear the go-away and end.
			const n = 5
			clients := make([]*runtime.Client, n)
			for i := range clients {
				clients[i] = f.dial(runtime.WithoutReconnect())
			}
			f.waitSessions(n)
			waitParked(t, f.srv, n)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := f.srv.Shutdown(ctx); err != nil {
				t.Fatalf("Shutdown: %v", err)
			}
			for i, c := range clients {
				select {
				case <-c.Done():
					if err := c.Err(); !errors.Is(err, runtime.ErrGoAway) {
						t.Errorf("client %d ended with %v, want ErrGoAway", i, err)
					}
				case <-time.After(10 * time.Second):
					t.Fatalf("client %d still connected after Shutdown", i)
				}
			}
			if n := f.srv.SessionCount(); n != 0 {
				t.Fatalf("%d sessions after Shutdown", n)
			}
		})
	}
}

// TestIdleParkingOff: with parking off (WithIdleParking(-1)) sessions
// keep their reader and never park; the server serves as before.
func TestIdleParkingOff(t *testing.T) {
	tc := transportCases()[1] // tcp
	f := newFixture(t, tc, runtime.WithIdleParking(-1))
	f.srv.Handle(bizEcho, echo)
	c := f.dial()
	f.waitSessions(1)
	// Longer than the default wait before parking.
	time.Sleep(runtime.DefaultIdleParking + 100*time.Millisecond) // nothing to wait for: proving an absence
	if n := runtime.ParkedSessions(f.srv); n != 0 {
		t.Fatalf("%d sessions parked with parking off", n)
	}
	if _, err := c.Request(context.Background(), wire.NewRequest(bizEcho, []byte("x"))); err != nil {
		t.Fatal(err)
	}
}

// TestIdleParkingEnv: MSGTRANS_IDLE_PARKING sets parking for servers not
// given WithIdleParking ("off", or a duration); the option wins over it;
// a value that is neither fails NewServer, naming the variable.
func TestIdleParkingEnv(t *testing.T) {
	parkingCases(t)
	tc := transportCases()[1] // tcp
	t.Setenv("MSGTRANS_IDLE_PARKING", "5ms")
	f := newFixture(t, tc)
	f.dial()
	f.waitSessions(1)
	waitParked(t, f.srv, 1)

	t.Setenv("MSGTRANS_IDLE_PARKING", "off")
	for _, opts := range [][]runtime.ServerOption{nil, {runtime.WithIdleParking(5 * time.Millisecond)}} {
		f := newFixture(t, tc, opts...)
		f.dial()
		f.waitSessions(1)
		if opts == nil {
			time.Sleep(50 * time.Millisecond) // ten times the idle time above: proving an absence
			if n := runtime.ParkedSessions(f.srv); n != 0 {
				t.Fatalf("%d sessions parked with MSGTRANS_IDLE_PARKING=off", n)
			}
		} else {
			waitParked(t, f.srv, 1) // the option wins
		}
	}

	for _, bad := range []string{"bogus", "-1s", "0s"} {
		t.Setenv("MSGTRANS_IDLE_PARKING", bad)
		if _, err := runtime.NewServer(); err == nil || !strings.Contains(err.Error(), "MSGTRANS_IDLE_PARKING") {
			t.Errorf("MSGTRANS_IDLE_PARKING=%s: NewServer = %v, want an error naming the variable", bad, err)
		}
	}
}
