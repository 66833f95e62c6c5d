package presell

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/greenlane-pos/greenlane/lanedb"
	"github.com/greenlane-pos/greenlane/protocol"
)

func TestLeaseExpiryAndTakeover(t *testing.T) {
	l := newLane(t)
	tab, a, b, boss := tablet("tablet-1"), counter("counter-a"), counter("counter-b"), admin("manager")
	p := l.submitted(tab, 1001)
	k := p.Physkey

	res, err := l.call(a, "presell.recall", "", map[string]any{"ticket": *p.Ticket}, "")
	if err != nil {
		t.Fatal(err)
	}
	if rv := recallView(t, res); rv.Claim.Holder != "counter-a" || rv.Phase != 0 {
		t.Fatalf("recall: %+v", rv.Claim)
	}
	// B is refused while A's lease is live, and told who and until when.
	_, err = l.call(b, "presell.recall", "", map[string]any{"ticket": *p.Ticket}, "")
	wantCode(t, err, protocol.CodeClaimed)
	if !strings.Contains(err.Error(), "counter-a") {
		t.Errorf("claimed error does not name the holder: %v", err)
	}
	// A change renews the lease: 90 s + 90 s is past the first lease.
	l.advance(90 * time.Second)
	l.sale(a, "salesbuilder.sale_add_product", k, map[string]any{"pid": 1002})
	l.advance(90 * time.Second)
	if _, err := l.call(a, "presell.heartbeat", k, nil, ""); err != nil {
		t.Fatalf("heartbeat within the renewed lease: %v", err)
	}
	_, err = l.call(b, "presell.recall", k, nil, "")
	wantCode(t, err, protocol.CodeClaimed)

	// A goes quiet; its lease lapses and B takes the presell without force.
	l.advance(121 * time.Second)
	if _, err := l.call(b, "presell.recall", k, nil, ""); err != nil {
		t.Fatalf("recall after the lease lapsed: %v", err)
	}
	_, err = l.call(a, "salesbuilder.sale_add_product", k, map[string]any{"pid": 1003}, "")
	wantCode(t, err, protocol.CodeClaimLost)
	_, err = l.call(a, "presell.heartbeat", k, nil, "")
	wantCode(t, err, protocol.CodeClaimLost)

	// Force: only admin, and the previous holder then loses.
	_, err = l.call(a, "presell.recall", k, map[string]any{"force": true}, "")
	wantCode(t, err, protocol.CodeForbidden)
	if _, err := l.call(boss, "presell.recall", k, map[string]any{"force": true}, ""); err != nil {
		t.Fatalf("admin force: %v", err)
	}
	_, err = l.call(b, "salesbuilder.sale_add_product", k, map[string]any{"pid": 1003}, "")
	wantCode(t, err, protocol.CodeClaimLost)

	// Two lines: the one from the tablet and the one A added in time.
	if s := l.sale(boss, "salesbuilder.sale_fetch", k, nil); len(s.Lines) != 2 {
		t.Fatalf("lines after the takeovers: %+v", s.Lines)
	}
	journal, err := lanedb.JournalFor(context.Background(), l.db.Read, k)
	if err != nil {
		t.Fatal(err)
	}
	var events []string
	for _, e := range journal {
		if e.Family == familyPresell {
			events = append(events, e.Event+":"+e.Actor)
		}
	}
	want := "created:tablet-1 submitted:tablet-1 claimed:counter-a claimed:counter-b claimed:manager"
	if got := strings.Join(events, " "); got != want {
		t.Fatalf("journal %s\nwant    %s", got, want)
	}
}

