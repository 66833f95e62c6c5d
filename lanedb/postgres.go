package lanedb

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/jmoiron/sqlx"
)

// The store mode puts the lane DB on PostgreSQL so that several
// greenlane instances share one store. migrations/postgres holds the same
// steps as migrations/, in PostgreSQL's dialect (docs/lanedb.md says how
// they differ), and a test checks that both give the same tables, columns,
// keys and indexes. The package's statements are rewritten for it once
// (dialect.go), and the same code runs them through pgx's database/sql
// adapter.

//go:embed migrations/postgres/*.sql
var postgresMigrationFS embed.FS

// ErrNotOnPostgres is the error of the operations that exist only for an
// SQLite file (check, backup, the page cache): PostgreSQL has its own
// tools for them (amcheck, pg_dump), and this says which.
var ErrNotOnPostgres = errors.New("not available on a PostgreSQL store database")

// openPostgres migrates the database at dbURL and opens the writer (one
// connection: group commit runs one transaction at a time per instance, as
// on SQLite) and the read pool through pgx.
func openPostgres(ctx context.Context, dbURL string, opts Options) (*DB, error) {
	name := redactURL(dbURL)
	if err := MigratePostgres(ctx, dbURL); err != nil {
		return nil, err
	}
	w, err := openPostgresPool(dbURL, opts.BusyTimeout, opts.IdleInTxTimeout)
	if err != nil {
		return nil, fmt.Errorf("open lane db writer %s: %w", name, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	if err := w.PingContext(ctx); err != nil {
		w.Close()
		return nil, fmt.Errorf("open lane db %s: %w", name, err)
	}
	db := &DB{w: w, Path: name, d: dialectPostgres, batchTimeout: opts.BusyTimeout}
	if db.wp, err = prepareAll(ctx, w, dialectPostgres, false); err != nil {
		w.Close()
		return nil, fmt.Errorf("lane db %s: %w", name, err)
	}
	r, err := openPostgresPool(dbURL, opts.BusyTimeout, 0)
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("open lane db readers %s: %w", name, err)
	}
	r.SetMaxOpenConns(opts.Readers)
	r.SetMaxIdleConns(opts.Readers)
	if err := r.PingContext(ctx); err != nil {
		w.Close()
		r.Close()
		return nil, fmt.Errorf("open lane db readers %s: %w", name, err)
	}
	rp, err := prepareAll(ctx, r, dialectPostgres, true)
	if err != nil {
		w.Close()
		r.Close()
		return nil, fmt.Errorf("lane db %s: %w", name, err)
	}
	db.r, db.Read = r, &Reader{DB: r, p: rp, d: dialectPostgres}
	return db, nil
}

// IsPostgresURL reports whether s names a PostgreSQL database rather than
// an SQLite file: a URL whose scheme is postgres or postgresql (any case).
func IsPostgresURL(s string) bool {
	scheme, _, ok := strings.Cut(s, "://")
	return ok && (strings.EqualFold(scheme, "postgres") || strings.EqualFold(scheme, "postgresql"))
}

// PostgresMigrations lists the embedded PostgreSQL migrations in version
// order. Step N makes the same change as Migrations()[N-1], so that a
// version number means the same schema in both dialects.
func PostgresMigrations() ([]Migration, error) {
	return readMigrations(postgresMigrationFS, "migrations/postgres")
}

// migrateLockKey names the advisory lock that serialises instances
// migrating one database at the same time (PostgreSQL's counterpart of
// SQLite's BEGIN IMMEDIATE): the bytes of "glmigrat".
const migrateLockKey int64 = 0x676c6d6967726174

// MigratePostgres brings the PostgreSQL database at dbURL to the newest
// schema, one transaction per step (PostgreSQL's DDL is transactional, so
// a failure leaves a whole version). A database written by a newer
// greenlane is refused with a *NewerSchemaError.
func MigratePostgres(ctx context.Context, dbURL string) error {
	ms, err := PostgresMigrations()
	if err != nil {
		return err
	}
	name := redactURL(dbURL)
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return fmt.Errorf("connect to PostgreSQL lane db %s: %w", name, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	for {
		done, err := migratePostgresStep(ctx, conn, name, ms)
		if err != nil {
			return fmt.Errorf("migrate PostgreSQL lane db %s: %w", name, err)
		}
		if done {
			return nil
		}
	}
}

// migratePostgresStep applies the oldest step the database lacks, in one
// transaction, and reports whether there was none left to apply.
func migratePostgresStep(ctx context.Context, conn *pgx.Conn, name string, ms []Migration) (done bool, err error) {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return false, fmt.Errorf("begin: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback(context.WithoutCancel(ctx))
		}
	}()
	// Held until this transaction ends: a second instance waits here, then
	// reads the version the first one left.
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, migrateLockKey); err != nil {
		return false, fmt.Errorf("take the migration lock: %w", err)
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_utc TEXT NOT NULL)`); err != nil {
		return false, fmt.Errorf("create schema_migrations: %w", err)
	}
	var current int
	if err := tx.QueryRow(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
		return false, fmt.Errorf("read schema version: %w", err)
	}
	if current > len(ms) {
		return false, &NewerSchemaError{Path: name, DBVersion: current, KnownVersion: len(ms)}
	}
	if current < len(ms) {
		m := ms[current]
		// No arguments: pgx sends it as one simple query, which may hold
		// several statements.
		if _, err := tx.Exec(ctx, m.SQL); err != nil {
			return false, fmt.Errorf("migration postgres/%04d_%s: %w", m.Version, m.Name, err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name, applied_utc) VALUES ($1, $2, $3)`,
			m.Version, m.Name, time.Now().UTC().Format(DateTime)); err != nil {
			return false, fmt.Errorf("record migration %04d_%s: %w", m.Version, m.Name, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return false, fmt.Errorf("commit: %w", err)
	}
	return current == len(ms), nil
}

