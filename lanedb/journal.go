package lanedb

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
)

// The journal is the lane's ordered log of what happened to its sales:
// firehoses follow it and replay it, and support reads a sale's history
// from it.

// JournalEntry is one row of the journal.
type JournalEntry struct {
	Seq     int64  `db:"seq"`
	AtUTC   string `db:"at_utc"`
	Family  string `db:"family"`
	Event   string `db:"event"`
	Physkey string `db:"physkey"`
	Actor   string `db:"actor"`
	Detail  string `db:"detail"`
}

// Journal appends an event in tx. Its seq (the lane-wide order) is not
// returned: nobody in the transaction needs it, and on PostgreSQL reading
// it back would make every append a query with a result row instead of a
// plain insert.
func Journal(ctx context.Context, tx *Tx, now time.Time, family, event, physkey, actor string, detail any) error {
	body := []byte("{}")
	if detail != nil {
		var err error
		if body, err = json.Marshal(detail); err != nil {
			return fmt.Errorf("journal detail: %w", err)
		}
	}
	if err := tx.lockJournal(ctx); err != nil {
		return err
	}
	e := JournalEntry{AtUTC: now.UTC().Format(DateTime), Family: family, Event: event, Physkey: physkey, Actor: actor, Detail: string(body)}
	res, err := tx.ExecContext(ctx, qJournal, e.AtUTC, e.Family, e.Event, e.Physkey, e.Actor, e.Detail)
	if err != nil {
		return fmt.Errorf("journal %s.%s: %w", family, event, err)
	}
	if tx.journaled != nil {
		// SQLite's seq is the row's rowid, which the insert hands back
		// without a statement more.
		if e.Seq, err = res.LastInsertId(); err != nil {
			return fmt.Errorf("journal %s.%s: its seq: %w", family, event, err)
		}
		// Gathered by the callbacks of the changes that commit (a failed
		// one's are dropped), told at once after them (runAfterCommit).
		tx.OnCommit(func() { tx.told = append(tx.told, e) })
	}
	return nil
}

// OnJournal asks that fn be told the journal rows a write transaction of
// this DB appended (the writer's and WriteTx's), in seq order and as a
// read of the journal would return them, once that transaction has
// committed: one call per transaction, in commit order within one
// goroutine's transactions. A follower can then skip reading
// back what this process wrote. Rows other programs write are not told:
// a follower still reads the journal for them (seq order shows a gap).
// SQLite only, where the seq comes with the insert: on PostgreSQL OnJournal
// does nothing and reports false. Call it before the writes it should
// see; a transaction already begun is not told. One fn at a time: a new
// one replaces it, nil stops the telling.
func (db *DB) OnJournal(fn func([]JournalEntry)) bool {
	switch {
	case db.Postgres():
		return false
	case fn == nil:
		db.journaled.Store(nil)
	default:
		db.journaled.Store(&fn)
	}
	return true
}

// JournalLockKey names the advisory lock that serialises journal appends
// store-wide: the bytes of "gljrnlap". Exported for a program that writes
// the store database beside the lanes and takes the lock as
// docs/lanedb.md says (bench soak's counter process).
const JournalLockKey int64 = 0x676c6a726e6c6170

// lockJournal takes, on PostgreSQL, the store-wide journal lock before the
// transaction's first journal insert; it is held until COMMIT. Why: seq is
// an identity column, handed out at INSERT, not at COMMIT. Without the
// lock, instance A could take seq 10, instance B seq 11, B commit first,
// and a follower reading "seq > 9" see 11, move its mark to 11, and never
// read 10 once A commits. Holding the lock from the first insert to the
// commit makes seq order commit order, so "seq > last" misses nothing.
// (On SQLite the single write lock already does this.)
func (t *Tx) lockJournal(ctx context.Context) error {
	if t.d != dialectPostgres || t.journalLocked {
		return nil
	}
	if _, err := t.ExecContext(ctx, qLockJournal, JournalLockKey); err != nil {
		return fmt.Errorf("take the journal lock: %w", err)
	}
	t.journalLocked = true
	return nil
}

// JournalFor lists a sale's journal entries in order.
func JournalFor(ctx context.Context, q sqlx.QueryerContext, physkey string) ([]JournalEntry, error) {
	var out []JournalEntry
	err := sqlx.SelectContext(ctx, q, &out, `SELECT seq, at_utc, family, event, physkey, actor, detail FROM journal WHERE physkey = ? ORDER BY seq`, physkey)
	if err != nil {
		return nil, fmt.Errorf("read journal of %s: %w", physkey, err)
	}
	return out, nil
}

