package lanedb

import (
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jmoiron/sqlx"
)

// The lane's statements are written once, in SQLite's dialect, and run on
// PostgreSQL (the store mode) after one rewrite each, made when a
// statement is prepared (registered ones at Open, run-time ones on first
// use). This file is the one list of the differences; docs/lanedb.md says
// each in prose.
//
//  1. Parameters: SQLite's ? becomes PostgreSQL's $1, $2, … (sqlx.Rebind).
//  2. INDEXED BY x: SQLite's planner hint is removed. PostgreSQL has no
//     hints; its planner picks the same partial indexes by itself.
//  3. Statements with no common form: postgresForms below gives the
//     PostgreSQL text (catalog reads, the journal's sequence restart and
//     its detail sizes), or
//     "" for a statement that has no PostgreSQL meaning and is never run
//     there (PRAGMA data_version: see Writer.othersWriting and cache.go;
//     a store database has neither the yield nor the write cache).
//  4. LastInsertId: PostgreSQL has none, and no statement of greenlane's
//     uses it (nothing reads back the journal's new seq). A program that
//     needs a new seq says RETURNING seq in both dialects.
//  5. Every other statement is written in the SQL both engines share
//     (CASE instead of summing a boolean, ON CONFLICT … DO UPDATE, COALESCE).
//  6. The writer's read of a sale (qGetSale in a write transaction) takes
//     the row's lock: FOR UPDATE is appended to its writer form
//     (postgresWriterLocks). SQLite's single writer runs every
//     read-then-write of a sale alone; on PostgreSQL two instances would
//     both read a presell unclaimed, and the later one's claim UPDATE would
//     find the row changed and answer "try again" instead of "claimed by".
//     With the lock the later one waits, then reads the claim as it is.
//  7. Arguments: SQLite stores a Go bool as the integer 0 or 1; the lane's
//     flag columns are BIGINT 0/1 in both schemas, and pgx, which refuses
//     to encode a bool as an integer, is taught to (boolsAsIntegers).
//  8. Text: PostgreSQL's text cannot hold the character NUL, and refuses a
//     parameter containing one; SQLite stores it. A client may send NUL
//     in any string (a filter, a PLU, a physkey), and it must get the
//     answer SQLite gives (nothing found), not an internal error: on
//     PostgreSQL a string parameter's NULs become U+FFFD, the replacement
//     character (dialect.args). A lookup then finds nothing, as no stored
//     value holds NUL either.
//
// Not rewrites, but PostgreSQL's too: journal appends take a store-wide
// advisory lock (lockJournal; the writer takes it at BEGIN), a write batch
// has a deadline (Writer.runBatch), and errors differ: isConflict and
// IsUnavailable read PostgreSQL's.

// dialect is the SQL a DB's statements are written in.
type dialect uint8

const (
	dialectSQLite dialect = iota
	dialectPostgres
)

// driverName is the database/sql driver each dialect is opened with: pgx's
// stdlib adapter, so that sqlx (and its Rebind and named parameters) runs
// on PostgreSQL as on SQLite.
func (d dialect) driverName() string {
	if d == dialectPostgres {
		return "pgx"
	}
	return "sqlite"
}

// postgresForms holds the statements whose PostgreSQL text is not the
// mechanical rewrite of their SQLite text, keyed by the SQLite text.
var postgresForms = map[string]string{
	// The writer's signal that another process committed (see
	// othersWriting): SQLite-only, because the yield it drives exists for
	// SQLite's single write lock. PostgreSQL writers do not take turns.
	qDataVersion: "",
	// SQLite's table_info pragma as a table function; PostgreSQL's catalog.
	qColumns: `SELECT column_name FROM information_schema.columns
		WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position`,
	qPrimaryKey: `SELECT a.attname FROM pg_index i
		JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
		WHERE i.indrelid = to_regclass($1) AND i.indisprimary
		ORDER BY array_position(i.indkey::int2[], a.attnum)`,
	// AUTOINCREMENT keeps its high-water mark in sqlite_sequence; an
	// identity column keeps it in its sequence.
	qRestartJournalSeq: `SELECT setval(pg_get_serial_sequence('journal', 'seq'), 1, false)`,
	// The journal's detail sizes as stored: octet_length would fetch and
	// decompress every TOASTed detail; pg_column_size reads its header.
	qJournalBytes: `SELECT COALESCE(SUM(pg_column_size(detail)), 0)::bigint FROM journal`,
	qJournalByteCutoff: `SELECT COALESCE((SELECT seq FROM (SELECT seq,
		SUM(pg_column_size(detail)) OVER (ORDER BY seq DESC) AS total FROM journal) sized
		WHERE total > $1 ORDER BY seq DESC LIMIT 1), 0)`,
}

