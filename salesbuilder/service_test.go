package salesbuilder_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/greenlane-pos/greenlane/fixtures"
	"github.com/greenlane-pos/greenlane/lanedb"
	"github.com/greenlane-pos/greenlane/presell"
	"github.com/greenlane-pos/greenlane/protocol"
	"github.com/greenlane-pos/greenlane/salesbuilder"
)

// The tests drive the sales core through its FD1 adapter, as a lane does,
// with the presell workflow plugged in: they are black-box tests of both.
type (
	Options    = salesbuilder.Options
	SaleView   = salesbuilder.SaleView
	ActiveView = salesbuilder.ActiveView
)

var (
	New            = salesbuilder.New
	DefaultOptions = salesbuilder.DefaultOptions
	numberWord     = salesbuilder.NumberWord
	discounted     = salesbuilder.Discounted
)

const (
	causeUserPrice        = salesbuilder.CauseUserPrice
	causeCustomerDiscount = salesbuilder.CauseCustomerDiscount
	familyPresell         = presell.Family
	familyCustdisp        = salesbuilder.FamilyCustdisp
	evLinesAdd            = salesbuilder.EvLinesAdd
	evPaymentsAdd         = salesbuilder.EvPaymentsAdd
)

// services is a lane's sales core with the presell workflow in it.
type services struct {
	*salesbuilder.Service
	*presell.Workflow
}

// VoidPresell voids one open presell as the command line does.
func (s services) VoidPresell(ctx context.Context, ticketOrPhyskey, actor, reason string, force bool) (string, error) {
	return s.Workflow.Void(ctx, ticketOrPhyskey, actor, reason, force)
}

// lane is a SalesBuilder on a real demo lane DB, with a clock the test
// moves by hand.
type lane struct {
	t      *testing.T
	db     *lanedb.DB
	w      *lanedb.Writer
	svc    services
	router *protocol.Router

	mu    sync.Mutex
	clock time.Time
}

// advance moves the lane's clock forward.
func (l *lane) advance(d time.Duration) {
	l.mu.Lock()
	l.clock = l.clock.Add(d)
	l.mu.Unlock()
}

func (l *lane) now() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.clock
}

// newLane starts a lane; opts adjust its Options (limits) before it starts.
func newLane(t *testing.T, opts ...func(*Options)) *lane {
	t.Helper()
	ctx := context.Background()
	db, err := lanedb.Open(ctx, filepath.Join(t.TempDir(), "lane.db"), lanedb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	demo, err := fixtures.Find("demo")
	if err != nil {
		t.Fatal(err)
	}
	if err := demo.Load(ctx, db, false); err != nil {
		t.Fatal(err)
	}
	w := db.NewWriter(lanedb.WriterOptions{MaxWait: time.Millisecond, MaxBatch: 16})
	t.Cleanup(func() { w.Close(); db.Close() })
	l := &lane{t: t, db: db, w: w, clock: time.Date(2026, 11, 27, 9, 30, 0, 0, time.UTC)}
	o := Options{Now: l.now, Lease: 2 * time.Minute, PresellMaxAge: 12 * time.Hour}
	for _, f := range opts {
		f(&o)
	}
	s, err := New(ctx, db, w, o)
	if err != nil {
		t.Fatal(err)
	}
	p := presell.New(s)
	l.svc, l.router = services{s, p}, protocol.NewRouter()
	s.Register(l.router)
	p.Register(l.router)
	return l
}

func tablet(name string) *protocol.Caller {
	return &protocol.Caller{KeyID: "id-" + name, KeyName: name, Scopes: []protocol.Scope{protocol.ScopePresell},
		Purpose: protocol.PurposePresell, Session: "session-" + name}
}

func counter(name string) *protocol.Caller {
	return &protocol.Caller{KeyID: "id-" + name, KeyName: name, Scopes: []protocol.Scope{protocol.ScopeCounter},
		Session: "session-" + name}
}

// call runs endpoint a for caller with k and v (any JSON-able value).
func (l *lane) call(c *protocol.Caller, a, k string, v any, ik string) (*protocol.Result, error) {
	l.t.Helper()
	req := &protocol.Request{A: a, IK: ik}
	if k != "" {
		req.K, _ = json.Marshal(k)
	}
	if v != nil {
		req.V, _ = json.Marshal(v)
	}
	ep, err := l.router.Lookup(a)
	if err != nil {
		return nil, err
	}
	if err := ep.Allow(c); err != nil {
		return nil, err
	}
	return ep.Handler(context.Background(), &protocol.Call{Req: req, Caller: c, Endpoint: ep})
}

// callK is call with k as written on the wire.
func (l *lane) callK(c *protocol.Caller, a string, k json.RawMessage, v any, ik string) (*protocol.Result, error) {
	l.t.Helper()
	req := &protocol.Request{A: a, IK: ik, K: k}
	if v != nil {
		req.V, _ = json.Marshal(v)
	}
	ep, err := l.router.Lookup(a)
	if err != nil {
		return nil, err
	}
	return ep.Handler(context.Background(), &protocol.Call{Req: req, Caller: c, Endpoint: ep})
}

// sale runs a call that must succeed and returns the sale in its reply.
func (l *lane) sale(c *protocol.Caller, a, k string, v any) *SaleView {
	l.t.Helper()
	res, err := l.call(c, a, k, v, "")
	if err != nil {
		l.t.Fatalf("%s: %v", a, err)
	}
	return viewOf(l.t, res)
}

func viewOf(t *testing.T, res *protocol.Result) *SaleView {
	t.Helper()
	b, err := json.Marshal(res.Data)
	if err != nil {
		t.Fatal(err)
	}
	var rows struct {
		Rows []SaleView `json:"rows"`
	}
	if json.Unmarshal(b, &rows) == nil && len(rows.Rows) == 1 {
		return &rows.Rows[0]
	}
	var v SaleView
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("reply is not a sale: %s", b)
	}
	return &v
}

