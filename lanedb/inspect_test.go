package lanedb

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
)

func TestInspectMethods(t *testing.T) {
	ctx := context.Background()
	db := openTemp(t)
	if _, err := db.Exec(ctx, `INSERT INTO sales (physkey, random_key, phase, startdt, updated_utc, presell, ticket, submitted_utc, sid)
		VALUES ('p1', 'r1', 5, '2026-01-01 10:00:00', '2026-01-01 10:00:00', 1, 7, '2026-01-01 10:00:00', 41)`); err != nil {
		t.Fatalf("Exec: %v", err)
	}
	for _, tc := range []struct {
		name string
		got  func() (int64, error)
		want int64
	}{
		{"CountRows sales", func() (int64, error) { return db.CountRows(ctx, "sales") }, 1},
		{"CountRows journal", func() (int64, error) { return db.CountRows(ctx, "journal") }, 0},
		{"MaxSID", func() (int64, error) { return MaxSID(ctx, db.Read) }, 41},
		{"SubmittedPresellCount", func() (int64, error) { return SubmittedPresellCount(ctx, db.Read) }, 1},
		{"OpenPresellStats open", func() (int64, error) { s, err := OpenPresellStats(ctx, db.Read, 0); return s.Open, err }, 1},
	} {
		if got, err := tc.got(); err != nil || got != tc.want {
			t.Errorf("%s = %d, %v; want %d", tc.name, got, err, tc.want)
		}
	}
	if _, err := db.CountRows(ctx, "sales; DROP TABLE sales"); err == nil {
		t.Errorf("CountRows took a name that is no table")
	}
	if _, ok, err := CounterValue(ctx, db.Read, "bench_marker"); ok || err != nil {
		t.Errorf("CounterValue of a missing counter: ok %v, err %v", ok, err)
	}
	if err := db.WriteTx(ctx, func(tx *Tx) error { return SetCounter(ctx, tx, "bench_marker", 12) }); err != nil {
		t.Fatal(err)
	}
	if v, ok, err := CounterValue(ctx, db.Read, "bench_marker"); v != 12 || !ok || err != nil {
		t.Errorf("CounterValue = %d, %v, %v; want 12", v, ok, err)
	}
	steps, err := db.ExplainQueryPlan(ctx, `SELECT physkey FROM sales WHERE sid = ?`, 41)
	if err != nil || len(steps) == 0 || !strings.Contains(steps[0].Detail, "sales") {
		t.Errorf("ExplainQueryPlan = %+v, %v; want a step on sales", steps, err)
	}
	if err := db.SetWriterCacheKB(ctx, 4096); err != nil {
		t.Error(err)
	}
	if n, err := db.PageCacheBound(ctx); err != nil || n <= 0 {
		t.Errorf("PageCacheBound = %d, %v; want more than 0", n, err)
	}
}

// DatabaseSize is the SQLite file's size, or the whole store database's on
// PostgreSQL (at least its tables and indexes together); WALSize is the
// SQLite WAL file's and refused on PostgreSQL, whose WAL is the cluster's.
func TestDatabaseSize(t *testing.T) {
	ctx := context.Background()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			db := b.open(t)
			if _, err := db.Exec(ctx, `INSERT INTO sales (physkey, random_key, phase, startdt, updated_utc)
				VALUES ('p1', 'r1', 0, '2026-01-01 10:00:00', '2026-01-01 10:00:00')`); err != nil {
				t.Fatal(err)
			}
			got, err := db.DatabaseSize(ctx)
			if err != nil {
				t.Fatalf("DatabaseSize: %v", err)
			}
			wal, walErr := db.WALSize()
			if db.Postgres() {
				var tables int64
				if err := db.r.GetContext(ctx, &tables, `SELECT SUM(pg_total_relation_size(c.oid))::bigint FROM pg_class c
					JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'r' AND n.nspname = current_schema()`); err != nil {
					t.Fatal(err)
				}
				if tables <= 0 || got < tables {
					t.Errorf("DatabaseSize = %d, want at least the lane tables' %d bytes", got, tables)
				}
				if !errors.Is(walErr, ErrNotOnPostgres) {
					t.Errorf("WALSize on PostgreSQL = %d, %v; want ErrNotOnPostgres", wal, walErr)
				}
				return
			}
			for _, f := range []struct {
				path string
				got  int64
				err  error
			}{{db.Path, got, nil}, {db.Path + "-wal", wal, walErr}} {
				fi, err := os.Stat(f.path)
				if err != nil {
					t.Fatal(err)
				}
				if f.err != nil || f.got != fi.Size() || f.got == 0 {
					t.Errorf("size of %s = %d, %v; the file has %d bytes", f.path, f.got, f.err, fi.Size())
				}
			}
		})
	}
}

// TestReadSnapshot: a snapshot's queries are written as every query of the
// package (SQLite's ?, rewritten on PostgreSQL), and they see the lane DB
// as it was at the snapshot's first read, whatever commits meanwhile.
func TestReadSnapshot(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) { testReadSnapshot(t, be.open(t)) })
	}
}

func testReadSnapshot(t *testing.T, db *DB) {
	ctx := context.Background()
	journal := func() {
		t.Helper()
		if err := db.WriteTx(ctx, func(tx *Tx) error {
			return Journal(ctx, tx, time.Now(), "sale", "created", "pk", "t", nil)
		}); err != nil {
			t.Fatal(err)
		}
	}
	journal()
	err := db.ReadSnapshot(ctx, func(q sqlx.QueryerContext) error {
		var first, second int
		if err := sqlx.GetContext(ctx, q, &first, `SELECT COUNT(*) FROM journal WHERE seq >= ?`, 1); err != nil {
			return err
		}
		journal() // committed while the snapshot reads
		if err := sqlx.GetContext(ctx, q, &second, `SELECT COUNT(*) FROM journal WHERE seq >= ?`, 1); err != nil {
			return err
		}
		if first != 1 || second != 1 {
			t.Errorf("the snapshot read %d then %d entries; want 1 both times", first, second)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
