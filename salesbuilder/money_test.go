package salesbuilder_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/greenlane-pos/greenlane/lanedb"
	"github.com/greenlane-pos/greenlane/protocol"
)

// wantMessage checks an error's code and that its message names each part.
func wantMessage(t *testing.T, err error, code protocol.Code, parts ...string) {
	t.Helper()
	wantCode(t, err, code)
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("message %q does not say %q", err.Error(), p)
		}
	}
}

// counterSale is a sale a counter rings up itself.
func (l *lane) counterSale(till *protocol.Caller, lines ...map[string]any) string {
	l.t.Helper()
	k := l.sale(till, "salesbuilder.sale_create", "", nil).Physkey
	for _, v := range lines {
		l.sale(till, "salesbuilder.sale_add_product", k, v)
	}
	return k
}

func (l *lane) phase(k string) int {
	l.t.Helper()
	var p int
	if err := l.db.Read.Get(&p, `SELECT phase FROM sales WHERE physkey = ?`, k); err != nil {
		l.t.Fatal(err)
	}
	return p
}

// TestCancelRefusedWhileAPaymentIsHeld: the first scenario. A sale
// with $11.50 cash on it is not cancelled, under any of the cancel names,
// until a counter reverses the payment.
func TestCancelRefusedWhileAPaymentIsHeld(t *testing.T) {
	l := newLane(t)
	till := counter("counter-1")
	k := l.counterSale(till, map[string]any{"pid": 1020}) // toastie 11.50
	l.sale(till, "salesbuilder.sale_add_payment", k, map[string]any{"type": 1, "amount": 11.5})
	for _, a := range []string{"salesbuilder.salesbuilder_cancel", "salesbuilder.sale_cancel", "fd1.salesbuilder.salesbuilder_cancel"} {
		_, err := l.call(till, a, k, nil, "")
		wantMessage(t, err, protocol.CodeHasPayments, "$11.50", "fd1.salesbuilder.sale_remove_payment")
	}
	if p := l.phase(k); p != lanedb.PhaseActive {
		t.Fatalf("phase %d after refused cancels", p)
	}
	// The counter reverses the payment; then the sale may go.
	s := l.sale(till, "salesbuilder.sale_remove_payment", k, map[string]any{"seq": 1})
	if len(s.Payments) != 0 {
		t.Fatalf("payments after reversal: %+v", s.Payments)
	}
	if s = l.sale(till, "salesbuilder.salesbuilder_cancel", k, nil); s.Phase != lanedb.PhaseVoid {
		t.Fatalf("cancel after reversal: phase %d", s.Phase)
	}
	// The reversed payment stays on file, flagged.
	var flags int64
	if err := l.db.Read.Get(&flags, `SELECT payflags FROM payments WHERE sale_physkey = ? AND sequence = 1`, k); err != nil {
		t.Fatal(err)
	}
	if flags&lanedb.PayFlagReversed == 0 {
		t.Fatalf("payflags %#x: not marked reversed", flags)
	}
}

// TestLineChangesCannotGoBelowWhatWasPaid: every kind of change that lowers
// the total is refused once the total would fall below the payments.
func TestLineChangesCannotGoBelowWhatWasPaid(t *testing.T) {
	tests := []struct {
		name string
		a    string
		v    map[string]any
		ok   bool
	}{
		{"remove a line", "salesbuilder.sale_remove_line", map[string]any{"seqnce": 1}, false},
		{"lower a qty", "salesbuilder.sale_edit_line", map[string]any{"seqnce": 1, "qty": 1}, false},
		{"override a price", "salesbuilder.sale_edit_line", map[string]any{"seqnce": 1, "price": 1}, false},
		{"a discounted customer", "salesbuilder.sale_set_customer", map[string]any{"cid": 3}, false},
		{"down to exactly what was paid", "salesbuilder.sale_remove_line", map[string]any{"seqnce": 2}, true},
		{"add a line", "salesbuilder.sale_add_product", map[string]any{"pid": 1001}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newLane(t)
			till := counter("counter-1")
			k := l.counterSale(till, map[string]any{"pid": 1001, "qty": 2}, map[string]any{"pid": 1008}) // 11.00 + 0.80
			l.sale(till, "salesbuilder.sale_add_payment", k, map[string]any{"type": 3, "amount": 11})
			_, err := l.call(till, tt.a, k, tt.v, "")
			if tt.ok {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			wantMessage(t, err, protocol.CodeHasPayments, "$11.00")
			if s := l.sale(till, "salesbuilder.sale_fetch", k, nil); s.SaleTotal != 1180 || len(s.Lines) != 2 {
				t.Fatalf("the refused change left total %d, %d lines", s.SaleTotal, len(s.Lines))
			}
		})
	}
}

