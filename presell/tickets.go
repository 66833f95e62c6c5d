package presell

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/greenlane-pos/greenlane/lanedb"
	"github.com/greenlane-pos/greenlane/protocol"
	"github.com/greenlane-pos/greenlane/salesbuilder"
)

// Submit gives a presell its ticket as its tablet parks it (a presell
// submitted before keeps its ticket), and journals the submission.
func (w *Workflow) Submit(ctx context.Context, tx *lanedb.Tx, c *protocol.Caller, sale *lanedb.Sale) error {
	lines, err := lanedb.LineCount(ctx, tx, sale.Physkey)
	if err != nil {
		return err
	}
	if lines == 0 {
		return protocol.Errorf(protocol.CodeConflict, "presell %s has no lines; add a product before submitting it", sale.Physkey)
	}
	// To the microsecond (like updated_utc), so the counter's list is newest
	// first even for presells submitted within one second.
	sale.SubmittedUTC = sql.NullString{String: w.sales.Stamp(), Valid: true}
	if !sale.Ticket.Valid {
		ticket, err := lanedb.AllocateTicket(ctx, tx)
		// A full lane is a limit, not an outage: unavailable would have
		// the tablet resend the submit in silence until the counter frees
		// a ticket, with every later order queued behind it.
		if errors.Is(err, lanedb.ErrNoFreeTicket) {
			return protocol.Errorf(protocol.CodeLimitReached, "all %d presell tickets are taken by open presells: the counter must complete or cancel some before this order can be submitted; it is kept as it is", lanedb.MaxTicket)
		}
		if err != nil {
			return err
		}
		sale.Ticket = sql.NullInt64{Int64: ticket, Valid: true}
		sale.TicketWord = sql.NullString{String: salesbuilder.NumberWord(ticket), Valid: true}
		sale.TicketBarcode = sql.NullString{String: TicketBarcode(w.sales.LaneNo(), ticket, sale.RandomKey), Valid: true}
	}
	return w.journal(ctx, tx, "submitted", sale.Physkey, c.KeyName, map[string]any{
		"ticket": sale.Ticket.Int64, "total": protocol.Money(sale.SaleTotalCents), "lines": lines,
	})
}

// TicketBarcode is the Code 128 text printed on a presell ticket: lane,
// ticket and four characters of the sale's random key, so a slip kept from
// an earlier sale with the same ticket number cannot recall this one.
func TicketBarcode(lane, ticket int64, randomKey string) string {
	tag := strings.ToUpper(strings.ReplaceAll(randomKey, "-", ""))
	if len(tag) > 4 {
		tag = tag[:4]
	}
	return fmt.Sprintf("GL%02d%04d%s", lane%100, ticket, tag)
}

// Ref names a presell to recall: by exactly one of ticket number, ticket
// barcode, ticket word, or physkey.
type Ref struct {
	Ticket  int64
	Barcode string
	Word    string
	Physkey string
}

// find resolves a Ref to an open presell.
func (w *Workflow) find(ctx context.Context, tx *lanedb.Tx, c *protocol.Caller, r Ref) (*lanedb.Sale, error) {
	// A keyboard-wedge scanner may end what it read with Enter or Tab, and
	// with caps lock on it types the letters in lower case: neither is
	// part of the printed barcode (TicketBarcode is upper case).
	r.Barcode = strings.ToUpper(strings.TrimSpace(r.Barcode))
	given := 0
	for _, set := range []bool{r.Ticket != 0, r.Barcode != "", r.Word != "", r.Physkey != ""} {
		if set {
			given++
		}
	}
	if given != 1 {
		return nil, protocol.Errorf(protocol.CodeBadArgument, "name the presell by exactly one of v.ticket, v.barcode, v.word or k")
	}
	if r.Physkey != "" {
		sale, err := salesbuilder.Resolve(ctx, tx, c, r.Physkey)
		if err != nil {
			return nil, err
		}
		if !sale.Presell {
			return nil, protocol.Errorf(protocol.CodeNotFound, "sale %s is not a presell", sale.Physkey)
		}
		return sale, nil
	}
	ticket, what := r.Ticket, fmt.Sprintf("ticket %d", r.Ticket)
	if r.Word != "" {
		n, ok := salesbuilder.WordNumber(r.Word)
		if !ok {
			return nil, protocol.Errorf(protocol.CodeNotFound, "%q is not a ticket word (two words like %q)", salesbuilder.Clip(r.Word), salesbuilder.NumberWord(42))
		}
		ticket, what = n, fmt.Sprintf("ticket %q (%d)", r.Word, n)
	}
	if r.Barcode != "" {
		what = fmt.Sprintf("ticket barcode %q", salesbuilder.Clip(r.Barcode))
	}
	physkey, err := lanedb.OpenPresellBy(ctx, tx, ticket, r.Barcode)
	if errors.Is(err, lanedb.ErrNoPresell) {
		return nil, noOpenPresell(ctx, tx, ticket, r.Barcode, what)
	}
	if err != nil {
		return nil, err
	}
	return lanedb.GetSale(ctx, tx, physkey)
}

// noOpenPresell explains a recall that found nothing open, naming the sale
// the ticket last belonged to when there is one.
func noOpenPresell(ctx context.Context, tx *lanedb.Tx, ticket int64, barcode, what string) error {
	closed, err := lanedb.LastClosedPresell(ctx, tx, ticket, barcode)
	if errors.Is(err, lanedb.ErrNoPresell) {
		return protocol.Errorf(protocol.CodeNotFound, "no open presell has %s", what)
	}
	if err != nil {
		return err
	}
	state := "was completed"
	if closed.Phase == lanedb.PhaseVoid {
		state = "was cancelled"
	}
	return protocol.Errorf(protocol.CodeNotFound, "no open presell has %s; its last presell (%s) %s", what, closed.Physkey, state)
}