func TestRecallFindsByTicketBarcodeWordAndKey(t *testing.T) {
	l := newLane(t)
	tab, till := tablet("tablet-1"), counter("counter-1")
	for _, by := range []func(p *SaleView) (string, map[string]any){
		func(p *SaleView) (string, map[string]any) { return "", map[string]any{"ticket": *p.Ticket} },
		func(p *SaleView) (string, map[string]any) { return "", map[string]any{"barcode": *p.TicketBarcode} },
		// as a keyboard-wedge scanner may send it: Enter after it, or caps lock on
		func(p *SaleView) (string, map[string]any) {
			return "", map[string]any{"barcode": *p.TicketBarcode + "\r\n"}
		},
		func(p *SaleView) (string, map[string]any) {
			return "", map[string]any{"barcode": " " + strings.ToLower(*p.TicketBarcode) + "\t"}
		},
		func(p *SaleView) (string, map[string]any) { return "", map[string]any{"word": *p.TicketWord} },
		func(p *SaleView) (string, map[string]any) { return p.Physkey, nil },
	} {
		p := l.submitted(tab, 1001)
		k, v := by(p)
		res, err := l.call(till, "presell.recall", k, v, "")
		if err != nil {
			t.Fatalf("recall %v %v: %v", k, v, err)
		}
		if rv := recallView(t, res); rv.Physkey != p.Physkey {
			t.Fatalf("recall %v found %s, want %s", v, rv.Physkey, p.Physkey)
		}
		l.sale(till, "presell.release", p.Physkey, nil)
	}
	tests := []struct {
		v    map[string]any
		code protocol.Code
	}{
		{map[string]any{"ticket": 4242}, protocol.CodeNotFound},
		{map[string]any{"barcode": "GL019999XXXX"}, protocol.CodeNotFound},
		{map[string]any{"barcode": " \n"}, protocol.CodeBadArgument},
		{map[string]any{"word": "no-such"}, protocol.CodeNotFound},
		{map[string]any{"ticket": 1, "word": "amber-apple"}, protocol.CodeBadArgument},
		{map[string]any{}, protocol.CodeBadArgument},
		{map[string]any{"ticket": -1}, protocol.CodeBadArgument},
	}
	for _, tt := range tests {
		_, err := l.call(till, "presell.recall", "", tt.v, "")
		wantCode(t, err, tt.code)
	}
	// The tablet cannot recall at all (counter scope).
	_, err := l.call(tab, "presell.recall", "", map[string]any{"ticket": 1}, "")
	wantCode(t, err, protocol.CodeForbidden)
}

