package lanedb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/jmoiron/sqlx"
)

// Sale phases (SPEC §7.4).
const (
	PhaseActive    = 0
	PhaseCompleted = 1
	PhaseParked    = 5
	PhaseVoid      = 10000
)

// Sale is a row of sales.
type Sale struct {
	Physkey        string         `db:"physkey"`
	RandomKey      string         `db:"random_key"`
	SID            sql.NullInt64  `db:"sid"`
	Phase          int            `db:"phase"`
	StartDT        string         `db:"startdt"`
	CompletedDT    sql.NullString `db:"completeddt"`
	CompletedDTUTC sql.NullString `db:"completeddtutc"`
	SaleTotalCents int64          `db:"saletotal_cents"`
	Teller         sql.NullInt64  `db:"teller"`
	CID            sql.NullInt64  `db:"cid"`
	Location       sql.NullInt64  `db:"location"`
	CreatedBy      string         `db:"created_by"`
	HolderKey      string         `db:"holder_key"`
	HolderName     string         `db:"holder_name"`
	Presell        bool           `db:"presell"`
	Ticket         sql.NullInt64  `db:"ticket"`
	TicketWord     sql.NullString `db:"ticket_word"`
	TicketBarcode  sql.NullString `db:"ticket_barcode"`
	SubmittedUTC   sql.NullString `db:"submitted_utc"`
	VoidedUTC      sql.NullString `db:"voided_utc"`
	VoidedBy       sql.NullString `db:"voided_by"`
	NextSeqnce     int64          `db:"next_seqnce"`
	UpdatedUTC     string         `db:"updated_utc"`
	Version        int64          `db:"version"`
	ClaimState                    // the counter's lease; written only by the claim functions

	// read is the row as GetSale read it (or as UpdateSale last wrote
	// it): UpdateSale compares with it to write only what changed.
	read *Sale
}

// remember keeps s as read.
func (s *Sale) remember() {
	row := *s
	row.read = nil
	s.read = &row
}

// totalsOnly reports whether s differs from the row as read at most in
// the columns a change of lines or payments writes: the total, the next
// seqnce, the stamp and the claim's lease. No index covers those (since
// migration 0007 not even the holder's), so such an update leaves every
// index of sales alone; SQLite rewrites the entries of each index that a
// column in SET belongs to (or that a partial index's WHERE reads),
// changed or not.
func (s *Sale) totalsOnly() bool {
	if s.read == nil {
		return false
	}
	a, b := *s, *s.read
	a.read = nil
	a.SaleTotalCents, a.NextSeqnce, a.UpdatedUTC = b.SaleTotalCents, b.NextSeqnce, b.UpdatedUTC
	a.ClaimState.ExpiresMS, a.ClaimState.LeaseMS = b.ClaimState.ExpiresMS, b.ClaimState.LeaseMS
	return a == b
}

// saleIndexed lists the columns of sales that UpdateSale may change and
// that an index covers (or a partial index's WHERE reads), each with its
// value in a Sale. SQLite rewrites an index's entries for every column of
// it named in SET, changed or not: phase alone is in five of the seven.
// So UpdateSale names only those that changed since the row was read
// (qUpdateSaleNaming); setting a customer then rewrites sales_cid alone.
var saleIndexed = [...]struct {
	column string
	value  func(*Sale) any
}{
	{"phase", func(s *Sale) any { return s.Phase }},
	{"cid", func(s *Sale) any { return s.CID }},
	{"holder_key", func(s *Sale) any { return s.HolderKey }},
	{"ticket", func(s *Sale) any { return s.Ticket }},
	{"ticket_barcode", func(s *Sale) any { return s.TicketBarcode }},
	{"submitted_utc", func(s *Sale) any { return s.SubmittedUTC }},
}

