package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"google.golang.org/protobuf/proto"

	"github.com/msgtrans/msgtrans-go/internal/bench/gen/benchv1"
)

// gorillaServer serves WebSocket upgrades and tracks the upgraded
// connections so that close can end them.
type gorillaServer struct {
	addr  string // ws:// URL
	hs    *http.Server
	count atomic.Int64 // upgraded connections open

	mu     sync.Mutex
	conns  map[*websocket.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// startGorilla serves upgrades with up and runs serve for each connection:
// in the HTTP handler when inHandler is set (the plain way), else in a
// goroutine of its own after the handler has returned (which frees the
// handler's goroutine and stack).
func startGorilla(up websocket.Upgrader, inHandler bool, serve func(*websocket.Conn)) (*gorillaServer, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &gorillaServer{addr: "ws://" + l.Addr().String() + "/", conns: make(map[*websocket.Conn]struct{})}
	s.hs = &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			ws.Close()
			return
		}
		s.conns[ws] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		s.count.Add(1)
		run := func() {
			defer s.wg.Done()
			serve(ws)
			ws.Close()
			s.count.Add(-1)
			s.mu.Lock()
			delete(s.conns, ws)
			s.mu.Unlock()
		}
		if inHandler {
			run()
		} else {
			go run()
		}
	})}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		_ = s.hs.Serve(l)
	}()
	return s, nil
}

func (s *gorillaServer) close() {
	s.mu.Lock()
	s.closed = true
	for ws := range s.conns {
		ws.Close()
	}
	s.mu.Unlock()
	_ = s.hs.Close()
	s.wg.Wait()
}

// startNaiveGorillaEcho is the plain gorilla echo server: default buffers,
// the connection served in the HTTP handler, and one WriteMessage (one
// write system call) per message.
func startNaiveGorillaEcho() (*gorillaServer, error) {
	return startGorilla(websocket.Upgrader{}, true, func(ws *websocket.Conn) {
		for {
			_, b, err := ws.ReadMessage()
			if err != nil {
				return
			}
			var req benchv1.EchoRequest
			if err := proto.Unmarshal(b, &req); err != nil {
				return
			}
			if err := ws.WriteMessage(websocket.BinaryMessage, marshal(&benchv1.EchoedRequest{Payload: req.Payload})); err != nil {
				return
			}
		}
	})
}

// Tuned gorilla buffers for idle connections.
const (
	tunedReadBuffer  = 512
	tunedWriteBuffer = 1024
)

var tunedWritePool sync.Pool

// startTunedGorilla is a plain gorilla server tuned for idle connections:
// small read buffers, a WriteBufferPool, and the read loop outside the
// HTTP handler. It reads and discards messages.
func startTunedGorilla() (*gorillaServer, error) {
	up := websocket.Upgrader{ReadBufferSize: tunedReadBuffer, WriteBufferSize: tunedWriteBuffer, WriteBufferPool: &tunedWritePool}
	return startGorilla(up, false, func(ws *websocket.Conn) {
		for {
			_, r, err := ws.NextReader()
			if err != nil {
				return
			}
			if _, err := io.Copy(io.Discard, r); err != nil {
				return
			}
		}
	})
}

// dialGorilla connects a plain gorilla client.
func dialGorilla(ctx context.Context, url string, readBuf, writeBuf int) (*websocket.Conn, error) {
	d := websocket.Dialer{ReadBufferSize: readBuf, WriteBufferSize: writeBuf}
	ws, _, err := d.DialContext(ctx, url, nil)
	return ws, err
}

// rawIdleServer is the leanest TCP server: one goroutine per connection
// blocked in Read with a small buffer on its stack, discarding what
// arrives.
type rawIdleServer struct {
	l     net.Listener
	addr  string
	count atomic.Int64

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

func startRawIdle() (*rawIdleServer, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &rawIdleServer{l: l, addr: l.Addr().String(), conns: make(map[net.Conn]struct{})}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			if s.closed {
				s.mu.Unlock()
				c.Close()
				continue
			}
			s.conns[c] = struct{}{}
			s.wg.Add(1)
			s.mu.Unlock()
			s.count.Add(1)
			go s.serve(c)
		}
	}()
	return s, nil
}

func (s *rawIdleServer) serve(c net.Conn) {
	defer s.wg.Done()
	var buf [128]byte
	for {
		if _, err := c.Read(buf[:]); err != nil {
			break
		}
	}
	c.Close()
	s.count.Add(-1)
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

func (s *rawIdleServer) close() {
	s.mu.Lock()
	s.closed = true
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.l.Close()
	s.wg.Wait()
}
