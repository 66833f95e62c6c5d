package lanedb

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/greenlane-pos/greenlane/internal/syncbuf"
)

// storeLockHolders counts the sessions holding the store lock of c's
// database, shared and exclusive.
func storeLockHolders(t *testing.T, c *pgx.Conn) (shared, exclusive int) {
	t.Helper()
	if err := c.QueryRow(context.Background(), `SELECT count(*) FILTER (WHERE mode = 'ShareLock'), count(*) FILTER (WHERE mode = 'ExclusiveLock')
		FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1
		  AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
		  AND classid::bigint = $1 AND objid::bigint = $2`, StoreLockKey>>32, StoreLockKey&0xffffffff).Scan(&shared, &exclusive); err != nil {
		t.Fatal(err)
	}
	return shared, exclusive
}

// Serving lanes share the store lock; a rewrite is refused while any holds
// it, saying how many, and a lane is refused while a rewrite holds it.
func TestPostgresStoreLockRefusals(t *testing.T) {
	ctx := context.Background()
	u := freshPostgresDB(t)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	serve := func() (func(), error) { r, _, err := LockStoreServing(ctx, u, Options{}, quiet, nil); return r, err }
	rewrite := func() (func(), error) { return LockStoreExclusive(ctx, u, Options{}) }
	for _, tc := range []struct {
		name     string
		lanes    int  // serving lanes holding the lock shared
		rewriter bool // a command holding it exclusive
		take     func() (func(), error)
		want     string // in the error; "" when the lock is taken
	}{
		{"a rewrite with no lane", 0, false, rewrite, ""},
		{"a lane with no other", 0, false, serve, ""},
		{"a lane beside two serving", 2, false, serve, ""},
		{"a rewrite while one lane serves", 1, false, rewrite, "a lane is serving it: 1 serving lane(s) hold its store lock"},
		{"a rewrite while two lanes serve", 2, false, rewrite, "a lane is serving it: 2 serving lane(s) hold its store lock"},
		{"a rewrite during another", 0, true, rewrite, "another command is rewriting it"},
		{"a lane during a rewrite", 0, true, serve, "is being rewritten: a fixture command holds its store lock"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var held []func()
			defer func() {
				for _, release := range held {
					release()
				}
			}()
			for range tc.lanes {
				release, err := serve()
				if err != nil {
					t.Fatal(err)
				}
				held = append(held, release)
			}
			if tc.rewriter {
				release, err := rewrite()
				if err != nil {
					t.Fatal(err)
				}
				held = append(held, release)
			}
			release, err := tc.take()
			if err == nil {
				held = append(held, release)
			}
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("got %v, want an error saying %q", err, tc.want)
			case tc.lanes > 0 && tc.want != "" && !errors.Is(err, ErrServing):
				t.Fatalf("%v is not ErrServing", err)
			}
		})
	}
	c, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	if s, x := storeLockHolders(t, c); s != 0 || x != 0 {
		t.Fatalf("after every release %d shared and %d exclusive holders remain", s, x)
	}
}

