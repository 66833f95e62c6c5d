package integration

// The tablet screen (/tablet/) in a real Chromium against the real binary:
// a whole presell from pairing to ticket, and the promise that an order is
// never lost or doubled when the lane goes away under it.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// Demo fixture products the tests use.
const (
	tabFlatWhite  = `#grid button[data-plu="FW"]`
	tabHam        = `#grid button[data-pid="1024"]` // per kg: asks for grams
	tabLatte      = `#grid button[data-plu="LAT"]`
	tabCroissant  = `#grid button[data-plu="CROI"]`
	tabCappuccino = `#grid button[data-plu="CAP"]`
	tabLongBlack  = `#grid button[data-plu="LB"]`
	tabOJBarcode  = "9415321000140" // Fresh Orange Juice 300ml, pid 1010
)

// pairTablet opens the tablet page, pairs it with key and waits for the
// product grid.
func pairTablet(t *testing.T, ctx context.Context, addr, key string) {
	t.Helper()
	browserRun(t, ctx,
		chromedp.Navigate("http://"+addr+"/tablet/"),
		chromedp.WaitVisible(chromedp.CSS("#pair-key")),
		typeInto("#pair-key", key),
		chromedp.Click(chromedp.CSS("#pair-go")),
		waitText("#grid", "Flat White"),
	)
}

// desktopTablet starts a lane (with flags) and a browser at desktop width,
// and pairs the tablet page with a new presell key, tablet-1.
func desktopTablet(t *testing.T, flags ...string) (*lane, context.Context) {
	t.Helper()
	l, ctx, _ := desktopTabletKey(t, flags...)
	return l, ctx
}

// desktopTabletKey is desktopTablet that also gives tablet-1's key, for a
// test that uses it elsewhere too.
func desktopTabletKey(t *testing.T, flags ...string) (*lane, context.Context, string) {
	t.Helper()
	l := startLane(t, flags...)
	ctx := newBrowser(t)
	browserRun(t, ctx, setViewport(desktopWidth))
	key := l.newKey("tablet-1", "presell")
	pairTablet(t, ctx, l.addr, key)
	return l, ctx, key
}

// wantOrder fails the test unless the lane DB holds the lines want
// (laneLines' form) for the sale the page is building; when says when.
func wantOrder(t *testing.T, ctx context.Context, l *lane, want, when string) {
	t.Helper()
	if got := laneLines(t, l.db, tabletSale(t, ctx)); got != want {
		t.Fatalf("%s the lane DB holds %q, want %q", when, got, want)
	}
}

// landed taps sel and waits until text is in the order and nothing waits
// to be sent.
func landed(sel, text string) chromedp.Action[chromedp.Void] {
	return chromedp.Steps(chromedp.Click(chromedp.CSS(sel)), waitText("#lines", text), chromedp.WaitNotPresent(chromedp.CSS("#pending li")))
}

// tabletSale is the physkey of the sale the page is building.
func tabletSale(t *testing.T, ctx context.Context) string {
	t.Helper()
	k, err := chromedp.Run(ctx, chromedp.Evaluate[string](`localStorage.getItem("greenlane.tablet.sale") || ""`))
	if err != nil || k == "" {
		t.Fatalf("the page names no sale (%q, %v)", k, err)
	}
	return k
}

// saveScreen writes the visible page as docs/screens/NAME.png for the
// README's tour when GREENLANE_SCREENS=1 (an ordinary test run leaves the
// work tree as it was); otherwise it only checks a screenshot can be taken.
func saveScreen(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[any](`window.scrollTo(0, 0); 0`)); err != nil {
		t.Fatal(err)
	}
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	dir := t.TempDir()
	if os.Getenv("GREENLANE_SCREENS") == "1" {
		dir = filepath.Join("..", "docs", "screens")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// waitImage waits until the image matching selector has loaded and has a
// size: a ticket whose barcode did not load cannot be scanned.
func waitImage(selector string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		expr := fmt.Sprintf(`(() => { const i = document.querySelector(%q); return !!(i && i.complete && i.naturalWidth > 0) })()`, selector)
		for {
			ok, err := chromedp.Evaluate[bool](expr)(ctx, tg)
			if err == nil && ok {
				return nil
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("image %s did not load: %w", selector, ctx.Err())
			case <-time.After(100 * time.Millisecond):
			}
		}
	})
}

