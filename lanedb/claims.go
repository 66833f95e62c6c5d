package lanedb

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
)

// Claim names who asks for a presell's lease and for how long.
type Claim struct {
	Physkey string
	Version int64  // the sales.version the claimer last read: compare-and-set
	Session string // the claimer's session (a socket, or one program run)
	KeyID   string
	KeyName string
	Now     time.Time
	Stamp   string // updated_utc for the change (StampLayout)
	Lease   time.Duration
	Force   bool // take over a live claim (admin)
}

// claimSQL is the whole claim: one conditional UPDATE. It succeeds only if
// the row is still the version the claimer read, and the presell is
// submitted (phase 5), or active under a lease that has lapsed, is this
// session's own, or is being forced. docs/lanedb.md gives the same statement
// to counter programs that write the lane DB directly.
var qClaim = named(`UPDATE sales SET phase = 0,
	claim_session = :session, claim_key = :key_id, claim_name = :key_name, claim_expires_ms = :expires_ms,
	holder_key = :key_id, holder_name = :key_name, updated_utc = :stamp, version = version + 1
WHERE physkey = :physkey AND presell = 1 AND version = :version
  AND (phase = 5
       OR (phase = 0 AND claim_session IS NOT NULL
           AND (claim_expires_ms <= :now_ms OR claim_session = :session OR :force = 1)))`)

type claimArgs struct {
	Session   string `db:"session"`
	KeyID     string `db:"key_id"`
	KeyName   string `db:"key_name"`
	ExpiresMS int64  `db:"expires_ms"`
	NowMS     int64  `db:"now_ms"`
	Stamp     string `db:"stamp"`
	Physkey   string `db:"physkey"`
	Version   int64  `db:"version"`
	Force     int    `db:"force"`
}

// ClaimPresell tries to claim a presell. It reports false, with no error,
// when the presell was not claimable (held, changed, or not a presell).
func ClaimPresell(ctx context.Context, tx *Tx, c Claim) (bool, error) {
	force := 0
	if c.Force {
		force = 1
	}
	res, err := tx.NamedExecContext(ctx, qClaim, claimArgs{
		Session: c.Session, KeyID: c.KeyID, KeyName: c.KeyName,
		ExpiresMS: c.Now.Add(c.Lease).UnixMilli(), NowMS: c.Now.UnixMilli(),
		Stamp: c.Stamp, Physkey: c.Physkey, Version: c.Version, Force: force,
	})
	if err != nil {
		return false, fmt.Errorf("claim presell %s: %w", c.Physkey, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("claim presell %s: %w", c.Physkey, err)
	}
	return n == 1, nil
}

// ClaimState is the lease on a sale as stored.
type ClaimState struct {
	Session   sql.NullString `db:"claim_session"`
	Key       sql.NullString `db:"claim_key"`
	Name      sql.NullString `db:"claim_name"`
	ExpiresMS sql.NullInt64  `db:"claim_expires_ms"`
}

// Held reports whether the lease is live at now.
func (c ClaimState) Held(now time.Time) bool {
	return c.Session.Valid && c.ExpiresMS.Valid && c.ExpiresMS.Int64 > now.UnixMilli()
}

// Expires is when the lease lapses.
func (c ClaimState) Expires() time.Time { return time.UnixMilli(c.ExpiresMS.Int64).UTC() }

// ReadClaim reads a sale's lease.
func ReadClaim(ctx context.Context, q sqlx.QueryerContext, physkey string) (ClaimState, error) {
	var c ClaimState
	err := sqlx.GetContext(ctx, q, &c, `SELECT claim_session, claim_key, claim_name, claim_expires_ms FROM sales WHERE physkey = ?`, physkey)
	if err != nil {
		return c, fmt.Errorf("read claim of %s: %w", physkey, err)
	}
	return c, nil
}

// RenewClaim pushes the lease of a live claim held by session out to
// now+lease. It reports false when the session no longer holds a live claim.
func RenewClaim(ctx context.Context, tx *Tx, physkey, session string, now time.Time, lease time.Duration) (bool, error) {
	res, err := tx.ExecContext(ctx, qRenewClaim, now.Add(lease).UnixMilli(), physkey, session, now.UnixMilli())
	if err != nil {
		return false, fmt.Errorf("renew claim of %s: %w", physkey, err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// ClearClaim drops a sale's lease (on release, completion or void).
func ClearClaim(ctx context.Context, tx *Tx, physkey string) error {
	_, err := tx.ExecContext(ctx, qClearClaim, physkey)
	if err != nil {
		return fmt.Errorf("clear claim of %s: %w", physkey, err)
	}
	return nil
}

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

// Journal appends an event in tx and returns its lane-wide sequence number.
func Journal(ctx context.Context, tx *Tx, now time.Time, family, event, physkey, actor string, detail any) (int64, error) {
	body := []byte("{}")
	if detail != nil {
		var err error
		if body, err = json.Marshal(detail); err != nil {
			return 0, fmt.Errorf("journal detail: %w", err)
		}
	}
	res, err := tx.ExecContext(ctx, qJournal, now.UTC().Format(DateTime), family, event, physkey, actor, string(body))
	if err != nil {
		return 0, fmt.Errorf("journal %s.%s: %w", family, event, err)
	}
	return res.LastInsertId()
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

// Statements, prepared once when the DB opens.
var (
	qRenewClaim = stmt(`UPDATE sales SET claim_expires_ms = ?
		WHERE physkey = ? AND claim_session = ? AND claim_expires_ms > ?`)
	qClearClaim = stmt(`UPDATE sales SET claim_session = NULL, claim_key = NULL, claim_name = NULL,
		claim_expires_ms = NULL WHERE physkey = ?`)
	qJournal = stmt(`INSERT INTO journal (at_utc, family, event, physkey, actor, detail) VALUES (?, ?, ?, ?, ?, ?)`)
)

// MoveClaim hands a live claim from one session to another (a device that
// reconnected and retried). It reports false when from no longer holds a
// live claim on the presell.
func MoveClaim(ctx context.Context, tx *Tx, physkey, from, to string, now time.Time) (bool, error) {
	res, err := tx.ExecContext(ctx, qMoveClaim, to, physkey, from, now.UnixMilli())
	if err != nil {
		return false, fmt.Errorf("move claim of %s: %w", physkey, err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

var qMoveClaim = stmt(`UPDATE sales SET claim_session = ? WHERE physkey = ? AND claim_session = ? AND claim_expires_ms > ?`)

// MoveSession re-labels a key's idempotency records from an old session to
// a new one, after the new one took over the old one's claims: a later
// retry, from yet another connection, then finds the session that holds
// them.
func MoveSession(ctx context.Context, tx *Tx, keyID, from, to string) error {
	if _, err := tx.ExecContext(ctx, qMoveSession, to, keyID, from); err != nil {
		return fmt.Errorf("move idempotency session: %w", err)
	}
	return nil
}

var qMoveSession = stmt(`UPDATE idempotency SET session = ? WHERE key_id = ? AND session = ?`)

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

var (
	qJournalAfter = stmt(`SELECT seq, at_utc, family, event, physkey, actor, detail FROM journal
		WHERE seq > ? ORDER BY seq LIMIT ?`)
	qJournalBounds = stmt(`SELECT COALESCE(MIN(seq), 0), COALESCE(MAX(seq), 0) FROM journal`)
	qTrimJournal   = stmt(`DELETE FROM journal WHERE seq IN (SELECT seq FROM journal
		WHERE seq <= (SELECT MAX(seq) FROM journal) - ? ORDER BY seq LIMIT ?)`)
)
