package salesbuilder

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/greenlane-pos/greenlane/lanedb"
	"github.com/greenlane-pos/greenlane/protocol"
)

// The counter's side of presell: finding submitted presells, claiming one
// (recall), keeping and giving back the claim, repricing, and voiding the
// abandoned ones. These live beside the SalesBuilder because every sale
// change checks the claim in the same transaction.

// RegisterPresell adds the fd1.presell endpoints.
func (s *Service) RegisterPresell(r *protocol.Router) {
	counter := protocol.Access{Scopes: []protocol.Scope{protocol.ScopeCounter}}
	add := func(name string, h protocol.Handler) {
		r.Handle(&protocol.Endpoint{Name: name, Access: counter, Handler: h, RouteKey: RouteKey})
	}
	add("fd1.presell.get_presells", s.getPresells)
	add("fd1.presell.recall", s.recall)
	add("fd1.presell.heartbeat", s.heartbeat)
	add("fd1.presell.release", s.releaseEndpoint)
	add("fd1.presell.accept_prices", s.acceptPrices)
}

// maxPresellRows caps get_presells.
const maxPresellRows = 500

// presellFilters are get_presells' q fields: ticket, tablet (key name),
// customer (part of the name, any case) and age in seconds since submitted
// (KindSeconds: bounded, because it becomes a time.Duration).
var presellFilters = protocol.Fields{
	"ticket":   protocol.KindInt,
	"tablet":   protocol.KindString,
	"customer": protocol.KindString,
	"age":      protocol.KindSeconds,
}

// PresellRow is one open presell in the counter's list.
type PresellRow struct {
	Physkey       string         `json:"physkey"`
	Ticket        *int64         `json:"ticket"`
	TicketWord    *string        `json:"ticket_word"`
	TicketBarcode *string        `json:"ticket_barcode"`
	CID           *int64         `json:"cid"`
	Customer      *string        `json:"customer"`
	SaleTotal     protocol.Money `json:"saletotal"`
	Lines         int64          `json:"lines"`
	Submitted     string         `json:"submitted_utc"`
	Age           int64          `json:"age"` // seconds since submitted
	Tablet        string         `json:"tablet"`
	Phase         int            `json:"phase"`
	ClaimedBy     *string        `json:"claimed_by"`
	ClaimExpires  *string        `json:"claim_expires"`
}

type listArgs struct {
	Limit int `json:"limit" validate:"gte=0,lte=500"`
}

func (s *Service) getPresells(ctx context.Context, call *protocol.Call) (*protocol.Result, error) {
	var args listArgs
	if err := protocol.DecodeV(call.Req.V, &args); err != nil {
		return nil, err
	}
	f, err := s.presellFilter(call)
	if err != nil {
		return nil, err
	}
	f.Limit = maxPresellRows
	if args.Limit > 0 {
		f.Limit = args.Limit
	}
	rows, more, err := lanedb.OpenPresells(ctx, s.db.Read, f)
	if err != nil {
		return nil, err
	}
	now := s.now()
	out := make([]PresellRow, len(rows))
	for i, r := range rows {
		out[i] = presellRow(r, now)
	}
	return &protocol.Result{SC: "presell.list", Data: protocol.Rows{Rows: out, More: more}}, nil
}

// OpenPresells lists every open presell, newest first (for the command line).
func (s *Service) OpenPresells(ctx context.Context) ([]PresellRow, error) {
	rows, _, err := lanedb.OpenPresells(ctx, s.db.Read, lanedb.PresellFilter{Limit: lanedb.MaxTicket})
	if err != nil {
		return nil, err
	}
	now := s.now()
	out := make([]PresellRow, len(rows))
	for i, r := range rows {
		out[i] = presellRow(r, now)
	}
	return out, nil
}

