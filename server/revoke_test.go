package server

import (
	"context"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/greenlane-pos/greenlane/internal/pgtest"
	"github.com/greenlane-pos/greenlane/internal/syncbuf"
	"github.com/greenlane-pos/greenlane/lanedb"
)

// TestRevocationWatchWarnsOncePerOutage: while the store database refuses
// connections (as while PostgreSQL restarts) every check for revoked keys
// fails; the watcher logs the first failure, saying plainly that the store
// database cannot be reached, not each one, and says how many there were
// when the checks work again.
func TestRevocationWatchWarnsOncePerOutage(t *testing.T) {
	ctx := context.Background()
	dbURL := pgtest.FreshDB(t)
	db, err := lanedb.Open(ctx, dbURL, lanedb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	allow := pgtest.Switch(t, dbURL)

	var logs syncbuf.Buffer
	s := New(DefaultConfig(), db, slog.New(slog.NewTextHandler(&logs, nil)))
	allow(false)
	wctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); s.watchRevocations(wctx, 2*time.Millisecond) }()
	defer func() { stop(); <-done }()
	// waitLog waits for a line matching re, for at most a minute.
	waitLog := func(re *regexp.Regexp) []string {
		t.Helper()
		for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			if m := re.FindStringSubmatch(logs.String()); m != nil {
				return m
			}
		}
		t.Fatalf("no log line matching %s within a minute; the log:\n%s", re, logs.String())
		return nil
	}
	// The warning says plainly why, pgx's text after it.
	waitLog(regexp.MustCompile(`msg="check for revoked keys" err="the store database cannot be reached: `))
	time.Sleep(200 * time.Millisecond) // many more failed checks
	allow(true)
	m := waitLog(regexp.MustCompile(`msg="checking for revoked keys again" failed_checks=(\d+)`))
	var failed int
	fmt.Sscan(m[1], &failed)
	if warns := strings.Count(logs.String(), `msg="check for revoked keys"`); warns != 1 || failed < 2 {
		t.Fatalf("%d failed checks logged %d warnings, want more than one failure and one warning; the log:\n%s", failed, warns, logs.String())
	}
}
