package quic_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"slices"
	"testing"
	"time"

	quicgo "github.com/quic-go/quic-go"
	"go.uber.org/goleak"

	"github.com/msgtrans/msgtrans-go/internal/testcert"
	"github.com/msgtrans/msgtrans-go/runtime"
	"github.com/msgtrans/msgtrans-go/transports/quic"
	"github.com/msgtrans/msgtrans-go/wire"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// wait bounds every blocking step of a test, so a bug fails the test rather
// than hanging it.
const wait = 10 * time.Second

var certs = testcert.New()

func serverConfig() *runtime.TransportConfig {
	return &runtime.TransportConfig{TLS: certs.Server}
}

func clientConfig() *runtime.TransportConfig {
	return &runtime.TransportConfig{TLS: certs.Client}
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func listen(t *testing.T, cfg *runtime.TransportConfig) runtime.Listener {
	t.Helper()
	l, err := quic.Transport{}.Listen(context.Background(), mustURL(t, "quic://127.0.0.1:0"), cfg)
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func dial(t *testing.T, l runtime.Listener) runtime.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	c, err := quic.Transport{}.Dial(ctx, mustURL(t, "quic://"+l.Addr().String()), clientConfig())
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// accept returns the listener's next connection, failing the test (and
// closing the listener to unblock Accept) after wait.
func accept(t *testing.T, l runtime.Listener) runtime.Conn {
	t.Helper()
	type result struct {
		c   runtime.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		c, err := l.Accept()
		ch <- result{c, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("Accept: %v", r.err)
		}
		t.Cleanup(func() { r.c.Close() })
		return r.c
	case <-time.After(wait):
		l.Close()
		<-ch
		t.Fatal("Accept: no connection")
		return nil
	}
}

// read returns c's next packet, closing c to unblock ReadPacket after wait.
func read(t *testing.T, c runtime.Conn) (wire.Packet, error) {
	t.Helper()
	type result struct {
		p   wire.Packet
		err error
	}
	ch := make(chan result, 1)
	go func() {
		p, err := c.ReadPacket()
		ch <- result{p, err}
	}()
	select {
	case r := <-ch:
		return r.p, r.err
	case <-time.After(wait):
		c.Close()
		<-ch
		t.Fatal("ReadPacket: nothing within the test timeout")
		return wire.Packet{}, nil
	}
}

func mustRead(t *testing.T, c runtime.Conn) wire.Packet {
	t.Helper()
	p, err := read(t, c)
	if err != nil {
		t.Fatalf("ReadPacket: %v", err)
	}
	return p
}

func encode(t *testing.T, p *wire.Packet) []byte {
	t.Helper()
	b, err := wire.AppendPacket(nil, p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func samePacket(got wire.Packet, want *wire.Packet) bool {
	return got.Type == want.Type && got.Compression == want.Compression && got.BizType == want.BizType &&
		got.MessageID == want.MessageID && got.Flags == want.Flags &&
		bytes.Equal(got.Ext, want.Ext) && bytes.Equal(got.Payload, want.Payload)
}

// closePair closes a connection pair the way msgtrans peers do: the client
// closes, the server reads io.EOF and closes in turn.
func closePair(t *testing.T, client, server runtime.Conn) {
	t.Helper()
	if err := client.Close(); err != nil {
		t.Errorf("client Close: %v", err)
	}
	if _, err := read(t, server); !errors.Is(err, io.EOF) {
		t.Errorf("server ReadPacket after the client closed: got %v, want io.EOF", err)
	}
	if err := server.Close(); err != nil {
		t.Errorf("server Close: %v", err)
	}
}

// checkHealthy dials l, exchanges a packet each way and closes the pair.
func checkHealthy(t *testing.T, l runtime.Listener) {
	t.Helper()
	c := dial(t, l)
	req := wire.NewText(7, "ping")
	req.Type, req.MessageID = wire.Request, 1
	if err := c.WritePackets([][]byte{encode(t, req)}); err != nil {
		t.Fatalf("client WritePackets: %v", err)
	}
	s := accept(t, l)
	got := mustRead(t, s)
	if !samePacket(got, req) {
		t.Fatalf("server read %v, want %v", &got, req)
	}
	resp := got.Reply([]byte("pong"))
	if err := s.WritePackets([][]byte{encode(t, resp)}); err != nil {
		t.Fatalf("server WritePackets: %v", err)
	}
	if got := mustRead(t, c); !samePacket(got, resp) {
		t.Fatalf("client read %v, want %v", &got, resp)
	}
	closePair(t, c, s)
}

func TestRegistered(t *testing.T) {
	if !slices.Contains(runtime.Schemes(), "quic") {
		t.Fatalf("runtime.Schemes() = %v, want it to contain quic", runtime.Schemes())
	}
}

func TestListenNeedsCertificate(t *testing.T) {
	for name, cfg := range map[string]*runtime.TransportConfig{
		"nil config": nil,
		"nil TLS":    {},
		"no certs":   {TLS: &tls.Config{}},
	} {
		t.Run(name, func(t *testing.T) {
			l, err := quic.Transport{}.Listen(context.Background(), mustURL(t, "quic://127.0.0.1:0"), cfg)
			if err == nil {
				l.Close()
				t.Fatal("Listen succeeded without a certificate")
			}
		})
	}
}

func TestRoundTrip(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789abcdef"), 512<<10/16)
	tests := []struct {
		name string
		pkt  *wire.Packet
	}{
		{"empty", wire.NewOneWay(1, nil)},
		{"text", wire.NewText(2, "hello, quic")},
		{"ext and flags", &wire.Packet{Type: wire.Request, BizType: 3, MessageID: 42, Flags: wire.FlagHighPriority, Ext: []byte{1, 2, 3}, Payload: []byte("body")}},
		{"ext only", &wire.Packet{Type: wire.OneWay, Ext: []byte("only ext")}},
		{"512 KiB payload", wire.NewOneWay(4, big)},
	}
	l := listen(t, serverConfig())
	c := dial(t, l)
	// The first packet makes the stream known to the server.
	hello := wire.NewText(0, "hello")
	if err := c.WritePackets([][]byte{encode(t, hello)}); err != nil {
		t.Fatalf("WritePackets: %v", err)
	}
	s := accept(t, l)
	if got := mustRead(t, s); !samePacket(got, hello) {
		t.Fatalf("server read %v, want %v", &got, hello)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, dir := range []struct {
				name     string
				from, to runtime.Conn
			}{{"client to server", c, s}, {"server to client", s, c}} {
				if err := dir.from.WritePackets([][]byte{encode(t, tt.pkt)}); err != nil {
					t.Fatalf("%s: WritePackets: %v", dir.name, err)
				}
				if got := mustRead(t, dir.to); !samePacket(got, tt.pkt) {
					t.Fatalf("%s: read %v, want %v", dir.name, &got, tt.pkt)
				}
			}
		})
	}
	// The client's socket is unbound (0.0.0.0), so only the ports compare.
	if a, b := c.LocalAddr().(*net.UDPAddr).Port, s.RemoteAddr().(*net.UDPAddr).Port; a != b {
		t.Errorf("client LocalAddr port %d != server RemoteAddr port %d", a, b)
	}
	if a, b := c.RemoteAddr().String(), l.Addr().String(); a != b {
		t.Errorf("client RemoteAddr %s != listener Addr %s", a, b)
	}
	closePair(t, c, s)
}

func TestBatchPreservesOrder(t *testing.T) {
	const n = 100
	l := listen(t, serverConfig())
	c := dial(t, l)
	var batch [][]byte
	var want []*wire.Packet
	for i := range n {
		// Sizes vary so that packets straddle the writer's gather buffer
		// and the reader's read-ahead buffer.
		p := &wire.Packet{Type: wire.OneWay, BizType: uint8(i), MessageID: uint32(i + 1),
			Payload: bytes.Repeat([]byte{byte(i)}, (i*997)%5000)}
		want = append(want, p)
		batch = append(batch, encode(t, p))
	}
	if err := c.WritePackets(batch); err != nil {
		t.Fatalf("client WritePackets: %v", err)
	}
	s := accept(t, l)
	for i, w := range want {
		if got := mustRead(t, s); !samePacket(got, w) {
			t.Fatalf("server packet %d: got %v, want %v", i, &got, w)
		}
	}
	if err := s.WritePackets(batch); err != nil {
		t.Fatalf("server WritePackets: %v", err)
	}
	for i, w := range want {
		if got := mustRead(t, c); !samePacket(got, w) {
			t.Fatalf("client packet %d: got %v, want %v", i, &got, w)
		}
	}
	closePair(t, c, s)
}

// TestCloseDeliversWrittenPackets checks that packets written just before
// Close reach the peer, although closing a QUIC connection discards data in
// flight.
func TestCloseDeliversWrittenPackets(t *testing.T) {
	const n = 200
	l := listen(t, serverConfig())
	c := dial(t, l)
	var batch [][]byte
	for i := range n {
		batch = append(batch, encode(t, &wire.Packet{MessageID: uint32(i + 1), Payload: make([]byte, 1000)}))
	}
	if err := c.WritePackets(batch); err != nil {
		t.Fatalf("WritePackets: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	s := accept(t, l)
	for i := range n {
		p, err := read(t, s)
		if err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
		if p.MessageID != uint32(i+1) {
			t.Fatalf("packet %d: message id %d", i, p.MessageID)
		}
	}
	if _, err := read(t, s); !errors.Is(err, io.EOF) {
		t.Fatalf("after the last packet: got %v, want io.EOF", err)
	}
	s.Close()
}

// header returns a fixed header with the given fields.
func header(version, packetType uint8, extLen uint16, payloadLen uint32) []byte {
	h := []byte{version, 0, packetType, 9, 0, 0, 0, 1}
	h = binary.BigEndian.AppendUint16(h, extLen)
	h = binary.BigEndian.AppendUint32(h, payloadLen)
	return binary.BigEndian.AppendUint16(h, 0)
}

func prefix(n uint32) []byte { return binary.BigEndian.AppendUint32(nil, n) }

func cat(parts ...[]byte) []byte { return slices.Concat(parts...) }

// rawDial connects with quic-go directly, so tests control every byte.
func rawDial(t *testing.T, l runtime.Listener) *quicgo.Conn {
	t.Helper()
	tc := certs.Client.Clone()
	tc.NextProtos = []string{quic.ALPN}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	qc, err := quicgo.DialAddr(ctx, l.Addr().String(), tc, nil)
	if err != nil {
		t.Fatalf("quic-go DialAddr: %v", err)
	}
	t.Cleanup(func() { qc.CloseWithError(0, "") })
	return qc
}

func TestMalformedInput(t *testing.T) {
	const maxPayload = 64 << 10
	cfg := serverConfig()
	cfg.Limits = wire.Limits{MaxPayload: maxPayload, PacketReadTimeout: 300 * time.Millisecond}
	good := encode(t, wire.NewText(1, "good"))
	goodFrame := cat(prefix(uint32(len(good))), good)

	// finish is what the raw client does after the server has accepted the
	// connection (and read the good packet, if any).
	type finish int
	const (
		keepOpen    finish = iota // nothing: the server must detect the problem itself
		endStream                 // FIN on the stream
		resetStream               // RESET_STREAM
		closeConn                 // CONNECTION_CLOSE with code 0
		closeConn7                // CONNECTION_CLOSE with code 7
	)
	tests := []struct {
		name      string
		send      []byte
		then      finish
		firstGood bool // send starts with goodFrame, which must be read first
		want      error
	}{
		{"frame over MaxFrame", cat(prefix(quic.MaxFrame+1), header(1, 0, 0, quic.MaxFrame+1-16)), keepOpen, false, wire.ErrTooLarge},
		{"frame over the limits", cat(prefix(uint32(cfg.MaxPacketSize()+1)), header(1, 0, 0, uint32(cfg.MaxPacketSize()+1-16))), keepOpen, false, wire.ErrTooLarge},
		{"frame shorter than a header", cat(prefix(15), make([]byte, 15)), keepOpen, false, wire.ErrProtocol},
		{"prefix longer than the packet", cat(prefix(uint32(len(good)+1)), good, []byte{0}), keepOpen, false, wire.ErrProtocol},
		{"prefix shorter than the packet", cat(prefix(uint32(len(good)-1)), good), keepOpen, false, wire.ErrProtocol},
		{"bad version", cat(prefix(20), header(2, 0, 0, 4), []byte("abcd")), keepOpen, false, wire.ErrProtocol},
		{"unknown packet type", cat(prefix(20), header(1, 3, 0, 4), []byte("abcd")), keepOpen, false, wire.ErrProtocol},
		{"payload over MaxPayload", cat(prefix(16+maxPayload+1), header(1, 0, 0, maxPayload+1)), keepOpen, false, wire.ErrTooLarge},
		{"ext header over MaxExtHeader", cat(prefix(16+wire.DefaultMaxExtHeader+1), header(1, 0, wire.DefaultMaxExtHeader+1, 0)), keepOpen, false, wire.ErrTooLarge},
		{"stream ends in the prefix", []byte{0, 0}, endStream, false, wire.ErrTruncated},
		{"stream ends in the header", cat(prefix(20), header(1, 0, 0, 4)[:9]), endStream, false, wire.ErrTruncated},
		{"stream ends in the body", cat(prefix(20), header(1, 0, 0, 4), []byte("ab")), endStream, false, wire.ErrTruncated},
		{"large body cut short", cat(prefix(16+40000), header(1, 0, 0, 40000), make([]byte, 30000)), endStream, false, wire.ErrTruncated},
		{"stream reset in the body", cat(goodFrame, prefix(20), header(1, 0, 0, 4), []byte("ab")), resetStream, true, wire.ErrTruncated},
		{"stream reset between packets", goodFrame, resetStream, true, wire.ErrTruncated},
		{"packet read timeout", cat(prefix(20), header(1, 0, 0, 4), []byte("ab")), keepOpen, false, os.ErrDeadlineExceeded},
		{"stream ends between packets", goodFrame, endStream, true, io.EOF},
		{"connection closed between packets", goodFrame, closeConn, true, io.EOF},
		{"connection closed with a code between packets", goodFrame, closeConn7, true, io.EOF},
	}
	l := listen(t, cfg)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			qc := rawDial(t, l)
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			st, err := qc.OpenStreamSync(ctx)
			if err != nil {
				t.Fatalf("OpenStreamSync: %v", err)
			}
			if _, err := st.Write(tt.send); err != nil {
				t.Fatalf("raw Write: %v", err)
			}
			s := accept(t, l)
			if tt.firstGood {
				if got := mustRead(t, s); got.Text() != "good" {
					t.Fatalf("first packet: got %v, want the good one", &got)
				}
			}
			switch tt.then {
			case endStream:
				st.Close()
			case resetStream:
				st.CancelWrite(5)
			case closeConn:
				qc.CloseWithError(0, "")
			case closeConn7:
				qc.CloseWithError(7, "bye")
			}
			_, err = read(t, s)
			if !errors.Is(err, tt.want) {
				t.Fatalf("ReadPacket: got %v, want an error wrapping %v", err, tt.want)
			}
			s.Close()
			qc.CloseWithError(0, "")
			checkHealthy(t, l)
		})
	}
}

func TestSilentClientDropped(t *testing.T) {
	cfg := serverConfig()
	cfg.HandshakeTimeout = 300 * time.Millisecond
	l := listen(t, cfg)
	silent := rawDial(t, l) // completes the QUIC handshake, never opens a stream
	checkHealthy(t, l)      // Accept is not held up by the silent client
	select {
	case <-silent.Context().Done():
	case <-time.After(wait):
		t.Fatal("the silent client was not dropped")
	}
	var appErr *quicgo.ApplicationError
	if err := context.Cause(silent.Context()); !errors.As(err, &appErr) || !appErr.Remote || appErr.ErrorCode != 1 {
		t.Fatalf("silent client closed with %v, want a remote application error with code 1", err)
	}
}

func TestListenerClose(t *testing.T) {
	t.Run("unblocks Accept", func(t *testing.T) {
		l := listen(t, serverConfig())
		errc := make(chan error, 1)
		go func() {
			_, err := l.Accept()
			errc <- err
		}()
		if err := l.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		select {
		case err := <-errc:
			if !errors.Is(err, net.ErrClosed) {
				t.Fatalf("blocked Accept: got %v, want net.ErrClosed", err)
			}
		case <-time.After(wait):
			t.Fatal("Accept still blocked after Close")
		}
		if _, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Accept after Close: got %v, want net.ErrClosed", err)
		}
		if err := l.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
	})
	t.Run("accepted connections stay open", func(t *testing.T) {
		l := listen(t, serverConfig())
		c := dial(t, l)
		if err := c.WritePackets([][]byte{encode(t, wire.NewText(1, "before"))}); err != nil {
			t.Fatal(err)
		}
		s := accept(t, l)
		mustRead(t, s)
		if err := l.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		for _, dir := range []struct{ from, to runtime.Conn }{{c, s}, {s, c}} {
			if err := dir.from.WritePackets([][]byte{encode(t, wire.NewText(1, "after"))}); err != nil {
				t.Fatalf("WritePackets after listener Close: %v", err)
			}
			if got := mustRead(t, dir.to); got.Text() != "after" {
				t.Fatalf("read %q, want after", got.Text())
			}
		}
		closePair(t, c, s)
	})
	t.Run("closes connections not yet accepted", func(t *testing.T) {
		l := listen(t, serverConfig())
		c := dial(t, l)
		if err := c.WritePackets([][]byte{encode(t, wire.NewText(1, "never accepted"))}); err != nil {
			t.Fatal(err)
		}
		l.Close()
		if _, err := read(t, c); err == nil {
			t.Fatal("client ReadPacket succeeded on a connection the listener dropped")
		}
	})
	t.Run("closes connections without a stream", func(t *testing.T) {
		l := listen(t, serverConfig())
		silent := rawDial(t, l)
		l.Close()
		select {
		case <-silent.Context().Done():
		case <-time.After(wait):
			t.Fatal("a connection without a stream survived listener Close")
		}
	})
}

