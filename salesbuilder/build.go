package salesbuilder

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/greenlane-pos/greenlane/lanedb"
	"github.com/greenlane-pos/greenlane/protocol"
)

// The changes a sale goes through, each run inside the caller's
// transaction (Service.Do, or the exactly-once Change): it checks who may
// make it, writes the sale, journals the custdisp event a display follows,
// and answers the sale as it now is. ref names the sale as Resolve reads
// it.

// Create starts a sale held by c. A physkey ("" to make one) that already
// names c's sale answers that sale: a create retried with its own physkey
// is harmless. A presell socket's sale is a presell.
func (s *Service) Create(ctx context.Context, tx *lanedb.Tx, c *protocol.Caller, physkey string) (*SaleView, error) {
	if err := checkPresellSocket(c, "start a sale"); err != nil {
		return nil, err
	}
	physkey = strings.ToLower(physkey)
	if physkey != "" {
		existing, err := lanedb.GetSale(ctx, tx, physkey)
		switch {
		case err == nil:
			if !c.HasKeyName(existing.CreatedBy) && !c.HasKeyID(existing.HolderKey) {
				if !c.SeesLane() { // a tablet learns nothing of another's sale
					return nil, protocol.Errorf(protocol.CodeConflict, "a sale with physkey %s already exists; choose another physkey", physkey)
				}
				return nil, protocol.Errorf(protocol.CodeConflict, "a sale with physkey %s already exists and belongs to %q", physkey, existing.HolderName)
			}
			return LoadView(ctx, tx, existing)
		case !errors.Is(err, lanedb.ErrNoSale):
			return nil, err
		}
	} else {
		var err error
		if physkey, err = s.ids.physkey(s.now()); err != nil {
			return nil, err
		}
	}
	randomKey, err := s.ids.randomKey()
	if err != nil {
		return nil, err
	}
	sale := &lanedb.Sale{
		Physkey:    physkey,
		RandomKey:  randomKey,
		Phase:      lanedb.PhaseActive,
		StartDT:    s.localNow(),
		CreatedBy:  c.KeyName,
		HolderKey:  c.KeyID,
		HolderName: c.KeyName,
		Presell:    c.Purpose == protocol.PurposePresell,
		NextSeqnce: 1,
		UpdatedUTC: s.Stamp(),
	}
	if s.locID > 0 {
		sale.Location = sql.NullInt64{Int64: s.locID, Valid: true}
	}
	if sale.Presell {
		if err := s.checkOpenPresells(ctx, tx, sale.CreatedBy); err != nil {
			return nil, err
		}
	} else if err := s.checkOpenSales(ctx, tx, c); err != nil {
		return nil, err
	}
	if err := lanedb.InsertSale(ctx, tx, sale); err != nil {
		return nil, err
	}
	if sale.Presell {
		if err := s.presells.Created(ctx, tx, c, sale); err != nil {
			return nil, err
		}
	}
	return s.emitParts(ctx, tx, evSaleAdd, c.KeyName, sale, parts{}) // a new sale has no lines, payments or customer
}

// checkPresellSocket refuses a caller whose only sale-building scope is
// presell when it is not on a presell socket. A sale is a presell by the
// socket it is made on (SPEC §1: purpose=presell is on the URL, [DOC]);
// off one, such a key's sale would be an ordinary sale that no counter
// lists, the sweeper never takes, --max-open-presells never counts, and
// its park gives no ticket. HTTP mode has no presell socket, so a tablet
// key builds nothing there.
func checkPresellSocket(c *protocol.Caller, what string) error {
	if c.Purpose == protocol.PurposePresell || c.Has(protocol.ScopeCounter) || !c.Has(protocol.ScopePresell) {
		return nil
	}
	return protocol.Errorf(protocol.CodeForbidden,
		"a key with scope presell may %s only on a presell socket: open ws://<lane>/fd1/open_websocket?purpose=presell (HTTP mode has none)", what)
}

