package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
)

// A result is one measured quantity of one implementation, with one value
// per round.
type result struct {
	Scenario  string    `json:"scenario"`
	Transport string    `json:"transport"`
	Impl      string    `json:"impl"`
	Metric    string    `json:"metric"`
	Unit      string    `json:"unit"`
	Values    []float64 `json:"values"`
	Median    float64   `json:"median"`
	Min       float64   `json:"min"`
	Max       float64   `json:"max"`
}

// A ratio compares msgtrans with one baseline on one metric: the median of
// msgtrans divided by the median of the baseline.
type ratio struct {
	Scenario  string  `json:"scenario"`
	Transport string  `json:"transport"`
	Vs        string  `json:"vs"`
	Metric    string  `json:"metric"`
	Value     float64 `json:"value"`
}

// implMsgtrans is the implementation every ratio puts in its numerator.
const implMsgtrans = "msgtrans"

// report collects the results of a run in the order they were first added.
type report struct {
	results []*result
	index   map[string]*result
}

func newReport() *report { return &report{index: make(map[string]*result)} }

// add records one round's value of a metric.
func (r *report) add(scenario, transport, impl, metric, unit string, v float64) {
	key := strings.Join([]string{scenario, transport, impl, metric}, "\x00")
	res, ok := r.index[key]
	if !ok {
		res = &result{Scenario: scenario, Transport: transport, Impl: impl, Metric: metric, Unit: unit}
		r.index[key] = res
		r.results = append(r.results, res)
	}
	res.Values = append(res.Values, v)
	res.Median = median(res.Values)
	res.Min, res.Max = minMax(res.Values)
}

// ratios returns msgtrans/baseline for every metric measured for msgtrans
// and for another implementation on the same scenario and transport.
func (r *report) ratios() []ratio {
	var out []ratio
	for _, m := range r.results {
		if m.Impl != implMsgtrans || m.Metric == "conns" {
			continue // a count of connections is context, not a comparison
		}
		for _, b := range r.results {
			if b.Impl == implMsgtrans || b.Scenario != m.Scenario || b.Transport != m.Transport || b.Metric != m.Metric {
				continue
			}
			v := 0.0
			if b.Median != 0 {
				v = m.Median / b.Median
			}
			out = append(out, ratio{Scenario: m.Scenario, Transport: m.Transport, Vs: b.Impl, Metric: m.Metric, Value: v})
		}
	}
	return out
}

// writeTable writes the human-readable table: one row per result.
func (r *report) writeTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\ttransport\timpl\tmetric\tmedian\tmin\tmax\tunit\trounds\t")
	for _, res := range r.results {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t\n", res.Scenario, res.Transport, res.Impl, res.Metric,
			human(res.Median), human(res.Min), human(res.Max), res.Unit, len(res.Values))
	}
	return tw.Flush()
}

// writeLines writes the machine-readable RESULT and RATIO lines.
func (r *report) writeLines(w io.Writer) error {
	for _, res := range r.results {
		if _, err := fmt.Fprintf(w, "RESULT scenario=%s transport=%s impl=%s metric=%s value=%s\n",
			res.Scenario, res.Transport, res.Impl, res.Metric, number(res.Median)); err != nil {
			return err
		}
	}
	for _, q := range r.ratios() {
		if _, err := fmt.Fprintf(w, "RATIO scenario=%s transport=%s vs=%s value=%s metric=%s\n",
			q.Scenario, q.Transport, q.Vs, strconv.FormatFloat(q.Value, 'f', 3, 64), q.Metric); err != nil {
			return err
		}
	}
	return nil
}

// print writes the table, then the RESULT and RATIO lines.
func (r *report) print(w io.Writer) error {
	if err := r.writeTable(w); err != nil {
		return err
	}
	fmt.Fprintln(w)
	return r.writeLines(w)
}

// writeJSON writes the results and ratios to path as one JSON document.
func (r *report) writeJSON(path string) error {
	doc := struct {
		Results []*result `json:"results"`
		Ratios  []ratio   `json:"ratios"`
	}{r.results, r.ratios()}
	if doc.Results == nil {
		doc.Results = []*result{}
	}
	if doc.Ratios == nil {
		doc.Ratios = []ratio{}
	}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// number formats a value for a RESULT line: integers without a fraction,
// others with up to 3 decimals.
func number(v float64) string {
	if v == float64(int64(v)) {
		return strconv.FormatInt(int64(v), 10)
	}
	return strconv.FormatFloat(v, 'f', 3, 64)
}

// human formats a value for the table with a k/M suffix for large numbers.
func human(v float64) string {
	switch a := abs(v); {
	case a >= 10e6:
		return strconv.FormatFloat(v/1e6, 'f', 2, 64) + "M"
	case a >= 10e3:
		return strconv.FormatFloat(v/1e3, 'f', 1, 64) + "k"
	case a >= 100 || v == float64(int64(v)):
		return strconv.FormatFloat(v, 'f', 0, 64)
	default:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
}

func abs(v float64) float64 {
	if v < 0 {
		return -v
	}
	return v
}