func TestConnClose(t *testing.T) {
	l := listen(t, serverConfig())
	c := dial(t, l)
	if err := c.WritePackets([][]byte{encode(t, wire.NewText(1, "hi"))}); err != nil {
		t.Fatal(err)
	}
	s := accept(t, l)
	mustRead(t, s)

	errc := make(chan error, 1)
	go func() {
		_, err := s.ReadPacket()
		errc <- err
	}()
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case err := <-errc:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("blocked ReadPacket: got %v, want net.ErrClosed", err)
		}
	case <-time.After(wait):
		t.Fatal("ReadPacket still blocked after Close")
	}
	if err := s.WritePackets([][]byte{encode(t, wire.NewText(1, "late"))}); err == nil {
		t.Fatal("WritePackets after Close succeeded")
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	// The client sees the server's end of stream, then closes.
	if _, err := read(t, c); !errors.Is(err, io.EOF) {
		t.Fatalf("client ReadPacket: got %v, want io.EOF", err)
	}
	c.Close()
}

func TestWriteDeadline(t *testing.T) {
	l := listen(t, serverConfig())
	c := dial(t, l)
	// The server never reads, so flow control soon blocks the writes.
	mib := encode(t, wire.NewOneWay(1, make([]byte, 1<<20-wire.HeaderSize)))
	batch := slices.Repeat([][]byte{mib}, 64)
	if err := c.SetWriteDeadline(time.Now().Add(200 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- c.WritePackets(batch) }()
	select {
	case err := <-errc:
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("WritePackets: got %v, want os.ErrDeadlineExceeded", err)
		}
	case <-time.After(wait):
		c.Close()
		<-errc
		t.Fatal("WritePackets ignored the write deadline")
	}
}

