package lanedb

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"sync"

	"github.com/jmoiron/sqlx"
)

// SQLite parses and plans a statement every time it is prepared, and
// modernc's driver prepares every query it is given. On the hot write path
// that costs more than running the statements, so the statements this
// package uses are registered once (stmt, named) and prepared when the DB
// opens: on the single writer connection, and on the read pool.

var registry struct {
	plain []string
	named []string
}

// stmt registers a query for preparing at Open and returns it unchanged.
func stmt(query string) string {
	registry.plain = append(registry.plain, query)
	return query
}

// named registers a query with :name parameters.
func named(query string) string {
	registry.named = append(registry.named, query)
	return query
}

// prepared holds the registered statements prepared on one pool, keyed by
// their SQLite text (the text the package's code names them by), each
// prepared in the pool's dialect.
type prepared struct {
	plain map[string]*sqlx.Stmt
	named map[string]*sqlx.NamedStmt
}

// prepareAll prepares the registered statements on pool, rewritten for d:
// all of them on the writer (while no transaction holds its only
// connection), the reads only on the read-only pool. A statement with no
// form in d is left out.
func prepareAll(ctx context.Context, pool *sqlx.DB, d dialect, readsOnly bool) (*prepared, error) {
	p := &prepared{plain: map[string]*sqlx.Stmt{}, named: map[string]*sqlx.NamedStmt{}}
	for _, q := range registry.plain {
		if readsOnly && !isRead(q) {
			continue
		}
		dq, ok := d.rewrite(q)
		if !readsOnly {
			dq, ok = d.writerForm(q)
		}
		if !ok {
			continue
		}
		s, err := pool.PreparexContext(ctx, dq)
		if err != nil {
			return nil, fmt.Errorf("prepare %q: %w", firstLine(dq), err)
		}
		p.plain[q] = s
	}
	for _, q := range registry.named {
		if readsOnly {
			break
		}
		dq, ok := d.rewrite(q)
		if !ok {
			continue
		}
		s, err := pool.PrepareNamedContext(ctx, dq)
		if err != nil {
			return nil, fmt.Errorf("prepare %q: %w", firstLine(dq), err)
		}
		p.named[q] = s
	}
	return p, nil
}

func isRead(q string) bool {
	return strings.HasPrefix(strings.TrimSpace(strings.ToUpper(q)), "SELECT")
}

func firstLine(q string) string {
	for i, c := range q {
		if c == '\n' {
			return q[:i] + "…"
		}
	}
	return q
}

// Tx is a write transaction. Registered statements run prepared; any other
// query (built at run time) runs as given. Every statement run through its
// Exec, Query, Get and Select methods (with or without a context) is
// counted for WriterStats; one run on a statement the caller prepared
// itself (PreparexContext) is not.
type Tx struct {
	*sqlx.Tx
	p *prepared
	// afterCommit runs, in order, once the transaction has committed (see
	// OnCommit). The writer drops a failed mutation's callbacks.
	afterCommit []func()
	// statements run so far; of them, the writer's savepoint bookkeeping.
	// Plain counters: a Tx is used by one goroutine.
	statements int64
	savepoints int64
	// changes counts the statements run that may have written: every Exec
	// and prepared or named statement, and any query but a SELECT. The
	// writer runs a job without a savepoint of its own when it can tell
	// that a failed job wrote nothing (runBare).
	changes int64
	d       dialect // what run-time queries are rewritten for
	// journalLocked: this transaction holds the store-wide journal lock
	// (PostgreSQL only; see lockJournal).
	journalLocked bool
	// journaled is told the journal rows appended, after COMMIT (see
	// DB.OnJournal); nil when nobody follows them so. told gathers them.
	journaled func([]JournalEntry)
	told      []JournalEntry
	// The write cache (cache.go), on the writer's transactions: nil on
	// others. touched: sales this transaction wrote; forgotten: of them,
	// those a statement changed that the cache does not follow row by row;
	// uncached: the cache is off for the rest of the transaction.
	cache     *writeCache
	touched   map[string]bool
	forgotten map[string]bool
	uncached  bool
	// bound holds the registered statements this transaction has run,
	// bound to it: binding one (Tx.Stmt) allocates a statement that lives
	// until COMMIT, and a batch runs the same dozen statements hundreds of
	// times.
	bound map[string]*sqlx.Stmt
}

// OnCommit registers fn to run after the transaction commits, and only
// then. Callbacks run on the writer goroutine in the order registered, so
// they must not block (publish to a queue, never wait on a client).
func (t *Tx) OnCommit(fn func()) { t.afterCommit = append(t.afterCommit, fn) }

func (t *Tx) plain(ctx context.Context, query string) *sqlx.Stmt {
	t.statements++ // every caller runs the statement next
	if t.p == nil {
		return nil // during migration, before anything is prepared
	}
	if s, ok := t.bound[query]; ok {
		return s
	}
	s, ok := t.p.plain[query]
	if !ok {
		return nil
	}
	// Reuses the statement already prepared on this connection.
	b := t.Tx.StmtxContext(ctx, s)
	if t.bound == nil {
		t.bound = make(map[string]*sqlx.Stmt)
	}
	t.bound[query] = b
	return b
}