// qUpdateSaleNaming holds, for each set of saleIndexed columns (bit i for
// saleIndexed[i]), the UPDATE that writes every unindexed column and those.
// All are registered, so each runs prepared.
var qUpdateSaleNaming = func() (q [1 << len(saleIndexed)]string) {
	for mask := range q {
		set := "sid = ?, completeddt = ?, completeddtutc = ?, saletotal_cents = ?, teller = ?, holder_name = ?,\n" +
			"\tticket_word = ?, voided_utc = ?, voided_by = ?, next_seqnce = ?, updated_utc = ?,\n" +
			"\tclaim_expires_ms = ?, claim_lease_ms = ?, version = version + 1"
		for i, c := range saleIndexed {
			if mask&(1<<i) != 0 {
				set += ", " + c.column + " = ?"
			}
		}
		q[mask] = follow(stmt("UPDATE sales SET " + set + "\n\tWHERE physkey = ? AND version = ?"))
	}
	return q
}()

// updateStatement returns the UPDATE that writes s over the row as read,
// naming of the indexed columns only those that differ (all of them when
// s was not read), and its arguments.
func (s *Sale) updateStatement() (string, []any) {
	args := []any{s.SID, s.CompletedDT, s.CompletedDTUTC, s.SaleTotalCents, s.Teller, s.HolderName,
		s.TicketWord, s.VoidedUTC, s.VoidedBy, s.NextSeqnce, s.UpdatedUTC,
		s.ClaimState.ExpiresMS, s.ClaimState.LeaseMS}
	mask := 0
	for i, c := range saleIndexed {
		if v := c.value(s); s.read == nil || v != c.value(s.read) {
			mask |= 1 << i
			args = append(args, v)
		}
	}
	return qUpdateSaleNaming[mask], append(args, s.Physkey, s.Version)
}

// saleInsertColumns are written by InsertSale; saleColumns are read.
const saleInsertColumns = `physkey, random_key, sid, phase, startdt, completeddt, completeddtutc, saletotal_cents,
	teller, cid, location, created_by, holder_key, holder_name, presell, ticket, ticket_word, ticket_barcode,
	submitted_utc, voided_utc, voided_by, next_seqnce, updated_utc, version`

const saleColumns = saleInsertColumns + `, claim_session, claim_key, claim_name, claim_expires_ms, claim_lease_ms`

// ErrNoSale is returned when no sale has the physkey.
var ErrNoSale = errors.New("no such sale")

// GetSale reads one sale.
func GetSale(ctx context.Context, q sqlx.QueryerContext, physkey string) (*Sale, error) {
	t := caching(q)
	if t != nil {
		if s, ok := t.cachedSale(physkey); ok {
			s.remember()
			return s, nil
		}
	}
	var s Sale
	err := sqlx.GetContext(ctx, q, &s, qGetSale, physkey)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNoSale
	}
	if err != nil {
		return nil, fmt.Errorf("read sale %s: %w", physkey, err)
	}
	if t != nil {
		t.fillSale(&s)
	}
	s.remember()
	return &s, nil
}

// TopSale is the holder's most recently changed active sale ("" if none).
func TopSale(ctx context.Context, q sqlx.QueryerContext, holderKey string) (string, error) {
	var physkey string
	err := sqlx.GetContext(ctx, q, &physkey, qTopSale, holderKey)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("find top sale: %w", err)
	}
	return physkey, nil
}

// OpenSales lists the holder's active and parked sales, newest change first.
func OpenSales(ctx context.Context, q sqlx.QueryerContext, holderKey string, limit int) ([]Sale, error) {
	var out []Sale
	err := sqlx.SelectContext(ctx, q, &out, qOpenSales, holderKey, limit)
	if err != nil {
		return nil, fmt.Errorf("list open sales: %w", err)
	}
	return out, nil
}

// InsertSale writes a new sale row.
func InsertSale(ctx context.Context, tx *Tx, s *Sale) error {
	_, err := tx.ExecContext(ctx, qInsertSale, s.Physkey, s.RandomKey, s.SID, s.Phase, s.StartDT, s.CompletedDT,
		s.CompletedDTUTC, s.SaleTotalCents, s.Teller, s.CID, s.Location, s.CreatedBy, s.HolderKey, s.HolderName,
		s.Presell, s.Ticket, s.TicketWord, s.TicketBarcode, s.SubmittedUTC, s.VoidedUTC, s.VoidedBy, s.NextSeqnce,
		s.UpdatedUTC, s.Version)
	if err != nil {
		return fmt.Errorf("insert sale %s: %w", s.Physkey, err)
	}
	row := *s
	tx.wrote(s.Physkey, func(e *cachedSale) {
		*e = cachedSale{sale: row, saleOK: true, linesOK: true, paysOK: true} // a new sale has no lines, no payments
	})
	return nil
}

