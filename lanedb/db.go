// Package lanedb is the lane's POS database: an SQLite file that greenlane
// and the counter program share, or in store mode a PostgreSQL database
// that several greenlane instances share (postgres.go, dialect.go). It owns
// the schema (embedded, versioned migrations, one set per dialect), the
// connection setup, and the SQL that reads and writes it.
package lanedb

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/jmoiron/sqlx"
	_ "modernc.org/sqlite" // registers the "sqlite" driver
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/greenlane-pos/greenlane/internal/setting"
)

// Options tune how the lane DB is opened.
type Options struct {
	// BusyTimeout is how long a statement waits for another process's lock
	// before giving up: 1ms to 1h. Default 10s. On PostgreSQL it bounds
	// connecting (unless the URL sets connect_timeout) and each write
	// batch, BEGIN to COMMIT, so that a writer never hangs on a server that
	// stopped answering: the batch is answered ErrUnavailable.
	BusyTimeout time.Duration
	// IdleInTxTimeout is, on PostgreSQL, how long the writer's transaction
	// may sit idle between two of its statements before the server ends
	// its session (idle_in_transaction_session_timeout): 100ms to 1h.
	// Default 5s. Every batch holds the store-wide journal lock from BEGIN
	// and never idles that long unless its process is stopped or hung; such
	// a lane then lets go of the lock within this, instead of stopping every
	// lane of the store, and finds its batch failed when it resumes. Keep it
	// under BusyTimeout, so that a lane waiting for the lock still gets its
	// batch through. SQLite does not use it.
	IdleInTxTimeout time.Duration
	// Synchronous is SQLite's synchronous pragma: FULL, NORMAL, OFF or
	// EXTRA. Default FULL (an acknowledged sale survives power loss).
	// PostgreSQL's durability is the server's (synchronous_commit): this
	// is not used there.
	Synchronous string
	// Readers is the size of the read-only connection pool: 1 to 64.
	// Default 4.
	Readers int
	// MigratedAt, when not zero, is the time an SQLite lane DB records for
	// each migration this Open applies (schema_migrations.applied_utc)
	// instead of the clock's: a generated store is then the same file,
	// byte for byte, whenever it is built. Default zero: the time each is
	// applied.
	MigratedAt time.Time
}

// Validate reports every field out of its range, each as a
// *setting.Error naming the field. Open fills zero fields with their
// defaults (a zero Options is the defaults) and then validates.
func (o Options) Validate() error {
	return errors.Join(
		setting.Range("BusyTimeout", o.BusyTimeout, time.Millisecond, time.Hour),
		setting.Range("IdleInTxTimeout", o.IdleInTxTimeout, 100*time.Millisecond, time.Hour),
		setting.OneOf("Synchronous", o.Synchronous, "FULL", "NORMAL", "OFF", "EXTRA"),
		setting.Range("Readers", o.Readers, 1, 64),
	)
}

// DefaultOptions returns the defaults.
func DefaultOptions() Options {
	return Options{BusyTimeout: 10 * time.Second, IdleInTxTimeout: 5 * time.Second, Synchronous: "FULL", Readers: 4}
}

// withDefaults fills zero fields from DefaultOptions.
func (o Options) withDefaults() Options {
	d := DefaultOptions()
	if o.BusyTimeout <= 0 {
		o.BusyTimeout = d.BusyTimeout
	}
	if o.IdleInTxTimeout <= 0 {
		o.IdleInTxTimeout = d.IdleInTxTimeout
	}
	if o.Synchronous == "" {
		o.Synchronous = d.Synchronous
	}
	if o.Readers <= 0 {
		o.Readers = d.Readers
	}
	return o
}