// Item is a product to ring up: by pid, else PLU, else barcode.
type Item struct {
	PID     int64
	PLU     string
	Barcode string
	// Qty is how many (or how many grams, for a weighed product); at least 1.
	Qty int64
	// Price, if set, is the unit price in cents the counter sets by hand.
	Price *int64
	// LineSource says how the line was entered (SPEC §9.2).
	LineSource int64
}

// AddProduct adds a line for item at its price for the sale's customer.
func (s *Service) AddProduct(ctx context.Context, tx *lanedb.Tx, c *protocol.Caller, ref string, item Item) (*SaleView, error) {
	if err := checkPriceOverride(c, item.Price); err != nil {
		return nil, err
	}
	sale, r, err := s.forChange(ctx, tx, c, ref)
	if err != nil {
		return nil, err
	}
	lines, err := lanedb.SaleLines(ctx, tx, sale.Physkey)
	if err != nil {
		return nil, err
	}
	if err := s.checkLineCount(sale, len(lines)); err != nil {
		return nil, err
	}
	product, err := findProduct(ctx, tx, item)
	if err != nil {
		return nil, err
	}
	customer, err := SaleCustomer(ctx, tx, sale)
	if err != nil {
		return nil, err
	}
	line := &lanedb.Line{
		SalePhyskey: sale.Physkey, Seqnce: sale.NextSeqnce, PID: product.PID,
		Description: product.Description, PLU: product.PLU.String, Qty: item.Qty,
		UnitPriceCents: product.PriceCents, LineSource: item.LineSource, Measurement: product.Measurement,
	}
	if item.Price != nil {
		line.UnitPriceCents, line.PriceCause = *item.Price, CauseUserPrice
	}
	PriceLine(line, customer)
	if err := lanedb.InsertLine(ctx, tx, line); err != nil {
		return nil, err
	}
	sale.NextSeqnce++
	// seqnce only grows, so the new line is the last in seqnce order.
	r.lines, r.customer, r.custRead = append(lines, *line), customer, true
	return s.finish(ctx, tx, c, sale, r, evLinesAdd)
}

// checkPriceOverride: only a counter may set a price by hand.
func checkPriceOverride(c *protocol.Caller, price *int64) error {
	if price != nil && !c.ActFor(protocol.ScopeCounter) {
		return protocol.Errorf(protocol.CodeForbidden, "v.price overrides the price and needs a key with scope counter")
	}
	return nil
}

func findProduct(ctx context.Context, tx *lanedb.Tx, item Item) (*lanedb.SaleProduct, error) {
	var p *lanedb.SaleProduct
	var err error
	var what string
	switch {
	case item.PID != 0:
		what = fmt.Sprintf("pid %d", item.PID)
		p, err = lanedb.ProductByPID(ctx, tx, item.PID)
	case item.PLU != "":
		what = fmt.Sprintf("PLU %q", Clip(item.PLU))
		p, err = lanedb.ProductByPLU(ctx, tx, item.PLU)
	default:
		what = fmt.Sprintf("barcode %q", Clip(item.Barcode))
		p, err = lanedb.ProductByBarcode(ctx, tx, item.Barcode)
	}
	if errors.Is(err, lanedb.ErrNoProduct) {
		return nil, protocol.Errorf(protocol.CodeUnknownProduct, "no product with %s", what)
	}
	if err != nil {
		return nil, err
	}
	if !p.Active {
		return nil, protocol.Errorf(protocol.CodeUnknownProduct, "product %d (%s) is not for sale", p.PID, p.Description)
	}
	return p, nil
}

// FinishLines recomputes the sale total from its lines, saves the sale,
// journals event ("" for none) and answers the whole sale.
func (s *Service) FinishLines(ctx context.Context, tx *lanedb.Tx, c *protocol.Caller, sale *lanedb.Sale, event string) (*SaleView, error) {
	return s.finish(ctx, tx, c, sale, read{}, event)
}

