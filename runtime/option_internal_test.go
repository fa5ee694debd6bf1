package runtime

import (
	"testing"
	"time"
)

// TestDefaults: every limit has its documented default; none is 0
// (unlimited).
func TestDefaults(t *testing.T) {
	c, err := newServerConfig(nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		got, want any
	}{
		{"max payload", c.limits.MaxPayload, 1 << 20},
		{"max ext header", c.limits.MaxExtHeader, 4 << 10},
		{"max decompressed", c.limits.MaxDecompressed, 10 << 20},
		{"packet read timeout", c.limits.PacketReadTimeout, 30 * time.Second},
		{"handshake timeout", c.handshakeTimeout, 5 * time.Second},
		{"write timeout", c.writeTimeout, 5 * time.Second},
		{"send queue", c.sendQueueBytes, 4 << 20},
		{"request timeout", c.requestTimeout, 10 * time.Second},
		{"connect timeout", c.connectTimeout, 10 * time.Second},
		{"in-flight handlers", c.maxInFlight, 16},
		{"groups per session", c.maxGroups, 128},
		{"connections", c.maxConns, 10000},
		{"connections per IP", c.maxConnsPerIP, 100},
		{"rate limit", c.rateLimit, 50000.0},
		{"rate burst", c.rateBurst, 50000},
		{"heartbeat interval", c.heartbeatInterval, 15 * time.Second},
		{"heartbeat timeout", c.heartbeatTimeout, 45 * time.Second},
		{"reconnect base", c.backoff.Base, 100 * time.Millisecond},
		{"reconnect multiplier", c.backoff.Multiplier, 2.0},
		{"reconnect max delay", c.backoff.MaxDelay, 10 * time.Second},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s = %v, want %v", tt.name, tt.got, tt.want)
		}
	}
}
