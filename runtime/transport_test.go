package runtime_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/msgtrans/msgtrans-go/runtime"
	_ "github.com/msgtrans/msgtrans-go/transports/all"
)

// TestAddressHints checks that an address the runtime cannot use is
// refused before anything is dialled, with an error that says how to write
// it.
func TestAddressHints(t *testing.T) {
	schemes := "(schemes: " + strings.Join(runtime.Schemes(), ", ") + ")"
	tests := []struct {
		addr        string
		want        string // the whole error text
		wantUnknown bool   // wraps ErrUnknownScheme
	}{
		{addr: "127.0.0.1:7001", want: `msgtrans: address "127.0.0.1:7001" has no scheme: write tcp://127.0.0.1:7001 ` + schemes},
		{addr: "localhost:7001", want: `msgtrans: address "localhost:7001" has no scheme: write tcp://localhost:7001 ` + schemes},
		{addr: "[::1]:7001", want: `msgtrans: address "[::1]:7001" has no scheme: write tcp://[::1]:7001 ` + schemes},
		{addr: ":7001", want: `msgtrans: address ":7001" has no scheme: write tcp://:7001 ` + schemes},
		{addr: "127.0.0.1:7002/ws", want: `msgtrans: address "127.0.0.1:7002/ws" has no scheme: write ws://127.0.0.1:7002/ws ` + schemes},
		{addr: "localhost", want: `msgtrans: address "localhost" has no scheme: write scheme://host:port, for example tcp://127.0.0.1:7001 ` + schemes},
		{
			addr:        "carrier-pigeon://x",
			want:        `msgtrans: unknown transport scheme "carrier-pigeon" in "carrier-pigeon://x" (registered: [` + strings.Join(runtime.Schemes(), " ") + `]; import its transport package, for example github.com/msgtrans/msgtrans-go/transports/all)`,
			wantUnknown: true,
		},
		{
			addr:        "nope:x",
			want:        `msgtrans: unknown transport scheme "nope" in "nope:x" (registered: [` + strings.Join(runtime.Schemes(), " ") + `]; import its transport package, for example github.com/msgtrans/msgtrans-go/transports/all)`,
			wantUnknown: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			conn, err := runtime.DialConn(context.Background(), tt.addr, nil)
			if err == nil {
				conn.Close()
				t.Fatalf("DialConn(%q): got a connection, want an error", tt.addr)
			}
			if got := err.Error(); got != tt.want {
				t.Errorf("DialConn(%q):\n got %s\nwant %s", tt.addr, got, tt.want)
			}
			if got := errors.Is(err, runtime.ErrUnknownScheme); got != tt.wantUnknown {
				t.Errorf("errors.Is(err, ErrUnknownScheme): got %v, want %v", got, tt.wantUnknown)
			}
		})
	}
}
