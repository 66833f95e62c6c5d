package integration

import (
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
)

// sbA prefixes the SalesBuilder endpoint names.
const sbA = "fd1.salesbuilder."

var (
	uuidRE     = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
	dateTimeRE = regexp.MustCompile(`^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$`)
	wordRE     = regexp.MustCompile(`^[a-z]+-[a-z]+$`)
	rqSeq      atomic.Int64
)

// in returns the socket bound to test t, so that a failure inside a
// subtest fails that subtest from its own goroutine.
func (c *conn) in(t *testing.T) *conn { return &conn{t: t, ws: c.ws, patience: c.patience} }

// req builds a request with a fresh rq; k and v are left out when nil.
func req(a string, k any, v map[string]any) map[string]any {
	p := map[string]any{"a": a, "rq": fmt.Sprintf("r%d", rqSeq.Add(1))}
	if k != nil {
		p["k"] = k
	}
	if v != nil {
		p["v"] = v
	}
	return p
}

// doPkt sends one request and returns its reply, checking that the reply
// answers it (r and rp).
func doPkt(t *testing.T, c *conn, p map[string]any) *packet {
	t.Helper()
	r := c.in(t).call(p)
	rq, _ := json.Marshal(p["rq"])
	if r.rpKey() != string(rq) || r.R != p["a"] {
		t.Fatalf("reply to %s rq %s came back as r=%s rp=%s: %s", p["a"], rq, r.R, r.RP, r.raw)
	}
	return r
}

func do(t *testing.T, c *conn, a string, k any, v map[string]any) *packet {
	t.Helper()
	return doPkt(t, c, req(a, k, v))
}

// objectShape reports whether endpoint a replies with the sale straight in
// data (salesbuilder_* names and get_sale, SPEC §7.3); the others (sale_*
// and fd1.sales.*) wrap it in data.rows[0].
func objectShape(a string) bool {
	fn := a[strings.LastIndex(a, ".")+1:]
	return strings.HasPrefix(fn, "salesbuilder_") || fn == "get_sale"
}

// saleFrom returns the one sale in a successful reply after checking the
// reply shape its endpoint name calls for and that k echoes the physkey.
func saleFrom(p *packet) (map[string]any, error) {
	if p.Error != nil {
		return nil, fmt.Errorf("%s: error %s: %s", p.R, p.Error.Code, p.Error.Message)
	}
	var d map[string]any
	if err := json.Unmarshal(p.Data, &d); err != nil {
		return nil, fmt.Errorf("%s: data is not an object: %s", p.R, p.Data)
	}
	var sale map[string]any
	if objectShape(p.R) {
		if _, ok := d["rows"]; ok {
			return nil, fmt.Errorf("%s replied data.rows; this name puts the sale straight in data: %s", p.R, p.Data)
		}
		sale = d
	} else {
		rows, ok := d["rows"].([]any)
		if !ok || len(rows) != 1 || len(d) != 1 {
			return nil, fmt.Errorf("%s: want data:{rows:[sale]}, got %s", p.R, p.Data)
		}
		if sale, ok = rows[0].(map[string]any); !ok {
			return nil, fmt.Errorf("%s: rows[0] is not an object: %s", p.R, p.Data)
		}
	}
	physkey, _ := sale["physkey"].(string)
	if !uuidRE.MatchString(physkey) {
		return nil, fmt.Errorf("%s: physkey %v is not a UUID: %s", p.R, sale["physkey"], p.raw)
	}
	if p.k() != physkey {
		return nil, fmt.Errorf("%s: k = %q, want the sale's physkey %q", p.R, p.k(), physkey)
	}
	return sale, nil
}

