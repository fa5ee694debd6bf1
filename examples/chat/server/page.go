package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/msgtrans/msgtrans-go/examples/chat/chatserver"
	"github.com/msgtrans/msgtrans-go/examples/chat/web"
)

// DefaultHTTP is where the chat's web page is served unless -http says
// otherwise.
const DefaultHTTP = "127.0.0.1:7080"

// serve runs the chat server, and its web page on httpAddr when it is not
// empty (over HTTPS when pageTLS is set), until ctx ends.
func serve(ctx context.Context, cfg chatserver.Config, httpAddr string, pageTLS *tls.Config, logger *slog.Logger) error {
	s, err := chatserver.New(cfg)
	if err != nil {
		return err
	}
	if err := s.Start(ctx); err != nil {
		return err
	}
	if httpAddr != "" {
		page, err := startPage(httpAddr, pageTLS, s.Addrs(), logger)
		if err != nil {
			_ = s.Close()
			return err
		}
		defer page.stop()
	}
	return s.Serve(ctx)
}

// page is the web page's HTTP server.
type page struct {
	srv *http.Server
	url string // where a browser finds it
}

// startPage serves the web page on addr; its config.json lists the
// chat's WebSocket listeners among addrs.
func startPage(addr string, tlsCfg *tls.Config, addrs []string, logger *slog.Logger) (*page, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("web page: %w", err)
	}
	scheme := "http"
	if tlsCfg != nil {
		scheme = "https"
		ln = tls.NewListener(ln, tlsCfg.Clone())
	}
	p := &page{
		srv: &http.Server{
			Handler:           web.Handler(func(r *http.Request) web.Config { return pageConfig(r, addrs) }),
			ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout:       2 * time.Minute,
			ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelDebug),
		},
		url: scheme + "://" + ln.Addr().String() + "/",
	}
	go func() {
		if err := p.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("web page server failed", "err", err)
		}
	}()
	probe := &http.Request{Host: ln.Addr().String()}
	if tlsCfg != nil {
		probe.TLS = &tls.ConnectionState{}
	}
	ws := pageConfig(probe, addrs).Servers
	if len(ws) == 0 {
		logger.Warn("the web page has no WebSocket listener to connect to: add a ws:// (or, with a certificate, wss://) address to -listen", "url", p.url)
	} else {
		logger.Info("chat page ready: open it in a browser", "url", p.url, "websocket", ws)
	}
	return p, nil
}

// stop closes the page's server and its connections.
func (p *page) stop() { _ = p.srv.Close() }

// pageConfig lists the WebSocket URLs the page should use: wss:// ones for
// a page loaded over HTTPS (a browser refuses ws:// there), else ws://
// ones first. A listener on an unspecified address (0.0.0.0, [::]) is
// named by the host the browser used to load the page.
func pageConfig(r *http.Request, addrs []string) web.Config {
	host := r.Host
	if h, _, err := net.SplitHostPort(r.Host); err == nil {
		host = h
	}
	var plain, secure []string
	for _, a := range addrs {
		u, err := url.Parse(a)
		if err != nil || (u.Scheme != "ws" && u.Scheme != "wss") {
			continue
		}
		if ip := net.ParseIP(u.Hostname()); (ip != nil && ip.IsUnspecified()) || u.Hostname() == "" {
			u.Host = net.JoinHostPort(strings.Trim(host, "[]"), u.Port())
		}
		if u.Scheme == "wss" {
			secure = append(secure, u.String())
		} else {
			plain = append(plain, u.String())
		}
	}
	if r.TLS != nil {
		return web.Config{Servers: secure}
	}
	return web.Config{Servers: append(plain, secure...)}
}

// pageOrigins are the origins the page has when served on addr, which
// -allowed-origins gets besides those it lists: the address itself and, on
// a loopback address, localhost too. A page reached by another name (on
// 0.0.0.0, behind a proxy) has an origin only its operator knows: list it
// in -allowed-origins.
func pageOrigins(addr string, useTLS bool) []string {
	scheme := "http://"
	if useTLS {
		scheme = "https://"
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil
	}
	origins := []string{scheme + addr}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		origins = append(origins, scheme+net.JoinHostPort("localhost", port))
	}
	return origins
}
