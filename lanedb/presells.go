package lanedb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
)

// ReleaseClaim gives a claimed presell back to the counter's queue (phase
// 5, no claim) if session still holds a live claim on it.
func ReleaseClaim(ctx context.Context, tx *Tx, physkey, session string, now time.Time, stamp string) (bool, error) {
	res, err := tx.ExecContext(ctx, qReleaseClaim, stamp, physkey, session, now.UnixMilli())
	if err != nil {
		return false, fmt.Errorf("release presell %s: %w", physkey, err)
	}
	tx.forget(physkey)
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// OpenPresell is a row of the counter's presell list.
type OpenPresell struct {
	Physkey        string         `db:"physkey"`
	Phase          int            `db:"phase"`
	Ticket         sql.NullInt64  `db:"ticket"`
	TicketWord     sql.NullString `db:"ticket_word"`
	TicketBarcode  sql.NullString `db:"ticket_barcode"`
	CID            sql.NullInt64  `db:"cid"`
	Customer       sql.NullString `db:"customer"`
	SaleTotalCents int64          `db:"saletotal_cents"`
	PaidCents      int64          `db:"paid_cents"` // payments not reversed; with PresellFilter.Paid only
	Lines          int64          `db:"lines"`
	SubmittedUTC   string         `db:"submitted_utc"`
	Tablet         string         `db:"created_by"`
	ClaimState
}

// PresellFilter narrows the presell list. Zero fields do not filter.
type PresellFilter struct {
	Conds    []Cond    // on ticket, tablet, submitted_utc (see presellExprs)
	Customer string    // part of the customer's name, in any case
	ClaimKey string    // only presells this key holds a live claim on
	Now      time.Time // for ClaimKey: claims live at this time
	Limit    int
	// Paid also reads what each presell has been paid: a seek into the
	// payments per row, asked for by the command line's list and the
	// counter page; get_presells leaves it out unless asked.
	Paid bool
	// Oldest lists the earliest submitted first (the default is newest
	// first).
	Oldest bool
}

// presellExprs are the columns the presell list filters on.
var presellExprs = map[string]string{
	"ticket":        "s.ticket",
	"tablet":        "s.created_by",
	"submitted_utc": "s.submitted_utc",
	"claim_key":     "s.claim_key",
}

// OpenPresells lists submitted presells that are not completed or void,
// newest first. It walks the partial index of open presells, so a lane
// with a million historic sales answers as fast as an empty one.
func OpenPresells(ctx context.Context, q sqlx.QueryerContext, f PresellFilter) ([]OpenPresell, bool, error) {
	clause, args, err := where(f.Conds, presellExprs)
	if err != nil {
		return nil, false, err
	}
	conds := []string{"s.presell = 1", "s.phase IN (0, 5)", "s.submitted_utc IS NOT NULL"}
	if clause != "" {
		conds = append(conds, strings.TrimPrefix(clause, "WHERE "))
	}
	if f.ClaimKey != "" {
		conds = append(conds, "s.claim_key = ?", "s.claim_expires_ms > ?")
		args = append(args, f.ClaimKey, f.Now.UnixMilli())
	}
	// The customer filter folds case in Go (SQLite's LIKE folds ASCII
	// only): the open presells are few, so they are read whole then.
	limit := int64(f.Limit) + 1
	if f.Customer != "" {
		limit = math.MaxInt64 // no limit: PostgreSQL refuses SQLite's -1
	}
	paid := "0"
	if f.Paid {
		paid = paidCentsOf("s")
	}
	order := "DESC"
	if f.Oldest {
		order = "ASC"
	}
	query := `SELECT s.physkey, s.phase, s.ticket, s.ticket_word, s.ticket_barcode, s.cid, c.name AS customer,
		s.saletotal_cents, ` + paid + ` AS paid_cents,
		(SELECT COUNT(*) FROM sale_lines l WHERE l.sale_physkey = s.physkey) AS lines,
		s.submitted_utc, s.created_by, s.claim_session, s.claim_key, s.claim_name, s.claim_expires_ms
		FROM sales s INDEXED BY sales_open_presells LEFT JOIN customers c ON c.cid = s.cid
		WHERE ` + strings.Join(conds, " AND ") + ` ORDER BY s.submitted_utc ` + order + `, s.physkey ` + order + ` LIMIT ?`
	args = append(args, limit)
	var rows []OpenPresell
	if err := sqlx.SelectContext(ctx, q, &rows, query, args...); err != nil {
		return nil, false, fmt.Errorf("list open presells: %w", err)
	}
	if f.Customer != "" {
		rows = byCustomer(rows, f.Customer)
	}
	more := len(rows) > f.Limit
	if more {
		rows = rows[:f.Limit]
	}
	return rows, more, nil
}

// byCustomer keeps the presells whose customer's name contains part, in
// any case (Unicode: "ZOË" finds "Zoë").
func byCustomer(rows []OpenPresell, part string) []OpenPresell {
	want := strings.ToLower(part)
	kept := rows[:0]
	for _, r := range rows {
		if r.Customer.Valid && strings.Contains(strings.ToLower(r.Customer.String), want) {
			kept = append(kept, r)
		}
	}
	return kept
}

// ErrNoPresell is returned when no presell matches.
var ErrNoPresell = errors.New("no such presell")

// OpenPresellBy finds an open presell (phase 0 or 5) by its ticket or its
// ticket barcode.
func OpenPresellBy(ctx context.Context, q sqlx.QueryerContext, ticket int64, barcode string) (string, error) {
	var physkey string
	var err error
	if barcode != "" {
		err = sqlx.GetContext(ctx, q, &physkey, qOpenPresellByBarcode, barcode)
	} else {
		err = sqlx.GetContext(ctx, q, &physkey, qOpenPresellByTicket, ticket)
	}
	if errors.Is(err, sql.ErrNoRows) {
		return "", ErrNoPresell
	}
	if err != nil {
		return "", fmt.Errorf("find presell: %w", err)
	}
	return physkey, nil
}

// LastClosedPresell is the most recent completed or void presell that had
// a ticket or barcode, for saying why a recall found nothing open.
func LastClosedPresell(ctx context.Context, q sqlx.QueryerContext, ticket int64, barcode string) (*Sale, error) {
	var s Sale
	var err error
	if barcode != "" {
		err = sqlx.GetContext(ctx, q, &s, `SELECT `+saleColumns+` FROM sales WHERE ticket_barcode = ? AND phase NOT IN (0, 5)
			ORDER BY updated_utc DESC LIMIT 1`, barcode)
	} else {
		err = sqlx.GetContext(ctx, q, &s, `SELECT `+saleColumns+` FROM sales WHERE ticket = ? AND presell = 1 AND phase NOT IN (0, 5)
			ORDER BY updated_utc DESC LIMIT 1`, ticket)
	}
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNoPresell
	}
	if err != nil {
		return nil, fmt.Errorf("find closed presell: %w", err)
	}
	return &s, nil
}

