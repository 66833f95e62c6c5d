package presell

import (
	"bytes"
	"context"
	"log/slog"
	"testing"
	"time"
)

// TestSteadyClock: the sweeper's clock follows the lane's clock back, but
// forward only as far as the lane has run since it started.
func TestSteadyClock(t *testing.T) {
	start := time.Date(2026, 11, 27, 9, 30, 0, 0, time.UTC)
	for _, tc := range []struct {
		name    string
		wall    time.Duration // the lane's clock, from start
		running time.Duration
		want    time.Duration // the steady clock, from start
	}{
		{"in step", 5 * time.Minute, 5 * time.Minute, 5 * time.Minute},
		{"stepped 13h forward", 13*time.Hour + time.Minute, time.Minute, time.Minute},
		{"stepped back", -time.Hour, time.Minute, -time.Hour},
		{"frozen (--clock at a time)", 0, 3 * time.Hour, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &steadyClock{now: func() time.Time { return start.Add(tc.wall) }, start: start,
				running: func() time.Duration { return tc.running }}
			if got := c.Now(); !got.Equal(start.Add(tc.want)) {
				t.Fatalf("Now() = %s, want %s", got, start.Add(tc.want))
			}
		})
	}
}

// TestSweepWithoutAReferenceClock: on a lane with no reference clock the
// sweeper voids nothing until the lane has run for PresellMaxAge, and then
// judges ages by the steady clock, not by a lane clock stepped ahead.
func TestSweepWithoutAReferenceClock(t *testing.T) {
	for _, tc := range []struct {
		name    string
		running time.Duration
		idle    time.Duration // how long the presell was really left alone
		voided  bool
	}{
		{"clock 13h ahead, lane just started", time.Minute, 0, false},
		{"lane ran past max age, presell young", 12*time.Hour + time.Minute, 11 * time.Hour, false},
		{"lane ran past max age, presell old", 12*time.Hour + time.Minute, 12*time.Hour + time.Second, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newLane(t) // PresellMaxAge 12h
			clock := newSteadyClock(l.now)
			clock.running = func() time.Duration { return tc.running }
			// The presell was last touched tc.idle before the steady clock's
			// now (start + running); the lane's clock then reads 13h ahead of it.
			l.advance(tc.running - tc.idle)
			p := l.submitted(tablet("tablet-1"), 1001)
			l.advance(tc.idle + 13*time.Hour)
			var logs bytes.Buffer
			l.svc.sweepOnce(context.Background(), slog.New(slog.NewTextHandler(&logs, nil)), nil, clock)
			rows, err := l.svc.Open(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if open := len(rows) == 1 && rows[0].Physkey == p.Physkey; open == tc.voided {
				t.Fatalf("open presells after the sweep: %+v; want voided %v\n%s", rows, tc.voided, logs.String())
			}
		})
	}
}
