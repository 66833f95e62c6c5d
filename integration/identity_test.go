package integration

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestIdentitySecondLoginRecordsTheCounter: a presell socket that logs in
// with a tablet key and then a counter key has both keys' scopes (SPEC
// §4.1), but every change is recorded under the key whose scope allowed it:
// the tablet creates and submits, the counter recalls, takes the money and
// completes. A later login never changes the socket's purpose.
func TestIdentitySecondLoginRecordsTheCounter(t *testing.T) {
	alongside(t)
	l := startLane(t)
	keys := l.keysFor(keyRequest{"tablet-1", "presell"}, keyRequest{"counter-1", "counter"})
	s := l.login(presellQuery, keys["tablet-1"], "")

	k := sale(t, s, sbA+"sale_create", nil, nil)["physkey"].(string)
	sale(t, s, sbA+"sale_add_product", k, map[string]any{"pid": 1001})
	ticket := sale(t, s, sbA+"sale_park", k, nil)["ticket"]

	r := do(t, s, "fd1.session.login", nil, map[string]any{"apikey": keys["counter-1"]})
	if d := r.data(t); r.Error != nil || d["purpose"] != "presell" || fmt.Sprint(d["scopes"]) != "[presell counter]" {
		t.Fatalf("second login: %s, want purpose presell and scopes presell, counter", r.raw)
	}
	wantErr(t, s, req("fd1.session.login", nil, map[string]any{"apikey": keys["counter-1"], "purpose": "customerdisplay"}),
		"conflict", "presell")

	recalled := sale(t, s, "fd1.presell.recall", nil, map[string]any{"ticket": ticket})
	if c, _ := recalled["claim"].(map[string]any); c["holder"] != "counter-1" {
		t.Fatalf("recall on the two-key socket: claim %v, want it held by counter-1", recalled["claim"])
	}
	sale(t, s, sbA+"sale_add_payment", k, map[string]any{"type": 1, "amount": recalled["saletotal"]})
	sale(t, s, sbA+"salesbuilder_complete", k, nil)

	// A sale paid for without being parked: built by the tablet, paid for
	// and completed by the counter.
	k2 := sale(t, s, sbA+"sale_create", nil, nil)["physkey"].(string)
	total := sale(t, s, sbA+"sale_add_product", k2, map[string]any{"pid": 1002})["saletotal"]
	sale(t, s, sbA+"sale_add_payment", k2, map[string]any{"type": 1, "amount": total})
	sale(t, s, sbA+"salesbuilder_complete", k2, nil)

	tests := []struct {
		physkey, createdBy, holder string
		presell                    string // presell journal, "event by actor", in order
		custdisp                   map[string]string
	}{
		{k, "tablet-1", "counter-1",
			"created by tablet-1, submitted by tablet-1, claimed by counter-1, completed by counter-1",
			map[string]string{"sale.add": "tablet-1", "sale.lines.add": "tablet-1", "sale.payments.add": "counter-1"}},
		{k2, "tablet-1", "tablet-1",
			"created by tablet-1, completed by counter-1",
			map[string]string{"sale.add": "tablet-1", "sale.lines.add": "tablet-1", "sale.payments.add": "counter-1"}},
	}
	for _, tt := range tests {
		row := sqliteRows(t, l.db, `SELECT created_by, holder_name, phase, claim_name FROM sales WHERE physkey = %s`, sqlQuote(tt.physkey))
		if len(row) != 1 || row[0]["created_by"] != tt.createdBy || row[0]["holder_name"] != tt.holder || row[0]["phase"] != 1.0 {
			t.Errorf("sale %s: %v, want created_by %s, holder_name %s, completed", tt.physkey, row, tt.createdBy, tt.holder)
		}
		if got := events(journalOf(t, l, tt.physkey)); got != tt.presell {
			t.Errorf("sale %s presell journal: %s, want %s", tt.physkey, got, tt.presell)
		}
		actors := map[string]string{}
		var last string
		for _, r := range sqliteRows(t, l.db, `SELECT event, actor FROM journal WHERE physkey = %s AND family = 'custdisp' ORDER BY seq`, sqlQuote(tt.physkey)) {
			actors[r["event"].(string)] = r["actor"].(string)
			last = r["actor"].(string)
		}
		for ev, want := range tt.custdisp {
			if actors[ev] != want {
				t.Errorf("sale %s custdisp %s by %q, want %s", tt.physkey, ev, actors[ev], want)
			}
		}
		if last != "counter-1" {
			t.Errorf("sale %s: the completion's display event is by %q, want counter-1", tt.physkey, last)
		}
	}
}