// TestBrowserTabletPresell: pair, tap a product, scan a barcode, weigh a
// deli item, set a customer, submit; the ticket shows its number, word and
// barcode images, and the lane DB holds the submitted sale.
func TestBrowserTabletPresell(t *testing.T) {
	alongside(t)
	l := startLane(t)
	needsOwnLane(t)
	key := l.newKey("tablet-7", "presell")
	ctx := newBrowser(t)
	log := browserLog(ctx)

	browserRun(t, ctx, setViewport(desktopWidth))
	pairTablet(t, ctx, l.addr, key)
	// The key must not stay in the page: the pairing form is gone.
	browserRun(t, ctx,
		chromedp.Click(chromedp.CSS(tabFlatWhite)),
		waitText("#lines", "Flat White"),
		waitText("#paired-as", "paired as tablet-7"),
		typeInto("#scan", tabOJBarcode+kb.Enter),
		waitText("#lines", "Fresh Orange Juice"),
		chromedp.Click(chromedp.CSS(tabHam)),
		chromedp.WaitVisible(chromedp.CSS("#weigh-grams")),
		typeInto("#weigh-grams", "250"),
		chromedp.Click(chromedp.CSS("#weigh-add")),
		waitText("#lines", "250 g"),
		// Two flat whites with the stepper.
		chromedp.Click(chromedp.CSS(`#lines li[data-pid="1001"] button.inc`)),
		waitText(`#lines li[data-pid="1001"] .qty`, "2"),
		typeInto("#cust-q", "hemi"),
		chromedp.Click(chromedp.CSS("#cust-find")),
		waitText("#cust-results", "Hemi Walker"),
		chromedp.Click(chromedp.CSS(`#cust-results button[data-cid="3"]`)),
		waitText("#customer", "10% discount"),
	)
	// The total is the lane's: 2 × 5.50 + 4.50 + 250 g at 39.90/kg (9.98),
	// all less 10% for Hemi.
	physkey := tabletSale(t, ctx)
	total := sqliteRows(t, l.db, `SELECT saletotal_cents AS c FROM sales WHERE physkey = %s`, sqlQuote(physkey))
	wantTotal := fmt.Sprintf("$%.2f", total[0]["c"].(float64)/100)
	if got := readText(t, ctx, "#total"); got != wantTotal {
		t.Errorf("the page shows a total of %q, the lane DB holds %s", got, wantTotal)
	}
	saveScreen(t, ctx, "tablet-order")
	browserRun(t, ctx, setViewport(phoneWidth), waitText("#grid", "Flat White"))
	// At 360 px the grid still fits: no product button is cut off or
	// scrolls the page sideways.
	wide, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.documentElement.scrollWidth > window.innerWidth + 1 ||
		[...document.querySelectorAll("#grid .product")].some(b => b.getBoundingClientRect().right > window.innerWidth || b.getBoundingClientRect().height < 48)`))
	if err != nil || wide {
		t.Errorf("at %d px the product grid overflows or its buttons are too small (%v)", phoneWidth, err)
	}
	saveScreen(t, ctx, "tablet-phone")
	browserRun(t, ctx, setViewport(desktopWidth),
		chromedp.Click(chromedp.CSS("#submit")),
		waitText("#ticket", "Next customer"),
		waitImage("#ticket-barcode"),
		waitImage("#ticket-qr"),
	)
	sale := sqliteRows(t, l.db, `SELECT phase, cid, ticket, ticket_word, ticket_barcode FROM sales WHERE physkey = %s`, sqlQuote(physkey))
	if len(sale) != 1 {
		t.Fatalf("sale %s: %d rows in the lane DB", physkey, len(sale))
	}
	s := sale[0]
	if s["phase"].(float64) != 5 || s["cid"] == nil || s["cid"].(float64) != 3 {
		t.Errorf("the lane DB holds the sale as %v, want phase 5 with customer 3", s)
	}
	if got, want := readText(t, ctx, "#ticket-number"), fmt.Sprint(s["ticket"]); got != want {
		t.Errorf("the ticket shows number %q, the lane DB %s", got, want)
	}
	if got, want := readText(t, ctx, "#ticket-word"), fmt.Sprint(s["ticket_word"]); got != want {
		t.Errorf("the ticket shows word %q, the lane DB %s", got, want)
	}
	src, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("ticket-barcode").getAttribute("src")`))
	if err != nil || !strings.Contains(src, fmt.Sprint(s["ticket_barcode"])) {
		t.Errorf("the barcode image is %q (%v), want the ticket's barcode %v", src, err, s["ticket_barcode"])
	}
	lines := sqliteRows(t, l.db, `SELECT pid, qty FROM sale_lines WHERE sale_physkey = %s ORDER BY seqnce`, sqlQuote(physkey))
	got := []string{}
	for _, r := range lines {
		got = append(got, fmt.Sprintf("%v×%v", r["pid"], r["qty"]))
	}
	if want := "1001×2 1010×1 1024×250"; strings.Join(got, " ") != want {
		t.Errorf("lines in the lane DB: %s, want %s", strings.Join(got, " "), want)
	}
	// On a tablet on its side, Next customer is on screen without scrolling.
	pageTrue(t, ctx, `window.scrollTo(0, 0) === undefined`)
	wantPage(t, ctx, "Next customer in view at 1280×900", `document.querySelector("#next").getBoundingClientRect().bottom <= innerHeight`)
	lookScreen(t, ctx, "tablet-ticket-view", false)
	saveScreen(t, ctx, "tablet-ticket")

	// Next customer: a fresh, empty order; the submitted one is listed.
	browserRun(t, ctx,
		chromedp.Click(chromedp.CSS("#next")),
		waitText("#grid", "Flat White"),
		waitText("#total", "$0.00"),
		// Listed by the ticket's word, the one on the slip and at the counter.
		waitText("#presells", fmt.Sprintf("ticket %v · %v", s["ticket"], s["ticket_word"])),
	)
	// Finding products: a department, then a PLU typed into the search.
	countProducts := func() int {
		n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("#grid .product").length`))
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	browserRun(t, ctx,
		chromedp.Click(chromedp.CSS(`#depts button[data-dept="Cheese"]`)),
		waitText("#grid", "Brie"),
	)
	if n := countProducts(); n != 4 {
		t.Errorf("the Cheese department shows %d products, want the demo's 4", n)
	}
	browserRun(t, ctx, typeInto("#search", "104"), waitText("#grid", "Seasonal Salad"))
	if n := countProducts(); n != 1 {
		t.Errorf("searching PLU 104 shows %d products, want 1", n)
	}

	// A revoked key is told apart from a lane that is down: the tablet
	// says to pair again instead of queueing orders that will never go.
	if _, err := cli(t, "apikey", "revoke", "--db", l.db, "tablet-7"); err != nil {
		t.Fatal(err)
	}
	browserRun(t, ctx, waitText("#banner", "refused this tablet's key"))
	log.wantNoErrors(t)
}

// laneLines is "pid×qty …" of a sale's lines in the lane DB.
func laneLines(t *testing.T, db, physkey string) string {
	t.Helper()
	var got []string
	for _, r := range sqliteRows(t, db, `SELECT pid, qty FROM sale_lines WHERE sale_physkey = %s ORDER BY seqnce`, sqlQuote(physkey)) {
		got = append(got, fmt.Sprintf("%v×%v", r["pid"], r["qty"]))
	}
	return strings.Join(got, " ")
}

// TestBrowserTabletOffline: the lane is killed while the tablet adds two
// lines; the page says they wait, and when the lane is back on the same DB
// and address they land exactly once. Then the page is closed with a change
// waiting (the lane down again): the queue survives in IndexedDB and is
// sent when the page is opened again.
func TestBrowserTabletOffline(t *testing.T) {
	alongside(t)
	db := filepath.Join(t.TempDir(), "lane.db")
	p := relStart(t, db)
	addr := p.addr
	out, err := cli(t, "apikey", "create", "--db", db, "--name", "tablet-9", "--scope", "presell")
	if err != nil {
		t.Fatal(err)
	}
	ctx := newBrowser(t)
	log := browserLog(ctx)
	// Paired by the QR's address: the key comes in the fragment and must
	// not stay in the address bar.
	browserRun(t, ctx, setViewport(desktopWidth),
		chromedp.Navigate("http://"+addr+"/tablet/#key="+strings.TrimSpace(out)),
		waitText("#grid", "Flat White"),
	)
	if href, err := chromedp.Run(ctx, chromedp.Evaluate[string](`location.href`)); err != nil || strings.Contains(href, "key=") {
		t.Errorf("after pairing the address is %q (%v): the key stayed in it", href, err)
	}
	browserRun(t, ctx, chromedp.Click(chromedp.CSS(tabFlatWhite)), waitText("#lines", "Flat White"))
	physkey := tabletSale(t, ctx)

	// Three changes while the lane is down; the middle one (a barcode the
	// store does not have) will be refused: it is shown and dropped, and
	// the others still land.
	p.kill9()
	browserRun(t, ctx,
		waitText("#banner", "offline"),
		chromedp.Click(chromedp.CSS(tabLatte)),
		typeInto("#scan", "0000000000017"+kb.Enter),
		chromedp.Click(chromedp.CSS(tabCroissant)),
		waitText("#banner", "offline — 3 changes waiting"),
		waitText("#pending", "Butter Croissant"),
	)
	if got := laneLines(t, db, physkey); got != "1001×1" {
		t.Fatalf("with the lane down its DB holds %q, want only the first line", got)
	}
	p = relStart(t, db, "--addr", addr)
	browserRun(t, ctx,
		waitText("#lines", "Butter Croissant"),
		chromedp.WaitNotPresent(chromedp.CSS("#pending li")),
		waitText("#errors", "No product has that barcode or PLU"),
	)
	if got, want := laneLines(t, db, physkey), "1001×1 1002×1 1016×1"; got != want {
		t.Errorf("after the restart the lane DB holds %q, want %q (each line once)", got, want)
	}
	// Give the page time to send anything it might still hold, then check
	// again: nothing is sent twice.
	browserRun(t, ctx, chromedp.Sleep(time.Second), waitText("#lines", "Butter Croissant"))
	if got, want := laneLines(t, db, physkey), "1001×1 1002×1 1016×1"; got != want {
		t.Errorf("a second later the lane DB holds %q, want %q", got, want)
	}

	// Offline again, one change queued, and the page closed before the
	// lane comes back.
	p.kill9()
	browserRun(t, ctx,
		waitText("#banner", "offline"),
		chromedp.Click(chromedp.CSS(tabFlatWhite)),
		waitText("#banner", "offline — 1 change waiting"),
		chromedp.Navigate("about:blank"),
	)
	p = relStart(t, db, "--addr", addr)
	if got := laneLines(t, db, physkey); got != "1001×1 1002×1 1016×1" {
		t.Fatalf("the closed page's change reached the lane DB before the page came back: %q", got)
	}
	browserRun(t, ctx,
		chromedp.Navigate("http://"+addr+"/tablet/"),
		waitText("#lines", "Butter Croissant"),
		chromedp.WaitNotPresent(chromedp.CSS("#pending li")),
		waitText("#lines", "Flat White"),
	)
	if got, want := laneLines(t, db, physkey), "1001×1 1002×1 1016×1 1001×1"; got != want {
		t.Errorf("after reopening the page the lane DB holds %q, want %q", got, want)
	}
	wantNoErrorsBut(t, log, lanesDown...)
}

