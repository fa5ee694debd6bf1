//go:build !unix

package wire

import (
	"io"
	"net"
)

func newSocketReader(c net.Conn) io.Reader { return c }
