package lanedb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"

	"github.com/jmoiron/sqlx"
)

// What tools, benchmarks and tests ask of a lane DB beyond the lane's own
// reads and writes. They go through these methods rather than the raw
// connections, so that the writer stays the only way in for a write.

// Exec runs one statement in a write transaction of its own: a test's or
// a tool's one-off change. It takes the write connection in turn with the
// lane's writer (it does not join a group-commit batch).
func (db *DB) Exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	var res sql.Result
	err := db.WriteTx(ctx, func(tx *Tx) error {
		var err error
		res, err = tx.ExecContext(ctx, query, args...)
		return err
	})
	return res, err
}

// ReadSnapshot runs fn in one read-only transaction, so that every query
// fn makes sees the DB as it was at one moment however much a lane writes
// meanwhile: on SQLite the WAL snapshot of its first read, on PostgreSQL
// REPEATABLE READ. A reader that went table by table outside one would
// see a sale's lines without the sale, written in between.
func (db *DB) ReadSnapshot(ctx context.Context, fn func(q sqlx.QueryerContext) error) error {
	opts := &sql.TxOptions{ReadOnly: true}
	if db.Postgres() {
		opts.Isolation = sql.LevelRepeatableRead
	}
	tx, err := db.r.BeginTxx(ctx, opts)
	if err != nil {
		return fmt.Errorf("begin a read snapshot: %w", err)
	}
	defer tx.Rollback() // read-only: nothing to commit
	return fn(&snapshot{tx: tx, d: db.Read.d})
}

// snapshot is a read transaction that speaks the package's one SQL dialect
// as the Reader does: each query rewritten for the DB's engine.
type snapshot struct {
	tx *sqlx.Tx
	d  dialect
}

func (s *snapshot) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	return s.tx.QueryContext(ctx, s.d.must(query), s.d.args(args)...)
}

func (s *snapshot) QueryxContext(ctx context.Context, query string, args ...any) (*sqlx.Rows, error) {
	return s.tx.QueryxContext(ctx, s.d.must(query), s.d.args(args)...)
}

func (s *snapshot) QueryRowxContext(ctx context.Context, query string, args ...any) *sqlx.Row {
	return s.tx.QueryRowxContext(ctx, s.d.must(query), s.d.args(args)...)
}

// CountRows counts the rows of table, which must be a store or lane-state
// table (the name goes into the SQL, so it is checked against the schema's).
func (db *DB) CountRows(ctx context.Context, table string) (int64, error) {
	if !slices.Contains(DataTables, table) && !slices.Contains(laneStateTables, table) {
		return 0, fmt.Errorf("count rows: %q is not a lane DB table", table)
	}
	var n int64
	if err := db.r.GetContext(ctx, &n, "SELECT COUNT(*) FROM "+table); err != nil {
		return 0, fmt.Errorf("count %s: %w", table, err)
	}
	return n, nil
}

// MaxSID is the highest sale number given so far, 0 for none.
func MaxSID(ctx context.Context, q sqlx.QueryerContext) (int64, error) {
	var n int64
	if err := sqlx.GetContext(ctx, q, &n, `SELECT COALESCE(MAX(sid), 0) FROM sales`); err != nil {
		return 0, fmt.Errorf("read the highest sid: %w", err)
	}
	return n, nil
}

// SubmittedPresellCount counts the presells that were ever given a ticket,
// open or since closed: every park a lane acknowledged is among them.
func SubmittedPresellCount(ctx context.Context, q sqlx.QueryerContext) (int64, error) {
	var n int64
	if err := sqlx.GetContext(ctx, q, &n, `SELECT COUNT(*) FROM sales WHERE presell = 1 AND ticket IS NOT NULL`); err != nil {
		return 0, fmt.Errorf("count submitted presells: %w", err)
	}
	return n, nil
}

// CounterValue reads the lane_counters row name; ok is false when there
// is none.
func CounterValue(ctx context.Context, q sqlx.QueryerContext, name string) (value int64, ok bool, err error) {
	err = sqlx.GetContext(ctx, q, &value, `SELECT value FROM lane_counters WHERE name = ?`, name)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("read lane counter %s: %w", name, err)
	}
	return value, true, nil
}

// SetCounter writes the lane_counters row name.
func SetCounter(ctx context.Context, tx *Tx, name string, value int64) error {
	if _, err := tx.ExecContext(ctx, `INSERT INTO lane_counters (name, value) VALUES (?, ?)
		ON CONFLICT (name) DO UPDATE SET value = excluded.value`, name, value); err != nil {
		return fmt.Errorf("set lane counter %s: %w", name, err)
	}
	return nil
}

// PlanStep is one row of EXPLAIN QUERY PLAN.
type PlanStep struct {
	ID, Parent int64
	Detail     string
}

// ExplainQueryPlan is SQLite's plan for query with args, as the read pool
// would run it.
func (db *DB) ExplainQueryPlan(ctx context.Context, query string, args ...any) ([]PlanStep, error) {
	if db.Postgres() {
		return nil, fmt.Errorf("explain query plan (SQLite's; run EXPLAIN in psql): %w", ErrNotOnPostgres)
	}
	rows, err := db.r.QueryContext(ctx, "EXPLAIN QUERY PLAN "+query, args...)
	if err != nil {
		return nil, fmt.Errorf("explain query plan: %w", err)
	}
	defer rows.Close()
	var steps []PlanStep
	for rows.Next() {
		var s PlanStep
		var unused int64
		if err := rows.Scan(&s.ID, &s.Parent, &unused, &s.Detail); err != nil {
			return nil, fmt.Errorf("read query plan: %w", err)
		}
		steps = append(steps, s)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read query plan: %w", err)
	}
	return steps, nil
}

