package bench

// Where a bench's lane DBs go. --db names a folder or a path prefix, or a
// PostgreSQL database: the bench only connects there to make its own,
// each phase a database NAME_<phase> on the same server, dropped and made
// anew before the phase and kept after it, as the SQLite phases replace
// and keep their files (bench recall reuses NAME_recall as it reuses its
// file). So no phase inherits another's sales, and the rows of the
// database the URL names are never touched.

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/greenlane-pos/greenlane/fixtures"
	"github.com/greenlane-pos/greenlane/lanedb"
)

// workPrefix turns a config's DB into the phases' prefix (see phaseDB): a
// PostgreSQL URL or a path prefix as it is, "bench" in a folder, or in a
// temporary folder that cleanup removes when DB is "".
func workPrefix(db string) (prefix string, cleanup func(), err error) {
	switch st, statErr := os.Stat(db); {
	case lanedb.IsPostgresURL(db):
		_, _, err = pgDatabase(db)
		return db, func() {}, err
	case db == "":
		dir, err := os.MkdirTemp("", "greenlane-bench-")
		if err != nil {
			return "", nil, fmt.Errorf("bench work folder: %w", err)
		}
		return filepath.Join(dir, "bench"), func() { os.RemoveAll(dir) }, nil
	case statErr == nil && st.IsDir() || strings.HasSuffix(db, string(filepath.Separator)):
		if err := os.MkdirAll(db, 0o755); err != nil {
			return "", nil, fmt.Errorf("bench work folder: %w", err)
		}
		return filepath.Join(db, "bench"), func() {}, nil
	}
	return db, func() {}, nil
}

// maxPGName is PostgreSQL's identifier limit (NAMEDATALEN − 1 bytes): a
// longer database name would be cut, and two phases could share one.
const maxPGName = 63

// phaseDB is where phase file's lane DB goes under prefix: PREFIX.file.db,
// or the URL with its database NAME replaced by NAME_file.
func phaseDB(prefix, file string) (string, error) {
	if !lanedb.IsPostgresURL(prefix) {
		return prefix + "." + file + ".db", nil
	}
	u, name, err := pgDatabase(prefix)
	if err != nil {
		return "", err
	}
	name += "_" + strings.ReplaceAll(file, "-", "_")
	if len(name) > maxPGName {
		return "", fmt.Errorf("bench database %s: longer than PostgreSQL's %d bytes; name a shorter database in --db", name, maxPGName)
	}
	u.Path = "/" + name
	return u.String(), nil
}

// pgDatabase parses a PostgreSQL URL and returns the database it names.
func pgDatabase(dbURL string) (*url.URL, string, error) {
	u, err := url.Parse(dbURL)
	if err != nil {
		return nil, "", fmt.Errorf("--db does not parse as a PostgreSQL URL: %w", err)
	}
	name := strings.TrimPrefix(u.Path, "/")
	if name == "" || strings.Contains(name, "/") {
		return nil, "", fmt.Errorf("--db %s: name the database the bench connects to (postgres://HOST/NAME), whose server gets the phases' databases NAME_<phase>", u.Redacted())
	}
	return u, name, nil
}

// openPhaseDB opens a fresh demo lane DB for phase file under prefix, with
// lanedb's default options (synchronous FULL on SQLite), and says where it
// is, for further handles on it (a second instance, the soak's counter).
func openPhaseDB(ctx context.Context, prefix, file string) (*lanedb.DB, string, error) {
	path, err := phaseDB(prefix, file)
	if err == nil {
		err = freshDemo(ctx, prefix, path)
	}
	if err != nil {
		return nil, "", err
	}
	db, err := lanedb.Open(ctx, path, lanedb.DefaultOptions())
	return db, path, err
}

// freshDemo makes a demo lane DB at path, replacing any earlier one (its
// WAL too), so that every phase starts from the same state. A PostgreSQL
// database is dropped and made anew through the one admin names.
func freshDemo(ctx context.Context, admin, path string) error {
	if lanedb.IsPostgresURL(path) {
		if err := recreateDatabase(ctx, admin, path); err != nil {
			return err
		}
	} else {
		lanedb.RemoveDB(path)
	}
	demo, err := fixtures.Find("demo")
	if err == nil {
		_, err = demo.LoadFile(ctx, path, false)
	}
	if err != nil {
		return fmt.Errorf("load the demo fixture: %w", err)
	}
	return nil
}

// recreateDatabase drops the database dbURL names, with its connections
// (a run killed mid-phase may have left some), and creates it empty.
func recreateDatabase(ctx context.Context, admin, dbURL string) error {
	_, name, err := pgDatabase(dbURL)
	if err != nil {
		return err
	}
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		return fmt.Errorf("connect to make bench database %s: %w", name, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	ident := pgx.Identifier{name}.Sanitize()
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+ident+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("drop the earlier bench database %s: %w", name, err)
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+ident); err != nil {
		return fmt.Errorf("create bench database %s (the --db role needs CREATEDB): %w", name, err)
	}
	return nil
}

// durability is what a header says of the lane DBs: SQLite's synchronous
// FULL (lanedb's default), or PostgreSQL's, which its server decides and
// the targets line reports (lane.synchronous).
func durability(prefix string) string {
	if lanedb.IsPostgresURL(prefix) {
		return "on PostgreSQL (a database per phase)"
	}
	return "synchronous FULL"
}

// openIfThere opens the lane DB at path when reuse is set and there is
// one; nil when there is no such SQLite file or PostgreSQL database.
func openIfThere(ctx context.Context, path string, reuse bool) (*lanedb.DB, error) {
	if _, err := os.Stat(path); !reuse || !lanedb.IsPostgresURL(path) && err != nil {
		return nil, nil
	}
	db, err := lanedb.Open(ctx, path, lanedb.DefaultOptions())
	if pgCode(err) == "3D000" { // invalid_catalog_name
		return nil, nil
	}
	return db, err
}

// pgCode is the SQLSTATE of a PostgreSQL error in err's chain; "" for none.
func pgCode(err error) string {
	if pe := (*pgconn.PgError)(nil); errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}