// ExecContext runs a statement in the transaction.
func (t *Tx) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	args = t.d.args(args)
	t.writes(query)
	t.changes++
	if s := t.plain(ctx, query); s != nil {
		return s.ExecContext(ctx, args...)
	}
	return t.Tx.ExecContext(ctx, t.d.must(query), args...)
}

// QueryxContext runs a query in the transaction.
func (t *Tx) QueryxContext(ctx context.Context, query string, args ...any) (*sqlx.Rows, error) {
	args = t.d.args(args)
	t.mayChange(query)
	if s := t.plain(ctx, query); s != nil {
		return s.QueryxContext(ctx, args...)
	}
	return t.Tx.QueryxContext(ctx, t.d.must(query), args...)
}

// QueryRowxContext runs a one-row query in the transaction.
func (t *Tx) QueryRowxContext(ctx context.Context, query string, args ...any) *sqlx.Row {
	args = t.d.args(args)
	t.mayChange(query)
	if s := t.plain(ctx, query); s != nil {
		return s.QueryRowxContext(ctx, args...)
	}
	return t.Tx.QueryRowxContext(ctx, t.d.must(query), args...)
}

// QueryContext runs a query in the transaction.
func (t *Tx) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	args = t.d.args(args)
	t.mayChange(query)
	if s := t.plain(ctx, query); s != nil {
		return s.QueryContext(ctx, args...)
	}
	return t.Tx.QueryContext(ctx, t.d.must(query), args...)
}

// QueryRowContext runs a one-row query in the transaction.
func (t *Tx) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	args = t.d.args(args)
	t.mayChange(query)
	if s := t.plain(ctx, query); s != nil {
		return s.QueryRowContext(ctx, args...)
	}
	return t.Tx.QueryRowContext(ctx, t.d.must(query), args...)
}

// mayChange counts a query that may write: anything but a SELECT (an
// INSERT … RETURNING, a PRAGMA that sets).
func (t *Tx) mayChange(query string) {
	q := strings.TrimLeft(query, " \t\r\n")
	if len(q) < 6 || !strings.EqualFold(q[:6], "SELECT") {
		t.changes++
	}
}

// The forms without a context run through the ones above, so that they
// are counted too.

// Exec is ExecContext without a context.
func (t *Tx) Exec(query string, args ...any) (sql.Result, error) {
	return t.ExecContext(context.Background(), query, args...)
}

// Query is QueryContext without a context.
func (t *Tx) Query(query string, args ...any) (*sql.Rows, error) {
	return t.QueryContext(context.Background(), query, args...)
}

// QueryRow is QueryRowContext without a context.
func (t *Tx) QueryRow(query string, args ...any) *sql.Row {
	return t.QueryRowContext(context.Background(), query, args...)
}

// Queryx is QueryxContext without a context.
func (t *Tx) Queryx(query string, args ...any) (*sqlx.Rows, error) {
	return t.QueryxContext(context.Background(), query, args...)
}

// QueryRowx is QueryRowxContext without a context.
func (t *Tx) QueryRowx(query string, args ...any) *sqlx.Row {
	return t.QueryRowxContext(context.Background(), query, args...)
}

// Get is GetContext without a context.
func (t *Tx) Get(dest any, query string, args ...any) error {
	return t.GetContext(context.Background(), dest, query, args...)
}

// Select is SelectContext without a context.
func (t *Tx) Select(dest any, query string, args ...any) error {
	return t.SelectContext(context.Background(), dest, query, args...)
}

// NamedExec is NamedExecContext without a context.
func (t *Tx) NamedExec(query string, arg any) (sql.Result, error) {
	return t.NamedExecContext(context.Background(), query, arg)
}

// A statement the caller prepares itself may write anything: preparing one
// turns the write cache off for the rest of the transaction.

// PreparexContext prepares a statement in the transaction, rewritten for
// the DB's dialect. What it runs is not counted in WriterStats.
func (t *Tx) PreparexContext(ctx context.Context, query string) (*sqlx.Stmt, error) {
	t.bypass()
	t.changes++ // what it runs is not seen here
	return t.Tx.PreparexContext(ctx, t.d.must(query))
}

// Preparex is PreparexContext without a context.
func (t *Tx) Preparex(query string) (*sqlx.Stmt, error) {
	return t.PreparexContext(context.Background(), query)
}

// PrepareContext prepares a statement in the transaction, rewritten for
// the DB's dialect.
func (t *Tx) PrepareContext(ctx context.Context, query string) (*sql.Stmt, error) {
	t.bypass()
	return t.Tx.PrepareContext(ctx, t.d.must(query))
}

// Prepare is PrepareContext without a context.
func (t *Tx) Prepare(query string) (*sql.Stmt, error) {
	return t.PrepareContext(context.Background(), query)
}