// lanesDown are what Chromium itself logs while the lane is down: its
// failed socket and page loads. The page's own code logs nothing.
var lanesDown = []string{"WebSocket connection to", "net::ERR_CONNECTION_REFUSED"}

// wantNoErrorsBut fails the test if the page logged an error other than
// those containing one of allowed.
func wantNoErrorsBut(t *testing.T, log *pageLog, allowed ...string) {
	t.Helper()
	var bad []string
next:
	for _, e := range log.errors() {
		for _, a := range allowed {
			if strings.Contains(e, a) {
				continue next
			}
		}
		bad = append(bad, e)
	}
	if len(bad) > 0 {
		t.Errorf("the page logged %d error(s):\n  %s", len(bad), strings.Join(bad, "\n  "))
	}
}

// TestBrowserTabletLanesLinkKeepsItsOwnLane: a ?lanes= link that names only
// another lane (mistyped, or planted) is remembered, but the tablet still
// uses the lane that served its page first: it is not taken offline.
func TestBrowserTabletLanesLinkKeepsItsOwnLane(t *testing.T) {
	alongside(t)
	l := startLane(t)
	key := l.newKey("tablet-1", "presell")
	ctx := newBrowser(t)
	browserRun(t, ctx,
		chromedp.Navigate("http://"+l.addr+"/tablet/?lanes=http://127.0.0.1:1#key="+key),
		waitText("#grid", "Flat White"),
		chromedp.Click(chromedp.CSS(tabFlatWhite)),
		waitText("#lines", "Flat White"),
	)
	if lanes, err := chromedp.Run(ctx, chromedp.Evaluate[string](`localStorage.getItem("greenlane.tablet.lanes") || ""`)); err != nil || lanes != "http://127.0.0.1:1" {
		t.Fatalf("the lanes the link named were not kept: %q (%v)", lanes, err)
	}
}

// TestBrowserTabletTicketsRunOut: with every ticket held by an open presell,
// Submit shows the lane's sentence at once, instead of resending in
// silence, and keeps the order; once a ticket is freed, Submit goes through.
func TestBrowserTabletTicketsRunOut(t *testing.T) {
	alongside(t)
	l := startLane(t)
	needsOwnLane(t)
	key := l.newKey("tablet-1", "presell")
	filler := fillTickets(t, l)
	ctx := newBrowser(t)

	pairTablet(t, ctx, l.addr, key)
	browserRun(t, ctx,
		chromedp.Click(chromedp.CSS(tabFlatWhite)),
		waitText("#lines", "Flat White"),
		chromedp.WaitEnabled(chromedp.CSS("#submit")),
		chromedp.Click(chromedp.CSS("#submit")),
		waitText("#errors", "Submit: all 9999 presell tickets are taken by open presells"),
		waitText("#lines", "Flat White"),
		chromedp.WaitEnabled(chromedp.CSS("#submit")),
	)
	if q := tabletQueue(t, ctx); len(q) != 0 {
		t.Fatalf("the refused Submit is still queued: %v", q)
	}

	sqliteExec(t, l.db, `UPDATE sales SET phase = 10000, version = version + 1 WHERE physkey = %s`, sqlQuote(filler))
	browserRun(t, ctx,
		chromedp.Click(chromedp.CSS("#submit")),
		waitText("#ticket", "Next customer"),
	)
	browserLog(ctx).wantNoErrors(t)
}

// tapBoth taps two buttons in one go, as a quick server does: the second
// tap is queued before the lane answers the first, and no notice the
// first brings can move the second button from under the pointer.
func tapBoth(t *testing.T, ctx context.Context, a, b string) {
	t.Helper()
	if !pageTrue(t, ctx, fmt.Sprintf(`(document.querySelector(%q).click(), document.querySelector(%q).click(), true)`, a, b)) {
		t.Fatal("tap failed")
	}
}

// tabletFull is the tablet's refusal at --max-open-presells 1.
const tabletFull = "This tablet already has 1 open order, the most it may have"

// holdOrderAtLimit pairs a tablet with a lane that allows its key one open
// presell, submits one (its ticket is returned), and taps two products for
// the next customer: the lane refuses that order's creation, and the tablet
// holds its three changes.
func holdOrderAtLimit(t *testing.T) (*lane, context.Context, string) {
	t.Helper()
	l := startLane(t, "--max-open-presells", "1")
	needsOwnLane(t)
	key := l.newKey("tablet-1", "presell")
	ctx := newBrowser(t)
	browserRun(t, ctx, setViewport(desktopWidth))
	pairTablet(t, ctx, l.addr, key)
	browserRun(t, ctx,
		chromedp.Click(chromedp.CSS(tabFlatWhite)),
		waitText("#lines", "Flat White"),
		chromedp.WaitEnabled(chromedp.CSS("#submit")),
		chromedp.Click(chromedp.CSS("#submit")),
		waitText("#ticket", "Next customer"),
	)
	ticket := readText(t, ctx, "#ticket-number")
	browserRun(t, ctx,
		chromedp.Click(chromedp.CSS("#next")),
		waitText("#grid", "Flat White"),
	)
	tapBoth(t, ctx, tabLatte, tabCroissant)
	browserRun(t, ctx,
		waitText("#errors", tabletFull),
		waitText("#banner", "3 changes kept on this tablet"),
	)
	return l, ctx, ticket
}

