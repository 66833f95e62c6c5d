package lanedb

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// seedCheckable gives a lane DB one sale of each kind check looks at, all
// sound: a completed sale paid exactly, a completed sale paid over a
// reversed payment, and two open presells with their own tickets.
func seedCheckable(t *testing.T, db *DB) {
	t.Helper()
	const seed = `
INSERT INTO products (pid, physkey, description, price_cents) VALUES (1, 'p1', 'Bread', 250);
INSERT INTO payment_types (code, globalcode, typestr) VALUES (1, 1, 'Cash');
INSERT INTO sales (physkey, random_key, sid, phase, startdt, updated_utc, saletotal_cents)
  VALUES ('paid', 'r1', 1, 1, '2026-01-01 10:00:00', '2026-01-01 10:00:00', 500),
         ('reversed', 'r2', 2, 1, '2026-01-01 10:00:00', '2026-01-01 10:00:00', 250);
INSERT INTO sales (physkey, random_key, phase, startdt, updated_utc, saletotal_cents, presell, ticket)
  VALUES ('open7', 'r3', 5, '2026-01-01 10:00:00', '2026-01-01 10:00:00', 250, 1, 7),
         ('open8', 'r4', 5, '2026-01-01 10:00:00', '2026-01-01 10:00:00', 0, 1, 8);
INSERT INTO sale_lines (sale_physkey, seqnce, pid, description, qty, unitprice_cents, prediscountprice_cents, totalprice_cents)
  VALUES ('paid', 1, 1, 'Bread', 2, 250, 250, 500), ('reversed', 1, 1, 'Bread', 1, 250, 250, 250),
         ('open7', 1, 1, 'Bread', 1, 250, 250, 250);
INSERT INTO payments (sale_physkey, sequence, type, amount_cents, dt, payflags)
  VALUES ('paid', 1, 1, 500, '2026-01-01 10:01:00', 0),
         ('reversed', 1, 1, 250, '2026-01-01 10:01:00', 1048576),
         ('reversed', 2, 1, 250, '2026-01-01 10:02:00', 0);`
	if _, err := db.w.Exec(seed); err != nil {
		t.Fatalf("seed: %v", err)
	}
}

func TestCheck(t *testing.T) {
	tests := []struct {
		name   string
		break_ string   // SQL that breaks one invariant; "" leaves the DB sound
		want   []string // substrings of the findings, in order; nil: none
	}{
		{"sound", "", nil},
		{"completed sale paid short",
			`UPDATE payments SET amount_cents = 499 WHERE sale_physkey = 'paid'`,
			[]string{"sale paid: completed but paid 499 of 500 cents"}},
		{"only a reversed payment left",
			`UPDATE payments SET payflags = 1048576 WHERE sale_physkey = 'reversed'`,
			[]string{"sale reversed: completed but paid 0 of 250 cents"}},
		{"completed sale without payments",
			`DELETE FROM payments WHERE sale_physkey = 'paid'`,
			[]string{"sale paid: completed but paid 0 of 500 cents"}},
		{"total differs from lines",
			`UPDATE sale_lines SET totalprice_cents = 240 WHERE sale_physkey = 'open7'`,
			[]string{"sale open7: total 250 cents but its lines add up to 240"}},
		{"total without lines",
			`UPDATE sales SET saletotal_cents = 1 WHERE physkey = 'open8'`,
			[]string{"sale open8: total 1 cents but its lines add up to 0"}},
		{"two open presells on one ticket",
			`DROP INDEX sales_open_ticket; UPDATE sales SET ticket = 7 WHERE physkey = 'open8'`,
			[]string{"sale open7: open presell shares ticket 7 with 1 other", "sale open8: open presell shares ticket 7 with 1 other"}},
		{"a completed presell may keep its old ticket",
			`UPDATE sales SET ticket = 7, presell = 1 WHERE physkey = 'paid'`, nil},
		{"payment of a missing sale",
			`PRAGMA foreign_keys = OFF; INSERT INTO payments (sale_physkey, sequence, type, amount_cents, dt) VALUES ('ghost', 1, 1, 5, '2026-01-01 10:00:00'); PRAGMA foreign_keys = ON`,
			[]string{"sale ghost: a payments row refers to a missing sales row: sale_physkey ghost"}},
		{"line of a deleted product",
			`PRAGMA foreign_keys = OFF; DELETE FROM products WHERE pid = (SELECT pid FROM sale_lines WHERE sale_physkey = 'open7'); PRAGMA foreign_keys = ON`,
			[]string{"sale open7: a sale_lines row refers to a missing products row: pid 1",
				"sale paid: a sale_lines row refers to a missing products row: pid 1",
				"sale reversed: a sale_lines row refers to a missing products row: pid 1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "lane.db")
			db, err := Open(context.Background(), path, Options{})
			if err != nil {
				t.Fatal(err)
			}
			seedCheckable(t, db)
			if tt.break_ != "" {
				if _, err := db.w.Exec(tt.break_); err != nil {
					t.Fatalf("break: %v", err)
				}
			}
			db.Close()
			found, err := CheckFile(context.Background(), path)
			if err != nil {
				t.Fatalf("CheckFile: %v", err)
			}
			if len(found) != len(tt.want) {
				t.Fatalf("findings %q, want %d like %q", found, len(tt.want), tt.want)
			}
			for i, f := range found {
				if !strings.Contains(f.String(), tt.want[i]) {
					t.Errorf("finding %d = %q, want it to contain %q", i, f, tt.want[i])
				}
			}
		})
	}
}

func TestCheckFileRefusesAMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nope.db")
	if _, err := CheckFile(context.Background(), path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("CheckFile of a missing file: err = %v, want not-exist", err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("CheckFile created %s", path)
	}
}

func TestCheckFileRefusesWhatIsNotThisLanesDB(t *testing.T) {
	tests := []struct {
		name    string
		make    func(t *testing.T, path string)
		wantErr string
	}{
		{"empty file", func(t *testing.T, path string) {
			if err := os.WriteFile(path, nil, 0o644); err != nil {
				t.Fatal(err)
			}
		}, "is not a lane DB: it holds no tables"},
		{"another program's tables", func(t *testing.T, path string) {
			writeSQLite(t, path, `CREATE TABLE foo (x INTEGER)`)
		}, "is an SQLite database of another program, not a lane DB"},
		{"a newer greenlane's", func(t *testing.T, path string) {
			db, err := Open(context.Background(), path, Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if _, err := db.w.Exec(`INSERT INTO schema_migrations VALUES (?, 'future', '2030-01-01 00:00:00')`, SchemaVersion()+1); err != nil {
				t.Fatal(err)
			}
		}, "written by a newer greenlane"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "lane.db")
			tt.make(t, path)
			found, err := CheckFile(context.Background(), path)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("CheckFile = %q, %v; want an error saying %q", found, err, tt.wantErr)
			}
		})
	}
}

// TestCheckFileLeavesNothingBeside: checking a lane DB no lane has open
// leaves no -wal or -shm beside it (nor needs to write its folder).
func TestCheckFileLeavesNothingBeside(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "lane.db")
	db, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	seedCheckable(t, db)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	for _, side := range []string{"-wal", "-shm"} {
		if _, err := os.Lstat(path + side); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("before the check: %s%s is there (%v)", path, side, err)
		}
	}
	if found, err := CheckFile(ctx, path); err != nil || len(found) != 0 {
		t.Fatalf("CheckFile: %q, %v", found, err)
	}
	for _, side := range []string{"-wal", "-shm"} {
		if _, err := os.Lstat(path + side); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the check left %s%s behind", path, side)
		}
	}
}

func TestBackupRefusesAMissingFolder(t *testing.T) {
	db := openTemp(t)
	out := filepath.Join(t.TempDir(), "nodir", "copy.db")
	_, err := Backup(context.Background(), db.Path, out)
	if err == nil || !strings.Contains(err.Error(), "nodir does not exist: create it first") {
		t.Fatalf("Backup into a missing folder: err = %v, want one saying the folder does not exist", err)
	}
}

func TestBackupRefusesAFolder(t *testing.T) {
	ctx := context.Background()
	db := openTemp(t)
	out := t.TempDir()
	_, err := Backup(ctx, db.Path, out)
	if err == nil || !strings.Contains(err.Error(), out+" is a folder") {
		t.Fatalf("Backup into a folder: err = %v, want one saying it is a folder", err)
	}
}

func TestBackup(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db, err := Open(ctx, filepath.Join(dir, "lane.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	seedCheckable(t, db)
	// The lane keeps the source open (and its WAL unmerged) while the copy
	// is taken.
	out := filepath.Join(dir, "copy.db")
	res, err := Backup(ctx, db.Path, out)
	if err != nil {
		t.Fatalf("Backup: %v", err)
	}
	if st, err := os.Stat(out); err != nil || st.Size() != res.Bytes || res.Bytes == 0 {
		t.Fatalf("copy: stat %v, %v; Backup said %d bytes", st, err, res.Bytes)
	}
	if _, err := Backup(ctx, db.Path, out); !errors.Is(err, os.ErrExist) {
		t.Errorf("second Backup to the same file: err = %v, want exists", err)
	}
	found, err := CheckFile(ctx, out)
	if err != nil || len(found) != 0 {
		t.Fatalf("check of the copy: %q, %v", found, err)
	}
	cp, err := Open(ctx, out, Options{})
	if err != nil {
		t.Fatalf("Open the copy: %v", err)
	}
	defer cp.Close()
	var n int
	if err := cp.r.Get(&n, `SELECT COUNT(*) FROM payments`); err != nil || n != 3 {
		t.Errorf("copy has %d payments (%v), want 3", n, err)
	}
}

// TestBackupRefusesWhatIsNoLaneDB: backup of a file that is not a lane DB
// (missing, empty, SQLite without tables) is refused before anything is
// written: --out is not made, so no half-checked copy is left to remove.
func TestBackupRefusesWhatIsNoLaneDB(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		make func(t *testing.T, path string)
		want string
	}{
		{"missing", func(*testing.T, string) {}, "no such file"},
		{"empty file", func(t *testing.T, path string) {
			if err := os.WriteFile(path, nil, 0o644); err != nil {
				t.Fatal(err)
			}
		}, "is empty (0 bytes)"},
		{"SQLite without tables", func(t *testing.T, path string) { tablelessSQLite(t, path) }, "holds no tables"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "empty.db")
			tc.make(t, path)
			out := filepath.Join(dir, "x.db")
			if _, err := Backup(ctx, path, out); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("backup: %v; want a refusal that says %q", err, tc.want)
			}
			if left, _ := filepath.Glob(out + "*"); len(left) > 0 {
				t.Errorf("a refused backup wrote %v", left)
			}
		})
	}
}