// changeFromCash refuses to complete a sale whose change would not come
// from cash tendered: the lane takes no non-cash payment above the balance,
// but another program may lower a paid sale's lines afterwards, and a
// card's excess given back from the drawer is money out of it.
func changeFromCash(sale *lanedb.Sale, payments []lanedb.Payment, paid int64) error {
	var cash int64
	for _, p := range payments {
		if p.GlobalCode == cashGlobalCode {
			cash += p.AmountCents
		}
	}
	if change := paid - sale.SaleTotalCents; change > cash {
		return protocol.Errorf(protocol.CodeConflict,
			"sale %s totals %s by its lines but holds %s of payments other than cash (only cash gives change): reverse a payment (sale_remove_payment) and take the balance again",
			sale.Physkey, protocol.Money(sale.SaleTotalCents), protocol.Money(paid-cash))
	}
	return nil
}

// linesTotal is what a sale's lines add up to: its total. The lane keeps
// saletotal_cents equal to it, but another program (the counter's) may
// change a line and not the total; money is taken and a sale completed
// against its lines, never a stale total (greenlane check reports such a
// sale), and the total is written right with the change.
func linesTotal(lines []lanedb.Line) int64 {
	var total int64
	for _, l := range lines {
		total += l.TotalPriceCents
	}
	return total
}

// read is what a change has already read of its sale in this
// transaction, and kept up to date with what it wrote, so that finishing
// the change does not read it again.
type read struct {
	lines    []lanedb.Line // the sale's lines in seqnce order; nil: not read
	customer *lanedb.SaleCustomer
	custRead bool // customer is the sale's (nil: it has none)
	payments []lanedb.Payment
	paysRead bool // payments are the sale's payments that count
}

// finish is FinishLines with what the change already read.
func (s *Service) finish(ctx context.Context, tx *lanedb.Tx, c *protocol.Caller, sale *lanedb.Sale, r read, event string) (*SaleView, error) {
	lines := r.lines
	if lines == nil {
		var err error
		if lines, err = lanedb.SaleLines(ctx, tx, sale.Physkey); err != nil {
			return nil, err
		}
	}
	total := linesTotal(lines)
	if total > maxSaleTotal {
		return nil, protocol.Errorf(protocol.CodeBadArgument, "the sale total would be %s, over the lane's limit of %s",
			protocol.Money(total), protocol.Money(maxSaleTotal))
	}
	payments, err := paymentsOf(ctx, tx, sale, r)
	if err != nil {
		return nil, err
	}
	// A change that lowers the total may not leave less to pay than was
	// paid: that money would belong to no line. (Cash tendered above the
	// total is change, and adding lines to such a sale is fine.)
	if paid := paidOf(payments); total < sale.SaleTotalCents && total < paid {
		return nil, hasPaymentsError(paid)
	}
	sale.SaleTotalCents = total
	if err := s.save(ctx, tx, c, sale); err != nil {
		return nil, err
	}
	customer := r.customer
	if !r.custRead {
		var err error
		if customer, err = SaleCustomer(ctx, tx, sale); err != nil {
			return nil, err
		}
	}
	view := buildView(sale, lines, payments, customer)
	return view, s.Emit(ctx, tx, event, c.KeyName, view)
}

// forLine is forChange for a change to one line: the sale, what it read
// (the lines included), and the line with seqnce (a pointer into
// r.lines), or not_found.
func (s *Service) forLine(ctx context.Context, tx *lanedb.Tx, c *protocol.Caller, ref string, seqnce int64) (*lanedb.Sale, read, *lanedb.Line, error) {
	sale, r, err := s.forChange(ctx, tx, c, ref)
	if err != nil {
		return nil, read{}, nil, err
	}
	if r.lines, err = lanedb.SaleLines(ctx, tx, sale.Physkey); err != nil {
		return nil, read{}, nil, err
	}
	for i := range r.lines {
		if r.lines[i].Seqnce == seqnce {
			return sale, r, &r.lines[i], nil
		}
	}
	return nil, read{}, nil, protocol.Errorf(protocol.CodeNotFound, "sale %s has no line with seqnce %d", sale.Physkey, seqnce)
}