// TestBrowserTabletPresellLimitKeepsOrder: a tablet at its most open
// presells (--max-open-presells 1) starts a new order. The lane refuses
// the sale's creation; the order's taps stay queued and on screen, nothing
// is sent to a sale that does not exist, and the lane's refusal is shown
// once, in a server's words (a Retry refused again replaces it). Once the
// counter frees a presell, Retry (the order's Submit) creates the sale and
// adds each line once.
func TestBrowserTabletPresellLimitKeepsOrder(t *testing.T) {
	alongside(t)
	l, ctx, ticket := holdOrderAtLimit(t)
	log := browserLog(ctx)
	browserRun(t, ctx,
		waitText("#pending", "Butter Croissant"),
		waitText("#pending", "kept, not sent"),
		waitText("#submit", "Retry sending this order"),
	)
	physkey := tabletSale(t, ctx)
	wantHeld := func() {
		t.Helper()
		if q := tabletQueue(t, ctx); len(q) != 3 || q[0].A != "salesbuilder.sale_create" {
			t.Fatalf("the tablet's queue holds %v, want the refused create and both adds", q)
		}
		if n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("#errors li").length`)); err != nil || n != 1 {
			t.Fatalf("%d notices on screen (%v), want the refusal once", n, err)
		}
		if got := readText(t, ctx, "#errors"); strings.Contains(got, "serve --") || strings.Contains(got, physkey) {
			t.Errorf("the notice reads %q: a manager's message, not a server's", got)
		}
	}
	wantHeld()
	pageTrue(t, ctx, `window.scrollTo(0, 0) === undefined`)
	lookScreen(t, ctx, "tablet-held", false)

	// Retry while the tablet is still full: the same refusal, in place.
	if !pageTrue(t, ctx, `(document.querySelector("#errors li[data-held]").dataset.before = "1") === "1"`) {
		t.Fatal("no held notice to mark")
	}
	browserRun(t, ctx,
		chromedp.Click(chromedp.CSS("#errors button.retry")),
		chromedp.WaitVisible(chromedp.CSS(`#errors li[data-held]:not([data-before])`)),
		waitText("#errors", tabletFull),
	)
	wantHeld()

	if _, err := cli(t, "presell", "void", ticket, "--db", l.db, "--reason", "customer left"); err != nil {
		t.Fatal(err)
	}
	// The order card's Submit is the Retry, where the server is looking.
	browserRun(t, ctx,
		chromedp.Click(chromedp.CSS("#submit")),
		waitText("#lines", "Butter Croissant"),
		chromedp.WaitNotPresent(chromedp.CSS("#pending li")),
		chromedp.WaitNotPresent(chromedp.CSS("#errors li")),
		chromedp.WaitEnabled(chromedp.CSS("#submit")),
	)
	if got, want := laneLines(t, l.db, physkey), "1002×1 1016×1"; got != want {
		t.Errorf("after Retry the lane DB holds %q, want %q (each line once)", got, want)
	}
	log.wantNoErrors(t)
}