func wantCode(t *testing.T, err error, code protocol.Code) {
	t.Helper()
	var pe *protocol.Error
	if !errors.As(err, &pe) {
		t.Fatalf("err = %v, want code %s", err, code)
	}
	if pe.Code != code {
		t.Fatalf("code %s (%s), want %s", pe.Code, pe.Message, code)
	}
}

// submitted builds and submits a presell on a tablet and returns it.
func (l *lane) submitted(tab *protocol.Caller, pids ...int) *SaleView {
	l.t.Helper()
	k := l.sale(tab, "salesbuilder.sale_create", "", nil).Physkey
	for _, pid := range pids {
		l.sale(tab, "salesbuilder.sale_add_product", k, map[string]any{"pid": pid})
	}
	return l.sale(tab, "salesbuilder.sale_park", k, nil)
}

func TestBuildAPresell(t *testing.T) {
	l := newLane(t)
	tab := tablet("tablet-1")
	s := l.sale(tab, "salesbuilder.sale_create", "", nil)
	if s.Presell != 1 || s.Tablet != "tablet-1" || s.Phase != 0 || s.StartDT != "2026-11-27 22:30:00" {
		t.Fatalf("new sale: %+v", s)
	}
	k := s.Physkey
	l.sale(tab, "salesbuilder.sale_add_product", k, map[string]any{"plu": "FW", "qty": 2})            // 2 × 5.50
	l.sale(tab, "salesbuilder.salesbuilder_add_product", "", map[string]any{"pid": 1024, "qty": 250}) // 250 g ham at 39.90/kg = 9.98 (top sale)
	s = l.sale(tab, "salesbuilder.sale_add_product", k, map[string]any{"barcode": firstBarcode(t, l)})
	if len(s.Lines) != 3 || s.Lines[1].Measurement != 1 || s.Lines[1].Price != 998 {
		t.Fatalf("lines: %+v", s.Lines)
	}
	before := s.SaleTotal
	s = l.sale(tab, "salesbuilder.sale_set_customer", k, map[string]any{"cid": 3}) // 10% off
	if s.Customer == nil || s.Customer.Discount != 1000 {
		t.Fatalf("customer: %+v", s.Customer)
	}
	for _, line := range s.Lines {
		if line.PriceCause != causeCustomerDiscount || line.PrediscountPrice == nil || *line.PrediscountPrice <= line.Price {
			t.Fatalf("line not discounted: %+v", line)
		}
	}
	if s.SaleTotal >= before {
		t.Fatalf("total %d not below %d after discount", s.SaleTotal, before)
	}
	s = l.sale(tab, "salesbuilder.sale_park", k, nil)
	if s.Phase != lanedb.PhaseParked || s.Ticket == nil || s.TicketWord == nil || s.TicketBarcode == nil {
		t.Fatalf("parked presell: %+v", s)
	}
	if *s.TicketWord != numberWord(*s.Ticket) {
		t.Errorf("ticket word %q for %d", *s.TicketWord, *s.Ticket)
	}
	// The top sale is gone (parked): a call without k says so.
	_, err := l.call(tab, "salesbuilder.sale_add_product", "", map[string]any{"pid": 1001}, "")
	wantCode(t, err, protocol.CodeNotFound)
	// Editing the parked presell is refused; unpark, edit, park keeps the ticket.
	_, err = l.call(tab, "salesbuilder.sale_add_product", k, map[string]any{"pid": 1001}, "")
	wantCode(t, err, protocol.CodeConflict)
	ticket := *s.Ticket
	l.sale(tab, "salesbuilder.sale_unpark", k, nil)
	l.sale(tab, "salesbuilder.sale_add_product", k, map[string]any{"pid": 1002})
	s = l.sale(tab, "salesbuilder.sale_park", k, nil)
	if *s.Ticket != ticket {
		t.Errorf("re-park changed the ticket %d → %d", ticket, *s.Ticket)
	}
}

