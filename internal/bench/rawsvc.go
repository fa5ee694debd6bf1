package main

import (
	"encoding/binary"
	"errors"
	"sync"

	"google.golang.org/protobuf/proto"

	"github.com/msgtrans/msgtrans-go/internal/bench/gen/benchv1"
)

// The raw services decode and encode the same protobuf messages as the
// msgtrans ones, so that the comparison shows what the framework adds
// around them: framing, dispatch, queues.

// rawEchoHandler answers every EchoRequest frame with an EchoedRequest
// frame carrying the same payload.
func rawEchoHandler(c *rawConn) {
	for {
		f, err := c.read()
		if err != nil {
			return
		}
		var req benchv1.EchoRequest
		if err := proto.Unmarshal(f, &req); err != nil {
			return
		}
		if err := c.send(marshal(&benchv1.EchoedRequest{Payload: req.Payload})); err != nil {
			return
		}
	}
}

// rawReadEchoed reads EchoedRequest frames until the connection fails,
// calling f with each payload.
func rawReadEchoed(c *rawConn, f func(*benchv1.Payload)) {
	for {
		b, err := c.read()
		if err != nil {
			return
		}
		var m benchv1.EchoedRequest
		if err := proto.Unmarshal(b, &m); err != nil {
			return
		}
		f(m.Payload)
	}
}

// The raw request/response protocol: each frame is a u32 big-endian call
// id and a CallRequest (or CallResponse), answered in any order.

// rawRPCHandler answers calls inline, on the connection's reader.
func rawRPCHandler(c *rawConn) {
	for {
		f, err := c.read()
		if err != nil || len(f) < 4 {
			return
		}
		var req benchv1.CallRequest
		if err := proto.Unmarshal(f[4:], &req); err != nil {
			return
		}
		resp := &benchv1.CallResponse{Payload: req.Payload}
		out := make([]byte, 4, 4+proto.Size(resp))
		copy(out, f[:4])
		if out, err = (proto.MarshalOptions{}).MarshalAppend(out, resp); err != nil {
			return
		}
		if err := c.send(out); err != nil {
			return
		}
	}
}

var errRawClosed = errors.New("raw rpc: connection closed")

// rawRPCClient multiplexes concurrent calls over one raw connection: call
// ids and a map of pending calls.
type rawRPCClient struct {
	c *rawConn

	mu      sync.Mutex
	next    uint32
	pending map[uint32]chan *benchv1.CallResponse
	failed  bool

	done chan struct{} // closed when the reader exits
}

var replyPool = sync.Pool{New: func() any { return make(chan *benchv1.CallResponse, 1) }}

func newRawRPCClient(c *rawConn) *rawRPCClient {
	r := &rawRPCClient{c: c, pending: make(map[uint32]chan *benchv1.CallResponse), done: make(chan struct{})}
	go r.readLoop()
	return r
}

// call sends req and waits for its response.
func (r *rawRPCClient) call(req *benchv1.CallRequest) (*benchv1.CallResponse, error) {
	ch := replyPool.Get().(chan *benchv1.CallResponse)
	r.mu.Lock()
	if r.failed {
		r.mu.Unlock()
		return nil, errRawClosed
	}
	r.next++
	id := r.next
	r.pending[id] = ch
	r.mu.Unlock()

	out := make([]byte, 4, 4+proto.Size(req))
	binary.BigEndian.PutUint32(out, id)
	out, err := (proto.MarshalOptions{}).MarshalAppend(out, req)
	if err == nil {
		err = r.c.send(out)
	}
	if err != nil {
		r.mu.Lock()
		delete(r.pending, id)
		r.mu.Unlock()
		return nil, err
	}
	select {
	case resp := <-ch:
		replyPool.Put(ch)
		return resp, nil
	case <-r.done:
		return nil, errRawClosed
	}
}

func (r *rawRPCClient) readLoop() {
	defer func() {
		r.mu.Lock()
		r.failed = true
		r.mu.Unlock()
		close(r.done)
	}()
	for {
		f, err := r.c.read()
		if err != nil || len(f) < 4 {
			return
		}
		id := binary.BigEndian.Uint32(f)
		resp := new(benchv1.CallResponse)
		if err := proto.Unmarshal(f[4:], resp); err != nil {
			return
		}
		r.mu.Lock()
		ch, ok := r.pending[id]
		delete(r.pending, id)
		r.mu.Unlock()
		if ok {
			ch <- resp
		}
	}
}

// close closes the connection and waits for the reader and writer.
func (r *rawRPCClient) close() {
	_ = r.c.close()
	<-r.done
	r.c.wait()
}
