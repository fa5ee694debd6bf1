package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	quicgo "github.com/quic-go/quic-go"
)

// The raw baselines share this frame layer, written with the care the
// runtime takes: per connection one reader and one writer goroutine; the
// writer drains a queue into a pooled bufio.Writer and flushes once the
// queue is empty, so that under load many frames share a system call. TCP
// and QUIC frames are a u32 big-endian length and the bytes; on WebSocket a
// frame is one binary message, written by gorilla through a buffering
// net.Conn.

// maxRawFrame bounds a frame a raw reader accepts.
const maxRawFrame = 1 << 20

// rawALPN is the TLS application protocol of the raw QUIC baseline.
const rawALPN = "msgtrans-bench-raw"

// writeBufSize is the size of the writers' pooled buffers.
const writeBufSize = 32 << 10

var writerPool = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, writeBufSize) }}

// frameReader reads whole frames; a frame is valid until the next call.
type frameReader interface {
	readFrame() ([]byte, error)
}

// frameWriter writes frames between begin and end; end flushes.
type frameWriter interface {
	begin()
	writeFrame(b []byte) error
	end() error
}

// rawConn is a connection carrying frames, with a queued writer.
type rawConn struct {
	r      frameReader
	w      frameWriter
	closer func() error

	mu    sync.Mutex
	queue [][]byte
	err   error // the writer's first error

	wake chan struct{} // a send happened (capacity 1)
	done chan struct{} // closed by close
	once sync.Once
	wg   sync.WaitGroup
}

func newRawConn(r frameReader, w frameWriter, closer func() error) *rawConn {
	c := &rawConn{r: r, w: w, closer: closer, wake: make(chan struct{}, 1), done: make(chan struct{})}
	c.wg.Add(1)
	go c.writeLoop()
	return c
}

// send queues b, which must not be modified afterwards.
func (c *rawConn) send(b []byte) error {
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return err
	}
	c.queue = append(c.queue, b)
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
	return nil
}

// read returns the next frame, valid until the next call. Only one
// goroutine may read.
func (c *rawConn) read() ([]byte, error) { return c.r.readFrame() }

func (c *rawConn) writeLoop() {
	defer c.wg.Done()
	var spare [][]byte
	for {
		select {
		case <-c.wake:
		case <-c.done:
			return
		}
		c.w.begin()
		var err error
		for err == nil {
			c.mu.Lock()
			batch := c.queue
			if len(batch) == 0 {
				c.mu.Unlock()
				break
			}
			c.queue = spare[:0]
			c.mu.Unlock()
			for _, b := range batch {
				if err = c.w.writeFrame(b); err != nil {
					break
				}
			}
			clear(batch)
			spare = batch
		}
		if ferr := c.w.end(); err == nil {
			err = ferr
		}
		if err != nil {
			c.mu.Lock()
			c.err = err
			c.mu.Unlock()
			_ = c.close()
			return
		}
	}
}

// close closes the connection and waits for the writer. It is idempotent.
func (c *rawConn) close() error {
	var err error
	c.once.Do(func() {
		close(c.done)
		err = c.closer()
	})
	return err
}

// wait waits for the writer to exit after close.
func (c *rawConn) wait() { c.wg.Wait() }

// streamReader reads u32-length-prefixed frames.
type streamReader struct {
	br  *bufio.Reader
	hdr [4]byte
	buf []byte
}

func newStreamReader(r io.Reader, size int) *streamReader {
	return &streamReader{br: bufio.NewReaderSize(r, size)}
}

func (s *streamReader) readFrame() ([]byte, error) {
	if _, err := io.ReadFull(s.br, s.hdr[:]); err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint32(s.hdr[:]))
	if n > maxRawFrame {
		return nil, fmt.Errorf("raw frame of %d bytes", n)
	}
	if cap(s.buf) < n {
		s.buf = make([]byte, n)
	}
	b := s.buf[:n]
	if _, err := io.ReadFull(s.br, b); err != nil {
		return nil, err
	}
	return b, nil
}

// streamWriter writes u32-length-prefixed frames through a pooled buffer.
type streamWriter struct {
	w   io.Writer
	bw  *bufio.Writer
	hdr [4]byte
}

func (s *streamWriter) begin() {
	s.bw = writerPool.Get().(*bufio.Writer)
	s.bw.Reset(s.w)
}