// A serving lane whose lock connection is ended takes the lock again in
// the background and logs each step. It keeps it, and serves on, only if
// the store was not rewritten meanwhile: a fixture command that took the
// lock while it was lost (as one started during a PostgreSQL restart
// would), or that changed the store's generation, stops the lane (its stop
// gets ErrStoreRewritten, logged as an ERROR saying what to do).
func TestPostgresStoreLockTakenAgain(t *testing.T) {
	for _, tc := range []struct {
		name string
		// meanwhile runs while the lane's lock connection is ended; admin
		// is a session of the test's own, which ends the connection after.
		meanwhile func(t *testing.T, admin *pgx.Conn, u string) (after func())
		stopped   string // in the error stop gets; "" when the lane keeps the lock
	}{
		{"nothing rewritten", func(*testing.T, *pgx.Conn, string) func() { return nil }, ""},
		{"the store's generation changed", func(t *testing.T, admin *pgx.Conn, _ string) func() {
			if _, err := admin.Exec(context.Background(), `UPDATE lane_meta SET value = 'rewritten' WHERE key = $1`, MetaGeneration); err != nil {
				t.Fatal(err)
			}
			return nil
		}, "rewrote it while this lane had lost its store lock"},
		{"a rewrite holds the lock", func(t *testing.T, _ *pgx.Conn, u string) func() {
			ctx := context.Background()
			rewriter, err := pgx.Connect(ctx, u)
			if err != nil {
				t.Fatal(err)
			}
			granted := make(chan error, 1)
			go func() { _, err := rewriter.Exec(ctx, `SELECT pg_advisory_lock($1)`, StoreLockKey); granted <- err }()
			waitForLockWait(t, u)
			return func() {
				if err := <-granted; err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { rewriter.Close(ctx) })
			}
		}, "a fixture command took its store lock while this lane had lost it"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			u := freshPostgresDB(t)
			// The generation a fixture command wrote before the lane started
			// (lane_meta alone stands for the migrated store: the lock reads
			// nothing else).
			if c, err := pgx.Connect(ctx, u); err != nil {
				t.Fatal(err)
			} else if _, err := c.Exec(ctx, `CREATE TABLE lane_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
				INSERT INTO lane_meta VALUES ('`+MetaGeneration+`', 'first')`); err != nil {
				t.Fatal(err)
			} else {
				c.Close(ctx)
			}
			lw := &syncbuf.Buffer{}
			log := lw.String
			stopped := make(chan error, 2)
			release, _, err := LockStoreServing(ctx, u, Options{}, slog.New(slog.NewTextHandler(lw, nil)), func(err error) { stopped <- err })
			if err != nil {
				t.Fatal(err)
			}
			released := false
			defer func() {
				if !released {
					release()
				}
			}()
			admin, err := pgx.Connect(ctx, u)
			if err != nil {
				t.Fatal(err)
			}
			defer admin.Close(ctx)
			after := tc.meanwhile(t, admin, u)
			if _, err := admin.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1 AND datname = current_database()`, storeLockApp); err != nil {
				t.Fatal(err)
			}
			if after != nil {
				after()
			}
			waitFor := func(what string, cond func() bool) {
				t.Helper()
				for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
					if time.Now().After(deadline) {
						t.Fatalf("no %s in 30s; log:\n%s", what, log())
					}
				}
			}
			waitFor("warning of the loss", func() bool {
				return strings.Contains(log(), "level=WARN msg=\"store lock lost with its PostgreSQL connection")
			})
			if tc.stopped != "" {
				var err error
				select {
				case err = <-stopped:
				case <-time.After(30 * time.Second):
					t.Fatalf("the lane was not stopped in 30s; log:\n%s", log())
				}
				if !errors.Is(err, ErrStoreRewritten) || !strings.Contains(err.Error(), tc.stopped) || !strings.Contains(err.Error(), "this lane stops rather than serve it") {
					t.Fatalf("stopped with %v, want ErrStoreRewritten saying %q and that the lane stops", err, tc.stopped)
				}
				if !strings.Contains(log(), "level=ERROR msg=\"stopping: store database") {
					t.Fatalf("the stop was not logged as an ERROR:\n%s", log())
				}
				return
			}
			waitFor("lock taken again", func() bool { s, _ := storeLockHolders(t, admin); return s == 1 })
			waitFor("log of the lock taken again", func() bool { return strings.Contains(log(), "store lock taken again") })
			select {
			case err := <-stopped:
				t.Fatalf("the lane was stopped: %v", err)
			default:
			}
			if _, err := LockStoreExclusive(ctx, u, Options{}); !errors.Is(err, ErrServing) {
				t.Fatalf("a rewrite once the lock was taken again: %v, want ErrServing", err)
			}
			release()
			released = true
			if s, x := storeLockHolders(t, admin); s != 0 || x != 0 {
				t.Fatalf("after release %d shared and %d exclusive holders remain", s, x)
			}
		})
	}
}