func saleReply(t *testing.T, p *packet) map[string]any {
	t.Helper()
	s, err := saleFrom(p)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// sale calls a SalesBuilder endpoint that answers with one sale.
func sale(t *testing.T, c *conn, a string, k any, v map[string]any) map[string]any {
	t.Helper()
	return saleReply(t, do(t, c, a, k, v))
}

// wantErr calls and expects error code whose message mentions every string
// in mention.
func wantErr(t *testing.T, c *conn, p map[string]any, code string, mention ...string) {
	t.Helper()
	r := doPkt(t, c, p)
	r.wantError(t, code)
	for _, m := range mention {
		if !strings.Contains(r.Error.Message, m) {
			t.Errorf("%s: %s message %q does not mention %q", p["a"], code, r.Error.Message, m)
		}
	}
}

func num(v any) float64 {
	f, _ := v.(float64)
	return f
}

// cents reads a JSON money value as integer cents.
func cents(v any) int64 { return int64(math.Round(num(v) * 100)) }

// line is what a test expects of a sale line. pre 0 means the line shows
// no prediscountprice (no price cause).
type line struct {
	seq, pid, qty    int
	unit, total, pre float64
	cause, source    int
}

func checkLines(t *testing.T, sale map[string]any, want ...line) {
	t.Helper()
	got, _ := sale["lines"].([]any)
	if got == nil {
		t.Fatalf("sale %v has no lines array", sale["physkey"])
	}
	if len(got) != len(want) {
		t.Fatalf("sale has %d lines, want %d: %v", len(got), len(want), got)
	}
	for i, w := range want {
		g := got[i].(map[string]any)
		bad := num(g["seqnce"]) != float64(w.seq) || num(g["pid"]) != float64(w.pid) || num(g["qty"]) != float64(w.qty) ||
			num(g["unitprice"]) != w.unit || num(g["totalprice"]) != w.total || num(g["price"]) != w.total ||
			num(g["pricecause"]) != float64(w.cause) || num(g["linesource"]) != float64(w.source)
		pre, hasPre := g["prediscountprice"]
		if w.pre == 0 && hasPre || w.pre != 0 && num(pre) != w.pre {
			bad = true
		}
		weighed := w.pid >= 1024 && w.pid <= 1028 || w.pid == 1030 || w.pid == 1031
		if weighed != (num(g["measurement"]) == 1) {
			bad = true
		}
		if bad {
			t.Fatalf("line %d = %v\nwant %+v", i, g, w)
		}
	}
}

// checkTotal checks saletotal and that paid and balance add up.
func checkTotal(t *testing.T, sale map[string]any, total, paid float64) {
	t.Helper()
	if num(sale["saletotal"]) != total || num(sale["paid"]) != paid || cents(sale["balance"]) != cents(total)-cents(paid) {
		t.Fatalf("saletotal %v paid %v balance %v, want %v, %v, %v", sale["saletotal"], sale["paid"], sale["balance"], total, paid, total-paid)
	}
}

// wireHas checks the reply bytes carry a money value exactly as written.
func wireHas(t *testing.T, p *packet, text string) {
	t.Helper()
	if !strings.Contains(string(p.raw), text) {
		t.Fatalf("reply does not carry %s: %s", text, p.raw)
	}
}

// Demo catalogue items used below (fixtures/demo).
const (
	hemiCID     = 3 // 10% customer discount
	hemiPhyskey = "b5f71de8-9f1e-56f5-9e2e-58ccb6c48d52"
	kombucha2nd = "9421047003297" // second barcode of pid 1012, 5.90
)

func TestSalesBuilderEndpoints(t *testing.T) {
	alongside(t)
	l := startLane(t)
	keys := l.newKeys("counter", "counter", 5)
	gens := []struct{ name, create, add, setCustomer, complete, cancel string }{
		{"sale_* names", sbA + "sale_create", sbA + "sale_add_product", sbA + "sale_set_customer", sbA + "sale_complete", sbA + "sale_cancel"},
		{"salesbuilder_* names", sbA + "salesbuilder_create", sbA + "salesbuilder_add_product", sbA + "salesbuilder_set_customer", sbA + "salesbuilder_complete", sbA + "salesbuilder_cancel"},
		{"fd1.sales alias, names without fd1.", "fd1.sales.create_activesale", "salesbuilder.salesbuilder_add_product", "salesbuilder.sale_set_customer", "salesbuilder.salesbuilder_complete", "salesbuilder.sale_cancel"},
	}
	conns := make([]*conn, len(keys))
	for i, k := range keys {
		conns[i] = l.login("", k, "")
	}

	for i, g := range gens {
		t.Run(g.name, func(t *testing.T) {
			c := conns[i]
			holder := fmt.Sprintf("counter-%d", i+1)

			// Create: an empty active sale.
			s := sale(t, c, g.create, nil, nil)
			pk := s["physkey"].(string)
			if s["phase"] != 0.0 || s["sid"] != nil || s["completeddt"] != nil || s["presell"] != 0.0 || s["holder"] != holder {
				t.Fatalf("new sale = %v", s)
			}
			if !dateTimeRE.MatchString(fmt.Sprint(s["startdt"])) || !uuidRE.MatchString(fmt.Sprint(s["random_key"])) || s["random_key"] == pk {
				t.Fatalf("new sale startdt %v random_key %v", s["startdt"], s["random_key"])
			}
			if n := num(s["physkey_random_no"]); n < 0 || n > 9999 || !wordRE.MatchString(fmt.Sprint(s["physkey_random_no_word"])) {
				t.Fatalf("physkey_random_no %v word %v", s["physkey_random_no"], s["physkey_random_no_word"])
			}
			checkLines(t, s)
			checkTotal(t, s, 0, 0)
			if p, _ := s["payments"].([]any); p == nil || len(p) != 0 {
				t.Fatalf("new sale payments = %v, want []", s["payments"])
			}

			// Lines by pid, PLU, barcode and a weighed product in grams.
			s = sale(t, c, g.add, pk, map[string]any{"pid": 1001, "qty": 2, "linesource": 10})
			checkLines(t, s, line{1, 1001, 2, 5.5, 11, 0, 0, 10})
			checkTotal(t, s, 11, 0)
			s = sale(t, c, g.add, pk, map[string]any{"plu": "CROI", "linesource": 3})
			checkTotal(t, s, 16.2, 0)
			s = sale(t, c, g.add, pk, map[string]any{"barcode": kombucha2nd, "linesource": 1})
			checkTotal(t, s, 22.1, 0)
			p := do(t, c, g.add, pk, map[string]any{"plu": "101", "qty": 250, "linesource": 4})
			s = saleReply(t, p)
			checkLines(t, s,
				line{1, 1001, 2, 5.5, 11, 0, 0, 10},
				line{2, 1016, 1, 5.2, 5.2, 0, 0, 3},
				line{3, 1012, 1, 5.9, 5.9, 0, 0, 1},
				line{4, 1024, 250, 39.9, 9.98, 0, 0, 4}, // 250 g at 39.90/kg = 9.975, rounded half up
			)
			checkTotal(t, s, 32.08, 0)
			wireHas(t, p, `"saletotal":32.08`)

			// Price check, list prices while there is no customer.
			pr := do(t, c, sbA+"sale_get_price", pk, map[string]any{"pid": []int{1001, 1024}})
			if rows := pr.rows(t); len(rows) != 2 || rows[0]["pid"] != 1001.0 || rows[0]["price"] != 5.5 || rows[1]["pid"] != 1024.0 || rows[1]["price"] != 39.9 || pr.k() != pk {
				t.Fatalf("sale_get_price = %s", pr.raw)
			}

			// Customer with 10% off: every line repriced with cause 8.
			p = do(t, c, g.setCustomer, pk, map[string]any{"cid": hemiCID})
			s = saleReply(t, p)
			cust, _ := s["customer"].(map[string]any)
			if s["cid"] != float64(hemiCID) || s["physkeycust"] != hemiPhyskey || cust == nil || cust["discount"] != 10.0 {
				t.Fatalf("customer on sale: cid %v physkeycust %v customer %v", s["cid"], s["physkeycust"], s["customer"])
			}
			discounted := []line{
				{1, 1001, 2, 5.5, 9.9, 11, 8, 10},
				{2, 1016, 1, 5.2, 4.68, 5.2, 8, 3},
				{3, 1012, 1, 5.9, 5.31, 5.9, 8, 1},
				{4, 1024, 250, 39.9, 8.98, 9.98, 8, 4},
			}
			checkLines(t, s, discounted...)
			checkTotal(t, s, 28.87, 0)
			wireHas(t, p, `"totalprice":9.9,`)

			kv := do(t, c, sbA+"sale_get_price", pk, map[string]any{"pid": []int{1001, 1024}, "_format": "kv"})
			if string(kv.Data) != `{"kv":{"1001":4.95,"1024":35.91}}` || kv.k() != pk {
				t.Fatalf("sale_get_price kv with the customer = %s", kv.raw)
			}

			// cid 0 takes the customer off and list prices come back.
			s = sale(t, c, g.setCustomer, pk, map[string]any{"cid": 0})
			if s["cid"] != nil || s["customer"] != nil || s["physkeycust"] != nil {
				t.Fatalf("after cid 0: cid %v customer %v", s["cid"], s["customer"])
			}
			checkLines(t, s,
				line{1, 1001, 2, 5.5, 11, 0, 0, 10},
				line{2, 1016, 1, 5.2, 5.2, 0, 0, 3},
				line{3, 1012, 1, 5.9, 5.9, 0, 0, 1},
				line{4, 1024, 250, 39.9, 9.98, 0, 0, 4},
			)
			checkTotal(t, s, 32.08, 0)

			// The same customer by physkey.
			s = sale(t, c, g.setCustomer, pk, map[string]any{"physkeycust": hemiPhyskey})
			checkLines(t, s, discounted...)
			checkTotal(t, s, 28.87, 0)

			// Remove a line, edit one, add one: seqnce never moves or repeats.
			s = sale(t, c, sbA+"sale_remove_line", pk, map[string]any{"seqnce": 2})
			checkTotal(t, s, 24.19, 0)
			s = sale(t, c, sbA+"sale_edit_line", pk, map[string]any{"seqnce": 1, "qty": 3})
			s = sale(t, c, g.add, pk, map[string]any{"pid": 1008})
			last := []line{
				{1, 1001, 3, 5.5, 14.85, 16.5, 8, 10},
				{3, 1012, 1, 5.9, 5.31, 5.9, 8, 1},
				{4, 1024, 250, 39.9, 8.98, 9.98, 8, 4},
				{5, 1008, 1, 0.8, 0.72, 0.8, 8, 10}, // no linesource given: 10, API call
			}
			checkLines(t, s, last...)
			checkTotal(t, s, 29.86, 0)
			built := s

			// get_sale: the salesbuilder.active summary, straight in data.
			for _, k := range []any{pk, "active", nil} {
				gs := do(t, c, sbA+"get_sale", k, nil)
				a := saleReply(t, gs)
				if gs.SC != "salesbuilder.active" || a["physkey"] != pk || a["saletotal"] != 29.86 || a["random_key"] != built["random_key"] ||
					a["physkey_random_no"] != built["physkey_random_no"] || a["physkey_random_no_word"] != built["physkey_random_no_word"] ||
					!dateTimeRE.MatchString(fmt.Sprint(a["datetime_local"])) {
					t.Fatalf("get_sale k=%v: %s", k, gs.raw)
				}
			}
			all := req(sbA+"get_sale", "active", nil)
			all["qk"] = "all"
			for _, p := range []map[string]any{all, req("fd1.sales.get_activesale_list", nil, nil)} {
				r := doPkt(t, c, p)
				rows := r.rows(t)
				if len(rows) != 1 || rows[0]["physkey"] != pk || rows[0]["saletotal"] != 29.86 || rows[0]["phase"] != 0.0 {
					t.Fatalf("%s: %s", p["a"], r.raw)
				}
			}

			// sale_fetch: the whole sale, as the last change answered it.
			f := sale(t, c, sbA+"sale_fetch", pk, nil)
			if !equalJSON(f, built) {
				t.Fatalf("sale_fetch = %v\nlast reply = %v", f, built)
			}

			// Payments by global code; complete needs them to cover the total.
			s = sale(t, c, sbA+"sale_add_payment", pk, map[string]any{"type": 1, "amount": 10})
			pays, _ := s["payments"].([]any)
			if len(pays) != 1 || !equalJSON(pays[0].(map[string]any)["type"], 1) || pays[0].(map[string]any)["amount"] != 10.0 || pays[0].(map[string]any)["typename"] != "Cash" {
				t.Fatalf("payments = %v", s["payments"])
			}
			checkTotal(t, s, 29.86, 10)
			wantErr(t, c, req(g.complete, pk, nil), "underpaid", "19.86")
			// Only cash gives change: EFTPOS above the balance due is refused.
			wantErr(t, c, req(sbA+"sale_add_payment", pk, map[string]any{"type": 3, "amount": 25}), "bad_argument", "balance due of $19.86")
			s = sale(t, c, sbA+"sale_add_payment", pk, map[string]any{"type": 1, "amount": 25})
			checkTotal(t, s, 29.86, 35)
			if pays, _ := s["payments"].([]any); len(pays) != 2 || pays[1].(map[string]any)["type"] != 1.0 || pays[1].(map[string]any)["sequence"] != 2.0 {
				t.Fatalf("payments = %v", s["payments"])
			}
			p = do(t, c, g.complete, pk, nil)
			done := saleReply(t, p)
			if sid := num(done["sid"]); sid < 1 || sid != math.Trunc(sid) || done["phase"] != 1.0 || !dateTimeRE.MatchString(fmt.Sprint(done["completeddt"])) || done["change"] != 5.14 {
				t.Fatalf("completed sale: %s", p.raw)
			}
			wireHas(t, p, `"change":5.14`)
			checkLines(t, done, last...)
			// Completed: get_sale no longer shows it; sale_fetch still does.
			wantErr(t, c, req(sbA+"get_sale", pk, nil), "not_found", pk)
			if f := sale(t, c, sbA+"sale_fetch", pk, nil); f["phase"] != 1.0 || f["sid"] != done["sid"] || f["completeddt"] != done["completeddt"] {
				t.Fatalf("completed sale fetched: %v", f)
			}

			// Without a sale, sale_get_price answers list prices.
			lp := do(t, c, sbA+"sale_get_price", nil, map[string]any{"pid": 1024})
			if rows := lp.rows(t); len(rows) != 1 || rows[0]["price"] != 39.9 {
				t.Fatalf("list price: %s", lp.raw)
			}

			// Park, unpark, cancel.
			s = sale(t, c, g.create, nil, nil)
			pk2 := s["physkey"].(string)
			sale(t, c, g.add, pk2, map[string]any{"pid": 1001})
			s = sale(t, c, sbA+"sale_park", pk2, nil)
			if s["phase"] != 5.0 || s["ticket"] != nil {
				t.Fatalf("parked counter sale: phase %v ticket %v (only a presell gets a ticket)", s["phase"], s["ticket"])
			}
			all = req(sbA+"get_sale", nil, nil)
			all["qk"] = "all"
			if rows := doPkt(t, c, all).rows(t); len(rows) != 1 || rows[0]["physkey"] != pk2 || rows[0]["phase"] != 5.0 {
				t.Fatalf("get_sale qk=all with a parked sale: %v", rows)
			}
			s = sale(t, c, sbA+"sale_unpark", pk2, nil)
			if s["phase"] != 0.0 || s["holder"] != holder {
				t.Fatalf("unparked: phase %v holder %v", s["phase"], s["holder"])
			}
			s = sale(t, c, g.cancel, pk2, nil)
			if s["phase"] != 10000.0 || s["sid"] != nil {
				t.Fatalf("cancelled: phase %v sid %v", s["phase"], s["sid"])
			}
			wantErr(t, c, req(sbA+"get_sale", pk2, nil), "not_found")
			all["rq"] = "after-cancel"
			if rows := doPkt(t, c, all).rows(t); len(rows) != 0 {
				t.Fatalf("get_sale qk=all after cancel: %v", rows)
			}
		})
	}

	t.Run("seqnce is stable", func(t *testing.T) {
		c := conns[3]
		pk := sale(t, c, sbA+"sale_create", nil, nil)["physkey"].(string)
		for _, pid := range []int{1001, 1002, 1003} {
			sale(t, c, sbA+"sale_add_product", pk, map[string]any{"pid": pid})
		}
		s := sale(t, c, sbA+"sale_remove_line", pk, map[string]any{"seqnce": 1})
		checkLines(t, s, line{2, 1002, 1, 5.5, 5.5, 0, 0, 10}, line{3, 1003, 1, 5.5, 5.5, 0, 0, 10})
		s = sale(t, c, sbA+"sale_add_product", pk, map[string]any{"pid": 1004})
		checkLines(t, s, line{2, 1002, 1, 5.5, 5.5, 0, 0, 10}, line{3, 1003, 1, 5.5, 5.5, 0, 0, 10}, line{4, 1004, 1, 4.8, 4.8, 0, 0, 10})
		// The newest line removed: its seqnce is not handed out again.
		sale(t, c, sbA+"sale_remove_line", pk, map[string]any{"seqnce": 4})
		s = sale(t, c, sbA+"sale_add_product", pk, map[string]any{"pid": 1005})
		checkLines(t, s, line{2, 1002, 1, 5.5, 5.5, 0, 0, 10}, line{3, 1003, 1, 5.5, 5.5, 0, 0, 10}, line{5, 1005, 1, 6, 6, 0, 0, 10})
		s = sale(t, c, sbA+"sale_edit_line", pk, map[string]any{"seqnce": 3, "qty": 2})
		checkLines(t, s, line{2, 1002, 1, 5.5, 5.5, 0, 0, 10}, line{3, 1003, 2, 5.5, 11, 0, 0, 10}, line{5, 1005, 1, 6, 6, 0, 0, 10})
		checkTotal(t, s, 22.5, 0)
		wantErr(t, c, req(sbA+"sale_remove_line", pk, map[string]any{"seqnce": 1}), "not_found", "seqnce 1")
	})

	t.Run("no k means the most recently changed sale", func(t *testing.T) {
		c := conns[4]
		a := sale(t, c, sbA+"sale_create", nil, nil)["physkey"].(string)
		b := sale(t, c, sbA+"sale_create", nil, nil)["physkey"].(string)
		if gs := saleReply(t, do(t, c, sbA+"get_sale", nil, nil)); gs["physkey"] != b {
			t.Fatalf("after creating B the top sale is %v, want B %s", gs["physkey"], b)
		}
		sale(t, c, sbA+"sale_add_product", a, map[string]any{"pid": 1001})
		if gs := saleReply(t, do(t, c, sbA+"get_sale", "active", nil)); gs["physkey"] != a {
			t.Fatalf("after a change to A the top sale is %v, want A %s (B is %s)", gs["physkey"], a, b)
		}
		// And a change without k goes to A too.
		s := sale(t, c, sbA+"sale_add_product", nil, map[string]any{"pid": 1002})
		if s["physkey"] != a {
			t.Fatalf("add_product without k went to %v, want A %s", s["physkey"], a)
		}
	})
}

// TestSalesBuilderBadInput sends bad requests and checks each gets a clear
// error and leaves every sale exactly as it was.
func TestSalesBuilderBadInput(t *testing.T) {
	alongside(t)
	l := startLane(t)
	counterKey := l.newKeys("counter", "counter", 1)[0]
	tabletKeys := l.newKeys("tablet", "presell", 2)
	c := l.login("", counterKey, "")
	ta := l.login("?purpose=presell", tabletKeys[0], "")
	tb := l.login("?purpose=presell", tabletKeys[1], "")
	add, edit, remove := sbA+"sale_add_product", sbA+"sale_edit_line", sbA+"sale_remove_line"
	setCust, pay, park, unpark := sbA+"sale_set_customer", sbA+"sale_add_payment", sbA+"sale_park", sbA+"sale_unpark"
	complete, cancel := sbA+"salesbuilder_complete", sbA+"salesbuilder_cancel"

	// S: the counter's active sale, 20.98 with 5 paid.
	S := sale(t, c, sbA+"sale_create", nil, nil)["physkey"].(string)
	sale(t, c, add, S, map[string]any{"pid": 1001, "qty": 2})
	sale(t, c, add, S, map[string]any{"plu": "101", "qty": 250})
	sale(t, c, pay, S, map[string]any{"type": 1, "amount": 5})
	// D: a completed sale.
	D := sale(t, c, sbA+"sale_create", nil, nil)["physkey"].(string)
	sale(t, c, add, D, map[string]any{"pid": 1001})
	sale(t, c, pay, D, map[string]any{"type": 1, "amount": 10})
	sale(t, c, complete, D, nil)
	// TA: tablet-1's active presell; TP: tablet-1's submitted presell.
	TA := sale(t, ta, sbA+"sale_create", nil, nil)["physkey"].(string)
	sale(t, ta, add, TA, map[string]any{"pid": 1016})
	TP := sale(t, ta, sbA+"sale_create", nil, nil)["physkey"].(string)
	sale(t, ta, add, TP, map[string]any{"pid": 1001})
	if s := sale(t, ta, park, TP, nil); s["phase"] != 5.0 || s["ticket"] == nil {
		t.Fatalf("submitted presell: %v", s)
	}

	// snapshot is every sale as the counter fetches it, plus the number of
	// sales in the lane DB.
	snapshot := func(t *testing.T) string {
		t.Helper()
		var b strings.Builder
		for _, k := range []string{S, D, TA, TP} {
			s := sale(t, c, sbA+"sale_fetch", k, nil)
			j, _ := json.Marshal(s)
			b.Write(j)
			b.WriteString("\n")
		}
		rows := doPkt(t, c, map[string]any{"a": sbA + "get_sale", "rq": "count", "qk": "all"}).rows(t)
		fmt.Fprintf(&b, "open sales of the counter: %d\n", len(rows))
		return b.String()
	}
	salesInDB := func() any { return sqliteRows(t, l.db, `SELECT COUNT(*) AS n FROM sales`)[0]["n"] }
	nSales := salesInDB()

	ghost := newUUID()
	tests := []struct {
		name    string
		c       *conn
		a       string
		k       any
		v       map[string]any
		code    string
		mention []string
	}{
		{"unknown pid", c, add, S, map[string]any{"pid": 99999}, "unknown_product", []string{"99999"}},
		{"unknown PLU", c, add, S, map[string]any{"plu": "NOPE"}, "unknown_product", []string{"NOPE"}},
		{"unknown barcode", c, add, S, map[string]any{"barcode": "9400000000001"}, "unknown_product", []string{"9400000000001"}},
		{"inactive product by pid", c, add, S, map[string]any{"pid": 1040}, "unknown_product", []string{"1040", "not for sale"}},
		{"inactive product by PLU", c, add, S, map[string]any{"plu": "RELI"}, "unknown_product", []string{"1040", "not for sale"}},
		{"unknown product on a tablet", ta, add, TA, map[string]any{"pid": 99999}, "unknown_product", []string{"99999"}},
		{"qty 0", c, add, S, map[string]any{"pid": 1001, "qty": 0}, "bad_argument", []string{"v.qty"}},
		{"qty -1", c, add, S, map[string]any{"pid": 1001, "qty": -1}, "bad_argument", []string{"v.qty"}},
		{"qty 1.5", c, add, S, map[string]any{"pid": 1001, "qty": 1.5}, "bad_argument", []string{"v.qty", "1.5"}},
		{`qty "2x"`, c, add, S, map[string]any{"pid": 1001, "qty": "2x"}, "bad_argument", []string{"v.qty", `string "2x"`}},
		{"qty 10000001", c, add, S, map[string]any{"pid": 1001, "qty": 10000001}, "bad_argument", []string{"v.qty"}},
		{"edit to qty 0", c, edit, S, map[string]any{"seqnce": 1, "qty": 0}, "bad_argument", []string{"v.qty"}},
		{"edit to qty 1.5", c, edit, S, map[string]any{"seqnce": 1, "qty": 1.5}, "bad_argument", []string{"v.qty"}},
		{"edit of no line", c, edit, S, map[string]any{"seqnce": 99, "qty": 1}, "not_found", []string{"seqnce 99"}},
		{"k is no sale (UUID)", c, add, ghost, map[string]any{"pid": 1001}, "not_found", []string{ghost}},
		{"k is no sale (text)", c, add, "no-such-sale", map[string]any{"pid": 1001}, "not_found", []string{"no-such-sale"}},
		{"k is a number", c, add, 12345, map[string]any{"pid": 1001}, "not_found", []string{"12345"}},
		{"fetch of no sale", c, sbA + "sale_fetch", ghost, nil, "not_found", []string{ghost}},
		{"park of no sale", c, park, ghost, nil, "not_found", []string{ghost}},
		{"complete of no sale", c, complete, ghost, nil, "not_found", []string{ghost}},
		{"add to a completed sale", c, add, D, map[string]any{"pid": 1001}, "conflict", []string{"completed"}},
		{"edit a completed sale", c, edit, D, map[string]any{"seqnce": 1, "qty": 2}, "conflict", []string{"completed"}},
		{"remove from a completed sale", c, remove, D, map[string]any{"seqnce": 1}, "conflict", []string{"completed"}},
		{"customer on a completed sale", c, setCust, D, map[string]any{"cid": hemiCID}, "conflict", []string{"completed"}},
		{"pay a completed sale", c, pay, D, map[string]any{"type": 1, "amount": 1}, "conflict", []string{"completed"}},
		{"park a completed sale", c, park, D, nil, "conflict", []string{"completed"}},
		{"unpark a completed sale", c, unpark, D, nil, "conflict", []string{"completed"}},
		{"complete twice", c, complete, D, nil, "conflict", []string{"completed"}},
		{"cancel a completed sale", c, cancel, D, nil, "conflict", []string{"completed"}},
		{"tablet adds to its parked presell", ta, add, TP, map[string]any{"pid": 1001}, "conflict", []string{"parked"}},
		{"tablet edits its parked presell", ta, edit, TP, map[string]any{"seqnce": 1, "qty": 2}, "conflict", []string{"parked"}},
		{"tablet removes from its parked presell", ta, remove, TP, map[string]any{"seqnce": 1}, "conflict", []string{"parked"}},
		{"tablet sets a customer on its parked presell", ta, setCust, TP, map[string]any{"cid": hemiCID}, "conflict", []string{"parked"}},
		{"counter edits a parked presell without unparking", c, add, TP, map[string]any{"pid": 1001}, "conflict", []string{"parked"}},
		// Another tablet's sale does not exist for a tablet (DESIGN §4).
		{"other tablet adds", tb, add, TA, map[string]any{"pid": 1001}, "not_found", []string{TA}},
		{"other tablet edits", tb, edit, TA, map[string]any{"seqnce": 1, "qty": 3}, "not_found", []string{TA}},
		{"other tablet removes", tb, remove, TA, map[string]any{"seqnce": 1}, "not_found", []string{TA}},
		{"other tablet sets a customer", tb, setCust, TA, map[string]any{"cid": hemiCID}, "not_found", []string{TA}},
		{"a tablet pays", tb, pay, TA, map[string]any{"type": 1, "amount": 1}, "forbidden", []string{"counter"}},
		{"other tablet parks", tb, park, TA, nil, "not_found", []string{TA}},
		{"other tablet cancels", tb, cancel, TA, nil, "not_found", []string{TA}},
		{"other tablet recalls a presell", tb, unpark, TP, nil, "not_found", []string{TP}},
		{"other tablet cancels a presell", tb, cancel, TP, nil, "not_found", []string{TP}},
		{"underpaid", c, complete, S, nil, "underpaid", []string{"20.98", "15.98"}},
		{"payment type 42", c, pay, S, map[string]any{"type": 42, "amount": 1}, "bad_argument", []string{"v.type", "42"}},
		{"negative payment", c, pay, S, map[string]any{"type": 1, "amount": -1}, "bad_argument", []string{"v.amount"}},
		{"zero payment", c, pay, S, map[string]any{"type": 1, "amount": 0}, "bad_argument", []string{"v.amount"}},
		{"payment with three decimals", c, pay, S, map[string]any{"type": 1, "amount": 1.234}, "bad_argument", []string{"v.amount"}},
		{"price override from a presell key", ta, add, TA, map[string]any{"pid": 1001, "price": 1}, "forbidden", []string{"v.price", "counter"}},
		{"price edit from a presell key", ta, edit, TA, map[string]any{"seqnce": 1, "price": 1}, "forbidden", []string{"v.price", "counter"}},
		{"create with a physkey that is no UUID", c, sbA + "sale_create", nil, map[string]any{"physkey": "not-a-uuid"}, "bad_argument", []string{"v.physkey"}},
		{"create with another key's physkey", tb, sbA + "sale_create", nil, map[string]any{"physkey": TA}, "conflict", []string{TA}},
	}
	before := snapshot(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantErr(t, tt.c, req(tt.a, tt.k, tt.v), tt.code, tt.mention...)
			if after := snapshot(t); after != before {
				t.Fatalf("the failed request changed a sale:\nbefore %s\nafter  %s", before, after)
			}
		})
	}
	if n := salesInDB(); n != nSales {
		t.Fatalf("the failed requests changed the number of sales from %v to %v", nSales, n)
	}

	t.Run("a counter may override the price", func(t *testing.T) {
		s := sale(t, c, add, S, map[string]any{"pid": 1001, "price": 4})
		checkLines(t, s,
			line{1, 1001, 2, 5.5, 11, 0, 0, 10},
			line{2, 1024, 250, 39.9, 9.98, 0, 0, 10},
			line{3, 1001, 1, 4, 4, 4, 12, 10},
		)
		// A user price is kept when the customer changes; the rest is discounted.
		s = sale(t, c, setCust, S, map[string]any{"cid": hemiCID})
		checkLines(t, s,
			line{1, 1001, 2, 5.5, 9.9, 11, 8, 10},
			line{2, 1024, 250, 39.9, 8.98, 9.98, 8, 10},
			line{3, 1001, 1, 4, 4, 4, 12, 10},
		)
		s = sale(t, c, edit, S, map[string]any{"seqnce": 2, "price": 30})
		checkLines(t, s,
			line{1, 1001, 2, 5.5, 9.9, 11, 8, 10},
			line{2, 1024, 250, 30, 7.5, 7.5, 12, 10},
			line{3, 1001, 1, 4, 4, 4, 12, 10},
		)
		checkTotal(t, s, 21.4, 5)
		// Paid up, the sale that was underpaid completes.
		sale(t, c, pay, S, map[string]any{"type": 3, "amount": 16.4})
		if d := sale(t, c, complete, S, nil); d["phase"] != 1.0 || d["change"] != 0.0 {
			t.Fatalf("complete after paying up: %v", d)
		}
	})

	t.Run("missing product names the JSON fields", func(t *testing.T) {
		wantErr(t, ta, req(add, TA, map[string]any{"qty": 1}), "bad_argument", "v.pid", "v.plu", "v.barcode")
	})
}