// DB is an open lane database: one writer connection (SQLite allows one
// writer at a time; a single connection makes that explicit and lets
// transactions queue in Go rather than spin on SQLITE_BUSY) and a pool of
// read-only connections.
type DB struct {
	// w and r stay inside this package, so that every statement on the
	// lane DB is one of lanedb's: the writer only through WriteTx (or the
	// group-commit Writer), the readers through Read and the methods here.
	w    *sqlx.DB // the single writer; every transaction is BEGIN IMMEDIATE
	r    *sqlx.DB // read-only pool
	Read *Reader  // r with this package's statements prepared
	// Path is the SQLite file's absolute path, or on PostgreSQL the
	// database's URL with its password hidden (fit for logs).
	Path string
	wp   *prepared // this package's statements prepared on w
	d    dialect
	// batchTimeout bounds a write batch on PostgreSQL (Options.BusyTimeout);
	// 0 on SQLite, whose busy timeout is the connection's own.
	batchTimeout time.Duration
	// cache answers the writer's reads of what it wrote (cache.go); nil
	// until the schema is migrated.
	cache *writeCache
	ck    *checkpointer // copies the WAL back, off the writer's path
	// fault is set while the writer's last write failed for a
	// StorageFault (a full disk…), cleared by the next that commits:
	// Ready reports it.
	fault atomic.Pointer[writeFault]
	// walLimit is the WAL size past which the writer restarts it
	// (checkpoint.go); 0 on PostgreSQL.
	walLimit    int64
	restartAt   atomic.Int64  // the WAL size for the next restart after one was blocked
	walBlocked  atomic.Int64  // restarts a read blocked (WALRestartsBlocked)
	busyTimeout time.Duration // Options.BusyTimeout, the writer connection's
	migratedAt  time.Time     // Options.MigratedAt
	closed      atomic.Bool
	// gen, set by GuardGeneration, makes every write check the store's
	// generation; nil on SQLite and for commands.
	gen *generationGuard
	// journaled is told the journal rows each write transaction appended,
	// once it has committed (OnJournal); nil: nobody asked.
	journaled atomic.Pointer[func([]JournalEntry)]
}

// writeFault is a write refused by the lane DB's storage.
type writeFault struct {
	reason string // StorageFault's
	err    error
	since  time.Time // the first of the refusals in a row
}

// Postgres reports whether the lane DB is a PostgreSQL store database.
func (db *DB) Postgres() bool { return db.d == dialectPostgres }

// ErrNoFolder is Open's error when the folder the lane DB should be in does
// not exist (or is not a folder).
var ErrNoFolder = errors.New("its folder does not exist")

// Open opens (creating if needed) the lane DB at path and migrates it to the
// newest schema. A DB written by a newer greenlane is refused. A path that
// is a postgres:// or postgresql:// URL opens that PostgreSQL database
// instead (the store mode, see openPostgres).
func Open(ctx context.Context, path string, opts Options) (*DB, error) {
	opts = opts.withDefaults()
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("lane db options: %w", err)
	}
	if IsPostgresURL(path) {
		return openPostgres(ctx, path, opts)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("lane db path %q: %w", path, err)
	}
	// A folder is never made here: a mistyped path must not quietly start
	// a new, empty lane somewhere else.
	if st, err := os.Stat(filepath.Dir(abs)); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("lane db %s: %w", abs, ErrNoFolder)
	}
	if err := RefuseForeign(ctx, abs); err != nil {
		return nil, err
	}
	w, err := sqlx.Open("sqlite", writerDSN(abs, opts))
	if err != nil {
		return nil, fmt.Errorf("open lane db writer %s: %w", abs, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	if err := w.PingContext(ctx); err != nil {
		w.Close()
		if ro := readOnlyError(abs, err); ro != nil {
			return nil, ro // a folder it may not write: SQLite cannot make the WAL
		}
		return nil, fmt.Errorf("open lane db %s: %w", abs, err)
	}
	if err := checkWritable(ctx, w, abs); err != nil {
		w.Close()
		return nil, err
	}
	db := &DB{w: w, Path: abs, walLimit: defaultWALLimit, busyTimeout: opts.BusyTimeout, migratedAt: opts.MigratedAt}
	if err := db.migrate(ctx); err != nil {
		w.Close()
		if IsBusy(err) {
			// Opening checks the schema in a write transaction: another
			// program held the write lock all the while.
			return nil, fmt.Errorf("lane db %s: another program held its write lock for %s (the busy timeout, --db-busy-timeout); "+
				"let it finish (a long transaction in sqlite3, a backup, the counter's own program) and start again: %w", abs, opts.BusyTimeout, err)
		}
		return nil, err
	}
	if db.wp, err = prepareAll(ctx, w, dialectSQLite, false); err != nil {
		w.Close()
		return nil, err
	}
	r, err := sqlx.Open("sqlite", readerDSN(abs, opts))
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("open lane db readers %s: %w", abs, err)
	}
	r.SetMaxOpenConns(opts.Readers)
	r.SetMaxIdleConns(opts.Readers)
	if err := r.PingContext(ctx); err != nil {
		w.Close()
		r.Close()
		return nil, fmt.Errorf("open lane db readers %s: %w", abs, err)
	}
	rp, err := prepareAll(ctx, r, dialectSQLite, true)
	if err != nil {
		w.Close()
		r.Close()
		return nil, err
	}
	db.r, db.Read = r, &Reader{DB: r, p: rp, d: dialectSQLite}
	if db.ck, err = startCheckpointer(ctx, abs, opts); err != nil {
		w.Close()
		r.Close()
		return nil, err
	}
	db.cache = newWriteCache()
	return db, nil
}

