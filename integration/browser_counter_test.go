package integration

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// presellFromTablet builds and submits a presell the way a tablet does, over a
// real presell socket, and returns the submitted sale.
func presellFromTablet(t *testing.T, tab *conn, cid int, lines ...soldLine) map[string]any {
	t.Helper()
	pk := sale(t, tab, sbA+"sale_create", nil, nil)["physkey"].(string)
	for _, ln := range lines {
		sale(t, tab, sbA+"sale_add_product", pk, map[string]any{"pid": ln.pid, "qty": ln.qty})
	}
	if cid != 0 {
		sale(t, tab, sbA+"sale_set_customer", pk, map[string]any{"cid": cid})
	}
	s := sale(t, tab, sbA+"sale_park", pk, nil)
	if s["phase"] != 5.0 || s["ticket_barcode"] == nil {
		t.Fatalf("submitted presell: %v", s)
	}
	return s
}

// pageTrue evaluates a JavaScript expression that yields true or false.
func pageTrue(t *testing.T, ctx context.Context, expr string) bool {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[bool](expr))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// pairCounter opens the counter page at addr and pairs it with key.
func pairCounter(t *testing.T, ctx context.Context, addr, key string) {
	t.Helper()
	browserRun(t, ctx,
		chromedp.Navigate("http://"+addr+"/counter/"),
		typeInto("#pair-key", key),
		chromedp.Click(chromedp.CSS("#pair-go")),
	)
}

// wantPage fails the test unless the page's expr is true now; what says
// what it checks.
func wantPage(t *testing.T, ctx context.Context, what, expr string) {
	t.Helper()
	if !pageTrue(t, ctx, expr) {
		t.Fatalf("on the page: %s: it is not so (%s)", what, expr)
	}
}

