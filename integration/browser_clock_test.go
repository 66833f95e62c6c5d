package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// skewStoreClock makes the store database's clock_timestamp() read
// skew.off later than the server's own clock, for every session opened
// from now on: a lane started afterwards then judges its own clock
// against that, and the test moves it by setting skew.off. (The lane's
// sessions find the function through the database's search_path, ahead of
// pg_catalog's.)
func skewStoreClock(t *testing.T, db string) {
	t.Helper()
	storeExec(t, db, `CREATE SCHEMA skew;
		CREATE TABLE skew.off (off interval NOT NULL);
		INSERT INTO skew.off VALUES ('0 s');
		CREATE FUNCTION skew.clock_timestamp() RETURNS timestamptz LANGUAGE sql
			AS 'SELECT pg_catalog.clock_timestamp() + (SELECT off FROM skew.off)';
		DO $$ BEGIN
			EXECUTE format('ALTER DATABASE %I SET search_path = public, skew, pg_catalog', current_database());
		END $$;`)
}

// sentTenders records the iks of the payments the page in ctx sends over
// its WebSocket, and returns a function that lists them so far.
func sentTenders(t *testing.T, ctx context.Context) func() []string {
	t.Helper()
	var mu sync.Mutex
	var iks []string
	err := chromedp.Listen(ctx, func(ev any) {
		f, ok := ev.(*network.EventWebSocketFrameSent)
		if !ok || f.Response == nil {
			return
		}
		var p struct{ A, IK string }
		if json.Unmarshal([]byte(f.Response.PayloadData), &p) == nil && strings.HasSuffix(p.A, "sale_add_payment") {
			mu.Lock()
			iks = append(iks, p.IK)
			mu.Unlock()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(ctx, network.Enable, network.EnableParams{}); err != nil {
		t.Fatal(err)
	}
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(iks)
	}
}

// TestBrowserStoreClockOff: a store lane whose clock drifts past
// --max-clock-skew refuses every change with the reason, and says so where
// people look: /readyz answers 503 with it, the counter shows the lane's
// own sentence instead of "shutting down or too busy", and the tablet,
// after a retry or two, shows it in its banner while it keeps the change
// and keeps trying. Once the clock is back in step the tablet's change
// goes through with no tap, and the counter's retried tender is taken once.
func TestBrowserStoreClockOff(t *testing.T) {
	alongside(t)
	ctx := newBrowser(t) // first: without a browser, skip before starting lanes
	db, _ := demoStore(t)
	skewStoreClock(t, db)
	p := relStartStore(t, db)
	l := &lane{t: t, addr: p.addr, db: db}
	keys := map[string]string{}
	for name, scope := range map[string]string{"tablet-1": "presell", "tablet-2": "presell", "counter-1": "counter"} {
		out, err := cli(t, "apikey", "create", "--db", db, "--name", name, "--scope", scope)
		if err != nil {
			t.Fatal(err)
		}
		keys[name] = strings.TrimSpace(out)
	}
	p1 := presellFromTablet(t, l.login(presellQuery, keys["tablet-2"], ""), 0, soldLine{1006, 2})

	tenders := sentTenders(t, ctx)
	pairCounter(t, ctx, l.addr, keys["counter-1"])
	browserRun(t, ctx,
		waitText("#presells", "#"+fmt.Sprint(num(p1["ticket"]))),
		chromedp.KeyEvent(p1["ticket_barcode"].(string)+kb.Enter),
		waitText("#total", "$11.00"),
	)
	tab := newTab(t, ctx)
	browserRun(t, tab, setViewport(desktopWidth),
		chromedp.Navigate("http://"+l.addr+"/tablet/#key="+keys["tablet-1"]),
		waitText("#grid", "Flat White"),
		chromedp.Click(chromedp.CSS(tabFlatWhite)),
		waitText("#lines", "Flat White"),
	)

	// The store database's clock jumps 10 s ahead: the lane's is 10 s
	// behind it, past the default 2 s.
	storeExec(t, db, `UPDATE skew.off SET off = '10 s'`)
	const why = "the lane's clock is 10s behind the store database's"
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		code, body := l.get("/readyz")
		if code == 503 && strings.Contains(body, why) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz with the lane's clock 10s behind: %d %q, want 503 saying %q", code, body, why)
		}
	}
	browserRun(t, ctx,
		typeInto("#amount", "5"),
		chromedp.KeyEvent(kb.F2),
		waitText("#message", "The lane cannot take changes now: "+why),
	)
	if msg := readText(t, ctx, "#message"); strings.Contains(msg, "too busy") {
		t.Errorf("the counter says %q: the lane's reason, not the busy line", msg)
	}
	lookScreen(t, ctx, "counter-clock-off", false)
	browserRun(t, tab,
		chromedp.Click(chromedp.CSS(tabLatte)),
		waitText("#pending", "Latte"),
		waitText("#banner", "the lane cannot take changes (its clock is off: tell the manager)"),
	)
	lookScreen(t, tab, "tablet-clock-off", false)

	storeExec(t, db, `UPDATE skew.off SET off = '0 s'`)
	browserRun(t, tab,
		waitText("#lines", "Latte"),
		chromedp.WaitNotPresent(chromedp.CSS("#pending li")),
		waitText("#banner", "connected to the lane"),
	)
	// The amount typed is still there: the cashier presses F2 again.
	browserRun(t, ctx,
		chromedp.KeyEvent(kb.F2),
		waitText("#payments", "Cash"),
		waitText("#balance", "$6.00"),
	)
	// The refused tender and the cashier's retry of it are one change:
	// sent with one ik.
	if iks := tenders(); len(iks) != 2 || iks[0] != iks[1] {
		t.Errorf("the counter sent its tender and the retry with iks %v, want the same ik twice", iks)
	}
	rows := storeRows(t, db, `SELECT count(*) AS n FROM payments WHERE sale_physkey = `+sqlQuote(p1["physkey"].(string)))
	if num(rows[0]["n"]) != 1 {
		t.Fatalf("payments after the tender refused and tried again: %v, want one", rows)
	}
	if code, body := l.get("/readyz"); code != 200 {
		t.Errorf("/readyz once the clock is in step: %d %q", code, body)
	}
}

