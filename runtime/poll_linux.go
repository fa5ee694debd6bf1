//go:build linux

package runtime

import (
	"fmt"
	"os"
	"syscall"
)

// poller waits, for a server, on the sockets of its parked sessions: one
// epoll instance, in which each parked socket is registered one-shot
// (EPOLLONESHOT, level-triggered when armed), keyed by its session's id.
// The epoll descriptor is itself waited on through Go's network poller,
// as any socket is, so the poller holds no thread while nothing happens
// and takes no scheduling detour when something does: one goroutine
// collects the ready sessions and hands each to wake.
type poller struct {
	file *os.File        // the epoll descriptor
	rc   syscall.RawConn // file's, to wait on it and to keep it open while used
	wake func(id uint64) // takes up a session whose socket is ready (or stale: ignored)
	done chan struct{}   // closed when the loop has returned

	// Used by the loop goroutine only.
	evs  [128]syscall.EpollEvent
	n    int
	err  error
	scan func(fd uintptr) bool // harvest, made once
}

func newPoller(wake func(id uint64)) (*poller, error) {
	fd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("epoll_create1", err)
	}
	// Non-blocking, so that os.NewFile registers it with Go's poller.
	if err := syscall.SetNonblock(fd, true); err != nil {
		_ = syscall.Close(fd)
		return nil, os.NewSyscallError("setnonblock", err)
	}
	f := os.NewFile(uintptr(fd), "msgtrans-epoll")
	rc, err := f.SyscallConn()
	if err != nil {
		_ = f.Close()
		return nil, err
	}
	p := &poller{file: f, rc: rc, wake: wake, done: make(chan struct{})}
	p.scan = p.harvest
	go p.loop()
	return p, nil
}

// loop hands out ready sessions until the poller is closed.
func (p *poller) loop() {
	defer close(p.done)
	for {
		if err := p.rc.Read(p.scan); err != nil {
			return // closed
		}
		if p.err != nil {
			return // cannot happen with a valid descriptor and buffer
		}
		for i := range p.evs[:p.n] {
			ev := &p.evs[i]
			p.wake(uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32)
		}
	}
}

// harvest collects the ready sessions without waiting; when there are
// none it returns false, and the read it serves waits for the epoll
// descriptor to become readable.
func (p *poller) harvest(fd uintptr) bool {
	for {
		n, err := syscall.EpollWait(int(fd), p.evs[:], 0)
		switch {
		case err == syscall.EINTR:
			continue
		case err != nil:
			p.n, p.err = 0, os.NewSyscallError("epoll_wait", err)
			return true
		}
		p.n = n
		return n > 0
	}
}

// arm registers the socket (first time) or re-arms it, one-shot: the
// session id comes back once the socket is readable, or closed by the
// peer. A socket already readable comes back at once. It fails when the
// socket or the poller is closed.
func (p *poller) arm(rc syscall.RawConn, id uint64, add bool) error {
	ev := syscall.EpollEvent{
		Events: syscall.EPOLLIN | syscall.EPOLLRDHUP | syscall.EPOLLONESHOT,
		Fd:     int32(uint32(id)),
		Pad:    int32(uint32(id >> 32)),
	}
	op := syscall.EPOLL_CTL_MOD
	if add {
		op = syscall.EPOLL_CTL_ADD
	}
	var ctlErr error
	// Both descriptors are held open (Control) while used, so neither can
	// be closed, and its number reused, under the call.
	err := p.rc.Control(func(epfd uintptr) {
		cerr := rc.Control(func(fd uintptr) {
			if e := syscall.EpollCtl(int(epfd), op, int(fd), &ev); e != nil {
				ctlErr = os.NewSyscallError("epoll_ctl", e)
			}
		})
		if cerr != nil {
			ctlErr = cerr
		}
	})
	if err != nil {
		return fmt.Errorf("msgtrans: poller closed: %w", err)
	}
	return ctlErr
}

// close closes the epoll descriptor (which forgets every registration) and
// waits for the loop to return.
func (p *poller) close() {
	_ = p.file.Close()
	<-p.done
}
