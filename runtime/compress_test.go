package runtime_test

import (
	"net"
	"testing"
	"time"

	"github.com/msgtrans/msgtrans-go/runtime"
)

func TestScratchSlowConsumerTCP(t *testing.T) {
	a, _ := runtime.AppendPacket(nil, runtime.NewOneWay(1, []byte("aaaaaaaa")))
	b, _ := runtime.AppendPacket(nil, runtime.NewOneWay(2, []byte("bbbbbbbbbbbbbbbbbbbbbbbbbb")))
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	defer ln.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, _ := net.Dial("tcp", ln.Addr().String())
		c.(*net.TCPConn).SetNoDelay(true)
		c.Write(append(append([]byte{}, a...), b[:20]...))
		<-time.After(5 * time.Millisecond)
		c.Write(b[20:])
		<-time.After(500 * time.Millisecond)
		c.Close()
	}()
	s, _ := ln.Accept()
	defer s.Close()
	dec := runtime.NewDecoder(s, runtime.Limits{PacketReadTimeout: 50 * time.Millisecond})
	p, err := dec.Next()
	t.Logf("A: %v %v", p.String(), err)
	<-time.After(100 * time.Millisecond)
	p, err = dec.Next()
	t.Logf("B: %v %v", p.String(), err)
	<-done
}
