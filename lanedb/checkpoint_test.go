package lanedb

import (
	"context"
	"database/sql"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/greenlane-pos/greenlane/internal/syncbuf"
)

// TestCheckpointerCopiesTheWALBack: what the writer commits reaches the
// database file without the writer checkpointing (its autocheckpoint is
// off, and 2 MB is below SQLite's default threshold anyway).
func TestCheckpointerCopiesTheWALBack(t *testing.T) {
	db := openTemp(t)
	ctx := context.Background()
	size := func() int64 {
		t.Helper()
		st, err := os.Stat(db.Path)
		if err != nil {
			t.Fatal(err)
		}
		return st.Size()
	}
	before := size()
	err := db.WriteTx(ctx, func(tx *Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO lane_meta (key, value) VALUES ('bulk', ?)`, strings.Repeat("x", 2<<20))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for size() < before+2<<20 {
		if time.Now().After(deadline) {
			t.Fatalf("the database file is %d bytes, %d before a 2 MB commit: the WAL was not checkpointed", size(), before)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestWALStaysBounded: under back-to-back writes while readers always sit
// in the WAL, PASSIVE checkpoints never find the WAL fully copied back
// with no reader in it, so SQLite never starts it over: it grew without
// end. A write through the group-commit writer or WriteTx restarts it once
// it passes its limit, so the file stays within a few times the limit.
func TestWALStaysBounded(t *testing.T) {
	insert := func(ctx context.Context, tx *Tx, i int) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO staff (tid, physkey, name) VALUES (?, ?, ?)`, 1000+i, i, strings.Repeat("x", 8<<10))
		return err
	}
	for _, via := range []struct {
		name  string
		write func(ctx context.Context, db *DB, w *Writer, i int) error
	}{
		{"writer", func(ctx context.Context, _ *DB, w *Writer, i int) error {
			return w.Do(ctx, func(ctx context.Context, tx *Tx) error { return insert(ctx, tx, i) })
		}},
		{"WriteTx", func(ctx context.Context, db *DB, _ *Writer, i int) error {
			return db.WriteTx(ctx, func(tx *Tx) error { return insert(ctx, tx, i) })
		}},
	} {
		t.Run(via.name, func(t *testing.T) {
			testWALStaysBounded(t, func(ctx context.Context, db *DB, w *Writer, i int) error { return via.write(ctx, db, w, i) })
		})
	}
}

