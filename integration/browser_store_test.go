package integration

// The tablet page in store mode (issue 15, "Failure"): given the store's
// lanes, it moves to another when its own goes away, and the order it was
// taking completes there, each change once.

import (
	"context"
	"encoding/json"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// freeAddr is a loopback address nothing listens on now, for a lane whose
// address must be known before it starts (the store's lanes name each
// other in --allowed-origins). Another process may take it first; then the
// lane fails to start and says so.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

// queuedChange is an entry of the tablet's IndexedDB queue.
type queuedChange struct {
	A  string `json:"a"`
	IK string `json:"ik"`
}

// tabletQueue reads the changes the tablet page holds, oldest first.
func tabletQueue(t *testing.T, ctx context.Context) []queuedChange {
	t.Helper()
	const expr = `new Promise((resolve, reject) => {
		const open = indexedDB.open("greenlane-tablet");
		open.onerror = () => reject(open.error);
		open.onsuccess = () => {
			const all = open.result.transaction("changes").objectStore("changes").getAll();
			all.onerror = () => reject(all.error);
			all.onsuccess = () => resolve(JSON.stringify(all.result.map((c) => ({ a: c.a, ik: c.ik }))));
		};
	})`
	tctx, cancel := context.WithTimeout(ctx, browserTimeout)
	defer cancel()
	s, err := chromedp.Run(tctx, chromedp.Evaluate[string](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("read the tablet's queue: %v", err)
	}
	var out []queuedChange
	if err := json.Unmarshal([]byte(s), &out); err != nil {
		t.Fatalf("the tablet's queue %s: %v", s, err)
	}
	return out
}

// TestBrowserStoreTabletFailover: two lanes on one store database, each
// allowing the other's pages (--allowed-origins). The tablet page, served
// by A and given both lanes (?lanes=), starts an order on A. A stops dead
// with a change sent and unanswered, then is killed (-9); the page moves
// its socket to B, sends that change again with the same ik, takes one
// more, and the order is submitted through B, its ticket's barcode loaded
// from B. The store database holds one sale with each line once.
func TestBrowserStoreTabletFailover(t *testing.T) {
	alongside(t)
	ctx := newBrowser(t) // first: without a browser, skip before starting lanes
	log := browserLog(ctx)
	db, _ := demoStore(t)
	addrA, addrB := freeAddr(t), freeAddr(t)
	lanes := "http://" + addrA + ",http://" + addrB
	a := relStartStore(t, db, "--addr", addrA, "--allowed-origins", lanes)
	b := relStartStore(t, db, "--addr", addrB, "--allowed-origins", lanes)
	out, err := cli(t, "apikey", "create", "--db", db, "--name", "tablet-1", "--scope", "presell")
	if err != nil {
		t.Fatal(err)
	}

	browserRun(t, ctx, setViewport(desktopWidth),
		chromedp.Navigate("http://"+addrA+"/tablet/?lanes="+lanes+"#key="+strings.TrimSpace(out)),
		waitText("#grid", "Flat White"),
		chromedp.Click(chromedp.CSS(tabFlatWhite)),
		waitText("#lines", "Flat White"),
	)
	physkey := tabletSale(t, ctx)

	// A stops answering (SIGSTOP keeps its socket open): the latte is sent
	// to it and waits for a reply that never comes.
	if err := a.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	browserRun(t, ctx,
		chromedp.Click(chromedp.CSS(tabLatte)),
		waitText("#pending", "Latte"),
		chromedp.Sleep(500*time.Millisecond), // time to write it to A's socket
	)
	q := tabletQueue(t, ctx)
	if len(q) != 1 || q[0].A != "salesbuilder.sale_add_product" || q[0].IK == "" {
		t.Fatalf("with A stopped the tablet holds %+v, want the latte's add", q)
	}
	latteIK := q[0].IK

	a.kill9()
	browserRun(t, ctx,
		chromedp.Click(chromedp.CSS(tabCroissant)),
		waitText("#lines", "Butter Croissant"),
		waitText("#lines", "Latte"),
		chromedp.WaitNotPresent(chromedp.CSS("#pending li")),
		chromedp.Click(chromedp.CSS("#submit")),
		waitText("#ticket", "Next customer"),
		waitImage("#ticket-barcode"),
		waitImage("#ticket-qr"),
	)
	src, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("ticket-barcode").src`))
	if err != nil || !strings.HasPrefix(src, "http://"+addrB+"/barcode") {
		t.Errorf("the ticket's barcode comes from %q (%v), want lane B %s: A is gone", src, err, addrB)
	}

	sales := storeRows(t, db, `SELECT physkey, phase, ticket FROM sales`)
	if len(sales) != 1 || sales[0]["physkey"] != physkey || sales[0]["phase"] != 5.0 || sales[0]["ticket"] == nil {
		t.Fatalf("the store database holds %v, want the one submitted sale %s", sales, physkey)
	}
	if got, want := storeLines(t, db, physkey), "1001×1 1002×1 1016×1"; got != want {
		t.Errorf("the sale's lines are %q, want %q (each once)", got, want)
	}
	if got := readText(t, ctx, "#ticket-number"); got != fmtNum(sales[0]["ticket"]) {
		t.Errorf("the page shows ticket %q, the store database %v", got, sales[0]["ticket"])
	}
	// The latte sent to the stopped A was applied by B under the ik the
	// page gave it there: resent, not made anew.
	if rows := storeRows(t, db, `SELECT endpoint FROM idempotency WHERE ik = `+sqlQuote(latteIK)); len(rows) != 1 ||
		!strings.Contains(rows[0]["endpoint"].(string), "sale_add_product") {
		t.Errorf("the latte's ik %s in the store database: %v, want its one add", latteIK, rows)
	}
	b.checkLog()
	wantNoErrorsBut(t, log, lanesDown...)
}

// storeLines is "pid×qty …" of a sale's lines in a store database.
func storeLines(t *testing.T, db, physkey string) string {
	t.Helper()
	var got []string
	for _, r := range storeRows(t, db, `SELECT pid, qty FROM sale_lines WHERE sale_physkey = `+sqlQuote(physkey)+` ORDER BY seqnce`) {
		got = append(got, fmtNum(r["pid"])+"×"+fmtNum(r["qty"]))
	}
	return strings.Join(got, " ")
}

// fmtNum prints a number as storeRows gives it, without a fraction.
func fmtNum(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