// postgresWriterLocks are the registered reads whose form in a write
// transaction ends in FOR UPDATE (6 above); the read pool runs them plain.
var postgresWriterLocks = map[string]bool{qGetSale: true}

// writerForm is rewrite for a statement prepared on the writer.
func (d dialect) writerForm(query string) (string, bool) {
	q, ok := d.rewrite(query)
	if ok && d == dialectPostgres && postgresWriterLocks[query] {
		q += " FOR UPDATE"
	}
	return q, ok
}

var indexedBy = regexp.MustCompile(`(?i)\s+INDEXED\s+BY\s+\w+`)

// rewritten caches run-time queries' PostgreSQL forms.
var rewritten sync.Map // SQLite text → PostgreSQL text

// rewrite returns query in d's dialect, and false when it has no form
// there (it must not be run).
func (d dialect) rewrite(query string) (string, bool) {
	if d == dialectSQLite {
		return query, true
	}
	if q, ok := postgresForms[query]; ok {
		return q, q != ""
	}
	if q, ok := rewritten.Load(query); ok {
		return q.(string), true
	}
	q := sqlx.Rebind(sqlx.DOLLAR, indexedBy.ReplaceAllString(query, ""))
	rewritten.Store(query, q)
	return q, true
}

// must is rewrite for a query that has a form in d.
func (d dialect) must(query string) string {
	q, _ := d.rewrite(query)
	return q
}

// PostgreSQL's SQLSTATEs this package acts on.
const (
	pgUniqueViolation      = "23505"
	pgSerializationFailure = "40001"
	pgDeadlockDetected     = "40P01"
)

// isConflict reports whether err is PostgreSQL refusing a write because a
// concurrent transaction (likely another instance's) won a race for the
// same row or key: the request may succeed when run again, on fresh data.
func isConflict(err error) bool {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return false
	}
	switch pe.Code {
	case pgUniqueViolation, pgSerializationFailure, pgDeadlockDetected:
		return true
	}
	return false
}

// IsUnavailable reports whether err means the lane DB could not be reached
// or stopped answering (PostgreSQL restarting, the network down, the
// connection lost under a statement) or stayed locked by another program
// or lane (IsBusy): the request did not run, or its transaction was rolled
// back, or, when COMMIT itself was cut off (ErrOutcomeUnknown), may have
// committed. Retrying later may succeed.
func IsUnavailable(err error) bool {
	if err == nil {
		return false
	}
	if IsBusy(err) || errors.Is(err, ErrUnavailable) {
		return true
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		// Class 08: connection exception; 57P01-03: the server is shutting
		// down or starting; 53300: too many connections. Any FATAL error
		// ends the session (25P03: it idled in a transaction too long).
		return strings.HasPrefix(pe.Code, "08") || pe.Code == "57P01" || pe.Code == "57P02" ||
			pe.Code == "57P03" || pe.Code == "53300" || isFatal(pe)
	}
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		return true
	}
	return pgconn.SafeToRetry(err) || pgconn.Timeout(err) || isNetworkError(err)
}

// isFatal reports whether the server ended the session with pe.
func isFatal(pe *pgconn.PgError) bool {
	sev := pe.SeverityUnlocalized
	if sev == "" {
		sev = pe.Severity
	}
	return sev == "FATAL" || sev == "PANIC"
}

// ErrUnavailable wraps the writer's answer to a batch that failed because
// the store database could not be reached; its transaction did not commit,
// unless the answer is also ErrOutcomeUnknown.
var ErrUnavailable = errors.New("the store database is unavailable")

// ErrUnreachable leads an error that means the store database cannot be
// reached (Unreachable), in the words an operator reads first.
var ErrUnreachable = errors.New("the store database cannot be reached")

