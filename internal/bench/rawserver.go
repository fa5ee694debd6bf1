package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	quicgo "github.com/quic-go/quic-go"
)

// rawServer accepts raw connections on one transport and runs handle for
// each in a goroutine of its own; handle returns when the connection fails.
type rawServer struct {
	addr   string // host:port (ws: a ws:// URL)
	handle func(*rawConn)
	stop   func() error

	mu     sync.Mutex
	conns  map[*rawConn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// serveRaw starts a raw server on the transport.
func serveRaw(transport string, tlsConf *tls.Config, handle func(*rawConn)) (*rawServer, error) {
	s := &rawServer{handle: handle, conns: make(map[*rawConn]struct{})}
	switch transport {
	case "tcp":
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		s.addr, s.stop = l.Addr().String(), l.Close
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				s.run(newTCPRawConn(c))
			}
		}()
	case "ws":
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		up := websocket.Upgrader{ReadBufferSize: 4096, WriteBufferSize: 4096}
		hs := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			hw := &bufHijacker{ResponseWriter: w}
			ws, err := up.Upgrade(hw, r, nil)
			if err != nil {
				return
			}
			s.run(newWSRawConn(ws, hw.bc))
		})}
		s.addr, s.stop = "ws://"+l.Addr().String()+"/", hs.Close
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			_ = hs.Serve(l)
		}()
	case "quic":
		conf := tlsConf.Clone()
		conf.NextProtos = []string{rawALPN}
		l, err := quicgo.ListenAddr("127.0.0.1:0", conf, &quicgo.Config{MaxIdleTimeout: time.Minute})
		if err != nil {
			return nil, err
		}
		ctx, cancel := context.WithCancel(context.Background())
		s.addr = l.Addr().String()
		s.stop = func() error { cancel(); return l.Close() }
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			for {
				qc, err := l.Accept(ctx)
				if err != nil {
					return
				}
				s.wg.Add(1)
				go func() {
					defer s.wg.Done()
					st, err := qc.AcceptStream(ctx)
					if err != nil {
						_ = qc.CloseWithError(0, "")
						return
					}
					s.run(newQUICRawConn(qc, st))
				}()
			}
		}()
	default:
		return nil, fmt.Errorf("no raw transport %q", transport)
	}
	return s, nil
}

// run tracks c and runs the handler for it in a goroutine.
func (s *rawServer) run(c *rawConn) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		_ = c.close()
		c.wait()
		return
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		s.handle(c)
		_ = c.close()
		c.wait()
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
	}()
}

// count returns the number of open connections.
func (s *rawServer) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// each calls f for every open connection.
func (s *rawServer) each(f func(*rawConn)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		f(c)
	}
}

// close stops the server, closes every connection and waits for the
// handlers.
func (s *rawServer) close() {
	s.mu.Lock()
	s.closed = true
	conns := make([]*rawConn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	_ = s.stop()
	for _, c := range conns {
		_ = c.close()
	}
	s.wg.Wait()
}

// bufHijacker wraps the hijacked connection of an upgrade in a wsBufConn.
type bufHijacker struct {
	http.ResponseWriter
	bc *wsBufConn
}

func (h *bufHijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := h.ResponseWriter.(http.Hijacker).Hijack()
	if err != nil {
		return nil, nil, err
	}
	h.bc = &wsBufConn{Conn: c}
	return h.bc, brw, nil
}