// eventSale is the sale a custdisp or presell event is about.
func eventSale(t *testing.T, p *packet) string {
	t.Helper()
	v := p.vmap(t)
	if pk, _ := v["salephyskey"].(string); pk != "" {
		return pk
	}
	pk, _ := v["physkey"].(string)
	return pk
}

// TestIdentityTabletSeesOnlyItsOwnSales: a presell key reads and follows
// only its own sales; another tablet's is not_found, exactly like a sale
// that does not exist. Counters and displays keep the lane-wide view.
func TestIdentityTabletSeesOnlyItsOwnSales(t *testing.T) {
	alongside(t)
	l := startLane(t)
	keys := l.keysFor(keyRequest{"tablet-1", "presell"}, keyRequest{"tablet-2", "presell"},
		keyRequest{"counter-1", "counter"}, keyRequest{"display-1", "display"})
	t1 := l.login(presellQuery, keys["tablet-1"], "")
	t2 := l.login(presellQuery, keys["tablet-2"], "")
	watch := l.login("", keys["tablet-2"], "")
	disp := l.login("", keys["display-1"], custdisp)
	till := l.login("", keys["counter-1"], "")
	openFH(t, watch, fhOpen("cd", map[string]any{"event": "custdisp.sale"}, nil))
	openFH(t, watch, fhOpen("ps", map[string]any{"event": "presell"}, nil))
	openFH(t, disp, fhOpen("cd", map[string]any{"event": "custdisp.sale"}, nil))

	k1 := sale(t, t1, sbA+"sale_create", nil, nil)["physkey"].(string)
	sale(t, t1, sbA+"sale_add_product", k1, map[string]any{"pid": 1001})
	sale(t, t1, sbA+"sale_set_customer", k1, map[string]any{"cid": 7})
	sale(t, t1, sbA+"sale_park", k1, nil)
	k2 := sale(t, t2, sbA+"sale_create", nil, nil)["physkey"].(string)

	t.Run("firehoses", func(t *testing.T) {
		// Tablet 1's events come first in the journal: had tablet 2's
		// firehoses carried them, they would be the first to arrive.
		for i := 0; i < 2; i++ {
			p := watch.in(t).next()
			if !p.isEvent() || eventSale(t, p) != k2 {
				t.Fatalf("tablet-2's firehose event %d: %s, want only events of its own sale %s", i, p.raw, k2)
			}
		}
		if p := nextEvent(t, disp, "cd"); eventSale(t, p) != k1 {
			t.Fatalf("the display's first event: %s, want tablet-1's sale %s (displays see the lane)", p.raw, k1)
		}
	})

	t.Run("reads", func(t *testing.T) {
		missing := newUUID()
		for _, c := range []struct {
			a string
			v map[string]any
		}{
			{sbA + "sale_fetch", nil},
			{sbA + "get_sale", nil},
			{sbA + "sale_get_price", map[string]any{"pid": 1001}},
			{sbA + "sale_add_product", map[string]any{"pid": 1001}},
			{sbA + "sale_unpark", nil},
			{sbA + "salesbuilder_cancel", nil},
		} {
			r := doPkt(t, t2, req(c.a, k1, c.v))
			r.wantError(t, "not_found")
			if strings.Contains(r.Error.Message, "tablet-1") {
				t.Errorf("%s of another tablet's sale names its tablet: %s", c.a, r.Error.Message)
			}
			gone := doPkt(t, t2, req(c.a, missing, c.v))
			gone.wantError(t, "not_found")
			if strings.ReplaceAll(r.Error.Message, k1, missing) != gone.Error.Message {
				t.Errorf("%s: another tablet's sale answers %q, a missing one %q: they must not differ", c.a, r.Error.Message, gone.Error.Message)
			}
		}
		var list struct {
			Rows []map[string]any `json:"rows"`
		}
		r := do(t, t2, "fd1.sales.get_activesale_list", nil, nil)
		if err := json.Unmarshal(r.Data, &list); err != nil || len(list.Rows) != 1 || list.Rows[0]["physkey"] != k2 {
			t.Fatalf("tablet-2's active sale list: %s, want only %s", r.Data, k2)
		}
		if s := sale(t, t1, sbA+"sale_fetch", k1, nil); s["physkey"] != k1 {
			t.Fatalf("tablet-1 fetching its own sale: %v", s)
		}
		if s := sale(t, till, sbA+"sale_fetch", k1, nil); s["physkey"] != k1 {
			t.Fatalf("the counter fetching a tablet's sale: %v", s)
		}
	})
}

