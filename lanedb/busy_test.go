package lanedb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/greenlane-pos/greenlane/internal/syncbuf"
)

// busyError makes SQLite refuse a write lock that the lane's writer holds:
// a second connection that will not wait gets SQLITE_BUSY.
func busyError(t *testing.T, db *DB) error {
	t.Helper()
	tx, err := db.w.Beginx() // BEGIN IMMEDIATE: takes the write lock
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	other, err := sqlx.Open("sqlite", fileURI(db.Path)+"?_pragma=busy_timeout(0)&_txlock=immediate")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	otx, err := other.Begin()
	if err == nil {
		otx.Rollback()
		t.Fatal("a second writer got the lock the writer holds")
	}
	return err
}

// lockedError makes SQLite refuse to drop a table that a statement on the
// same connection is still reading: SQLITE_LOCKED.
func lockedError(t *testing.T, db *DB) error {
	t.Helper()
	ctx := context.Background()
	conn, err := db.w.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, q := range []string{`CREATE TABLE scratch (n INTEGER)`, `INSERT INTO scratch VALUES (1), (2)`} {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	rows, err := conn.QueryContext(ctx, `SELECT n FROM scratch`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	rows.Next()
	_, err = conn.ExecContext(ctx, `DROP TABLE scratch`)
	if err == nil {
		t.Fatal("dropped a table that was being read")
	}
	return err
}

func constraintError(t *testing.T, db *DB) error {
	t.Helper()
	_, err := db.w.Exec(`INSERT INTO lane_counters (name, value) VALUES ('x', NULL)`)
	if err == nil {
		t.Fatal("NOT NULL was not enforced")
	}
	return err
}

func TestIsBusy(t *testing.T) {
	tests := []struct {
		name string
		err  func(t *testing.T, db *DB) error
		want bool
	}{
		{"SQLITE_BUSY from a held write lock", busyError, true},
		{"SQLITE_BUSY wrapped", func(t *testing.T, db *DB) error {
			return fmt.Errorf("begin write: %w", busyError(t, db))
		}, true},
		{"SQLITE_LOCKED by a pending read", lockedError, true},
		{"a constraint failure", constraintError, false},
		{"the words alone", func(*testing.T, *DB) error { return errors.New("database is locked (SQLITE_BUSY)") }, false},
		{"no error", func(*testing.T, *DB) error { return nil }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.err(t, openTemp(t))
			if got := IsBusy(err); got != tt.want {
				t.Fatalf("IsBusy(%v) = %v, want %v", err, got, tt.want)
			}
		})
	}
}

// TestOpenWhileAnotherProgramWrites: opening a lane DB whose write lock
// another program holds past the busy timeout fails saying so, with the
// file and the flag that sets the wait, not SQLite's bare "locked".
func TestOpenWhileAnotherProgramWrites(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lane.db")
	db, err := Open(context.Background(), path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	holdWriteLock(t, path)
	_, err = Open(context.Background(), path, Options{BusyTimeout: 50 * time.Millisecond})
	if err == nil {
		t.Fatal("opened a lane DB whose write lock another program holds")
	}
	for _, want := range []string{path, "another program held its write lock for 50ms", "--db-busy-timeout"} {
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("Open: %v; want it to say %q", err, want)
		}
	}
}

// TestWriterLockedByAnotherProgram: while another program holds the write
// lock past the busy timeout, the change that waited is refused, and so is
// every change queued behind it meanwhile, at once: they waited through the
// same lock, and a batch of their own would wait a whole timeout more. The
// wait is counted and logged.
func TestWriterLockedByAnotherProgram(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lane.db")
	db, err := Open(context.Background(), path, Options{BusyTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var log syncbuf.Buffer
	w := db.NewWriter(WriterOptions{MaxBatch: 64})
	defer w.Close()
	w.LogTo(slog.New(slog.NewTextHandler(&log, nil)))

	otx := holdWriteLock(t, path)

	first := make(chan error, 1)
	go func() { first <- w.Do(context.Background(), insertStaff(1)) }()
	// Once the loop has taken the first change it waits in BEGIN, and the
	// next ones queue behind it. (Had they all made one batch, the count
	// below would be the same: this wait only makes the test mean more.)
	time.Sleep(100 * time.Millisecond)
	queued := make(chan error, 3)
	for i := range 3 {
		go func() { queued <- w.Do(context.Background(), insertStaff(10+i)) }()
	}
	for _, ch := range []chan error{first, queued, queued, queued} {
		if err := <-ch; !IsBusy(err) {
			t.Fatalf("a change while another program held the lock: %v, want SQLite's busy", err)
		}
	}
	if n := w.stats.BusyWaits.Load(); n != 1 {
		t.Errorf("BusyWaits = %d, want 1: the changes queued behind the first waited a second time", n)
	}
	if w.stats.LockWaitNS.Load() < int64(time.Second) {
		t.Errorf("LockWaitNS = %v, want the busy timeout's wait counted", time.Duration(w.stats.LockWaitNS.Load()))
	}
	otx.Rollback()
	if err := w.Do(context.Background(), insertStaff(2)); err != nil {
		t.Fatalf("a change once the lock was let go: %v", err)
	}
	if got := log.String(); !strings.Contains(got, "stayed locked by another program") || !strings.Contains(got, "--db-busy-timeout") {
		t.Errorf("log: %q, want the refusal told with the flag that sets the wait", got)
	}
}

// lockWatchedWriter opens a lane DB (busy timeout a minute) and a writer
// on it logging to the returned writer, whose lock fault ends after calm.
func lockWatchedWriter(t *testing.T, calm time.Duration) (path string, w *Writer, logs *syncbuf.Buffer) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "lane.db")
	db, err := Open(context.Background(), path, Options{BusyTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	logs = &syncbuf.Buffer{}
	w = db.NewWriter(WriterOptions{})
	t.Cleanup(w.Close)
	w.LogTo(slog.New(slog.NewTextHandler(logs, nil)))
	w.lockMu.Lock()
	w.lockLog.Calm = calm
	w.lockMu.Unlock()
	return path, w, logs
}

// TestWriterLockWaitIsToldWhileItLasts: another program holding the
// write lock (a BEGIN IMMEDIATE left open in sqlite3) is told while the
// writer still waits for it, not only once the wait is over, and the wait
// shows in the metrics' figure as it goes; once the lock is free the wait
// ends, and so does the fault, in one line.
func TestWriterLockWaitIsToldWhileItLasts(t *testing.T) {
	path, w, logs := lockWatchedWriter(t, 0) // the end told at the first BEGIN that does not wait

	otx := holdWriteLock(t, path)

	done := make(chan error, 1)
	go func() { done <- w.Do(context.Background(), insertStaff(1)) }()
	// The warning must come while the change still waits: the lock is let
	// go only once it has, well before the busy timeout.
	for !strings.Contains(logs.String(), "still waits") {
		select {
		case err := <-done:
			t.Fatalf("the change's wait ended (%v) with nothing told while it lasted; the log:\n%s", err, logs.String())
		case <-time.After(20 * time.Millisecond):
		}
		if w.Stats().LockWaiting(time.Now()) > 20*time.Second {
			t.Fatalf("a change has waited 20s for the lock and nothing is told; the log:\n%s", logs.String())
		}
	}
	if got := w.Stats().LockWaiting(time.Now()); got < lockWaitWarn {
		t.Errorf("LockWaiting = %v once the wait was told, want at least %v", got, lockWaitWarn)
	}
	if err := otx.Rollback(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("the change once the lock was let go: %v", err)
	}
	if got := w.Stats().LockWaiting(time.Now()); got != 0 {
		t.Errorf("LockWaiting = %v with no BEGIN waiting, want 0", got)
	}
	if err := w.Do(context.Background(), insertStaff(2)); err != nil {
		t.Fatal(err)
	}
	got := logs.String()
	if n := strings.Count(got, "still waits"); n != 1 {
		t.Errorf("%d lines tell the wait in full, want 1 (then counts every 5s):\n%s", n, got)
	}
	if !strings.Contains(got, "write lock is free again") {
		t.Errorf("the log does not say the lock is free again:\n%s", got)
	}
}

// TestWriterTellsTheLockFreeWhileIdle: once another program lets the
// write lock go, the end is told after the Log's Calm even when no change
// comes to notice it, and how long it lasted runs to the lock's release,
// not to when the end is told.
func TestWriterTellsTheLockFreeWhileIdle(t *testing.T) {
	const calm = time.Second
	path, w, logs := lockWatchedWriter(t, calm)

	otx := holdWriteLock(t, path)
	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- w.Do(context.Background(), insertStaff(1)) }()
	time.Sleep(lockWaitTold + 200*time.Millisecond) // a wait long enough to be told when it ends
	if err := otx.Rollback(); err != nil {
		t.Fatal(err)
	}
	held := time.Since(start)
	if err := <-done; err != nil {
		t.Fatalf("the change once the lock was let go: %v", err)
	}
	// No other change comes. Give the end its calm, then several of the
	// watcher's ticks, and read the log.
	deadline := time.Now().Add(calm + 10*lockWatchEvery)
	for !strings.Contains(logs.String(), "free again") && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	got := logs.String()
	line := ""
	for _, l := range strings.Split(got, "\n") {
		if strings.Contains(l, "free again") {
			line = l
		}
	}
	if line == "" {
		t.Fatalf("the lock was let go and nothing told it free again with no change coming; the log:\n%s", got)
	}
	_, after, _ := strings.Cut(line, "lasted=")
	lasted, err := time.ParseDuration(strings.Fields(after + " ")[0])
	if err != nil {
		t.Fatalf("no lasted= in %q: %v", line, err)
	}
	// SQLite's busy handler looks again up to 100ms apart, so the BEGIN
	// sees the lock go a little after it went; the end, a calm later.
	if lasted > held+calm/2 {
		t.Errorf("lasted=%v, but the lock was held %v: it counts the idle time after", lasted, held)
	}
}

// holdWriteLock takes the write lock of the lane DB at path from another
// connection, as another program would (BEGIN IMMEDIATE), until the test
// ends or it rolls the transaction back.
func holdWriteLock(t *testing.T, path string) *sql.Tx {
	t.Helper()
	other, err := sqlx.Open("sqlite", fileURI(path)+"?_txlock=immediate")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Close() })
	tx, err := other.Begin()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tx.Rollback() })
	return tx
}
