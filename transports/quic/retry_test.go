package quic_test

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	quicgo "github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/qlog"
	"github.com/quic-go/quic-go/qlogwriter"

	"github.com/msgtrans/msgtrans-go/runtime"
	"github.com/msgtrans/msgtrans-go/transports/quic"
)

// retryWatch is a client's qlog trace that notes whether the server answered
// its first Initial with a Retry.
type retryWatch struct{ retried atomic.Bool }

func (w *retryWatch) AddProducer() qlogwriter.Recorder { return w }
func (w *retryWatch) Close() error                     { return nil }
func (w *retryWatch) RecordEvent(e qlogwriter.Event) {
	if p, ok := e.(qlog.PacketReceived); ok && p.Header.PacketType == qlog.PacketTypeRetry {
		w.retried.Store(true)
	}
}

// dialWatched completes a QUIC handshake with l, watched by w, and closes the
// connection (without opening a stream) once made.
func dialWatched(l runtime.Listener, w *retryWatch) error {
	tc := certs.Client.Clone()
	tc.NextProtos = []string{quic.ALPN}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	qc, err := quicgo.DialAddr(ctx, l.Addr().String(), tc, &quicgo.Config{
		Tracer: func(context.Context, bool, quicgo.ConnectionID) qlogwriter.Trace { return w },
	})
	if err != nil {
		return err
	}
	return qc.CloseWithError(0, "")
}

// firstDatagramOnly sends the first datagram written to it, drops the rest
// and closes sent once the first is on its way: a peer that sends an Initial
// and never answers, as one spoofing its address must.
type firstDatagramOnly struct {
	net.PacketConn
	once sync.Once
	sent chan struct{}
}

func (c *firstDatagramOnly) WriteTo(b []byte, a net.Addr) (int, error) {
	n, err := len(b), error(nil)
	c.once.Do(func() {
		n, err = c.PacketConn.WriteTo(b, a)
		close(c.sent)
	})
	return n, err
}

// stall starts a handshake with l that never gets past the peer's first
// Initial and returns once that Initial is sent.
func stall(t *testing.T, l runtime.Listener) {
	t.Helper()
	udp, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pc := &firstDatagramOnly{PacketConn: udp, sent: make(chan struct{})}
	tr := &quicgo.Transport{Conn: pc}
	tc := certs.Client.Clone()
	tc.NextProtos = []string{quic.ALPN}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if qc, err := tr.Dial(ctx, l.Addr(), tc, nil); err == nil {
			_ = qc.CloseWithError(0, "")
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		_ = tr.Close()
		_ = udp.Close()
	})
	select {
	case <-pc.sent:
	case <-time.After(wait):
		t.Fatal("the stalling peer sent no Initial")
	}
}

// inProgress waits until l counts want handshakes in progress.
func inProgress(t *testing.T, l runtime.Listener, want int64) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for got := quic.HandshakesInProgress(l); got != want; got = quic.HandshakesInProgress(l) {
		if time.Now().After(deadline) {
			t.Fatalf("%d handshakes in progress, want %d", got, want)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestRetryUnderLoad: while fewer than a quarter of MaxHandshakes are in
// progress a peer is served at once; from a quarter on, a new peer must first
// prove its address with a Retry round trip, which a real client does (and is
// then served) and a peer that cannot receive at its address never answers,
// so it costs the server no handshake.
func TestRetryUnderLoad(t *testing.T) {
	const maxHandshakes = 8 // a Retry from 2 in progress
	cfg := serverConfig()
	cfg.MaxHandshakes = maxHandshakes
	cfg.HandshakeTimeout = time.Minute // stalled handshakes hold their place for the whole test
	l := listen(t, cfg)

	var quiet retryWatch
	if err := dialWatched(l, &quiet); err != nil {
		t.Fatal(err)
	}
	if quiet.retried.Load() {
		t.Fatal("a Retry with no handshake in progress")
	}
	inProgress(t, l, 0) // the server has seen the quiet client go

	for i := range int64(maxHandshakes / 4) {
		stall(t, l)
		inProgress(t, l, i+1) // counted, not asked for a Retry
	}

	// Under load: a peer that cannot answer a Retry is not counted. Its
	// Initial is sent before the next client's, on the same path, so once
	// that client has gone and been seen going, the count shows it.
	stall(t, l)
	var loaded retryWatch
	if err := dialWatched(l, &loaded); err != nil {
		t.Fatalf("a client that answered the Retry was not served: %v", err)
	}
	if !loaded.retried.Load() {
		t.Fatalf("no Retry with %d of %d handshakes in progress", maxHandshakes/4, maxHandshakes)
	}
	inProgress(t, l, maxHandshakes/4)
}
