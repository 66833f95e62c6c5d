package lane

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/greenlane-pos/greenlane/internal/pgtest"
	"github.com/greenlane-pos/greenlane/lanedb"
)

// TestStoreLaneRefusesAClockOffTheDatabases: on a store database, a lane
// whose machine's clock is off the database's by more than MaxClockSkew
// does not start (its sweeper would judge every lane's presells by it);
// one in step does. The machine's clock is moved, not the lane's own
// (Config.Now), which may be set apart on purpose.
func TestStoreLaneRefusesAClockOffTheDatabases(t *testing.T) {
	ctx := context.Background()
	db, err := lanedb.Open(ctx, pgtest.FreshDB(t), lanedb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	log := slog.New(slog.DiscardHandler)
	defer func() { wallClock = time.Now }()
	for _, tc := range []struct {
		name  string
		off   time.Duration
		wants string // in the refusal; "" starts
	}{
		{"13h ahead", 13 * time.Hour, "13h0m0s ahead of the store database's"},
		{"3m behind", -3 * time.Minute, "3m0s behind the store database's"},
		{"in step", 0, ""},
	} {
		wallClock = func() time.Time { return time.Now().Add(tc.off) }
		l, err := New(ctx, db, DefaultConfig(), log)
		if tc.wants == "" {
			if err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			l.Close()
			continue
		}
		if err == nil {
			l.Close()
			t.Fatalf("%s: the lane started", tc.name)
		}
		if !strings.Contains(err.Error(), tc.wants) || !strings.Contains(err.Error(), "--max-clock-skew") {
			t.Fatalf("%s: refused with %q, want it to say %q and name --max-clock-skew", tc.name, err, tc.wants)
		}
	}

	// A deterministic clock set apart on purpose starts, and the lane
	// warns that its sweeper voids nothing while it is off.
	wallClock = time.Now
	var logs bytes.Buffer
	cfg := DefaultConfig()
	cfg.Now = func() time.Time { return time.Now().Add(13 * time.Hour) }
	l, err := New(ctx, db, cfg, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatalf("a deterministic clock 13h ahead: %v", err)
	}
	l.Close()
	if !strings.Contains(logs.String(), "sweeper voids nothing") {
		t.Fatalf("no warning for a deterministic clock on a store database:\n%s", logs.String())
	}
}
