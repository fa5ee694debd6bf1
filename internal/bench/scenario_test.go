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
		args   []string
		ratios []string // transport=… vs=… pairs that must be reported
	}{
		{[]string{"throughput", "-quick", "-transport", "tcp,ws", "-duration", "50ms"},
			[]string{"transport=tcp vs=raw", "transport=tcp vs=grpc", "transport=ws vs=raw", "transport=ws vs=gorilla"}},
		{[]string{"stream", "-quick", "-transport", "tcp,ws", "-duration", "50ms"},
			[]string{"transport=tcp vs=echo", "transport=tcp vs=grpc", "transport=tcp vs=msgtrans-w256", "transport=ws vs=echo"}},
		{[]string{"unary", "-quick", "-transport", "tcp", "-duration", "50ms"},
			[]string{"transport=tcp vs=raw", "transport=tcp vs=grpc"}},
		{[]string{"latency", "-quick", "-transport", "tcp", "-duration", "50ms"},
			[]string{"transport=tcp vs=raw", "transport=tcp vs=grpc"}},
		{[]string{"connect", "-quick", "-transport", "tcp,quic", "-conns", "10"},
			[]string{"transport=tcp vs=raw", "transport=quic vs=raw"}},
		{[]string{"broadcast", "-quick", "-transport", "tcp", "-conns", "20"},
			[]string{"transport=tcp vs=raw"}},
		{[]string{"slowconsumer", "-quick", "-transport", "tcp,ws", "-conns", "20"},
			[]string{"transport=tcp vs=no-slow", "transport=ws vs=no-slow"}},
		{[]string{"idle", "-quick", "-transport", "tcp,ws", "-conns", "20"},
			[]string{"transport=tcp vs=raw", "transport=ws vs=gorilla"}},
		{[]string{"cluster", "-quick", "-conns", "30"},
			[]string{"transport=tcp vs=1node", "transport=tcp vs=local"}},
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
		})
	}
}

func TestUsage(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := benchMain([]string{"nonsense"}, &stdout, &stderr); code != 2 {
		t.Errorf("unknown scenario: exit %d, want 2", code)
	}
	if !strings.Contains(stderr.String(), "throughput") {
		t.Errorf("usage does not list the scenarios:\n%s", stderr.String())
	}
	if code := benchMain([]string{"throughput", "-transport", "udp"}, &stdout, &stderr); code != 2 {
		t.Errorf("unknown transport: exit %d, want 2", code)
	}
}
