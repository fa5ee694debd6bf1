package runtime_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/msgtrans/msgtrans-go/runtime"
	"github.com/msgtrans/msgtrans-go/wire"
)

// The handshake, fuzzed from both sides: whatever a peer sends first, the
// other side neither panics nor hangs, and a server that authenticates runs
// no handler for a connection that has not authenticated.

// helloBytes encodes a hello control packet carrying credentials (none when
// nil) and accepting the compressions in accept.
func helloBytes(tb testing.TB, credentials []byte, accept byte) []byte {
	e := wire.Ext{HasRoute: true, Route: wire.ControlRoute, Control: wire.ControlHello, Auth: credentials}
	return packetBytes(tb, &wire.Packet{
		Type: wire.OneWay, Flags: wire.FlagHasRouteTag, MessageID: 1,
		Ext: wire.AppendExt(nil, &e), Payload: []byte{accept},
	})
}

// statusBytes encodes a control packet of the kind with the status code
// and message (a go-away refusal when code is not OK).
func statusBytes(tb testing.TB, kind wire.ControlKind, code runtime.Code, msg string) []byte {
	e := wire.Ext{HasRoute: true, Route: wire.ControlRoute, Control: kind, Code: code, Message: msg}
	return packetBytes(tb, &wire.Packet{
		Type: wire.OneWay, Flags: wire.FlagHasRouteTag, MessageID: 7, Ext: wire.AppendExt(nil, &e),
	})
}

func handshakeSeeds(tb testing.TB) [][]byte {
	req := wire.NewRequest(bizEcho, []byte("hi"))
	req.MessageID = 5
	request := packetBytes(tb, req)
	return [][]byte{
		nil,
		helloBytes(tb, []byte("good"), 0x06),
		append(helloBytes(tb, []byte("good"), 0x06), request...),
		append(helloBytes(tb, []byte("bad"), 0), request...),
		append(helloBytes(tb, nil, 0xFF), request...),
		request,
		append(statusBytes(tb, wire.ControlPing, runtime.CodeOK, ""), helloBytes(tb, []byte("good"), 0)...),
		statusBytes(tb, wire.ControlGoAway, runtime.CodeUnauthenticated, "no"),
		statusBytes(tb, wire.ControlGoAway, runtime.CodeOK, ""),
		helloBytes(tb, []byte("good"), 0x06)[:20],
		[]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
	}
}

// FuzzServerHandshake sends each input as the first bytes of a TCP
// connection to a server that authenticates, half-closes, and reads until
// the server closes. A handler that runs for a session without the identity
// the authenticator binds fails the target.
func FuzzServerHandshake(f *testing.F) {
	for _, s := range handshakeSeeds(f) {
		f.Add(s)
	}
	var unauthenticated atomic.Int64
	srv, err := runtime.NewServer(
		runtime.WithAuthenticator(tokenAuth),
		runtime.WithHandshakeTimeout(2*time.Second),
		runtime.WithLimits(wire.Limits{PacketReadTimeout: 2 * time.Second}),
		runtime.WithMaxConnectionsPerIP(1000),
		runtime.WithLogger(slog.New(slog.DiscardHandler)),
	)
	if err != nil {
		f.Fatal(err)
	}
	handler := runtime.HandlerFunc(func(_ context.Context, s *runtime.Session, p *wire.Packet) (*wire.Packet, error) {
		if s.Identity() != "alice" {
			unauthenticated.Add(1)
		}
		return p.Reply(nil), nil
	})
	for biz := range 256 {
		srv.Handle(uint8(biz), handler)
	}
	if err := srv.Listen(context.Background(), "tcp://127.0.0.1:0"); err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = srv.Close() })
	addr := strings.TrimPrefix(srv.Addrs()[0], "tcp://")

	f.Fuzz(func(t *testing.T, in []byte) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		// The server may close before reading everything: a failed write
		// is an answer too.
		if _, err := c.Write(in); err == nil {
			_ = c.(*net.TCPConn).CloseWrite()
		}
		if _, err := io.Copy(io.Discard, c); err != nil && !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("the server did not close the connection: %v", err)
		}
		if n := unauthenticated.Load(); n != 0 {
			t.Fatalf("%d handlers ran for unauthenticated sessions", n)
		}
	})
}

// FuzzClientHandshake answers a client's connection with each input and
// closes. The client neither panics nor hangs: Connect fails (the answer
// was not a server's hello, or was a refusal), or it connects and ends when
// the server closes (it does not reconnect).
func FuzzClientHandshake(f *testing.F) {
	for _, s := range handshakeSeeds(f) {
		f.Add(s)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = ln.Close() })
	answers := make(chan []byte)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			in := <-answers
			_, _ = c.Write(in)
			_ = c.(*net.TCPConn).CloseWrite()
			_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
			_, _ = io.Copy(io.Discard, c)
			_ = c.Close()
		}
	}()

	f.Fuzz(func(t *testing.T, in []byte) {
		c, err := runtime.NewClient("tcp://"+ln.Addr().String(), runtime.WithoutReconnect(),
			runtime.WithLogger(slog.New(slog.DiscardHandler)))
		if err != nil {
			t.Fatal(err)
		}
		c.Handle(bizEcho, echo)
		errc := make(chan error, 1)
		go func() { errc <- c.Connect(context.Background()) }()
		answers <- in
		if err := <-errc; err != nil {
			// The answer was not a msgtrans server's (or was a refusal):
			// the attempt failed cleanly.
			_ = c.Close()
			return
		}
		select {
		case <-c.Done():
		case <-time.After(10 * time.Second):
			t.Fatal("the client did not end when the server closed")
		}
		_ = c.Close()
	})
}
