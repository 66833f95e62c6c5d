package salesbuilder

import (
	"database/sql"
	"testing"
	"time"

	"github.com/greenlane-pos/greenlane/lanedb"
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

// A claim stamped by a clock since set back reads as at most one lease
// left, in the count as in the clock time.
func TestClaimLeftCappedAtLease(t *testing.T) {
	now := time.Date(2026, 4, 4, 13, 55, 0, 0, time.UTC)
	s := &Service{now: func() time.Time { return now }, lease: 2 * time.Minute, loc: time.UTC}
	tests := []struct {
		expires time.Time
		want    string
	}{
		{now.Add(47 * time.Minute), "2 more min (until 13:57)"},
		{now.Add(90 * time.Second), "2 more min (until 13:56)"},
		{now.Add(30 * time.Second), "30 more s (until 13:55)"},
	}
	for _, tt := range tests {
		c := lanedb.ClaimState{Session: sql.NullString{String: "s", Valid: true}, ExpiresMS: sql.NullInt64{Int64: tt.expires.UnixMilli(), Valid: true}}
		if got := s.claimLeft(c); got != tt.want {
			t.Errorf("claim expiring %s: %q, want %q", tt.expires.Sub(now), got, tt.want)
		}
	}
}