// JournalAfter lists journal entries with seq > after, in order, at most limit.
func JournalAfter(ctx context.Context, q sqlx.QueryerContext, after int64, limit int) ([]JournalEntry, error) {
	var out []JournalEntry
	if err := sqlx.SelectContext(ctx, q, &out, qJournalAfter, after, limit); err != nil {
		return nil, fmt.Errorf("read journal after %d: %w", after, err)
	}
	return out, nil
}

// JournalBounds is the oldest and newest seq in the journal (0, 0 if empty).
func JournalBounds(ctx context.Context, q sqlx.QueryerContext) (oldest, newest int64, err error) {
	err = q.QueryRowxContext(ctx, qJournalBounds).Scan(&oldest, &newest)
	if err != nil {
		return 0, 0, fmt.Errorf("read journal bounds: %w", err)
	}
	return oldest, newest, nil
}

// TrimJournal deletes all but the newest keep entries, in one short
// transaction of at most batch rows, and reports how many it deleted.
func TrimJournal(ctx context.Context, tx *Tx, keep, batch int) (int64, error) {
	res, err := tx.ExecContext(ctx, qTrimJournal, keep, batch)
	if err != nil {
		return 0, fmt.Errorf("trim journal: %w", err)
	}
	return res.RowsAffected()
}

// JournalByteCutoff is the newest seq whose entry, counted with every newer
// one, takes the journal's event details past maxBytes: TrimJournalThrough
// that seq keeps the newest details within maxBytes. It is 0 while the
// whole journal is within. It reads the details' sizes, never the details
// (SQLite's octet_length and PostgreSQL's pg_column_size need only each
// row's header), so it is cheap enough for a read pool every sweep.
func JournalByteCutoff(ctx context.Context, q sqlx.QueryerContext, maxBytes int64) (int64, error) {
	var total int64
	if err := q.QueryRowxContext(ctx, qJournalBytes).Scan(&total); err != nil {
		return 0, fmt.Errorf("size the journal: %w", err)
	}
	if total <= maxBytes {
		return 0, nil
	}
	var seq int64
	if err := q.QueryRowxContext(ctx, qJournalByteCutoff, maxBytes).Scan(&seq); err != nil {
		return 0, fmt.Errorf("find the journal's byte cutoff: %w", err)
	}
	return seq, nil
}

// TrimJournalThrough deletes the entries up to seq, at most batch of them
// (the oldest first), and reports how many it deleted.
func TrimJournalThrough(ctx context.Context, tx *Tx, seq int64, batch int) (int64, error) {
	res, err := tx.ExecContext(ctx, qTrimJournalThrough, seq, batch)
	if err != nil {
		return 0, fmt.Errorf("trim journal through %d: %w", seq, err)
	}
	return res.RowsAffected()
}

var (
	qJournal = follow(stmt(`INSERT INTO journal (at_utc, family, event, physkey, actor, detail) VALUES (?, ?, ?, ?, ?, ?)`))
	// PostgreSQL only (lockJournal); SQLite would refuse to prepare it.
	qLockJournal  = `SELECT pg_advisory_xact_lock(?)`
	qJournalAfter = stmt(`SELECT seq, at_utc, family, event, physkey, actor, detail FROM journal
		WHERE seq > ? ORDER BY seq LIMIT ?`)
	// One subquery each: SQLite answers a lone MIN or MAX of the key from
	// the b-tree's ends, but MIN and MAX together scan the whole journal,
	// and the firehose asks on every commit that brought it nothing.
	qJournalBounds = stmt(`SELECT COALESCE((SELECT MIN(seq) FROM journal), 0), COALESCE((SELECT MAX(seq) FROM journal), 0)`)
	qTrimJournal   = follow(stmt(`DELETE FROM journal WHERE seq IN (SELECT seq FROM journal
		WHERE seq <= (SELECT MAX(seq) FROM journal) - ? ORDER BY seq LIMIT ?)`))
	qTrimJournalThrough = follow(stmt(`DELETE FROM journal WHERE seq IN (SELECT seq FROM journal
		WHERE seq <= ? ORDER BY seq LIMIT ?)`))
	qJournalBytes      = stmt(`SELECT COALESCE(SUM(octet_length(detail)), 0) FROM journal`)
	qJournalByteCutoff = stmt(`SELECT COALESCE((SELECT seq FROM (SELECT seq,
		SUM(octet_length(detail)) OVER (ORDER BY seq DESC) AS total FROM journal) sized
		WHERE total > ? ORDER BY seq DESC LIMIT 1), 0)`)
)