// UpdateSale writes every mutable column of s and bumps its version. It
// fails if the row's version is no longer s.Version (someone else changed
// it, e.g. the counter process).
func UpdateSale(ctx context.Context, tx *Tx, s *Sale) error {
	var res sql.Result
	var err error
	if s.totalsOnly() {
		res, err = tx.ExecContext(ctx, qUpdateSaleTotals, s.SaleTotalCents, s.NextSeqnce, s.UpdatedUTC, s.ClaimState.ExpiresMS,
			s.ClaimState.LeaseMS, s.Physkey, s.Version)
	} else {
		query, args := s.updateStatement()
		res, err = tx.ExecContext(ctx, query, args...)
	}
	if err != nil {
		return fmt.Errorf("update sale %s: %w", s.Physkey, err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return fmt.Errorf("%w: sale %s", ErrStaleSale, s.Physkey)
	}
	s.Version++
	s.remember()
	if !kept(s.Phase) {
		tx.wrote(s.Physkey, nil) // parked or closed: no longer worked on
		return nil
	}
	// The row matched s's version, so it was s as read; now it is s.
	row := *s
	tx.wrote(s.Physkey, func(e *cachedSale) { e.sale, e.saleOK = row, true })
	return nil
}

// ErrStaleSale is returned by UpdateSale when the row changed underneath.
var ErrStaleSale = errors.New("the sale was changed by someone else")

// Line is a row of sale_lines.
type Line struct {
	SalePhyskey           string `db:"sale_physkey"`
	Seqnce                int64  `db:"seqnce"`
	PID                   int64  `db:"pid"`
	PIDFlag               int64  `db:"pidflag"`
	Description           string `db:"description"`
	PLU                   string `db:"plu"`
	Qty                   int64  `db:"qty"`
	UnitPriceCents        int64  `db:"unitprice_cents"`
	PrediscountPriceCents int64  `db:"prediscountprice_cents"`
	TotalPriceCents       int64  `db:"totalprice_cents"`
	PriceCause            int64  `db:"pricecause"`
	PriceCauseData        int64  `db:"pricecausedata"`
	LineSource            int64  `db:"linesource"`
	Measurement           int64  `db:"measurement"` // from products, not stored on the line
}

// SaleLines reads a sale's lines in seqnce order.
func SaleLines(ctx context.Context, q sqlx.QueryerContext, physkey string) ([]Line, error) {
	t := caching(q)
	if t != nil {
		if lines, ok := readPart(t, physkey, (*cachedSale).lineRows); ok {
			return lines, nil
		}
	}
	var out []Line
	err := sqlx.SelectContext(ctx, q, &out, qSaleLines, physkey)
	if err != nil {
		return nil, fmt.Errorf("read lines of %s: %w", physkey, err)
	}
	if t != nil {
		keepPart(t, physkey, out, (*cachedSale).lineRows)
	}
	return out, nil
}

// InsertLine writes a new line.
func InsertLine(ctx context.Context, tx *Tx, l *Line) error {
	_, err := tx.ExecContext(ctx, qInsertLine, l.SalePhyskey, l.Seqnce, l.PID, l.PIDFlag, l.Description, l.PLU, l.Qty,
		l.UnitPriceCents, l.PrediscountPriceCents, l.TotalPriceCents, l.PriceCause, l.PriceCauseData, l.LineSource)
	if err != nil {
		return fmt.Errorf("insert line %d of %s: %w", l.Seqnce, l.SalePhyskey, err)
	}
	tx.wroteLine(*l)
	return nil
}

// UpdateLine writes a line's quantity and prices.
func UpdateLine(ctx context.Context, tx *Tx, l *Line) error {
	_, err := tx.NamedExecContext(ctx, qUpdateLine, l)
	if err != nil {
		return fmt.Errorf("update line %d of %s: %w", l.Seqnce, l.SalePhyskey, err)
	}
	tx.wroteLine(*l)
	return nil
}

// DeleteLine removes a line.
func DeleteLine(ctx context.Context, tx *Tx, physkey string, seqnce int64) error {
	if _, err := tx.ExecContext(ctx, qDeleteLine, physkey, seqnce); err != nil {
		return fmt.Errorf("delete line %d of %s: %w", seqnce, physkey, err)
	}
	tx.wrote(physkey, func(e *cachedSale) {
		e.lines = slices.DeleteFunc(e.lines, func(l Line) bool { return l.Seqnce == seqnce })
	})
	return nil
}

// Payment is a row of payments, with its type's names.
type Payment struct {
	SalePhyskey string `db:"sale_physkey"`
	Sequence    int64  `db:"sequence"`
	Type        int64  `db:"type"`
	GlobalCode  int64  `db:"globalcode"`
	TypeName    string `db:"typestr"`
	AmountCents int64  `db:"amount_cents"`
	DT          string `db:"dt"`
}

// SalePayments reads a sale's payments in sequence order.
func SalePayments(ctx context.Context, q sqlx.QueryerContext, physkey string) ([]Payment, error) {
	t := caching(q)
	if t != nil {
		if pays, ok := readPart(t, physkey, (*cachedSale).paymentRows); ok {
			return pays, nil
		}
	}
	var out []Payment
	err := sqlx.SelectContext(ctx, q, &out, qSalePayments, physkey)
	if err != nil {
		return nil, fmt.Errorf("read payments of %s: %w", physkey, err)
	}
	if t != nil {
		keepPart(t, physkey, out, (*cachedSale).paymentRows)
	}
	return out, nil
}

// wrotePayments records that tx changed a sale's payments: they are read
// afresh (with their type's names) the next time.
func (tx *Tx) wrotePayments(physkey string) {
	tx.wrote(physkey, func(e *cachedSale) { e.payments, e.paysOK = nil, false })
}

// InsertPayment appends a payment; its sequence is the next free one.
func InsertPayment(ctx context.Context, tx *Tx, p *Payment) error {
	err := tx.GetContext(ctx, &p.Sequence, qNextPaymentSeq, p.SalePhyskey)
	if err != nil {
		return fmt.Errorf("next payment sequence: %w", err)
	}
	_, err = tx.ExecContext(ctx, qInsertPayment, p.SalePhyskey, p.Sequence, p.Type, p.AmountCents, p.DT)
	if err != nil {
		return fmt.Errorf("insert payment: %w", err)
	}
	tx.wrotePayments(p.SalePhyskey)
	return nil
}

// PayFlagReversed marks a payment a counter reversed. The row stays (who
// took what, and that it was given back, is audit) but no longer counts:
// the views, the sums and the sweeper skip it, and its sequence is never
// reused. A high bit, clear of the flags the counter software sets.
const PayFlagReversed = 1 << 20

// ErrNoPayment is returned when a sale has no live payment with a sequence.
var ErrNoPayment = errors.New("no such payment")

// ReversePayment marks payment seq of a sale reversed and returns it as it
// was. A payment already reversed, or never taken, is ErrNoPayment.
func ReversePayment(ctx context.Context, tx *Tx, physkey string, seq int64) (*Payment, error) {
	var p Payment
	err := tx.GetContext(ctx, &p, qLivePayment, physkey, seq)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNoPayment
	}
	if err != nil {
		return nil, fmt.Errorf("read payment %d of %s: %w", seq, physkey, err)
	}
	if _, err := tx.ExecContext(ctx, qReversePayment, physkey, seq); err != nil {
		return nil, fmt.Errorf("reverse payment %d of %s: %w", seq, physkey, err)
	}
	tx.wrotePayments(physkey)
	return &p, nil
}

