package promobserve_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/goleak"

	"github.com/msgtrans/msgtrans-go/internal/gentest/gentestv1"
	"github.com/msgtrans/msgtrans-go/internal/testcert"
	"github.com/msgtrans/msgtrans-go/observe/promobserve"
	"github.com/msgtrans/msgtrans-go/runtime"
	_ "github.com/msgtrans/msgtrans-go/transports/all"
	"github.com/msgtrans/msgtrans-go/wire"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var transports = []struct{ name, listen string }{
	{"tcp", "tcp://127.0.0.1:0"},
	{"ws", "ws://127.0.0.1:0/ws"},
	{"quic", "quic://127.0.0.1:0"},
}

// echo serves gentest's EchoService: "fail" fails with
// failed_precondition, "panic" panics (internal); Count streams n numbers.
type echo struct {
	gentestv1.UnimplementedEchoServiceHandler
	notes chan string
}

func (e *echo) Echo(_ context.Context, _ *runtime.Session, req *gentestv1.EchoRequest) (*gentestv1.EchoResponse, error) {
	switch req.Text {
	case "fail":
		return nil, runtime.NewError(runtime.CodeFailedPrecondition, "told to fail")
	case "panic":
		panic("told to panic")
	}
	return &gentestv1.EchoResponse{Text: req.Text}, nil
}

func (e *echo) Notify(_ context.Context, _ *runtime.Session, req *gentestv1.NotifyRequest) error {
	e.notes <- req.Note
	if req.Note == "bad" {
		return runtime.NewError(runtime.CodeInvalidArgument, "bad note")
	}
	return nil
}

func (e *echo) Count(_ context.Context, _ *runtime.Session, req *gentestv1.CountRequest, st *runtime.ServerStream[gentestv1.CountResponse]) error {
	for i := range req.N {
		if err := st.Send(&gentestv1.CountResponse{N: i}); err != nil {
			return err
		}
	}
	return nil
}

type news struct {
	gentestv1.UnimplementedEchoEventsServiceHandler
	got chan string
}

func (n *news) News(_ context.Context, req *gentestv1.NewsRequest) error {
	n.got <- req.Headline
	return nil
}

// metrics reads a registry's series.
type metrics struct {
	t   *testing.T
	reg *prometheus.Registry
}

// value returns the value of the series name{labels} (a histogram's
// sample count), or 0 when there is no such series.
func (m metrics) value(name string, labels ...string) float64 {
	m.t.Helper()
	fams, err := m.reg.Gather()
	if err != nil {
		m.t.Fatal(err)
	}
	want := map[string]string{}
	for i := 0; i+1 < len(labels); i += 2 {
		want[labels[i]] = labels[i+1]
	}
	var sum float64
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
	series:
		for _, mt := range f.Metric {
			have := map[string]string{}
			for _, l := range mt.Label {
				have[l.GetName()] = l.GetValue()
			}
			for k, v := range want {
				if have[k] != v {
					continue series
				}
			}
			sum += sampleValue(mt)
		}
	}
	return sum
}

func sampleValue(mt *dto.Metric) float64 {
	switch {
	case mt.Counter != nil:
		return mt.Counter.GetValue()
	case mt.Gauge != nil:
		return mt.Gauge.GetValue()
	case mt.Histogram != nil:
		return float64(mt.Histogram.GetSampleCount())
	}
	return 0
}