func TestServerGetConfigForClient(t *testing.T) {
	// The configuration returned per client lacks NextProtos: the
	// transport must still negotiate its ALPN.
	cfg := &runtime.TransportConfig{TLS: &tls.Config{
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) { return certs.Server.Clone(), nil },
	}}
	checkHealthy(t, listen(t, cfg))
}

func TestWriteTooLarge(t *testing.T) {
	l := listen(t, serverConfig())
	c := dial(t, l)
	huge := make([]byte, quic.MaxFrame+1)
	err := c.WritePackets([][]byte{encode(t, wire.NewText(1, "first")), huge})
	if !errors.Is(err, wire.ErrTooLarge) {
		t.Fatalf("WritePackets with a %d-byte packet: got %v, want ErrTooLarge", len(huge), err)
	}
	// Nothing of the rejected batch was written: the next packet is the
	// first the server sees.
	if err := c.WritePackets([][]byte{encode(t, wire.NewText(1, "second"))}); err != nil {
		t.Fatal(err)
	}
	s := accept(t, l)
	if got := mustRead(t, s); got.Text() != "second" {
		t.Fatalf("server read %q, want second", got.Text())
	}
	closePair(t, c, s)
}

func TestDialErrors(t *testing.T) {
	l := listen(t, serverConfig())
	addr := l.Addr().String()
	untrusted := testcert.New().Client
	tests := []struct {
		name string
		url  string
		cfg  *runtime.TransportConfig
	}{
		{"untrusted certificate", "quic://" + addr, &runtime.TransportConfig{TLS: untrusted}},
		{"wrong server name", "quic://" + addr, &runtime.TransportConfig{TLS: withServerName(certs.Client, "example.com")}},
		{"bad address", "quic://127.0.0.1", clientConfig()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			c, err := quic.Transport{}.Dial(ctx, mustURL(t, tt.url), tt.cfg)
			if err == nil {
				c.Close()
				t.Fatal("Dial succeeded")
			}
		})
	}
	t.Run("context ends", func(t *testing.T) {
		// A UDP socket that never answers.
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		c, err := quic.Transport{}.Dial(ctx, mustURL(t, "quic://"+pc.LocalAddr().String()), clientConfig())
		if err == nil {
			c.Close()
			t.Fatal("Dial succeeded")
		}
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Dial: got %v, want context.DeadlineExceeded", err)
		}
	})
	checkHealthy(t, l)
}

