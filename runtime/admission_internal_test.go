package runtime

import (
	"net"
	"testing"
)

// TestHostKey: IPv4 peers count per address; IPv6 peers per prefix of the
// configured length (a /64 by default), so a host cannot escape the
// per-host cap with the many addresses of its own network.
func TestHostKey(t *testing.T) {
	tests := []struct {
		prefix int
		addr   net.Addr
		want   string
	}{
		{0, &net.TCPAddr{IP: net.ParseIP("192.0.2.7"), Port: 1}, "192.0.2.7"},
		{0, &net.TCPAddr{IP: net.ParseIP("::ffff:192.0.2.7"), Port: 1}, "192.0.2.7"},
		{0, &net.TCPAddr{IP: net.ParseIP("2001:db8:1:2:3::1"), Port: 1}, "2001:db8:1:2::/64"},
		{0, &net.UDPAddr{IP: net.ParseIP("2001:db8:1:2:ffff::9"), Port: 1}, "2001:db8:1:2::/64"},
		{48, &net.TCPAddr{IP: net.ParseIP("2001:db8:1:2:3::1"), Port: 1}, "2001:db8:1::/48"},
		{128, &net.TCPAddr{IP: net.ParseIP("2001:db8:1:2:3::1"), Port: 1}, "2001:db8:1:2:3::1"},
		{0, &net.UnixAddr{Name: "@x", Net: "unix"}, "@x"},
	}
	for _, tt := range tests {
		var opts []ServerOption
		if tt.prefix != 0 {
			opts = append(opts, WithIPv6PrefixLength(tt.prefix))
		}
		srv, err := NewServer(opts...)
		if err != nil {
			t.Fatal(err)
		}
		if got := srv.hostKey(tt.addr); got != tt.want {
			t.Errorf("prefix %d: hostKey(%v) = %q, want %q", tt.prefix, tt.addr, got, tt.want)
		}
	}
	for _, bad := range []int{-1, 129} {
		if _, err := NewServer(WithIPv6PrefixLength(bad)); err == nil {
			t.Errorf("WithIPv6PrefixLength(%d) accepted", bad)
		}
	}
}
