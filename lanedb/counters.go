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
func AllocateTicket(ctx context.Context, tx *sqlx.Tx) (int64, error) {
	var next int64
	err := tx.GetContext(ctx, &next, `SELECT value FROM lane_counters WHERE name = 'ticket_next'`)
	if errors.Is(err, sql.ErrNoRows) {
		next = 1
	} else if err != nil {
		return 0, fmt.Errorf("read ticket counter: %w", err)
	}
	for tries := 0; tries < MaxTicket; tries++ {
		if next < 1 || next > MaxTicket {
			next = 1
		}
		var held int
		if err := tx.GetContext(ctx, &held, `SELECT EXISTS (SELECT 1 FROM sales WHERE ticket = ? AND phase IN (0, 5))`, next); err != nil {
			return 0, fmt.Errorf("check ticket %d: %w", next, err)
		}
		if held == 0 {
			_, err := tx.ExecContext(ctx, `INSERT INTO lane_counters (name, value) VALUES ('ticket_next', ?)
				ON CONFLICT (name) DO UPDATE SET value = excluded.value`, next+1)
			if err != nil {
				return 0, fmt.Errorf("advance ticket counter: %w", err)
			}
			return next, nil
		}
		next++
	}
	return 0, ErrNoFreeTicket
}

// Idempotent is a stored reply to a request that carried an ik.
type Idempotent struct {
	IK          string `db:"ik"`
	KeyID       string `db:"key_id"`
	Endpoint    string `db:"endpoint"`
	RequestHash []byte `db:"request_hash"`
	Reply       []byte `db:"reply"`
}

// GetIdempotent reads the record for ik, or nil when there is none.
func GetIdempotent(ctx context.Context, q sqlx.QueryerContext, ik string) (*Idempotent, error) {
	var rec Idempotent
	err := sqlx.GetContext(ctx, q, &rec, `SELECT ik, key_id, endpoint, request_hash, reply FROM idempotency WHERE ik = ?`, ik)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read ik %s: %w", ik, err)
	}
	return &rec, nil
}

// PutIdempotent stores the reply for ik in the request's transaction.
func PutIdempotent(ctx context.Context, tx *sqlx.Tx, rec *Idempotent, now time.Time) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO idempotency (ik, key_id, endpoint, request_hash, reply, created_utc)
		VALUES (?, ?, ?, ?, ?, ?)`, rec.IK, rec.KeyID, rec.Endpoint, rec.RequestHash, rec.Reply, now.UTC().Format(DateTime))
	if err != nil {
		return fmt.Errorf("store ik %s: %w", rec.IK, err)
	}
	return nil
}
