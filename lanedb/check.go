package lanedb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
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
	if _, err := os.Lstat(abs + "-wal"); readOnly && errors.Is(err, os.ErrNotExist) {
		// No WAL: no lane has the file open, and the file alone is the
		// whole DB. Read it as it is: opening it in WAL mode would leave a
		// -wal and a -shm beside it, and fail in a folder the user may not
		// write to (as peekSchemaVersion does).
		dsn += "&immutable=1"
	}
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
	fks, err := foreignKeyFindings(ctx, db)
	if err != nil {
		return nil, err
	}
	out = append(out, fks...)
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

// foreignKeyFindings runs SQLite's foreign_key_check and names each row it
// finds by what an operator can look up: the sale it belongs to and the
// key it holds that points nowhere ("a sale_lines row refers to a missing
// products row: pid 1256"), not a rowid (the lane's tables mostly have
// none). One finding per such row, at most fkRowsShown per foreign key.
func foreignKeyFindings(ctx context.Context, db *sqlx.DB) ([]Finding, error) {
	var broken []struct {
		Table  string        `db:"table"`
		RowID  sql.NullInt64 `db:"rowid"`
		Parent string        `db:"parent"`
		FKID   int64         `db:"fkid"`
	}
	if err := db.SelectContext(ctx, &broken, `PRAGMA foreign_key_check`); err != nil {
		return nil, fmt.Errorf("foreign_key_check: %w", err)
	}
	type fk struct {
		table, parent string
		id            int64
	}
	seen := map[fk]bool{}
	var out []Finding
	for _, b := range broken {
		k := fk{b.Table, b.Parent, b.FKID}
		if seen[k] {
			continue
		}
		seen[k] = true
		found, err := orphans(ctx, db, k.table, k.parent, k.id)
		if err != nil {
			return nil, fmt.Errorf("foreign_key_check: %s: %w", k.table, err)
		}
		out = append(out, found...)
	}
	return out, nil
}

// fkRowsShown bounds the findings one broken foreign key gives.
const fkRowsShown = 100

// fkColumn is one column pair of a foreign key (PRAGMA foreign_key_list).
type fkColumn struct {
	ID   int64          `db:"id"`
	Seq  int64          `db:"seq"`
	From string         `db:"from"`
	To   sql.NullString `db:"to"`
}

// orphans lists the rows of table whose foreign key id (as PRAGMA
// foreign_key_list numbers them) points at no row of parent.
func orphans(ctx context.Context, db *sqlx.DB, table, parent string, id int64) ([]Finding, error) {
	var cols []fkColumn
	rows, err := db.QueryxContext(ctx, `SELECT id, seq, "from", "to" FROM pragma_foreign_key_list(?) ORDER BY id, seq`, table)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var c fkColumn
		if err := rows.StructScan(&c); err != nil {
			rows.Close()
			return nil, err
		}
		if c.ID == id {
			cols = append(cols, c)
		}
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return nil, err
	}
	if len(cols) == 0 || !cols[0].To.Valid {
		// A key onto the parent's primary key by default: say what SQLite says.
		return []Finding{{Problem: fmt.Sprintf("foreign_key_check: a %s row refers to a missing %s row", table, parent)}}, nil
	}
	saleCol := ""
	switch {
	case table == "sales":
		saleCol = "physkey"
	case hasColumn(ctx, db, table, "sale_physkey"):
		saleCol = "sale_physkey"
	}
	var from, match, notNull []string
	for _, c := range cols {
		from = append(from, "c."+quoteIdent(c.From))
		match = append(match, "p."+quoteIdent(c.To.String)+" = c."+quoteIdent(c.From))
		notNull = append(notNull, "c."+quoteIdent(c.From)+" IS NOT NULL")
	}
	sale := "''"
	if saleCol != "" {
		sale = "c." + quoteIdent(saleCol)
	}
	q := fmt.Sprintf(`SELECT %s, %s FROM %s c WHERE %s AND NOT EXISTS (SELECT 1 FROM %s p WHERE %s) ORDER BY 1 LIMIT %d`,
		sale, strings.Join(from, ", "), quoteIdent(table), strings.Join(notNull, " AND "), quoteIdent(parent), strings.Join(match, " AND "), fkRowsShown)
	found, err := db.QueryContext(ctx, q)
	if err != nil {
		return nil, err
	}
	defer found.Close()
	var out []Finding
	for found.Next() {
		vals := make([]any, 1+len(cols))
		ptrs := make([]any, len(vals))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := found.Scan(ptrs...); err != nil {
			return nil, err
		}
		var keys []string
		for i, c := range cols {
			keys = append(keys, fmt.Sprintf("%s %v", c.From, text(vals[1+i])))
		}
		out = append(out, Finding{Sale: fmt.Sprint(text(vals[0])),
			Problem: fmt.Sprintf("a %s row refers to a missing %s row: %s", table, parent, strings.Join(keys, ", "))})
	}
	return out, found.Err()
}

// text shows a scanned column: SQLite text may come back as bytes.
func text(v any) any {
	if b, ok := v.([]byte); ok {
		return string(b)
	}
	return v
}

// hasColumn reports whether table has a column named col.
func hasColumn(ctx context.Context, db *sqlx.DB, table, col string) bool {
	var n int
	err := db.GetContext(ctx, &n, `SELECT COUNT(*) FROM pragma_table_info(?) WHERE name = ?`, table, col)
	return err == nil && n > 0
}

// quoteIdent quotes an SQL identifier (a table or column name SQLite gave).
func quoteIdent(name string) string { return `"` + strings.ReplaceAll(name, `"`, `""`) + `"` }

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
	if st, err := os.Stat(filepath.Dir(absOut)); err != nil || !st.IsDir() {
		return BackupResult{}, fmt.Errorf("backup %s: its folder %s does not exist: create it first, or name a file in a folder that does",
			absOut, filepath.Dir(absOut))
	}
	if st, err := os.Lstat(absOut); err == nil && st.IsDir() {
		return BackupResult{}, fmt.Errorf("backup %s is a folder: name a new file to write the copy to", absOut)
	} else if err == nil {
		return BackupResult{}, fmt.Errorf("backup %s: refusing to overwrite it, name a new file: %w", absOut, os.ErrExist)
	} else if !errors.Is(err, os.ErrNotExist) {
		return BackupResult{}, fmt.Errorf("backup %s: %w", absOut, err)
	}
	// A file that is not a lane DB (empty, another program's) is refused
	// before anything is written: its copy would only fail check
	// afterwards, and be left behind.
	if !IsPostgresURL(path) {
		if err := requireLaneDB(ctx, path, "lane db "+path); err != nil {
			return BackupResult{}, fmt.Errorf("backup: %w", err)
		}
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
