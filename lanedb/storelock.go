package lanedb

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// A store database has no lock file: the SQLite lock of restore.go
// (LockServing, LockExclusive) is a PostgreSQL advisory lock there, held
// by a session of its own. Every serving lane holds it shared, so lanes
// never keep each other out; a fixture command that rewrites the store
// takes it exclusive, without waiting, so it is refused while any lane
// serves, and a lane is refused while such a command runs. A session-level
// lock lasts as long as its connection: a lane or command that dies lets
// go of it with its connection, and no lock is ever left behind.

// StoreLockKey names the store lock (the one-bigint form of the advisory
// lock functions). Advisory locks are per database, so one key serves
// every store database of a server; it is the bytes of "glstore ",
// beside greenlane's other keys, migrateLockKey ("glmigrat") and
// JournalLockKey ("gljrnlap").
// Exported for whoever must keep the lanes off a store by hand, as
// pg_advisory_lock(StoreLockKey) does, and for tests.
// The sessions holding it are found in pg_locks as locktype 'advisory',
// classid 0x676c7374 and objid 0x6f726520 (objsubid 1: one bigint key).
const StoreLockKey int64 = 0x676c73746f726520

// storeLockApp is the application_name of the sessions that hold the store
// lock, so that an administrator finds them in pg_stat_activity (a lane
// machine that died without closing its connection holds the lock until
// the server notices the connection is gone, or pg_terminate_backend).
const storeLockApp = "greenlane store lock"

// storeLockCheck is how often a serving lane checks that the connection
// holding its store lock is alive; storeLockRetry is how often, once it has
// lost it, it tries to take the lock again. The retry is short: until the
// lock is back, a fixture command may rewrite the store under the lane.
const (
	storeLockCheck = time.Second
	storeLockRetry = 100 * time.Millisecond
)

// MetaGeneration is the lane_meta key of a store database's generation: a
// UUID that every fixture command rewriting the store sets anew in its
// rewrite (NewGeneration). A serving lane reads it when it takes the store
// lock and again whenever it takes the lock back after losing it: a
// changed generation means the store was rewritten while the lock was
// lost, and the lane stops instead of serving it.
const MetaGeneration = "store_generation"

// NewGeneration gives the lane DB a fresh generation (MetaGeneration), in
// the transaction that rewrites its store.
func NewGeneration(ctx context.Context, tx *Tx) error {
	return SetMeta(ctx, tx, MetaGeneration, uuid.NewString())
}

// generationSpace is the UUID namespace of SeededGeneration's generations.
var generationSpace = uuid.MustParse("6a0c1d52-3f0e-4b8e-9d1e-67c0a5e1f7b2")

// SeededGeneration gives the lane DB a new generation (MetaGeneration)
// derived from seed and the generation it had, in the transaction that
// rewrites its store: `fixture generate` builds a new lane DB byte for byte
// the same for one seed, so its generation cannot be random. Chaining the
// previous generation in still makes it new on every rewrite of a store
// that held one: a store loaded (random generation) and generated onto
// again with the same seed never gets back a generation a lane started on.
func SeededGeneration(ctx context.Context, tx *Tx, seed string) error {
	prev, err := Meta(ctx, tx, MetaGeneration)
	if err != nil {
		return err
	}
	return SetMeta(ctx, tx, MetaGeneration, uuid.NewSHA1(generationSpace, []byte(prev+"\x00"+seed)).String())
}

// GuardGeneration makes every write transaction of db (each batch of its
// Writer, each WriteTx) read the store's generation (MetaGeneration) first,
// in the transaction itself, and refuse to write unless it is gen, the one
// the lane started on (LockStoreServing): the store lock alone leaves a
// gap, from losing its connection to noticing, in which a fixture command
// may rewrite the store and the lane's queued changes would land in the new
// one. A refused transaction commits nothing, fails with ErrUnavailable and
// ErrStoreRewritten, and calls stop once, with the ErrStoreRewritten
// error, so the lane stops. The row is read FOR SHARE: a fixture command,
// which sets the generation first thing in its rewrite, waits for a batch
// that read it, and a batch waits for a rewrite under way and then reads
// the new one.
// Call it before the Writer runs; on SQLite it does nothing.
func (db *DB) GuardGeneration(gen string, stop func(error)) {
	if db.Postgres() {
		db.gen = &generationGuard{want: gen, stop: stop}
	}
}

// generationGuard is GuardGeneration's setting.
type generationGuard struct {
	want string
	stop func(error)
	once sync.Once
}

// qGeneration reads the store generation, "" when unset; one read of
// lane_meta's primary key.
const qGeneration = `SELECT COALESCE((SELECT value FROM lane_meta WHERE key = ? FOR SHARE), '')`