func firstBarcode(t *testing.T, l *lane) string {
	var bc string
	if err := l.db.Read.Get(&bc, `SELECT barcode FROM product_barcodes ORDER BY barcode LIMIT 1`); err != nil {
		t.Fatal(err)
	}
	return bc
}

func TestCounterCompletesAndCancels(t *testing.T) {
	l := newLane(t)
	tab, till := tablet("tablet-1"), counter("counter-1")
	k := l.sale(tab, "salesbuilder.sale_create", "", nil).Physkey
	l.sale(tab, "salesbuilder.sale_add_product", k, map[string]any{"pid": 1001, "qty": 3}) // 16.50
	l.sale(tab, "salesbuilder.sale_park", k, nil)

	// The tablet cannot take it back once the counter holds it.
	s := l.sale(till, "salesbuilder.sale_unpark", k, nil)
	if s.Holder != "counter-1" || s.Phase != 0 {
		t.Fatalf("unparked by counter: %+v", s)
	}
	_, err := l.call(tab, "salesbuilder.sale_add_product", k, map[string]any{"pid": 1001}, "")
	wantCode(t, err, protocol.CodeClaimed)

	l.sale(till, "salesbuilder.sale_add_payment", k, map[string]any{"type": 3, "amount": 10})
	_, err = l.call(till, "salesbuilder.salesbuilder_complete", k, nil, "")
	wantCode(t, err, protocol.CodeUnderpaid)
	l.sale(till, "salesbuilder.sale_add_payment", k, map[string]any{"type": 1, "amount": 10})
	res, err := l.call(till, "salesbuilder.salesbuilder_complete", k, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(res.Data)
	var done struct {
		SID         int64   `json:"sid"`
		Phase       int     `json:"phase"`
		CompletedDT string  `json:"completeddt"`
		Change      float64 `json:"change"`
		Ticket      int64   `json:"ticket"`
	}
	if err := json.Unmarshal(b, &done); err != nil || done.SID != 1 || done.Phase != 1 || done.CompletedDT == "" || done.Change != 3.5 || done.Ticket == 0 {
		t.Fatalf("completed: %s", b)
	}
	_, err = l.call(till, "salesbuilder.salesbuilder_cancel", k, nil, "")
	wantCode(t, err, protocol.CodeConflict)

	// A second sale is voided and kept.
	k2 := l.sale(tab, "salesbuilder.sale_create", "", nil).Physkey
	s = l.sale(tab, "salesbuilder.salesbuilder_cancel", k2, nil)
	if s.Phase != lanedb.PhaseVoid {
		t.Fatalf("cancelled: %+v", s)
	}
	var by string
	if err := l.db.Read.Get(&by, `SELECT voided_by FROM sales WHERE physkey = ?`, k2); err != nil || by != "tablet-1" {
		t.Fatalf("voided_by = %q, %v", by, err)
	}
}

func TestLinesKeepSeqnce(t *testing.T) {
	l := newLane(t)
	tab := tablet("t")
	k := l.sale(tab, "salesbuilder.sale_create", "", nil).Physkey
	for _, pid := range []int{1001, 1002, 1003} {
		l.sale(tab, "salesbuilder.sale_add_product", k, map[string]any{"pid": pid})
	}
	l.sale(tab, "salesbuilder.sale_remove_line", k, map[string]any{"seqnce": 3})
	s := l.sale(tab, "salesbuilder.sale_add_product", k, map[string]any{"pid": 1004})
	got := []int64{}
	for _, line := range s.Lines {
		got = append(got, line.Seqnce)
	}
	if fmt.Sprint(got) != "[1 2 4]" {
		t.Fatalf("seqnce after remove+add: %v", got)
	}
	s = l.sale(tab, "salesbuilder.sale_edit_line", k, map[string]any{"seqnce": 2, "qty": 4})
	if s.Lines[1].Qty != 4 || s.Lines[1].Price != 4*s.Lines[1].UnitPrice {
		t.Fatalf("edited line: %+v", s.Lines[1])
	}
	var total int64
	for _, line := range s.Lines {
		total += int64(line.Price)
	}
	if int64(s.SaleTotal) != total {
		t.Fatalf("total %d, lines sum to %d", s.SaleTotal, total)
	}
}

func TestBadInputLeavesTheSaleAlone(t *testing.T) {
	l := newLane(t)
	tab, other, till := tablet("tablet-1"), tablet("tablet-2"), counter("counter-1")
	k := l.sale(tab, "salesbuilder.sale_create", "", nil).Physkey
	l.sale(tab, "salesbuilder.sale_add_product", k, map[string]any{"pid": 1001})
	kc := l.sale(till, "salesbuilder.sale_create", "", nil).Physkey
	l.sale(till, "salesbuilder.sale_add_product", kc, map[string]any{"pid": 1002})
	before := l.sale(tab, "salesbuilder.sale_fetch", k, nil)
	beforeC := l.sale(till, "salesbuilder.sale_fetch", kc, nil)

	tests := []struct {
		name   string
		caller *protocol.Caller
		a, k   string
		v      any
		code   protocol.Code
	}{
		{"unknown pid", tab, "salesbuilder.sale_add_product", k, map[string]any{"pid": 99999}, protocol.CodeUnknownProduct},
		{"unknown plu", tab, "salesbuilder.sale_add_product", k, map[string]any{"plu": "NOPE"}, protocol.CodeUnknownProduct},
		{"pid and plu", tab, "salesbuilder.sale_add_product", k, map[string]any{"pid": 1002, "plu": "FW"}, protocol.CodeBadArgument},
		{"plu and barcode", tab, "salesbuilder.sale_add_product", k, map[string]any{"plu": "FW", "barcode": "9415321000140"}, protocol.CodeBadArgument},
		{"pid and barcode", tab, "salesbuilder.sale_add_product", k, map[string]any{"pid": 1001, "barcode": "9415321000140"}, protocol.CodeBadArgument},
		{"unknown barcode", tab, "salesbuilder.sale_add_product", k, map[string]any{"barcode": "0000000000000"}, protocol.CodeUnknownProduct},
		{"inactive product", tab, "salesbuilder.sale_add_product", k, map[string]any{"pid": 1040}, protocol.CodeUnknownProduct},
		{"no product named", tab, "salesbuilder.sale_add_product", k, map[string]any{"qty": 1}, protocol.CodeBadArgument},
		{"zero qty", tab, "salesbuilder.sale_add_product", k, map[string]any{"pid": 1001, "qty": 0}, protocol.CodeBadArgument},
		{"negative qty", tab, "salesbuilder.sale_add_product", k, map[string]any{"pid": 1001, "qty": -2}, protocol.CodeBadArgument},
		{"float qty", tab, "salesbuilder.sale_add_product", k, map[string]any{"pid": 1001, "qty": 1.5}, protocol.CodeBadArgument},
		{"non-numeric string qty", tab, "salesbuilder.sale_add_product", k, map[string]any{"pid": 1001, "qty": "2abc"}, protocol.CodeBadArgument},
		{"huge qty", tab, "salesbuilder.sale_add_product", k, map[string]any{"pid": 1001, "qty": 1e12}, protocol.CodeBadArgument},
		{"price override without counter scope", tab, "salesbuilder.sale_add_product", k, map[string]any{"pid": 1001, "price": 1}, protocol.CodeForbidden},
		{"not a sale", tab, "salesbuilder.sale_add_product", "nope", map[string]any{"pid": 1001}, protocol.CodeNotFound},
		// A tablet does not see another tablet's sales at all (DESIGN §4).
		{"another tablet's sale", other, "salesbuilder.sale_add_product", k, map[string]any{"pid": 1001}, protocol.CodeNotFound},
		{"another tablet parks it", other, "salesbuilder.sale_park", k, nil, protocol.CodeNotFound},
		{"a tablet takes a payment", tab, "salesbuilder.sale_add_payment", k, map[string]any{"type": 1, "amount": 5}, protocol.CodeForbidden},
		{"a tablet completes", tab, "salesbuilder.salesbuilder_complete", k, nil, protocol.CodeForbidden},
		{"unknown payment type", till, "salesbuilder.sale_add_payment", kc, map[string]any{"type": 42, "amount": 5}, protocol.CodeBadArgument},
		{"negative payment", till, "salesbuilder.sale_add_payment", kc, map[string]any{"type": 1, "amount": -5}, protocol.CodeBadArgument},
		{"sub-cent payment", till, "salesbuilder.sale_add_payment", kc, map[string]any{"type": 1, "amount": 0.001}, protocol.CodeBadArgument},
		{"underpaid", till, "salesbuilder.salesbuilder_complete", kc, nil, protocol.CodeUnderpaid},
		{"the counter pays on a tablet's sale", till, "salesbuilder.sale_add_payment", k, map[string]any{"type": 1, "amount": 5}, protocol.CodeClaimed},
		{"unknown line", tab, "salesbuilder.sale_remove_line", k, map[string]any{"seqnce": 9}, protocol.CodeNotFound},
		{"edit with nothing to change", tab, "salesbuilder.sale_edit_line", k, map[string]any{"seqnce": 1}, protocol.CodeBadArgument},
		{"unknown customer", tab, "salesbuilder.sale_set_customer", k, map[string]any{"cid": 999}, protocol.CodeNotFound},
		{"create with a non-UUID physkey", tab, "salesbuilder.sale_create", "", map[string]any{"physkey": "x'; DROP TABLE sales; --"}, protocol.CodeBadArgument},
		{"unpark an active sale", tab, "salesbuilder.sale_unpark", k, nil, protocol.CodeConflict},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := l.call(tt.caller, tt.a, tt.k, tt.v, "")
			wantCode(t, err, tt.code)
		})
	}
	for _, c := range []struct {
		k      string
		before *SaleView
	}{{k, before}, {kc, beforeC}} {
		after := l.sale(till, "salesbuilder.sale_fetch", c.k, nil)
		a, _ := json.Marshal(c.before)
		b, _ := json.Marshal(after)
		if string(a) != string(b) {
			t.Fatalf("bad input changed the sale:\nbefore %s\nafter  %s", a, b)
		}
	}
}