// TestTabletCannotUndoWhatACounterTookMoneyOn: the second scenario.
// A counter takes $7.50 on a presell and releases it; the tablet that made
// it can no longer unpark, change or cancel it, nor can anyone void it.
func TestTabletCannotUndoWhatACounterTookMoneyOn(t *testing.T) {
	l := newLane(t)
	tab, till := tablet("tablet-1"), counter("counter-1")
	p := l.submitted(tab, 1001, 1002) // 11.00
	k := p.Physkey
	if _, err := l.call(till, "presell.recall", k, nil, ""); err != nil {
		t.Fatal(err)
	}
	l.sale(till, "salesbuilder.sale_add_payment", k, map[string]any{"type": 1, "amount": 7.5})
	l.sale(till, "presell.release", k, nil)

	for _, c := range []struct {
		a string
		v map[string]any
	}{
		{"salesbuilder.sale_unpark", nil},
		{"salesbuilder.sale_remove_line", map[string]any{"seqnce": 1}},
		{"salesbuilder.sale_add_product", map[string]any{"pid": 1003}},
		{"salesbuilder.sale_set_customer", map[string]any{"cid": 3}},
		{"salesbuilder.sale_park", nil},
		{"salesbuilder.salesbuilder_cancel", nil},
		{"salesbuilder.sale_cancel", nil},
	} {
		_, err := l.call(tab, c.a, k, c.v, "")
		wantMessage(t, err, protocol.CodeHasPayments, "$7.50", "counter")
	}
	if _, err := l.svc.VoidPresell(context.Background(), k, "cli", "", true); err == nil || !strings.Contains(err.Error(), "$7.50") {
		t.Fatalf("greenlane presell void of a presell holding money: %v", err)
	}
	l.advance(13 * time.Hour)
	if voided, err := l.svc.ExpireAbandoned(context.Background(), 0, "sweeper"); err != nil || len(voided) != 0 {
		t.Fatalf("the sweeper voided %v (%v)", voided, err)
	}
	if ph := l.phase(k); ph != lanedb.PhaseParked {
		t.Fatalf("phase %d, want still parked", ph)
	}
	// A counter may still finish it.
	if _, err := l.call(till, "presell.recall", k, nil, ""); err != nil {
		t.Fatal(err)
	}
	l.sale(till, "salesbuilder.sale_add_payment", k, map[string]any{"type": 3, "amount": 3.5})
	if _, err := l.call(till, "salesbuilder.salesbuilder_complete", k, nil, ""); err != nil {
		t.Fatal(err)
	}
}

// TestRemovePayment: by sequence, counter scope, claims respected, ik
// replayed, never the same payment twice, sequences never reused.
func TestRemovePayment(t *testing.T) {
	l := newLane(t)
	tab, till, other := tablet("tablet-1"), counter("counter-1"), counter("counter-2")
	k := l.submitted(tab, 1001, 1002).Physkey // 11.00
	if _, err := l.call(till, "presell.recall", k, nil, ""); err != nil {
		t.Fatal(err)
	}
	l.sale(till, "salesbuilder.sale_add_payment", k, map[string]any{"type": 1, "amount": 5})
	l.sale(till, "salesbuilder.sale_add_payment", k, map[string]any{"type": 3, "amount": 2})

	_, err := l.call(tab, "salesbuilder.sale_remove_payment", k, map[string]any{"seq": 1}, "")
	wantCode(t, err, protocol.CodeForbidden)
	_, err = l.call(other, "salesbuilder.sale_remove_payment", k, map[string]any{"seq": 1}, "")
	wantCode(t, err, protocol.CodeClaimed)
	_, err = l.call(till, "salesbuilder.sale_remove_payment", k, map[string]any{"seq": 7}, "")
	wantMessage(t, err, protocol.CodeNotFound, "seq 7", "1 (Cash $5.00)", "2 (Eftpos $2.00)")
	_, err = l.call(till, "salesbuilder.sale_remove_payment", k, map[string]any{}, "")
	wantCode(t, err, protocol.CodeBadArgument)

	ik := "0193a7a0-0000-7000-8000-000000000001"
	first, err := l.call(till, "salesbuilder.sale_remove_payment", k, map[string]any{"seq": 2}, ik)
	if err != nil {
		t.Fatal(err)
	}
	again, err := l.call(till, "salesbuilder.sale_remove_payment", k, map[string]any{"seq": 2}, ik)
	if err != nil {
		t.Fatalf("retry with the same ik: %v", err)
	}
	if a, b := viewOf(t, first), viewOf(t, again); len(a.Payments) != 1 || len(b.Payments) != 1 || a.Payments[0].Sequence != 1 {
		t.Fatalf("after reversal: %+v, retry %+v", a.Payments, b.Payments)
	}
	_, err = l.call(till, "salesbuilder.sale_remove_payment", k, map[string]any{"seq": 2}, "")
	wantMessage(t, err, protocol.CodeNotFound, "seq 2")
	s := l.sale(till, "salesbuilder.sale_add_payment", k, map[string]any{"type": 1, "amount": 1})
	if last := s.Payments[len(s.Payments)-1]; last.Sequence != 3 {
		t.Fatalf("a new payment reused sequence %d", last.Sequence)
	}

	// Journalled: the presell event with what was reversed, and the
	// display's payments.delete with the sale as it now is.
	var rows []struct {
		Family string `db:"family"`
		Event  string `db:"event"`
		Actor  string `db:"actor"`
		Detail string `db:"detail"`
	}
	if err := l.db.Read.Select(&rows, `SELECT family, event, actor, detail FROM journal WHERE physkey = ? AND event IN ('payment_reversed', 'sale.payments.delete') ORDER BY seq`, k); err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 || rows[0].Actor != "counter-1" || rows[1].Actor != "counter-1" ||
		!strings.Contains(rows[0].Detail, `"seq":2`) || !strings.Contains(rows[0].Detail, `"amount":2`) {
		t.Fatalf("journal: %+v", rows)
	}
}