// TestBrowserTabletVoidedOrderKeepsTaps: the counter voids the order the
// tablet is building; the products tapped after it are not lost one
// refusal at a time (nor is every later tap refused): the void is said
// once, and those taps land once each in a new order.
func TestBrowserTabletVoidedOrderKeepsTaps(t *testing.T) {
	alongside(t)
	l := startLane(t)
	needsOwnLane(t)
	key := l.newKey("tablet-1", "presell")
	ctx := newBrowser(t)
	log := browserLog(ctx)

	pairTablet(t, ctx, l.addr, key)
	browserRun(t, ctx, chromedp.Click(chromedp.CSS(tabFlatWhite)), waitText("#lines", "Flat White"))
	voided := tabletSale(t, ctx)
	if _, err := cli(t, "presell", "void", voided, "--db", l.db, "--reason", "customer left"); err != nil {
		t.Fatal(err)
	}
	tapBoth(t, ctx, tabLatte, tabCroissant)
	browserRun(t, ctx,
		waitText("#errors", "This order was voided at the counter"),
		waitText("#errors", "kept in a new order"),
		waitText("#lines", "Butter Croissant"),
		chromedp.WaitNotPresent(chromedp.CSS("#pending li")),
	)
	physkey := tabletSale(t, ctx)
	if physkey == voided {
		t.Fatal("the page still builds the voided sale")
	}
	if got, want := laneLines(t, l.db, physkey), "1002×1 1016×1"; got != want {
		t.Errorf("the new order holds %q in the lane DB, want %q", got, want)
	}
	if got := laneLines(t, l.db, voided); got != "1001×1" {
		t.Errorf("the voided order holds %q, want its one line", got)
	}
	if n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("#errors li").length`)); err != nil || n != 1 {
		t.Errorf("%d notices on screen (%v), want the void said once", n, err)
	}
	pageTrue(t, ctx, `window.scrollTo(0, 0) === undefined`)
	lookScreen(t, ctx, "tablet-voided", false)
	log.wantNoErrors(t)
}

// TestBrowserTabletRevokedKeyKeepsOrder: the tablet's key is revoked
// mid-order with a tap still waiting. "Pair again" (not Unpair, which
// empties the queue) takes a new key; the waiting tap, which the new key
// cannot add to the old key's sale, lands once in a new order. A pairing
// link opened on the page pairs it too.
func TestBrowserTabletRevokedKeyKeepsOrder(t *testing.T) {
	alongside(t)
	l := startLane(t)
	needsOwnLane(t)
	key := l.newKey("tablet-1", "presell")
	ctx := newBrowser(t)

	pairTablet(t, ctx, l.addr, key)
	browserRun(t, ctx, chromedp.Click(chromedp.CSS(tabFlatWhite)), waitText("#lines", "Flat White"))
	old := tabletSale(t, ctx)
	if _, err := cli(t, "apikey", "revoke", "--db", l.db, "tablet-1"); err != nil {
		t.Fatal(err)
	}
	browserRun(t, ctx,
		waitText("#banner", "refused this tablet's key"),
		chromedp.Click(chromedp.CSS(tabLatte)),
		waitText("#pending", "Latte"),
	)
	pageTrue(t, ctx, `window.scrollTo(0, 0) === undefined`)
	lookScreen(t, ctx, "tablet-refused", false)
	key2 := l.newKey("tablet-2", "presell")
	browserRun(t, ctx,
		chromedp.Click(chromedp.CSS("#repair")),
		typeInto("#pair-key", key2),
		chromedp.Click(chromedp.CSS("#pair-go")),
		waitText("#lines", "Latte"),
		chromedp.WaitNotPresent(chromedp.CSS("#pending li")),
		waitText("#errors", "kept in a new order"),
	)
	pageTrue(t, ctx, `window.scrollTo(0, 0) === undefined`)
	lookScreen(t, ctx, "tablet-repaired", false)
	physkey := tabletSale(t, ctx)
	if got := laneLines(t, l.db, physkey); physkey == old || got != "1002×1" {
		t.Errorf("the new key's order %s holds %q in the lane DB, want a new sale with the Latte once", physkey, got)
	}
	if got := laneLines(t, l.db, old); got != "1001×1" {
		t.Errorf("the old key's order holds %q, want its one line", got)
	}

	// Revoked again, and paired by a link opened on the page as it is:
	// only the fragment changes, and the page pairs without a reload.
	if _, err := cli(t, "apikey", "revoke", "--db", l.db, "tablet-2"); err != nil {
		t.Fatal(err)
	}
	browserRun(t, ctx, waitText("#banner", "refused this tablet's key"))
	key3 := l.newKey("tablet-3", "presell")
	browserRun(t, ctx,
		chromedp.Navigate("http://"+l.addr+"/tablet/#key="+key3),
		chromedp.WaitNotPresent(chromedp.CSS("#repair")),
		// Paired with the new key before the tap (its name shows after
		// its first sale): the grid on screen until then is the old key's.
		waitText("#paired-as", "the name shows after the first sale"),
		waitText("#grid", "Flat White"),
		// Logged in, and the page has found the old key's order voided and
		// started afresh: the last order's notice has gone from above the
		// grid, which has moved up into its place, where the click aims.
		chromedp.WaitVisible(chromedp.CSS("#banner.ok")),
		chromedp.WaitNotPresent(chromedp.CSS("#errors li")),
		chromedp.Click(chromedp.CSS(tabCroissant)),
		waitText("#lines", "Butter Croissant"),
		waitText("#paired-as", "paired as tablet-3"),
	)
	if got := laneLines(t, l.db, tabletSale(t, ctx)); got != "1016×1" {
		t.Errorf("the third key's order holds %q in the lane DB, want the croissant once", got)
	}
	wantNoErrorsBut(t, browserLog(ctx), lanesDown...)
}

// TestBrowserTabletHeldOrderDiscarded: an order held at the key's presell
// limit can be discarded, once confirmed: its taps leave the tablet's
// queue unsent, the notice goes, and the screen is ready for the next
// customer. The lane holds only the presell submitted before.
func TestBrowserTabletHeldOrderDiscarded(t *testing.T) {
	alongside(t)
	l, ctx, _ := holdOrderAtLimit(t)
	// Cancelled at the question, nothing changes.
	pageTrue(t, ctx, `(window.confirm = () => false, true)`)
	browserRun(t, ctx, chromedp.Click(chromedp.CSS("#errors button.discard")))
	if q := tabletQueue(t, ctx); len(q) != 3 {
		t.Fatalf("after a cancelled discard the queue holds %d changes, want the 3 kept", len(q))
	}
	pageTrue(t, ctx, `(window.confirm = (m) => (window.asked = m, true), true)`)
	browserRun(t, ctx,
		chromedp.Click(chromedp.CSS("#errors button.discard")),
		chromedp.WaitNotPresent(chromedp.CSS("#errors li")),
		waitText("#lines", "Tap a product or scan a barcode to start."),
		waitText("#banner", "connected to the lane"),
	)
	if !pageTrue(t, ctx, `window.asked.includes("3 changes")`) {
		t.Error("the question did not say how many changes would be dropped")
	}
	if q := tabletQueue(t, ctx); len(q) != 0 {
		t.Errorf("after the discard the queue holds %v, want nothing", q)
	}
	rows := sqliteRows(t, l.db, `SELECT COUNT(*) AS n FROM sales WHERE presell = 1`)
	if n := fmt.Sprint(rows[0]["n"]); n != "1" {
		t.Errorf("the lane holds %s presells, want the one submitted", n)
	}
	wantNoErrorsBut(t, browserLog(ctx))
}

// TestBrowserTabletGridStaysPut: while taps are sent and answered, the
// status strip above the products keeps its height, so the products do not
// move under the finger aiming at the next one. (It came and went with each
// change sent, moving the grid by a line on every tap.)
func TestBrowserTabletGridStaysPut(t *testing.T) {
	alongside(t)
	_, ctx := desktopTablet(t)
	browserRun(t, ctx, waitText("#banner", "connected to the lane"))
	// Each change to the strip (text, class) records where the grid then is.
	pageTrue(t, ctx, `(() => {
		const top = () => Math.round(document.querySelector("#grid").getBoundingClientRect().top);
		window.gridTops = [top()];
		new MutationObserver(() => window.gridTops.push(top())).observe(document.querySelector("#banner"),
			{ attributes: true, childList: true, characterData: true, subtree: true });
		return true;
	})()`)
	browserRun(t, ctx,
		chromedp.Click(chromedp.CSS(tabFlatWhite)),
		waitText("#lines", "Flat White"),
		chromedp.Click(chromedp.CSS(tabLatte)),
		waitText("#lines", "Latte"),
		chromedp.Click(chromedp.CSS(tabCroissant)),
		waitText("#lines", "Butter Croissant"),
		chromedp.WaitNotPresent(chromedp.CSS("#pending li")),
	)
	tops, err := chromedp.Run(ctx, chromedp.Evaluate[[]int](`window.gridTops`))
	if err != nil {
		t.Fatal(err)
	}
	if len(tops) < 2 {
		t.Fatalf("the strip did not change while three taps were sent (%v): the test saw nothing", tops)
	}
	for _, y := range tops[1:] {
		if y != tops[0] {
			t.Fatalf("the grid's top moved while taps were sent: %v px", tops)
		}
	}
}

// TestBrowserTabletRefusalLeavesTheGridPut: a refused change's notice
// floats over the foot of the screen: the products stay where they were
// (it used to push them down a row, under the finger aiming at the next),
// the notice is in view even with the page scrolled, and a run of
// refusals shows the newest few only, each for twenty seconds.
func TestBrowserTabletRefusalLeavesTheGridPut(t *testing.T) {
	alongside(t)
	needsOwnLane(t)
	l, ctx := desktopTablet(t, "--max-sale-lines", "1")
	browserRun(t, ctx, landed(tabFlatWhite, "Flat White"))
	const gridTop = `Math.round(document.querySelector("#grid").getBoundingClientRect().top)`
	before, err := chromedp.Run(ctx, chromedp.Evaluate[int](gridTop))
	if err != nil {
		t.Fatal(err)
	}
	browserRun(t, ctx,
		chromedp.Click(chromedp.CSS(tabLatte)),
		waitText("#errors", "Latte"),
		chromedp.WaitNotPresent(chromedp.CSS("#pending li")),
	)
	after, err := chromedp.Run(ctx, chromedp.Evaluate[int](gridTop))
	if err != nil {
		t.Fatal(err)
	}
	if after != before {
		t.Fatalf("the refusal's notice moved the grid's top from %d to %d px", before, after)
	}
	// In view, over the catalogue and clear of the order column, with the
	// page scrolled to its foot as well as at its top.
	inView := `(() => {
		const n = document.querySelector("#errors li").getBoundingClientRect();
		const order = document.querySelector("#order").getBoundingClientRect();
		return n.top >= 0 && n.bottom <= innerHeight && n.height > 0 && n.right <= order.left;
	})()`
	wantPage(t, ctx, "the notice is in view, left of the order", inView)
	pageTrue(t, ctx, `window.scrollTo(0, document.body.scrollHeight) === undefined`)
	wantPage(t, ctx, "scrolled down, the notice is in view, left of the order", inView)
	lookScreen(t, ctx, "tablet-refusal-notice", false)
	// More refusals: one said again stands once, and the three newest stand.
	// (Back at the top: a product under the notices is not there to tap.)
	pageTrue(t, ctx, `window.scrollTo(0, 0) === undefined`)
	refuse := func(tap, product string) {
		t.Helper()
		browserRun(t, ctx, chromedp.Click(chromedp.CSS(tap)), waitText("#errors li:last-child", product),
			chromedp.WaitNotPresent(chromedp.CSS("#pending li")))
	}
	refuse(tabCroissant, "Butter Croissant")
	refuse(tabLatte, "Latte")
	wantPage(t, ctx, "a refusal said again stands once", `document.querySelectorAll("#errors li").length === 2`)
	refuse(tabCappuccino, "Cappuccino")
	refuse(tabLongBlack, "Long Black")
	wantPage(t, ctx, "the three newest refusals stand", `(() => {
		const said = [...document.querySelectorAll("#errors li")].map((li) => li.textContent);
		return said.length === 3 && said[0].includes("Latte") && said[1].includes("Cappuccino") && said[2].includes("Long Black");
	})()`)
	if got := laneLines(t, l.db, tabletSale(t, ctx)); got != "1001×1" {
		t.Errorf("the lane DB holds %q, want the one line", got)
	}
	// On a phone the notices stand above the order's bar, in view.
	browserRun(t, ctx, setViewport(phoneWidth))
	wantPage(t, ctx, "on a phone the notices are in view above the order's bar", `(() => {
		const ns = document.querySelector("#errors").getBoundingClientRect();
		const bar = document.querySelector("#summary").getBoundingClientRect();
		return ns.top >= 0 && ns.height > 0 && ns.bottom <= bar.top;
	})()`)
	// There three would cover the products: a new refusal stands alone.
	refuse(tabCroissant, "Butter Croissant")
	wantPage(t, ctx, "on a phone only the newest refusal stands", `(() => {
		const said = [...document.querySelectorAll("#errors li")].map((li) => li.textContent);
		return said.length === 1 && said[0].includes("Butter Croissant");
	})()`)
	lookScreen(t, ctx, "tablet-refusal-notice-phone", false)
	// Read, they go by themselves (20 s), uncovering the products.
	gone, cancel := context.WithTimeout(ctx, 40*time.Second)
	defer cancel()
	if err := chromedp.Do(gone, chromedp.WaitNotPresent(chromedp.CSS("#errors li"))); err != nil {
		t.Fatalf("the notices still stand 40 s on: %v", err)
	}
}

// TestBrowserTabletChangeWeightReplaces: Change weight opens with the old
// weight selected, so the new one replaces it (typed in front of it, 150 g
// onto 200 g made 150200 g: $5,992.98 of ham), and a weight over 10 kg is
// asked about once before it is sent.
func TestBrowserTabletChangeWeightReplaces(t *testing.T) {
	alongside(t)
	l, ctx := desktopTablet(t)
	weigh := `#lines li[data-pid="1024"] button.weigh`
	browserRun(t, ctx,
		chromedp.Click(chromedp.CSS(tabHam)),
		chromedp.WaitVisible(chromedp.CSS("#weigh-grams")),
		typeInto("#weigh-grams", "200"+kb.Enter),
		waitText("#lines", "200 g"),
		chromedp.WaitNotPresent(chromedp.CSS("#pending li")),
		chromedp.Click(chromedp.CSS(weigh)),
		chromedp.WaitVisible(chromedp.CSS("#weigh-grams")),
		typeInto("#weigh-grams", "150"+kb.Enter),
		waitText("#lines", "150 g"),
		chromedp.WaitNotPresent(chromedp.CSS("#pending li")),
	)
	wantOrder(t, ctx, l, "1024×150", "after changing 200 g to 150 g")
	// 15 kg: asked about, kept on the second press.
	browserRun(t, ctx,
		chromedp.Click(chromedp.CSS(weigh)),
		chromedp.WaitVisible(chromedp.CSS("#weigh-grams")),
		typeInto("#weigh-grams", "15000"+kb.Enter),
		waitText("#weigh-note", "15 kg: is that right? Press Save again to keep it."),
	)
	wantOrder(t, ctx, l, "1024×150", "before the heavy weight was confirmed")
	browserRun(t, ctx,
		chromedp.Click(chromedp.CSS("#weigh-add")),
		waitText("#lines", "15000 g"),
		chromedp.WaitNotPresent(chromedp.CSS("#pending li")),
	)
	wantOrder(t, ctx, l, "1024×15000", "once it was")
	browserLog(ctx).wantNoErrors(t)
}

