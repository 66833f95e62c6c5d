package lanedb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
)

// MaxTicket is the largest presell ticket number; tickets run 1…MaxTicket
// and wrap, skipping those held by open presells.
const MaxTicket = 9999

// ErrNoFreeTicket is returned when every ticket is held by an open presell.
var ErrNoFreeTicket = errors.New("every presell ticket number is in use")

// AllocateTicket takes the next ticket number not held by an open presell.
// Tickets go round in order, so a number is reused as late as possible.
func AllocateTicket(ctx context.Context, tx *Tx) (int64, error) {
	var next int64
	err := tx.GetContext(ctx, &next, qTicketNext)
	switch {
	case errors.Is(err, sql.ErrNoRows): // the lane's first presell
		next = 1
	case err != nil:
		return 0, fmt.Errorf("read ticket counter: %w", err)
	case next < 1 || next > MaxTicket:
		next = 1
	}
	ticket, ok, err := firstFreeTicket(ctx, tx, next, MaxTicket)
	if err == nil && !ok && next > 1 {
		ticket, ok, err = firstFreeTicket(ctx, tx, 1, next-1)
	}
	if err != nil {
		return 0, err
	}
	if !ok {
		return 0, ErrNoFreeTicket
	}
	if _, err := tx.ExecContext(ctx, qSetTicketNext, ticket+1); err != nil {
		return 0, fmt.Errorf("advance ticket counter: %w", err)
	}
	return ticket, nil
}

// firstFreeTicket walks the held tickets in [from, to] in index order and
// stops at the first gap: usually after one row.
func firstFreeTicket(ctx context.Context, tx *Tx, from, to int64) (int64, bool, error) {
	rows, err := tx.QueryxContext(ctx, qHeldTickets, from, to)
	if err != nil {
		return 0, false, fmt.Errorf("find a free ticket: %w", err)
	}
	defer rows.Close()
	candidate := from
	for rows.Next() {
		var held int64
		if err := rows.Scan(&held); err != nil {
			return 0, false, fmt.Errorf("find a free ticket: %w", err)
		}
		if held > candidate {
			break
		}
		candidate = held + 1
	}
	if err := rows.Err(); err != nil {
		return 0, false, fmt.Errorf("find a free ticket: %w", err)
	}
	return candidate, candidate <= to, nil
}

// Idempotent is a stored reply to a request that carried an ik.
type Idempotent struct {
	IK          string `db:"ik"`
	KeyID       string `db:"key_id"`
	Endpoint    string `db:"endpoint"`
	RequestHash []byte `db:"request_hash"`
	Reply       []byte `db:"reply"`
	Session     string `db:"session"`
}

// GetIdempotent reads the API key's record for ik, or nil when there is
// none: an ik is each key's own (migration 0008).
func GetIdempotent(ctx context.Context, q sqlx.QueryerContext, keyID, ik string) (*Idempotent, error) {
	var rec Idempotent
	err := sqlx.GetContext(ctx, q, &rec, qGetIdempotent, keyID, ik)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read ik %s: %w", ik, err)
	}
	return &rec, nil
}

// PutIdempotent stores the reply for ik in the request's transaction. It
// reports false, storing nothing, when the key already has a record for
// ik: the unique pair, not a read before, is what keeps a change to once
// (a read costs every change a statement; a taken ik is a rare retry).
func PutIdempotent(ctx context.Context, tx *Tx, rec *Idempotent, now time.Time) (stored bool, err error) {
	res, err := tx.ExecContext(ctx, qPutIdempotent, rec.IK, rec.KeyID, rec.Endpoint, rec.RequestHash, rec.Reply, now.UTC().Format(DateTime), rec.Session)
	if err != nil {
		return false, fmt.Errorf("store ik %s: %w", rec.IK, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("store ik %s: %w", rec.IK, err)
	}
	return n == 1, nil
}

// Statements, prepared once when the DB opens.
var (
	qTicketNext = stmt(`SELECT value FROM lane_counters WHERE name = 'ticket_next'`)
	// The terms after BETWEEN repeat the partial index's WHERE, which lets
	// SQLite walk that small index in ticket order (INDEXED BY: the planner
	// would otherwise pick sales_phase and sort).
	qHeldTickets = stmt(`SELECT ticket FROM sales INDEXED BY sales_open_ticket
		WHERE ticket BETWEEN ? AND ? AND ticket IS NOT NULL AND phase IN (0, 5) ORDER BY ticket`)
	qSetTicketNext = follow(stmt(`INSERT INTO lane_counters (name, value) VALUES ('ticket_next', ?)
				ON CONFLICT (name) DO UPDATE SET value = excluded.value`))
	qGetIdempotent = stmt(`SELECT ik, key_id, endpoint, request_hash, reply, session FROM idempotency WHERE key_id = ? AND ik = ?`)
	qPutIdempotent = follow(stmt(`INSERT INTO idempotency (ik, key_id, endpoint, request_hash, reply, created_utc, session)
		VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (ik, key_id) DO NOTHING`))
)

// TrimIdempotency deletes idempotency records created before cutoff, at
// most batch of them, and reports how many it deleted. A retry that comes
// later than the retention is treated as a new request.
func TrimIdempotency(ctx context.Context, tx *Tx, cutoff time.Time, batch int) (int64, error) {
	res, err := tx.ExecContext(ctx, qTrimIdempotency, cutoff.UTC().Format(DateTime), batch)
	if err != nil {
		return 0, fmt.Errorf("trim idempotency records: %w", err)
	}
	return res.RowsAffected()
}

// TrimIdempotencyPerKey deletes, of each API key's idempotency records,
// those past its keep newest, at most batch of them, and reports how many
// it deleted. A retry repeats one of a device's last few changes, never
// one thousands back; without the bound, one key's requests each stored a
// reply (a whole sale, up to 92 KB) for the whole retention, and filled
// the disk.
func TrimIdempotencyPerKey(ctx context.Context, tx *Tx, keep, batch int) (int64, error) {
	res, err := tx.ExecContext(ctx, qTrimIdempotencyPerKey, keep, batch)
	if err != nil {
		return 0, fmt.Errorf("trim idempotency records per key: %w", err)
	}
	return res.RowsAffected()
}

// An ik is each key's own (migration 0008): rows are named by both.
var (
	qTrimIdempotency = follow(stmt(`DELETE FROM idempotency WHERE (key_id, ik) IN
	(SELECT key_id, ik FROM idempotency WHERE created_utc < ? ORDER BY created_utc LIMIT ?)`))
	qTrimIdempotencyPerKey = follow(stmt(`DELETE FROM idempotency WHERE (key_id, ik) IN
	(SELECT key_id, ik FROM (SELECT key_id, ik, ROW_NUMBER() OVER (PARTITION BY key_id ORDER BY created_utc DESC, ik DESC) AS n
		FROM idempotency) ranked WHERE n > ? LIMIT ?)`))
)
