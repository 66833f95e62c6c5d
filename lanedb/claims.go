package lanedb

import (
	"context"
	"database/sql"
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
var qClaim = follow(named(`UPDATE sales SET phase = 0,
	claim_session = :session, claim_key = :key_id, claim_name = :key_name, claim_expires_ms = :expires_ms,
	claim_lease_ms = :lease_ms, holder_key = :key_id, holder_name = :key_name, updated_utc = :stamp, version = version + 1
WHERE physkey = :physkey AND presell = 1 AND version = :version
  AND (phase = 5
       OR (phase = 0 AND claim_session IS NOT NULL
           AND (claim_expires_ms <= :now_ms OR claim_session = :session OR :force = 1)))`))

type claimArgs struct {
	Session   string `db:"session"`
	KeyID     string `db:"key_id"`
	KeyName   string `db:"key_name"`
	ExpiresMS int64  `db:"expires_ms"`
	LeaseMS   int64  `db:"lease_ms"`
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
		ExpiresMS: c.Now.Add(c.Lease).UnixMilli(), LeaseMS: c.Lease.Milliseconds(), NowMS: c.Now.UnixMilli(),
		Stamp: c.Stamp, Physkey: c.Physkey, Version: c.Version, Force: force,
	})
	if err != nil {
		return false, fmt.Errorf("claim presell %s: %w", c.Physkey, err)
	}
	tx.forget(c.Physkey)
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
	// LeaseMS is the lease the claim was given (by its holder's lane);
	// NULL for a claim written without it.
	LeaseMS sql.NullInt64 `db:"claim_lease_ms"`
}

// Lease is the lease the claim was given, or fallback (the judging lane's
// own) when it was written without one.
func (c ClaimState) Lease(fallback time.Duration) time.Duration {
	if c.LeaseMS.Valid && c.LeaseMS.Int64 > 0 {
		return time.Duration(c.LeaseMS.Int64) * time.Millisecond
	}
	return fallback
}

// Held reports whether the lease is live at now. Capping the expiry at
// now+lease (Until) never changes the answer, so this and every query that
// compares claim_expires_ms with now hold for capped claims as they are.
func (c ClaimState) Held(now time.Time) bool {
	return c.Session.Valid && c.ExpiresMS.Valid && c.ExpiresMS.Int64 > now.UnixMilli()
}

// Expires is when the lease lapses, as stored.
func (c ClaimState) Expires() time.Time { return time.UnixMilli(c.ExpiresMS.Int64).UTC() }

// Until is when the lease lapses, judged at now: no later than now plus the
// claim's own lease (lease when it has none recorded). A claim stamped
// while the clock read later than it does now (a clock stepped back) would
// otherwise outlast its lease by the step; CapClaims makes the cap stick.
func (c ClaimState) Until(now time.Time, lease time.Duration) time.Time {
	if limit := now.Add(c.Lease(lease)).Truncate(time.Millisecond).UTC(); c.Expires().After(limit) {
		return limit
	}
	return c.Expires()
}

// ReadClaim reads a sale's lease.
func ReadClaim(ctx context.Context, q sqlx.QueryerContext, physkey string) (ClaimState, error) {
	var c ClaimState
	err := sqlx.GetContext(ctx, q, &c, `SELECT claim_session, claim_key, claim_name, claim_expires_ms, claim_lease_ms FROM sales WHERE physkey = ?`, physkey)
	if err != nil {
		return c, fmt.Errorf("read claim of %s: %w", physkey, err)
	}
	return c, nil
}

