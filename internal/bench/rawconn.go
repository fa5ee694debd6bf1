package main

import (
	"bufio"
	"sync"
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