// RemoveLine deletes the line with seqnce.
func (s *Service) RemoveLine(ctx context.Context, tx *lanedb.Tx, c *protocol.Caller, ref string, seqnce int64) (*SaleView, error) {
	sale, r, gone, err := s.forLine(ctx, tx, c, ref, seqnce)
	if err != nil {
		return nil, err
	}
	if err := lanedb.DeleteLine(ctx, tx, sale.Physkey, seqnce); err != nil {
		return nil, err
	}
	seqnce = gone.Seqnce
	r.lines = slices.DeleteFunc(r.lines, func(l lanedb.Line) bool { return l.Seqnce == seqnce })
	return s.finish(ctx, tx, c, sale, r, evLinesDelete)
}

// EditLine changes a line's qty, its unit price in cents (counter only),
// or both; nil leaves one as it is.
func (s *Service) EditLine(ctx context.Context, tx *lanedb.Tx, c *protocol.Caller, ref string, seqnce int64, qty, price *int64) (*SaleView, error) {
	if qty == nil && price == nil {
		return nil, protocol.Errorf(protocol.CodeBadArgument, "v: give qty or price (or both) to change")
	}
	if err := checkPriceOverride(c, price); err != nil {
		return nil, err
	}
	sale, r, line, err := s.forLine(ctx, tx, c, ref, seqnce)
	if err != nil {
		return nil, err
	}
	if qty != nil {
		line.Qty = *qty
	}
	if price != nil {
		line.UnitPriceCents, line.PriceCause = *price, CauseUserPrice
	}
	customer, err := SaleCustomer(ctx, tx, sale)
	if err != nil {
		return nil, err
	}
	PriceLine(line, customer)
	if err := lanedb.UpdateLine(ctx, tx, line); err != nil {
		return nil, err
	}
	r.customer, r.custRead = customer, true
	return s.finish(ctx, tx, c, sale, r, evLinesEdit)
}

// CustomerRef names a customer by physkey, else by cid; the zero value
// takes the customer off the sale.
type CustomerRef struct {
	CID     int64
	Physkey string
}

func (r CustomerRef) String() string {
	if r.Physkey != "" {
		return fmt.Sprintf("physkey %q", Clip(r.Physkey))
	}
	return fmt.Sprintf("cid %d", r.CID)
}

// SetCustomer puts a customer on the sale (or takes it off) and reprices
// every line not priced by hand.
func (s *Service) SetCustomer(ctx context.Context, tx *lanedb.Tx, c *protocol.Caller, ref string, who CustomerRef) (*SaleView, error) {
	sale, r, err := s.forChange(ctx, tx, c, ref)
	if err != nil {
		return nil, err
	}
	var customer *lanedb.SaleCustomer
	if who != (CustomerRef{}) {
		if who.Physkey != "" {
			customer, err = lanedb.CustomerByPhyskey(ctx, tx, who.Physkey)
		} else {
			customer, err = lanedb.CustomerByCID(ctx, tx, who.CID)
		}
		if errors.Is(err, lanedb.ErrNoCustomer) {
			return nil, protocol.Errorf(protocol.CodeNotFound, "no customer with %s", who)
		}
		if err != nil {
			return nil, err
		}
		sale.CID = sql.NullInt64{Int64: customer.CID, Valid: true}
	} else {
		payments, err := paymentsOf(ctx, tx, sale, r)
		if err != nil {
			return nil, err
		}
		r.payments, r.paysRead = payments, true
		if charged := accountCharged(payments); charged > 0 {
			return nil, protocol.Errorf(protocol.CodeConflict,
				"this sale holds %s charged to the customer's account: reverse that payment (fd1.salesbuilder.sale_remove_payment) before taking the customer off",
				dollars(charged))
		}
		sale.CID = sql.NullInt64{}
	}
	lines, err := lanedb.SaleLines(ctx, tx, sale.Physkey)
	if err != nil {
		return nil, err
	}
	for i := range lines {
		before := lines[i]
		PriceLine(&lines[i], customer)
		if lines[i] != before {
			if err := lanedb.UpdateLine(ctx, tx, &lines[i]); err != nil {
				return nil, err
			}
		}
	}
	r.lines, r.customer, r.custRead = lines, customer, true
	return s.finish(ctx, tx, c, sale, r, EvSaleEdit)
}

