package runtime

import (
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/msgtrans/msgtrans-go/wire"
)

// A server's connection caps ([WithMaxConnections],
// [WithMaxConnectionsPerIP]) count a connection from the moment it appears,
// before any TLS, WebSocket or QUIC handshake: the transports' listeners
// call [TransportConfig.Admit] at accept (see [Admitter]) and give the place
// back when the connection closes or its handshake fails. For listeners
// that do not, the server takes the place when Accept returns the
// connection.

// admit takes a place under the connection caps for a connection from
// remote; see [TransportConfig.Admit].
// transport is the listener's scheme, for the observer.
func (s *Server) admit(transport string, remote net.Addr) (release func(), err error) {
	host := s.hostKey(remote)
	var why RefuseReason
	s.mu.Lock()
	switch {
	case s.shutdown:
		err, why = NewError(CodeUnavailable, "the server is shutting down"), RefuseShuttingDown
	case s.open >= s.cfg.maxConns:
		err, why = Errorf(CodeResourceExhausted, "the server holds its maximum of %d connections", s.cfg.maxConns), RefuseMaxConns
	case s.perIP[host] >= s.cfg.maxConnsPerIP:
		err, why = Errorf(CodeResourceExhausted, "too many connections from %s (at most %d)", host, s.cfg.maxConnsPerIP), RefuseMaxConnsPerIP
	default:
		s.open++
		if s.perIP == nil {
			s.perIP = make(map[string]int)
		}
		s.perIP[host]++
	}
	s.mu.Unlock()
	if err != nil {
		s.refusals.log(s.cfg, remote, err)
		s.cfg.obs.refused(transport, why)
		return nil, err
	}
	var once atomic.Bool
	return func() {
		if once.Swap(true) {
			return
		}
		s.mu.Lock()
		s.open--
		if s.perIP[host]--; s.perIP[host] == 0 {
			delete(s.perIP, host)
		}
		s.mu.Unlock()
	}, nil
}

// DefaultIPv6Prefix is the prefix length under which IPv6 peers count as
// one host for [WithMaxConnectionsPerIP]: a /64, the least a site is
// usually given, so a host cannot escape the cap by using many addresses
// of its own network.
const DefaultIPv6Prefix = 64

// WithIPv6PrefixLength sets how many leading bits of an IPv6 address name
// one host for [WithMaxConnectionsPerIP]. Default 64; 128 counts each
// address alone.
func WithIPv6PrefixLength(bits int) ServerOption {
	return serverOption{"WithIPv6PrefixLength", func(c *config) { c.ipv6Prefix = bits }}
}

// hostKey names the host a connection comes from, for the per-host cap: the
// IPv4 address, or the IPv6 address's prefix of the configured length.
func (s *Server) hostKey(a net.Addr) string {
	var ip netip.Addr
	switch a := a.(type) {
	case *net.TCPAddr:
		ip, _ = netip.AddrFromSlice(a.IP)
	case *net.UDPAddr:
		ip, _ = netip.AddrFromSlice(a.IP)
	default:
		if a == nil {
			return ""
		}
		ap, err := netip.ParseAddrPort(a.String())
		if err != nil {
			return hostOf(a)
		}
		ip = ap.Addr()
	}
	ip = ip.Unmap()
	if ip.Is6() && s.cfg.ipv6Prefix < 128 {
		if p, err := ip.Prefix(s.cfg.ipv6Prefix); err == nil {
			return p.String()
		}
	}
	return ip.String()
}

// hostOf returns the host part of a network address ("" when it has none).
func hostOf(a net.Addr) string {
	if a == nil {
		return ""
	}
	if h, _, err := net.SplitHostPort(a.String()); err == nil {
		return h
	}
	return a.String()
}

// AppendRefusal appends the encoding of a go-away packet that refuses a
// connection: it carries why's status ([CodeOf] and message) and asks the
// client to wait [RefusalRetryAfter] before trying again, as a msgtrans-go
// client does. Listeners that refuse a connection before any handshake,
// where the transport's framing allows it (plain TCP), write it before
// closing.
func AppendRefusal(dst []byte, why error) []byte {
	b, _ := wire.AppendPacket(dst, refusalPacket(why, RefusalRetryAfter))
	return b
}

// TemporaryAcceptError reports whether an error from accepting a connection
// passes with time: the process or the system is out of file descriptors
// or buffers (EMFILE, ENFILE, ENOBUFS, ENOMEM), or one connection went away
// before it was accepted (ECONNABORTED). A listener retries those with a
// growing delay instead of stopping.
func TemporaryAcceptError(err error) bool {
	for _, e := range [...]syscall.Errno{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM,
		syscall.ECONNABORTED, syscall.EINTR, syscall.EAGAIN, syscall.EPROTO, syscall.EPERM} {
		if errors.Is(err, e) {
			return true
		}
	}
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

// AcceptRetryDelay returns the wait before retrying after a temporary
// accept error, given the previous one (0 at first): 5 ms, doubling, at
// most a second.
func AcceptRetryDelay(previous time.Duration) time.Duration {
	if previous == 0 {
		return 5 * time.Millisecond
	}
	return min(2*previous, time.Second)
}

// logLimiter logs a recurring event at most once a second, saying how many
// were not logged meanwhile, so that an attack cannot flood the log.
type logLimiter struct {
	mu      sync.Mutex
	last    time.Time
	skipped int
}

// log logs a refused connection.
func (l *logLimiter) log(cfg *config, remote net.Addr, why error) {
	if skipped, ok := l.due(); ok {
		cfg.logger.Warn("msgtrans: connection refused", "remote", addrString(remote), "reason", why, "not_logged", skipped)
	}
}

// due reports whether the event is to be logged now, and how many were not
// since the last one logged.
func (l *logLimiter) due() (int, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now := time.Now(); now.Sub(l.last) >= time.Second {
		skipped := l.skipped
		l.last, l.skipped = now, 0
		return skipped, true
	}
	l.skipped++
	return 0, false
}

// acceptFailed logs a listener's temporary accept error, at most once a
// second.
func (s *Server) acceptFailed(scheme string, err error, retry time.Duration) {
	if skipped, ok := s.acceptErrors.due(); ok {
		s.cfg.logger.Warn("msgtrans: accept failed; retrying", "transport", scheme, "err", err, "retry_in", retry, "not_logged", skipped)
	}
}
