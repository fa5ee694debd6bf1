package otelobserve_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/msgtrans/msgtrans-go/runtime"
)

// metrics are the data points of one collection, by instrument name.
type metrics map[string]metricdata.Aggregation

func collect(t *testing.T, r *sdkmetric.ManualReader) metrics {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	m := make(metrics)
	for _, sm := range rm.ScopeMetrics {
		for _, x := range sm.Metrics {
			m[x.Name] = x.Data
		}
	}
	return m
}

// matches reports whether set holds every attribute of want.
func matches(set attribute.Set, want map[string]string) bool {
	for k, v := range want {
		got, ok := set.Value(attribute.Key(k))
		if !ok || got.String() != v {
			return false
		}
	}
	return true
}

// hist returns the count and sum of the histogram's points matching want.
func (m metrics) hist(name string, want map[string]string) (count uint64, sum float64) {
	switch h := m[name].(type) {
	case metricdata.Histogram[float64]:
		for _, p := range h.DataPoints {
			if matches(p.Attributes, want) {
				count += p.Count
				sum += p.Sum
			}
		}
	case metricdata.Histogram[int64]:
		for _, p := range h.DataPoints {
			if matches(p.Attributes, want) {
				count += p.Count
				sum += float64(p.Sum)
			}
		}
	}
	return count, sum
}

// sum returns the total of the sum's or gauge's points matching want.
func (m metrics) sum(name string, want map[string]string) int64 {
	var n int64
	switch s := m[name].(type) {
	case metricdata.Sum[int64]:
		for _, p := range s.DataPoints {
			if matches(p.Attributes, want) {
				n += p.Value
			}
		}
	case metricdata.Gauge[int64]:
		for _, p := range s.DataPoints {
			if matches(p.Attributes, want) {
				n += p.Value
			}
		}
	}
	return n
}

// attributes returns every attribute key and value of every point.
func (m metrics) attributes() []attribute.KeyValue {
	var out []attribute.KeyValue
	add := func(s attribute.Set) { out = append(out, s.ToSlice()...) }
	for _, a := range m {
		switch d := a.(type) {
		case metricdata.Histogram[float64]:
			for _, p := range d.DataPoints {
				add(p.Attributes)
			}
		case metricdata.Histogram[int64]:
			for _, p := range d.DataPoints {
				add(p.Attributes)
			}
		case metricdata.Sum[int64]:
			for _, p := range d.DataPoints {
				add(p.Attributes)
			}
		case metricdata.Gauge[int64]:
			for _, p := range d.DataPoints {
				add(p.Attributes)
			}
		}
	}
	return out
}

