package otelobserve_test

import (
	"strings"
	"testing"

	"github.com/msgtrans/msgtrans-go/observe/otelobserve"
)

// TestNewOptions: bucket boundaries that are empty or do not increase are
// refused with an error naming the option; nil options and providers take
// the defaults.
func TestNewOptions(t *testing.T) {
	tests := []struct {
		name string
		opts []otelobserve.Option
		err  string
	}{
		{"defaults", nil, ""},
		{"nil option and providers", []otelobserve.Option{nil, otelobserve.WithTracerProvider(nil), otelobserve.WithMeterProvider(nil)}, ""},
		{"no duration buckets", []otelobserve.Option{otelobserve.WithDurationBuckets()}, "WithDurationBuckets"},
		{"decreasing duration buckets", []otelobserve.Option{otelobserve.WithDurationBuckets(1, 0.5)}, "WithDurationBuckets"},
		{"repeated recipient buckets", []otelobserve.Option{otelobserve.WithRecipientBuckets(1, 1)}, "WithRecipientBuckets"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := otelobserve.New(tt.opts...)
			switch {
			case tt.err == "" && (err != nil || a == nil):
				t.Errorf("New = %v, %v", a, err)
			case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
				t.Errorf("New = %v; want an error naming %s", err, tt.err)
			}
		})
	}
}
