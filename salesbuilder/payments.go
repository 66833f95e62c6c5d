package salesbuilder

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jmoiron/sqlx"

	"github.com/greenlane-pos/greenlane/lanedb"
	"github.com/greenlane-pos/greenlane/protocol"
)

// Money already taken is never orphaned: a sale that holds a payment
// cannot be cancelled, voided or brought below what was paid, and once it
// holds one only a counter may change it. A counter gives money back with
// sale_remove_payment, which reverses one payment (the row stays, flagged,
// for audit) and journals the change like every other.

// cashGlobalCode is the global payment code of cash (SPEC §9.3: 1 cash,
// 3 eftpos, 200 account). The lane DB's payment_types has no "gives
// change" flag, so the documented global code decides: only cash may be
// tendered above the balance due, the excess being the change.
const cashGlobalCode = 1

// accountGlobalCode is the global code of a charge-account payment: it
// charges the sale's customer, so it needs one on the sale, for as long as
// it stands.
const accountGlobalCode = 200

// checkAccountHolder refuses a charge-account payment to a sale with no
// customer (or one no longer in the lane DB): it would be owed by nobody.
func checkAccountHolder(ctx context.Context, tx *lanedb.Tx, sale *lanedb.Sale, pt *lanedb.PaymentType) error {
	if pt.GlobalCode != accountGlobalCode {
		return nil
	}
	customer, err := SaleCustomer(ctx, tx, sale)
	if err != nil {
		return err
	}
	if customer == nil {
		return protocol.Errorf(protocol.CodeConflict,
			"a %s payment charges the customer's account, and this sale has no customer: set one first (salesbuilder.sale_set_customer), or take another tender",
			pt.TypeStr)
	}
	return nil
}

// accountCharged is what the sale's charge-account payments add up to.
func accountCharged(payments []lanedb.Payment) int64 {
	var n int64
	for _, p := range payments {
		if p.GlobalCode == accountGlobalCode {
			n += p.AmountCents
		}
	}
	return n
}

// dollars formats cents for a person: 1150 → "$11.50".
func dollars(cents int64) string { return protocol.Money(cents).Dollars() }

// hasPaymentsError says that a sale holds money that must be given back
// before the change asked for.
func hasPaymentsError(paid int64) error {
	return protocol.Errorf(protocol.CodeHasPayments,
		"this sale holds %s in payments: reverse the payments first (fd1.salesbuilder.sale_remove_payment)", dollars(paid))
}

// refuseIfPaid refuses a change (cancel, void) that a sale holding any
// payment must not undergo.
func refuseIfPaid(ctx context.Context, tx *lanedb.Tx, sale *lanedb.Sale) error {
	paid, err := lanedb.PaidCents(ctx, tx, sale.Physkey)
	if err != nil {
		return err
	}
	if paid > 0 {
		return hasPaymentsError(paid)
	}
	return nil
}

// checkPaidFor refuses any change to an open sale holding a payment by a
// caller without the counter scope: a tablet builds and submits, and once
// a counter has taken money the sale is the counter's. It comes before
// the phase and holder checks, so the tablet hears the reason that will
// not go away ("parked: unpark it first" would send it round in circles).
// Only for the caller's own sale: another key's sale is refused by the
// holder checks, without telling this key what was paid on it. It answers
// the payments it read, for the change to use rather than read again.
func checkPaidFor(ctx context.Context, tx *lanedb.Tx, sale *lanedb.Sale, c *protocol.Caller) (read, error) {
	if sale.Phase != lanedb.PhaseActive && sale.Phase != lanedb.PhaseParked {
		return read{}, nil
	}
	if !c.Has(protocol.ScopeCounter) && !c.HasKeyName(sale.CreatedBy) && !c.HasKeyID(sale.HolderKey) {
		return read{}, nil
	}
	payments, err := lanedb.SalePayments(ctx, tx, sale.Physkey)
	if err != nil {
		return read{}, err
	}
	paid := paidOf(payments)
	if paid == 0 || c.ActFor(protocol.ScopeCounter) {
		return read{payments: payments, paysRead: true}, nil
	}
	return read{}, protocol.Errorf(protocol.CodeHasPayments,
		"sale %s holds %s in payments taken at the counter; only a counter can change it now (it can reverse them with fd1.salesbuilder.sale_remove_payment)",
		sale.Physkey, dollars(paid))
}

// paidOf is what the payments that count add up to.
func paidOf(payments []lanedb.Payment) int64 {
	var paid int64
	for _, p := range payments {
		paid += p.AmountCents
	}
	return paid
}

