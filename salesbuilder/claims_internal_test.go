package salesbuilder

import (
	"testing"
	"time"
)

// A claim's time left reads in seconds under a minute and in whole minutes
// above, never as 0 (a live claim has some left).
func TestSpan(t *testing.T) {
	tests := []struct {
		d    time.Duration
		n    int64
		unit string
	}{
		{time.Millisecond, 1, "s"},
		{40 * time.Second, 40, "s"},
		{59*time.Second + 400*time.Millisecond, 59, "s"},
		{59*time.Second + 600*time.Millisecond, 1, "min"},
		{90*time.Second - time.Millisecond, 1, "min"},
		{90 * time.Second, 2, "min"},
		{2 * time.Minute, 2, "min"},
		{65 * time.Minute, 65, "min"},
	}
	for _, tt := range tests {
		if n, unit := span(tt.d); n != tt.n || unit != tt.unit {
			t.Errorf("span(%s) = %d %s, want %d %s", tt.d, n, unit, tt.n, tt.unit)
		}
	}
}