// PaymentReversed reports whether a sale's payment seq exists and was
// reversed: a second reversal of it is told so, not "no such payment".
func PaymentReversed(ctx context.Context, q sqlx.QueryerContext, physkey string, seq int64) (bool, error) {
	var n int64
	if err := sqlx.GetContext(ctx, q, &n, qReversedPayment, physkey, seq); err != nil {
		return false, fmt.Errorf("read payment %d of %s: %w", seq, physkey, err)
	}
	return n > 0, nil
}

// PaymentType is a row of payment_types.
type PaymentType struct {
	Code       int64  `db:"code"`
	GlobalCode int64  `db:"globalcode"`
	TypeStr    string `db:"typestr"`
}

// ErrNoPaymentType is returned when no payment type has the global code.
var ErrNoPaymentType = errors.New("no such payment type")

// PaymentTypeByGlobal finds the lane's payment type for a global code.
func PaymentTypeByGlobal(ctx context.Context, q sqlx.QueryerContext, global int64) (*PaymentType, error) {
	var pt PaymentType
	err := sqlx.GetContext(ctx, q, &pt, qPaymentTypeByGlobal, global)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNoPaymentType
	}
	if err != nil {
		return nil, fmt.Errorf("read payment type %d: %w", global, err)
	}
	return &pt, nil
}