// TestBrowserCounter drives the counter screen with the keyboard, as a
// cashier with a USB scanner does: pair, scan a ticket's barcode, see the
// price drift, accept it, tender cash above the total, see the change,
// complete; and a presell another counter holds is shown with its holder.
func TestBrowserCounter(t *testing.T) {
	alongside(t)
	l := startLane(t)
	tabletKey := l.newKey("tablet-1", "presell")
	counterKey := l.newKey("counter-1", "counter")
	otherKey := l.newKey("counter-2", "counter")
	tab := l.login(presellQuery, tabletKey, "")

	// Two Hot Chocolates (5.50) and a Long Black (4.80); then Hot Chocolate
	// goes up to 6.20 before the counter recalls the ticket.
	p1 := presellFromTablet(t, tab, 0, soldLine{1006, 2}, soldLine{1004, 1})
	p2 := presellFromTablet(t, tab, 0, soldLine{1001, 1})
	p3 := presellFromTablet(t, tab, 7, soldLine{1001, 1}) // Mei Lin Chen, 5% off
	sqliteExec(t, l.db, `UPDATE products SET price_cents = 620 WHERE pid = 1006`)
	other := l.login("", otherKey, "")
	sale(t, other, presellA+"recall", nil, map[string]any{"ticket": p2["ticket"]})

	ctx := newBrowser(t)
	base := "http://" + l.addr
	t1 := fmt.Sprint(num(p1["ticket"]))
	t2 := fmt.Sprint(num(p2["ticket"]))

	// Pairing: a wrong key is refused and asked for again; the right one
	// is typed once and kept.
	browserRun(t, ctx,
		chromedp.Navigate(base+"/counter/"),
		typeInto("#pair-key", "not-a-key"),
		chromedp.Click(chromedp.CSS("#pair-go")),
		waitText("#pair-form", "The lane refused this key"),
		typeInto("#pair-key", counterKey),
		chromedp.Click(chromedp.CSS("#pair-go")),
		waitText("#presells", "#"+t1),
		waitText("#presells", "held by counter-2"),
		waitText("#legend", "F8"),
	)
	if !pageTrue(t, ctx, `localStorage.getItem("greenlane.counter.key") !== null && document.activeElement.id === "scan"`) {
		t.Fatal("after pairing: the key is not kept, or the scan field has no focus")
	}
	saveScreen(t, ctx, "counter-list")

	// A scan is the barcode's text and Enter, typed into the focused field.
	browserRun(t, ctx,
		chromedp.KeyEvent(p1["ticket_barcode"].(string)+kb.Enter),
		waitText("#sale-title", "Ticket #"+t1),
		waitText("#drift", "Hot Chocolate: $11.00 → $12.40"),
		waitText("#total", "$15.80"),
		waitText("#who", "paired as counter-1"),
	)
	if !pageTrue(t, ctx, `document.querySelectorAll("#lines tr.drift").length === 1`) {
		t.Fatal("the drifted line is not highlighted")
	}
	saveScreen(t, ctx, "counter-drift")

	// Accept the new prices (F6), then tender $20 cash (typed amount + F2).
	browserRun(t, ctx,
		chromedp.KeyEvent(kb.F6),
		waitText("#total", "$17.20"),
		chromedp.WaitNotPresent(chromedp.CSS("#drift")),
		typeInto("#amount", "20"),
		chromedp.KeyEvent(kb.F2),
		waitText("#change", "$2.80"),
		waitText("#payments", "Cash"),
	)
	// The typed amount is spent: the next scan goes to the scan field.
	wantPage(t, ctx, "focus back in the scan field after a typed tender", `document.activeElement === document.getElementById("scan")`)
	saveScreen(t, ctx, "counter-paid")
	// At phone width the sale comes first and nothing is wider than the screen.
	browserRun(t, ctx, setViewport(phoneWidth), waitText("#change", "$2.80"))
	if !pageTrue(t, ctx, `document.documentElement.scrollWidth <= window.innerWidth`) {
		t.Fatal("at 360 px the counter scrolls sideways")
	}
	saveScreen(t, ctx, "counter-paid-360")
	browserRun(t, ctx, setViewport(desktopWidth))
	browserRun(t, ctx,
		chromedp.KeyEvent(kb.F8),
		waitText("#message", "Ticket #"+t1+" complete. Give change: $2.80."),
	)
	rows := sqliteRows(t, l.db, `SELECT s.phase, s.sid IS NOT NULL AS has_sid, s.saletotal_cents, p.type, p.amount_cents
		FROM sales s JOIN payments p ON p.sale_physkey = s.physkey WHERE s.physkey = %s`, sqlQuote(p1["physkey"].(string)))
	if len(rows) != 1 || num(rows[0]["phase"]) != 1 || num(rows[0]["has_sid"]) != 1 || num(rows[0]["amount_cents"]) != 2000 ||
		num(rows[0]["saletotal_cents"]) != 1720 || num(rows[0]["type"]) != 1 {
		t.Fatalf("lane DB after Complete: %v, want phase 1, total $17.20, one $20.00 cash payment", rows)
	}

	// The same ticket scanned again: nothing to recall, and why.
	browserRun(t, ctx,
		chromedp.KeyEvent(p1["ticket_barcode"].(string)+kb.Enter),
		waitText("#message", "That ticket's sale is already complete."),
	)

	// Esc gives a recalled presell back: it waits for a counter again.
	t3 := fmt.Sprint(num(p3["ticket"]))
	browserRun(t, ctx,
		chromedp.KeyEvent(t3+kb.Enter),
		waitText("#sale-title", "Ticket #"+t3),
		waitText("#sale", "Mei Lin Chen (5% off)"),
		chromedp.KeyEvent(kb.Escape),
		waitText("#message", "Ticket #"+t3+" released"),
	)
	state := func(pk any) map[string]any {
		rows := sqliteRows(t, l.db, `SELECT phase, claim_session IS NULL AS free, (SELECT count(*) FROM payments WHERE sale_physkey = physkey AND payflags = 0) AS payments
			FROM sales WHERE physkey = %s`, sqlQuote(pk.(string)))
		if len(rows) != 1 {
			t.Fatalf("sale %v: %v", pk, rows)
		}
		return rows[0]
	}
	if st := state(p3["physkey"]); num(st["phase"]) != 5 || num(st["free"]) != 1 {
		t.Fatalf("lane DB after Release: %v, want phase 5 and no claim", st)
	}

	// Void needs a reason, and is refused while the sale holds a payment:
	// the cashier is told to reverse it first, reverses it, and voids. The
	// ticket is recalled by its words as a customer says them, a space
	// between.
	browserRun(t, ctx,
		chromedp.KeyEvent(strings.ToUpper(strings.Replace(p3["ticket_word"].(string), "-", " ", 1))+kb.Enter),
		waitText("#sale-title", "Ticket #"+t3),
		typeInto("#amount", "2"),
		chromedp.KeyEvent(kb.F3),
		waitText("#payments", "Eftpos"),
		typeInto("#void-reason", "customer left"),
		chromedp.KeyEvent(kb.F9),
		waitText("#message", "This sale holds payments: reverse them first."),
		// One press only offers: a slip of the mouse takes no money off.
		chromedp.Click(chromedp.CSS("#payments button")),
		waitText("#message", "Press Reverse (F10 for the last payment) again within 5 seconds to take the $2.00 Eftpos payment off this sale."),
	)
	lookScreen(t, ctx, "counter-reverse-confirm", false)
	if st := state(p3["physkey"]); num(st["payments"]) != 1 {
		t.Fatalf("lane DB after one press of Reverse: %v, want the payment still there", st)
	}
	// The second press from the keyboard: F10 is Reverse on the last
	// payment.
	browserRun(t, ctx,
		chromedp.KeyEvent(kb.F10),
		chromedp.WaitNotPresent(chromedp.CSS("#payments")),
		waitText("#message", "The $2.00 Eftpos payment is off this sale: give $2.00 back to the customer."),
		chromedp.KeyEvent(kb.F9),
		waitText("#message", "Ticket #"+t3+" voided."),
	)
	if st := state(p3["physkey"]); num(st["phase"]) != 10000 || num(st["payments"]) != 0 {
		t.Fatalf("lane DB after Void: %v, want phase 10000 and no live payment (the one taken is reversed)", st)
	}

	// A presell held by another counter: who, for how long, until when.
	browserRun(t, ctx,
		chromedp.KeyEvent(t2+kb.Enter),
		waitText("#message", "Another counter has this presell: counter-2, for "),
		waitText("#message", " more min (until "),
	)
	if pageTrue(t, ctx, `document.getElementById("sale-title") !== null`) {
		t.Fatal("a presell claimed by counter-2 was shown as recalled here")
	}

	// Unpair, then pair with a tablet's key by mistake: told at once.
	browserRun(t, ctx,
		chromedp.Click(chromedp.CSS("#unpair")),
		typeInto("#pair-key", tabletKey),
		chromedp.Click(chromedp.CSS("#pair-go")),
		waitText("#message", "This key has scope presell, not counter"),
	)
	browserLog(ctx).wantNoErrors(t)
}