// Park puts an active sale in the background (phase 5). A presell being
// built is thereby submitted: it gets a ticket the counter recalls it by.
// A claimed presell parked by its holder goes back to the counter's queue.
func (s *Service) Park(ctx context.Context, tx *lanedb.Tx, c *protocol.Caller, ref string) (*SaleView, error) {
	if err := namesSale(c, ref, "a park"); err != nil {
		return nil, err
	}
	sale, err := s.ForChange(ctx, tx, c, ref)
	if err != nil {
		return nil, err
	}
	p, err := readParts(ctx, tx, sale)
	if err != nil {
		return nil, err
	}
	if sale.ClaimState.Session.Valid {
		if sale, err = s.presells.Release(ctx, tx, c, sale); err != nil {
			return nil, err
		}
		return s.emitParts(ctx, tx, EvSaleStatus, c.KeyName, sale, p)
	}
	if sale.Presell {
		if err := s.presells.Submit(ctx, tx, c, sale); err != nil {
			return nil, err
		}
	} else if err := checkPresellSocket(c, "park a sale that is not a presell"); err != nil {
		return nil, err
	}
	sale.Phase = lanedb.PhaseParked
	if err := s.save(ctx, tx, c, sale); err != nil {
		return nil, err
	}
	return s.emitParts(ctx, tx, EvSaleStatus, c.KeyName, sale, p)
}

// Unpark brings a parked sale back (phase 0) for c (ref "" is c's most
// recently parked sale). A presell is claimed: by a counter, or by the
// tablet that made it; force (admin) takes it over from a live holder.
// Any other parked sale goes to its own holder, or to a counter.
func (s *Service) Unpark(ctx context.Context, tx *lanedb.Tx, c *protocol.Caller, ref string, force bool) (*SaleView, error) {
	if err := namesSale(c, ref, "an unpark"); err != nil {
		return nil, err
	}
	sale, err := resolveParked(ctx, tx, c, ref)
	if err != nil {
		return nil, err
	}
	if _, err := checkPaidFor(ctx, tx, sale, c); err != nil {
		return nil, err
	}
	p, err := readParts(ctx, tx, sale)
	if err != nil {
		return nil, err
	}
	if sale.Presell {
		if !c.HasKeyName(sale.CreatedBy) && !c.ActFor(protocol.ScopeCounter) {
			if sale.ClaimState.Held(s.now()) {
				return nil, s.ClaimedError(sale, c)
			}
			return nil, protocol.Errorf(protocol.CodeClaimed, "presell %s belongs to %q; only it or a counter may take it", sale.Physkey, sale.CreatedBy)
		}
		if sale, err = s.presells.Claim(ctx, tx, c, sale, force); err != nil {
			return nil, err
		}
		return s.emitParts(ctx, tx, EvSaleStatus, c.KeyName, sale, p)
	}
	if err := CheckPhase(sale, lanedb.PhaseParked); err != nil {
		return nil, err
	}
	if !c.HasKeyID(sale.HolderKey) && !c.ActFor(protocol.ScopeCounter) {
		if err := s.CheckWriter(sale, c); err != nil {
			return nil, err
		}
	}
	sale.Phase = lanedb.PhaseActive
	sale.HolderKey, sale.HolderName = c.KeyID, c.KeyName
	if err := s.save(ctx, tx, c, sale); err != nil {
		return nil, err
	}
	return s.emitParts(ctx, tx, EvSaleStatus, c.KeyName, sale, p)
}

// CompletedView is a completed sale with the change due.
type CompletedView struct {
	*SaleView
	Change protocol.Money `json:"change"`
}

