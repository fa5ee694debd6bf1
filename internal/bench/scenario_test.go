package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestScenarios runs every scenario end to end with tiny settings and
// checks that it reports a msgtrans result and a comparison for each
// transport it ran. Broadcast and idle start child processes: this test
// binary, which TestMain turns into the child.
func TestScenarios(t *testing.T) {
	if testing.Short() {
		t.Skip("runs servers, clients and child processes")
	}
	tests := []struct {
		args    []string
		ratios  []string // transport=… vs=… pairs that must be reported
		metrics []string // metrics that some RATIO line must compare
	}{
		{[]string{"throughput", "-quick", "-transport", "tcp,ws", "-duration", "50ms"},
			[]string{"transport=tcp vs=raw", "transport=tcp vs=grpc", "transport=ws vs=raw", "transport=ws vs=gorilla"}, nil},
		{[]string{"rawpath", "-quick", "-transport", "tcp,ws", "-duration", "50ms"},
			[]string{"transport=tcp vs=raw", "transport=ws vs=raw"},
			[]string{"msg_per_s", "cpu_ns_per_msg", "write_syscalls_per_msg"}},
		{[]string{"stream", "-quick", "-transport", "tcp,ws", "-duration", "50ms"},
			[]string{"transport=tcp vs=echo", "transport=tcp vs=grpc", "transport=tcp vs=msgtrans-w256", "transport=ws vs=echo"}, nil},
		{[]string{"unary", "-quick", "-transport", "tcp", "-duration", "50ms"},
			[]string{"transport=tcp vs=raw", "transport=tcp vs=grpc"}, nil},
		{[]string{"latency", "-quick", "-transport", "tcp", "-duration", "50ms"},
			[]string{"transport=tcp vs=raw", "transport=tcp vs=grpc"},
			[]string{"paced_p99_us", "echo_max_msg_per_s", "echo_paced_p50_us", "echo_paced_p99_us"}},
		{[]string{"connect", "-quick", "-transport", "tcp,quic", "-conns", "10"},
			[]string{"transport=tcp vs=raw", "transport=quic vs=raw"}, nil},
		{[]string{"broadcast", "-quick", "-transport", "tcp", "-conns", "20"},
			[]string{"transport=tcp vs=raw"}, nil},
		{[]string{"peers", "-quick", "-conns", "20", "-duration", "50ms"},
			[]string{"transport=tcp vs=nats", "transport=ws vs=centrifuge"},
			[]string{"req_per_s_c16", "req_per_s_c256", "deliveries_per_s_n20", "lat_p50_us_n20", "lat_p99_us_n20"}},
		{[]string{"slowconsumer", "-quick", "-transport", "tcp,ws", "-conns", "20"},
			[]string{"transport=tcp vs=no-slow", "transport=ws vs=no-slow"}, nil},
		{[]string{"idle", "-quick", "-transport", "tcp,ws", "-conns", "20"},
			[]string{"transport=tcp vs=raw", "transport=ws vs=gorilla", "transport=tcp vs=msgtrans-nopark", "transport=ws vs=msgtrans-nopark"}, nil},
		// Issue 15: msgtrans with idle parking off alternated with msgtrans.
		{[]string{"throughput", "-quick", "-transport", "tcp,ws", "-duration", "50ms", "-park-compare"},
			[]string{"transport=tcp vs=msgtrans-nopark", "transport=ws vs=msgtrans-nopark"}, nil},
		{[]string{"unary", "-quick", "-transport", "tcp", "-duration", "50ms", "-park-compare"},
			[]string{"transport=tcp vs=msgtrans-nopark"}, nil},
		// The cost gate of issue 17: msgtrans with the Prometheus adapter
		// alternated with msgtrans.
		{[]string{"throughput", "-quick", "-transport", "tcp", "-duration", "50ms", "-metrics-compare"},
			[]string{"transport=tcp vs=msgtrans-prom"}, nil},
		{[]string{"unary", "-quick", "-transport", "tcp", "-duration", "50ms", "-metrics-compare"},
			[]string{"transport=tcp vs=msgtrans-prom"}, nil},
		{[]string{"broadcast", "-quick", "-transport", "tcp", "-conns", "20", "-metrics-compare"},
			[]string{"transport=tcp vs=msgtrans-prom"}, nil},
		{[]string{"cluster", "-quick", "-conns", "30"},
			[]string{"transport=tcp vs=1node", "transport=tcp vs=local"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.args[0], func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := benchMain(tt.args, &stdout, &stderr); code != 0 {
				t.Fatalf("bench %s: exit %d\nstderr:\n%s", strings.Join(tt.args, " "), code, stderr.String())
			}
			out := stdout.String()
			if !strings.Contains(out, "RESULT scenario="+tt.args[0]+" ") || !strings.Contains(out, "impl=msgtrans") {
				t.Errorf("no msgtrans RESULT line:\n%s", out)
			}
			for _, r := range tt.ratios {
				if !strings.Contains(out, "RATIO scenario="+tt.args[0]+" "+r+" ") {
					t.Errorf("no RATIO line for %s:\n%s", r, out)
				}
			}
			for _, m := range tt.metrics {
				if !hasRatio(out, tt.args[0], m) {
					t.Errorf("no RATIO line for metric %s:\n%s", m, out)
				}
			}
		})
	}
}

// hasRatio reports whether out has a RATIO line of the scenario comparing
// the metric.
func hasRatio(out, scenario, metric string) bool {
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "RATIO scenario="+scenario+" ") && strings.HasSuffix(line, " metric="+metric) {
			return true
		}
	}
	return false
}

func TestUsage(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := benchMain([]string{"nonsense"}, &stdout, &stderr); code != 2 {
		t.Errorf("unknown scenario: exit %d, want 2", code)
	}
	for _, name := range []string{"throughput", "rawpath", "latency", "peers"} {
		if !strings.Contains(stderr.String(), "  "+name+" ") {
			t.Errorf("usage does not list %s:\n%s", name, stderr.String())
		}
	}
	if code := benchMain([]string{"throughput", "-transport", "udp"}, &stdout, &stderr); code != 2 {
		t.Errorf("unknown transport: exit %d, want 2", code)
	}
}
