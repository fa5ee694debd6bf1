package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func sampleReport() *report {
	r := newReport()
	for _, v := range []float64{100, 300, 200} {
		r.add("throughput", "tcp", implMsgtrans, "msg_per_s", "msg/s", v)
	}
	for _, v := range []float64{400, 400, 400} {
		r.add("throughput", "tcp", "raw", "msg_per_s", "msg/s", v)
	}
	r.add("throughput", "ws", "gorilla", "msg_per_s", "msg/s", 50)
	r.add("latency", "tcp", implMsgtrans, "p50_us", "µs", 12.5)
	r.add("latency", "tcp", "grpc", "p50_us", "µs", 25)
	return r
}

func TestReportAggregates(t *testing.T) {
	r := sampleReport()
	res := r.results[0]
	if res.Median != 200 || res.Min != 100 || res.Max != 300 || len(res.Values) != 3 {
		t.Errorf("msgtrans result = %+v, want median 200, min 100, max 300 over 3 values", res)
	}
}

func TestReportLines(t *testing.T) {
	var b strings.Builder
	if err := sampleReport().writeLines(&b); err != nil {
		t.Fatal(err)
	}
	want := `RESULT scenario=throughput transport=tcp impl=msgtrans metric=msg_per_s value=200
RESULT scenario=throughput transport=tcp impl=raw metric=msg_per_s value=400
RESULT scenario=throughput transport=ws impl=gorilla metric=msg_per_s value=50
RESULT scenario=latency transport=tcp impl=msgtrans metric=p50_us value=12.500
RESULT scenario=latency transport=tcp impl=grpc metric=p50_us value=25
RATIO scenario=throughput transport=tcp vs=raw value=0.500 metric=msg_per_s
RATIO scenario=latency transport=tcp vs=grpc value=0.500 metric=p50_us
`
	if got := b.String(); got != want {
		t.Errorf("lines:\n%s\nwant:\n%s", got, want)
	}
}

func TestReportTable(t *testing.T) {
	var b strings.Builder
	if err := sampleReport().writeTable(&b); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 6 {
		t.Fatalf("table has %d lines, want a header and 5 rows:\n%s", len(lines), b.String())
	}
	for _, word := range []string{"scenario", "median", "min", "max", "rounds"} {
		if !strings.Contains(lines[0], word) {
			t.Errorf("header %q lacks %q", lines[0], word)
		}
	}
	if f := strings.Fields(lines[1]); strings.Join(f, " ") != "throughput tcp msgtrans msg_per_s 200 100 300 msg/s 3" {
		t.Errorf("first row = %q", lines[1])
	}
}

func TestReportJSON(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out.json")
	if err := sampleReport().writeJSON(path); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Results []result `json:"results"`
		Ratios  []ratio  `json:"ratios"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Results) != 5 || len(doc.Ratios) != 2 {
		t.Fatalf("got %d results and %d ratios, want 5 and 2", len(doc.Results), len(doc.Ratios))
	}
	if got := doc.Ratios[0]; got.Vs != "raw" || got.Value != 0.5 || got.Metric != "msg_per_s" {
		t.Errorf("first ratio = %+v", got)
	}
}

func TestFormatting(t *testing.T) {
	tests := []struct {
		v             float64
		number, human string
	}{
		{200, "200", "200"},
		{12.5, "12.500", "12.50"},
		{318660.5, "318660.500", "318.7k"},
		{25_000_000, "25000000", "25.00M"},
		{0.25, "0.250", "0.25"},
	}
	for _, tt := range tests {
		if got := number(tt.v); got != tt.number {
			t.Errorf("number(%v) = %q, want %q", tt.v, got, tt.number)
		}
		if got := human(tt.v); got != tt.human {
			t.Errorf("human(%v) = %q, want %q", tt.v, got, tt.human)
		}
	}
}