func TestCounterPriceOverride(t *testing.T) {
	l := newLane(t)
	till := counter("counter-1")
	k := l.sale(till, "salesbuilder.sale_create", "", nil).Physkey
	l.sale(till, "salesbuilder.sale_set_customer", k, map[string]any{"cid": 3})
	s := l.sale(till, "salesbuilder.sale_add_product", k, map[string]any{"pid": 1001, "qty": 2, "price": 4})
	if s.Lines[0].PriceCause != causeUserPrice || s.Lines[0].Price != 800 || s.Presell != 0 {
		t.Fatalf("override line: %+v", s.Lines[0])
	}
	// A later customer change keeps the hand-set price.
	s = l.sale(till, "salesbuilder.sale_set_customer", k, map[string]any{"cid": 0})
	if s.Lines[0].Price != 800 || s.Customer != nil {
		t.Fatalf("after removing customer: %+v", s)
	}
}

// TestIdempotencyKeyIsTheKeysOwn: an ik belongs to the API key that used
// it. Another key that used the same ik first (a till's order number is
// easy to guess) neither blocks this key's request (it was refused
// ik_reused for the whole retention) nor learns that the ik was used.
func TestIdempotencyKeyIsTheKeysOwn(t *testing.T) {
	l := newLane(t)
	tab, till := tablet("tablet-1"), counter("counter-1")
	const ik = "till-3/order-17"
	if _, err := l.call(tab, "salesbuilder.sale_create", "", nil, ik); err != nil {
		t.Fatal(err)
	}
	k := l.counterSale(till, map[string]any{"pid": 1001}) // 5.50
	first, err := l.call(till, "salesbuilder.sale_add_payment", k, map[string]any{"type": 1, "amount": 5.5}, ik)
	if err != nil {
		t.Fatalf("the counter's payment with an ik the tablet used first: %v", err)
	}
	again, err := l.call(till, "salesbuilder.sale_add_payment", k, map[string]any{"type": 1, "amount": 5.5}, ik)
	if err != nil {
		t.Fatalf("the counter's retry: %v", err)
	}
	if a, b := viewOf(t, first), viewOf(t, again); len(a.Payments) != 1 || len(b.Payments) != 1 {
		t.Fatalf("payments after a payment and its retry: %+v then %+v, want one", a.Payments, b.Payments)
	}
	// The same key's ik on another request is still refused.
	_, err = l.call(tab, "salesbuilder.sale_add_product", "", map[string]any{"pid": 1001}, ik)
	wantCode(t, err, protocol.CodeIKReused)
}

