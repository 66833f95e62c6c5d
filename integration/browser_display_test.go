package integration

import (
	"context"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestBrowserDisplay watches the customer display while a tablet builds a
// presell over a real socket and a counter takes payment: idle with the
// store's name → the lines as they are rung up → paid with change due →
// thank-you → idle again. The display is paired by its address alone.
func TestBrowserDisplay(t *testing.T) {
	alongside(t)
	l := startLane(t)
	displayKey := l.newKey("display-1", "display")
	tabletKey := l.newKey("tablet-1", "presell")
	counterKey := l.newKey("counter-1", "counter")
	tab := l.login(presellQuery, tabletKey, "")
	counter := l.login("", counterKey, "")

	ctx := newBrowser(t)
	browserRun(t, ctx,
		chromedp.Navigate("http://"+l.addr+"/display/?key="+displayKey+"&tablet=tablet-1"),
		waitText("#store", "Harbour Street Deli"),
		waitText("#display", "Welcome"),
	)
	// The key leaves the address bar (and history) but the pairing stays.
	loc, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil || strings.Contains(loc, displayKey) || !strings.HasSuffix(loc, "/display/") {
		t.Fatalf("display address after pairing: %q (%v), want /display/ without the key", loc, err)
	}
	if !pageTrue(t, ctx, `localStorage.getItem("greenlane.display.tablet") === "tablet-1"`) {
		t.Fatal("the display did not keep its tablet")
	}
	saveScreen(t, ctx, "display-idle")

	// The tablet rings up two Hot Chocolates, then a Long Black; each shows
	// as it lands.
	pk := sale(t, tab, sbA+"sale_create", nil, nil)["physkey"].(string)
	sale(t, tab, sbA+"sale_add_product", pk, map[string]any{"pid": 1006, "qty": 2})
	browserRun(t, ctx, waitText("#lines", "Hot Chocolate"), waitText("#total", "$11.00"))
	sale(t, tab, sbA+"sale_add_product", pk, map[string]any{"pid": 1004, "qty": 1})
	browserRun(t, ctx, waitText("#lines", "Long Black"), waitText("#total", "$15.80"))
	// A sale on another tablet does not take this display.
	other := l.login(presellQuery, l.newKey("tablet-2", "presell"), "")
	sale(t, other, sbA+"sale_create", nil, nil)
	parked := sale(t, tab, sbA+"sale_park", pk, nil)
	ticket := fmt.Sprint(num(parked["ticket"]))
	browserRun(t, ctx, waitText("#display", "Ticket #"+ticket), waitText("#display", "pay at the counter"))
	saveScreen(t, ctx, "display-sale")

	// The counter recalls it and takes $20 cash.
	sale(t, counter, presellA+"recall", nil, map[string]any{"ticket": parked["ticket"]})
	sale(t, counter, sbA+"sale_add_payment", pk, map[string]any{"type": 1, "amount": 20})
	browserRun(t, ctx, waitText("#paid", "$20.00"), waitText("#change", "$4.20"))
	saveScreen(t, ctx, "display-paid")

	// Completed: thank-you (with the change), then idle by itself.
	sale(t, counter, sbA+"salesbuilder_complete", pk, nil)
	browserRun(t, ctx, waitText("#thanks", "Thank you"), waitText("#display", "$4.20"))
	saveScreen(t, ctx, "display-thanks")
	browserRun(t, ctx, waitText("#store", "Harbour Street Deli"), waitText("#display", "Welcome"))

	// At phone width a sale still fits: nothing wider than the screen.
	pk2 := sale(t, tab, sbA+"sale_create", nil, nil)["physkey"].(string)
	sale(t, tab, sbA+"sale_add_product", pk2, map[string]any{"pid": 1006, "qty": 1})
	browserRun(t, ctx, setViewport(phoneWidth), waitText("#lines", "Hot Chocolate"))
	if !pageTrue(t, ctx, `document.documentElement.scrollWidth <= window.innerWidth`) {
		t.Fatal("at 360 px the display scrolls sideways")
	}
	saveScreen(t, ctx, "display-sale-360")
	// A weighed item shows its weight, as the tablet and counter show it:
	// 250 g of ham at $39.90 a kilogram, not "250 ×".
	sale(t, tab, sbA+"sale_add_product", pk2, map[string]any{"pid": 1024, "qty": 250})
	browserRun(t, ctx, waitText("#lines", "250 g"), waitText("#total", "$15.48"))
	if pageTrue(t, ctx, `document.getElementById("lines").textContent.includes("250 ×")`) {
		t.Fatal("the display counts the grams of a weighed item as items")
	}
	// A voided sale clears the screen at once.
	sale(t, tab, sbA+"salesbuilder_cancel", pk2, map[string]any{"reason": "changed mind"})
	browserRun(t, ctx, waitText("#display", "Welcome"))
	browserLog(ctx).wantNoErrors(t)
}

// TestBrowserDisplayReconnect kills the lane (kill -9) under a display
// showing a sale and starts it again on the same address and DB. The sale
// changes and is then cancelled while the display is still finding its way
// back: it must catch up (the firehose reopens with since) and end idle,
// never left showing the stale sale.
func TestBrowserDisplayReconnect(t *testing.T) {
	alongside(t)
	db := filepath.Join(t.TempDir(), "lane.db")
	// The display reaches the lane through a gate the test can shut, so
	// that it may not reconnect until the sale has moved on: what it shows
	// next can then only come from the events it missed (since). The page
	// is served through the gate too, so its socket (on the page's own
	// host) goes through it, and the lane allows that origin.
	g := newGate(t)
	origin := []string{"--allowed-origins", "http://" + g.addr()}
	first := relStart(t, db, origin...)
	g.to(first.addr)
	keys := relKeys(t, db, map[string]string{"display-1": "display", "tablet-1": "presell"})
	l := &lane{t: t, addr: first.addr, db: db}
	tab := l.login(presellQuery, keys["tablet-1"], "")

	ctx := newBrowser(t)
	browserRun(t, ctx,
		chromedp.Navigate("http://"+g.addr()+"/display/?key="+keys["display-1"]),
		waitText("#store", "Harbour Street Deli"),
	)
	pk := sale(t, tab, sbA+"sale_create", nil, nil)["physkey"].(string)
	sale(t, tab, sbA+"sale_add_product", pk, map[string]any{"pid": 1006, "qty": 1})
	browserRun(t, ctx, waitText("#lines", "Hot Chocolate"), waitText("#total", "$5.50"))

	g.shut(true) // the open socket lives on until the kill ends it
	first.kill9()
	again := relStart(t, db, append(origin, "--addr", first.addr)...)
	if again.addr != first.addr {
		t.Fatalf("restarted lane listens on %s, want %s", again.addr, first.addr)
	}
	l2 := &lane{t: t, addr: again.addr, db: db}
	tab2 := l2.login(presellQuery, keys["tablet-1"], "")
	sale(t, tab2, sbA+"sale_add_product", pk, map[string]any{"pid": 1004, "qty": 1})
	// Still shut out, though it has tried to get back: the display shows
	// the sale as it was, and says it is reconnecting.
	deadline := time.Now().Add(30 * time.Second)
	for g.turnedAway.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the display did not try to reconnect within 30s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	browserRun(t, ctx, waitText("#status", "Reconnecting"))
	if !pageTrue(t, ctx, `!document.getElementById("lines").textContent.includes("Long Black")`) {
		t.Fatal("the display saw a change while its way to the lane was shut")
	}
	sale(t, tab2, sbA+"salesbuilder_cancel", pk, map[string]any{"reason": "customer left"})
	g.shut(false)
	browserRun(t, ctx, waitText("#store", "Harbour Street Deli"), waitText("#display", "Welcome"))
	if pageTrue(t, ctx, `document.getElementById("lines") !== null`) {
		t.Fatal("the display still shows the cancelled sale")
	}

	// The outage itself shows in the console as failed socket connections;
	// anything else is a fault of the page.
	for _, e := range browserLog(ctx).errors() {
		if !strings.Contains(e, "WebSocket connection to") {
			t.Errorf("the page logged an error: %s", e)
		}
	}
}

// TestBrowserDisplayCatchesUpAndFollowsARestore: a display whose link
// drops while far more happens than one replay burst holds (the lane's
// send queue is small) catches up over several opens and goes live again;
// then the lane DB is restored from a backup whose journal is behind what
// the display has seen, and the display still shows the sales rung up
// after that, rather than dropping them as already seen.
func TestBrowserDisplayCatchesUpAndFollowsARestore(t *testing.T) {
	alongside(t)
	dir := t.TempDir()
	db := filepath.Join(dir, "lane.db")
	g := newGate(t)
	// 64 KiB is the smallest queue: a replay burst holds 32 KiB, and the
	// sale below sends several times that to the display.
	flags := []string{"--allowed-origins", "http://" + g.addr(), "--send-queue-bytes", "65536"}
	first := relStart(t, db, flags...)
	g.to(first.addr)
	keys := relKeys(t, db, map[string]string{"display-1": "display", "tablet-1": "presell"})
	backup := filepath.Join(dir, "backup.db")
	if _, err := cli(t, "backup", "--db", db, "--out", backup); err != nil {
		t.Fatal(err)
	}
	l := &lane{t: t, addr: first.addr, db: db}
	tab := l.login(presellQuery, keys["tablet-1"], "")

	ctx := newBrowser(t)
	browserRun(t, ctx,
		chromedp.Navigate("http://"+g.addr()+"/display/?key="+keys["display-1"]),
		waitText("#store", "Harbour Street Deli"),
	)
	pk := sale(t, tab, sbA+"sale_create", nil, nil)["physkey"].(string)
	sale(t, tab, sbA+"sale_add_product", pk, map[string]any{"pid": 1006, "qty": 1})
	browserRun(t, ctx, waitText("#lines", "Hot Chocolate"))

	// The link drops and stays down while 60 Flat Whites are rung up: 60
	// events of a growing sale, far over 32 KiB together.
	g.shut(true)
	g.drop()
	var pkts []map[string]any
	for range 60 {
		pkts = append(pkts, req(sbA+"sale_add_product", pk, map[string]any{"pid": 1001}))
	}
	pkts = append(pkts, req(sbA+"sale_add_product", pk, map[string]any{"pid": 1004}))
	for _, r := range tab.callAll(pkts...) {
		if r.Error != nil {
			t.Fatalf("add_product: %s", r.raw)
		}
	}
	g.shut(false)
	// $5.50 + 60 × $5.50 + $4.80: only the last event has it all.
	browserRun(t, ctx, waitText("#total", "$340.30"))

	// Restore: the lane stops, the backup (taken before any sale) takes
	// the DB's place, and the lane starts again on the same address.
	first.kill9()
	restoreBackup(t, db, backup)
	again := relStart(t, db, append(flags, "--addr", first.addr)...)
	l2 := &lane{t: t, addr: again.addr, db: db}
	// The display is back once its firehose is live on the restored lane;
	// a sale rung up before that would not be replayed (it is not after
	// the since the display asks for), which is not what this checks.
	deadline := time.Now().Add(30 * time.Second)
	for !l2.hasFirehoseSubscriber() {
		if time.Now().After(deadline) {
			t.Fatal("the display did not reopen its firehose on the restored lane within 30s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	tab2 := l2.login(presellQuery, keys["tablet-1"], "")
	pk2 := sale(t, tab2, sbA+"sale_create", nil, nil)["physkey"].(string)
	sale(t, tab2, sbA+"sale_add_product", pk2, map[string]any{"pid": 1003, "qty": 1})
	browserRun(t, ctx, waitText("#lines", "Cappuccino"), waitText("#total", "$5.50"))

	for _, e := range browserLog(ctx).errors() {
		if !strings.Contains(e, "WebSocket connection to") {
			t.Errorf("the page logged an error: %s", e)
		}
	}
}

// hasFirehoseSubscriber reports whether any firehose is live on the lane.
func (l *lane) hasFirehoseSubscriber() bool {
	_, m := l.scrape("")
	for k, v := range m {
		if strings.HasPrefix(k, "greenlane_firehose_subscribers{") && v > 0 {
			return true
		}
	}
	return false
}

// gate is a TCP relay to a lane that a test can shut: shut, it closes
// every new connection at once (a lane that cannot be reached), while the
// connections already through it go on until either end closes them, or
// drop cuts them.
type gate struct {
	ln         net.Listener
	turnedAway atomic.Int64 // connections closed because the gate was shut
	mu         sync.Mutex
	target     string
	closed     bool
	open       map[net.Conn]bool // client ends of the relays under way
}

// drop cuts every connection through the gate, as a link that fails.
func (g *gate) drop() {
	g.mu.Lock()
	defer g.mu.Unlock()
	for c := range g.open {
		c.Close()
	}
}

func newGate(t *testing.T) *gate {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := &gate{ln: ln}
	t.Cleanup(func() { ln.Close() })
	go g.serve()
	return g
}

func (g *gate) addr() string { return g.ln.Addr().String() }

// to sets the address the gate relays to.
func (g *gate) to(target string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.target = target
}

func (g *gate) shut(closed bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.closed = closed
}

func (g *gate) serve() {
	for {
		c, err := g.ln.Accept()
		if err != nil {
			return // the test ended
		}
		go g.relay(c)
	}
}

func (g *gate) relay(c net.Conn) {
	defer c.Close()
	g.mu.Lock()
	target, closed := g.target, g.closed
	g.mu.Unlock()
	if closed || target == "" {
		g.turnedAway.Add(1)
		return
	}
	up, err := net.Dial("tcp", target)
	if err != nil {
		return // the lane is down: so is the way to it
	}
	defer up.Close()
	g.mu.Lock()
	if g.open == nil {
		g.open = map[net.Conn]bool{}
	}
	g.open[c] = true
	g.mu.Unlock()
	defer func() {
		g.mu.Lock()
		delete(g.open, c)
		g.mu.Unlock()
	}()
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(up, c); done <- struct{}{} }()
	go func() { _, _ = io.Copy(c, up); done <- struct{}{} }()
	<-done // either end closed: close both
}

// TestBrowserDisplayReleasedPaidPresell: a presell released at the counter
// with money on it reads "please pay" only while something is due: paid in
// full (here with $4.50 change owed), the display says so.
func TestBrowserDisplayReleasedPaidPresell(t *testing.T) {
	alongside(t)
	_, tab, till, ctx := displayWatching(t, "&tablet=tablet-1")
	p := presellFromTablet(t, tab, 0, soldLine{1001, 1}) // 5.50
	k := p["physkey"].(string)
	browserRun(t, ctx, waitText("#parked-note", "Please pay at the counter."))
	sale(t, till, presellA+"recall", nil, map[string]any{"ticket": p["ticket"]})
	sale(t, till, sbA+"sale_add_payment", k, map[string]any{"type": 1, "amount": 2})
	sale(t, till, presellA+"release", k, nil)
	browserRun(t, ctx, waitText("#due", "$3.50"), waitText("#parked-note", "Please pay at the counter."))
	sale(t, till, presellA+"recall", nil, map[string]any{"ticket": p["ticket"]})
	sale(t, till, sbA+"sale_add_payment", k, map[string]any{"type": 1, "amount": 8})
	sale(t, till, presellA+"release", k, nil)
	browserRun(t, ctx, waitText("#change", "$4.50"), waitText("#parked-note", "Paid in full: please see the counter."))
	lookScreen(t, ctx, "display-released-paid", false)
	browserLog(ctx).wantNoErrors(t)
}

// TestBrowserDisplayLongSale: a sale longer than the screen keeps its total
// and its newest line in view (the lines scroll, not the page); a
// catalogue description with no spaces wraps instead of pushing the price
// off the screen; a customer is named, and a discount claimed only when
// the customer has one.
func TestBrowserDisplayLongSale(t *testing.T) {
	alongside(t)
	l := startLane(t)
	sqliteExec(t, l.db, `UPDATE products SET description = '%s' WHERE pid = 1004`, strings.Repeat("W", 300))
	displayKey := l.newKey("display-1", "display")
	tab := l.login(presellQuery, l.newKey("tablet-1", "presell"), "")

	ctx := newBrowser(t)
	browserRun(t, ctx,
		chromedp.EmulateViewport(1280, 720),
		chromedp.Navigate("http://"+l.addr+"/display/?key="+displayKey),
		waitText("#display", "Welcome"),
	)
	pk := sale(t, tab, sbA+"sale_create", nil, nil)["physkey"].(string)
	sale(t, tab, sbA+"sale_set_customer", pk, map[string]any{"cid": 1}) // Aroha Ngata, no discount
	for range 24 {
		sale(t, tab, sbA+"sale_add_product", pk, map[string]any{"pid": 1006, "qty": 1})
	}
	sale(t, tab, sbA+"sale_add_product", pk, map[string]any{"pid": 1004, "qty": 1})
	browserRun(t, ctx, waitText("#lines", "WWWW"), waitText("#customer", "Aroha Ngata"))
	saveScreen(t, ctx, "display-long-sale")
	for _, check := range []struct{ what, js string }{
		{"the total is on the screen", `document.getElementById("total").getBoundingClientRect().bottom <= window.innerHeight`},
		{"the newest line is on the screen", `(() => { const ls = document.querySelectorAll("#lines li"); const r = ls[ls.length-1].getBoundingClientRect(); return r.top >= 0 && r.bottom <= window.innerHeight + 1; })()`},
		{"the page does not scroll", `document.documentElement.scrollHeight <= window.innerHeight && document.documentElement.scrollWidth <= window.innerWidth`},
		{"the long line's price is on the screen", `(() => { const ls = document.querySelectorAll("#lines li"); const m = ls[ls.length-1].querySelector(".money").getBoundingClientRect(); return m.right <= window.innerWidth && m.top >= 0 && m.bottom <= window.innerHeight; })()`},
	} {
		if !pageTrue(t, ctx, check.js) {
			t.Errorf("a sale of 25 lines at 1280x720: want %s", check.what)
		}
	}
	if got := readText(t, ctx, "#customer"); strings.Contains(got, "discount") {
		t.Errorf("customer line %q: Aroha Ngata has no discount", got)
	}
	sale(t, tab, sbA+"sale_set_customer", pk, map[string]any{"cid": 3}) // Hemi Walker, 10%
	browserRun(t, ctx, waitText("#customer", "Hemi Walker — member discount 10% applied"))
	browserLog(ctx).wantNoErrors(t)
}

// TestBrowserDisplayCustomerName: the customer's name on the display is
// isolated, so a name holding U+202E cannot reverse the words after it,
// and a 250-letter name with no spaces takes at most two lines of a
// 360x640 display, the total still on screen.
func TestBrowserDisplayCustomerName(t *testing.T) {
	alongside(t)
	l := startLane(t)
	sqliteExec(t, l.db, `UPDATE customers SET name = 'James ' || char(8238) || 'Whitfield' WHERE cid = 3;
		UPDATE customers SET name = %s WHERE cid = 1`, sqlQuote(strings.Repeat("N", 250)))
	displayKey := l.newKey("display-1", "display")
	tab := l.login(presellQuery, l.newKey("tablet-1", "presell"), "")

	ctx := newBrowser(t)
	browserRun(t, ctx,
		chromedp.EmulateViewport(360, 640),
		chromedp.Navigate("http://"+l.addr+"/display/?key="+displayKey),
		waitText("#display", "Welcome"),
	)
	pk := sale(t, tab, sbA+"sale_create", nil, nil)["physkey"].(string)
	sale(t, tab, sbA+"sale_add_product", pk, map[string]any{"pid": 1006, "qty": 1})
	sale(t, tab, sbA+"sale_set_customer", pk, map[string]any{"cid": 3}) // 10% discount
	browserRun(t, ctx, waitText("#customer", "member discount 10% applied"))
	lookScreen(t, ctx, "display-bidi-name", false)
	isolated := `(() => { const c = document.getElementById("customer"); const b = c.querySelector("bdi");
		return !!b && b.textContent.includes("\u202e") && getComputedStyle(b).unicodeBidi === "isolate" && !b.textContent.includes("discount"); })()`
	if !pageTrue(t, ctx, isolated) {
		t.Errorf("the customer's name %q is not isolated from the words after it", readText(t, ctx, "#customer"))
	}

	sale(t, tab, sbA+"sale_set_customer", pk, map[string]any{"cid": 1})
	browserRun(t, ctx, waitText("#customer", "NNNN"))
	lookScreen(t, ctx, "display-long-name", false)
	for _, check := range []struct{ what, js string }{
		{"the name at most two lines tall", `(() => { const c = document.getElementById("customer"); return c.getBoundingClientRect().height <= 2 * 1.6 * parseFloat(getComputedStyle(c).fontSize); })()`},
		{"the total on the screen", `document.getElementById("total").getBoundingClientRect().bottom <= window.innerHeight`},
		{"the line's price on the screen", `document.querySelector("#lines li .money").getBoundingClientRect().bottom <= window.innerHeight`},
	} {
		if !pageTrue(t, ctx, check.js) {
			t.Errorf("a 250-letter customer name at 360x640: want %s", check.what)
		}
	}
	browserLog(ctx).wantNoErrors(t)
}

// TestBrowserDisplayKeepsTheCounterSale: a lane-wide display (no tablet
// given) faces the counter. While the counter works on a recalled presell,
// a tablet building the next order does not take the screen; the thank-you
// with the change due runs its time though a tablet taps meanwhile; then
// the order that moved last shows.
func TestBrowserDisplayKeepsTheCounterSale(t *testing.T) {
	alongside(t)
	_, tab, counter, ctx := displayWatching(t, "")
	pk := sale(t, tab, sbA+"sale_create", nil, nil)["physkey"].(string)
	sale(t, tab, sbA+"sale_add_product", pk, map[string]any{"pid": 1006, "qty": 2}) // $11.00
	parked := sale(t, tab, sbA+"sale_park", pk, nil)
	sale(t, counter, presellA+"recall", nil, map[string]any{"ticket": parked["ticket"]})
	browserRun(t, ctx, waitText("#total", "$11.00"))

	// The next customer's order on the tablet: the counter's sale stays.
	next := sale(t, tab, sbA+"sale_create", nil, nil)["physkey"].(string)
	sale(t, tab, sbA+"sale_add_product", next, map[string]any{"pid": 1004, "qty": 1}) // $4.80
	// Give the event time to arrive: what is checked is that the screen
	// did not change.
	time.Sleep(500 * time.Millisecond)
	browserRun(t, ctx, waitText("#total", "$11.00"))

	// Paid and completed: the thank-you with the change stays while the
	// tablet taps again, then the tablet's order shows.
	sale(t, counter, sbA+"sale_add_payment", pk, map[string]any{"type": 1, "amount": 20})
	sale(t, counter, sbA+"salesbuilder_complete", pk, nil)
	browserRun(t, ctx, waitText("#thanks", "Thank you"), waitText("#display", "$9.00"))
	sale(t, tab, sbA+"sale_add_product", next, map[string]any{"pid": 1004, "qty": 1}) // $9.60
	time.Sleep(500 * time.Millisecond)
	browserRun(t, ctx, waitText("#thanks", "Thank you"), waitText("#display", "$9.00"))
	browserRun(t, ctx, waitText("#total", "$9.60"))
	browserLog(ctx).wantNoErrors(t)
}

// displayWatching starts a lane with a tablet (tablet-1, on a presell
// socket) and a counter (counter-1) logged in, and a browser showing the
// customer display paired with a display key, idle. query is added to the
// display's address ("&tablet=tablet-1" for one tablet's sales).
func displayWatching(t *testing.T, query string) (l *lane, tab, counter *conn, ctx context.Context) {
	t.Helper()
	l = startLane(t)
	displayKey := l.newKey("display-1", "display")
	tab = l.login(presellQuery, l.newKey("tablet-1", "presell"), "")
	counter = l.login("", l.newKey("counter-1", "counter"), "")
	ctx = newBrowser(t)
	browserRun(t, ctx,
		chromedp.Navigate("http://"+l.addr+"/display/?key="+displayKey+query),
		waitText("#display", "Welcome"),
	)
	return l, tab, counter, ctx
}