func (s *streamWriter) writeFrame(b []byte) error {
	binary.BigEndian.PutUint32(s.hdr[:], uint32(len(b)))
	if _, err := s.bw.Write(s.hdr[:]); err != nil {
		return err
	}
	_, err := s.bw.Write(b)
	return err
}

func (s *streamWriter) end() error {
	err := s.bw.Flush()
	s.bw.Reset(nil)
	writerPool.Put(s.bw)
	s.bw = nil
	return err
}

// newTCPRawConn frames a TCP connection.
func newTCPRawConn(c net.Conn) *rawConn {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
	return newRawConn(newStreamReader(c, 4<<10), &streamWriter{w: c}, c.Close)
}

// wsBufConn is the net.Conn under a raw gorilla connection: between a
// writer's begin and end, what gorilla writes is gathered in a pooled
// buffer; otherwise (handshake, control frames) it goes straight out.
type wsBufConn struct {
	net.Conn
	mu sync.Mutex
	bw *bufio.Writer
}

func (c *wsBufConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.bw != nil {
		return c.bw.Write(p)
	}
	return c.Conn.Write(p)
}

// wsFrames reads and writes frames as binary messages.
type wsFrames struct {
	ws  *websocket.Conn
	bc  *wsBufConn
	buf []byte
}

func (f *wsFrames) readFrame() ([]byte, error) {
	_, r, err := f.ws.NextReader()
	if err != nil {
		return nil, err
	}
	if f.buf == nil {
		f.buf = make([]byte, 512)
	}
	n := 0
	for {
		if n == len(f.buf) {
			if n >= maxRawFrame {
				return nil, errors.New("raw ws message too large")
			}
			f.buf = append(f.buf, make([]byte, n)...)
		}
		m, err := r.Read(f.buf[n:])
		n += m
		if err == io.EOF {
			return f.buf[:n], nil
		}
		if err != nil {
			return nil, err
		}
	}
}

func (f *wsFrames) begin() {
	bw := writerPool.Get().(*bufio.Writer)
	bw.Reset(f.bc.Conn)
	f.bc.mu.Lock()
	f.bc.bw = bw
	f.bc.mu.Unlock()
}

func (f *wsFrames) writeFrame(b []byte) error { return f.ws.WriteMessage(websocket.BinaryMessage, b) }

func (f *wsFrames) end() error {
	f.bc.mu.Lock()
	bw := f.bc.bw
	f.bc.bw = nil
	f.bc.mu.Unlock()
	err := bw.Flush()
	bw.Reset(nil)
	writerPool.Put(bw)
	return err
}

func newWSRawConn(ws *websocket.Conn, bc *wsBufConn) *rawConn {
	f := &wsFrames{ws: ws, bc: bc}
	return newRawConn(f, f, ws.Close)
}

// newQUICRawConn frames the one stream of a QUIC connection.
func newQUICRawConn(qc *quicgo.Conn, s *quicgo.Stream) *rawConn {
	return newRawConn(newStreamReader(s, 4<<10), &streamWriter{w: s}, func() error {
		return qc.CloseWithError(0, "")
	})
}

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

// dialRaw connects to a raw server.
func dialRaw(ctx context.Context, transport, addr string, tlsConf *tls.Config) (*rawConn, error) {
	switch transport {
	case "tcp":
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, err
		}
		return newTCPRawConn(c), nil
	case "ws":
		var bc *wsBufConn
		d := websocket.Dialer{NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			var nd net.Dialer
			c, err := nd.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			if tc, ok := c.(*net.TCPConn); ok {
				_ = tc.SetNoDelay(true)
			}
			bc = &wsBufConn{Conn: c}
			return bc, nil
		}}
		ws, _, err := d.DialContext(ctx, addr, nil)
		if err != nil {
			return nil, err
		}
		return newWSRawConn(ws, bc), nil
	case "quic":
		conf := tlsConf.Clone()
		conf.NextProtos = []string{rawALPN}
		if host, _, err := net.SplitHostPort(addr); err == nil && conf.ServerName == "" {
			conf.ServerName = host
		}
		qc, err := quicgo.DialAddr(ctx, addr, conf, &quicgo.Config{MaxIdleTimeout: time.Minute})
		if err != nil {
			return nil, err
		}
		st, err := qc.OpenStreamSync(ctx)
		if err != nil {
			_ = qc.CloseWithError(0, "")
			return nil, err
		}
		return newQUICRawConn(qc, st), nil
	}
	return nil, fmt.Errorf("no raw transport %q", transport)
}