// RenewClaim pushes the lease of a live claim held by session out to
// now+lease, and records lease as the claim's. It reports false when the
// session no longer holds a live claim.
func RenewClaim(ctx context.Context, tx *Tx, physkey, session string, now time.Time, lease time.Duration) (bool, error) {
	res, err := tx.ExecContext(ctx, qRenewClaim, now.Add(lease).UnixMilli(), lease.Milliseconds(), physkey, session, now.UnixMilli())
	if err != nil {
		return false, fmt.Errorf("renew claim of %s: %w", physkey, err)
	}
	tx.forget(physkey)
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// ClearClaim drops a sale's lease (on release, completion or void).
func ClearClaim(ctx context.Context, tx *Tx, physkey string) error {
	_, err := tx.ExecContext(ctx, qClearClaim, physkey)
	if err != nil {
		return fmt.Errorf("clear claim of %s: %w", physkey, err)
	}
	tx.forget(physkey)
	return nil
}

// Statements, prepared once when the DB opens.
var (
	qRenewClaim = follow(stmt(`UPDATE sales SET claim_expires_ms = ?, claim_lease_ms = ?
		WHERE physkey = ? AND claim_session = ? AND claim_expires_ms > ?`))
	qClearClaim = follow(stmt(`UPDATE sales SET claim_session = NULL, claim_key = NULL, claim_name = NULL,
		claim_expires_ms = NULL, claim_lease_ms = NULL WHERE physkey = ?`))
)

// CapClaims cuts every claim on an open presell that lapses more than
// slack later than now plus its own lease (lease, this lane's, for one
// written without it), and reports how many it cut: a claim never has more
// of its lease left than the whole lease. One stamped while a clock read
// later than this lane's does now (this lane's clock set back, or a lane
// restarted with an earlier clock) would otherwise be held that much
// longer, with its holder's socket long gone. Each claim is judged by the
// lease its holder was promised, so a lane with a shorter lease leaves the
// others' live claims whole; slack covers how far apart the lanes' clocks
// may be. A claim found so is cut to now plus the shorter of its lease and
// lease: how long it really has left is unknown, and this lane's setting
// is the one in force here now.
func CapClaims(ctx context.Context, tx *Tx, now time.Time, lease, slack time.Duration) (int, error) {
	nowMS, leaseMS := now.UnixMilli(), lease.Milliseconds()
	var beyond []struct {
		Physkey string        `db:"physkey"`
		LeaseMS sql.NullInt64 `db:"claim_lease_ms"`
	}
	if err := sqlx.SelectContext(ctx, tx, &beyond, qClaimsBeyond, nowMS+slack.Milliseconds(), leaseMS); err != nil {
		return 0, fmt.Errorf("find claims beyond their lease: %w", err)
	}
	for _, c := range beyond {
		limit := nowMS + leaseMS
		if c.LeaseMS.Valid && c.LeaseMS.Int64 > 0 && c.LeaseMS.Int64 < leaseMS {
			limit = nowMS + c.LeaseMS.Int64
		}
		if _, err := tx.ExecContext(ctx, qCapClaim, limit, c.Physkey, limit); err != nil {
			return 0, fmt.Errorf("cap the claim on %s: %w", c.Physkey, err)
		}
		tx.forget(c.Physkey)
	}
	return len(beyond), nil
}

// Statements, prepared once when the DB opens. The search walks only the
// partial index of open presells.
var (
	qClaimsBeyond = stmt(`SELECT physkey, claim_lease_ms FROM sales INDEXED BY sales_open_presells
		WHERE presell = 1 AND phase IN (0, 5) AND claim_expires_ms > ? + COALESCE(claim_lease_ms, ?)`)
	qCapClaim = follow(stmt(`UPDATE sales SET claim_expires_ms = ? WHERE physkey = ? AND claim_expires_ms > ?`))
)

// MoveClaim hands a live claim from one session to another (a device that
// reconnected and retried). It reports false when from no longer holds a
// live claim on the presell.
func MoveClaim(ctx context.Context, tx *Tx, physkey, from, to string, now time.Time) (bool, error) {
	res, err := tx.ExecContext(ctx, qMoveClaim, to, physkey, from, now.UnixMilli())
	if err != nil {
		return false, fmt.Errorf("move claim of %s: %w", physkey, err)
	}
	tx.forget(physkey)
	n, _ := res.RowsAffected()
	return n == 1, nil
}

var qMoveClaim = follow(stmt(`UPDATE sales SET claim_session = ? WHERE physkey = ? AND claim_session = ? AND claim_expires_ms > ?`))

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

var qMoveSession = follow(stmt(`UPDATE idempotency SET session = ? WHERE key_id = ? AND session = ?`))
