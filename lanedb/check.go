package lanedb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/jmoiron/sqlx"
)

// Finding is one thing check found wrong in a lane DB. Sale is the physkey
// of the sale it concerns, "" for a finding about the file itself.
type Finding struct {
	Sale    string
	Problem string
}

func (f Finding) String() string {
	if f.Sale == "" {
		return f.Problem
	}
	return "sale " + f.Sale + ": " + f.Problem
}

// openFileRO opens an existing lane DB read-only, without migrating it: check
// and backup must not change the file they look at (the lane may be serving
// it). A missing file is an error, never a new empty DB.
func openFileRO(ctx context.Context, path string) (*sqlx.DB, error) {
	return openFile(ctx, path, true)
}

// openFile opens an existing lane DB on one connection, without migrating
// it; readOnly opens it with mode=ro and query_only.
func openFile(ctx context.Context, path string, readOnly bool) (*sqlx.DB, error) {
	if IsPostgresURL(path) {
		return nil, fmt.Errorf("check and backup read an SQLite file (on PostgreSQL: pg_amcheck, pg_dump): %w", ErrNotOnPostgres)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("lane db path %q: %w", path, err)
	}
	if _, err := os.Stat(abs); err != nil {
		return nil, fmt.Errorf("lane db %s: %w", abs, err)
	}
	dsn := readerDSN(abs, DefaultOptions())
	if !readOnly {
		dsn = fileURI(abs) + "?_pragma=" + url.QueryEscape(fmt.Sprintf("busy_timeout(%d)", DefaultOptions().BusyTimeout.Milliseconds()))
	}
	db, err := sqlx.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open lane db %s: %w", abs, err)
	}
	// One connection: VACUUM INTO and the check queries then see one
	// snapshot per statement on the same connection.
	db.SetMaxOpenConns(1)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open lane db %s: %w", abs, err)
	}
	return db, nil
}

// CheckFile opens the lane DB at path read-only and runs Check on it. A
// file that is not a lane DB (empty, or another program's) and one of a
// schema newer than this build's are errors, not findings: Check's rules
// are this build's and would misjudge them.
func CheckFile(ctx context.Context, path string) ([]Finding, error) {
	db, err := openFileRO(ctx, path)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	v, err := sqliteSchemaVersion(ctx, db, path)
	switch {
	case err != nil:
		return nil, err
	case v == 0:
		return nil, fmt.Errorf("%s is not a lane DB: it holds no tables: %w", path, ErrNotLaneDB)
	case v > SchemaVersion():
		return nil, &NewerSchemaError{Path: path, DBVersion: v, KnownVersion: SchemaVersion()}
	}
	return Check(ctx, db)
}

// Check runs SQLite's integrity and foreign-key checks and the lane's own
// invariants on db, and returns everything wrong (nil when all is well).
// The error is for a check that could not run, not for a finding.
func Check(ctx context.Context, db *sqlx.DB) ([]Finding, error) {
	var out []Finding
	var integrity []string
	if err := db.SelectContext(ctx, &integrity, `PRAGMA integrity_check`); err != nil {
		return nil, fmt.Errorf("integrity_check: %w", err)
	}
	for _, s := range integrity {
		if s != "ok" {
			out = append(out, Finding{Problem: "integrity_check: " + s})
		}
	}
	rows, err := db.QueryContext(ctx, `PRAGMA foreign_key_check`)
	if err != nil {
		return nil, fmt.Errorf("foreign_key_check: %w", err)
	}
	for rows.Next() {
		var table, parent string
		var rowid sql.NullInt64
		var fkid int64
		if err := rows.Scan(&table, &rowid, &parent, &fkid); err != nil {
			rows.Close()
			return nil, fmt.Errorf("foreign_key_check: %w", err)
		}
		where := "a row"
		if rowid.Valid {
			where = fmt.Sprintf("row %d", rowid.Int64)
		}
		out = append(out, Finding{Problem: fmt.Sprintf("foreign_key_check: %s of %s refers to a missing %s", where, table, parent)})
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return nil, fmt.Errorf("foreign_key_check: %w", err)
	}
	for _, inv := range invariants {
		var found []struct {
			Sale    string `db:"sale"`
			Problem string `db:"problem"`
		}
		if err := db.SelectContext(ctx, &found, inv.query); err != nil {
			return nil, fmt.Errorf("check %s: %w", inv.name, err)
		}
		for _, f := range found {
			out = append(out, Finding{Sale: f.Sale, Problem: f.Problem})
		}
	}
	return out, nil
}

