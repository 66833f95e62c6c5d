package lanedb

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"time"
)

// The WAL is copied back into the database file (a checkpoint) by a
// connection of its own, in the background, rather than by the writer.
// SQLite's default makes the connection whose COMMIT takes the WAL past a
// thousand pages run the checkpoint inside that COMMIT: under load that
// is the group-commit writer, which then holds every waiting tablet for
// the checkpoint's copy and its fsync of the database file. The writer
// connection has wal_autocheckpoint off; the checkpointer runs a PASSIVE
// checkpoint (it never blocks the writer or a reader) every
// checkpointEvery. Other processes on the lane DB keep SQLite's default.

//
// A PASSIVE checkpoint copies frames back, but SQLite starts the WAL over
// (writes from its beginning again) only when a write transaction begins
// after a checkpoint copied every frame and while no reader uses the WAL.
// Under steady load neither holds: the writer commits while the
// checkpointer copies, and a reader always sits in the WAL. The WAL then
// grew without end (hundreds of MB in seconds). So the writer, between
// batches, runs a RESTART checkpoint once the WAL file passes walLimit
// (boundWAL), and the writer connection's journal_size_limit cuts the
// file back to walLimit when it starts over.

// checkpointEvery is how often the checkpointer copies the WAL back: often
// enough that the writer's RESTART finds little left to copy.
const checkpointEvery = 250 * time.Millisecond

// defaultWALLimit is the WAL file's size past which the writer restarts it:
// at full load (a few MB/s of WAL) one restart a second or two.
const defaultWALLimit = 8 << 20

// restartWait is how long the writer's RESTART checkpoint waits for the
// checkpointer's PASSIVE one and for readers to leave the WAL: new
// readers read the database file once it is all copied back, so the
// wait is for reads already running. Past it the writer carries on and
// tries again after its next batch; every change waits meanwhile.
const restartWait = 100 * time.Millisecond

// checkpointer runs PASSIVE checkpoints until stopped.
type checkpointer struct {
	conn *sql.DB
	stop chan struct{}
	done chan struct{}
}

func startCheckpointer(ctx context.Context, abs string, o Options) (*checkpointer, error) {
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", o.BusyTimeout.Milliseconds()))
	conn, err := sql.Open("sqlite", fileURI(abs)+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("open lane db checkpointer %s: %w", abs, err)
	}
	conn.SetMaxOpenConns(1)
	if err := conn.PingContext(ctx); err != nil {
		conn.Close()
		return nil, fmt.Errorf("open lane db checkpointer %s: %w", abs, err)
	}
	c := &checkpointer{conn: conn, stop: make(chan struct{}), done: make(chan struct{})}
	go c.run()
	return c, nil
}

func (c *checkpointer) run() {
	defer close(c.done)
	t := time.NewTicker(checkpointEvery)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
		}
		// A failed checkpoint is retried at the next tick; the WAL only
		// grows meanwhile, and the last connection to close checkpoints.
		_, _ = c.conn.Exec(`PRAGMA wal_checkpoint(PASSIVE)`)
	}
}

// Close stops the checkpointer and closes its connection.
func (c *checkpointer) Close() error {
	close(c.stop)
	<-c.done
	return c.conn.Close()
}

// boundWAL restarts the WAL when its file has passed walLimit (see
// above), and says what it found: the WAL's size and how the restart went.
// The writer runs it between batches, and WriteTx after each commit,
// holding no transaction; the os.Stat costs a microsecond or two. When a
// long read blocks the restart, the next try waits for the WAL to grow by
// another walLimit, so that such a read costs the writer restartWait now
// and then rather than every batch.
func (db *DB) boundWAL() (size int64, outcome restartOutcome) {
	if db.Postgres() || db.walLimit <= 0 {
		return 0, notTried
	}
	n, err := fileSize(db.Path + "-wal")
	switch {
	case err != nil:
		return 0, notTried
	case n <= db.walLimit:
		// Within its limit: it started over (by this writer's restart or
		// SQLite's own, with no reader left in it) or never grew.
		return n, withinLimit
	case n <= db.restartAt.Load():
		return n, notTried // a read blocked the last try: wait for more growth
	}
	outcome = db.restartWAL(context.Background())
	switch outcome {
	case restarted:
		db.restartAt.Store(0)
	case readersStayed:
		db.walBlocked.Add(1)
		db.restartAt.Store(n + db.walLimit)
	}
	// Otherwise it failed at once (another checkpoint was running, which
	// SQLite does not wait for): try again after the next commit.
	return n, outcome
}

// WALRestartsBlocked counts the writer's RESTART checkpoints that a read
// kept from starting the WAL over (it waited restartWait for reads to
// end). Now and then is a read of the lane's own that ran long; rising
// steadily, a read transaction held open (most likely another program's)
// is keeping the WAL growing. 0 on PostgreSQL.
func (db *DB) WALRestartsBlocked() int64 { return db.walBlocked.Load() }

// restartOutcome is how a RESTART checkpoint went, or why none ran.
type restartOutcome int

const (
	restarted     restartOutcome = iota
	readersStayed                // it waited restartWait for reads to end
	notTried                     // not due, another checkpoint held the lock, or an error
	withinLimit                  // not needed: the WAL is within walLimit
)

// restartWAL runs a RESTART checkpoint on the writer connection, waiting
// at most restartWait for readers.
func (db *DB) restartWAL(ctx context.Context) restartOutcome {
	conn, err := db.w.Conn(ctx)
	if err != nil {
		return notTried
	}
	defer conn.Close()
	// The checkpoint waits as the connection's busy timeout says: briefly
	// here, then back to the timeout writes wait for other programs with.
	if _, err := conn.ExecContext(ctx, fmt.Sprintf("PRAGMA busy_timeout = %d", restartWait.Milliseconds())); err != nil {
		return notTried
	}
	defer conn.ExecContext(ctx, fmt.Sprintf("PRAGMA busy_timeout = %d", db.busyTimeout.Milliseconds()))
	// blocked is 1 when it did not complete; frames is -1 when it could
	// not start (SQLite gives up at once on the checkpoint lock).
	var blocked, frames, copied int64
	if err := conn.QueryRowContext(ctx, `PRAGMA wal_checkpoint(RESTART)`).Scan(&blocked, &frames, &copied); err != nil {
		return notTried
	}
	switch {
	case blocked == 0:
		return restarted
	case frames < 0:
		return notTried
	}
	return readersStayed
}

// setWALLimit sets walLimit and the writer connection's journal_size_limit
// with it (tests lower it; the DSN sets defaultWALLimit).
func (db *DB) setWALLimit(ctx context.Context, n int64) error {
	if _, err := db.w.ExecContext(ctx, fmt.Sprintf("PRAGMA journal_size_limit = %d", n)); err != nil {
		return fmt.Errorf("set the WAL's size limit: %w", err)
	}
	db.walLimit = n
	return nil
}