// presellFilter turns q and qk into a lane DB filter.
func (s *Service) presellFilter(call *protocol.Call) (lanedb.PresellFilter, error) {
	var f lanedb.PresellFilter
	conds, err := call.Req.Filter(presellFilters)
	if err != nil {
		return f, err
	}
	for _, c := range conds {
		switch c.Field {
		case "customer":
			if c.Op != protocol.OpEq {
				return f, protocol.Errorf(protocol.CodeBadFilter, "q.customer matches part of the name; use it without an operator")
			}
			f.Customer = c.Value.(string)
		case "age":
			// age >= N seconds is submitted <= now-N: the comparison flips.
			at := s.now().Add(-time.Duration(c.Value.(int64)) * time.Second).UTC().Format(lanedb.StampLayout)
			f.Conds = append(f.Conds, lanedb.Cond{Column: "submitted_utc", Op: flip(c.Op), Value: at})
		default:
			f.Conds = append(f.Conds, lanedb.Cond{Column: c.Field, Op: string(c.Op), Value: c.Value})
		}
	}
	switch {
	case call.Req.QK.Has("mine"):
		f.ClaimKey, f.Now = call.Caller.KeyID, s.now()
	case len(call.Req.QK) > 0 && !call.Req.QK.Has("all"):
		return f, protocol.Errorf(protocol.CodeBadArgument, `qk: get_presells takes "all" (the default) or "mine"`)
	}
	return f, nil
}

func flip(op protocol.Op) string {
	switch op {
	case protocol.OpLt:
		return ">"
	case protocol.OpLe:
		return ">="
	case protocol.OpGt:
		return "<"
	case protocol.OpGe:
		return "<="
	}
	return string(op)
}

func presellRow(r lanedb.OpenPresell, now time.Time) PresellRow {
	row := PresellRow{
		Physkey: r.Physkey, Ticket: nullInt(r.Ticket.Int64, r.Ticket.Valid),
		TicketWord: nullStr(r.TicketWord.String, r.TicketWord.Valid), TicketBarcode: nullStr(r.TicketBarcode.String, r.TicketBarcode.Valid),
		CID: nullInt(r.CID.Int64, r.CID.Valid), Customer: nullStr(r.Customer.String, r.Customer.Valid),
		SaleTotal: protocol.Money(r.SaleTotalCents), Lines: r.Lines, Submitted: r.SubmittedUTC,
		Tablet: r.Tablet, Phase: r.Phase,
	}
	if t, err := time.Parse(lanedb.DateTime, r.SubmittedUTC); err == nil {
		row.Age = int64(now.Sub(t).Seconds())
	}
	if r.ClaimState.Held(now) {
		name, until := r.ClaimState.Name.String, claimTime(r.ClaimState)
		row.ClaimedBy, row.ClaimExpires = &name, &until
	}
	return row
}

// recallArgs name the presell to recall: one of ticket, barcode, word, or k.
type recallArgs struct {
	Ticket  int64  `json:"ticket" validate:"gte=0,lte=9999"`
	Barcode string `json:"barcode" validate:"max=64"`
	Word    string `json:"word" validate:"max=64"`
	Force   bool   `json:"force"`
}

// recall finds an open presell by ticket, barcode, word or physkey and
// claims it for this socket. The reply is the whole sale, with the lines
// whose price has drifted since the tablet rang them up.
func (s *Service) recall(ctx context.Context, call *protocol.Call) (*protocol.Result, error) {
	var args recallArgs
	if err := protocol.DecodeV(call.Req.V, &args); err != nil {
		return nil, err
	}
	return s.mutate(ctx, call, func(ctx context.Context, tx *lanedb.Tx) (*changed, error) {
		sale, err := s.findPresell(ctx, tx, call, args)
		if err != nil {
			return nil, err
		}
		if sale, err = s.claim(ctx, tx, call.Caller, sale, args.Force); err != nil {
			return nil, err
		}
		return withEvent(s.recallView(ctx, tx, sale))(evSaleStatus)
	})
}

// RecallView is a recalled presell: the sale, its claim, and price drift.
type RecallView struct {
	*SaleView
	Claim      ClaimView   `json:"claim"`
	PriceDrift []DriftLine `json:"price_drift"`
}

// ClaimView is who holds a presell and until when.
type ClaimView struct {
	Holder  string `json:"holder"`
	Expires string `json:"expires"`
}

func (s *Service) recallView(ctx context.Context, tx *lanedb.Tx, sale *lanedb.Sale) (*changed, error) {
	view, err := loadView(ctx, tx, sale)
	if err != nil {
		return nil, err
	}
	drift, err := priceDrift(ctx, tx, sale)
	if err != nil {
		return nil, err
	}
	return &changed{physkey: sale.Physkey, view: RecallView{
		SaleView:   view,
		Claim:      ClaimView{Holder: sale.ClaimState.Name.String, Expires: claimTime(sale.ClaimState)},
		PriceDrift: drift,
	}}, nil
}