// PageCacheBound is the most SQLite's page caches may hold for this DB:
// each connection (the writer and every reader) keeps up to cache_size of
// pages, filled as the DB is read and kept.
func (db *DB) PageCacheBound(ctx context.Context) (int64, error) {
	if db.Postgres() {
		return 0, fmt.Errorf("page cache bound (SQLite's; PostgreSQL's is shared_buffers): %w", ErrNotOnPostgres)
	}
	var size, page int64
	if err := db.r.GetContext(ctx, &size, `PRAGMA cache_size`); err != nil {
		return 0, fmt.Errorf("read the SQLite cache size: %w", err)
	}
	perConn := -size * 1024 // negative: KiB
	if size > 0 {
		if err := db.r.GetContext(ctx, &page, `PRAGMA page_size`); err != nil {
			return 0, fmt.Errorf("read the SQLite page size: %w", err)
		}
		perConn = size * page
	}
	return int64(1+db.r.Stats().MaxOpenConnections) * perConn, nil
}

// SetWriterCacheKB sets the writer connection's page cache (SQLite's
// default is 2 MB): a bulk load that inserts all over an index misses it
// on every page otherwise.
func (db *DB) SetWriterCacheKB(ctx context.Context, kb int) error {
	if db.Postgres() {
		return nil // PostgreSQL's cache is the server's (shared_buffers), not a connection's
	}
	if _, err := db.w.ExecContext(ctx, fmt.Sprintf("PRAGMA cache_size = -%d", kb)); err != nil {
		return fmt.Errorf("set the writer's page cache: %w", err)
	}
	return nil
}

// DatabaseSize is the lane DB's size in bytes: the SQLite file (without
// its WAL, which WALSize reports), or on PostgreSQL the store database as
// pg_database_size counts it (every table, index and TOAST file; the WAL
// is the whole cluster's and is not counted).
func (db *DB) DatabaseSize(ctx context.Context) (int64, error) {
	if !db.Postgres() {
		return fileSize(db.Path)
	}
	var n int64
	if err := db.r.GetContext(ctx, &n, `SELECT pg_database_size(current_database())`); err != nil {
		return 0, fmt.Errorf("read the store database's size: %w", err)
	}
	return n, nil
}

// WALSize is the size of the SQLite file's write-ahead log, 0 when there
// is none (checkpointed away on close). PostgreSQL's WAL belongs to the
// whole cluster, not to one database, and reading it needs the pg_monitor
// role: there it is ErrNotOnPostgres.
func (db *DB) WALSize() (int64, error) {
	if db.Postgres() {
		return 0, fmt.Errorf("WAL size (the cluster's, not the store database's): %w", ErrNotOnPostgres)
	}
	return fileSize(db.Path + "-wal")
}

// fileSize is a file's size, 0 when it does not exist.
func fileSize(path string) (int64, error) {
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("size of %s: %w", path, err)
	}
	return fi.Size(), nil
}

// PresellStats are the open presells at a glance, as a scrape reports them.
type PresellStats struct {
	Open   int64   `db:"open"`
	Claims int64   `db:"claims"` // held by a live claim at now
	Oldest *string `db:"oldest"` // the earliest submitted_utc; nil when none is open
}

// OpenPresellStats reads them through the partial index that holds exactly
// the open presells (sales_open_presells), so that it stays cheap however
// many sales the lane has kept.
func OpenPresellStats(ctx context.Context, q sqlx.QueryerContext, nowMS int64) (PresellStats, error) {
	var s PresellStats
	err := sqlx.GetContext(ctx, q, &s, `SELECT COUNT(*) AS open,
			COALESCE(SUM(CASE WHEN claim_session IS NOT NULL AND claim_expires_ms > ? THEN 1 ELSE 0 END), 0) AS claims,
			MIN(submitted_utc) AS oldest
		FROM sales INDEXED BY sales_open_presells
		WHERE presell = 1 AND phase IN (0, 5) AND submitted_utc IS NOT NULL`, nowMS)
	if err != nil {
		return s, fmt.Errorf("open presell stats: %w", err)
	}
	return s, nil
}

// SetWriterMaxPages sets the writer connection's max_page_count: the most
// pages the lane DB file may grow to through it, never below its size now
// (SQLite raises a smaller value to that). A write that would grow it
// further fails as on a full disk (SQLITE_FULL). It lasts as long as the
// connection; it returns the cap in force. Tests and drills use it to
// fill the disk without filling one.
func (db *DB) SetWriterMaxPages(ctx context.Context, pages int64) (int64, error) {
	if db.Postgres() {
		return 0, fmt.Errorf("max page count (SQLite's): %w", ErrNotOnPostgres)
	}
	var got int64
	if err := db.w.GetContext(ctx, &got, fmt.Sprintf("PRAGMA max_page_count = %d", pages)); err != nil {
		return 0, fmt.Errorf("set the writer's max page count: %w", err)
	}
	return got, nil
}
