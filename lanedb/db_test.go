package lanedb

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jmoiron/sqlx"
)

func openTemp(t *testing.T) *DB {
	t.Helper()
	db, err := Open(context.Background(), filepath.Join(t.TempDir(), "lane.db"), Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestOpenSetsPragmasOnEveryConnection(t *testing.T) {
	db := openTemp(t)
	ctx := context.Background()
	tests := []struct {
		pool   *sqlx.DB
		pragma string
		want   string
	}{
		{db.w, "journal_mode", "wal"},
		{db.w, "synchronous", "2"}, // FULL
		{db.w, "foreign_keys", "1"},
		{db.w, "busy_timeout", "10000"},
		{db.r, "query_only", "1"},
		{db.r, "busy_timeout", "10000"},
	}
	for _, tt := range tests {
		var got string
		if err := tt.pool.GetContext(ctx, &got, "PRAGMA "+tt.pragma); err != nil {
			t.Fatalf("read %s: %v", tt.pragma, err)
		}
		if got != tt.want {
			t.Errorf("PRAGMA %s = %q, want %q", tt.pragma, got, tt.want)
		}
	}
	if _, err := db.r.ExecContext(ctx, `INSERT INTO staff (tid, physkey, name) VALUES (1, 'x', 'y')`); err == nil {
		t.Error("the read pool accepted a write")
	}
}

func TestMigrateIsIdempotentAndRefusesNewer(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "lane.db")
	db, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var v int
	if err := db.w.GetContext(ctx, &v, `SELECT MAX(version) FROM schema_migrations`); err != nil {
		t.Fatal(err)
	}
	if v != SchemaVersion() || v < 1 {
		t.Fatalf("schema version %d, want %d", v, SchemaVersion())
	}
	// A newer greenlane wrote this DB.
	if _, err := db.w.ExecContext(ctx, `INSERT INTO schema_migrations VALUES (?, 'future', '2030-01-01 00:00:00')`, v+1); err != nil {
		t.Fatal(err)
	}
	db.Close()

	_, err = Open(ctx, path, Options{})
	var newer *NewerSchemaError
	if !errors.As(err, &newer) {
		t.Fatalf("Open of a newer DB: err = %v, want NewerSchemaError", err)
	}
	if !strings.Contains(err.Error(), "newer greenlane") {
		t.Errorf("message does not say what to do: %v", err)
	}
}

func TestMigrateUpgradesOlderDB(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "lane.db")
	db, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.w.ExecContext(ctx, `INSERT INTO staff (tid, physkey, name) VALUES (1, 'k1', 'Mere')`); err != nil {
		t.Fatal(err)
	}
	// The DB is now "older" than a build that knows one more step.
	ms, err := Migrations()
	if err != nil {
		t.Fatal(err)
	}
	next := Migration{Version: len(ms) + 1, Name: "staff_pin", SQL: `ALTER TABLE staff ADD COLUMN pin TEXT NOT NULL DEFAULT ''`}
	if err := db.applyMigrations(ctx, append(ms, next)); err != nil {
		t.Fatalf("upgrade: %v", err)
	}
	var pin string
	if err := db.w.GetContext(ctx, &pin, `SELECT pin FROM staff WHERE tid = 1`); err != nil {
		t.Fatalf("new column missing after upgrade: %v", err)
	}
	var v int
	if err := db.w.GetContext(ctx, &v, `SELECT MAX(version) FROM schema_migrations`); err != nil || v != next.Version {
		t.Fatalf("version after upgrade = %d, %v; want %d", v, err, next.Version)
	}
	// Applying again changes nothing (the step is recorded).
	if err := db.applyMigrations(ctx, append(ms, next)); err != nil {
		t.Fatalf("second upgrade: %v", err)
	}
}