// TestBrowserTabletDoubleTapRemoveKeepsNextLine: a quick second tap on
// Remove lands, once the first has removed its line, on the Remove of the
// line that moved up into its place; it is dropped, not taken as meant for
// that line. (A double tap removed two lines.)
func TestBrowserTabletDoubleTapRemoveKeepsNextLine(t *testing.T) {
	alongside(t)
	l, ctx := desktopTablet(t)
	browserRun(t, ctx, landed(tabFlatWhite, "Flat White"), landed(tabLatte, "Latte"), landed(tabCappuccino, "Cappuccino"))
	// The first tap on Flat White's Remove; the second at the same spot
	// the moment Flat White's line leaves (the lines below move up then).
	pageTrue(t, ctx, `(() => {
		const first = document.querySelector('#lines li[data-pid="1001"] button.remove');
		const r = first.getBoundingClientRect();
		const x = r.left + r.width / 2, y = r.top + r.height / 2;
		window.secondTap = "";
		// As soon as the button under that spot takes a tap (the lane's
		// answer in, nothing waiting), as a finger 100 ms later would.
		const tap = (since) => {
			const under = document.elementFromPoint(x, y);
			if ((!under || under.disabled) && performance.now() - since < 400) return setTimeout(tap, 2, since);
			const line = under && under.closest("li.line");
			window.secondTap = line ? line.dataset.pid : "nothing";
			if (under) under.click();
		};
		new MutationObserver((_, seen) => {
			if (document.querySelector('#lines li[data-pid="1001"]')) return;
			seen.disconnect();
			tap(performance.now());
		}).observe(document.querySelector("#lines"), { childList: true, subtree: true });
		first.click();
		return true;
	})()`)
	wait, cancel := context.WithTimeout(ctx, browserTimeout)
	defer cancel()
	if _, err := chromedp.Run(wait, chromedp.Poll[bool](`window.secondTap !== ""`)); err != nil {
		t.Fatalf("the first tap's line did not leave: %v", err)
	}
	browserRun(t, ctx, chromedp.WaitNotPresent(chromedp.CSS("#pending li")))
	second, err := chromedp.Run(ctx, chromedp.Evaluate[string](`window.secondTap`))
	if err != nil {
		t.Fatal(err)
	}
	if second != "1002" {
		t.Fatalf("the second tap landed on line %q, not on Latte's (1002) moved up: the test saw nothing", second)
	}
	wantOrder(t, ctx, l, "1002×1 1003×1", "after a double tap on Flat White's Remove")
	browserLog(ctx).wantNoErrors(t)
}

// TestBrowserTabletCustomerSearchIgnoresAccents: staff type names as a
// tablet's keyboard makes easy: "zoe" finds Zoë Tūhoe, "pomare" Tama
// Pōmare and "oconnor" Liam O'Connor; and a phone number however it is
// written: "021-482-3961" finds Aroha Ngata's 021 482 3961.
func TestBrowserTabletCustomerSearchIgnoresAccents(t *testing.T) {
	alongside(t)
	_, ctx := desktopTablet(t)
	for typed, found := range map[string]string{"zoe": "Zoë Tūhoe", "POMARE": "Tama Pōmare", "oconnor": "Liam O'Connor", "021-482-3961": "Aroha Ngata", "(021) 4823961": "Aroha Ngata"} {
		pageTrue(t, ctx, `(document.querySelector("#cust-q").value = "") === ""`)
		browserRun(t, ctx,
			typeInto("#cust-q", typed),
			chromedp.Click(chromedp.CSS("#cust-find")),
			waitText("#cust-results", found),
		)
	}
	browserLog(ctx).wantNoErrors(t)
}