// walLimitedDB opens a lane DB without fsyncs (to be quick: the WAL grows
// the same) whose WAL is started over past limit bytes.
func walLimitedDB(t *testing.T, limit int64) *DB {
	t.Helper()
	ctx := context.Background()
	db, err := Open(ctx, filepath.Join(t.TempDir(), "lane.db"), Options{Synchronous: "OFF"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.setWALLimit(ctx, limit); err != nil {
		t.Fatal(err)
	}
	return db
}

func testWALStaysBounded(t *testing.T, write func(ctx context.Context, db *DB, w *Writer, i int) error) {
	ctx := context.Background()
	const limit = 256 << 10
	db := walLimitedDB(t, limit)
	w := db.NewWriter(WriterOptions{})
	defer w.Close()

	stop := make(chan struct{})
	var readers sync.WaitGroup
	for range 3 {
		readers.Add(1)
		go func() {
			defer readers.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				// Short reads back to back, as the lane's are: one of them
				// is nearly always in the WAL.
				var n int
				if err := db.r.GetContext(ctx, &n, `SELECT COUNT(*) FROM staff`); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	defer func() { close(stop); readers.Wait() }()

	const writes = 200 // WAL frames of several times the bound
	var most int64
	for i := range writes {
		if err := write(ctx, db, w, i); err != nil {
			t.Fatal(err)
		}
		n, err := db.WALSize()
		if err != nil {
			t.Fatal(err)
		}
		most = max(most, n)
	}
	// A write here is one row: 8 KB of text, a few pages with the index.
	// A restart that a read blocked (on a loaded machine a reader may sit
	// descheduled in the WAL past restartWait) is tried again a limit
	// later: allow for a few. Unbounded, it reaches several MB here.
	if bound := int64(4*limit + 64<<10); most > bound {
		t.Fatalf("the WAL reached %d bytes writing %d KB; want at most %d", most, writes*8, bound)
	}
}

// TestCloseReportsAWALLeftBehind: a WAL that Close could not copy back
// (here another program's read keeps it) is reported, naming the file and
// why, rather than closing as if all were in the database file; with
// nobody else on the file, Close copies it back and removes it.
func TestCloseReportsAWALLeftBehind(t *testing.T) {
	for _, tt := range []struct {
		name      string
		otherRead bool
		want      string // "" for a clean close
	}{
		{"alone", false, ""},
		{"another program reading", true, "-wal"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			db, err := Open(ctx, filepath.Join(t.TempDir(), "lane.db"), Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if _, err := db.Exec(ctx, `INSERT INTO lane_meta (key, value) VALUES ('a', 'b')`); err != nil {
				t.Fatal(err)
			}
			if tt.otherRead {
				holdRead(t, db.Path, "lane_meta")
				// A change after the reader's snapshot: its frame cannot be
				// copied back while the read lasts. (The first one may already
				// be back in the file, the reader then reading the file alone.)
				if _, err := db.Exec(ctx, `INSERT INTO lane_meta (key, value) VALUES ('c', 'd')`); err != nil {
					t.Fatal(err)
				}
			}
			err = db.Close()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("Close = %v, want a clean close", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("Close = %v, want it to report the WAL left behind", err)
			}
			if _, err := os.Stat(db.Path + "-wal"); (err == nil) != (tt.want != "") {
				t.Fatalf("WAL file after Close: %v", err)
			}
		})
	}
}

// TestWALHeldByAnotherProgramsReadIsTold: another program (the counter,
// sqlite3) holding a read transaction open keeps the WAL from starting
// over, and it grows with every change until that read ends. The writer
// says so once the read has kept it a while (naming the WAL's size and the
// cause), not at each blocked restart, and says when the WAL starts over
// again.
func TestWALHeldByAnotherProgramsReadIsTold(t *testing.T) {
	ctx := context.Background()
	const limit = 256 << 10
	db := walLimitedDB(t, limit)
	logs := &syncbuf.Buffer{}
	w := db.NewWriter(WriterOptions{})
	defer w.Close()
	w.LogTo(slog.New(slog.NewTextHandler(logs, nil)))
	next := 0
	write := func() {
		t.Helper()
		next++
		err := w.Do(ctx, func(ctx context.Context, tx *Tx) error {
			_, err := tx.ExecContext(ctx, `INSERT INTO staff (tid, physkey, name) VALUES (?, ?, ?)`, 1000+next, next, strings.Repeat("x", 8<<10))
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	// logged waits, writing meanwhile, for a line holding every one of
	// want; it gives up once the WAL has grown to far past what the wait
	// for a line needs.
	logged := func(upTo int64, want ...string) string {
		t.Helper()
		for {
			for _, line := range strings.Split(logs.String(), "\n") {
				if containsAll(line, want...) {
					return line
				}
			}
			n, err := db.WALSize()
			if err != nil {
				t.Fatal(err)
			}
			if n > upTo {
				t.Fatalf("the WAL is %d bytes and no line says %q; the log:\n%s", n, want, logs.String())
			}
			write()
		}
	}

	read := holdRead(t, db.Path, "staff")
	line := logged(16*limit, "level=WARN", "another program", "open read", "WAL", "wal_bytes=")
	if m := regexp.MustCompile(`wal_bytes=(\d+)`).FindStringSubmatch(line); m == nil || len(m[1]) < 6 {
		t.Fatalf("the warning does not give the WAL's size past the limit: %s", line)
	}
	if n := db.WALRestartsBlocked(); n < walHeldTold {
		t.Fatalf("WALRestartsBlocked = %d once the read was told, want at least %d", n, walHeldTold)
	}
	if c := strings.Count(logs.String(), "open read"); c != 1 {
		t.Fatalf("%d lines tell the read that keeps the WAL, want 1 (then counts every 5s):\n%s", c, logs.String())
	}
	if err := read.Rollback(); err != nil {
		t.Fatal(err)
	}
	grown, err := db.WALSize()
	if err != nil {
		t.Fatal(err)
	}
	logged(grown+8*limit, "level=INFO", "WAL starts over")
}

// containsAll reports whether s holds every one of parts.
func containsAll(s string, parts ...string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}

// holdRead opens a read transaction on the lane DB at path from another
// connection, as another program would, and reads table in it: the
// snapshot then holds until the test ends or rolls it back.
func holdRead(t *testing.T, path, table string) *sql.Tx {
	t.Helper()
	other, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Close() })
	tx, err := other.Begin()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tx.Rollback() })
	var n int
	if err := tx.QueryRow(`SELECT COUNT(*) FROM ` + table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return tx
}