// Complete completes a sale paid in full (phase 4), giving it its sid.
func (s *Service) Complete(ctx context.Context, tx *lanedb.Tx, c *protocol.Caller, ref string) (*CompletedView, error) {
	if err := namesSale(c, ref, "a completion"); err != nil {
		return nil, err
	}
	sale, r, err := s.forChange(ctx, tx, c, ref)
	if err != nil {
		return nil, err
	}
	lines, err := lanedb.LineCount(ctx, tx, sale.Physkey)
	if err != nil {
		return nil, err
	}
	if lines == 0 {
		return nil, protocol.Errorf(protocol.CodeConflict, "sale %s has no lines to complete; cancel it instead", sale.Physkey)
	}
	paid, err := paidSoFar(ctx, tx, sale, r)
	if err != nil {
		return nil, err
	}
	p, err := readParts(ctx, tx, sale)
	if err != nil {
		return nil, err
	}
	sale.SaleTotalCents = linesTotal(p.lines)
	if paid < sale.SaleTotalCents {
		return nil, protocol.Errorf(protocol.CodeUnderpaid, "sale %s totals %s but %s is paid; add %s more",
			sale.Physkey, protocol.Money(sale.SaleTotalCents), protocol.Money(paid), protocol.Money(sale.SaleTotalCents-paid))
	}
	if err := changeFromCash(sale, p.payments, paid); err != nil {
		return nil, err
	}
	sid, err := lanedb.NextSID(ctx, tx)
	if err != nil {
		return nil, err
	}
	now := s.now()
	sale.SID = sql.NullInt64{Int64: sid, Valid: true}
	sale.Phase = lanedb.PhaseCompleted
	sale.CompletedDT = sql.NullString{String: now.In(s.loc).Format(lanedb.DateTime), Valid: true}
	sale.CompletedDTUTC = sql.NullString{String: now.UTC().Format(lanedb.DateTime), Valid: true}
	if err := s.closeSale(ctx, tx, c, sale, "completed", map[string]any{"sid": sid, "ticket": sale.Ticket.Int64}); err != nil {
		return nil, err
	}
	view, err := s.emitParts(ctx, tx, EvSaleStatus, c.KeyName, sale, p)
	if err != nil {
		return nil, err
	}
	return &CompletedView{SaleView: view, Change: protocol.Money(paid - sale.SaleTotalCents)}, nil
}

// closeSale writes a sale that is leaving the open phases (completed or
// void): its claim ends and, for a presell, the journal says so. The
// ticket is free from here on (tickets are unique among open presells).
func (s *Service) closeSale(ctx context.Context, tx *lanedb.Tx, c *protocol.Caller, sale *lanedb.Sale, event string, detail map[string]any) error {
	if err := s.save(ctx, tx, c, sale); err != nil {
		return err
	}
	return s.presells.Closed(ctx, tx, c, sale, event, detail)
}

// Cancel voids an active or parked sale (phase 10000), keeping it for
// audit with who, when and reason. Who may is checkCanceller's rule.
func (s *Service) Cancel(ctx context.Context, tx *lanedb.Tx, c *protocol.Caller, ref, reason string) (*SaleView, error) {
	if err := namesSale(c, ref, "a cancel"); err != nil {
		return nil, err
	}
	sale, err := s.resolve(ctx, tx, c, ref)
	if err != nil {
		return nil, err
	}
	if err := CheckPhase(sale, lanedb.PhaseActive, lanedb.PhaseParked); err != nil {
		return nil, err
	}
	if err := s.checkCanceller(sale, c); err != nil {
		return nil, err
	}
	if _, err := checkPaidFor(ctx, tx, sale, c); err != nil {
		return nil, err
	}
	p, err := readParts(ctx, tx, sale)
	if err != nil {
		return nil, err
	}
	if err := s.Void(ctx, tx, c, sale, c.KeyName, reason, "voided"); err != nil {
		return nil, err
	}
	return s.emitParts(ctx, tx, EvSaleStatus, c.KeyName, sale, p)
}