// openPostgresPool opens a database/sql pool on dbURL through pgx, each
// connection set up to take the arguments SQLite takes (boolsAsIntegers)
// and as storeSession says. Connecting gives up after connectTimeout unless
// the URL says otherwise.
func openPostgresPool(dbURL string, connectTimeout, idleInTx time.Duration) (*sqlx.DB, error) {
	cfg, err := pgx.ParseConfig(dbURL)
	if err != nil {
		return nil, fmt.Errorf("parse the PostgreSQL URL: %w", err)
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = connectTimeout
	}
	storeSession(cfg, idleInTx)
	db := stdlib.OpenDB(*cfg, stdlib.OptionAfterConnect(func(_ context.Context, c *pgx.Conn) error {
		boolsAsIntegers(c.TypeMap())
		return nil
	}))
	return sqlx.NewDb(db, dialectPostgres.driverName()), nil
}

// TCP keepalives on every connection to a store database, both ways: a
// lane machine or a database server that vanishes (power lost, cable
// pulled) is taken for dead within keepaliveIdle + keepaliveCount ×
// keepaliveInterval, not the system's default of two hours. The server's
// side frees a dead lane's session and its locks; the lane's side fails
// a statement waiting on a dead server instead of leaving it to the batch
// deadline alone.
const (
	keepaliveIdle     = 5 * time.Second
	keepaliveInterval = 2 * time.Second
	keepaliveCount    = 3
)

// storeSession sets up the sessions a lane opens on a store database:
// TCP keepalives on both ends, and, when idleInTx is not 0, the server's
// idle_in_transaction_session_timeout (Options.IdleInTxTimeout). A
// setting the URL gives itself is left as it is.
func storeSession(cfg *pgx.ConnConfig, idleInTx time.Duration) {
	d := &net.Dialer{KeepAliveConfig: net.KeepAliveConfig{
		Enable: true, Idle: keepaliveIdle, Interval: keepaliveInterval, Count: keepaliveCount}}
	cfg.DialFunc = d.DialContext
	params := map[string]string{
		"tcp_keepalives_idle":     strconv.Itoa(int(keepaliveIdle / time.Second)),
		"tcp_keepalives_interval": strconv.Itoa(int(keepaliveInterval / time.Second)),
		"tcp_keepalives_count":    strconv.Itoa(keepaliveCount),
	}
	if idleInTx > 0 {
		params["idle_in_transaction_session_timeout"] = strconv.FormatInt(idleInTx.Milliseconds(), 10)
	}
	for k, v := range params {
		if _, set := cfg.RuntimeParams[k]; !set {
			cfg.RuntimeParams[k] = v
		}
	}
}

// redactURL is dbURL fit for an error message: its password hidden.
func redactURL(dbURL string) string {
	u, err := url.Parse(dbURL)
	if err != nil {
		return "(a PostgreSQL URL that does not parse)"
	}
	return u.Redacted()
}