// checkGeneration is GuardGeneration's check, in t before its writes.
func (db *DB) checkGeneration(ctx context.Context, t *Tx) error {
	g := db.gen
	if g == nil {
		return nil
	}
	var gen string
	if err := t.QueryRowContext(ctx, qGeneration, MetaGeneration).Scan(&gen); err != nil {
		return fmt.Errorf("read the store generation: %w", err)
	}
	if gen == g.want {
		return nil
	}
	err := fmt.Errorf("store database %s: %w: a fixture command (load, reset or generate) rewrote it while this lane had lost its store lock: "+
		"a change queued for the store it served was refused, not written; this lane stops rather than serve it: start it again (a service manager restarts it) to serve the store as it is now",
		db.Path, ErrStoreRewritten)
	g.once.Do(func() {
		if g.stop != nil {
			g.stop(err)
		}
	})
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}

// ErrStoreRewritten is the error a serving lane stops with when its store
// database was rewritten, or is being rewritten, by a fixture command while
// its store lock was lost (PostgreSQL restarted under it).
var ErrStoreRewritten = errors.New("store database rewritten under this serving lane")

// LockStoreServing takes the store lock of the PostgreSQL store database
// at dbURL shared, for a lane serving it until release is called (serve
// takes it before opening the database and releases it after closing it).
// It fails while a fixture command rewrites the store. If the lock's
// connection is lost (PostgreSQL restarted), the lane goes on serving and
// the lock is taken again in the background once the server answers, each
// step logged on log. If the store was rewritten meanwhile (its
// generation changed, MetaGeneration), or a fixture command holds the lock
// when the lane tries it again, stop is called once with an error wrapping
// ErrStoreRewritten, saying what to do, and the lock is not taken again:
// the lane must stop serving. gen is the store's generation now, for
// DB.GuardGeneration. opts.BusyTimeout bounds connecting, unless the URL
// sets connect_timeout.
func LockStoreServing(ctx context.Context, dbURL string, opts Options, log *slog.Logger, stop func(error)) (release func(), gen string, err error) {
	h := &storeHold{url: dbURL, name: redactURL(dbURL), timeout: opts.withDefaults().BusyTimeout, log: log, lost: stop, done: make(chan struct{})}
	c, held, err := takeStoreLock(ctx, dbURL, h.timeout, true)
	if err != nil {
		return nil, "", err
	}
	if !held {
		c.Close(context.WithoutCancel(ctx))
		return nil, "", fmt.Errorf("store database %s is being rewritten: a fixture command holds its store lock: let it finish, then start the lane", h.name)
	}
	if h.gen, err = storeGeneration(ctx, c); err != nil {
		letGo(c, h.timeout)
		return nil, "", fmt.Errorf("lane db %s: %w", h.name, err)
	}
	h.conn = c
	var keepCtx context.Context
	keepCtx, h.stop = context.WithCancel(context.WithoutCancel(ctx))
	go h.keep(keepCtx)
	return h.release, h.gen, nil
}

// LockStoreExclusive takes the store lock of the PostgreSQL store database
// at dbURL exclusive, for a command that rewrites the store, until release
// is called. It does not wait: it fails with ErrServing, saying how many,
// while lanes serve the store, and a lane cannot start meanwhile
// (LockStoreServing fails). opts.BusyTimeout bounds connecting, unless the
// URL sets connect_timeout.
func LockStoreExclusive(ctx context.Context, dbURL string, opts Options) (release func(), err error) {
	name := redactURL(dbURL)
	c, held, err := takeStoreLock(ctx, dbURL, opts.withDefaults().BusyTimeout, false)
	if err != nil {
		return nil, err
	}
	if held {
		return func() { letGo(c, opts.withDefaults().BusyTimeout) }, nil
	}
	defer c.Close(context.WithoutCancel(ctx))
	var lanes, commands int
	if err := c.QueryRow(ctx, `SELECT count(*) FILTER (WHERE mode = 'ShareLock'), count(*) FILTER (WHERE mode = 'ExclusiveLock')
		FROM pg_locks
		WHERE locktype = 'advisory' AND granted AND objsubid = 1
		  AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
		  AND classid::bigint = $1 AND objid::bigint = $2`,
		StoreLockKey>>32, StoreLockKey&0xffffffff).Scan(&lanes, &commands); err != nil {
		return nil, fmt.Errorf("store database %s is in use (its store lock is held), and who holds it could not be read: %w", name, err)
	}
	switch {
	case lanes > 0:
		return nil, fmt.Errorf("store database %s is in use: %w: %d serving lane(s) hold its store lock (pg_stat_activity shows them as application_name %q): stop them first",
			name, ErrServing, lanes, storeLockApp)
	case commands > 0:
		return nil, fmt.Errorf("store database %s is in use: another command is rewriting it (it holds the store lock): let it finish first", name)
	}
	return nil, fmt.Errorf("store database %s was in use a moment ago (its store lock was held): try again", name)
}

