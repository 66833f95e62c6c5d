package bench

// The store mode: every bench's --db may name a PostgreSQL database
// instead of a folder. That database is only where the bench connects to
// make its own: each phase gets a database of its own on the same server,
// NAME_<phase>, dropped and made anew before the phase and kept after it,
// as the SQLite phases replace and keep their files (bench recall reuses
// NAME_recall as it reuses its file). So no phase inherits another's
// sales, and a URL that names a real store's database never has that
// database's rows touched.

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/greenlane-pos/greenlane/fixtures"
	"github.com/greenlane-pos/greenlane/lanedb"
)

// maxPGName is PostgreSQL's identifier limit (NAMEDATALEN − 1 bytes): a
// longer database name would be cut and two phases could share one.
const maxPGName = 63

// phaseDB is where phase file's lane DB goes under prefix (see
// workPrefix): PREFIX.file.db, or for a PostgreSQL URL that URL with its
// database NAME replaced by NAME_file.
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

// recreateDatabase drops the database dbURL names (with its connections:
// an earlier run killed mid-phase may have left some) and creates it
// empty, connected to the database that admin names on the same server.
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

// openPhaseDB opens a fresh demo lane DB for phase file under prefix (see
// openDemoDB). It returns where the DB is, for further handles on it (a
// second instance, the soak's counter process).
func openPhaseDB(ctx context.Context, prefix, file string) (*lanedb.DB, string, error) {
	path, err := phaseDB(prefix, file)
	if err != nil {
		return nil, "", err
	}
	db, err := openDemoDB(ctx, prefix, path)
	return db, path, err
}

// loadDemo loads the demo fixture into an empty lane DB.
func loadDemo(ctx context.Context, db *lanedb.DB) error {
	demo, err := fixtures.Find("demo")
	if err == nil {
		err = demo.Load(ctx, db, false)
	}
	if err != nil {
		return fmt.Errorf("load the demo fixture into %s: %w", db.Path, err)
	}
	return nil
}

// durability is what a bench's header says of its lane DB: on SQLite,
// lanedb's default synchronous FULL; on PostgreSQL the server decides
// (synchronous_commit, fsync), and the targets line says what it had
// (lane.synchronous).
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