func TestAPIKeys(t *testing.T) {
	db := openTemp(t)
	ctx := context.Background()
	key, err := db.CreateAPIKey(ctx, "tablet-1", []string{"presell"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(key, "glk.") {
		t.Errorf("key %q lacks its prefix", key)
	}
	var stored int
	if err := db.w.GetContext(ctx, &stored, `SELECT COUNT(*) FROM api_keys WHERE instr(CAST(hash AS TEXT), ?) > 0 OR instr(name, ?) > 0`, key, key); err != nil {
		t.Fatal(err)
	}
	if stored != 0 {
		t.Error("the plain key is stored")
	}
	if _, err := db.CreateAPIKey(ctx, "tablet-1", []string{"presell"}); !errors.Is(err, ErrKeyNameTaken) {
		t.Errorf("duplicate live name: err = %v", err)
	}

	got, err := db.Authenticate(ctx, key)
	if err != nil || got.Name != "tablet-1" || got.Scopes != "presell" {
		t.Fatalf("Authenticate(good) = %+v, %v", got, err)
	}
	bad := []string{"", "glk", "glk..", key + "x", strings.Replace(key, "glk.", "xyz.", 1), "glk.nosuchid.secret"}
	for _, b := range bad {
		if _, err := db.Authenticate(ctx, b); !errors.Is(err, ErrBadKey) {
			t.Errorf("Authenticate(%q) err = %v, want ErrBadKey", b, err)
		}
	}
	if _, err := db.RevokeAPIKey(ctx, "tablet-1"); err != nil {
		t.Fatal(err)
	}
	// The refusal names the revoked key, so the lane can log whose it was.
	if got, err := db.Authenticate(ctx, key); !errors.Is(err, ErrRevokedKey) || got == nil || got.Name != "tablet-1" {
		t.Errorf("revoked key: %+v, err = %v; want tablet-1 and ErrRevokedKey", got, err)
	}
	if _, err := db.RevokeAPIKey(ctx, "tablet-1"); err == nil {
		t.Error("revoking twice succeeded")
	}
	// The name stays the revoked key's (TestKeyNamesAreNeverGivenTwice).
	if _, err := db.CreateAPIKey(ctx, "tablet-2", []string{"presell"}); err != nil {
		t.Errorf("another key after the revoke: %v", err)
	}
	keys, err := db.ListAPIKeys(ctx)
	if err != nil || len(keys) != 2 {
		t.Fatalf("ListAPIKeys = %d keys, %v", len(keys), err)
	}
}

func TestWhereRejectsUnknownColumnsAndOps(t *testing.T) {
	if _, _, err := where([]Cond{{Column: "pid; DROP TABLE products", Op: "=", Value: 1}}, productExprs); err == nil {
		t.Error("unknown column accepted")
	}
	if _, _, err := where([]Cond{{Column: "pid", Op: "LIKE", Value: 1}}, productExprs); err == nil {
		t.Error("unknown operator accepted")
	}
	clause, args, err := where([]Cond{{Column: "barcode", Op: "=", Value: "94"}, {Column: "price_cents", Op: ">=", Value: 500}}, productExprs)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(clause, "b.barcode = ?") || !strings.Contains(clause, "p.price_cents >= ?") || len(args) != 2 {
		t.Errorf("clause %q args %v", clause, args)
	}
}

// TestOpenRefusesAReadOnlyDB: SQLite opens a lane DB it may not write
// read-only without a word, and a write transaction still starts; Open
// must try a write and refuse, naming the file. Root may write any file,
// so the writer is opened read-only here (mode=ro) to meet SQLite's own
// answer; as another user a 0444 file is tried as well.
func TestOpenRefusesAReadOnlyDB(t *testing.T) {
	ctx := context.Background()
	for _, tt := range []struct {
		name    string
		prepare func(t *testing.T, path string) (undo func())
		want    string // "" when Open must succeed
	}{
		{"writable", func(*testing.T, string) func() { return func() {} }, ""},
		{"SQLite opens it read-only", func(*testing.T, string) func() {
			writerMode = "ro"
			return func() { writerMode = "rwc" }
		}, "is read-only for this user"},
		{"mode 0444", func(t *testing.T, path string) func() {
			if os.Geteuid() == 0 {
				t.Skip("root writes a 0444 file")
			}
			if err := os.Chmod(path, 0o444); err != nil {
				t.Fatal(err)
			}
			return func() {}
		}, "is read-only for this user"},
		// Not read-only at all: the wrong kind of thing.
		{"a folder", func(t *testing.T, path string) func() {
			RemoveDB(path)
			if err := os.Mkdir(path, 0o755); err != nil {
				t.Fatal(err)
			}
			return func() {}
		}, "is a folder, not a lane DB file"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "lane.db")
			db, err := Open(ctx, path, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			defer tt.prepare(t, path)()
			db, err = Open(ctx, path, Options{})
			if err == nil {
				db.Close()
			}
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("Open: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), path)):
				t.Fatalf("Open = %v, want it refused, naming %s and saying %q", err, path, tt.want)
			}
		})
	}
}

// writeSQLite makes an SQLite file at path the way another program would,
// running stmts on it.
func writeSQLite(t *testing.T, path, stmts string) {
	t.Helper()
	other, err := sqlx.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if _, err := other.Exec(stmts); err != nil {
		t.Fatalf("make %s: %v", path, err)
	}
}

func TestOpenExistingFile(t *testing.T) {
	tests := []struct {
		name    string
		make    func(t *testing.T, path string)
		wantErr string // "": Open makes it a lane DB
	}{
		// A 0-byte file is an empty SQLite database: the lane's schema is
		// made in it (serve asks for --create first, see openLaneDB).
		{"empty file", func(t *testing.T, path string) {
			if err := os.WriteFile(path, nil, 0o644); err != nil {
				t.Fatal(err)
			}
		}, ""},
		{"another program's tables", func(t *testing.T, path string) {
			writeSQLite(t, path, `CREATE TABLE foo (x INTEGER); INSERT INTO foo VALUES (1)`)
		}, "is an SQLite database of another program, not a lane DB"},
		{"another program's view only", func(t *testing.T, path string) {
			writeSQLite(t, path, `CREATE VIEW v AS SELECT 1`)
		}, "is an SQLite database of another program, not a lane DB"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			path := filepath.Join(t.TempDir(), "lane.db")
			tt.make(t, path)
			before, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			db, err := Open(ctx, path, Options{})
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Open: %v", err)
				}
				defer db.Close()
				if err := db.Ready(ctx); err != nil {
					t.Errorf("the new lane DB is not ready: %v", err)
				}
				return
			}
			if err == nil {
				db.Close()
				t.Fatal("Open made it a lane DB")
			}
			if !errors.Is(err, ErrNotLaneDB) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Open: err = %v, want ErrNotLaneDB saying %q", err, tt.wantErr)
			}
			// Refused before anything was written: not even the journal
			// mode (a byte of the header) changed, and no file was made
			// beside it; serve's lock is refused the same way.
			if release, err := LockServing(path); !errors.Is(err, ErrNotLaneDB) {
				if release != nil {
					release()
				}
				t.Errorf("LockServing: %v, want ErrNotLaneDB", err)
			}
			if after, err := os.ReadFile(path); err != nil || !bytes.Equal(after, before) {
				t.Errorf("the refused file changed (%v)", err)
			}
			if left, _ := filepath.Glob(path + "-*"); len(left) > 0 {
				t.Errorf("left beside the refused file: %v", left)
			}
			// The other program's file is left as it was: no lane tables.
			other, err := sqlx.Open("sqlite", path)
			if err != nil {
				t.Fatal(err)
			}
			defer other.Close()
			var n int
			if err := other.Get(&n, `SELECT COUNT(*) FROM sqlite_master WHERE name IN ('schema_migrations', 'sales')`); err != nil || n != 0 {
				t.Errorf("Open added %d lane tables (%v)", n, err)
			}
		})
	}
}