// findPresell resolves recall's arguments to an open presell.
func (s *Service) findPresell(ctx context.Context, tx *lanedb.Tx, call *protocol.Call, a recallArgs) (*lanedb.Sale, error) {
	given := 0
	for _, set := range []bool{a.Ticket != 0, a.Barcode != "", a.Word != "", saleKey(call.Req) != ""} {
		if set {
			given++
		}
	}
	if given != 1 {
		return nil, protocol.Errorf(protocol.CodeBadArgument, "name the presell by exactly one of v.ticket, v.barcode, v.word or k")
	}
	if saleKey(call.Req) != "" {
		sale, err := resolve(ctx, tx, call)
		if err != nil {
			return nil, err
		}
		if !sale.Presell {
			return nil, protocol.Errorf(protocol.CodeNotFound, "sale %s is not a presell", sale.Physkey)
		}
		return sale, nil
	}
	ticket, what := a.Ticket, fmt.Sprintf("ticket %d", a.Ticket)
	if a.Word != "" {
		n, ok := wordNumber(a.Word)
		if !ok {
			return nil, protocol.Errorf(protocol.CodeNotFound, "%q is not a ticket word (two words like %q)", clip(a.Word), numberWord(42))
		}
		ticket, what = n, fmt.Sprintf("ticket %q (%d)", a.Word, n)
	}
	if a.Barcode != "" {
		what = fmt.Sprintf("ticket barcode %q", clip(a.Barcode))
	}
	physkey, err := lanedb.OpenPresellBy(ctx, tx, ticket, a.Barcode)
	if errors.Is(err, lanedb.ErrNoPresell) {
		return nil, s.noOpenPresell(ctx, tx, ticket, a.Barcode, what)
	}
	if err != nil {
		return nil, err
	}
	return lanedb.GetSale(ctx, tx, physkey)
}

// noOpenPresell explains a recall that found nothing open, naming the sale
// the ticket last belonged to when there is one.
func (s *Service) noOpenPresell(ctx context.Context, tx *lanedb.Tx, ticket int64, barcode, what string) error {
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

// DriftLine is a line whose stored price differs from what the product (and
// the customer's discount) would cost now.
type DriftLine struct {
	Seqnce       int64          `json:"seqnce"`
	PID          int64          `json:"pid"`
	Description  string         `json:"description"`
	OldUnitPrice protocol.Money `json:"old_unitprice"`
	NewUnitPrice protocol.Money `json:"new_unitprice"`
	OldPrice     protocol.Money `json:"old_price"`
	NewPrice     protocol.Money `json:"new_price"`
}

// priceDrift compares each line (except prices set by hand) with today's
// price for the sale's customer.
func priceDrift(ctx context.Context, q *lanedb.Tx, sale *lanedb.Sale) ([]DriftLine, error) {
	lines, repriced, err := reprice(ctx, q, sale)
	if err != nil {
		return nil, err
	}
	drift := []DriftLine{}
	for i, l := range lines {
		n := repriced[i]
		if n.TotalPriceCents == l.TotalPriceCents && n.UnitPriceCents == l.UnitPriceCents {
			continue
		}
		drift = append(drift, DriftLine{
			Seqnce: l.Seqnce, PID: l.PID, Description: l.Description,
			OldUnitPrice: protocol.Money(l.UnitPriceCents), NewUnitPrice: protocol.Money(n.UnitPriceCents),
			OldPrice: protocol.Money(l.TotalPriceCents), NewPrice: protocol.Money(n.TotalPriceCents),
		})
	}
	return drift, nil
}

// reprice returns the sale's lines as stored and as they would be priced
// now (same order). Lines priced by hand, and lines whose product is gone,
// keep their price.
func reprice(ctx context.Context, q *lanedb.Tx, sale *lanedb.Sale) (lines, now []lanedb.Line, err error) {
	if lines, err = lanedb.SaleLines(ctx, q, sale.Physkey); err != nil {
		return nil, nil, err
	}
	pids := make([]int64, len(lines))
	for i, l := range lines {
		pids[i] = l.PID
	}
	products, err := lanedb.ProductsByPID(ctx, q, pids)
	if err != nil {
		return nil, nil, err
	}
	customer, err := saleCustomer(ctx, q, sale)
	if err != nil {
		return nil, nil, err
	}
	now = make([]lanedb.Line, len(lines))
	for i, l := range lines {
		n := l
		if p, ok := products[l.PID]; ok && l.PriceCause != causeUserPrice {
			n.UnitPriceCents = p.PriceCents
			PriceLine(&n, customer)
		}
		now[i] = n
	}
	return lines, now, nil
}

// acceptPrices reprices a claimed presell at today's prices.
func (s *Service) acceptPrices(ctx context.Context, call *protocol.Call) (*protocol.Result, error) {
	return s.mutate(ctx, call, func(ctx context.Context, tx *lanedb.Tx) (*changed, error) {
		sale, err := s.forChange(ctx, tx, call)
		if err != nil {
			return nil, err
		}
		lines, now, err := reprice(ctx, tx, sale)
		if err != nil {
			return nil, err
		}
		for i := range lines {
			if now[i] != lines[i] {
				if err := lanedb.UpdateLine(ctx, tx, &now[i]); err != nil {
					return nil, err
				}
			}
		}
		if _, err := s.finishLines(ctx, tx, call, sale, ""); err != nil {
			return nil, err
		}
		return withEvent(s.recallView(ctx, tx, sale))(evSaleEdit)
	})
}

// heartbeat renews this socket's claim on a presell.
func (s *Service) heartbeat(ctx context.Context, call *protocol.Call) (*protocol.Result, error) {
	return s.mutate(ctx, call, func(ctx context.Context, tx *lanedb.Tx) (*changed, error) {
		sale, err := resolve(ctx, tx, call)
		if err != nil {
			return nil, err
		}
		if !sale.ClaimState.Session.Valid || sale.ClaimState.Session.String != call.Caller.Session {
			if s.claims.Has(call.Caller.Session, sale.Physkey) {
				return nil, protocol.Errorf(protocol.CodeClaimLost, "presell %s is no longer claimed by this device", sale.Physkey)
			}
			return nil, protocol.Errorf(protocol.CodeConflict, "this device holds no claim on sale %s", sale.Physkey)
		}
		ok, err := lanedb.RenewClaim(ctx, tx, sale.Physkey, call.Caller.Session, s.now(), s.lease)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, s.checkWriter(sale, call.Caller)
		}
		if sale, err = lanedb.GetSale(ctx, tx, sale.Physkey); err != nil {
			return nil, err
		}
		return &changed{physkey: sale.Physkey, view: ClaimView{Holder: sale.ClaimState.Name.String, Expires: claimTime(sale.ClaimState)}}, nil
	})
}