// TestMetrics: over tcp, ws and quic, the observer records call durations
// with their status codes on both sides, one-way messages sent and
// consumed, pushes, broadcasts, streams, connections and traffic, and
// labels nothing by session, user or group.
func TestMetrics(t *testing.T) {
	for _, addr := range transports {
		scheme := addr[:strings.Index(addr, ":")]
		t.Run(scheme, func(t *testing.T) {
			srvTel, cliTel := newTelemetry(t), newTelemetry(t)
			atServer, atClient := make(chan string, 8), make(chan string, 8)
			srv := testServer(t, addr, atServer, srvTel.a.ServerOptions()...)
			c := dial(t, srv, atClient, cliTel.a.ClientOptions()...)
			ctx := context.Background()
			// One-way messages and the push first: a session handles them
			// on its read loop, so the answers to the calls made after them
			// say that they are recorded.
			for _, text := range []string{"note", "fail"} {
				if err := runtime.SendOneWay(ctx, c, noteMethod, wrapperspb.String(text)); err != nil {
					t.Fatal(err)
				}
			}
			sess := srv.Sessions()[0]
			if err := srv.Join("secret-room", sess); err != nil {
				t.Fatal(err)
			}
			if _, err := runtime.Push(ctx, srv, runtime.ToGroup("secret-room"), noteMethod, wrapperspb.String("pushed")); err != nil {
				t.Fatal(err)
			}
			if _, err := runtime.CallSession[wrapperspb.StringValue](ctx, srv, sess.ID(), echoMethod, wrapperspb.String("after the push")); err != nil {
				t.Fatal(err)
			}
			st, err := runtime.OpenServerStream[wrapperspb.Int64Value](ctx, c, countMethod, wrapperspb.Int64(2))
			if err != nil {
				t.Fatal(err)
			}
			for _, err := range st.All() {
				if err != nil {
					t.Fatal(err)
				}
			}
			for _, text := range []string{"a", "b", "c", "NOT_FOUND"} {
				_, _ = runtime.CallUnary[wrapperspb.StringValue](ctx, c, echoMethod, wrapperspb.String(text))
			}

			sm, cm := collect(t, srvTel.reader), collect(t, cliTel.reader)
			echo := map[string]string{"rpc.system.name": "msgtrans", "rpc.method": "test.v1.Otel/Echo"}
			with := func(m map[string]string, k, v string) map[string]string {
				out := map[string]string{k: v}
				for k, v := range m {
					out[k] = v
				}
				return out
			}
			for _, side := range []struct {
				name string
				m    metrics
			}{{"rpc.server.call.duration", sm}, {"rpc.client.call.duration", cm}} {
				if n, s := side.m.hist(side.name, with(echo, "rpc.response.status_code", "OK")); n != 3 || s <= 0 {
					t.Errorf("%s OK: count %d, sum %g; want 3 and a positive duration", side.name, n, s)
				}
				if n, _ := side.m.hist(side.name, with(echo, "rpc.response.status_code", "NOT_FOUND")); n != 1 {
					t.Errorf("%s NOT_FOUND: count %d, want 1", side.name, n)
				}
			}
			note := map[string]string{"messaging.system": "msgtrans", "messaging.destination.name": "test.v1.Otel/Note"}
			if n := cm.sum("messaging.client.sent.messages", with(note, "messaging.operation.name", "send")); n != 2 {
				t.Errorf("one-way messages sent: %d, want 2", n)
			}
			if n := sm.sum("messaging.client.sent.messages", with(note, "messaging.operation.name", "push")); n != 1 {
				t.Errorf("pushes: %d, want 1", n)
			}
			if n := sm.sum("messaging.client.consumed.messages", note); n != 2 {
				t.Errorf("one-way messages consumed: %d, want 2", n)
			}
			if n := sm.sum("messaging.client.consumed.messages", with(note, "error.type", "INVALID_ARGUMENT")); n != 1 {
				t.Errorf("one-way messages whose handler failed: %d, want 1", n)
			}
			if n := cm.sum("messaging.client.consumed.messages", note); n != 1 {
				t.Errorf("pushes consumed by the client: %d, want 1", n)
			}
			if n, s := sm.hist("msgtrans.broadcast.recipients", map[string]string{"msgtrans.push.target": "group"}); n != 1 || s != 1 {
				t.Errorf("broadcast recipients: count %d, sum %g; want 1 push to 1", n, s)
			}
			if n, _ := sm.hist("msgtrans.broadcast.duration", map[string]string{"msgtrans.push.target": "group"}); n != 1 {
				t.Errorf("broadcast durations: %d, want 1", n)
			}
			count := map[string]string{"rpc.method": "test.v1.Otel/Count"}
			if n := cm.sum("msgtrans.streams.opened", with(count, "msgtrans.stream.role", "opener")); n != 1 {
				t.Errorf("streams opened by the client: %d, want 1", n)
			}
			if n := sm.sum("msgtrans.streams.opened", with(count, "msgtrans.stream.role", "acceptor")); n != 1 {
				t.Errorf("streams accepted by the server: %d, want 1", n)
			}
			conn := map[string]string{"msgtrans.side": "server", "msgtrans.transport": scheme}
			if n := sm.sum("msgtrans.connections.opened", conn); n != 1 {
				t.Errorf("connections opened at the server: %d, want 1", n)
			}
			if n := sm.sum("msgtrans.sessions", conn); n != 1 {
				t.Errorf("sessions open at the server: %d, want 1", n)
			}
			if n := sm.sum("msgtrans.packets", with(conn, "network.io.direction", "receive")); n < 8 {
				t.Errorf("packets received by the server: %d, want at least the 8 calls and messages", n)
			}
			if n := sm.sum("msgtrans.io", with(conn, "network.io.direction", "transmit")); n <= 0 {
				t.Errorf("bytes written by the server: %d", n)
			}
			if n := cm.sum("msgtrans.connections.opened", map[string]string{"msgtrans.side": "client", "msgtrans.transport": scheme}); n != 1 {
				t.Errorf("connections opened by the client: %d, want 1", n)
			}

			// Closing the client: the server counts the session closed.
			_ = c.Close()
			deadline := time.Now().Add(10 * time.Second)
			for collect(t, srvTel.reader).sum("msgtrans.connections.closed", conn) != 1 {
				if time.Now().After(deadline) {
					t.Fatal("the closed session is not counted within 10s")
				}
				time.Sleep(5 * time.Millisecond) // polling the reader: the close is seen by the server's read loop
			}

			for _, kv := range append(sm.attributes(), cm.attributes()...) {
				k, v := string(kv.Key), kv.Value.String()
				if strings.Contains(k, "session") || strings.Contains(k, "user") || strings.Contains(k, "group") || v == "secret-room" {
					t.Errorf("a metric labelled %s=%q", k, v)
				}
			}
		})
	}
}

// TestRouteRecordAllocations: recording through a route's handle
// allocates nothing: its attribute sets and the options that carry them
// are made once.
func TestRouteRecordAllocations(t *testing.T) {
	tel := newTelemetry(t)
	h := tel.a.Observer().Route(runtime.Route{Side: runtime.SideServer, Method: echoMethod})
	h.Handled(time.Millisecond, runtime.CodeOK)
	h.Called(time.Millisecond, runtime.CodeNotFound)
	h.Received(runtime.CodeOK)
	h.Sent()
	for name, f := range map[string]func(){
		"Handled":           func() { h.Handled(time.Millisecond, runtime.CodeOK) },
		"Called (an error)": func() { h.Called(time.Millisecond, runtime.CodeNotFound) },
		"Received":          func() { h.Received(runtime.CodeOK) },
		"Sent":              func() { h.Sent() },
	} {
		if n := testing.AllocsPerRun(1000, f); n != 0 {
			t.Errorf("%s allocates %v times per call, want none", name, n)
		}
	}
}