// RefuseForeign returns ErrNotLaneDB for a file at path that is not an
// SQLite database at all, or an SQLite file that holds another program's
// tables and no lane schema, having looked at it read-only, with no
// pragma: the writer's own DSN would first switch the file's journal mode
// to WAL (a change to another program's file that outlives the refusal),
// and migrate only then finds that it is not a lane DB. Anything else (no
// file, an empty one, a lane DB, one it cannot read) is for Open to
// answer: nil. It leaves nothing beside the file: without a -wal there,
// the file is read as immutable, as SQLite would otherwise make an empty
// -wal and -shm beside a WAL-mode file of another program and leave them.
func RefuseForeign(ctx context.Context, path string) error {
	if IsPostgresURL(path) {
		return nil
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil
	}
	if st, err := os.Stat(abs); err != nil || !st.Mode().IsRegular() || st.Size() == 0 {
		return nil
	}
	_, err = peekSchemaVersion(ctx, abs, abs)
	switch {
	case errors.Is(err, ErrNotLaneDB):
		return err
	case isSQLiteCode(err, sqlite3.SQLITE_NOTADB):
		// A lane DB damaged past reading looks the same: say how to restore
		// over one without guessing which it is.
		return fmt.Errorf("%s is a file of another program (not an SQLite database): %w; if it is a lane DB damaged past reading, move it aside (mv %s %s.damaged) and run the command again",
			abs, ErrNotLaneDB, abs, abs)
	}
	return nil
}

// peekSchemaVersion reads the schema version of the SQLite file at abs as
// sqliteSchemaVersion does (0 for no tables, ErrNotLaneDB for another
// program's tables), read-only and with no pragma, naming it label in its
// errors. It leaves nothing beside the file: without a -wal there, the
// file is read as immutable, as SQLite would otherwise make an empty -wal
// and -shm beside a WAL-mode file and leave them.
func peekSchemaVersion(ctx context.Context, abs, label string) (int, error) {
	// The file is read only through SQLite, never opened and closed
	// beside it: closing any descriptor of a file drops every POSIX lock
	// this process holds on it, so a lane that opened its DB and then
	// looked at it here (serve does, after --create) would lose SQLite's
	// locks, and another program (the counter) could then checkpoint and
	// truncate the WAL under the lane's readers. SQLite keeps its own
	// descriptors open while any connection of the process holds a lock.
	dsn := fileURI(abs) + "?mode=ro"
	if _, err := os.Lstat(abs + "-wal"); errors.Is(err, os.ErrNotExist) {
		// No WAL: the file alone is the whole database, and nobody has it
		// open in WAL mode (SQLite keeps the -wal while anyone does).
		dsn += "&immutable=1"
	}
	ro, err := sqlx.Open("sqlite", dsn)
	if err != nil {
		return 0, fmt.Errorf("open %s: %w", label, err)
	}
	defer ro.Close()
	ro.SetMaxOpenConns(1)
	return sqliteSchemaVersion(ctx, ro, label)
}

