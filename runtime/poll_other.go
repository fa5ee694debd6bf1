//go:build !linux

package runtime

import (
	"errors"
	"syscall"
)

// poller is Linux only: elsewhere every session keeps a reader goroutine.
type poller struct{}

func newPoller(func(id uint64)) (*poller, error) { return nil, errors.ErrUnsupported }

func (*poller) arm(syscall.RawConn, uint64, bool) error { return errors.ErrUnsupported }

func (*poller) close() {}