// TestBrowserCounterRetry freezes the lane (SIGSTOP) as the cashier tenders
// $5 cash, so the reply does not come in time and the page sends the
// change again; then thaws it. Both requests reach the lane, and because
// the retry carries the same ik the lane takes $5 once, not twice.
func TestBrowserCounterRetry(t *testing.T) {
	alongside(t)
	db := filepath.Join(t.TempDir(), "lane.db")
	p := relStart(t, db)
	keys := relKeys(t, db, map[string]string{"tablet-1": "presell", "counter-1": "counter"})
	l := &lane{t: t, addr: p.addr, db: db}
	p1 := presellFromTablet(t, l.login(presellQuery, keys["tablet-1"], ""), 0, soldLine{1006, 2})

	ctx := newBrowser(t)
	browserRun(t, ctx,
		chromedp.Navigate("http://"+l.addr+"/counter/"),
		typeInto("#pair-key", keys["counter-1"]),
		chromedp.Click(chromedp.CSS("#pair-go")),
		waitText("#presells", "#"+fmt.Sprint(num(p1["ticket"]))),
		chromedp.KeyEvent(p1["ticket_barcode"].(string)+kb.Enter),
		waitText("#total", "$11.00"),
	)
	if err := p.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	thaw := func() { _ = p.cmd.Process.Signal(syscall.SIGCONT) }
	t.Cleanup(thaw)
	// fd1.js gives up waiting for a reply after 15 s; the page then retries.
	// A key pressed while the tender waits is not taken, and the page says
	// so (it used to do nothing, without a word).
	browserRun(t, ctx,
		typeInto("#amount", "5"),
		chromedp.KeyEvent(kb.F2),
		chromedp.KeyEvent(kb.F8),
		waitText("#message", "Not taken: the last change is still waiting for the lane."),
		waitText("#message", "trying again with the same request"),
	)
	thaw()
	browserRun(t, ctx, waitText("#payments", "Cash"), waitText("#balance", "$6.00"))
	rows := sqliteRows(t, db, `SELECT count(*) AS n, sum(amount_cents) AS cents FROM payments WHERE sale_physkey = %s`,
		sqlQuote(p1["physkey"].(string)))
	if num(rows[0]["n"]) != 1 || num(rows[0]["cents"]) != 500 {
		t.Fatalf("payments after a retried tender: %v, want one of $5.00", rows)
	}
	if !pageTrue(t, ctx, `document.querySelectorAll("#payments li").length === 1`) {
		t.Fatal("the page shows more than one payment")
	}
	browserLog(ctx).wantNoErrors(t)
}