// TestBrowserTabletRepeatTapsOneLine: another tap on the product of the
// order's last line is one more on that line (Flat White × 3, not three
// lines of one); the same product after another is a line of its own.
func TestBrowserTabletRepeatTapsOneLine(t *testing.T) {
	alongside(t)
	l, ctx := desktopTablet(t)
	browserRun(t, ctx,
		chromedp.Click(chromedp.CSS(tabFlatWhite)),
		waitText(`#lines li[data-pid="1001"] .qty`, "1"),
		chromedp.Click(chromedp.CSS(tabFlatWhite)),
		waitText(`#lines li[data-pid="1001"] .qty`, "2"),
		chromedp.Click(chromedp.CSS(tabFlatWhite)),
		waitText(`#lines li[data-pid="1001"] .qty`, "3"),
		chromedp.WaitNotPresent(chromedp.CSS("#pending li")),
		landed(tabLatte, "Latte"),
		chromedp.Click(chromedp.CSS(tabFlatWhite)),
		waitText(`#lines li:last-child`, "Flat White"),
		chromedp.WaitNotPresent(chromedp.CSS("#pending li")),
	)
	wantOrder(t, ctx, l, "1001×3 1002×1 1001×1", "after the taps")
	browserLog(ctx).wantNoErrors(t)
}

// TestBrowserTabletKeepsListingTakenPresells: the tablet's open presells
// keep an order a counter has taken, saying so, without a Resume: it is
// the counter's now. (It vanished from the list, and staff rang it up
// again.)
func TestBrowserTabletKeepsListingTakenPresells(t *testing.T) {
	alongside(t)
	l, ctx := desktopTablet(t)
	till := l.login("", l.newKey("counter-1", "counter"), "")
	browserRun(t, ctx, landed(tabFlatWhite, "Flat White"), chromedp.Click(chromedp.CSS("#submit")), waitText("#ticket", "Next customer"))
	ticket := readText(t, ctx, "#ticket-number")
	n, err := strconv.Atoi(ticket)
	if err != nil {
		t.Fatalf("ticket number %q: %v", ticket, err)
	}
	sale(t, till, presellA+"recall", nil, map[string]any{"ticket": n})
	// The next order's first tap refreshes the list.
	browserRun(t, ctx,
		chromedp.Click(chromedp.CSS("#next")),
		chromedp.Click(chromedp.CSS(tabLatte)),
		waitText("#lines", "Latte"),
		waitText("#presells", "ticket "+ticket),
		waitText("#presells", "at the counter (counter-1)"),
	)
	wantPage(t, ctx, "no Resume on the order the counter holds", `![...document.querySelectorAll("#presells li")].some((li) => li.textContent.includes("counter-1") && li.querySelector("button"))`)
	// Set back in the queue, it is still listed, as waiting.
	physkey := sqliteRows(t, l.db, `SELECT physkey FROM sales WHERE ticket = %d`, n)[0]["physkey"]
	sale(t, till, presellA+"release", physkey, nil)
	browserRun(t, ctx,
		chromedp.Click(chromedp.CSS(tabCroissant)),
		waitText("#lines", "Butter Croissant"),
		waitText("#presells", "ticket "+ticket),
		waitText("#presells", "waiting for the counter"),
	)
	pageTrue(t, ctx, `window.scrollTo(0, document.body.scrollHeight) === undefined`)
	lookScreen(t, ctx, "tablet-presells-at-counter", false)
	browserLog(ctx).wantNoErrors(t)
}

// TestBrowserTabletDepartmentStripSaysMore: the department strip, cut off
// at the window's edge, fades there while more lies beyond, and stops
// fading once scrolled to its end.
func TestBrowserTabletDepartmentStripSaysMore(t *testing.T) {
	alongside(t)
	_, ctx := desktopTablet(t)
	wantPage(t, ctx, "the cut strip fades", `document.querySelector("#depts").classList.contains("more")`)
	pageTrue(t, ctx, `(() => { const d = document.querySelector("#depts"); d.scrollLeft = d.scrollWidth; return true; })()`)
	browserRun(t, ctx, chromedp.WaitNotPresent(chromedp.CSS("#depts.more")))
}

// TestBrowserTabletKeyInUseElsewhere: with the key's sockets all open
// elsewhere (--max-sockets-per-key 1, held by another client), the lane is
// up but refuses the tablet's login with limit_reached: the tablet says so
// (not "offline"), and logs in once the other socket closes.
func TestBrowserTabletKeyInUseElsewhere(t *testing.T) {
	alongside(t)
	l := startLane(t, "--max-sockets-per-key", "1")
	needsOwnLane(t)
	key := l.newKey("tablet-1", "presell")
	other := l.login(presellQuery, key, "")
	ctx := newBrowser(t)
	browserRun(t, ctx,
		chromedp.Navigate("http://"+l.addr+"/tablet/#key="+key),
		waitText("#banner", "This tablet's key is open on too many screens"),
	)
	pageTrue(t, ctx, `window.scrollTo(0, 0) === undefined`)
	lookScreen(t, ctx, "tablet-key-busy", false)
	if err := other.ws.Close(); err != nil {
		t.Fatal(err)
	}
	browserRun(t, ctx,
		waitText("#grid", "Flat White"),
		chromedp.Click(chromedp.CSS(tabFlatWhite)),
		waitText("#lines", "Flat White"),
	)
	wantNoErrorsBut(t, browserLog(ctx), lanesDown...)
}

// TestBrowserTabletLineLimitSaid: a line past --max-sale-lines is refused
// in a server's words (the lane's message names serve flags and the
// sale's physkey, which are for the manager); the order keeps its lines.
func TestBrowserTabletLineLimitSaid(t *testing.T) {
	alongside(t)
	l := startLane(t, "--max-sale-lines", "1")
	needsOwnLane(t)
	key := l.newKey("tablet-1", "presell")
	ctx := newBrowser(t)
	pairTablet(t, ctx, l.addr, key)
	browserRun(t, ctx,
		chromedp.Click(chromedp.CSS(tabFlatWhite)),
		waitText("#lines", "Flat White"),
		chromedp.Click(chromedp.CSS(tabLatte)),
		waitText("#errors", "Latte\u2069: This order already has 1 line, the most one order may have: change a line's quantity instead."),
		chromedp.WaitNotPresent(chromedp.CSS("#pending li")),
	)
	if got := readText(t, ctx, "#errors"); strings.Contains(got, "serve --") || uuidText.MatchString(got) {
		t.Errorf("the refusal reads %q: a manager's message, not a server's", got)
	}
	if got := laneLines(t, l.db, tabletSale(t, ctx)); got != "1001×1" {
		t.Errorf("the lane DB holds %q, want the one line", got)
	}
	pageTrue(t, ctx, `window.scrollTo(0, 0) === undefined`)
	lookScreen(t, ctx, "tablet-line-limit", false)
	browserLog(ctx).wantNoErrors(t)
}