func withServerName(c *tls.Config, name string) *tls.Config {
	c = c.Clone()
	c.ServerName = name
	return c
}

func Example() {
	certs := testcert.New()
	ctx := context.Background()
	u, _ := url.Parse("quic://127.0.0.1:0")
	l, err := quic.Transport{}.Listen(ctx, u, &runtime.TransportConfig{TLS: certs.Server})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer l.Close()

	u, _ = url.Parse("quic://" + l.Addr().String())
	c, err := quic.Transport{}.Dial(ctx, u, &runtime.TransportConfig{TLS: certs.Client})
	if err != nil {
		fmt.Println(err)
		return
	}
	pkt, _ := wire.AppendPacket(nil, wire.NewText(1, "hello over quic"))
	_ = c.WritePackets([][]byte{pkt}) // the server learns of the stream now

	s, err := l.Accept()
	if err != nil {
		fmt.Println(err)
		return
	}
	p, _ := s.ReadPacket()
	fmt.Println(p.Text())

	c.Close()
	_, err = s.ReadPacket()
	fmt.Println(err)
	s.Close()
	// Output:
	// hello over quic
	// EOF
}

// BenchmarkThroughput sends 64-byte payloads in batches of 64 from a client
// to a server over loopback.
func BenchmarkThroughput(b *testing.B) {
	l, err := quic.Transport{}.Listen(context.Background(), &url.URL{Scheme: "quic", Host: "127.0.0.1:0"}, serverConfig())
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	c, err := quic.Transport{}.Dial(context.Background(), &url.URL{Scheme: "quic", Host: l.Addr().String()}, clientConfig())
	if err != nil {
		b.Fatal(err)
	}
	pkt, _ := wire.AppendPacket(nil, wire.NewOneWay(1, make([]byte, 64)))
	const batchLen = 64
	batch := slices.Repeat([][]byte{pkt}, batchLen)
	if err := c.WritePackets(batch[:1]); err != nil {
		b.Fatal(err)
	}
	s, err := l.Accept()
	if err != nil {
		b.Fatal(err)
	}
	if _, err := s.ReadPacket(); err != nil {
		b.Fatal(err)
	}
	n := b.N * batchLen
	done := make(chan error, 1)
	go func() {
		for range n {
			if _, err := s.ReadPacket(); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	b.SetBytes(int64(batchLen * (len(pkt) + 4)))
	b.ResetTimer()
	for range b.N {
		if err := c.WritePackets(batch); err != nil {
			b.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "msgs/s")
	b.StopTimer()
	c.Close()
	if _, err := s.ReadPacket(); !errors.Is(err, io.EOF) {
		b.Fatalf("after client Close: %v", err)
	}
	s.Close()
}

// TestResetKey: the stateless reset key is the same for the same
// certificate (so a restarted server resets its previous connections),
// differs between certificates, and is random without a static one.
func TestResetKey(t *testing.T) {
	other := testcert.New()
	a, b := quic.ResetKey(certs.Server), quic.ResetKey(certs.Server.Clone())
	if *a != *b {
		t.Error("two keys from one certificate differ")
	}
	if c := quic.ResetKey(other.Server); *c == *a {
		t.Error("two certificates gave the same key")
	}
	dynamic := &tls.Config{GetCertificate: certs.Server.GetCertificate}
	if x, y := quic.ResetKey(dynamic), quic.ResetKey(dynamic); *x == *y || *x == [32]byte{} {
		t.Error("without a static certificate the keys are not random")
	}
}
