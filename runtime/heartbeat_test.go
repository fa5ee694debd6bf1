package runtime_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/msgtrans/msgtrans-go/runtime"
	"github.com/msgtrans/msgtrans-go/wire"
)

func controlBytes(t *testing.T, kind wire.ControlKind, payload []byte) []byte {
	t.Helper()
	b, err := wire.AppendPacket(nil, &wire.Packet{
		Type: wire.OneWay, MessageID: 1, Flags: wire.FlagHasRouteTag,
		Ext:     wire.AppendExt(nil, &wire.Ext{HasRoute: true, Route: wire.ControlRoute, Control: kind}),
		Payload: payload,
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestServerHeartbeat: a client that said hello and then went silent is
// closed at the timeout; a heartbeating client and a raw peer that never
// said hello are not.
func TestServerHeartbeat(t *testing.T) {
	// Generous margins: the heartbeating client must never look silent,
	// even on a loaded machine running the race detector.
	hb := runtime.WithHeartbeat(20*time.Millisecond, 500*time.Millisecond)
	f := newFixture(t, transportCases()[1], hb)
	f.srv.Handle(bizEcho, echo)

	raw := tcpRaw(t, f.addr, nil) // never says hello
	defer raw.Close()
	rawSess := f.waitSessions(1)[0]
	live := f.dial(hb)
	liveSess := f.waitSessions(1)[0]
	silent := tcpRaw(t, f.addr, nil)
	defer silent.Close()
	silentSess := f.waitSessions(1)[0]
	if err := silent.WriteFrame(controlBytes(t, wire.ControlHello, []byte{0}), 0); err != nil {
		t.Fatal(err)
	}

	e := f.waitEvent(runtime.ConnectionClosed)
	if e.Session != silentSess || !errors.Is(e.Err, runtime.ErrHeartbeatTimeout) {
		t.Fatalf("closed session %d with %v, want the silent one (%d) with ErrHeartbeatTimeout", e.Session.ID(), e.Err, silentSess.ID())
	}
	for _, s := range []*runtime.Session{rawSess, liveSess} {
		if _, ok := f.srv.Session(s.ID()); !ok {
			t.Errorf("session %d was closed too (%v)", s.ID(), s.Err())
		}
	}
	if _, err := live.Request(context.Background(), wire.NewRequest(bizEcho, []byte("alive"))); err != nil {
		t.Errorf("heartbeating client: %v", err)
	}
}

// TestClientHeartbeat: a client whose server goes silent (the process hangs,
// or the network drops without a reset) gives up on the connection at the
// timeout instead of waiting forever.
func TestClientHeartbeat(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan net.Conn, 1)
	hello := controlBytes(t, wire.ControlHello, []byte{0})
	go func() {
		c, err := l.Accept()
		if err == nil {
			_, _ = c.Write(hello) // answer the hello, then nothing more
			accepted <- c
		}
		close(accepted)
	}()
	c, err := runtime.Dial(context.Background(), "tcp://"+l.Addr().String(),
		runtime.WithHeartbeat(20*time.Millisecond, 150*time.Millisecond), runtime.WithoutReconnect())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	conn := <-accepted
	defer conn.Close()
	select {
	case <-c.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the client did not notice its server went silent")
	}
	if err := c.Err(); !errors.Is(err, runtime.ErrHeartbeatTimeout) {
		t.Errorf("client closed with %v, want ErrHeartbeatTimeout", err)
	}
}

// TestPingFlood: a peer sending pings far faster than any heartbeat is
// closed; others are not affected.
func TestPingFlood(t *testing.T) {
	for _, tc := range transportCases() {
		if tc.name != "tcp" && tc.name != "ws" {
			continue
		}
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, tc)
			f.srv.Handle(bizEcho, echo)
			p := tc.raw(t, f.addr, f.certs.Client)
			defer p.Close()
			ping := controlBytes(t, wire.ControlPing, nil)
			for range 100 {
				if p.WriteFrame(ping, len(ping)) != nil {
					break // closed already
				}
			}
			e := f.waitEvent(runtime.ConnectionClosed)
			if !errors.Is(e.Err, runtime.ErrPingFlood) {
				t.Errorf("closed with %v, want ErrPingFlood", e.Err)
			}
			f.healthy()
		})
	}
}

func TestHeartbeatOptions(t *testing.T) {
	_, err := runtime.NewServer(runtime.WithHeartbeat(time.Second, time.Second))
	if err == nil || !strings.Contains(err.Error(), "must exceed the interval") {
		t.Errorf("timeout equal to the interval: %v", err)
	}
	if _, err := runtime.NewServer(runtime.WithHeartbeat(-time.Second, 0)); err == nil {
		t.Error("a negative interval was accepted")
	}
}