func TestPriceDriftAndAcceptPrices(t *testing.T) {
	l := newLane(t)
	tab, till := tablet("tablet-1"), counter("counter-1")
	p := l.submitted(tab, 1001, 1002) // 5.50 each
	if _, err := l.db.Exec(context.Background(), `UPDATE products SET price_cents = 600 WHERE pid = 1001`); err != nil {
		t.Fatal(err)
	}
	res, err := l.call(till, "presell.recall", p.Physkey, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	rv := recallView(t, res)
	if len(rv.PriceDrift) != 1 || rv.PriceDrift[0].PID != 1001 || rv.PriceDrift[0].OldPrice != 550 || rv.PriceDrift[0].NewPrice != 600 {
		t.Fatalf("drift: %+v", rv.PriceDrift)
	}
	if rv.SaleTotal != 1100 {
		t.Fatalf("presold prices must stand until accepted: total %d", rv.SaleTotal)
	}
	res, err = l.call(till, "presell.accept_prices", p.Physkey, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	if rv := recallView(t, res); rv.SaleTotal != 1150 || len(rv.PriceDrift) != 0 {
		t.Fatalf("after accept_prices: total %d drift %+v", rv.SaleTotal, rv.PriceDrift)
	}
}

func TestCompletedPresellFreesItsTicket(t *testing.T) {
	l := newLane(t)
	tab, till := tablet("tablet-1"), counter("counter-1")
	p := l.submitted(tab, 1001)
	if _, err := l.call(till, "presell.recall", "", map[string]any{"ticket": *p.Ticket}, ""); err != nil {
		t.Fatal(err)
	}
	l.sale(till, "salesbuilder.sale_add_payment", p.Physkey, map[string]any{"type": 1, "amount": 10})
	done := l.sale(till, "salesbuilder.salesbuilder_complete", p.Physkey, nil)
	if done.SID == nil || done.Ticket == nil || *done.Ticket != *p.Ticket || done.Physkey != p.Physkey {
		t.Fatalf("completed presell: %+v", done)
	}
	// The ticket number names no open presell now: recall says whose it was.
	_, err := l.call(till, "presell.recall", "", map[string]any{"ticket": *p.Ticket}, "")
	wantCode(t, err, protocol.CodeNotFound)
	if !strings.Contains(err.Error(), "completed") {
		t.Errorf("message does not say the ticket's presell was completed: %v", err)
	}
	// The number can be given again (tickets go round, so force it).
	if _, err := l.db.Exec(context.Background(), `UPDATE lane_counters SET value = ? WHERE name = 'ticket_next'`, *p.Ticket); err != nil {
		t.Fatal(err)
	}
	if again := l.submitted(tab, 1002); *again.Ticket != *p.Ticket {
		t.Fatalf("ticket %d not reused, got %d", *p.Ticket, *again.Ticket)
	}
}

func TestGetPresellsFilters(t *testing.T) {
	l := newLane(t)
	t1, t2, till := tablet("tablet-1"), tablet("tablet-2"), counter("counter-1")
	a := l.submitted(t1, 1001)
	l.advance(10 * time.Minute)
	kb := l.sale(t2, "salesbuilder.sale_create", "", nil).Physkey
	l.sale(t2, "salesbuilder.sale_add_product", kb, map[string]any{"pid": 1002})
	l.sale(t2, "salesbuilder.sale_set_customer", kb, map[string]any{"cid": 3}) // Hemi Walker
	b := l.sale(t2, "salesbuilder.sale_park", kb, nil)
	l.sale(t2, "salesbuilder.sale_create", "", nil) // being built: not listed
	l.advance(time.Minute)
	if _, err := l.call(till, "presell.recall", b.Physkey, nil, ""); err != nil {
		t.Fatal(err)
	}

	list := func(q map[string]any, qk string) []PresellRow {
		t.Helper()
		req := &protocol.Request{A: "fd1.presell.get_presells"}
		if q != nil {
			raw := map[string]json.RawMessage{}
			for k, v := range q {
				raw[k], _ = json.Marshal(v)
			}
			req.Q = raw
		}
		if qk != "" {
			req.QK = protocol.Keywords{qk}
		}
		ep, _ := l.router.Lookup(req.A)
		res, err := ep.Handler(context.Background(), &protocol.Call{Req: req, Caller: till, Endpoint: ep})
		if err != nil {
			t.Fatalf("get_presells %v %s: %v", q, qk, err)
		}
		return res.Data.(protocol.Rows).Rows.([]PresellRow)
	}
	keys := func(rows []PresellRow) string {
		var out []string
		for _, r := range rows {
			out = append(out, r.Physkey)
		}
		return strings.Join(out, ",")
	}
	tests := []struct {
		name string
		q    map[string]any
		qk   string
		want []string
	}{
		{"all, newest first", nil, "", []string{b.Physkey, a.Physkey}},
		{"by ticket", map[string]any{"ticket": *a.Ticket}, "", []string{a.Physkey}},
		{"by tablet", map[string]any{"tablet": "tablet-2"}, "", []string{b.Physkey}},
		{"customer substring, any case", map[string]any{"customer": "WALK"}, "", []string{b.Physkey}},
		{"customer with LIKE wildcards matches literally", map[string]any{"customer": "%"}, "", nil},
		{"older than 5 minutes", map[string]any{"age(>=)": 300}, "", []string{a.Physkey}},
		{"younger than 5 minutes", map[string]any{"age(<)": 300}, "", []string{b.Physkey}},
		{"mine", nil, "mine", []string{b.Physkey}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, want := keys(list(tt.q, tt.qk)), strings.Join(tt.want, ","); got != want {
				t.Fatalf("got %s, want %s", got, want)
			}
		})
	}
	rows := list(map[string]any{"ticket": *b.Ticket}, "")
	r := rows[0]
	if r.ClaimedBy == nil || *r.ClaimedBy != "counter-1" || r.Customer == nil || *r.Customer != "Hemi Walker" || r.Lines != 1 || r.Age < 59 || r.Age > 60 || r.Tablet != "tablet-2" {
		t.Fatalf("row: %+v", r)
	}
}

// TestSweepWaitsForAClockInStep: while the lane's clock is off the store
// database's, the sweeper voids nothing (the presell only looks old by
// that clock) and says why; once it is in step, it sweeps.
func TestSweepWaitsForAClockInStep(t *testing.T) {
	l := newLane(t)
	old := l.submitted(tablet("tablet-1"), 1001)
	l.advance(13 * time.Hour)
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	ctx := context.Background()
	clock := errors.New("this machine's clock is 13h0m0s ahead of the store database's")
	l.svc.sweepOnce(ctx, log, &Reference{InStep: func(context.Context) error { return clock }}, newSteadyClock(l.now))
	if rows, err := l.svc.Open(ctx); err != nil || len(rows) != 1 || rows[0].Physkey != old.Physkey {
		t.Fatalf("open presells after a sweep with the clock off: %v, %v; want %s still open", rows, err, old.Physkey)
	}
	if !strings.Contains(logs.String(), "voiding nothing") || !strings.Contains(logs.String(), "13h0m0s ahead") {
		t.Fatalf("the sweeper did not say why it voided nothing:\n%s", logs.String())
	}
	l.svc.sweepOnce(ctx, log, &Reference{InStep: func(context.Context) error { return nil }}, newSteadyClock(l.now))
	if rows, err := l.svc.Open(ctx); err != nil || len(rows) != 0 {
		t.Fatalf("open presells after a sweep with the clock in step: %v, %v; want none", rows, err)
	}
}

func TestSweeperVoidsAbandonedPresells(t *testing.T) {
	l := newLane(t)
	tab, till := tablet("tablet-1"), counter("counter-1")
	old := l.submitted(tab, 1001)
	held := l.submitted(tab, 1002)
	building := l.sale(tab, "salesbuilder.sale_create", "", nil)
	l.advance(13 * time.Hour)
	if _, err := l.call(till, "presell.recall", held.Physkey, nil, ""); err != nil {
		t.Fatal(err)
	}
	fresh := l.submitted(tab, 1003)
	voided, err := l.svc.ExpireAbandoned(context.Background(), 0, "sweeper")
	if err != nil {
		t.Fatal(err)
	}
	got := fmt.Sprint(voided)
	if !strings.Contains(got, old.Physkey) || !strings.Contains(got, building.Physkey) || len(voided) != 2 {
		t.Fatalf("voided %v; want the old presell and the abandoned one being built, not the claimed (%s) or fresh (%s)", voided, held.Physkey, fresh.Physkey)
	}
	for _, k := range voided {
		j, err := lanedb.JournalFor(context.Background(), l.db.Read, k)
		if err != nil {
			t.Fatal(err)
		}
		var last lanedb.JournalEntry
		for _, e := range j {
			if e.Family == familyPresell {
				last = e
			}
		}
		if last.Event != "expired" || last.Actor != "sweeper" || !strings.Contains(last.Detail, "abandoned") {
			t.Fatalf("journal of %s ends with %+v", k, last)
		}
	}
	// Voiding by ticket from the command line respects a live claim.
	if _, err := l.svc.VoidPresell(context.Background(), fmt.Sprint(*held.Ticket), "cli", "test", false); err == nil {
		t.Fatal("voided a presell under a live claim without force")
	}
	if _, err := l.svc.VoidPresell(context.Background(), fmt.Sprint(*held.Ticket), "cli", "test", true); err != nil {
		t.Fatal(err)
	}
	_, err = l.call(till, "salesbuilder.sale_add_product", held.Physkey, map[string]any{"pid": 1001}, "")
	wantCode(t, err, protocol.CodeConflict) // void: the phase says so
}

func TestOneClaimWinsARace(t *testing.T) {
	l := newLane(t)
	tab := tablet("tablet-1")
	for round := 0; round < 20; round++ {
		p := l.submitted(tab, 1001)
		counters := []*protocol.Caller{counter("c1"), counter("c2"), counter("c3"), counter("c4")}
		var wg sync.WaitGroup
		errs := make([]error, len(counters))
		for i, c := range counters {
			wg.Add(1)
			go func(i int, c *protocol.Caller) {
				defer wg.Done()
				_, errs[i] = l.call(c, "presell.recall", p.Physkey, nil, "")
			}(i, c)
		}
		wg.Wait()
		wins := 0
		for _, err := range errs {
			if err == nil {
				wins++
				continue
			}
			wantCode(t, err, protocol.CodeClaimed)
		}
		if wins != 1 {
			t.Fatalf("round %d: %d winners", round, wins)
		}
	}
}

func TestTabletMayWithdrawAPresellACounterReleased(t *testing.T) {
	l := newLane(t)
	tab, till := tablet("tablet-1"), counter("counter-1")
	p := l.submitted(tab, 1001)
	if _, err := l.call(till, "presell.recall", p.Physkey, nil, ""); err != nil {
		t.Fatal(err)
	}
	// While the counter holds it, the tablet cannot withdraw it.
	_, err := l.call(tab, "salesbuilder.salesbuilder_cancel", p.Physkey, nil, "")
	wantCode(t, err, protocol.CodeClaimed)
	l.sale(till, "presell.release", p.Physkey, nil)
	if s := l.sale(tab, "salesbuilder.salesbuilder_cancel", p.Physkey, nil); s.Phase != lanedb.PhaseVoid {
		t.Fatalf("after release the tablet's cancel left phase %d", s.Phase)
	}
}

func TestTrimForgetsOldIdempotencyKeys(t *testing.T) {
	l := newLane(t)
	tab := tablet("tablet-1")
	ik := "6f1c2a34-1111-4222-8333-944455556666"
	first, err := l.call(tab, "salesbuilder.sale_create", "", nil, ik)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.svc.TrimJournal(context.Background()); err != nil {
		t.Fatal(err)
	}
	again, err := l.call(tab, "salesbuilder.sale_create", "", nil, ik)
	if err != nil || viewOf(t, again).Physkey != viewOf(t, first).Physkey {
		t.Fatalf("a recent ik was forgotten: %v", err)
	}
	l.advance(49 * time.Hour)
	if err := l.svc.TrimJournal(context.Background()); err != nil {
		t.Fatal(err)
	}
	later, err := l.call(tab, "salesbuilder.sale_create", "", nil, ik)
	if err != nil || viewOf(t, later).Physkey == viewOf(t, first).Physkey {
		t.Fatalf("an ik older than the retention still replayed: %v", err)
	}
}

// TestClaimBookkeepingFollowsCommit: what a session has claimed is
// remembered only once the claim's transaction commits. A claim (or a
// release) whose transaction rolls back leaves the set as it was.
func TestClaimBookkeepingFollowsCommit(t *testing.T) {
	l := newLane(t)
	tab, a := tablet("tablet-1"), counter("counter-a")
	k := l.submitted(tab, 1001).Physkey
	ctx := context.Background()
	refused := fmt.Errorf("refused after the change")

	tests := []struct {
		name     string
		change   func(tx *lanedb.Tx, sale *lanedb.Sale) error
		fail     bool
		wantHeld bool
	}{
		{"claim rolled back", func(tx *lanedb.Tx, sale *lanedb.Sale) error {
			_, err := l.svc.claim(ctx, tx, a, sale, false)
			return err
		}, true, false},
		{"claim committed", func(tx *lanedb.Tx, sale *lanedb.Sale) error {
			_, err := l.svc.claim(ctx, tx, a, sale, false)
			return err
		}, false, true},
		{"release rolled back", func(tx *lanedb.Tx, sale *lanedb.Sale) error {
			_, err := l.svc.release(ctx, tx, a, sale)
			return err
		}, true, true},
		{"release committed", func(tx *lanedb.Tx, sale *lanedb.Sale) error {
			_, err := l.svc.release(ctx, tx, a, sale)
			return err
		}, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := l.svc.claims.Has(a.Session, k)
			err := l.svc.writer.Do(ctx, func(ctx context.Context, tx *lanedb.Tx) error {
				sale, err := lanedb.GetSale(ctx, tx, k)
				if err != nil {
					return err
				}
				if err := tt.change(tx, sale); err != nil {
					t.Fatalf("change: %v", err)
				}
				if l.svc.claims.Has(a.Session, k) != before {
					t.Error("the set changed before the transaction committed")
				}
				if tt.fail {
					return refused
				}
				return nil
			})
			if tt.fail != (err != nil) {
				t.Fatalf("Do = %v", err)
			}
			if got := l.svc.claims.Has(a.Session, k); got != tt.wantHeld {
				t.Fatalf("after the transaction: claimed = %v, want %v", got, tt.wantHeld)
			}
		})
	}
}

