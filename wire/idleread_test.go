//go:build linux

package wire_test

import (
	"bytes"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/msgtrans/msgtrans-go/runtime"
	"github.com/msgtrans/msgtrans-go/wire"
)

// readSyscalls returns the process's read system calls so far.
func readSyscalls(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		t.Skip("no /proc/self/io:", err)
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "syscr: "); ok {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no syscr in /proc/self/io")
	return 0
}

// TestSocketReadsWholePackets: on a TCP connection, a packet that has
// arrived whole is read with one system call (not one for the header and
// one for the rest), although the connection holds no buffer between
// packets. Sizes around the 32 KiB read-ahead buffer still arrive intact.
func TestSocketReadsWholePackets(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	client, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	sc, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	server := runtime.NewStreamConn(sc, wire.Limits{})
	defer server.Close()

	small := mustAppend(t, nil, wire.NewText(1, "a small packet that arrives whole"))
	const n = 100
	before := readSyscalls(t)
	for range n {
		// Loopback delivers the write before it returns.
		if _, err := client.Write(small); err != nil {
			t.Fatal(err)
		}
		p, err := server.ReadPacket()
		if err != nil || p.Text() != "a small packet that arrives whole" {
			t.Fatalf("ReadPacket = %q, %v", p.Text(), err)
		}
	}
	// Reading /proc/self/io is a read too.
	if per := float64(readSyscalls(t)-before-1) / n; per > 1.1 {
		t.Errorf("%.2f read system calls per packet, want 1", per)
	}

	for _, size := range []int{100, 32<<10 - 20, 32 << 10, 32<<10 + 20, 200 << 10} {
		want := wire.NewOneWay(2, bytes.Repeat([]byte{byte(size)}, size))
		errc := make(chan error, 1)
		go func() {
			_, err := client.Write(mustAppend(t, nil, want))
			errc <- err
		}()
		got, err := server.ReadPacket()
		if err != nil || !bytes.Equal(got.Payload, want.Payload) {
			t.Fatalf("payload of %d bytes: got %d bytes, %v", size, len(got.Payload), err)
		}
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
}
