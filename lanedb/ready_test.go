package lanedb

import (
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite"
)

// TestReady: a current, unlocked DB is ready; one whose write lock another
// process holds, or whose schema is behind this build, is not, and says
// why.
func TestReady(t *testing.T) {
	for _, tt := range []struct {
		name    string
		prepare func(t *testing.T, db *DB) func()
		want    string // "" ready, else a part of the reason
	}{
		{"current and free", func(*testing.T, *DB) func() { return func() {} }, ""},
		{"another process holds the write lock", func(t *testing.T, db *DB) func() {
			other, err := sql.Open("sqlite", db.Path)
			if err != nil {
				t.Fatal(err)
			}
			other.SetMaxOpenConns(1)
			if _, err := other.Exec("BEGIN IMMEDIATE"); err != nil {
				t.Fatal(err)
			}
			return func() { _, _ = other.Exec("ROLLBACK"); other.Close() }
		}, "another program (a counter program, sqlite3, a backup) is holding it"},
		{"schema behind this build", func(t *testing.T, db *DB) func() {
			if _, err := db.w.Exec(`DELETE FROM schema_migrations WHERE version = (SELECT MAX(version) FROM schema_migrations)`); err != nil {
				t.Fatal(err)
			}
			return func() {}
		}, "schema version"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			db, err := Open(context.Background(), filepath.Join(t.TempDir(), "lane.db"), Options{BusyTimeout: 50 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			undo := tt.prepare(t, db)
			defer undo()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			err = db.Ready(ctx)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("not ready: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("Ready = %v, want an error mentioning %q", err, tt.want)
			}
			if tt.want == "" {
				// The probe left no transaction open: a real write goes through.
				if err := db.WriteTx(ctx, func(tx *Tx) error { return nil }); err != nil {
					t.Fatalf("write after Ready: %v", err)
				}
			}
		})
	}
}
