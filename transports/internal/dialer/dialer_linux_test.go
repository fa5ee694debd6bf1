package dialer

import (
	"net"
	"testing"

	"golang.org/x/sys/unix"
)

func TestTCPFromLocalAddress(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	for _, tc := range []struct {
		name   string
		local  net.IP
		noPort int
	}{
		{"system's choice", nil, 0},
		{"from 127.0.0.7", net.IPv4(127, 0, 0, 7), 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := TCP(tc.local).Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			la := c.LocalAddr().(*net.TCPAddr)
			if tc.local != nil && !la.IP.Equal(tc.local) {
				t.Errorf("connected from %v, want %v", la.IP, tc.local)
			}
			if la.Port == 0 {
				t.Error("no local port after connect")
			}
			rc, err := c.(*net.TCPConn).SyscallConn()
			if err != nil {
				t.Fatal(err)
			}
			var got int
			var gerr error
			if err := rc.Control(func(fd uintptr) {
				got, gerr = unix.GetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_BIND_ADDRESS_NO_PORT)
			}); err != nil || gerr != nil {
				t.Fatal(err, gerr)
			}
			if got != tc.noPort {
				t.Errorf("IP_BIND_ADDRESS_NO_PORT = %d, want %d", got, tc.noPort)
			}
		})
	}
}