// TestChangeIsGivenFromCashOnly: a non-cash tender may not exceed the
// balance due; cash may, and the excess is change, up to MaxCashChange
// (500 by default). Once nothing is due, no tender is taken at all.
func TestChangeIsGivenFromCashOnly(t *testing.T) {
	const bad, done = protocol.CodeBadArgument, protocol.CodeConflict
	tests := []struct {
		name     string
		before   []map[string]any // payments already taken
		pay      map[string]any
		wantCode protocol.Code // "" when the payment is taken
		wantSays []string
	}{
		{"eftpos exactly the balance", nil, map[string]any{"type": 3, "amount": 5.5}, "", nil},
		{"eftpos a cent over", nil, map[string]any{"type": 3, "amount": 5.51}, bad, []string{"Eftpos", "$5.51", "balance due of $5.50"}},
		{"account 100,000,000", nil, map[string]any{"type": 200, "amount": 100000000}, bad, []string{"Account", "$5.50"}},
		{"cash 20", nil, map[string]any{"type": 1, "amount": 20}, "", nil},
		{"cash leaving the most change", nil, map[string]any{"type": 1, "amount": 505.5}, "", nil},
		{"cash leaving a cent more", nil, map[string]any{"type": 1, "amount": 505.51}, bad, []string{"$500.01 in change", "--max-cash-change 500"}},
		{"cash 100,000,000", nil, map[string]any{"type": 1, "amount": 100000000}, bad, []string{"$99999994.50 in change"}},
		{"eftpos the rest after cash", []map[string]any{{"type": 1, "amount": 2}}, map[string]any{"type": 3, "amount": 3.5}, "", nil},
		{"eftpos over the rest after cash", []map[string]any{{"type": 1, "amount": 2}}, map[string]any{"type": 3, "amount": 3.51}, bad, []string{"$3.50"}},
		{"eftpos on a paid sale", []map[string]any{{"type": 1, "amount": 10}}, map[string]any{"type": 3, "amount": 0.01}, done, []string{"nothing is due", "paid $10.00"}},
		{"cash pressed twice", []map[string]any{{"type": 1, "amount": 5.5}}, map[string]any{"type": 1, "amount": 5.5}, done, []string{"nothing is due", "total $5.50", "salesbuilder_complete"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newLane(t)
			till := counter("counter-1")
			k := l.counterSale(till, map[string]any{"pid": 1001}) // 5.50
			for _, p := range tt.before {
				l.sale(till, "salesbuilder.sale_add_payment", k, p)
			}
			_, err := l.call(till, "salesbuilder.sale_add_payment", k, tt.pay, "")
			if tt.wantCode == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			wantMessage(t, err, tt.wantCode, tt.wantSays...)
			if s := l.sale(till, "salesbuilder.sale_fetch", k, nil); len(s.Payments) != len(tt.before) {
				t.Fatalf("refused payment was kept: %+v", s.Payments)
			}
		})
	}
}