// Close closes both pools. On SQLite the WAL is copied back into the
// database file and removed when the last connection closes, but SQLite
// does so silently or not at all: another program with the file open
// (the counter's) keeps it, and a failed copy (a full disk) leaves it.
// So the writer first copies it back itself, and Close reports a WAL left
// behind, with its size and why if known: the data is safe in it, but the
// database file alone is not the whole lane DB. Closing twice is a no-op.
func (db *DB) Close() error {
	if !db.closed.CompareAndSwap(false, true) {
		return nil
	}
	var errs []error
	if db.ck != nil {
		errs = append(errs, db.ck.Close())
	}
	if db.r != nil {
		errs = append(errs, db.r.Close())
	}
	var ckErr error
	if !db.Postgres() {
		ckErr = db.finalCheckpoint()
	}
	errs = append(errs, db.w.Close())
	if !db.Postgres() {
		if n, err := fileSize(db.Path + "-wal"); err != nil || n > 0 {
			why := "another program still has the lane DB open (it copies the WAL back when it closes)"
			if ckErr != nil {
				why = "the final checkpoint failed: " + ckErr.Error()
			}
			errs = append(errs, fmt.Errorf("lane db %s: its WAL %s-wal (%d bytes) was left behind, holding changes not yet in the database file; "+
				"keep it beside the database file (a copy or backup needs both): %s", db.Path, db.Path, n, why))
		}
	}
	return errors.Join(errs...)
}