// invariants are the lane's own rules; each query returns one row (sale,
// problem) per sale that breaks it.
var invariants = []struct{ name, query string }{
	{"completed sales paid in full", `
		SELECT s.physkey AS sale,
		       printf('completed but paid %d of %d cents', COALESCE(SUM(p.amount_cents), 0), s.saletotal_cents) AS problem
		FROM sales s LEFT JOIN payments p
		  ON p.sale_physkey = s.physkey AND p.payflags & ` + payFlagReversedSQL + ` = 0
		WHERE s.phase = 1
		GROUP BY s.physkey
		HAVING COALESCE(SUM(p.amount_cents), 0) < s.saletotal_cents
		ORDER BY s.physkey`},
	{"totals equal their lines", `
		SELECT s.physkey AS sale,
		       printf('total %d cents but its lines add up to %d', s.saletotal_cents, COALESCE(SUM(l.totalprice_cents), 0)) AS problem
		FROM sales s LEFT JOIN sale_lines l ON l.sale_physkey = s.physkey
		GROUP BY s.physkey
		HAVING COALESCE(SUM(l.totalprice_cents), 0) <> s.saletotal_cents
		ORDER BY s.physkey`},
	// The unique index sales_open_ticket forbids this; it is checked anyway
	// because a restored or hand-edited file may have lost the index.
	{"one open presell per ticket", `
		SELECT s.physkey AS sale,
		       printf('open presell shares ticket %d with %d other open presell(s)', s.ticket,
		              (SELECT COUNT(*) - 1 FROM sales o WHERE o.ticket = s.ticket AND o.presell = 1 AND o.phase IN (0, 5))) AS problem
		FROM sales s
		WHERE s.presell = 1 AND s.phase IN (0, 5) AND s.ticket IS NOT NULL
		  AND (SELECT COUNT(*) FROM sales o WHERE o.ticket = s.ticket AND o.presell = 1 AND o.phase IN (0, 5)) > 1
		ORDER BY s.ticket, s.physkey`},
}

// BackupResult is what Backup did.
type BackupResult struct {
	Bytes   int64
	Elapsed time.Duration
}

// Backup writes a consistent copy of the lane DB at path to out with
// SQLite's VACUUM INTO in one read transaction: it reads one snapshot,
// so a lane serving the file keeps writing meanwhile (WAL), and the copy is
// compact and self-contained (no -wal file). An existing out is refused.
// The connection is not mode=ro: SQLite opens the INTO file with the
// source's flags, and a read-only one cannot be written. VACUUM INTO never
// writes the source.
func Backup(ctx context.Context, path, out string) (BackupResult, error) {
	start := time.Now()
	absOut, err := filepath.Abs(out)
	if err != nil {
		return BackupResult{}, fmt.Errorf("backup path %q: %w", out, err)
	}
	if st, err := os.Lstat(absOut); err == nil && st.IsDir() {
		return BackupResult{}, fmt.Errorf("backup %s is a folder: name a new file to write the copy to", absOut)
	} else if err == nil {
		return BackupResult{}, fmt.Errorf("backup %s: refusing to overwrite it, name a new file: %w", absOut, os.ErrExist)
	} else if !errors.Is(err, os.ErrNotExist) {
		return BackupResult{}, fmt.Errorf("backup %s: %w", absOut, err)
	}
	db, err := openFile(ctx, path, false)
	if err != nil {
		return BackupResult{}, err
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, `VACUUM INTO ?`, absOut); err != nil {
		// A copy that stopped half way (a full disk) is no backup, and
		// left under the name it would keep a retry from writing there.
		// The name did not exist before, so what is there now is ours.
		rmErr := errors.Join(removeIfThere(absOut), removeIfThere(absOut+"-journal"))
		return BackupResult{}, errors.Join(fmt.Errorf("backup %s into %s: %w", path, absOut, err), rmErr)
	}
	st, err := os.Stat(absOut)
	if err != nil {
		return BackupResult{}, fmt.Errorf("backup %s: %w", absOut, err)
	}
	return BackupResult{Bytes: st.Size(), Elapsed: time.Since(start)}, nil
}

// removeIfThere removes path; a path already gone is no error.
func removeIfThere(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove the partial backup: %w", err)
	}
	return nil
}
