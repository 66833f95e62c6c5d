package integration

// The counter and the tablet as a tired cashier and a rushed server use
// them: amounts typed where the focus is, a second Esc, a mis-scan, double
// taps, and text from the DB that is very long or carries bidi controls.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// A laptop counter's screen, the smallest the counter is laid out for.
const (
	laptopWidth  = 1366
	laptopHeight = 768
)

// longWord is a product description with no place to break a line.
var longWord = strings.Repeat("W", 300)

// uuidText finds a sale's physkey in what the page says: the cashier knows
// tickets, not physkeys.
var uuidText = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-`)

// lookScreen saves the visible page as NAME.png in $GREENLANE_LOOK when it
// is set, to be looked at (full: the whole page; else the window); an
// ordinary run writes nothing.
func lookScreen(t *testing.T, ctx context.Context, name string, full bool) {
	t.Helper()
	dir := os.Getenv("GREENLANE_LOOK")
	if dir == "" {
		return
	}
	shot := chromedp.CaptureScreenshot()
	if full {
		shot = chromedp.FullScreenshot(90)
	}
	png, err := chromedp.Run(ctx, shot)
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestBrowserCounterCashier: an amount typed into the scan field is the
// tender F2 takes, and an amount the page cannot read exactly is refused;
// input that is no ticket is refused by the page; a mis-scan keeps the sale
// on screen; errors name the ticket, not the physkey; a sale holding a
// payment needs a second Esc to be released; a 300-letter description and
// a customer named with U+202E neither break nor reorder the screen, and at
// 1366×768 the totals and Complete / Release / Void stay in view.
func TestBrowserCounterCashier(t *testing.T) {
	alongside(t)
	l := startLane(t)
	tabletKey := l.newKey("tablet-1", "presell")
	counterKey := l.newKey("counter-1", "counter")
	sqliteExec(t, l.db, `UPDATE products SET description = %s WHERE pid = 1004;
		UPDATE customers SET name = 'Mei ' || char(8238) || 'Lin Chen' WHERE cid = 7`, sqlQuote(longWord))
	tab := l.login(presellQuery, tabletKey, "")
	p1 := presellFromTablet(t, tab, 7, soldLine{1006, 1}, soldLine{1004, 1}, soldLine{1001, 1}, soldLine{1002, 1})
	p2 := presellFromTablet(t, tab, 0, soldLine{1001, 1})
	t1 := fmt.Sprint(num(p1["ticket"]))
	t2 := fmt.Sprint(num(p2["ticket"]))
	claimed := func(pk any) bool {
		rows := sqliteRows(t, l.db, `SELECT claim_session IS NOT NULL AS held FROM sales WHERE physkey = %s`, sqlQuote(pk.(string)))
		return len(rows) == 1 && num(rows[0]["held"]) == 1
	}
	paid := func(pk any) string {
		rows := sqliteRows(t, l.db, `SELECT count(*) AS n, coalesce(sum(amount_cents), 0) AS cents FROM payments WHERE sale_physkey = %s AND payflags = 0`, sqlQuote(pk.(string)))
		return fmt.Sprintf("%v×%v", rows[0]["n"], rows[0]["cents"])
	}

	ctx := newBrowser(t)
	browserRun(t, ctx,
		chromedp.EmulateViewport(laptopWidth, laptopHeight),
		chromedp.Navigate("http://"+l.addr+"/counter/"),
		typeInto("#pair-key", counterKey),
		chromedp.Click(chromedp.CSS("#pair-go")),
		waitText("#presells", "#"+t2),
	)

	// What cannot be a ticket is refused here, in words, before the lane
	// is asked.
	for _, typed := range []string{"0", strings.Repeat("A", 65), "GL01 0001"} {
		browserRun(t, ctx, chromedp.KeyEvent(typed+kb.Enter), waitText("#message", "is not a ticket"))
	}

	// Errors name the ticket: F8 on an unpaid sale says what is missing.
	browserRun(t, ctx,
		chromedp.KeyEvent(t2+kb.Enter),
		waitText("#sale-title", "Ticket #"+t2),
		chromedp.KeyEvent(kb.F8),
		waitText("#message", "Ticket #"+t2+" is not paid in full: take $"),
	)
	if m := readText(t, ctx, "#message"); uuidText.MatchString(m) {
		t.Errorf("the counter says %q: a physkey, not a ticket", m)
	}

	// A mis-scan keeps the sale on screen and its claim on the lane.
	browserRun(t, ctx, chromedp.KeyEvent("99"+kb.Enter), waitText("#message", "No open presell matches “99”"))
	if got := readText(t, ctx, "#sale-title"); !strings.Contains(got, "Ticket #"+t2) || !claimed(p2["physkey"]) {
		t.Fatalf("after a mis-scan the counter shows %q and ticket %s is claimed: %v; want it kept", got, t2, claimed(p2["physkey"]))
	}

	// A good scan takes the new sale and gives the old one back.
	browserRun(t, ctx, chromedp.KeyEvent(p1["ticket_barcode"].(string)+kb.Enter), waitText("#sale-title", "Ticket #"+t1))
	if claimed(p2["physkey"]) {
		t.Errorf("ticket %s is still claimed after ticket %s was recalled in its place", t2, t1)
	}

	// "$10" typed where the focus is (money written as the screen writes
	// it), then F2: $10 cash, and the field is empty for the next scan.
	browserRun(t, ctx, chromedp.KeyEvent("$10"), chromedp.KeyEvent(kb.F2), waitText("#paid", "$10.00"), waitText("#payments", "Cash"))
	if got := paid(p1["physkey"]); got != "1×1000" {
		t.Fatalf("payments after $10 and F2: %s, want one of $10.00", got)
	}
	if !pageTrue(t, ctx, `document.getElementById("scan").value === ""`) {
		t.Error("the typed amount stayed in the scan field after it was paid")
	}

	// clearFields empties both fields (an Esc in an empty scan field would
	// release the sale) and gives the scan field the focus.
	clearFields := func() {
		t.Helper()
		if !pageTrue(t, ctx, `["amount", "scan"].every(id => (document.getElementById(id).value = "") === "") && (document.getElementById("scan").focus(), true)`) {
			t.Fatal("no amount or scan field")
		}
	}
	// Amounts the page cannot read exactly are refused, never guessed.
	for _, bad := range []struct{ field, text string }{{"#scan", "20,50"}, {"#scan", "1.234"}, {"#amount", "abc"}} {
		clearFields()
		browserRun(t, ctx,
			typeInto(bad.field, bad.text),
			chromedp.KeyEvent(kb.F3),
			waitText("#message", "is not an amount"),
		)
		if got := paid(p1["physkey"]); got != "1×1000" {
			t.Fatalf("after %q and F3 the payments are %s, want only the $10.00", bad.text, got)
		}
	}
	clearFields()

	// The screen at 1366×768 with four lines (one 300 letters long) and a
	// payment: nothing wider than the window, the sale beside the scan
	// field, its totals and endings in view.
	lookScreen(t, ctx, "counter-laptop", false)
	layout := map[string]string{
		"the page scrolls sideways":                      `document.documentElement.scrollWidth <= window.innerWidth`,
		"the sale overlaps the scan field":               `document.getElementById("sale").getBoundingClientRect().left >= document.getElementById("scan").getBoundingClientRect().right`,
		"the balance is below the window":                `document.getElementById("balance").getBoundingClientRect().bottom <= window.innerHeight`,
		"Cash is below the window":                       `document.getElementById("pay-cash").getBoundingClientRect().bottom <= window.innerHeight`,
		"Complete / Release / Void are below the window": `["complete", "release", "void"].every(id => document.getElementById(id).getBoundingClientRect().bottom <= window.innerHeight)`,
		"the customer's name is not isolated":            `[...document.querySelectorAll("#sale bdi")].some(b => b.textContent.includes("\u202e") && getComputedStyle(b).unicodeBidi === "isolate")`,
	}
	for what, expr := range layout {
		if !pageTrue(t, ctx, expr) {
			t.Errorf("at %d×%d %s", laptopWidth, laptopHeight, what)
		}
	}

	// Esc on a sale holding a payment asks first; a second Esc releases it.
	browserRun(t, ctx, chromedp.KeyEvent(kb.Escape), waitText("#message", "Ticket #"+t1+" holds $10.00 paid. Press Esc again"))
	if !claimed(p1["physkey"]) || !pageTrue(t, ctx, `document.getElementById("sale-title") !== null`) {
		t.Fatal("one Esc released a presell holding a payment")
	}
	browserRun(t, ctx, chromedp.KeyEvent(kb.Escape), waitText("#message", "Ticket #"+t1+" released holding $10.00 paid"))
	if claimed(p1["physkey"]) {
		t.Error("a second Esc did not release the presell")
	}
	// Back in the list, it does not look unpaid.
	browserRun(t, ctx, waitText("#presells", "$10.00 already paid"))
	browserLog(ctx).wantNoErrors(t)
}

// waitLaneLines waits (within browserTimeout) until a sale's lines in the
// lane DB read want; on timeout the test fails with what they read.
func waitLaneLines(t *testing.T, db, physkey, want string) {
	t.Helper()
	deadline := time.Now().Add(browserTimeout)
	for {
		got := laneLines(t, db, physkey)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the lane DB holds lines %q, want %q", got, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestBrowserTabletQuickTaps: a rushed server double-taps. Two quick taps
// on + add two; a double-tapped Remove and a triple-tapped Submit each act
// once and show no error; the next customer starts without the last one's
// error banners. At 360 px a 300-letter description and a 64-character key
// name fit the screen, and a customer named with U+202E is isolated.
func TestBrowserTabletQuickTaps(t *testing.T) {
	alongside(t)
	l := startLane(t)
	name := "tablet-" + strings.Repeat("X", 57)
	key := l.newKey(name, "presell")
	sqliteExec(t, l.db, `UPDATE products SET description = %s WHERE plu = 'CROI';
		UPDATE customers SET name = 'Hemi ' || char(8238) || 'Walker' WHERE cid = 3`, sqlQuote(longWord))
	ctx := newBrowser(t)
	log := browserLog(ctx)
	browserRun(t, ctx, setViewport(phoneWidth))
	pairTablet(t, ctx, l.addr, key)
	// clicks taps the button matching selector n times in one go, as fast
	// as a finger can: no reply comes in between.
	clicks := func(selector string, n int) {
		t.Helper()
		expr := fmt.Sprintf(`(() => { const b = document.querySelector(%q); if (!b) return false; for (let i = 0; i < %d; i++) b.click(); return true })()`, selector, n)
		if !pageTrue(t, ctx, expr) {
			t.Fatalf("no %s to tap", selector)
		}
	}
	noErrors := func(after string) {
		t.Helper()
		if n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("#errors li").length`)); err != nil || n != 0 {
			t.Errorf("after %s the page shows %d error banner(s) (%v): %q", after, n, err, readText(t, ctx, "#errors"))
		}
	}

	browserRun(t, ctx, chromedp.Click(chromedp.CSS(tabFlatWhite)), waitText("#lines", "Flat White"))
	physkey := tabletSale(t, ctx)
	waitLaneLines(t, l.db, physkey, "1001×1")
	clicks(`#lines li[data-pid="1001"] button.inc`, 2)
	waitLaneLines(t, l.db, physkey, "1001×3")
	browserRun(t, ctx, waitText(`#lines li[data-pid="1001"] .qty`, "3"), chromedp.WaitNotPresent(chromedp.CSS("#pending li")))

	browserRun(t, ctx,
		chromedp.Click(chromedp.CSS(tabCroissant)),
		waitText("#lines", "WWWW"),
		chromedp.WaitNotPresent(chromedp.CSS("#pending li")),
		typeInto("#cust-q", "hemi"),
		chromedp.Click(chromedp.CSS("#cust-find")),
		chromedp.Click(chromedp.CSS(`#cust-results button[data-cid="3"]`)),
		waitText("#customer", "10% discount"),
	)
	pageTrue(t, ctx, `(window.scrollTo(0, 0), true)`)
	lookScreen(t, ctx, "tablet-phone-top", false)
	pageTrue(t, ctx, `(document.getElementById("order").scrollIntoView(), true)`)
	lookScreen(t, ctx, "tablet-phone-order", false)
	layout := map[string]string{
		"the page scrolls sideways":           `document.documentElement.scrollWidth <= window.innerWidth`,
		"Unpair is past the right edge":       `document.getElementById("unpair").getBoundingClientRect().right <= window.innerWidth`,
		"the customer's name is not isolated": `[...document.querySelectorAll("#customer-name bdi")].some(b => b.textContent.includes("\u202e") && getComputedStyle(b).unicodeBidi === "isolate")`,
	}
	for what, expr := range layout {
		if !pageTrue(t, ctx, expr) {
			t.Errorf("at %d px %s", phoneWidth, what)
		}
	}

	croissant := `#lines li[data-pid="1016"] button.remove`
	clicks(croissant, 2)
	browserRun(t, ctx, chromedp.WaitNotPresent(chromedp.CSS(croissant)), chromedp.WaitNotPresent(chromedp.CSS("#pending li")))
	waitLaneLines(t, l.db, physkey, "1001×3")
	noErrors("a double-tapped Remove")

	// A refused scan leaves a banner for this order; a triple-tapped
	// Submit parks once and adds none.
	// It says what happened in words, with no raw code.
	browserRun(t, ctx, typeInto("#scan", "0000000000017"+kb.Enter), waitText("#errors", "0000000000017\u2069: No product has that barcode or PLU"), chromedp.WaitNotPresent(chromedp.CSS("#pending li")))
	if got := readText(t, ctx, "#errors"); strings.Contains(got, "unknown_product") {
		t.Errorf("the banner of a refused scan reads %q: a raw error code", got)
	}
	pageTrue(t, ctx, `(document.getElementById("errors").scrollIntoView(), true)`)
	lookScreen(t, ctx, "tablet-error-banner", false)
	clicks("#submit", 3)
	browserRun(t, ctx, waitText("#ticket", "Next customer"), chromedp.WaitNotPresent(chromedp.CSS("#pending li")))
	if n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("#errors li").length`)); err != nil || n != 1 {
		t.Errorf("after a triple-tapped Submit the page shows %d error banner(s) (%v), want only the refused scan's: %q", n, err, readText(t, ctx, "#errors"))
	}
	browserRun(t, ctx, chromedp.Click(chromedp.CSS("#next")), waitText("#total", "$0.00"))
	noErrors("Next customer")
	log.wantNoErrors(t)
}

// TestBrowserCounterTenderSlips: the slips of a tired cashier never pay an
// amount nobody meant. Text in both the scan field and the Amount field
// pays nothing from a tender key, and the Amount field's Enter pays its own
// figure; a whole number that is also an open ticket's number is paid only
// on a second press of the same key; a scan while the sale holds a payment
// says to complete it or set it aside; the lane's refusals of a tender keep
// their figures; and a tender once nothing is due says to complete. A
// 250-letter customer name takes at most two lines of the sale's header.
func TestBrowserCounterTenderSlips(t *testing.T) {
	alongside(t)
	l := startLane(t)
	sqliteExec(t, l.db, `UPDATE customers SET name = %s WHERE cid = 1`, sqlQuote(strings.Repeat("N", 250)))
	tab := l.login(presellQuery, l.newKey("tablet-1", "presell"), "")
	p1 := presellFromTablet(t, tab, 1, soldLine{1006, 1}, soldLine{1001, 1}, soldLine{1002, 1})
	p2 := presellFromTablet(t, tab, 0, soldLine{1001, 1})
	t1, t2 := fmt.Sprint(num(p1["ticket"])), fmt.Sprint(num(p2["ticket"]))
	paid := func() string {
		rows := sqliteRows(t, l.db, `SELECT count(*) AS n, coalesce(sum(amount_cents), 0) AS cents FROM payments WHERE sale_physkey = %s AND payflags = 0`, sqlQuote(p1["physkey"].(string)))
		return fmt.Sprintf("%v×%v", rows[0]["n"], rows[0]["cents"])
	}
	wantPaid := func(after, want string) {
		t.Helper()
		if got := paid(); got != want {
			t.Fatalf("after %s the payments are %s, want %s", after, got, want)
		}
	}

	ctx := newBrowser(t)
	browserRun(t, ctx,
		chromedp.EmulateViewport(laptopWidth, laptopHeight),
		chromedp.Navigate("http://"+l.addr+"/counter/"),
		typeInto("#pair-key", l.newKey("counter-1", "counter")),
		chromedp.Click(chromedp.CSS("#pair-go")),
		waitText("#presells", "#"+t2),
		chromedp.KeyEvent(t1+kb.Enter),
		waitText("#sale-title", "Ticket #"+t1),
	)
	// A 250-letter customer name takes at most two lines of the sale's
	// header: the tender keys stay where they were.
	lookScreen(t, ctx, "counter-long-name", false)
	if !pageTrue(t, ctx, `(() => { const w = document.getElementById("sale-who"); return w.getBoundingClientRect().height <= 2 * 1.6 * parseFloat(getComputedStyle(w).fontSize); })()`) {
		t.Errorf("a 250-letter customer name takes %q of the sale's header, want at most two lines", readText(t, ctx, "#sale-who"))
	}

	// "3" in the scan field (half a ticket number), then F7 and "4": F2
	// pays nothing and names both; Enter in Amount pays $4.00.
	browserRun(t, ctx,
		chromedp.KeyEvent("3"), chromedp.KeyEvent(kb.F7), chromedp.KeyEvent("4"), chromedp.KeyEvent(kb.F2),
		waitText("#message", "Two amounts are typed: “3” in the scan field and “4” in Amount"),
	)
	wantPaid("3, F7, 4 and F2", "0×0")
	browserRun(t, ctx, chromedp.KeyEvent(kb.Enter), waitText("#paid", "$4.00"))
	wantPaid("3, F7, 4 and Enter", "1×400")
	if !pageTrue(t, ctx, `document.getElementById("amount").value === "" && document.getElementById("scan").value === "3"`) {
		t.Error("after Enter in Amount, want Amount emptied and the scan field's 3 left as typed")
	}
	pageTrue(t, ctx, `(document.getElementById("scan").value = "", document.getElementById("scan").focus(), true)`)

	// The next ticket's number and F2 instead of Enter: asked, not paid;
	// the same key again pays it.
	browserRun(t, ctx, chromedp.KeyEvent(t2), chromedp.KeyEvent(kb.F2),
		waitText("#message", t2+" is also ticket #"+t2+": press F2 again to pay $"+t2+".00 cash, or Enter to recall #"+t2))
	wantPaid("the next ticket's number and F2", "1×400")
	lookScreen(t, ctx, "counter-also-ticket", false)
	browserRun(t, ctx, chromedp.KeyEvent(kb.F2), waitText("#payments", "$"+t2+".00"))
	wantPaid("the next ticket's number and F2 twice", fmt.Sprintf("2×%v", 400+num(p2["ticket"])*100))

	// A scan while the sale holds payments: complete it, or set it aside.
	browserRun(t, ctx, chromedp.KeyEvent(t2+kb.Enter),
		waitText("#message", fmt.Sprintf("Ticket #%s holds $%.2f paid: complete it (F8), or press Esc twice to set it aside first.", t1, 4+num(p2["ticket"]))))

	// The lane's refusals keep their figures.
	browserRun(t, ctx, chromedp.KeyEvent("600.00"), chromedp.KeyEvent(kb.F2), waitText("#message", "$600.00 cash against $"))
	if m := readText(t, ctx, "#message"); !strings.Contains(m, "in change, more than this lane gives") {
		t.Errorf("a $600 cash tender is refused with %q, want the change it would leave", m)
	}
	pageTrue(t, ctx, `(document.getElementById("scan").value = "", document.getElementById("scan").focus(), true)`)
	browserRun(t, ctx, typeInto("#amount", "500"), chromedp.KeyEvent(kb.F3), waitText("#message", "only cash gives change"))
	lookScreen(t, ctx, "counter-eftpos-over", false)
	wantPaid("refused tenders", fmt.Sprintf("2×%v", 400+num(p2["ticket"])*100))

	// The rest is paid behind this screen's back (as if on another): the
	// screen still shows a balance, and the lane's refusal of a tender
	// says nothing is left to pay.
	pageTrue(t, ctx, `(document.getElementById("amount").value = "", document.getElementById("scan").focus(), true)`)
	pk1 := sqlQuote(p1["physkey"].(string))
	sqliteExec(t, l.db, `INSERT INTO payments (sale_physkey, sequence, type, amount_cents, dt, payflags)
		SELECT sale_physkey, 99, type, (SELECT saletotal_cents FROM sales WHERE physkey = %s) - (SELECT sum(amount_cents) FROM payments WHERE sale_physkey = %s AND payflags = 0), dt, 0
		FROM payments WHERE sale_physkey = %s LIMIT 1`, pk1, pk1, pk1)
	browserRun(t, ctx, chromedp.KeyEvent("5.00"), chromedp.KeyEvent(kb.F2), waitText("#message", "Nothing left to pay on #"+t1+": press F8 to complete."))
	sqliteExec(t, l.db, `DELETE FROM payments WHERE sale_physkey = %s AND sequence = 99`, pk1)
	pageTrue(t, ctx, `(document.getElementById("scan").value = "", true)`)

	// The exact balance, then a second tender: nothing left to pay.
	browserRun(t, ctx, chromedp.KeyEvent(kb.F2), waitText("#balance", "$0.00"))
	for _, typed := range []string{"5", ""} {
		browserRun(t, ctx, chromedp.KeyEvent(typed), chromedp.KeyEvent(kb.F2), waitText("#message", "Nothing left to pay on #"+t1+": press F8 to complete."))
		pageTrue(t, ctx, `(document.getElementById("scan").value = "", document.querySelector("#message").textContent = "", true)`)
	}
	lookScreen(t, ctx, "counter-tender-slips", false)
	browserLog(ctx).wantNoErrors(t)
}
