package presell

import (
	"context"
	"time"

	"github.com/greenlane-pos/greenlane/lanedb"
	"github.com/greenlane-pos/greenlane/protocol"
	"github.com/greenlane-pos/greenlane/salesbuilder"
)

// MaxRows caps one list of open presells.
const MaxRows = 500

// Row is one open presell in the counter's list.
type Row struct {
	Physkey       string          `json:"physkey"`
	Ticket        *int64          `json:"ticket"`
	TicketWord    *string         `json:"ticket_word"`
	TicketBarcode *string         `json:"ticket_barcode"`
	CID           *int64          `json:"cid"`
	Customer      *string         `json:"customer"`
	SaleTotal     protocol.Money  `json:"saletotal"`
	Paid          *protocol.Money `json:"paid,omitempty"` // payments not reversed; only when asked (PresellFilter.Paid)
	Lines         int64           `json:"lines"`
	Submitted     string          `json:"submitted_utc"`
	Age           int64           `json:"age"` // seconds since submitted
	Tablet        string          `json:"tablet"`
	Phase         int             `json:"phase"`
	ClaimedBy     *string         `json:"claimed_by"`
	ClaimExpires  *string         `json:"claim_expires"`
}

// List lists the open presells f selects, newest first, and whether more
// matched than f.Limit.
func (w *Workflow) List(ctx context.Context, f lanedb.PresellFilter) ([]Row, bool, error) {
	rows, more, err := lanedb.OpenPresells(ctx, w.sales.DB().Read, f)
	if err != nil {
		return nil, false, err
	}
	now := w.sales.Now()
	out := make([]Row, len(rows))
	for i, r := range rows {
		out[i] = w.row(r, now)
		if f.Paid {
			paid := protocol.Money(r.PaidCents)
			out[i].Paid = &paid
		}
	}
	return out, more, nil
}

// Open lists every open presell, newest first, with what each has been
// paid (for the command line).
func (w *Workflow) Open(ctx context.Context) ([]Row, error) {
	rows, _, err := w.List(ctx, lanedb.PresellFilter{Limit: lanedb.MaxTicket, Paid: true})
	return rows, err
}

func (w *Workflow) row(r lanedb.OpenPresell, now time.Time) Row {
	row := Row{
		Physkey: r.Physkey, Ticket: salesbuilder.Nullable(r.Ticket.Int64, r.Ticket.Valid),
		TicketWord: salesbuilder.Nullable(r.TicketWord.String, r.TicketWord.Valid), TicketBarcode: salesbuilder.Nullable(r.TicketBarcode.String, r.TicketBarcode.Valid),
		CID: salesbuilder.Nullable(r.CID.Int64, r.CID.Valid), Customer: salesbuilder.Nullable(r.Customer.String, r.Customer.Valid),
		SaleTotal: protocol.Money(r.SaleTotalCents), Lines: r.Lines, Submitted: r.SubmittedUTC,
		Tablet: r.Tablet, Phase: r.Phase,
	}
	if t, err := time.Parse(lanedb.DateTime, r.SubmittedUTC); err == nil {
		// Submitted by a clock that read later than this one: not yet any age.
		row.Age = max(0, int64(now.Sub(t).Seconds()))
	}
	if r.ClaimState.Held(now) {
		name, until := r.ClaimState.Name.String, w.sales.ClaimTime(r.ClaimState)
		row.ClaimedBy, row.ClaimExpires = &name, &until
	}
	return row
}