// paidSoFar is what the sale's payments add up to, from r if it read them.
func paidSoFar(ctx context.Context, tx *lanedb.Tx, sale *lanedb.Sale, r read) (int64, error) {
	if r.paysRead {
		return paidOf(r.payments), nil
	}
	return lanedb.PaidCents(ctx, tx, sale.Physkey)
}

// paymentsOf is the sale's payments that count, from r if it read them.
func paymentsOf(ctx context.Context, tx *lanedb.Tx, sale *lanedb.Sale, r read) ([]lanedb.Payment, error) {
	if r.paysRead {
		return r.payments, nil
	}
	return lanedb.SalePayments(ctx, tx, sale.Physkey)
}

// checkTender refuses a tender the drawer should not take: any payment
// once nothing is due (the pay key pressed twice), a non-cash payment above
// the balance due (change is given from the cash drawer only), and cash
// that would leave more than maxChange in change (most likely a slip of
// the decimal point: 1000 keyed for 10.00).
func checkTender(pt *lanedb.PaymentType, amount, total, paid, maxChange int64) error {
	due := total - paid
	if due <= 0 {
		return protocol.Errorf(protocol.CodeConflict,
			"nothing is due on this sale (total %s, paid %s): no payment was taken; complete it (salesbuilder.salesbuilder_complete)",
			dollars(total), dollars(paid))
	}
	if pt.GlobalCode == cashGlobalCode {
		if change := amount - due; change > maxChange {
			return protocol.Errorf(protocol.CodeBadArgument,
				"v.amount: %s cash against %s due would leave %s in change, more than this lane gives (serve --max-cash-change %s): check the amount",
				dollars(amount), dollars(due), dollars(change), protocol.Money(maxChange))
		}
		return nil
	}
	if amount > due {
		return protocol.Errorf(protocol.CodeBadArgument,
			"v.amount: a %s payment of %s is more than the balance due of %s; only cash gives change, so tender at most %s by %s",
			pt.TypeStr, dollars(amount), dollars(due), dollars(due), pt.TypeStr)
	}
	return nil
}

// AddPayment tenders amount cents of the payment type with global code
// typ (SPEC §9.3). Only cash may exceed the balance due (the excess is
// change, at most MaxCashChange), and nothing is taken once nothing is due.
func (s *Service) AddPayment(ctx context.Context, tx *lanedb.Tx, c *protocol.Caller, ref string, typ, amount int64) (*SaleView, error) {
	if err := namesSale(c, ref, "a payment"); err != nil {
		return nil, err
	}
	sale, r, err := s.forChange(ctx, tx, c, ref)
	if err != nil {
		return nil, err
	}
	pt, err := lanedb.PaymentTypeByGlobal(ctx, tx, typ)
	if errors.Is(err, lanedb.ErrNoPaymentType) {
		return nil, unknownPaymentType(ctx, tx, typ)
	}
	if err != nil {
		return nil, err
	}
	paid, err := paidSoFar(ctx, tx, sale, r)
	if err != nil {
		return nil, err
	}
	lines := r.lines
	if lines == nil {
		if lines, err = lanedb.SaleLines(ctx, tx, sale.Physkey); err != nil {
			return nil, err
		}
	}
	sale.SaleTotalCents = linesTotal(lines)
	if err := checkTender(pt, amount, sale.SaleTotalCents, paid, s.maxChange); err != nil {
		return nil, err
	}
	if err := checkAccountHolder(ctx, tx, sale, pt); err != nil {
		return nil, err
	}
	p := &lanedb.Payment{SalePhyskey: sale.Physkey, Type: pt.Code, AmountCents: amount, DT: s.localNow()}
	if err := lanedb.InsertPayment(ctx, tx, p); err != nil {
		return nil, err
	}
	return s.finish(ctx, tx, c, sale, read{lines: lines}, evPaymentsAdd)
}

// namesSale refuses a change that leaves k out in HTTP mode. An HTTP
// request is a session of one, with no sale of its own to be on top:
// without k it would take the key's newest active sale, which another till
// of the key may be ringing up (a k-less cancel voided it). what names the
// change for the message; sale_create makes a new sale and needs no k.
func namesSale(c *protocol.Caller, ref, what string) error {
	if ref == "" && !CanClaim(c) {
		return protocol.Errorf(protocol.CodeBadArgument,
			"k: %s over HTTP must name its sale (the physkey) in k; an HTTP request has no top sale to take it to", what)
	}
	return nil
}

func unknownPaymentType(ctx context.Context, q sqlx.QueryerContext, code int64) error {
	types, err := lanedb.PaymentTypes(ctx, q)
	if err != nil {
		return err
	}
	known := make([]string, len(types))
	for i, t := range types {
		known[i] = fmt.Sprintf("%d %s", t.GlobalCode, t.TypeStr)
	}
	return protocol.Errorf(protocol.CodeBadArgument, "v.type: this lane has no payment type with global code %d (it takes: %s)", code, strings.Join(known, ", "))
}