// releaseEndpoint gives a claimed presell back (phase 5 again).
func (s *Service) releaseEndpoint(ctx context.Context, call *protocol.Call) (*protocol.Result, error) {
	return s.mutate(ctx, call, func(ctx context.Context, tx *lanedb.Tx) (*changed, error) {
		sale, err := resolve(ctx, tx, call)
		if err != nil {
			return nil, err
		}
		if !sale.ClaimState.Session.Valid {
			return nil, protocol.Errorf(protocol.CodeConflict, "sale %s is not claimed", sale.Physkey)
		}
		if sale, err = s.release(ctx, tx, call.Caller, sale); err != nil {
			return nil, err
		}
		return withEvent(loadChanged(ctx, tx, sale))(evSaleStatus)
	})
}

// --- abandoned presells ---

// System is the caller the sweeper and the command line act as.
func System(name string) *protocol.Caller {
	return &protocol.Caller{KeyID: "system:" + name, KeyName: name, Scopes: []protocol.Scope{protocol.ScopeAdmin}, Session: "system:" + name}
}

// ExpireAbandoned voids open presells untouched for longer than maxAge
// (the default when 0) and not under a live claim, each with a journal row
// saying why. It returns the voided sales' physkeys.
func (s *Service) ExpireAbandoned(ctx context.Context, maxAge time.Duration, actor string) ([]string, error) {
	if maxAge <= 0 {
		maxAge = s.maxAge
	}
	var voided []string
	for {
		batch, err := s.expireBatch(ctx, maxAge, actor)
		voided = append(voided, batch...)
		if err != nil || len(batch) < expireBatchSize {
			return voided, err
		}
	}
}

// expireBatchSize keeps each sweep transaction short.
const expireBatchSize = 50