// finalCheckpoint copies the whole WAL back into the database file on the
// writer connection and empties it, waiting briefly for readers, and says
// why it could not.
func (db *DB) finalCheckpoint() error {
	ctx := context.Background()
	// Shutting down must not hang on another program's long read.
	if _, err := db.w.ExecContext(ctx, fmt.Sprintf("PRAGMA busy_timeout = %d", restartWait.Milliseconds())); err != nil {
		return err
	}
	var blocked, frames, copied int64
	err := db.w.QueryRowContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`).Scan(&blocked, &frames, &copied)
	switch {
	case err != nil:
		return err
	case blocked != 0:
		return fmt.Errorf("another connection was using the WAL (%d of %d frames copied)", copied, frames)
	}
	return nil
}

// checkWritable makes sure the writer can really write the lane DB. SQLite
// opens a file it may not write (or one whose folder it may not write, to
// make the WAL beside it) read-only without a word, and a write
// transaction still starts: the lane then served, /readyz said ready, and
// every change failed. So a write is tried, in a transaction rolled back:
// setting the header's user_version to what it is. What SQLite answers
// decides, not the file's mode bits (root may write a 0444 file).
func checkWritable(ctx context.Context, w *sqlx.DB, abs string) error {
	tx, err := w.BeginTxx(ctx, nil)
	if err == nil {
		var v int64
		if err = tx.GetContext(ctx, &v, `PRAGMA user_version`); err == nil {
			_, err = tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", v))
		}
		_ = tx.Rollback()
	}
	if err == nil || IsBusy(err) { // busy: another program writes it, so can we, in turn (migrate waits)
		return nil
	}
	if ro := readOnlyError(abs, err); ro != nil {
		return ro
	}
	return fmt.Errorf("lane db %s: try a write: %w", abs, err)
}

// readOnlyError is the error for SQLite refusing to write the lane DB
// (err), naming what to make writable; nil when err is something else.
func readOnlyError(abs string, err error) error {
	if !isSQLiteCode(err, sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_PERM) {
		return nil
	}
	// SQLite cannot open a folder either, and says only that.
	if st, serr := os.Stat(abs); serr == nil && st.IsDir() {
		return fmt.Errorf("lane db %s is a folder, not a lane DB file: name the file in it (e.g. %s): %w", abs, filepath.Join(abs, "greenlane-lane.db"), err)
	}
	// The folder when SQLite cannot make its files there, else the file
	// (SQLite's own answer says which only in some cases).
	what := "the file " + abs
	if dir := filepath.Dir(abs); !canCreateIn(dir) {
		what = "its folder " + dir
	}
	return fmt.Errorf("lane db %s is read-only for this user (uid %d): make %s writable by it "+
		"(SQLite also writes %s-wal and %s-shm beside it): %w", abs, os.Geteuid(), what, abs, abs, err)
}

// canCreateIn reports whether this process may make a file in dir.
func canCreateIn(dir string) bool {
	f, err := os.CreateTemp(dir, ".greenlane-probe-*")
	if err != nil {
		return false
	}
	f.Close()
	os.Remove(f.Name())
	return true
}

// fileURI makes an SQLite URI for path; SQLite decodes %-escapes in it.
func fileURI(abs string) string {
	return (&url.URL{Scheme: "file", Path: abs}).String()
}

// writerMode is how the writer opens the file: read-write, made if
// missing (SQLite's own default, said here). Tests open it "ro" to meet,
// even as root, what SQLite answers on a file this user may not write.
var writerMode = "rwc"

// writerDSN puts every pragma in the DSN so that each new connection gets
// them (a pragma run on a pool reaches only one connection). busy_timeout
// comes first: the others may need a lock.
func writerDSN(abs string, o Options) string {
	q := url.Values{}
	q.Set("mode", writerMode)
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", o.BusyTimeout.Milliseconds()))
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "wal_autocheckpoint(0)") // the checkpointer does it (checkpoint.go)
	// A WAL started over is cut back to this (checkpoint.go).
	q.Add("_pragma", fmt.Sprintf("journal_size_limit(%d)", defaultWALLimit))
	q.Add("_pragma", "synchronous("+o.Synchronous+")")
	q.Add("_pragma", "foreign_keys(1)")
	// Each request in a group-commit batch runs in its own savepoint, and a
	// batch's savepoint journal outgrows SQLite's in-memory buffer: keep it
	// (and other temporary data) in memory rather than in a temp file.
	q.Add("_pragma", "temp_store(MEMORY)")
	q.Set("_txlock", "immediate")
	return fileURI(abs) + "?" + q.Encode()
}

func readerDSN(abs string, o Options) string {
	q := url.Values{}
	q.Set("mode", "ro")
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", o.BusyTimeout.Milliseconds()))
	q.Add("_pragma", "query_only(1)")
	return fileURI(abs) + "?" + q.Encode()
}

// WriteTx runs fn in one writer transaction (BEGIN IMMEDIATE) and commits it.
// Any error from fn rolls everything back.
func (db *DB) WriteTx(ctx context.Context, fn func(tx *Tx) error) error {
	tx, err := db.begin(ctx)
	if err != nil {
		return err
	}
	if err := db.checkGeneration(ctx, tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	tx.runAfterCommit()
	db.boundWAL()
	return nil
}

// begin starts a write transaction with the prepared statements at hand.
func (db *DB) begin(ctx context.Context) (*Tx, error) {
	tx, err := db.w.BeginTxx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("begin write: %w", err)
	}
	t := &Tx{Tx: tx, p: db.wp, d: db.d}
	if fn := db.journaled.Load(); fn != nil {
		t.journaled = *fn
	}
	if db.cache != nil {
		t.cache = db.cache
		if err := db.cache.check(ctx, t); err != nil {
			t.bypass() // cannot tell whether another process wrote: trust nothing
		}
	}
	return t, nil
}

// FormatDateTime writes t, in its own zone, in the "YYYY-MM-DD HH:MM:SS"
// form of every date-time column (pass t.UTC() for the *_utc columns).
func FormatDateTime(t time.Time) string { return t.Format(DateTime) }

// DateTime is the layout of every date-time column.
const DateTime = "2006-01-02 15:04:05"

// StampLayout is DateTime to the microsecond, for updated_utc, which must
// order changes within a second. It sorts correctly against DateTime text.
const StampLayout = "2006-01-02 15:04:05.000000"
