package ws

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/msgtrans/msgtrans-go/runtime"
)

// statusHeader carries the status code of a refusal (see refuseHTTP).
const statusHeader = "Msgtrans-Status"

// refuseHTTP answers a plain connection over the caps before reading its
// request: 503 with the status (code in a header, message as the body) and
// when to try again.
func refuseHTTP(c *net.TCPConn, why error) {
	msg := why.Error()
	var e *runtime.Error
	if errors.As(why, &e) {
		msg = e.Message
	}
	_, _ = fmt.Fprintf(c, "HTTP/1.1 503 Service Unavailable\r\nRetry-After: %d\r\n%s: %d\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
		int(runtime.RefusalRetryAfter/time.Second), statusHeader, runtime.CodeOf(why), len(msg), msg)
}

// refusalOf reads the refusal a 503 from refuseHTTP carries.
func refusalOf(resp *http.Response) error {
	code, _ := strconv.Atoi(resp.Header.Get(statusHeader))
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	retry, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
	return runtime.Refusal(runtime.NewError(runtime.Code(code), string(msg)), time.Duration(retry)*time.Second)
}

// StatusError is part of the error of a dial that the server answered with
// an HTTP status instead of switching to WebSocket, found with [errors.As].
// A 404 means that nothing serves WebSocket at the URL's path on that
// server: usually the path is wrong or missing.
type StatusError struct {
	// StatusCode is the HTTP status code, such as 404.
	StatusCode int
	// Status is the status line, such as "404 Not Found".
	Status string
	// Path is the path of the URL dialled ("" for none).
	Path string
}

func (e *StatusError) Error() string {
	if e.StatusCode == http.StatusNotFound {
		path := e.Path
		if path == "" {
			path = "/"
		}
		return fmt.Sprintf("http status 404: no WebSocket endpoint at path %q; is the path right?", path)
	}
	return fmt.Sprintf("http status %q", e.Status)
}