func (s *Service) expireBatch(ctx context.Context, maxAge time.Duration, actor string) ([]string, error) {
	var voided []string
	c := System(actor)
	err := s.writer.Do(ctx, func(ctx context.Context, tx *lanedb.Tx) error {
		voided = voided[:0]
		now := s.now()
		sales, err := lanedb.AbandonedPresells(ctx, tx, now.Add(-maxAge), now, expireBatchSize)
		if err != nil {
			return err
		}
		reason := "abandoned: unchanged for " + maxAge.String()
		for i := range sales {
			if err := s.void(ctx, tx, c, &sales[i], actor, reason, "expired"); err != nil {
				return err
			}
			if err := s.emitSale(ctx, tx, evSaleStatus, actor, &sales[i]); err != nil {
				return err
			}
			voided = append(voided, sales[i].Physkey)
		}
		return nil
	})
	return voided, mapDBError(err)
}

// Sweep voids abandoned presells every interval until ctx ends.
func (s *Service) Sweep(ctx context.Context, interval time.Duration, log *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			voided, err := s.ExpireAbandoned(ctx, 0, "sweeper")
			if err != nil && ctx.Err() == nil {
				log.Warn("presell sweeper", "err", err)
			}
			if len(voided) > 0 {
				log.Info("voided abandoned presells", "count", len(voided), "older_than", s.maxAge)
			}
			if err := s.TrimJournal(ctx); err != nil && ctx.Err() == nil {
				log.Warn("journal trim", "err", err)
			}
			if err := s.pruneClaims(ctx); err != nil && ctx.Err() == nil {
				log.Warn("claim bookkeeping", "err", err)
			}
		}
	}
}

// TrimJournal keeps the newest JournalKeep journal entries (what firehoses
// can replay) and the idempotency records of the last IdempotencyKeep,
// deleting older ones a few thousand per transaction.
func (s *Service) TrimJournal(ctx context.Context) error {
	cutoff := s.now().Add(-s.ikKeep)
	for _, trim := range []func(ctx context.Context, tx *lanedb.Tx) (int64, error){
		func(ctx context.Context, tx *lanedb.Tx) (int64, error) {
			return lanedb.TrimJournal(ctx, tx, s.journalKeep, trimBatch)
		},
		func(ctx context.Context, tx *lanedb.Tx) (int64, error) {
			return lanedb.TrimIdempotency(ctx, tx, cutoff, trimBatch)
		},
	} {
		if err := s.trimAll(ctx, trim); err != nil {
			return err
		}
	}
	return nil
}

// trimBatch keeps each trimming transaction short.
const trimBatch = 2000

// trimAll runs trim in transactions until a batch comes back short.
func (s *Service) trimAll(ctx context.Context, trim func(ctx context.Context, tx *lanedb.Tx) (int64, error)) error {
	for {
		var n int64
		err := s.writer.Do(ctx, func(ctx context.Context, tx *lanedb.Tx) error {
			var err error
			n, err = trim(ctx, tx)
			return err
		})
		if err != nil || n < trimBatch {
			return err
		}
	}
}

// VoidPresell voids one open presell named by ticket number or physkey,
// for the command line. A live claim is respected unless force.
func (s *Service) VoidPresell(ctx context.Context, ticketOrPhyskey, actor, reason string, force bool) (string, error) {
	var physkey string
	err := s.writer.Do(ctx, func(ctx context.Context, tx *lanedb.Tx) error {
		key := ticketOrPhyskey
		if n, err := strconv.ParseInt(ticketOrPhyskey, 10, 64); err == nil {
			pk, err := lanedb.OpenPresellBy(ctx, tx, n, "")
			if errors.Is(err, lanedb.ErrNoPresell) {
				return fmt.Errorf("no open presell has ticket %d", n)
			}
			if err != nil {
				return err
			}
			key = pk
		}
		sale, err := lanedb.GetSale(ctx, tx, strings.TrimSpace(key))
		if errors.Is(err, lanedb.ErrNoSale) {
			return fmt.Errorf("no sale with physkey %q", key)
		}
		if err != nil {
			return err
		}
		if !sale.Presell || (sale.Phase != lanedb.PhaseActive && sale.Phase != lanedb.PhaseParked) {
			return fmt.Errorf("sale %s is not an open presell (phase %d)", sale.Physkey, sale.Phase)
		}
		if sale.ClaimState.Held(s.now()) && !force {
			return fmt.Errorf("presell %s is claimed by %q until %s; use --force to void it anyway",
				sale.Physkey, sale.ClaimState.Name.String, claimTime(sale.ClaimState))
		}
		physkey = sale.Physkey
		if err := s.void(ctx, tx, System(actor), sale, actor, reason, "voided"); err != nil {
			return err
		}
		return s.emitSale(ctx, tx, evSaleStatus, actor, sale)
	})
	return physkey, err
}