// PaymentTypes lists the lane's payment types (for error messages).
func PaymentTypes(ctx context.Context, q sqlx.QueryerContext) ([]PaymentType, error) {
	var out []PaymentType
	if err := sqlx.SelectContext(ctx, q, &out, qPaymentTypes); err != nil {
		return nil, fmt.Errorf("list payment types: %w", err)
	}
	return out, nil
}

// NextSID is the next sale number of the lane. Call it inside the write
// transaction that uses it: BEGIN IMMEDIATE makes it race-free against the
// counter process too.
func NextSID(ctx context.Context, tx *Tx) (int64, error) {
	var sid int64
	if err := tx.GetContext(ctx, &sid, qNextSID); err != nil {
		return 0, fmt.Errorf("next sid: %w", err)
	}
	return sid, nil
}

// LineCount is how many lines a sale has.
func LineCount(ctx context.Context, q sqlx.QueryerContext, physkey string) (int, error) {
	if t := caching(q); t != nil {
		if lines, ok := readPart(t, physkey, (*cachedSale).lineRows); ok {
			return len(lines), nil
		}
	}
	var n int
	if err := sqlx.GetContext(ctx, q, &n, qLineCount, physkey); err != nil {
		return 0, fmt.Errorf("count lines of %s: %w", physkey, err)
	}
	return n, nil
}

// PaidCents is the sum of a sale's payments.
func PaidCents(ctx context.Context, q sqlx.QueryerContext, physkey string) (int64, error) {
	if t := caching(q); t != nil {
		if pays, ok := readPart(t, physkey, (*cachedSale).paymentRows); ok {
			var paid int64
			for _, p := range pays {
				paid += p.AmountCents
			}
			return paid, nil
		}
	}
	var paid int64
	if err := sqlx.GetContext(ctx, q, &paid, qPaidCents, physkey); err != nil {
		return 0, fmt.Errorf("sum payments of %s: %w", physkey, err)
	}
	return paid, nil
}

// payFlagReversedSQL is PayFlagReversed as SQL text.
var payFlagReversedSQL = strconv.Itoa(PayFlagReversed)