// paidCentsOf is the SQL for what the sale aliased sale has been paid,
// reversed payments left out.
func paidCentsOf(sale string) string {
	return `(SELECT COALESCE(SUM(p.amount_cents), 0) FROM payments p WHERE p.sale_physkey = ` + sale +
		`.physkey AND p.payflags & ` + payFlagReversedSQL + ` = 0)`
}

// MoneyHeld is an open presell that holds payments.
type MoneyHeld struct {
	Physkey   string        `db:"physkey"`
	Ticket    sql.NullInt64 `db:"ticket"`
	PaidCents int64         `db:"paid_cents"`
}

// AbandonedHoldingMoney lists the open presells that AbandonedPresells
// leaves out only because they hold payments: someone must give the money
// back (or take the rest) before they can go.
func AbandonedHoldingMoney(ctx context.Context, q sqlx.QueryerContext, cutoff, now time.Time) ([]MoneyHeld, error) {
	var out []MoneyHeld
	if err := sqlx.SelectContext(ctx, q, &out, qAbandonedHoldingMoney, cutoff.UTC().Format(StampLayout), now.UnixMilli()); err != nil {
		return nil, fmt.Errorf("find abandoned presells holding money: %w", err)
	}
	return out, nil
}

// AbandonedPresells lists open presells not changed since before cutoff
// and not under a live claim at now: what the sweeper voids. A presell
// holding a payment is never abandoned: voiding it would orphan the money.
func AbandonedPresells(ctx context.Context, q sqlx.QueryerContext, cutoff, now time.Time, limit int) ([]Sale, error) {
	var out []Sale
	err := sqlx.SelectContext(ctx, q, &out, qAbandonedPresells, cutoff.UTC().Format(StampLayout), now.UnixMilli(), limit)
	if err != nil {
		return nil, fmt.Errorf("find abandoned presells: %w", err)
	}
	return out, nil
}

