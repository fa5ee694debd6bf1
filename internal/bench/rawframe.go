package main

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"

	"github.com/gorilla/websocket"
	quicgo "github.com/quic-go/quic-go"
)

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
