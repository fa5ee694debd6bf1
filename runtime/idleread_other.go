//go:build !unix

package runtime

import (
	"io"
	"net"
)

func newSocketReader(c net.Conn) io.Reader { return c }