// newTab opens another tab in ctx's browser. Its first action creates the
// tab and must not carry a timeout (chromedp binds the tab to it).
func newTab(t *testing.T, ctx context.Context) context.Context {
	t.Helper()
	tab, cancel := chromedp.NewContext(ctx)
	t.Cleanup(cancel)
	if err := chromedp.Do(tab); err != nil {
		t.Fatalf("open a tab: %v", err)
	}
	return tab
}

// TestBrowserStoreFlow is the store's whole presell in three tabs of one
// browser: the tablet page builds and submits an order while the customer
// display follows it; the price of one product changes; the counter scans
// the ticket, accepts the new price, takes cash and completes; the display
// shows the change, thanks the customer and goes idle.
func TestBrowserStoreFlow(t *testing.T) {
	alongside(t)
	l := startLane(t)
	tabletKey := l.newKey("tablet-1", "presell")
	counterKey := l.newKey("counter-1", "counter")
	displayKey := l.newKey("display-1", "display")

	display := newBrowser(t)
	browserRun(t, display,
		chromedp.Navigate("http://"+l.addr+"/display/?key="+displayKey+"&tablet=tablet-1"),
		waitText("#store", "Harbour Street Deli"),
	)
	tablet := newTab(t, display)
	pairTablet(t, tablet, l.addr, tabletKey)
	browserRun(t, tablet,
		chromedp.Click(chromedp.CSS(tabFlatWhite)),
		waitText("#lines", "Flat White"),
		typeInto("#scan", tabOJBarcode+kb.Enter),
		waitText("#lines", "Fresh Orange Juice"),
	)
	browserRun(t, display, waitText("#lines", "Flat White"), waitText("#lines", "Fresh Orange Juice"))
	physkey := tabletSale(t, tablet)
	browserRun(t, tablet, chromedp.Click(chromedp.CSS("#submit")), waitText("#ticket", "Next customer"))
	row := sqliteRows(t, l.db, `SELECT ticket, ticket_barcode, saletotal_cents FROM sales WHERE physkey = %s`, sqlQuote(physkey))
	if len(row) != 1 || row[0]["ticket_barcode"] == nil {
		t.Fatalf("the submitted sale in the lane DB: %v", row)
	}
	ticket := fmt.Sprint(num(row[0]["ticket"]))
	browserRun(t, display, waitText("#display", "Ticket #"+ticket))

	// Flat White goes up by 50 cents before the customer reaches the counter.
	sqliteExec(t, l.db, `UPDATE products SET price_cents = price_cents + 50 WHERE pid = 1001`)
	before := num(row[0]["saletotal_cents"]) / 100
	after := before + 0.5

	counter := newTab(t, display)
	browserRun(t, counter,
		chromedp.Navigate("http://"+l.addr+"/counter/"),
		typeInto("#pair-key", counterKey),
		chromedp.Click(chromedp.CSS("#pair-go")),
		waitText("#presells", "#"+ticket),
		chromedp.KeyEvent(row[0]["ticket_barcode"].(string)+kb.Enter),
		waitText("#drift", "Flat White"),
		waitText("#total", fmt.Sprintf("$%.2f", before)),
		chromedp.KeyEvent(kb.F6),
		waitText("#total", fmt.Sprintf("$%.2f", after)),
		typeInto("#amount", "50"),
		chromedp.KeyEvent(kb.F2),
		waitText("#change", fmt.Sprintf("$%.2f", 50-after)),
	)
	browserRun(t, display, waitText("#total", fmt.Sprintf("$%.2f", after)), waitText("#change", fmt.Sprintf("$%.2f", 50-after)))
	browserRun(t, counter, chromedp.KeyEvent(kb.F8), waitText("#message", "complete"))
	browserRun(t, display, waitText("#thanks", "Thank you"), waitText("#display", "Welcome"))
	done := sqliteRows(t, l.db, `SELECT phase, saletotal_cents FROM sales WHERE physkey = %s`, sqlQuote(physkey))
	if num(done[0]["phase"]) != 1 || num(done[0]["saletotal_cents"]) != after*100 {
		t.Fatalf("the sale in the lane DB after Complete: %v, want phase 1 at %.2f", done, after)
	}
	browserLog(display).wantNoErrors(t)
}