// TestAccountPaymentNeedsACustomer: a charge-account payment charges the
// sale's customer, so it is refused on a sale with none (it would be owed
// by nobody), and the customer cannot be taken off while it stands; moving
// it to another customer, or taking the customer off once it is reversed,
// is fine.
func TestAccountPaymentNeedsACustomer(t *testing.T) {
	l := newLane(t)
	till := counter("counter-1")
	k := l.counterSale(till, map[string]any{"pid": 1001}) // 5.50
	account := map[string]any{"type": 200, "amount": 5.5}
	_, err := l.call(till, "salesbuilder.sale_add_payment", k, account, "")
	wantMessage(t, err, protocol.CodeConflict, "Account", "no customer", "sale_set_customer")
	l.sale(till, "salesbuilder.sale_set_customer", k, map[string]any{"cid": 1})
	if s := l.sale(till, "salesbuilder.sale_add_payment", k, account); len(s.Payments) != 1 {
		t.Fatalf("the account payment with a customer on the sale: payments %+v", s.Payments)
	}
	_, err = l.call(till, "salesbuilder.sale_set_customer", k, map[string]any{"cid": 0}, "")
	wantMessage(t, err, protocol.CodeConflict, "$5.50 charged to the customer's account", "sale_remove_payment")
	if s := l.sale(till, "salesbuilder.sale_fetch", k, nil); s.Customer == nil || s.Customer.CID != 1 {
		t.Fatalf("the refused change took the customer off: %+v", s.Customer)
	}
	l.sale(till, "salesbuilder.sale_set_customer", k, map[string]any{"cid": 2})
	l.sale(till, "salesbuilder.sale_remove_payment", k, map[string]any{"seq": 1})
	l.sale(till, "salesbuilder.sale_set_customer", k, map[string]any{"cid": 0})
}

// TestSaleLineCap: past MaxSaleLines a line is refused with limit_reached.
func TestSaleLineCap(t *testing.T) {
	l := newLane(t, func(o *Options) { o.MaxSaleLines = 3 })
	tab := tablet("tablet-1")
	k := l.sale(tab, "salesbuilder.sale_create", "", nil).Physkey
	for i := 0; i < 3; i++ {
		l.sale(tab, "salesbuilder.sale_add_product", k, map[string]any{"pid": 1025, "qty": 1})
	}
	_, err := l.call(tab, "salesbuilder.sale_add_product", k, map[string]any{"pid": 1025, "qty": 1}, "")
	wantMessage(t, err, protocol.CodeLimitReached, "3 lines", "--max-sale-lines")
	// Removing a line makes room again.
	l.sale(tab, "salesbuilder.sale_remove_line", k, map[string]any{"seqnce": 1})
	l.sale(tab, "salesbuilder.sale_add_product", k, map[string]any{"pid": 1025, "qty": 1})

	if d := DefaultOptions(); d.MaxSaleLines != 500 || d.MaxOpenPresells != 200 {
		t.Fatalf("defaults: %d lines, %d presells", d.MaxSaleLines, d.MaxOpenPresells)
	}
}

// TestOpenPresellCapPerKey: a key with MaxOpenPresells open presells gets
// limit_reached saying how many and how to free them; other keys are not
// affected; closing one frees a place; concurrent creates never overshoot.
func TestOpenPresellCapPerKey(t *testing.T) {
	l := newLane(t, func(o *Options) { o.MaxOpenPresells = 3 })
	tab, tab2, till := tablet("tablet-1"), tablet("tablet-2"), counter("counter-1")
	var made []*SaleView
	for i := 0; i < 2; i++ {
		made = append(made, l.submitted(tab, 1001))
	}
	l.sale(tab, "salesbuilder.sale_create", "", nil) // built, not yet submitted: open too
	_, err := l.call(tab, "salesbuilder.sale_create", "", nil, "")
	wantMessage(t, err, protocol.CodeLimitReached, `"tablet-1" has 3 open presells on this lane`, "greenlane presell void", "12h0m0s", "--presell-max-age")
	l.sale(tab2, "salesbuilder.sale_create", "", nil)

	// A completed presell frees its place.
	k := made[0].Physkey
	if _, err := l.call(till, "presell.recall", k, nil, ""); err != nil {
		t.Fatal(err)
	}
	l.sale(till, "salesbuilder.sale_add_payment", k, map[string]any{"type": 1, "amount": 5.5})
	if _, err := l.call(till, "salesbuilder.salesbuilder_complete", k, nil, ""); err != nil {
		t.Fatal(err)
	}
	l.sale(tab, "salesbuilder.sale_create", "", nil)

	// Concurrent creates by one key: exactly the free places are taken.
	racer := tablet("tablet-3")
	var wg sync.WaitGroup
	var mu sync.Mutex
	won, full := 0, 0
	for i := 0; i < 12; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := l.call(racer, "salesbuilder.sale_create", "", nil, "")
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				won++
			case protocol.AsError(err).Code == protocol.CodeLimitReached:
				full++
			default:
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if won != 3 || full != 9 {
		t.Fatalf("12 concurrent creates: %d made, %d refused; want 3 and 9", won, full)
	}
	var n int
	if err := l.db.Read.Get(&n, `SELECT COUNT(*) FROM sales WHERE created_by = 'tablet-3' AND phase IN (0, 5)`); err != nil || n != 3 {
		t.Fatalf("open presells of tablet-3: %d (%v)", n, err)
	}
}