// Statements, prepared once when the DB opens.
var (
	qGetSale = stmt(`SELECT ` + saleColumns + ` FROM sales WHERE physkey = ?`)
	qTopSale = stmt(`SELECT physkey FROM sales
		WHERE holder_key = ? AND phase = 0 ORDER BY updated_utc DESC, physkey DESC LIMIT 1`)
	qOpenSales = stmt(`SELECT ` + saleColumns + ` FROM sales
		WHERE holder_key = ? AND phase IN (0, 5) ORDER BY updated_utc DESC, physkey DESC LIMIT ?`)
	// The statements of the hot path take positional arguments: binding
	// :names reflects over the struct on every call.
	qInsertSale = follow(stmt(`INSERT INTO sales (` + saleInsertColumns + `)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`))
	// A change of lines or payments writes only these (see totalsOnly).
	qUpdateSaleTotals = follow(stmt(`UPDATE sales SET saletotal_cents = ?, next_seqnce = ?, updated_utc = ?,
		claim_expires_ms = ?, claim_lease_ms = ?, version = version + 1
		WHERE physkey = ? AND version = ?`))
	qSaleLines = stmt(`SELECT l.sale_physkey, l.seqnce, l.pid, l.pidflag, l.description,
		l.plu, l.qty, l.unitprice_cents, l.prediscountprice_cents, l.totalprice_cents, l.pricecause,
		l.pricecausedata, l.linesource, COALESCE(p.measurement, 0) AS measurement
		FROM sale_lines l LEFT JOIN products p ON p.pid = l.pid
		WHERE l.sale_physkey = ? ORDER BY l.seqnce`)
	qInsertLine = follow(stmt(`INSERT INTO sale_lines (sale_physkey, seqnce, pid, pidflag, description,
		plu, qty, unitprice_cents, prediscountprice_cents, totalprice_cents, pricecause, pricecausedata, linesource)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`))
	qUpdateLine = follow(named(`UPDATE sale_lines SET qty = :qty, unitprice_cents = :unitprice_cents,
		prediscountprice_cents = :prediscountprice_cents, totalprice_cents = :totalprice_cents,
		pricecause = :pricecause, pricecausedata = :pricecausedata
		WHERE sale_physkey = :sale_physkey AND seqnce = :seqnce`))
	qDeleteLine   = follow(stmt(`DELETE FROM sale_lines WHERE sale_physkey = ? AND seqnce = ?`))
	qSalePayments = stmt(`SELECT p.sale_physkey, p.sequence, p.type, t.globalcode, t.typestr,
		p.amount_cents, p.dt FROM payments p JOIN payment_types t ON t.code = p.type
		WHERE p.sale_physkey = ? AND p.payflags & ` + payFlagReversedSQL + ` = 0 ORDER BY p.sequence`)
	qLivePayment = stmt(`SELECT p.sale_physkey, p.sequence, p.type, t.globalcode, t.typestr,
		p.amount_cents, p.dt FROM payments p JOIN payment_types t ON t.code = p.type
		WHERE p.sale_physkey = ? AND p.sequence = ? AND p.payflags & ` + payFlagReversedSQL + ` = 0`)
	qReversePayment = follow(stmt(`UPDATE payments SET payflags = payflags | ` + payFlagReversedSQL + `
		WHERE sale_physkey = ? AND sequence = ?`))
	qReversedPayment = stmt(`SELECT COUNT(*) FROM payments
		WHERE sale_physkey = ? AND sequence = ? AND payflags & ` + payFlagReversedSQL + ` != 0`)
	qNextPaymentSeq = stmt(`SELECT COALESCE(MAX(sequence), 0) + 1 FROM payments WHERE sale_physkey = ?`)
	qInsertPayment  = follow(stmt(`INSERT INTO payments (sale_physkey, sequence, type, amount_cents, dt)
		VALUES (?, ?, ?, ?, ?)`))
	qPaymentTypeByGlobal = stmt(`SELECT code, globalcode, typestr FROM payment_types WHERE globalcode = ?`)
	qPaymentTypes        = stmt(`SELECT code, globalcode, typestr FROM payment_types ORDER BY globalcode`)
	qLineCount           = stmt(`SELECT COUNT(*) FROM sale_lines WHERE sale_physkey = ?`)
	qPaidCents           = stmt(`SELECT COALESCE(SUM(amount_cents), 0) FROM payments
		WHERE sale_physkey = ? AND payflags & ` + payFlagReversedSQL + ` = 0`)
	qNextSID = stmt(`SELECT COALESCE(MAX(sid), 0) + 1 FROM sales`)
)

// OpenSaleCount counts the open ordinary sales (active or parked, not
// presells) a key holds, up to most: the cap needs to know no more, and a
// key that opened thousands before the cap existed must not make each of
// its refusals walk them all inside the writer.
func OpenSaleCount(ctx context.Context, q sqlx.QueryerContext, holderKey string, most int) (int, error) {
	var n int
	if err := sqlx.GetContext(ctx, q, &n, qOpenSaleCount, holderKey, most); err != nil {
		return 0, fmt.Errorf("count open sales of key %s: %w", holderKey, err)
	}
	return n, nil
}

var qOpenSaleCount = stmt(`SELECT COUNT(*) FROM (SELECT 1 FROM sales INDEXED BY sales_holder
	WHERE holder_key = ? AND phase IN (0, 5) AND presell = 0 LIMIT ?) AS held`)
