package lanedb

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/greenlane-pos/greenlane/internal/pgtest"
)

func TestClockSkew(t *testing.T) {
	ctx := context.Background()
	lite, err := Open(ctx, filepath.Join(t.TempDir(), "lane.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer lite.Close()
	ahead := func() time.Time { return time.Now().Add(time.Hour) }
	if skew, err := lite.ClockSkew(ctx, ahead); err != nil || skew != 0 {
		t.Fatalf("SQLite: skew %v, %v; want 0 (the lane DB has no clock of its own)", skew, err)
	}

	pg, err := Open(ctx, pgtest.FreshDB(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close()
	for _, tc := range []struct {
		name string
		now  func() time.Time
		want time.Duration
	}{
		{"in step", time.Now, 0},
		{"an hour ahead", ahead, time.Hour},
		{"13h behind", func() time.Time { return time.Now().Add(-13 * time.Hour) }, -13 * time.Hour},
	} {
		skew, err := pg.ClockSkew(ctx, tc.now)
		// The test's PostgreSQL runs on this machine: the same clock, read
		// over loopback.
		if err != nil || (skew-tc.want).Abs() > time.Second {
			t.Errorf("%s: skew %v, %v; want %v within a second", tc.name, skew, err, tc.want)
		}
	}
}