func TestIdempotencyKey(t *testing.T) {
	l := newLane(t)
	tab := tablet("tablet-1")
	ikCreate, ikAdd := uuid.NewString(), uuid.NewString()
	first, err := l.call(tab, "salesbuilder.sale_create", "", nil, ikCreate)
	if err != nil {
		t.Fatal(err)
	}
	k := viewOf(t, first).Physkey
	add := map[string]any{"pid": 1001, "qty": 2}
	addFirst, err := l.call(tab, "salesbuilder.sale_add_product", k, add, ikAdd)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		again, err := l.call(tab, "salesbuilder.sale_create", "", nil, ikCreate)
		if err != nil {
			t.Fatal(err)
		}
		a, _ := json.Marshal(first.Data)
		b, _ := json.Marshal(again.Data)
		if string(a) != string(b) {
			t.Fatalf("retry reply differs:\n%s\n%s", a, b)
		}
		addAgain, err := l.call(tab, "salesbuilder.sale_add_product", k, add, ikAdd)
		if err != nil {
			t.Fatal(err)
		}
		a, _ = json.Marshal(addFirst.Data)
		b, _ = json.Marshal(addAgain.Data)
		if string(a) != string(b) {
			t.Fatalf("retry reply differs:\n%s\n%s", a, b)
		}
	}
	var sales, lines int
	_ = l.db.Read.Get(&sales, `SELECT COUNT(*) FROM sales`)
	_ = l.db.Read.Get(&lines, `SELECT COUNT(*) FROM sale_lines`)
	if sales != 1 || lines != 1 {
		t.Fatalf("%d sales and %d lines after retries, want 1 and 1", sales, lines)
	}
	_, err = l.call(tab, "salesbuilder.sale_add_product", k, map[string]any{"pid": 1002}, ikAdd)
	wantCode(t, err, protocol.CodeIKReused)
	_, err = l.call(tab, "salesbuilder.sale_add_product", k, add, "not a key")
	wantCode(t, err, protocol.CodeBadArgument)
	// Any opaque printable key works, compared exactly: a till's own order
	// number is as good as a UUID, and another spelling is another key.
	for _, ik := range []string{"till-3/order-17", "till-3/order-17", "TILL-3/order-17"} {
		if _, err := l.call(tab, "salesbuilder.sale_add_product", k, add, ik); err != nil {
			t.Fatalf("ik %q: %v", ik, err)
		}
	}
	_ = l.db.Read.Get(&lines, `SELECT COUNT(*) FROM sale_lines`)
	if lines != 3 {
		t.Fatalf("%d lines after two non-UUID keys (one retried), want 3", lines)
	}
	// A failed request stores nothing: fixing it and retrying with the same ik works.
	ikBad := uuid.NewString()
	_, err = l.call(tab, "salesbuilder.sale_add_product", k, map[string]any{"pid": 99999}, ikBad)
	wantCode(t, err, protocol.CodeUnknownProduct)
	if _, err := l.call(tab, "salesbuilder.sale_add_product", k, map[string]any{"pid": 99999}, ikBad); err == nil {
		t.Fatal("the failed request succeeded on retry")
	}
}