// TestBrowserCounterHoldLapses: a hold that lapses by itself sends no event,
// yet the counter's list stops showing it once it has lapsed: the page
// fetches the list again when the earliest hold it shows runs out.
func TestBrowserCounterHoldLapses(t *testing.T) {
	alongside(t)
	l := startLane(t, "--presell-lease", "2s")
	tab := l.login(presellQuery, l.newKey("tablet-1", "presell"), "")
	counterKey := l.newKey("counter-1", "counter")
	other := l.login("", l.newKey("counter-2", "counter"), "")
	p := presellFromTablet(t, tab, 0, soldLine{1001, 1})
	ctx := newBrowser(t)

	browserRun(t, ctx,
		chromedp.Navigate("http://"+l.addr+"/counter/"),
		typeInto("#pair-key", counterKey),
		chromedp.Click(chromedp.CSS("#pair-go")),
		waitText("#presells", "#"+fmt.Sprint(num(p["ticket"]))),
	)
	// counter-2 recalls it and then stays idle (no heartbeat): the recall's
	// event shows the hold, and nothing tells the page when it lapses.
	sale(t, other, presellA+"recall", nil, map[string]any{"ticket": p["ticket"]})
	browserRun(t, ctx,
		waitText("#presells", "held by counter-2"),
		chromedp.WaitNotPresent(chromedp.CSS("#presells .holder")),
	)
	if st := sqliteRows(t, l.db, `SELECT phase FROM sales WHERE physkey = %s`, sqlQuote(p["physkey"].(string))); num(st[0]["phase"]) != 0 {
		t.Fatalf("the presell is %v: the hold lapsed, yet nothing should have changed it", st)
	}
	browserLog(ctx).wantNoErrors(t)
}

