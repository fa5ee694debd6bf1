package runtime_test

import (
	"context"
	"log/slog"
	"net/url"
	"testing"
	"time"

	quicgo "github.com/quic-go/quic-go"

	"github.com/msgtrans/msgtrans-go/runtime"
	"github.com/msgtrans/msgtrans-go/transports/quic"
)

// dialQUIC makes a QUIC connection to f's listener with quic-go itself and
// closes it once made.
func dialQUIC(t *testing.T, f *fixture) error {
	t.Helper()
	u, _ := url.Parse(f.addr)
	tc := f.certs.Client.Clone()
	tc.ServerName, tc.NextProtos = u.Hostname(), []string{quic.ALPN}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	c, err := quicgo.DialAddr(ctx, u.Host, tc, nil)
	if err != nil {
		return err
	}
	return c.CloseWithError(0, "")
}

// TestAbuseQUICHandshakes: QUIC peers meet the caps before the server does
// the work of a handshake: a peer over the per-host cap is refused before
// its handshake completes (its dial fails, rather than succeeding and
// being closed). When a Retry is asked is tested beside the listener that
// counts handshakes (transports/quic TestRetryUnderLoad).
func TestAbuseQUICHandshakes(t *testing.T) {
	var tc transportCase
	for _, c := range transportCases() {
		if c.name == "quic" {
			tc = c
		}
	}
	t.Run("refused before the handshake", func(t *testing.T) {
		settled(t)
		f := newFixture(t, tc, runtime.WithMaxConnectionsPerIP(1), runtime.WithLogger(slog.New(slog.DiscardHandler)))
		f.srv.Handle(bizEcho, echo)
		c := f.dial()
		t.Cleanup(func() { _ = c.Close() })
		if err := dialQUIC(t, f); err == nil {
			t.Fatal("a QUIC peer over the per-host cap completed its handshake")
		} else {
			t.Logf("refused: %v", err)
		}
		if err := dialOnce(f); err == nil {
			t.Fatal("a client over the per-host cap was served")
		}
	})
}