// OpenPresellCount is how many open presells (phase 0 or 5) the key
// named createdBy made.
func OpenPresellCount(ctx context.Context, q sqlx.QueryerContext, createdBy string) (int, error) {
	var n int
	if err := sqlx.GetContext(ctx, q, &n, qOpenPresellCount, createdBy); err != nil {
		return 0, fmt.Errorf("count open presells of %q: %w", createdBy, err)
	}
	return n, nil
}

// Statements, prepared once when the DB opens.
var (
	// Walks only this key's entries of the partial index of open presells
	// by creator (at most MaxOpenPresells), never the sales history.
	qOpenPresellCount = stmt(`SELECT COUNT(*) FROM sales INDEXED BY sales_open_presells_creator
		WHERE presell = 1 AND phase IN (0, 5) AND created_by = ?`)
	qReleaseClaim = follow(stmt(`UPDATE sales SET phase = 5, claim_session = NULL, claim_key = NULL, claim_name = NULL,
		claim_expires_ms = NULL, claim_lease_ms = NULL, holder_key = '', holder_name = '', updated_utc = ?, version = version + 1
		WHERE physkey = ? AND claim_session = ? AND claim_expires_ms > ?`))
	qOpenPresellByTicket = stmt(`SELECT physkey FROM sales INDEXED BY sales_open_ticket
		WHERE ticket = ? AND ticket IS NOT NULL AND phase IN (0, 5)`)
	qOpenPresellByBarcode = stmt(`SELECT physkey FROM sales INDEXED BY sales_open_ticket_barcode
		WHERE ticket_barcode = ? AND ticket_barcode IS NOT NULL AND phase IN (0, 5)`)
	// Open presells untouched since the cutoff: submitted and never
	// collected, left by a counter (lapsed claim), or never submitted.
	qAbandonedPresells = stmt(`SELECT ` + saleColumns + ` FROM sales INDEXED BY sales_open_presells
		WHERE presell = 1 AND phase IN (0, 5) AND updated_utc < ?
		  AND (claim_expires_ms IS NULL OR claim_expires_ms <= ?)
		  AND NOT EXISTS (SELECT 1 FROM payments p WHERE p.sale_physkey = sales.physkey
		                  AND p.payflags & ` + payFlagReversedSQL + ` = 0)
		ORDER BY updated_utc LIMIT ?`)
	qAbandonedHoldingMoney = stmt(`SELECT s.physkey, s.ticket, ` + paidCentsOf("s") + ` AS paid_cents
		FROM sales s INDEXED BY sales_open_presells
		WHERE s.presell = 1 AND s.phase IN (0, 5) AND s.updated_utc < ?
		  AND (s.claim_expires_ms IS NULL OR s.claim_expires_ms <= ?)
		  AND EXISTS (SELECT 1 FROM payments p WHERE p.sale_physkey = s.physkey
		              AND p.payflags & ` + payFlagReversedSQL + ` = 0)
		ORDER BY s.updated_utc`)
)