// PrepareNamedContext prepares a statement with :name parameters.
func (t *Tx) PrepareNamedContext(ctx context.Context, query string) (*sqlx.NamedStmt, error) {
	t.bypass()
	return t.Tx.PrepareNamedContext(ctx, query)
}

// PrepareNamed is PrepareNamedContext without a context.
func (t *Tx) PrepareNamed(query string) (*sqlx.NamedStmt, error) {
	return t.PrepareNamedContext(context.Background(), query)
}

// MustExecContext is ExecContext that panics on error.
func (t *Tx) MustExecContext(ctx context.Context, query string, args ...any) sql.Result {
	res, err := t.ExecContext(ctx, query, args...)
	if err != nil {
		panic(err)
	}
	return res
}

// MustExec is MustExecContext without a context.
func (t *Tx) MustExec(query string, args ...any) sql.Result {
	return t.MustExecContext(context.Background(), query, args...)
}

// NamedQuery runs a query with :name parameters; it may write, so it turns
// the write cache off like a statement the caller prepares.
func (t *Tx) NamedQuery(query string, arg any) (*sqlx.Rows, error) {
	t.statements++
	t.changes++
	t.bypass()
	return t.Tx.NamedQuery(query, arg)
}

// GetContext reads one row into dest.
func (t *Tx) GetContext(ctx context.Context, dest any, query string, args ...any) error {
	return sqlx.GetContext(ctx, t, dest, query, args...)
}

// SelectContext reads rows into dest.
func (t *Tx) SelectContext(ctx context.Context, dest any, query string, args ...any) error {
	return sqlx.SelectContext(ctx, t, dest, query, args...)
}

// NamedExecContext runs a statement with :name parameters taken from arg.
func (t *Tx) NamedExecContext(ctx context.Context, query string, arg any) (sql.Result, error) {
	t.statements++
	t.changes++
	t.writes(query)
	if t.p != nil {
		if s, ok := t.p.named[query]; ok {
			return t.Tx.NamedStmtContext(ctx, s).ExecContext(ctx, arg)
		}
	}
	return t.Tx.NamedExecContext(ctx, t.d.must(query), arg)
}

// Reader is the read-only pool with the registered statements prepared.
// Queries built at run time (a list with optional filters) are prepared on
// first use and kept, up to maxDynamic of them: their variants are few.
type Reader struct {
	*sqlx.DB
	p *prepared
	d dialect

	mu      sync.Mutex
	dynamic map[string]*sqlx.Stmt
}

// maxDynamic caps the run-time queries a Reader keeps prepared.
const maxDynamic = 128

// stmt returns the prepared statement for query, or nil to run it as given.
func (r *Reader) stmt(ctx context.Context, query string) *sqlx.Stmt {
	if s, ok := r.p.plain[query]; ok {
		return s
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if s, ok := r.dynamic[query]; ok {
		return s
	}
	if len(r.dynamic) >= maxDynamic {
		return nil
	}
	s, err := r.DB.PreparexContext(ctx, r.d.must(query))
	if err != nil {
		return nil // running it unprepared reports the error properly
	}
	if r.dynamic == nil {
		r.dynamic = map[string]*sqlx.Stmt{}
	}
	r.dynamic[query] = s
	return s
}

// QueryxContext runs a query on the read pool.
func (r *Reader) QueryxContext(ctx context.Context, query string, args ...any) (*sqlx.Rows, error) {
	args = r.d.args(args)
	if s := r.stmt(ctx, query); s != nil {
		return s.QueryxContext(ctx, args...)
	}
	return r.DB.QueryxContext(ctx, r.d.must(query), args...)
}

// QueryRowxContext runs a one-row query on the read pool.
func (r *Reader) QueryRowxContext(ctx context.Context, query string, args ...any) *sqlx.Row {
	args = r.d.args(args)
	if s := r.stmt(ctx, query); s != nil {
		return s.QueryRowxContext(ctx, args...)
	}
	return r.DB.QueryRowxContext(ctx, r.d.must(query), args...)
}

// QueryContext runs a query on the read pool.
func (r *Reader) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	args = r.d.args(args)
	if s := r.stmt(ctx, query); s != nil {
		return s.QueryContext(ctx, args...)
	}
	return r.DB.QueryContext(ctx, r.d.must(query), args...)
}

// GetContext reads one row into dest.
func (r *Reader) GetContext(ctx context.Context, dest any, query string, args ...any) error {
	return sqlx.GetContext(ctx, r, dest, query, args...)
}

// SelectContext reads rows into dest.
func (r *Reader) SelectContext(ctx context.Context, dest any, query string, args ...any) error {
	return sqlx.SelectContext(ctx, r, dest, query, args...)
}

func (t *Tx) runAfterCommit() {
	for _, fn := range t.afterCommit {
		fn()
	}
	t.afterCommit = nil
	if len(t.told) > 0 {
		t.journaled(t.told)
		t.told = nil
	}
}