// TestRetryGetsTheFirstAnswer: a retry is answered what the first run
// answered, and nothing is made twice, whether the change would go through
// again (a second sale, a second payment: its record's INSERT finds the ik
// taken) or would now be refused (a parked sale cannot be parked, a
// completed one completed: the ik is looked for after the refusal). Later
// retries of the key cost a look.
func TestRetryGetsTheFirstAnswer(t *testing.T) {
	tab, till := tablet("tablet-1"), counter("counter-1")
	for _, tc := range []struct {
		name   string
		caller *protocol.Caller
		a      string
		setup  func(l *lane) (k string, v any)
		count  string // what the change made, counted after the retries
		want   int
	}{
		{"create", tab, "salesbuilder.sale_create", func(l *lane) (string, any) { return "", nil },
			`SELECT COUNT(*) FROM sales`, 1},
		{"add a product", tab, "salesbuilder.sale_add_product", func(l *lane) (string, any) {
			return l.sale(tab, "salesbuilder.sale_create", "", nil).Physkey, map[string]any{"pid": 1001}
		}, `SELECT COUNT(*) FROM sale_lines`, 1},
		{"park", tab, "salesbuilder.sale_park", func(l *lane) (string, any) {
			k := l.sale(tab, "salesbuilder.sale_create", "", nil).Physkey
			l.sale(tab, "salesbuilder.sale_add_product", k, map[string]any{"pid": 1001})
			return k, nil
		}, `SELECT COUNT(*) FROM sales WHERE phase = 5 AND ticket IS NOT NULL`, 1},
		{"pay", till, "salesbuilder.sale_add_payment", func(l *lane) (string, any) {
			// Part of the 5.50: a second would go through.
			return l.counterSale(till, map[string]any{"pid": 1001}), map[string]any{"type": 1, "amount": 2}
		}, `SELECT COUNT(*) FROM payments`, 1},
		{"complete", till, "salesbuilder.salesbuilder_complete", func(l *lane) (string, any) {
			k := l.counterSale(till, map[string]any{"pid": 1001})
			l.sale(till, "salesbuilder.sale_add_payment", k, map[string]any{"type": 1, "amount": 5.5})
			return k, nil
		}, `SELECT COUNT(*) FROM sales WHERE completeddtutc IS NOT NULL`, 1},
		{"cancel", till, "salesbuilder.salesbuilder_cancel", func(l *lane) (string, any) {
			return l.counterSale(till, map[string]any{"pid": 1001}), nil
		}, `SELECT COUNT(*) FROM sales WHERE phase = 10000`, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newLane(t)
			k, v := tc.setup(l)
			ik := uuid.NewString()
			first, err := l.call(tc.caller, tc.a, k, v, ik)
			if err != nil {
				t.Fatal(err)
			}
			want, _ := json.Marshal(first.Data)
			var afterFirst lanedb.WriterSnapshot
			for i := range 3 {
				again, err := l.call(tc.caller, tc.a, k, v, ik)
				if err != nil {
					t.Fatalf("retry: %v", err)
				}
				if got, _ := json.Marshal(again.Data); string(got) != string(want) {
					t.Fatalf("retry answered\n%s\nthe first run answered\n%s", got, want)
				}
				if i == 0 {
					afterFirst = l.w.Stats().Snapshot()
				}
			}
			// The first retry may run its change and undo it; after it,
			// the key's iks are looked up first: each next retry is a
			// look (inside a savepoint the key has earned), never a batch
			// started over or a change made again.
			if d := l.w.Stats().Snapshot().Sub(afterFirst); d.Reruns != 0 || d.Statements > 2*3 {
				t.Errorf("the second and third retries: %d batches started over, %d statements; want none and at most 6",
					d.Reruns, d.Statements)
			}
			var n int
			if err := l.db.Read.Get(&n, tc.count); err != nil {
				t.Fatal(err)
			}
			if n != tc.want {
				t.Fatalf("after a change and three retries, %s = %d; want %d", tc.count, n, tc.want)
			}
		})
	}
}

