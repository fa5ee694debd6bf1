package runtime

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestRequestContext: a request handler's context behaves as
// context.WithTimeout's under the session's context would, with its cancel
// deferred to the handler's return, whether or not Done was asked for
// before the end.
func TestRequestContext(t *testing.T) {
	tests := []struct {
		name     string
		deadline time.Duration
		askDone  bool // call Done before the end
		end      func(parentCancel context.CancelFunc, c *requestContext)
		want     error
	}{
		{"deadline, Done asked", 20 * time.Millisecond, true, func(context.CancelFunc, *requestContext) {}, context.DeadlineExceeded},
		{"deadline, Done not asked", 20 * time.Millisecond, false, func(context.CancelFunc, *requestContext) { time.Sleep(30 * time.Millisecond) }, context.DeadlineExceeded},
		{"session ends, Done asked", time.Hour, true, func(cancel context.CancelFunc, _ *requestContext) { cancel() }, context.Canceled},
		{"session ends, Done not asked", time.Hour, false, func(cancel context.CancelFunc, _ *requestContext) { cancel() }, context.Canceled},
		{"handler returns, Done asked", time.Hour, true, func(_ context.CancelFunc, c *requestContext) { c.finish() }, context.Canceled},
		{"handler returns, Done not asked", time.Hour, false, func(_ context.CancelFunc, c *requestContext) { c.finish() }, context.Canceled},
		{"deadline already passed", -time.Second, true, func(context.CancelFunc, *requestContext) {}, context.DeadlineExceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			parent, cancel := context.WithCancel(context.Background())
			defer cancel()
			dl := time.Now().Add(tt.deadline)
			c := newRequestContext(parent, CallInfo{Type: 1}, dl)
			defer c.finish()
			if got, ok := c.Deadline(); !ok || !got.Equal(dl) {
				t.Errorf("Deadline = %v, %v", got, ok)
			}
			if tt.deadline > 0 && c.Err() != nil {
				t.Fatalf("Err before the end = %v", c.Err())
			}
			var done <-chan struct{}
			if tt.askDone {
				done = c.Done()
			}
			// A context derived from it ends with it.
			child, stop := context.WithCancel(c)
			defer stop()
			tt.end(cancel, c)
			if !tt.askDone {
				done = c.Done()
			}
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				t.Fatal("Done not closed")
			}
			select {
			case <-child.Done():
			case <-time.After(5 * time.Second):
				t.Fatal("a derived context did not end")
			}
			if err := c.Err(); !errors.Is(err, tt.want) {
				t.Errorf("Err = %v, want %v", err, tt.want)
			}
			if ci, ok := CallInfoFromContext(child); !ok || ci.Type != 1 {
				t.Errorf("CallInfo through a derived context = %v, %v", ci, ok)
			}
			c.finish() // a second end changes nothing
			if err := c.Err(); !errors.Is(err, tt.want) {
				t.Errorf("Err after finish = %v, want %v still", err, tt.want)
			}
		})
	}
}
