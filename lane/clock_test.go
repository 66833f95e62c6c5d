package lane

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/greenlane-pos/greenlane/internal/pgtest"
	"github.com/greenlane-pos/greenlane/internal/syncbuf"
	"github.com/greenlane-pos/greenlane/lanedb"
	"github.com/greenlane-pos/greenlane/protocol"
)

// TestStoreLaneRefusesAClockOffTheDatabases: on a store database, a lane
// whose clock is off the database's by more than MaxClockSkew does not
// start (its sweeper would judge every lane's presells by it, and it would
// stamp shared rows with it); one in step does. That is the machine's
// clock, and the lane's own (Config.Now, serve --clock) as well: a
// presell parked by a lane 13h behind would be voided by the others' sweepers.
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
		name    string
		off     time.Duration // the machine's clock
		laneOff time.Duration // the lane's (Config.Now); 0: none set
		wants   string        // in the refusal; "" starts
	}{
		{"13h ahead", 13 * time.Hour, 0, "13h0m0s ahead of the store database's"},
		{"3m behind", -3 * time.Minute, 0, "3m0s behind the store database's"},
		{"in step", 0, 0, ""},
		{"--clock 13h behind", 0, -13 * time.Hour, "13h0m0s behind the store database's"},
		{"--clock 3m ahead", 0, 3 * time.Minute, "3m0s ahead of the store database's"},
		{"--clock in step", 0, time.Millisecond, ""},
	} {
		wallClock = func() time.Time { return time.Now().Add(tc.off) }
		cfg := DefaultConfig()
		if tc.laneOff != 0 {
			cfg.Now = func() time.Time { return time.Now().Add(tc.laneOff) }
		}
		l, err := New(ctx, db, cfg, log)
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
}

// TestStoreLaneRefusesChangesWhileItsClockIsOff: a store-mode lane whose
// clock goes off the database's while it runs refuses changes with
// unavailable, saying by how much and to set it right, and logs it; reads
// go on; once the clock is back in step, changes are accepted again.
func TestStoreLaneRefusesChangesWhileItsClockIsOff(t *testing.T) {
	ctx := context.Background()
	db, err := lanedb.Open(ctx, pgtest.FreshDB(t), lanedb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var off atomic.Int64 // how far the lane's clock is off, in ns
	cfg := DefaultConfig()
	cfg.Now = func() time.Time { return time.Now().Add(time.Duration(off.Load())) }
	var logs syncbuf.Buffer
	l, err := New(ctx, db, cfg, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	change := func() error {
		return l.Sales.Do(ctx, func(ctx context.Context, tx *lanedb.Tx) error { return lanedb.SetMeta(ctx, tx, "clock_test", "x") })
	}
	// until waits for the clock watch to have judged the clock.
	until := func(what string, ok func(error) bool) error {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			err := change()
			if ok(err) {
				return err
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: the last change gave %v", what, err)
			}
		}
	}
	if err := change(); err != nil {
		t.Fatalf("a change with the clock in step: %v", err)
	}
	off.Store(int64(-13 * time.Hour))
	err = until("changes refused", func(err error) bool { return err != nil })
	var fe *protocol.Error
	if !errors.As(err, &fe) || fe.Code != protocol.CodeUnavailable ||
		!strings.Contains(fe.Message, "the lane's clock is 13h0m0s behind the store database's") ||
		!strings.Contains(fe.Message, "set it right") || !strings.Contains(fe.Message, "refuses changes") {
		t.Fatalf("a change with the clock 13h behind: %v, want unavailable saying by how much and to set it right", err)
	}
	if _, err := lanedb.Meta(ctx, db.Read, "clock_test"); err != nil {
		t.Fatalf("a read with the clock off: %v", err)
	}
	if code, body := readyz(l); code != http.StatusServiceUnavailable ||
		!strings.Contains(body, "not ready: the lane's clock is 13h0m0s behind the store database's") {
		t.Fatalf("/readyz while changes are refused: %d %q, want 503 saying why", code, body)
	}
	logged := logs.String()
	if !strings.Contains(logged, "level=ERROR msg=\"refusing changes: the lane's clock is 13h0m0s behind") {
		t.Fatalf("the refusal was not logged as an ERROR:\n%s", logged)
	}
	off.Store(0)
	until("changes accepted again", func(err error) bool { return err == nil })
	if code, body := readyz(l); code != http.StatusOK {
		t.Fatalf("/readyz once the clock is in step again: %d %q, want 200", code, body)
	}
}

// readyz asks the lane's /readyz.
func readyz(l *Lane) (int, string) {
	rec := httptest.NewRecorder()
	l.Server.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
	return rec.Code, rec.Body.String()
}