// TestBrowserTabletHeldOrderLetsOthersSubmit: while a new order waits for
// room (its create refused at --max-open-presells), the server opens
// another order of the same key that is being built and submits it: the
// held order's changes do not keep that Submit waiting, and the held order
// stays kept.
func TestBrowserTabletHeldOrderLetsOthersSubmit(t *testing.T) {
	alongside(t)
	l := startLane(t, "--max-open-presells", "2")
	needsOwnLane(t)
	key := l.newKey("tablet-1", "presell")
	// The same key's order left being built on another device.
	other := l.login(presellQuery, key, "")
	building := sale(t, other, sbA+"sale_create", nil, nil)["physkey"].(string)
	sale(t, other, sbA+"sale_add_product", building, map[string]any{"pid": 1002})
	if err := other.ws.Close(); err != nil {
		t.Fatal(err)
	}
	ctx := newBrowser(t)
	pairTablet(t, ctx, l.addr, key)
	browserRun(t, ctx,
		chromedp.Click(chromedp.CSS(tabFlatWhite)),
		waitText("#lines", "Flat White"),
		chromedp.WaitEnabled(chromedp.CSS("#submit")),
		chromedp.Click(chromedp.CSS("#submit")),
		waitText("#ticket", "Next customer"),
		chromedp.Click(chromedp.CSS("#next")),
		waitText("#grid", "Flat White"),
		chromedp.Click(chromedp.CSS(tabCroissant)),
		waitText("#errors", "This tablet already has 2 open orders"),
		// An order being built has no words yet: a counter could not
		// recall it by them.
		waitText(`#presells li[data-physkey="`+building+`"]`, "being built$5.50"),
		chromedp.Click(chromedp.CSS(`#presells li[data-physkey="`+building+`"] button`)),
		waitText("#lines", "Latte"),
		chromedp.WaitEnabled(chromedp.CSS("#submit")),
	)
	pageTrue(t, ctx, `window.scrollTo(0, 0) === undefined`)
	lookScreen(t, ctx, "tablet-held-other", false)
	browserRun(t, ctx,
		chromedp.Click(chromedp.CSS("#submit")),
		waitText("#ticket", "Next customer"),
	)
	if s := sqliteRows(t, l.db, `SELECT phase FROM sales WHERE physkey = %s`, sqlQuote(building)); len(s) != 1 || num(s[0]["phase"]) != 5 {
		t.Errorf("the other order is %v in the lane DB, want it submitted", s)
	}
	if q := tabletQueue(t, ctx); len(q) != 2 || q[0].A != "salesbuilder.sale_create" {
		t.Errorf("the tablet's queue holds %v, want the held order's create and add", q)
	}
	browserLog(ctx).wantNoErrors(t)
}

// TestBrowserTabletOnePageAtATime: the tablet's page opened in a second
// tab (same browser: the same pairing, sale and queue) takes the order
// over; the first tab stands aside and says where the order is, and sends
// nothing. "Use here" takes it back. However the person goes back and
// forth, the order is one sale holding every tap once.
func TestBrowserTabletOnePageAtATime(t *testing.T) {
	alongside(t)
	l, first := desktopTablet(t)
	browserRun(t, first, landed(tabFlatWhite, "Flat White"))
	sale := tabletSale(t, first)

	second := newTab(t, first)
	browserRun(t, second,
		setViewport(desktopWidth),
		chromedp.Navigate("http://"+l.addr+"/tablet/"),
		waitText("#lines", "Flat White"),
	)
	browserRun(t, first, waitText("#elsewhere", "Open in another tab"))
	// Unpairing here would drop the queue the other tab is sending.
	wantPage(t, first, "no Unpair while the other tab has the tablet", `document.querySelector("#unpair").classList.contains("hidden")`)
	lookScreen(t, first, "tablet-elsewhere", false)
	browserRun(t, second, landed(tabLatte, "Latte"))
	if got := tabletSale(t, second); got != sale {
		t.Fatalf("the second tab built sale %s, the first %s: one order became two", got, sale)
	}

	browserRun(t, first,
		chromedp.Click(chromedp.CSS("#use-here")),
		waitText("#lines", "Latte"),
	)
	browserRun(t, second, waitText("#elsewhere", "Open in another tab"))
	browserRun(t, first, landed(tabCroissant, "Croissant"))
	wantOrder(t, first, l, "1001×1 1002×1 1016×1", "after taps in both tabs")
	open := sqliteRows(t, l.db, `SELECT COUNT(*) AS n FROM sales WHERE created_by = 'tablet-1' AND phase = 0`)
	if n := fmt.Sprint(open[0]["n"]); n != "1" {
		t.Fatalf("tablet-1 has %s open sales, want the one order", n)
	}
	wantNoErrorsBut(t, browserLog(first), lanesDown...)
}

// TestBrowserTabletSubmittedOnAnotherDevice: the same tablet key on a
// second device submits the order this page is building. The next tap
// here is refused as submitted, and the page then shows the ticket (with
// Next customer), not an order every tap of which is refused.
func TestBrowserTabletSubmittedOnAnotherDevice(t *testing.T) {
	alongside(t)
	l, ctx, key := desktopTabletKey(t)
	browserRun(t, ctx, landed(tabFlatWhite, "Flat White"))
	other := l.login(presellQuery, key, "")
	parked := sale(t, other, sbA+"sale_park", tabletSale(t, ctx), nil)
	ticket := fmt.Sprint(num(parked["ticket"]))
	browserRun(t, ctx,
		chromedp.Click(chromedp.CSS(tabLatte)),
		waitText("#errors", "This order was submitted as ticket #"+ticket),
		waitText("#ticket-number", ticket),
		waitText("#ticket", "Next customer"),
	)
	wantNoErrorsBut(t, browserLog(ctx), lanesDown...)
}

// TestBrowserTabletOrderInUseOnAnotherDevice: another device paired with
// the same key is building an order. This page's list says so, and its
// Open takes a second press before two devices ring up one order.
func TestBrowserTabletOrderInUseOnAnotherDevice(t *testing.T) {
	alongside(t)
	l, ctx, key := desktopTabletKey(t)
	browserRun(t, ctx, landed(tabFlatWhite, "Flat White"))
	mine := tabletSale(t, ctx)
	other := l.login(presellQuery, key, "")
	theirs := sale(t, other, sbA+"sale_create", nil, nil)["physkey"].(string)
	sale(t, other, sbA+"sale_add_product", theirs, map[string]any{"pid": 1002})
	row := `#presells li[data-physkey="` + theirs + `"]`
	browserRun(t, ctx,
		landed(tabLatte, "Latte"), // a change here brings the list up to date
		waitText(row, "open on another device"),
		chromedp.Click(chromedp.CSS(row+" button")),
		waitText(row+" button", "Open here too? Press again"),
	)
	lookScreen(t, ctx, "tablet-order-elsewhere", false)
	if got := tabletSale(t, ctx); got != mine {
		t.Fatalf("one press opened %s here; want this page still on its own order %s", got, mine)
	}
	wantPage(t, ctx, "this page's own order is not said to be elsewhere",
		`!document.querySelector('#presells li[data-physkey="`+mine+`"]') || !document.querySelector('#presells li[data-physkey="`+mine+`"]').textContent.includes("another device")`)
	browserRun(t, ctx, chromedp.Click(chromedp.CSS(row+" button")))
	wantPage(t, ctx, "the second press opens it here", `localStorage.getItem("greenlane.tablet.sale") === "`+theirs+`"`)
	wantNoErrorsBut(t, browserLog(ctx), lanesDown...)
}
