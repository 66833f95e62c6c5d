package lanedb

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// Migration is one versioned schema step.
type Migration struct {
	Version int
	Name    string
	SQL     string
}

// Migrations lists the embedded SQLite migrations in version order. File
// names are NNNN_name.sql; versions must run 1, 2, 3… with no gap.
func Migrations() ([]Migration, error) {
	return readMigrations(migrationFS, "migrations")
}

// readMigrations reads the NNNN_name.sql files directly in dir of fsys.
func readMigrations(fsys fs.FS, dir string) ([]Migration, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("read embedded migrations %s: %w", dir, err)
	}
	var out []Migration
	for _, e := range entries {
		if e.IsDir() {
			continue // another dialect's set
		}
		num, name, ok := strings.Cut(strings.TrimSuffix(e.Name(), ".sql"), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil {
			return nil, fmt.Errorf("migration file %s/%s is not named NNNN_name.sql", dir, e.Name())
		}
		body, err := fs.ReadFile(fsys, dir+"/"+e.Name())
		if err != nil {
			return nil, fmt.Errorf("read migration %s/%s: %w", dir, e.Name(), err)
		}
		out = append(out, Migration{Version: v, Name: name, SQL: string(body)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	for i, m := range out {
		if m.Version != i+1 {
			return nil, fmt.Errorf("migration versions in %s must run 1, 2, 3…; found %d at position %d", dir, m.Version, i+1)
		}
	}
	return out, nil
}

// SchemaVersion is the newest schema this build knows.
func SchemaVersion() int {
	ms, err := Migrations()
	if err != nil {
		return 0
	}
	return len(ms)
}

// NewerSchemaError is returned by Open for a DB written by a newer greenlane.
type NewerSchemaError struct {
	Path         string
	DBVersion    int
	KnownVersion int
}

func (e *NewerSchemaError) Error() string {
	return fmt.Sprintf("lane db %s has schema version %d, but this greenlane knows only up to %d: "+
		"it was written by a newer greenlane; run that version (or a newer one), not this one",
		e.Path, e.DBVersion, e.KnownVersion)
}

// ErrNotLaneDB is the error for an SQLite file that holds another program's
// tables and no lane schema.
var ErrNotLaneDB = errors.New("not a lane DB")

// sqliteSchemaVersion reads the schema version of the SQLite file q is on,
// changing nothing: 0 for a file without any table (new, or 0 bytes long).
// A file with tables but no schema_migrations was made by another program:
// migrating it would add the lane's tables beside its own and serve an
// empty lane from it, so it is ErrNotLaneDB. (The first migration creates
// schema_migrations in its own transaction: a lane DB never has tables
// without it.)
func sqliteSchemaVersion(ctx context.Context, q sqlx.QueryerContext, path string) (int, error) {
	var tracked, objects int
	if err := sqlx.GetContext(ctx, q, &tracked, `SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'`); err != nil {
		return 0, fmt.Errorf("lane db %s: read its schema: %w", path, err)
	}
	if tracked == 0 {
		if err := sqlx.GetContext(ctx, q, &objects, `SELECT COUNT(*) FROM sqlite_master`); err != nil {
			return 0, fmt.Errorf("lane db %s: read its schema: %w", path, err)
		}
		if objects > 0 {
			return 0, fmt.Errorf("%s is an SQLite database of another program, not a lane DB (it has tables but no lane schema): %w", path, ErrNotLaneDB)
		}
		return 0, nil
	}
	var current int
	if err := sqlx.GetContext(ctx, q, &current, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`); err != nil {
		return 0, fmt.Errorf("lane db %s: read schema version: %w", path, err)
	}
	return current, nil
}

// migrate brings the DB to the newest schema, one transaction per step, so
// a crash mid-way leaves the DB at a whole version. Two processes may race
// to migrate: BEGIN IMMEDIATE serialises them and each re-reads the version.
func (db *DB) migrate(ctx context.Context) error {
	ms, err := Migrations()
	if err != nil {
		return err
	}
	return db.applyMigrations(ctx, ms)
}

// applyMigrations applies the steps of ms the DB lacks, oldest first.
func (db *DB) applyMigrations(ctx context.Context, ms []Migration) error {
	for {
		done := false
		err := db.WriteTx(ctx, func(tx *Tx) error {
			current, err := sqliteSchemaVersion(ctx, tx, db.Path)
			if err != nil {
				return err
			}
			if current > len(ms) {
				return &NewerSchemaError{Path: db.Path, DBVersion: current, KnownVersion: len(ms)}
			}
			if current == len(ms) {
				done = true
				return nil
			}
			if current == 0 {
				if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
					version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_utc TEXT NOT NULL)`); err != nil {
					return fmt.Errorf("create schema_migrations: %w", err)
				}
			}
			m := ms[current]
			if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
				return fmt.Errorf("migration %04d_%s: %w", m.Version, m.Name, err)
			}
			at := db.migratedAt
			if at.IsZero() {
				at = time.Now()
			}
			_, err = tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_utc) VALUES (?, ?, ?)`,
				m.Version, m.Name, at.UTC().Format(DateTime))
			return err
		})
		if err != nil {
			return err
		}
		if done {
			return nil
		}
	}
}

// Ready reports why the lane DB cannot serve changes, or nil: its schema
// must be the one this build knows, the writer's last write must not have
// been refused by its storage (a full disk: see StorageFault; cleared when
// a write commits again), and a write transaction must start.
// The probe is BEGIN IMMEDIATE then ROLLBACK on the writer's connection, so
// the write lock is held for no longer than it takes to get it; ctx bounds
// the wait for it (a writer mid-batch holds the connection).
func (db *DB) Ready(ctx context.Context) error {
	var current int
	if err := db.r.GetContext(ctx, &current, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`); err != nil {
		return db.Unreachable(fmt.Errorf("read schema version: %w", err))
	}
	if want := SchemaVersion(); current != want {
		return fmt.Errorf("schema version %d, this build needs %d", current, want)
	}
	// A full disk still lets a transaction start: what the last write
	// met is what tells.
	if f := db.fault.Load(); f != nil {
		return fmt.Errorf("%s; writes are refused since %s: %w", f.reason, f.since.Format(time.TimeOnly), f.err)
	}
	tx, err := db.begin(ctx)
	switch {
	case err != nil && !db.Postgres() && (IsBusy(err) || errors.Is(err, context.DeadlineExceeded)):
		return fmt.Errorf("the lane DB's write lock could not be taken in time: another program (a counter program, sqlite3, a backup) is holding it: %w", err)
	case err != nil && db.unreachable(err):
		return db.Unreachable(fmt.Errorf("start a write: %w", err))
	case err != nil:
		return fmt.Errorf("the lane DB is not writable: %w", err)
	}
	if err := tx.Rollback(); err != nil {
		return fmt.Errorf("the lane DB is not writable: rollback: %w", err)
	}
	return nil
}