// eventually waits until the series reaches want (some are recorded just
// after what the test can wait for, such as a handler's return).
func (m metrics) eventually(want float64, name string, labels ...string) {
	m.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := m.value(name, labels...)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			m.t.Fatalf("%s%v = %v, want %v", name, labels, got, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// atLeast waits until the series reaches at least want.
func (m metrics) atLeast(want float64, name string, labels ...string) {
	m.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := m.value(name, labels...)
		if got >= want {
			return
		}
		if time.Now().After(deadline) {
			m.t.Fatalf("%s%v = %v, want at least %v", name, labels, got, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func newObserver(t *testing.T) (*promobserve.Observer, metrics) {
	reg := prometheus.NewRegistry()
	obs, err := promobserve.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	return obs, metrics{t, reg}
}

// TestCallsAndTraffic: every per-call metric and the per-transport
// traffic counts, over each transport, with the server and client
// reporting to one observer.
func TestCallsAndTraffic(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			obs, m := newObserver(t)
			certs := testcert.New()
			srv, err := runtime.NewServer(runtime.WithTLS(certs.Server), runtime.WithObserver(obs))
			if err != nil {
				t.Fatal(err)
			}
			h := &echo{notes: make(chan string, 16)}
			gentestv1.RegisterEchoServiceHandler(srv, h)
			if err := srv.Listen(context.Background(), tr.listen); err != nil {
				t.Fatal(err)
			}
			defer srv.Close()
			c, err := runtime.NewClient(srv.Addrs()[0], runtime.WithTLS(certs.Client), runtime.WithObserver(obs))
			if err != nil {
				t.Fatal(err)
			}
			n := &news{got: make(chan string, 16)}
			gentestv1.RegisterEchoEventsServiceHandler(c, n)
			if err := c.Connect(context.Background()); err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			ctx := context.Background()
			cl := gentestv1.NewEchoServiceClient(c)
			for range 3 {
				if _, err := cl.Echo(ctx, &gentestv1.EchoRequest{Text: "hi"}); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := cl.Echo(ctx, &gentestv1.EchoRequest{Text: "fail"}); runtime.CodeOf(err) != runtime.CodeFailedPrecondition {
				t.Fatalf("fail: %v", err)
			}
			if _, err := cl.Echo(ctx, &gentestv1.EchoRequest{Text: "panic"}); runtime.CodeOf(err) != runtime.CodeInternal {
				t.Fatalf("panic: %v", err)
			}
			for _, note := range []string{"a", "b", "bad"} {
				if err := cl.Notify(ctx, &gentestv1.NotifyRequest{Note: note}); err != nil {
					t.Fatal(err)
				}
				<-h.notes
			}
			st, err := cl.Count(ctx, &gentestv1.CountRequest{N: 5})
			if err != nil {
				t.Fatal(err)
			}
			for range 5 {
				if _, err := st.Recv(); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := st.Recv(); err == nil {
				t.Fatal("the stream did not end")
			}
			sess := srv.Sessions()[0]
			if err := srv.Join("room", sess); err != nil {
				t.Fatal(err)
			}
			pusher := gentestv1.NewEchoEventsServicePusher(srv)
			if _, err := pusher.SendNews(ctx, sess.Target(), &gentestv1.NewsRequest{Headline: "one"}); err != nil {
				t.Fatal(err)
			}
			if k, err := pusher.SendNews(ctx, runtime.ToGroup("room"), &gentestv1.NewsRequest{Headline: "all"}); err != nil || k != 1 {
				t.Fatalf("group push: %d, %v", k, err)
			}
			<-n.got
			<-n.got

			echo := "gentest.v1.EchoService/Echo"
			for _, tc := range []struct {
				name   string
				want   float64
				labels []string
			}{
				{"rpc_server_call_duration_seconds", 3, []string{"rpc_system_name", "msgtrans", "rpc_method", echo, "rpc_status_code", "OK"}},
				{"rpc_server_call_duration_seconds", 1, []string{"rpc_method", echo, "rpc_status_code", "FAILED_PRECONDITION"}},
				{"rpc_server_call_duration_seconds", 1, []string{"rpc_method", echo, "rpc_status_code", "INTERNAL"}},
				{"rpc_client_call_duration_seconds", 3, []string{"rpc_method", echo, "rpc_status_code", "OK"}},
				{"rpc_client_call_duration_seconds", 1, []string{"rpc_method", echo, "rpc_status_code", "INTERNAL"}},
				{"messaging_client_sent_messages_total", 3, []string{"messaging_operation_name", "send", "messaging_destination_name", "gentest.v1.EchoService/Notify"}},
				{"messaging_client_consumed_messages_total", 2, []string{"messaging_destination_name", "gentest.v1.EchoService/Notify", "rpc_status_code", "OK"}},
				{"messaging_client_consumed_messages_total", 1, []string{"messaging_destination_name", "gentest.v1.EchoService/Notify", "rpc_status_code", "INVALID_ARGUMENT"}},
				{"messaging_client_sent_messages_total", 2, []string{"messaging_operation_name", "push", "messaging_destination_name", "gentest.v1.EchoEventsService/News"}},
				{"messaging_client_consumed_messages_total", 2, []string{"messaging_destination_name", "gentest.v1.EchoEventsService/News", "rpc_status_code", "OK"}},
				{"msgtrans_broadcast_recipients", 1, []string{"target", "group"}},
				{"msgtrans_broadcast_duration_seconds", 1, []string{"target", "group"}},
				{"msgtrans_streams_opened_total", 1, []string{"rpc_method", "gentest.v1.EchoService/Count", "role", "opener"}},
				{"msgtrans_streams_opened_total", 1, []string{"rpc_method", "gentest.v1.EchoService/Count", "role", "acceptor"}},
				{"msgtrans_streams_closed_total", 1, []string{"rpc_method", "gentest.v1.EchoService/Count", "role", "acceptor", "rpc_status_code", "OK"}},
				{"msgtrans_streams_closed_total", 1, []string{"rpc_method", "gentest.v1.EchoService/Count", "role", "opener", "rpc_status_code", "OK"}},
				{"msgtrans_connections_opened_total", 1, []string{"side", "server", "transport", tr.name}},
				{"msgtrans_connections_opened_total", 1, []string{"side", "client", "transport", tr.name}},
				{"msgtrans_sessions", 1, []string{"side", "server", "transport", tr.name}},
				{"msgtrans_sessions", 1, []string{"side", "client", "transport", tr.name}},
			} {
				m.eventually(tc.want, tc.name, tc.labels...)
			}
			// Traffic: the client sent its hello, 5 requests, 3 one-way
			// messages and a stream's opening; each side counts what it
			// read and wrote.
			for _, side := range []string{"server", "client"} {
				m.atLeast(10, "msgtrans_packets_received_total", "side", side, "transport", tr.name)
				m.atLeast(10, "msgtrans_packets_sent_total", "side", side, "transport", tr.name)
				m.atLeast(10*wire.HeaderSize, "msgtrans_received_bytes_total", "side", side, "transport", tr.name)
				m.atLeast(10*wire.HeaderSize, "msgtrans_sent_bytes_total", "side", side, "transport", tr.name)
				m.atLeast(1, "msgtrans_writes_total", "side", side, "transport", tr.name)
				if w, p := m.value("msgtrans_writes_total", "side", side), m.value("msgtrans_packets_sent_total", "side", side); w > p {
					t.Errorf("%s: %v writes for %v packets", side, w, p)
				}
			}
			// What one side sent the other read, once both are idle.
			sent := m.value("msgtrans_packets_sent_total", "side", "client")
			m.eventually(sent, "msgtrans_packets_received_total", "side", "server")

			_ = c.Close()
			m.eventually(1, "msgtrans_connections_closed_total", "side", "client", "transport", tr.name, "reason", "local")
			m.eventually(1, "msgtrans_connections_closed_total", "side", "server", "transport", tr.name, "reason", "peer")
			m.eventually(0, "msgtrans_sessions", "side", "server", "transport", tr.name)
			// The ended sessions' counts stay: counters never go back.
			if got := m.value("msgtrans_packets_received_total", "side", "server"); got < sent {
				t.Errorf("after the close the server counts %v packets received, want at least %v", got, sent)
			}
		})
	}
}

// TestRefusals: connections over the per-host cap, with a WebSocket origin
// not allowed, that never finish their handshake, and that the
// authenticator refuses are counted with their reason and transport.
func TestRefusals(t *testing.T) {
	t.Run("per-IP cap", func(t *testing.T) {
		for _, tr := range transports {
			t.Run(tr.name, func(t *testing.T) {
				obs, m := newObserver(t)
				certs := testcert.New()
				srv := listen(t, tr.listen, runtime.WithTLS(certs.Server), runtime.WithObserver(obs), runtime.WithMaxConnectionsPerIP(1))
				c, err := runtime.Dial(context.Background(), srv.Addrs()[0], runtime.WithTLS(certs.Client))
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				if c2, err := runtime.Dial(context.Background(), srv.Addrs()[0], runtime.WithTLS(certs.Client), runtime.WithoutReconnect()); err == nil {
					_ = c2.Close()
					t.Fatal("a second connection from the host was accepted")
				}
				// At least one: a QUIC client may try its handshake again.
				m.atLeast(1, "msgtrans_connections_refused_total", "side", "server", "transport", tr.name, "reason", "max_conns_per_ip")
			})
		}
	})
	t.Run("max conns", func(t *testing.T) {
		obs, m := newObserver(t)
		srv := listen(t, "tcp://127.0.0.1:0", runtime.WithObserver(obs), runtime.WithMaxConnections(1))
		c, err := runtime.Dial(context.Background(), srv.Addrs()[0])
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := runtime.Dial(context.Background(), srv.Addrs()[0], runtime.WithoutReconnect()); err == nil {
			t.Fatal("a connection over the cap was accepted")
		}
		m.eventually(1, "msgtrans_connections_refused_total", "transport", "tcp", "reason", "max_conns")
	})
	t.Run("origin", func(t *testing.T) {
		obs, m := newObserver(t)
		srv := listen(t, "ws://127.0.0.1:0/ws", runtime.WithObserver(obs), runtime.WithAllowedOrigins("https://good.example"))
		u := srv.Addrs()[0]
		for _, origin := range []string{"https://evil.example", "https://other.example"} {
			ws, _, err := websocket.DefaultDialer.Dial(u, http.Header{"Origin": {origin}})
			if err == nil {
				// Refused after the upgrade, with a close frame: read it.
				_, _, err = ws.ReadMessage()
				_ = ws.Close()
			}
			if err == nil {
				t.Fatalf("origin %s accepted", origin)
			}
		}
		ws, _, err := websocket.DefaultDialer.Dial(u, http.Header{"Origin": {"https://good.example"}})
		if err != nil {
			t.Fatal(err)
		}
		_ = ws.Close()
		m.eventually(2, "msgtrans_connections_refused_total", "transport", "ws", "reason", "origin")
	})
	t.Run("handshake timeout", func(t *testing.T) {
		for _, listenAddr := range []string{"tls://127.0.0.1:0", "ws://127.0.0.1:0/ws"} {
			scheme := strings.SplitN(listenAddr, ":", 2)[0]
			t.Run(scheme, func(t *testing.T) {
				obs, m := newObserver(t)
				certs := testcert.New()
				srv := listen(t, listenAddr, runtime.WithTLS(certs.Server), runtime.WithObserver(obs), runtime.WithHandshakeTimeout(100*time.Millisecond))
				u, err := url.Parse(srv.Addrs()[0])
				if err != nil {
					t.Fatal(err)
				}
				nc, err := net.Dial("tcp", u.Host) // says nothing
				if err != nil {
					t.Fatal(err)
				}
				defer nc.Close()
				_ = nc.SetReadDeadline(time.Now().Add(10 * time.Second))
				_, err = nc.Read(make([]byte, 1))
				var ne net.Error
				if err == nil || errors.As(err, &ne) && ne.Timeout() {
					t.Fatalf("the silent connection was not closed: %v", err)
				}
				m.eventually(1, "msgtrans_connections_refused_total", "transport", scheme, "reason", "handshake_timeout")
			})
		}
	})
	t.Run("unauthenticated", func(t *testing.T) {
		for _, tr := range transports {
			t.Run(tr.name, func(t *testing.T) {
				obs, m := newObserver(t)
				certs := testcert.New()
				srv := listen(t, tr.listen, runtime.WithTLS(certs.Server), runtime.WithObserver(obs),
					runtime.WithAuthenticator(func(context.Context, runtime.AuthInfo) (string, error) {
						return "", runtime.NewError(runtime.CodeUnauthenticated, "no")
					}))
				if c, err := runtime.Dial(context.Background(), srv.Addrs()[0], runtime.WithTLS(certs.Client), runtime.WithoutReconnect()); err == nil {
					_ = c.Close()
					t.Fatal("an unauthenticated client connected")
				}
				m.eventually(1, "msgtrans_connections_refused_total", "transport", tr.name, "reason", "unauthenticated")
				m.eventually(1, "msgtrans_connections_closed_total", "side", "server", "transport", tr.name, "reason", "refused")
			})
		}
	})
}

// TestSessionFailures: slow consumers, rate limits and heartbeat timeouts
// close sessions, counted by reason, and rate-limit drops, over each
// transport.
func TestSessionFailures(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			t.Run("slow consumer", func(t *testing.T) {
				obs, m := newObserver(t)
				certs := testcert.New()
				limits := wire.Limits{MaxPayload: 16 << 10}
				srv := listen(t, tr.listen, runtime.WithTLS(certs.Server), runtime.WithObserver(obs),
					runtime.WithLimits(limits), runtime.WithSendQueueBytes(64<<10), runtime.WithWriteTimeout(200*time.Millisecond))
				// A peer that connects and never reads.
				tc := &runtime.TransportConfig{TLS: certs.Client, Limits: limits}
				conn, err := runtime.DialConn(context.Background(), srv.Addrs()[0], tc)
				if err != nil {
					t.Fatal(err)
				}
				defer conn.Close()
				// A packet, so that a QUIC stream is seen at all.
				hello, _ := wire.AppendPacket(nil, wire.NewOneWay(1, nil))
				if err := conn.WritePackets([][]byte{hello}); err != nil {
					t.Fatal(err)
				}
				m.eventually(1, "msgtrans_sessions", "side", "server", "transport", tr.name)
				id := srv.Sessions()[0].ID()
				big := wire.NewOneWay(1, make([]byte, 16<<10))
				for i := 0; i < 100000 && srv.Send(id, big) == nil; i++ {
				}
				m.eventually(1, "msgtrans_connections_closed_total", "side", "server", "transport", tr.name, "reason", "slow_consumer")
			})
			t.Run("rate limit", func(t *testing.T) {
				obs, m := newObserver(t)
				certs := testcert.New()
				srv := listen(t, tr.listen, runtime.WithTLS(certs.Server), runtime.WithObserver(obs), runtime.WithRateLimit(1, 20))
				srv.Handle(9, runtime.HandlerFunc(func(context.Context, *runtime.Session, *wire.Packet) (*wire.Packet, error) { return nil, nil }))
				c, err := runtime.Dial(context.Background(), srv.Addrs()[0], runtime.WithTLS(certs.Client), runtime.WithoutReconnect())
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				for range 100 {
					if c.Send(wire.NewOneWay(9, []byte("x"))) != nil {
						break
					}
				}
				m.atLeast(1, "msgtrans_rate_limit_dropped_total", "side", "server", "transport", tr.name)
				m.eventually(1, "msgtrans_connections_closed_total", "side", "server", "transport", tr.name, "reason", "rate_limited")
				if got := m.value("messaging_client_consumed_messages_total", "messaging_destination_name", "biz/9"); got < 1 || got >= 100 {
					t.Errorf("raw biz/9 messages consumed: %v, want some but not all", got)
				}
			})
			t.Run("heartbeat timeout", func(t *testing.T) {
				obs, m := newObserver(t)
				certs := testcert.New()
				srv := listen(t, tr.listen, runtime.WithTLS(certs.Server), runtime.WithObserver(obs), runtime.WithHeartbeat(50*time.Millisecond, 200*time.Millisecond))
				// The client says hello (so it is expected to ping) and
				// then pings far too rarely.
				c, err := runtime.Dial(context.Background(), srv.Addrs()[0], runtime.WithTLS(certs.Client), runtime.WithoutReconnect(), runtime.WithHeartbeat(time.Minute, 2*time.Minute))
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				m.eventually(1, "msgtrans_connections_closed_total", "side", "server", "transport", tr.name, "reason", "heartbeat_timeout")
			})
		})
	}
}

// TestRawCalls: a raw request is reported under its biz_type on both
// sides.
func TestRawCalls(t *testing.T) {
	obs, m := newObserver(t)
	srv := listen(t, "tcp://127.0.0.1:0", runtime.WithObserver(obs))
	srv.Handle(7, runtime.HandlerFunc(func(_ context.Context, _ *runtime.Session, p *wire.Packet) (*wire.Packet, error) {
		if string(p.Payload) == "no" {
			return nil, runtime.NewError(runtime.CodeNotFound, "no")
		}
		return wire.NewOneWay(7, p.Payload), nil
	}))
	c, err := runtime.Dial(context.Background(), srv.Addrs()[0], runtime.WithObserver(obs))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, body := range []string{"yes", "yes", "no"} {
		_, _ = c.Request(context.Background(), wire.NewOneWay(7, []byte(body)))
	}
	m.eventually(2, "rpc_server_call_duration_seconds", "rpc_method", "biz/7", "rpc_status_code", "OK")
	m.eventually(1, "rpc_server_call_duration_seconds", "rpc_method", "biz/7", "rpc_status_code", "NOT_FOUND")
	m.eventually(2, "rpc_client_call_duration_seconds", "rpc_method", "biz/7", "rpc_status_code", "OK")
	m.eventually(1, "rpc_client_call_duration_seconds", "rpc_method", "biz/7", "rpc_status_code", "NOT_FOUND")
}

// TestNew: registering twice on one registry fails, naming the metric; a
// nil registerer fails; an observer that is not comparable is refused by
// the runtime.
func TestNew(t *testing.T) {
	reg := prometheus.NewRegistry()
	if _, err := promobserve.New(reg); err != nil {
		t.Fatal(err)
	}
	if _, err := promobserve.New(reg); err == nil {
		t.Error("a second observer on one registry was accepted")
	}
	if _, err := promobserve.New(nil); err == nil {
		t.Error("a nil registerer was accepted")
	}
	if _, err := runtime.NewServer(runtime.WithObserver(funcObserver{})); err == nil || !strings.Contains(err.Error(), "WithObserver") {
		t.Errorf("a non-comparable observer: %v", err)
	}
}

// funcObserver is not comparable: it holds a slice.
type funcObserver struct {
	runtime.BaseObserver
	_ []func()
}

func listen(t *testing.T, addr string, opts ...runtime.ServerOption) *runtime.Server {
	t.Helper()
	srv, err := runtime.NewServer(opts...)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Listen(context.Background(), addr); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	return srv
}