// TestClaimsOfSalesClosedElsewhereAreForgotten: a presell a counter
// program completes in the lane DB directly leaves no bookkeeping behind
// once the sweeper prunes; an open one is kept.
func TestClaimsOfSalesClosedElsewhereAreForgotten(t *testing.T) {
	l := newLane(t)
	tab, a := tablet("tablet-1"), counter("counter-a")
	open, closed := l.submitted(tab, 1001).Physkey, l.submitted(tab, 1002).Physkey
	for _, k := range []string{open, closed} {
		if _, err := l.call(a, "presell.recall", k, nil, ""); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := l.db.Exec(context.Background(), `UPDATE sales SET phase = 1, sid = 99, claim_session = NULL WHERE physkey = ?`, closed); err != nil {
		t.Fatal(err)
	}
	if err := l.svc.pruneClaims(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !l.svc.claims.Has(a.Session, open) || l.svc.claims.Has(a.Session, closed) {
		t.Fatalf("after pruning: open remembered %v, closed remembered %v", l.svc.claims.Has(a.Session, open), l.svc.claims.Has(a.Session, closed))
	}
}

// TestSameKeyResumesItsClaim: a counter that reconnected (a new session,
// the same key) recalls the presell it holds at once once its old
// connection is gone; that connection has lost the claim. While the old
// connection is still open, or for another key, the claim stands.
func TestSameKeyResumesItsClaim(t *testing.T) {
	var mu sync.Mutex
	open := map[string]bool{}
	setOpen := func(session string, is bool) { mu.Lock(); open[session] = is; mu.Unlock() }
	l := newLane(t, func(o *Options) {
		o.SessionOpen = func(session string) bool { mu.Lock(); defer mu.Unlock(); return open[session] }
	})
	tab, before, other := tablet("tablet-1"), counter("counter-a"), counter("counter-b")
	after := counter("counter-a")
	after.Session = "session-counter-a-reloaded"
	for _, c := range []*protocol.Caller{before, after, other} {
		setOpen(c.Session, true)
	}
	p := l.submitted(tab, 1001)
	ticket := map[string]any{"ticket": *p.Ticket}
	if _, err := l.call(before, "presell.recall", "", ticket, ""); err != nil {
		t.Fatal(err)
	}
	_, err := l.call(after, "presell.recall", "", ticket, "")
	wantCode(t, err, protocol.CodeClaimed) // its first connection is still open
	if !strings.Contains(err.Error(), "another connection of this key") {
		t.Errorf("the same key is told %q: it should hear that its own other connection holds it", err)
	}

	setOpen(before.Session, false)
	// A write from the new connection (a payment resent after the link
	// dropped) is told how to take the claim back.
	_, err = l.call(after, "salesbuilder.sale_add_payment", p.Physkey, map[string]any{"type": 1, "amount": 2}, "")
	wantCode(t, err, protocol.CodeClaimed)
	if !strings.Contains(err.Error(), "recall it here (scan its ticket again)") {
		t.Errorf("a write from the key's new connection is told %q: it should hear how to take the claim back", err)
	}
	res, err := l.call(after, "presell.recall", "", ticket, "")
	if err != nil {
		t.Fatalf("the same key, reconnected, could not recall its own presell: %v", err)
	}
	if rv := recallView(t, res); rv.Claim.Holder != "counter-a" {
		t.Fatalf("claim after resuming: %+v", rv.Claim)
	}
	l.sale(after, "salesbuilder.sale_add_payment", p.Physkey, map[string]any{"type": 1, "amount": 2})
	_, err = l.call(before, "salesbuilder.sale_add_payment", p.Physkey, map[string]any{"type": 1, "amount": 2}, "")
	wantCode(t, err, protocol.CodeClaimLost)
	setOpen(after.Session, false)
	_, err = l.call(other, "presell.recall", "", ticket, "")
	wantCode(t, err, protocol.CodeClaimed) // another key waits out the lease
	if strings.Contains(err.Error(), "this key") {
		t.Errorf("another key is told %q", err)
	}
}

// TestSubmittedPresellSaysWhereItIs: a write to a submitted presell that
// nobody has recalled (the tablet resubmitting, or adding a line) is
// refused with its ticket and the way it comes back (a recall), not with
// sale_unpark, which is not how a presell returns.
func TestSubmittedPresellSaysWhereItIs(t *testing.T) {
	l := newLane(t)
	tab := tablet("tablet-1")
	p := l.submitted(tab, 1001)
	for a, v := range map[string]map[string]any{"salesbuilder.sale_park": nil, "salesbuilder.sale_add_product": {"pid": 1001}} {
		_, err := l.call(tab, a, p.Physkey, v, "")
		wantCode(t, err, protocol.CodeConflict)
		var pe *protocol.Error
		errors.As(err, &pe)
		for _, want := range []string{fmt.Sprintf("ticket %d", *p.Ticket), "fd1.presell.recall"} {
			if !strings.Contains(pe.Message, want) {
				t.Errorf("%s: %q does not say %q", a, pe.Message, want)
			}
		}
		if strings.Contains(pe.Message, "unpark") {
			t.Errorf("%s: %q sends the tablet to sale_unpark", a, pe.Message)
		}
	}
}

// TestRetriedRecallOfACompletedPresell: a recall retried with its ik from
// a new connection after the presell was completed hears, with claim_lost,
// that it was completed, not "recall it again" (which could only fail).
func TestRetriedRecallOfACompletedPresell(t *testing.T) {
	l := newLane(t, func(o *Options) { o.SessionOpen = func(string) bool { return false } })
	tab, before := tablet("tablet-1"), counter("counter-a")
	after := counter("counter-a")
	after.Session = "session-counter-a-reloaded"
	p := l.submitted(tab, 1001)
	ticket := map[string]any{"ticket": *p.Ticket}
	if _, err := l.call(before, "presell.recall", "", ticket, "recall-1"); err != nil {
		t.Fatal(err)
	}
	l.sale(before, "salesbuilder.sale_add_payment", p.Physkey, map[string]any{"type": 1, "amount": 5.5})
	l.sale(before, "salesbuilder.salesbuilder_complete", p.Physkey, nil)
	_, err := l.call(after, "presell.recall", "", ticket, "recall-1")
	wantCode(t, err, protocol.CodeClaimLost) // what a retried recall whose claim moved on gets
	if !strings.Contains(err.Error(), "completed") || strings.Contains(err.Error(), "recall it again") {
		t.Fatalf("a retried recall of a completed presell says %q", err)
	}
}

// TestRetriedRecallAfterATakeover: a recall retried with its ik after its
// lease lapsed and another counter recalled the presell hears claim_lost,
// on the same connection as on a new one: the stored "you have it" is no
// longer true. While the claim is still held, a retry answers as stored.
func TestRetriedRecallAfterATakeover(t *testing.T) {
	l := newLane(t, func(o *Options) { o.SessionOpen = func(string) bool { return false } })
	tab, a, b := tablet("tablet-1"), counter("counter-a"), counter("counter-b")
	reloaded := counter("counter-a")
	reloaded.Session = "session-counter-a-reloaded"
	p := l.submitted(tab, 1001)
	ticket := map[string]any{"ticket": *p.Ticket}
	first, err := l.call(a, "presell.recall", "", ticket, "recall-1")
	if err != nil {
		t.Fatal(err)
	}
	if again, err := l.call(a, "presell.recall", "", ticket, "recall-1"); err != nil || recallView(t, again).Claim.Holder != "counter-a" {
		t.Fatalf("a retry while the claim is held: %v, %+v; want the stored answer", err, first)
	}
	l.advance(3 * time.Minute) // past the lease
	if _, err := l.call(b, "presell.recall", "", ticket, ""); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*protocol.Caller{a, reloaded} {
		_, err := l.call(c, "presell.recall", "", ticket, "recall-1")
		wantCode(t, err, protocol.CodeClaimLost)
	}
}

// TestRetriedUnparkOfAnOrdinarySale: an ordinary sale has no claim. A
// counter's unpark retried from a new connection answers as stored while
// the key holds the sale, not claim_lost with "recall it again".
func TestRetriedUnparkOfAnOrdinarySale(t *testing.T) {
	l := newLane(t, func(o *Options) { o.SessionOpen = func(string) bool { return false } })
	till := counter("counter-a")
	reloaded := counter("counter-a")
	reloaded.Session = "session-counter-a-reloaded"
	k := l.sale(till, "salesbuilder.sale_create", "", nil).Physkey
	l.sale(till, "salesbuilder.sale_add_product", k, map[string]any{"pid": 1001})
	l.sale(till, "salesbuilder.sale_park", k, nil)
	first, err := l.call(till, "salesbuilder.sale_unpark", k, nil, "unpark-1")
	if err != nil {
		t.Fatal(err)
	}
	again, err := l.call(reloaded, "salesbuilder.sale_unpark", k, nil, "unpark-1")
	if err != nil {
		t.Fatalf("the unpark retried from a new connection: %v", err)
	}
	if a, b := fmt.Sprint(first.Data), fmt.Sprint(again.Data); a != b {
		t.Fatalf("the retry answered %s, the unpark %s", b, a)
	}
}