// TestRetryWrittenAnotherWay: the sale key written in capitals or with a
// JSON escape names the same sale, and a retry written so is the same
// request; so is a create's physkey in capitals.
func TestRetryWrittenAnotherWay(t *testing.T) {
	l := newLane(t)
	tab := tablet("tablet-1")
	pk := uuid.NewString()
	created, err := l.call(tab, "salesbuilder.sale_create", "", map[string]any{"physkey": strings.ToUpper(pk)}, "ik-create")
	if err != nil {
		t.Fatal(err)
	}
	if again, err := l.call(tab, "salesbuilder.sale_create", "", map[string]any{"physkey": pk}, "ik-create"); err != nil ||
		fmt.Sprint(again.Data) != fmt.Sprint(created.Data) {
		t.Fatalf("a create retried with its physkey in lower case: %v; want the first answer", err)
	}
	add := map[string]any{"pid": 1001}
	first, err := l.call(tab, "salesbuilder.sale_add_product", strings.ToUpper(pk), add, "ik-add")
	if err != nil {
		t.Fatalf("a physkey in capitals: %v", err)
	}
	escaped := `"\u00` + fmt.Sprintf("%x", pk[0]) + pk[1:] + `"`
	for _, k := range []json.RawMessage{json.RawMessage(`"` + pk + `"`), json.RawMessage(escaped)} {
		res, err := l.callK(tab, "salesbuilder.sale_add_product", k, add, "ik-add")
		if err != nil || fmt.Sprint(res.Data) != fmt.Sprint(first.Data) {
			t.Fatalf("the add retried with k %s: %v; want the first answer", k, err)
		}
	}
	var lines int
	if err := l.db.Read.Get(&lines, `SELECT COUNT(*) FROM sale_lines`); err != nil || lines != 1 {
		t.Fatalf("%d lines (%v); want 1", lines, err)
	}
}

// TestNewIKIsNotLookedUp: a change with a new ik makes one statement more
// than without one, its record's INSERT; no read of the ik comes first.
func TestNewIKIsNotLookedUp(t *testing.T) {
	l := newLane(t)
	tab := tablet("tablet-1")
	k := l.sale(tab, "salesbuilder.sale_create", "", nil).Physkey
	add := func(ik string) int64 {
		before := l.w.Stats().Snapshot()
		if _, err := l.call(tab, "salesbuilder.sale_add_product", k, map[string]any{"pid": 1001}, ik); err != nil {
			t.Fatal(err)
		}
		return l.w.Stats().Snapshot().Sub(before).Statements
	}
	add("") // the product and the sale's parts are read once, then kept
	without, with := add(""), add(uuid.NewString())
	if with != without+1 {
		t.Fatalf("a change made %d statements without an ik and %d with a new one; want one more, the record's INSERT", without, with)
	}
}

