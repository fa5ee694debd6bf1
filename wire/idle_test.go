package wire_test

import (
	"errors"
	"net"
	"testing"
	"time"

	"github.com/msgtrans/msgtrans-go/wire"
)

// connPair returns both ends of a loopback TCP connection, or of a
// net.Pipe (which has deadlines but no socket).
func connPair(t *testing.T, kind string) (client, server net.Conn) {
	t.Helper()
	if kind == "pipe" {
		client, server = net.Pipe()
		t.Cleanup(func() { client.Close(); server.Close() })
		return client, server
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	client, err = net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, err = l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

// TestDecoderIdleTimeout: a decoder told to stop waiting on an idle
// connection returns ErrIdle at a packet boundary, again and again, and
// reads on afterwards as if nothing happened; inside a packet the idle
// timeout does not apply (the packet read timeout does), and packets
// already buffered are returned before any idle wait.
func TestDecoderIdleTimeout(t *testing.T) {
	for _, kind := range []string{"tcp", "pipe"} {
		t.Run(kind, func(t *testing.T) {
			client, server := connPair(t, kind)
			dec := wire.NewDecoder(server, wire.Limits{PacketReadTimeout: 5 * time.Second})
			dec.PoolBodies()
			if !dec.SetIdleTimeout(20 * time.Millisecond) {
				t.Fatal("SetIdleTimeout = false on a connection with deadlines")
			}
			for i := range 3 {
				start := time.Now()
				if _, err := dec.Next(); !errors.Is(err, wire.ErrIdle) {
					t.Fatalf("wait %d: Next = %v, want ErrIdle", i, err)
				}
				if d := time.Since(start); d < 10*time.Millisecond {
					t.Fatalf("wait %d: ErrIdle after %v, want at least half the idle timeout", i, d)
				}
			}
			one := mustAppend(t, nil, wire.NewText(1, "first"))
			two := mustAppend(t, nil, wire.NewText(2, "second"))
			both := append(append([]byte{}, one...), two...)
			// Half a header, a pause longer than the idle timeout, the rest:
			// one packet, no ErrIdle in the middle.
			go func() {
				_, _ = client.Write(both[:5])
				time.Sleep(60 * time.Millisecond) // a slow peer, not synchronisation
				_, _ = client.Write(both[5:])
			}()
			for _, want := range []string{"first", "second"} {
				p, err := dec.Next()
				if err != nil || p.Text() != want {
					t.Fatalf("Next = %q, %v; want %q", p.Text(), err, want)
				}
				p.Release()
			}
			if _, err := dec.Next(); !errors.Is(err, wire.ErrIdle) {
				t.Fatalf("after the packets: Next = %v, want ErrIdle", err)
			}
			// Off again: the decoder waits without end, until the peer closes.
			dec.SetIdleTimeout(0)
			go func() {
				time.Sleep(60 * time.Millisecond) // longer than the idle timeout was
				client.Close()
			}()
			if _, err := dec.Next(); err == nil || errors.Is(err, wire.ErrIdle) {
				t.Fatalf("with the idle timeout off: Next = %v, want the end of the stream", err)
			}
		})
	}
}

// TestDecoderIdleTimeoutNeedsDeadlines: without SetReadDeadline there is
// nothing to stop a wait with, and SetIdleTimeout says so.
func TestDecoderIdleTimeoutNeedsDeadlines(t *testing.T) {
	dec := wire.NewDecoder(readerOnly{}, wire.Limits{})
	if dec.SetIdleTimeout(time.Second) {
		t.Fatal("SetIdleTimeout = true on a reader without deadlines")
	}
}

type readerOnly struct{}

func (readerOnly) Read([]byte) (int, error) { return 0, errors.New("never read") }