// takeStoreLock connects to dbURL on a session of its own and tries the
// store lock, shared or exclusive, without waiting. The connection is
// returned whether or not the lock was taken, and closed on an error.
func takeStoreLock(ctx context.Context, dbURL string, connectTimeout time.Duration, shared bool) (c *pgx.Conn, held bool, err error) {
	name := redactURL(dbURL)
	cfg, err := pgx.ParseConfig(dbURL)
	if err != nil {
		return nil, false, fmt.Errorf("lane db %s: parse the PostgreSQL URL: %w", name, err)
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = connectTimeout
	}
	cfg.RuntimeParams["application_name"] = storeLockApp
	storeSession(cfg, 0) // the lock is held outside any transaction
	c, err = pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, false, fmt.Errorf("connect to PostgreSQL lane db %s: %w", name, err)
	}
	q := `SELECT pg_try_advisory_lock($1)`
	if shared {
		q = `SELECT pg_try_advisory_lock_shared($1)`
	}
	if err := c.QueryRow(ctx, q, StoreLockKey).Scan(&held); err != nil {
		c.Close(context.WithoutCancel(ctx))
		return nil, false, fmt.Errorf("lane db %s: take the store lock: %w", name, err)
	}
	return c, held, nil
}

// storeGeneration reads the store's generation (MetaGeneration) on c: ""
// for a store never rewritten by a fixture command, or whose tables are
// not made yet (the lane that takes the lock first makes them).
func storeGeneration(ctx context.Context, c *pgx.Conn) (string, error) {
	var gen string
	err := c.QueryRow(ctx, `SELECT COALESCE((SELECT value FROM lane_meta WHERE key = $1), '')`, MetaGeneration).Scan(&gen)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42P01" { // undefined_table: a database not migrated yet
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read the store generation: %w", err)
	}
	return gen, nil
}

// letGo releases the store lock held on c and closes it. Closing alone
// would release it too, but only once the server has seen the connection
// end: a command run just after the lanes stopped could still be refused.
func letGo(c *pgx.Conn, timeout time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	_, _ = c.Exec(ctx, `SELECT pg_advisory_unlock_all()`) // on failure, closing releases it
	c.Close(ctx)
}

// storeHold is a serving lane's store lock (LockStoreServing).
type storeHold struct {
	url, name string
	timeout   time.Duration // bounds connecting and each check
	log       *slog.Logger
	conn      *pgx.Conn // holds the lock; nil while it is lost (keep's alone)
	gen       string    // the store's generation when the lane took the lock
	lost      func(error)
	stop      context.CancelFunc
	done      chan struct{} // closed when keep has returned
}

// keep checks the lock's connection every storeLockCheck until ctx ends;
// once it is lost it tries to take the lock again every storeLockRetry, as
// soon as the server answers. Taken again, the lock is kept only if the
// store's generation is the one the lane started on: otherwise a fixture
// command rewrote the store while the lock was lost, and the lane is
// stopped (h.lost). A fixture command holding the lock when it is tried
// again stops the lane the same way: it is rewriting the store.
func (h *storeHold) keep(ctx context.Context) {
	defer close(h.done)
	defer func() {
		if h.conn != nil {
			letGo(h.conn, h.timeout)
		}
	}()
	t := time.NewTimer(storeLockCheck)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if h.conn != nil {
			pctx, cancel := context.WithTimeout(ctx, h.timeout)
			err := h.conn.Ping(pctx)
			cancel()
			if err == nil || ctx.Err() != nil {
				t.Reset(storeLockCheck)
				continue
			}
			h.conn.Close(context.Background())
			h.conn = nil
			h.log.Warn("store lock lost with its PostgreSQL connection: until it is taken again, a fixture command is not kept from rewriting the store; retrying every "+storeLockRetry.String(),
				"db", h.name, "err", storeUnreachable(err))
		}
		t.Reset(storeLockRetry)
		c, held, err := takeStoreLock(ctx, h.url, h.timeout, true)
		if err != nil {
			continue // the server is still away: said once, above
		}
		if !held {
			c.Close(context.Background())
			h.quit(fmt.Errorf("store database %s: %w: a fixture command took its store lock while this lane had lost it (PostgreSQL restarted), and is rewriting it: "+
				"this lane stops rather than serve it; once the command is done, start the lane again (a service manager restarts it)", h.name, ErrStoreRewritten))
			return
		}
		gen, err := storeGeneration(ctx, c)
		if err != nil {
			letGo(c, h.timeout)
			continue // read again at the next try
		}
		if gen != h.gen {
			letGo(c, h.timeout)
			h.quit(fmt.Errorf("store database %s: %w: a fixture command (load, reset or generate) rewrote it while this lane had lost its store lock (PostgreSQL restarted): "+
				"its sales and journal are not the ones this lane served; this lane stops rather than serve it: start it again (a service manager restarts it) to serve the store as it is now", h.name, ErrStoreRewritten))
			return
		}
		h.conn = c
		t.Reset(storeLockCheck)
		h.log.Info("store lock taken again", "db", h.name)
	}
}

// quit logs err as an ERROR and hands it to the lane (h.lost), which stops.
func (h *storeHold) quit(err error) {
	h.log.Error("stopping: "+err.Error(), "db", h.name)
	if h.lost != nil {
		h.lost(err)
	}
}

// release lets go of the lock (closing its connection) and stops keep.
func (h *storeHold) release() {
	h.stop()
	<-h.done
}