// TestIdentityTracesCarryNoCustomerNames: a debugscope trace names the
// endpoint by its registered name; text a client put in "a" (here a
// customer's name) and the customer on a sale never reach it.
func TestIdentityTracesCarryNoCustomerNames(t *testing.T) {
	alongside(t)
	l := startLane(t)
	keys := l.keysFor(keyRequest{"support-1", "debug"}, keyRequest{"counter-1", "counter"})
	ds := l.login("", keys["support-1"], "debugscope")
	openFH(t, ds, fhOpen("tr", map[string]any{"event": "debugscope.trace"}, nil))
	till := l.login("", keys["counter-1"], "")

	const customer = "Mei Lin Chen" // cid 7 in the demo fixture
	doPkt(t, till, req("fd1.customers."+customer, nil, nil)).wantError(t, "unknown_endpoint")
	k := sale(t, till, sbA+"sale_create", nil, nil)["physkey"].(string)
	if s := sale(t, till, sbA+"sale_set_customer", k, map[string]any{"cid": 7}); !strings.Contains(fmt.Sprint(s["customer"]), customer) {
		t.Fatalf("set_customer: customer %v, want %s", s["customer"], customer)
	}
	for _, want := range []string{"(no endpoint)", sbA + "sale_create", sbA + "sale_set_customer"} {
		p := nextTrace(t, ds, "counter-1")
		if strings.Contains(string(p.raw), "Chen") || strings.Contains(string(p.raw), "Mei Lin") {
			t.Fatalf("a trace carries the customer's name: %s", p.raw)
		}
		if msg := p.vmap(t)["msg"]; msg != want {
			t.Fatalf("trace msg %v, want %s: %s", msg, want, p.raw)
		}
	}
}

// TestIdentityCounterReconnectTakesItsClaimBack: a counter whose socket
// closed (a reloaded page) recalls its presell again at once with the same
// key; while its first socket is open, and for another key, it stays
// claimed.
func TestIdentityCounterReconnectTakesItsClaimBack(t *testing.T) {
	alongside(t)
	l := startLane(t)
	tabKey, till1, till2 := l.newKey("tablet-1", "presell"), l.newKey("counter-1", "counter"), l.newKey("counter-2", "counter")
	tab := l.login("?purpose=presell", tabKey, "")
	k := tab.call(map[string]any{"a": "salesbuilder.sale_create", "rq": 1}).rows(t)[0]["physkey"]
	tab.call(map[string]any{"a": "salesbuilder.sale_add_product", "rq": 2, "k": k, "v": map[string]any{"pid": 1001}}).rows(t)
	ticket := tab.call(map[string]any{"a": "salesbuilder.sale_park", "rq": 3, "k": k}).rows(t)[0]["ticket"]
	recall := map[string]any{"a": "fd1.presell.recall", "rq": "r", "v": map[string]any{"ticket": ticket}}

	first := l.login("", till1, "")
	first.call(recall).rows(t)
	second := l.login("", till1, "")
	second.call(recall).wantError(t, "claimed") // the first socket still holds it
	first.ws.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := second.call(recall)
		if r.Error == nil {
			if h := r.rows(t)[0]["claim"].(map[string]any)["holder"]; h != "counter-1" {
				t.Fatalf("holder after reconnecting: %v", h)
			}
			break
		}
		if r.Error.Code != "claimed" || time.Now().After(deadline) {
			t.Fatalf("recall with the same key after its socket closed: %s", r.raw)
		}
		time.Sleep(20 * time.Millisecond) // the lane sees the close a moment later
	}
	second.call(map[string]any{"a": "salesbuilder.sale_add_payment", "rq": "p", "k": k, "v": map[string]any{"type": 1, "amount": 5.5}}).rows(t)
	l.login("", till2, "").call(recall).wantError(t, "claimed")
	second.ws.Close()
	l.login("", till2, "").call(recall).wantError(t, "claimed") // another key waits out the lease
}
