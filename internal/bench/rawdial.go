package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"time"

	"github.com/gorilla/websocket"
	quicgo "github.com/quic-go/quic-go"
)

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