// Unreachable returns err led by ErrUnreachable's plain words when it
// means the store database cannot be reached (PostgreSQL down or
// restarting, the network, a connection lost: IsUnavailable, but not a
// lock), so that a log line or /readyz says so before pgx's own text
// ("failed to connect to `user=…`: dial error…"), which follows as the
// cause. Any other err, and every err on SQLite, is returned as it is.
func (db *DB) Unreachable(err error) error {
	if !db.Postgres() {
		return err
	}
	return storeUnreachable(err)
}

// storeUnreachable is Unreachable for an error of the store database's.
func storeUnreachable(err error) error {
	if !IsUnavailable(err) || IsBusy(err) || errors.Is(err, ErrUnreachable) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrUnreachable, err)
}

// unreachable reports whether err means the store database cannot be
// reached (see Unreachable).
func (db *DB) unreachable(err error) bool {
	return db.Postgres() && IsUnavailable(err) && !IsBusy(err)
}

// ErrOutcomeUnknown wraps (with ErrUnavailable) the writer's answer to a
// batch whose COMMIT was cut off by the connection's loss: the server may
// have committed it before the connection went, and nobody can tell from
// here. A change retried with its ik is answered from its stored reply if
// it did commit, and made if it did not.
var ErrOutcomeUnknown = errors.New("the connection to the store database was lost during COMMIT: the changes may have been made")

// ErrStoreLocked wraps the writer's answer to a batch that waited its whole
// deadline for the store-wide journal lock (lockJournal): another lane (or
// a program) holds the store's write lock. A lane stopped mid-batch loses
// it within Options.IdleInTxTimeout. IsBusy and IsUnavailable report it.
var ErrStoreLocked = errors.New("another lane holds the store's write lock")

// isNetworkError reports an error of the connection itself: a socket
// error, the server closing it, pgx finding it closed under a statement
// (ErrConnClosed: neither SafeToRetry nor a net.Error), or database/sql's
// bad-connection marker.
func isNetworkError(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, driver.ErrBadConn) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, pgconn.ErrConnClosed) ||
		errors.Is(err, sql.ErrConnDone) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// boolsAsIntegers lets m encode a Go bool as the integer 1 or 0 for an
// integer parameter, as SQLite's driver stores it. A bool bound to a
// boolean parameter is encoded as before (this is tried only when no
// direct plan exists).
// args is the arguments of a statement as the dialect takes them: on
// PostgreSQL a string holding NUL has each NUL replaced by U+FFFD (item 8
// above). It copies only when something changes.
func (d dialect) args(args []any) []any {
	if d != dialectPostgres {
		return args
	}
	var out []any
	for i, a := range args {
		var s string
		switch v := a.(type) {
		case string:
			s = v
		case sql.NullString:
			s = v.String
		default:
			continue
		}
		if strings.IndexByte(s, 0) < 0 {
			continue
		}
		if out == nil {
			out = slices.Clone(args)
		}
		s = strings.ReplaceAll(s, "\x00", "\uFFFD")
		if ns, ok := a.(sql.NullString); ok {
			out[i] = sql.NullString{String: s, Valid: ns.Valid}
		} else {
			out[i] = s
		}
	}
	if out == nil {
		return args
	}
	return out
}

func boolsAsIntegers(m *pgtype.Map) {
	m.TryWrapEncodePlanFuncs = append([]pgtype.TryWrapEncodePlanFunc{tryWrapBoolAsInt}, m.TryWrapEncodePlanFuncs...)
}

func tryWrapBoolAsInt(value any) (pgtype.WrappedEncodePlanNextSetter, any, bool) {
	if b, ok := value.(bool); ok {
		return &boolAsIntPlan{}, boolAsInt(b), true
	}
	return nil, nil, false
}

// boolAsInt is a bool that pgtype's integer codecs can encode.
type boolAsInt bool

func (b boolAsInt) Int64Value() (pgtype.Int8, error) {
	if b {
		return pgtype.Int8{Int64: 1, Valid: true}, nil
	}
	return pgtype.Int8{Int64: 0, Valid: true}, nil
}

type boolAsIntPlan struct{ next pgtype.EncodePlan }

func (p *boolAsIntPlan) SetNext(next pgtype.EncodePlan) { p.next = next }

func (p *boolAsIntPlan) Encode(value any, buf []byte) ([]byte, error) {
	return p.next.Encode(boolAsInt(value.(bool)), buf)
}