// RemovePayment reverses one payment of a sale, named by its sequence
// (payments[].sequence in the sale). Like AddPayment it needs the counter
// scope and respects claims; the row stays, flagged reversed, for audit.
func (s *Service) RemovePayment(ctx context.Context, tx *lanedb.Tx, c *protocol.Caller, ref string, seq int64) (*SaleView, error) {
	if err := namesSale(c, ref, "a payment reversal"); err != nil {
		return nil, err
	}
	sale, err := s.ForChange(ctx, tx, c, ref)
	if err != nil {
		return nil, err
	}
	p, err := lanedb.ReversePayment(ctx, tx, sale.Physkey, seq)
	if errors.Is(err, lanedb.ErrNoPayment) {
		return nil, s.noPayment(ctx, tx, sale, seq)
	}
	if err != nil {
		return nil, err
	}
	if sale.Presell {
		if err := s.presells.PaymentReversed(ctx, tx, c, sale, p); err != nil {
			return nil, err
		}
	}
	return s.FinishLines(ctx, tx, c, sale, evPaymentsDel)
}

// noPayment explains a sale_remove_payment whose sequence names no live
// payment, listing those that are.
func (s *Service) noPayment(ctx context.Context, tx *lanedb.Tx, sale *lanedb.Sale, seq int64) error {
	reversed, err := lanedb.PaymentReversed(ctx, tx, sale.Physkey, seq)
	if err != nil {
		return err
	}
	if reversed {
		// A second press of "reverse" (or a retry without an ik) is told
		// the money already went back, not that the payment never was.
		return protocol.Errorf(protocol.CodeNotFound, "payment seq %d of sale %s was already reversed", seq, sale.Physkey)
	}
	payments, err := lanedb.SalePayments(ctx, tx, sale.Physkey)
	if err != nil {
		return err
	}
	if len(payments) == 0 {
		return protocol.Errorf(protocol.CodeNotFound, "sale %s holds no payment to reverse", sale.Physkey)
	}
	live := make([]string, len(payments))
	for i, p := range payments {
		live[i] = fmt.Sprintf("%d (%s %s)", p.Sequence, p.TypeName, dollars(p.AmountCents))
	}
	return protocol.Errorf(protocol.CodeNotFound, "sale %s has no payment with seq %d to reverse; its payments: %s",
		sale.Physkey, seq, strings.Join(live, ", "))
}

// checkLineCount refuses a line past MaxSaleLines to a sale holding n.
func (s *Service) checkLineCount(sale *lanedb.Sale, n int) error {
	if n >= s.maxLines {
		return protocol.Errorf(protocol.CodeLimitReached,
			"sale %s already holds %d lines, the most one sale may hold on this lane (serve --max-sale-lines); raise a line's qty instead, or complete this sale and start another",
			sale.Physkey, n)
	}
	return nil
}

// checkOpenPresells refuses a new presell to a key that already has
// MaxOpenPresells open. It runs inside the write transaction that would
// insert the presell, so concurrent creates cannot both slip under the cap.
func (s *Service) checkOpenPresells(ctx context.Context, tx *lanedb.Tx, createdBy string) error {
	n, err := lanedb.OpenPresellCount(ctx, tx, createdBy)
	if err != nil {
		return err
	}
	if n >= s.maxPresells {
		// On a store database the count is every lane's; the cap is this
		// lane's setting.
		where, most := "on this lane", "the most one key may have"
		if s.db.Postgres() {
			where, most = "across the store's lanes", "the most this lane lets one key have"
		}
		return protocol.Errorf(protocol.CodeLimitReached,
			"key %q has %d open presells %s, %s (serve --max-open-presells); free some: complete or void them at the counter, void them with `greenlane presell void`, or they expire after %s untouched (serve --presell-max-age)",
			createdBy, n, where, most, s.maxAge)
	}
	return nil
}

// checkOpenSales refuses a new ordinary sale to a key that already holds
// MaxOpenSales open ones (admin keys aside). Like checkOpenPresells it runs
// in the transaction that would insert the sale.
func (s *Service) checkOpenSales(ctx context.Context, tx *lanedb.Tx, c *protocol.Caller) error {
	if c.ActsAsAdmin() {
		return nil
	}
	n, err := lanedb.OpenSaleCount(ctx, tx, c.KeyID, s.maxSales)
	if err != nil {
		return err
	}
	if n >= s.maxSales {
		return protocol.Errorf(protocol.CodeLimitReached,
			"key %q holds %d open sales, the most one key may hold (serve --max-open-sales); complete or cancel some before starting another",
			c.KeyName, n)
	}
	return nil
}