// TestBrowserStoreTabletKeepsAFaultedChange: a change the lane answers
// internal (a fault: whether it was made is not known to the tablet) is
// kept with its ik, its order held with Retry, not dropped; once the fault
// is gone, Retry sends it with the same ik and it is made once. (The fault
// is a trigger of the store database's that refuses the croissant's line.)
func TestBrowserStoreTabletKeepsAFaultedChange(t *testing.T) {
	alongside(t)
	ctx := newBrowser(t) // first: without a browser, skip before starting lanes
	db, _ := demoStore(t)
	p := relStartStore(t, db)
	out, err := cli(t, "apikey", "create", "--db", db, "--name", "tablet-1", "--scope", "presell")
	if err != nil {
		t.Fatal(err)
	}
	storeExec(t, db, `CREATE FUNCTION refuse_croissant() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN RAISE EXCEPTION 'a fault the lane does not know'; END $$;
		CREATE TRIGGER refuse_croissant BEFORE INSERT ON sale_lines
			FOR EACH ROW WHEN (NEW.pid = 1016) EXECUTE FUNCTION refuse_croissant();`)
	browserRun(t, ctx, setViewport(desktopWidth),
		chromedp.Navigate("http://"+p.addr+"/tablet/#key="+strings.TrimSpace(out)),
		waitText("#grid", "Flat White"),
		chromedp.Click(chromedp.CSS(tabFlatWhite)),
		waitText("#lines", "Flat White"),
		chromedp.Click(chromedp.CSS(tabCroissant)),
		waitText("#errors li[data-held]", "The lane hit a fault"),
	)
	q := tabletQueue(t, ctx)
	if len(q) != 1 || q[0].A != "salesbuilder.sale_add_product" {
		t.Fatalf("after the fault the tablet holds %+v, want the croissant's add, kept", q)
	}
	storeExec(t, db, `DROP TRIGGER refuse_croissant ON sale_lines`)
	browserRun(t, ctx,
		chromedp.Click(chromedp.CSS("#errors button.retry")),
		waitText("#lines", "Butter Croissant"),
		chromedp.WaitNotPresent(chromedp.CSS("#pending li")),
	)
	if rows := storeRows(t, db, `SELECT endpoint FROM idempotency WHERE ik = `+sqlQuote(q[0].IK)); len(rows) != 1 {
		t.Errorf("the croissant's ik %s in the store database: %v, want its one add", q[0].IK, rows)
	}
}
