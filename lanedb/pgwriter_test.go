package lanedb

import (
	"context"
	"errors"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/greenlane-pos/greenlane/internal/pgtest"
	"github.com/greenlane-pos/greenlane/internal/syncbuf"
)

// openTwoInstances opens one fresh PostgreSQL database twice, as two
// greenlane instances would, each with its own writer.
func openTwoInstances(t *testing.T) (a, b *DB, u string) {
	t.Helper()
	a, u = openPostgresTest(t)
	b, err := Open(context.Background(), u, Options{})
	if err != nil {
		t.Fatalf("Open the second instance: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	return a, b, u
}

// waitForLockWait returns once some backend on the database at u waits
// for a lock another holds.
func waitForLockWait(t *testing.T, u string) {
	t.Helper()
	ctx := context.Background()
	c, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	deadline := time.Now().Add(30 * time.Second)
	for {
		var n int
		if err := c.QueryRow(ctx, `SELECT count(*) FROM pg_locks WHERE NOT granted`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("no backend came to wait for a lock in 30s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// staffOnce adds staff tid unless it exists, as the lane's exactly-once
// writes do (look up, else insert). found says which way the last run went.
func staffOnce(tid int, runs *atomic.Int32, found *atomic.Bool, hold func()) Mutation {
	return func(ctx context.Context, tx *Tx) error {
		runs.Add(1)
		var n int
		if err := tx.GetContext(ctx, &n, `SELECT COUNT(*) FROM staff WHERE tid = ?`, tid); err != nil {
			return err
		}
		found.Store(n > 0)
		if n > 0 {
			return nil
		}
		if err := insertStaff(tid)(ctx, tx); err != nil {
			return err
		}
		if hold != nil {
			hold()
		}
		return nil
	}
}

// Another program writing the store database (a counter program, which
// takes no greenlane lock) and an instance's writer race to insert the same
// key: the writer's insert waits on the program's uncommitted row, fails
// with a unique violation once the program commits, is rolled back to its
// savepoint and run once more, and then finds the row. Both succeed.
// (Two instances' writers take turns on the journal lock from BEGIN, so
// between themselves they do not race like this.)
func TestPostgresWriterRetriesALostRaceOnce(t *testing.T) {
	a, b, u := openTwoInstances(t)
	wb := b.NewWriter(WriterOptions{})
	defer wb.Close()
	ctx := context.Background()

	inserted, release := make(chan struct{}), make(chan struct{})
	var runsA, runsB atomic.Int32
	var foundA, foundB atomic.Bool
	errA := make(chan error, 1)
	go func() {
		errA <- a.WriteTx(ctx, func(tx *Tx) error {
			return staffOnce(7, &runsA, &foundA, func() { close(inserted); <-release })(ctx, tx)
		})
	}()
	<-inserted // A holds the uncommitted row
	errB := make(chan error, 1)
	go func() { errB <- wb.Do(ctx, staffOnce(7, &runsB, &foundB, nil)) }()
	waitForLockWait(t, u) // B's insert waits on A's row
	close(release)
	if err := <-errA; err != nil {
		t.Fatalf("winner: %v", err)
	}
	if err := <-errB; err != nil {
		t.Fatalf("loser: %v (want its second run to find the winner's row)", err)
	}
	if runsB.Load() != 2 || !foundB.Load() {
		t.Errorf("loser ran %d times, found the row: %v; want 2 runs, the second finding it", runsB.Load(), foundB.Load())
	}
	if got := staffCount(t, a); got != 1 {
		t.Errorf("%d staff rows, want 1", got)
	}
}

// A mutation that loses every time is run twice, then answered with
// ErrRaceLost (an FD1 conflict), its writes undone, and the batch's other
// mutations committed.
func TestPostgresWriterAnswersASecondLossWithErrRaceLost(t *testing.T) {
	db, _ := openPostgresTest(t)
	w := db.NewWriter(WriterOptions{})
	defer w.Close()
	ctx := context.Background()
	var runs atomic.Int32
	err := w.Do(ctx, func(ctx context.Context, tx *Tx) error {
		runs.Add(1)
		if err := insertStaff(1)(ctx, tx); err != nil {
			return err
		}
		return insertStaff(1)(ctx, tx) // a unique violation, every run
	})
	if !errors.Is(err, ErrRaceLost) || runs.Load() != 2 {
		t.Fatalf("err = %v after %d runs; want ErrRaceLost after 2", err, runs.Load())
	}
	if err := w.Do(ctx, insertStaff(2)); err != nil {
		t.Fatal(err)
	}
	if got := staffCount(t, db); got != 1 {
		t.Errorf("%d staff rows, want 1 (the failed mutation's undone)", got)
	}
}

// When the writer's connection dies mid-batch (here the mutation has the
// server end its own connection, as a PostgreSQL restart would), the batch
// is answered ErrUnavailable, not an internal error, and the next batch
// runs on a new connection without anyone reopening the DB.
func TestPostgresWriterUnavailableThenReconnects(t *testing.T) {
	db, _ := openPostgresTest(t)
	w := db.NewWriter(WriterOptions{})
	defer w.Close()
	ctx := context.Background()
	err := w.Do(ctx, func(ctx context.Context, tx *Tx) error {
		if err := insertStaff(1)(ctx, tx); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `SELECT pg_terminate_backend(pg_backend_pid())`)
		return err
	})
	if !errors.Is(err, ErrUnavailable) || !IsUnavailable(err) {
		t.Fatalf("err = %v, want ErrUnavailable", err)
	}
	if err := w.Do(ctx, insertStaff(2)); err != nil {
		t.Fatalf("the writer did not reconnect: %v", err)
	}
	if tids := staffIDs(t, db); len(tids) != 1 || tids[0] != 2 {
		t.Errorf("staff = %v, want [2]: the dead batch must have written nothing", tids)
	}
}

// staffIDs are the staff rows' tids, in order: what the tests' batches
// (insertStaff) wrote.
func staffIDs(t *testing.T, db *DB) []int {
	t.Helper()
	var tids []int
	if err := db.Read.SelectContext(context.Background(), &tids, `SELECT tid FROM staff ORDER BY tid`); err != nil {
		t.Fatal(err)
	}
	return tids
}

// shortBusyWriter opens a fresh store database whose batches may wait
// 300ms (Options.BusyTimeout), and a writer on it; both close with the
// test. u is the database's URL, for another program's connection.
func shortBusyWriter(t *testing.T) (u string, db *DB, w *Writer) {
	t.Helper()
	// connect_timeout: the short busy timeout bounds the lock wait only,
	// not connecting, which a loaded CI machine (the race and store passes
	// at once) took longer than 300ms for.
	u = freshPostgresDB(t) + "&connect_timeout=10"
	db, err := Open(context.Background(), u, Options{BusyTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	w = db.NewWriter(WriterOptions{})
	t.Cleanup(w.Close)
	return u, db, w
}

// A write that waits on a lock another program holds and never lets go
// does not hold the writer: its batch is answered ErrUnavailable at the
// batch deadline (Options.BusyTimeout), and once the lock is gone the
// next write goes through.
func TestPostgresWriterDoesNotHangOnALock(t *testing.T) {
	u, _, w := shortBusyWriter(t)
	ctx := context.Background()
	if err := w.Do(ctx, insertStaff(1)); err != nil {
		t.Fatal(err)
	}
	holder, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close(ctx)
	tx, err := holder.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `UPDATE staff SET name = 'held' WHERE tid = 1`); err != nil {
		t.Fatal(err)
	}
	rename := func(ctx context.Context, tx *Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE staff SET name = 'renamed' WHERE tid = 1`)
		return err
	}
	if err := w.Do(ctx, rename); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("a write behind a lock never released: err = %v, want ErrUnavailable", err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if err := w.Do(ctx, rename); err != nil {
		t.Fatalf("after the lock went: %v", err)
	}
}

// A lane's write batch on a store rewritten under it (its generation no
// longer the one it started on, DB.GuardGeneration) commits nothing, is
// answered ErrUnavailable and ErrStoreRewritten, and stops the lane, once.
// A rewrite still under way (its transaction has set the generation first,
// as the fixture commands do) holds the batch until it commits, and the
// batch then reads the new generation.
func TestPostgresWriterRefusesARewrittenStore(t *testing.T) {
	for _, tc := range []struct {
		name string
		// rewrite sets the store's generation on admin while write (a lane
		// write, run in the background) is to run; nil: no rewrite.
		rewrite func(t *testing.T, admin *pgx.Conn, u string, write func() <-chan error) error
		refused bool
	}{
		{"not rewritten", nil, false},
		{"rewritten before the batch", func(t *testing.T, admin *pgx.Conn, _ string, write func() <-chan error) error {
			if _, err := admin.Exec(context.Background(), `UPDATE lane_meta SET value = 'second' WHERE key = $1`, MetaGeneration); err != nil {
				t.Fatal(err)
			}
			return <-write()
		}, true},
		{"rewrite under way", func(t *testing.T, admin *pgx.Conn, u string, write func() <-chan error) error {
			ctx := context.Background()
			tx, err := admin.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := tx.Exec(ctx, `UPDATE lane_meta SET value = 'second' WHERE key = $1`, MetaGeneration); err != nil {
				t.Fatal(err)
			}
			done := write()
			waitForLockWait(t, u) // the batch waits for the rewrite's row lock
			if err := tx.Commit(ctx); err != nil {
				t.Fatal(err)
			}
			return <-done
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db, u := openPostgresTest(t)
			ctx := context.Background()
			if err := db.WriteTx(ctx, func(tx *Tx) error { return SetMeta(ctx, tx, MetaGeneration, "first") }); err != nil {
				t.Fatal(err)
			}
			var stops atomic.Int32
			var stopErr atomic.Pointer[error]
			db.GuardGeneration("first", func(err error) { stops.Add(1); stopErr.Store(&err) })
			w := db.NewWriter(WriterOptions{})
			defer w.Close()
			write := func() <-chan error {
				done := make(chan error, 1)
				go func() { done <- w.Do(ctx, insertStaff(1)) }()
				return done
			}
			var err error
			if tc.rewrite == nil {
				err = <-write()
			} else {
				admin, cerr := pgx.Connect(ctx, u)
				if cerr != nil {
					t.Fatal(cerr)
				}
				defer admin.Close(ctx)
				err = tc.rewrite(t, admin, u, write)
			}
			if !tc.refused {
				if err != nil || staffCount(t, db) != 1 || stops.Load() != 0 {
					t.Fatalf("err %v, %d staff rows, %d stops; want the write, no stop", err, staffCount(t, db), stops.Load())
				}
				return
			}
			if !errors.Is(err, ErrUnavailable) || !errors.Is(err, ErrStoreRewritten) {
				t.Fatalf("err = %v, want ErrUnavailable and ErrStoreRewritten", err)
			}
			// Later changes are refused too, by the writer and WriteTx, and
			// the lane is stopped once.
			if err := w.Do(ctx, insertStaff(2)); !errors.Is(err, ErrStoreRewritten) {
				t.Errorf("the next batch: %v, want ErrStoreRewritten", err)
			}
			if err := db.WriteTx(ctx, func(tx *Tx) error { return insertStaff(3)(ctx, tx) }); !errors.Is(err, ErrStoreRewritten) {
				t.Errorf("WriteTx: %v, want ErrStoreRewritten", err)
			}
			if n := staffCount(t, db); n != 0 {
				t.Errorf("%d staff rows landed in the rewritten store, want none", n)
			}
			if n := stops.Load(); n != 1 || !errors.Is(*stopErr.Load(), ErrStoreRewritten) {
				t.Errorf("stopped %d times, want once with ErrStoreRewritten", n)
			}
		})
	}
}

// TestPostgresWriterTellsAnUnreachableStore: while the store database
// cannot be reached, every change is refused unavailable, as on a full
// disk: the log has one ERROR saying so plainly with pgx's cause after it,
// not a line each, and a line with the count once changes go through
// again; the refusals are counted by cause, and Ready says so in the same
// words.
func TestPostgresWriterTellsAnUnreachableStore(t *testing.T) {
	db, u := openPostgresTest(t)
	logs := &syncbuf.Buffer{}
	w := db.NewWriter(WriterOptions{})
	defer w.Close()
	w.LogTo(slog.New(slog.NewTextHandler(logs, nil)))
	allow := pgtest.Switch(t, u)
	ctx := context.Background()

	allow(false)
	const tries = 5
	for i := range tries {
		if err := w.Do(ctx, insertStaff(10+i)); !errors.Is(err, ErrUnavailable) || IsBusy(err) {
			t.Fatalf("change %d with the store database out of reach: %v, want ErrUnavailable", i, err)
		}
	}
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := db.Ready(rctx); err == nil || !strings.HasPrefix(err.Error(), "the store database cannot be reached: ") {
		t.Errorf("Ready = %v, want it to begin: the store database cannot be reached", err)
	}
	if got := w.Stats().Refused(); got[RefusedUnreachable] != tries {
		t.Errorf("refused by cause %v, want %d %s", got, tries, RefusedUnreachable)
	}
	first := regexp.MustCompile(`level=ERROR msg="the store database cannot be reached: [^"]*" err=`)
	if n := len(first.FindAllString(logs.String(), -1)); n != 1 || strings.Count(logs.String(), "cannot be reached") != 1 {
		t.Fatalf("%d ERROR lines for %d refused changes, want 1 and no other:\n%s", n, tries, logs.String())
	}

	allow(true)
	// The pool's connections died with the outage: database/sql opens a
	// new one, which may take a try or two while the server lets it in.
	for i := 0; ; i++ {
		err := w.Do(ctx, insertStaff(100+i))
		if err == nil {
			break
		}
		if i == 20 {
			t.Fatalf("changes still refused once the store database let connections in: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	m := regexp.MustCompile(`msg="the store database is reachable again[^"]*" refused=(\d+)`).FindStringSubmatch(logs.String())
	if m == nil {
		t.Fatalf("the log does not tell the recovery:\n%s", logs.String())
	}
	if n, _ := strconv.Atoi(m[1]); n < tries {
		t.Errorf("the recovery counts %d changes refused, want at least %d:\n%s", n, tries, logs.String())
	}
}