func TestClientPhyskeyCreateIsIdempotent(t *testing.T) {
	l := newLane(t)
	tab := tablet("tablet-1")
	pk := uuid.NewString()
	a := l.sale(tab, "salesbuilder.sale_create", "", map[string]any{"physkey": pk})
	b := l.sale(tab, "fd1.sales.create_activesale", "", map[string]any{"physkey": pk})
	if a.Physkey != pk || b.Physkey != pk || a.RandomKey != b.RandomKey {
		t.Fatalf("two creates with one physkey: %s/%s %s/%s", a.Physkey, a.RandomKey, b.Physkey, b.RandomKey)
	}
	_, err := l.call(tablet("tablet-2"), "salesbuilder.sale_create", "", map[string]any{"physkey": pk}, "")
	wantCode(t, err, protocol.CodeConflict)
}

func TestTicketsAreUniqueAmongOpenPresells(t *testing.T) {
	l := newLane(t)
	var mu sync.Mutex
	seen := map[int64]bool{}
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			tab := tablet(fmt.Sprint("tablet-", i))
			res, err := l.call(tab, "salesbuilder.sale_create", "", nil, "")
			if err != nil {
				t.Error(err)
				return
			}
			k := viewOf(t, res).Physkey
			if _, err := l.call(tab, "salesbuilder.sale_add_product", k, map[string]any{"pid": 1001}, ""); err != nil {
				t.Error(err)
				return
			}
			res, err = l.call(tab, "salesbuilder.sale_park", k, nil, "")
			if err != nil {
				t.Error(err)
				return
			}
			ticket := *viewOf(t, res).Ticket
			mu.Lock()
			defer mu.Unlock()
			if seen[ticket] {
				t.Errorf("ticket %d given twice", ticket)
			}
			seen[ticket] = true
		}(i)
	}
	wg.Wait()
	// An empty presell cannot be submitted.
	tab := tablet("tablet-x")
	k := l.sale(tab, "salesbuilder.sale_create", "", nil).Physkey
	_, err := l.call(tab, "salesbuilder.sale_park", k, nil, "")
	wantCode(t, err, protocol.CodeConflict)
}

func TestGetSaleAndPrice(t *testing.T) {
	l := newLane(t)
	tab := tablet("tablet-1")
	k := l.sale(tab, "salesbuilder.sale_create", "", nil).Physkey
	l.sale(tab, "salesbuilder.sale_set_customer", k, map[string]any{"cid": 3})

	res, err := l.call(tab, "salesbuilder.get_sale", "active", nil, "")
	if err != nil || res.SC != "salesbuilder.active" {
		t.Fatalf("get_sale: %+v %v", res, err)
	}
	av, ok := res.Data.(ActiveView)
	if !ok || av.Physkey != k || av.RandomNoWord != numberWord(av.RandomNo) {
		t.Fatalf("get_sale data: %#v", res.Data)
	}
	res, err = l.call(tab, "fd1.sales.get_activesale_list", "", nil, "")
	if err != nil {
		t.Fatal(err)
	}
	if rows := res.Data.(protocol.Rows).Rows.([]ActiveView); len(rows) != 1 {
		t.Fatalf("active list: %+v", rows)
	}
	res, err = l.call(tab, "salesbuilder.sale_get_price", k, map[string]any{"pid": []int{1001, 1024}, "_format": "kv"}, "")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(res.Data)
	if string(b) != `{"kv":{"1001":4.95,"1024":35.91}}` {
		t.Fatalf("kv prices for a 10%% customer: %s", b)
	}
	// A pid no product has is left out (SPEC §3.3: an unknown record is
	// an empty result, not an error); the others are still priced.
	for _, c := range []struct {
		v    map[string]any
		want string
	}{
		{map[string]any{"pid": []int{424242}}, `{"rows":[]}`},
		{map[string]any{"pid": []int{424242, 1001}}, `{"rows":[{"measurement":0,"pid":1001,"price":4.95}]}`},
		{map[string]any{"pid": []int{1001, 424242, 1024}, "_format": "kv"}, `{"kv":{"1001":4.95,"1024":35.91}}`},
	} {
		res, err = l.call(tab, "salesbuilder.sale_get_price", k, c.v, "")
		if err != nil {
			t.Fatalf("%v: %v", c.v, err)
		}
		if b, _ := json.Marshal(res.Data); string(b) != c.want {
			t.Errorf("%v: %s, want %s", c.v, b, c.want)
		}
	}
	// A null is not pid 0: it is refused as what it is.
	for _, pid := range []any{[]any{1001, nil}, nil} {
		_, err = l.call(tab, "salesbuilder.sale_get_price", k, map[string]any{"pid": pid}, "")
		wantCode(t, err, protocol.CodeBadArgument)
		if strings.Contains(err.Error(), "pid 0") || !strings.Contains(err.Error(), "v.pid") {
			t.Errorf("pid %v: %v", pid, err)
		}
	}
}