// checkCanceller says whether c may void sale. A void is checked as a
// payment is (CheckWriter): by the sale's holder, or under c's own claim.
// A counter scope alone is not enough: voiding a sale another key is
// building or paying for, or a presell nobody recalled, would take it from
// under them where paying it is refused; a counter recalls a presell first
// (F9 on the counter page does). Two exceptions, neither while another
// device holds a live claim: the tablet that made a presell may withdraw
// it, and an admin key may void any sale (the integration suite's -url
// cleanup and a lost till's leftovers rely on it; `presell void --force`
// and a forced recall are how a live claim is overridden).
func (s *Service) checkCanceller(sale *lanedb.Sale, c *protocol.Caller) error {
	claim := sale.ClaimState
	if claim.Session.Valid && (claim.Session.String == c.Session || claim.Held(s.now())) {
		err := s.CheckWriter(sale, c)
		if pe := (*protocol.Error)(nil); errors.As(err, &pe) && pe.Code == protocol.CodeClaimed && c.ActFor(protocol.ScopeAdmin) {
			// An admin may override a live claim, but not by a cancel:
			// say how, rather than only who holds it.
			if s.SessionGone(claim.Session.String) {
				return protocol.Errorf(protocol.CodeClaimed, "presell %s is held by %q for %s, though that connection has closed; %s",
					sale.Physkey, claim.Name.String, s.claimLeft(claim), adminHint)
			}
			return protocol.Errorf(protocol.CodeClaimed, "%s; %s", pe.Message, adminHint)
		}
		return err
	}
	if sale.Presell && c.HasKeyName(sale.CreatedBy) {
		return nil
	}
	var err error
	if sale.Phase == lanedb.PhaseParked && sale.Presell && sale.Ticket.Valid {
		// What a payment hears: it changes again once a counter recalls it.
		err = CheckPhase(sale, lanedb.PhaseActive)
	} else {
		err = s.CheckWriter(sale, c)
	}
	if err != nil && c.ActFor(protocol.ScopeAdmin) {
		return nil
	}
	return err
}

// Void sets phase 10000 with who, when and why, and tells the presell
// workflow (event names the presell journal's event: voided, expired). It
// journals no custdisp event: the caller does, once the sale is written.
// A sale holding a payment is never voided, by anyone: the money would be
// orphaned.
func (s *Service) Void(ctx context.Context, tx *lanedb.Tx, c *protocol.Caller, sale *lanedb.Sale, by, reason, event string) error {
	if err := refuseIfPaid(ctx, tx, sale); err != nil {
		return err
	}
	sale.Phase = lanedb.PhaseVoid
	sale.VoidedUTC = sql.NullString{String: s.utcNow(), Valid: true}
	sale.VoidedBy = sql.NullString{String: by, Valid: true}
	detail := map[string]any{"ticket": sale.Ticket.Int64}
	if reason != "" {
		detail["reason"] = reason
	}
	return s.closeSale(ctx, tx, c, sale, event, detail)
}

// Emit journals the custdisp event of a change to the sale v shows (""
// journals nothing), for displays to follow.
func (s *Service) Emit(ctx context.Context, tx *lanedb.Tx, event, actor string, v *SaleView) error {
	if event == "" {
		return nil
	}
	return s.emit(ctx, tx, event, actor, v)
}

// EmitSale reads a sale written in tx and journals its custdisp event;
// it answers the sale as the display sees it.
func (s *Service) EmitSale(ctx context.Context, tx *lanedb.Tx, event, actor string, sale *lanedb.Sale) (*SaleView, error) {
	p, err := readParts(ctx, tx, sale)
	if err != nil {
		return nil, err
	}
	return s.emitParts(ctx, tx, event, actor, sale, p)
}

// emitParts is EmitSale for a change that read the sale's parts before it
// wrote the row (and changed none of them).
func (s *Service) emitParts(ctx context.Context, tx *lanedb.Tx, event, actor string, sale *lanedb.Sale, p parts) (*SaleView, error) {
	v := p.view(sale)
	return v, s.Emit(ctx, tx, event, actor, v)
}