// TestBrowserCounterListKeepsItsButtons: the list is drawn again on every
// tablet's submit (and every heartbeat); each presell keeps its button
// while it is listed, so a click that spans a redraw still recalls. (The
// list was built anew each time, and a button replaced between the press
// and the release took no click.) A presell another counter takes leaves
// the list without moving the rows above it.
func TestBrowserCounterListKeepsItsButtons(t *testing.T) {
	alongside(t)
	l := startLane(t)
	tab := l.login(presellQuery, l.newKey("tablet-1", "presell"), "")
	counterKey := l.newKey("counter-1", "counter")
	other := l.login("", l.newKey("counter-2", "counter"), "")
	first := presellFromTablet(t, tab, 0, soldLine{1001, 1})
	taken := presellFromTablet(t, tab, 0, soldLine{1002, 1})
	ctx := newBrowser(t)
	browserRun(t, ctx, setViewport(desktopWidth))
	pairCounter(t, ctx, l.addr, counterKey)
	browserRun(t, ctx, waitText("#presells", "#"+fmt.Sprint(num(taken["ticket"]))))
	firstButton := fmt.Sprintf(`#presells button[data-ticket="%v"]`, num(first["ticket"]))
	pageTrue(t, ctx, `(window.kept = document.querySelector('`+firstButton+`')) !== null`)
	at, err := chromedp.Run(ctx, chromedp.Evaluate[[]float64](`(() => {
		const r = window.kept.getBoundingClientRect();
		return [r.left + r.width / 2, r.top + r.height / 2];
	})()`))
	if err != nil {
		t.Fatal(err)
	}
	// The cashier presses on the first presell; before the release, a
	// tablet submits a third and counter-2 takes the second, and each
	// event draws the list again.
	browserRun(t, ctx, chromedp.MouseEvent(chromedp.MousePressed, at[0], at[1], chromedp.ButtonLeft, chromedp.ClickCount(1)))
	third := presellFromTablet(t, tab, 0, soldLine{1003, 1})
	browserRun(t, ctx, waitText("#presells", "#"+fmt.Sprint(num(third["ticket"]))))
	sale(t, other, presellA+"recall", nil, map[string]any{"ticket": taken["ticket"]})
	browserRun(t, ctx, waitText("#presells", "held by counter-2"))
	wantPage(t, ctx, "the first presell's button is the one drawn before the redraws",
		`window.kept.isConnected && window.kept === document.querySelector('`+firstButton+`')`)
	browserRun(t, ctx,
		chromedp.MouseEvent(chromedp.MouseReleased, at[0], at[1], chromedp.ButtonLeft, chromedp.ClickCount(1)),
		waitText("#sale", "Flat White"),
	)
	// Paid in full with change due and set aside: the cashier is told it
	// is paid, not that the next must "take only the rest".
	t1 := fmt.Sprint(num(first["ticket"]))
	browserRun(t, ctx,
		chromedp.KeyEvent("10"), chromedp.KeyEvent(kb.F2), waitText("#paid", "$10.00"),
		chromedp.KeyEvent(kb.Escape), waitText("#message", "Press Esc again"),
		chromedp.KeyEvent(kb.Escape), waitText("#message", "Ticket #"+t1+" released paid in full ($10.00): recall it and press F8"),
	)
	// A ticket typed as the list writes it, "#3", recalls it.
	t3 := fmt.Sprint(num(third["ticket"]))
	browserRun(t, ctx, typeInto("#scan", "#"+t3+kb.Enter), waitText("#sale-title", "Ticket #"+t3))
	browserLog(ctx).wantNoErrors(t)
}

// TestBrowserCounterListCut: with more presells open than the lane lists
// (500), the counter's list keeps the longest-waiting customers and says
// that newer ones are left out, rather than dropping the oldest in silence.
func TestBrowserCounterListCut(t *testing.T) {
	alongside(t)
	l := startLane(t)
	counterKey := l.newKey("counter-1", "counter")
	// 520 presells, ticket i submitted 600-i seconds ago: ticket 1 has
	// waited longest.
	sqliteExec(t, l.db, `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 520)
		INSERT INTO sales (physkey, random_key, phase, startdt, updated_utc, presell, ticket, ticket_word, ticket_barcode,
			submitted_utc, created_by, holder_name)
		SELECT printf('cut-%%04d', i), 'cut-' || i, 5, datetime('now'), datetime('now'), 1, i, 'cut-' || i, 'CUT' || i,
			datetime('now', printf('-%%d seconds', 600 - i)), 'filler', 'filler'
		FROM n`)
	ctx := newBrowser(t)
	browserRun(t, ctx, setViewport(desktopWidth))
	pairCounter(t, ctx, l.addr, counterKey)
	browserRun(t, ctx, waitText("#presells-more", "More presells are waiting than these 500"))
	first := readText(t, ctx, "#presells li:first-child .ticket")
	last := readText(t, ctx, "#presells li:nth-last-child(2) .ticket")
	if first != "#1" || last != "#500" {
		t.Errorf("the cut list runs %s to %s, want #1 (the longest waiting) to #500", first, last)
	}
	// The 500 scroll in a box of their own, in view below the scan field:
	// the page is not 500 rows long (the keys' card is just below).
	wantPage(t, ctx, "the list scrolls in a box of its own, in view", `(() => {
		const list = document.querySelector("#presells");
		return list.scrollHeight > 2 * list.clientHeight && list.getBoundingClientRect().bottom <= innerHeight &&
			document.scrollingElement.scrollHeight < 1.5 * innerHeight;
	})()`)
	lookScreen(t, ctx, "counter-long-list", false)
	browserLog(ctx).wantNoErrors(t)
}