// TestOpenSaleCapPerKey: a key holding MaxOpenSales open ordinary sales
// gets limit_reached naming the flag; parked ones count, presells and
// finished sales do not, nor do other keys or an admin key.
func TestOpenSaleCapPerKey(t *testing.T) {
	l := newLane(t, func(o *Options) { o.MaxOpenSales = 2 })
	till, till2 := counter("counter-1"), counter("counter-2")
	admin := &protocol.Caller{KeyID: "id-admin", KeyName: "admin", Scopes: []protocol.Scope{protocol.ScopeAdmin}, Session: "session-admin"}
	presell := l.submitted(tablet("tablet-1"), 1001).Physkey
	if _, err := l.call(till, "presell.recall", presell, nil, ""); err != nil { // held, but a presell
		t.Fatal(err)
	}
	first := l.counterSale(till, map[string]any{"pid": 1001, "qty": 1})
	l.sale(till, "salesbuilder.sale_park", first, nil) // parked: still open
	l.sale(till, "salesbuilder.sale_create", "", nil)
	_, err := l.call(till, "salesbuilder.sale_create", "", nil, "")
	wantMessage(t, err, protocol.CodeLimitReached, `"counter-1" holds 2 open sales`, "--max-open-sales")

	l.sale(till2, "salesbuilder.sale_create", "", nil) // another key
	for range 3 {
		l.sale(admin, "salesbuilder.sale_create", "", nil) // the operator's key is not counted
	}

	// A finished sale frees its place.
	l.sale(till, "salesbuilder.sale_unpark", first, nil)
	l.sale(till, "salesbuilder.sale_add_payment", first, map[string]any{"type": 1, "amount": 100})
	if _, err := l.call(till, "salesbuilder.salesbuilder_complete", first, nil, ""); err != nil {
		t.Fatal(err)
	}
	l.sale(till, "salesbuilder.sale_create", "", nil)
	if d := DefaultOptions(); d.MaxOpenSales != 200 {
		t.Fatalf("default MaxOpenSales %d, want 200", d.MaxOpenSales)
	}
}

// TestPaidSaleOfAnotherTabletStaysPrivate: a tablet touching another
// tablet's paid presell hears that there is no such sale (a tablet sees only
// its own sales), never what was paid.
func TestPaidSaleOfAnotherTabletStaysPrivate(t *testing.T) {
	l := newLane(t)
	tab, other, till := tablet("tablet-1"), tablet("tablet-2"), counter("counter-1")
	k := l.submitted(tab, 1001).Physkey
	if _, err := l.call(till, "presell.recall", k, nil, ""); err != nil {
		t.Fatal(err)
	}
	l.sale(till, "salesbuilder.sale_add_payment", k, map[string]any{"type": 1, "amount": 2})
	l.sale(till, "presell.release", k, nil)
	for _, c := range []struct {
		a    string
		v    map[string]any
		want protocol.Code
	}{
		{"salesbuilder.sale_unpark", nil, protocol.CodeNotFound},
		{"salesbuilder.salesbuilder_cancel", nil, protocol.CodeNotFound},
		{"salesbuilder.sale_add_product", map[string]any{"pid": 1001}, protocol.CodeNotFound},
	} {
		_, err := l.call(other, c.a, k, c.v, "")
		wantCode(t, err, c.want)
		if strings.Contains(err.Error(), "$2.00") {
			t.Fatalf("%s by another tablet tells what was paid: %v", c.a, err)
		}
	}
}
