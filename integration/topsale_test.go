package integration

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// The top sale (SPEC §7.2): a request without k works on the sale its
// socket last changed, and never moves on to another sale once that one is
// done; only a socket that has changed none falls back to its key's newest
// active sale. These are money checks: a k-less payment that lands on the
// wrong presell lets a customer walk out without paying.

// paymentsOf is how many payments (not reversed) a sale holds.
func paymentsOf(t *testing.T, c *muxSocket, pk string) int {
	t.Helper()
	p, _ := c.fetch(t, pk)["payments"].([]any)
	return len(p)
}

func TestTopSaleNeverMovesOn(t *testing.T) {
	alongside(t)
	l := startLane(t)
	tab := dialMux(t, l, "tablet-1", presellQuery, l.newKeys("tablet", "presell", 1)[0], "")
	cks := l.newKeys("counter", "counter", 2)
	recall := presellA + "recall"
	pay := sbA + "sale_add_payment"

	t.Run("the pay key pressed again after a completion takes no money", func(t *testing.T) {
		c := dialMux(t, l, "counter-1", "", cks[0], "")
		p5 := presellOn(t, tab, 0, soldLine{1001, 1})
		p6 := presellOn(t, tab, 0, soldLine{1002, 1})
		c.sale(t, recall, nil, map[string]any{"ticket": p5["ticket"]})
		r := c.sale(t, recall, nil, map[string]any{"ticket": p6["ticket"]})
		amount := map[string]any{"type": 1, "amount": r["saletotal"]}
		c.sale(t, pay, nil, amount)
		if s := c.sale(t, sbA+"salesbuilder_complete", nil, nil); s["physkey"] != p6["physkey"] || s["phase"] != 1.0 {
			t.Fatalf("the k-less completion: %v, want ticket %v completed", s, p6["ticket"])
		}
		c.fails(t, pay, nil, amount, "not_found", fmt.Sprintf("ticket #%v", p6["ticket"]), "was completed", "name the sale in k")
		c.fails(t, pay, "active", amount, "not_found", "was completed")
		if n := paymentsOf(t, c, p5["physkey"].(string)); n != 0 {
			t.Fatalf("ticket %v, recalled earlier on the same socket, holds %d payments, want none", p5["ticket"], n)
		}
		// Nor does a k-less release give back the presell recalled before.
		c.fails(t, presellA+"release", nil, nil, "not_found", "was completed")
		if row := dbSale(t, l, p5["physkey"].(string)); row["claim_name"] != "counter-1" || row["phase"] != 0.0 {
			t.Fatalf("ticket %v after a refused k-less release: %v, want it still claimed by counter-1", p5["ticket"], row)
		}
		// Naming the sale still works: the counter takes ticket 5's money.
		c.sale(t, pay, p5["physkey"], map[string]any{"type": 1, "amount": p5["saletotal"]})
	})

	t.Run("a sale taken over by another counter is claim_lost, not another sale", func(t *testing.T) {
		c := dialMux(t, l, "counter-2", "", cks[1], "")
		admin := dialMux(t, l, "counter-admin", "", l.newKey("counter-admin", "counter,admin"), "")
		kept := presellOn(t, tab, 0, soldLine{1003, 1})
		lost := presellOn(t, tab, 0, soldLine{1004, 1})
		c.sale(t, recall, nil, map[string]any{"ticket": kept["ticket"]})
		c.sale(t, recall, nil, map[string]any{"ticket": lost["ticket"]})
		admin.sale(t, recall, nil, map[string]any{"ticket": lost["ticket"], "force": true})
		r := c.fails(t, pay, nil, map[string]any{"type": 1, "amount": 1}, "claim_lost",
			lost["physkey"].(string), "taken over by \"counter-admin\"")
		if strings.Contains(r.Error.Message, kept["physkey"].(string)) {
			t.Errorf("the refusal names the other presell: %s", r.Error.Message)
		}
		c.fails(t, sbA+"get_sale", nil, nil, "claim_lost", lost["physkey"].(string))
		if p := c.do(t, sbA+"sale_get_price", nil, map[string]any{"pid": 1001}); p.Error != nil || len(p.rows(t)) != 1 {
			t.Fatalf("sale_get_price without a sale of its own: %s, want list prices", p.raw)
		}
		for _, pk := range []any{kept["physkey"], lost["physkey"]} {
			if n := paymentsOf(t, admin, pk.(string)); n != 0 {
				t.Fatalf("presell %v holds %d payments after a refused k-less payment", pk, n)
			}
		}
	})

	t.Run("a socket that has changed nothing carries on with the key's newest sale", func(t *testing.T) {
		key := l.newKey("tablet-reconnect", "presell")
		first := dialMux(t, l, "tablet-reconnect", presellQuery, key, "")
		pk := first.sale(t, sbA+"sale_create", nil, nil)["physkey"]
		first.sale(t, sbA+"sale_add_product", nil, map[string]any{"pid": 1001})
		first.ws.Close()
		again := dialMux(t, l, "tablet-reconnect-2", presellQuery, key, "")
		// Until the lane sees the old socket close, the sale is that
		// socket's and the new one is refused; a k-less read says which.
		deadline := time.Now().Add(10 * time.Second)
		for r := again.do(t, sbA+"get_sale", nil, nil); r.Error != nil; r = again.do(t, sbA+"get_sale", nil, nil) {
			if !strings.Contains(r.Error.Message, "in use on another connection") || time.Now().After(deadline) {
				t.Fatalf("a reconnected socket's k-less read: %s", r.raw)
			}
			time.Sleep(20 * time.Millisecond) // the lane sees the close a moment later
		}
		s := again.sale(t, sbA+"sale_add_product", nil, map[string]any{"pid": 1002})
		if s["physkey"] != pk || len(s["lines"].([]any)) != 2 {
			t.Fatalf("after reconnecting, the k-less line went to %v (%d lines), want %v with 2", s["physkey"], len(s["lines"].([]any)), pk)
		}
	})

	t.Run("HTTP money names its sale in k", func(t *testing.T) {
		key := l.newKey("counter-http", "counter")
		ws := dialMux(t, l, "counter-http", "", key, "")
		pk := ws.sale(t, sbA+"sale_create", nil, nil)["physkey"].(string)
		total := ws.sale(t, sbA+"sale_add_product", pk, map[string]any{"pid": 1001})["saletotal"]
		hdr := map[string]string{"x-api-key": key}
		for _, body := range []string{
			fmt.Sprintf(`{"a":"fd1.salesbuilder.sale_add_payment","v":{"type":1,"amount":%v}}`, total),
			`{"a":"fd1.salesbuilder.salesbuilder_complete"}`,
		} {
			a := strings.Split(body, `"`)[3]
			status, p := l.httpCall("POST", "/fd1/salesbuilder/"+strings.TrimPrefix(a, sbA), hdr, body)
			if status != http.StatusBadRequest || p.Error == nil || p.Error.Code != "bad_argument" || !strings.HasPrefix(p.Error.Message, "k:") {
				t.Fatalf("k-less %s over HTTP: %d %s, want 400 bad_argument naming k", a, status, p.raw)
			}
		}
		if n := paymentsOf(t, ws, pk); n != 0 {
			t.Fatalf("a refused k-less HTTP payment was taken: %d payments", n)
		}
		status, p := l.httpCall("GET", fmt.Sprintf("/fd1/salesbuilder/sale_add_payment?k=%s&v.type=1&v.amount=%v", pk, total), hdr, "")
		if status != http.StatusOK || p.Error != nil {
			t.Fatalf("HTTP payment naming its sale: %d %s", status, p.raw)
		}
	})
}

// TestTopSaleHTTPChangeNamesItsSale: an HTTP request is a session of one
// with no top sale, so a change without k would land on whichever sale of
// the key another socket is ringing up. Every change is refused without k;
// sale_create (a new sale) and reads are not changes of one.
func TestTopSaleHTTPChangeNamesItsSale(t *testing.T) {
	alongside(t)
	l := startLane(t)
	key := l.newKey("counter-http", "counter")
	ws := dialMux(t, l, "counter-http", "", key, "")
	pk := ws.sale(t, sbA+"sale_create", nil, nil)["physkey"].(string)
	ws.sale(t, sbA+"sale_add_product", pk, map[string]any{"pid": 1001})
	hdr := map[string]string{"x-api-key": key}
	for _, tc := range []struct{ a, v string }{
		{"salesbuilder_cancel", `{"reason":"oops"}`},
		{"sale_park", `{}`},
		{"sale_add_product", `{"pid":1002}`},
		{"sale_edit_line", `{"seqnce":1,"qty":3}`},
		{"sale_remove_line", `{"seqnce":1}`},
		{"sale_set_customer", `{"cid":1}`},
		{"sale_unpark", `{}`},
	} {
		body := fmt.Sprintf(`{"a":"fd1.salesbuilder.%s","v":%s}`, tc.a, tc.v)
		status, p := l.httpCall("POST", "/fd1/salesbuilder/"+tc.a, hdr, body)
		if status != http.StatusBadRequest || p.Error == nil || p.Error.Code != "bad_argument" || !strings.HasPrefix(p.Error.Message, "k:") {
			t.Errorf("k-less %s over HTTP: %d %s, want 400 bad_argument naming k", tc.a, status, p.raw)
		}
	}
	if s := ws.fetch(t, pk); s["phase"] != 0.0 || len(s["lines"].([]any)) != 1 {
		t.Fatalf("the socket's sale after refused k-less HTTP changes: phase %v, %d lines; want active with its 1 line", s["phase"], len(s["lines"].([]any)))
	}
	if status, p := l.httpCall("POST", "/fd1/salesbuilder/sale_create", hdr, `{"a":"fd1.salesbuilder.sale_create"}`); status != http.StatusOK || p.Error != nil {
		t.Fatalf("HTTP sale_create without k: %d %s", status, p.raw)
	}
	if status, p := l.httpCall("POST", "/fd1/salesbuilder/salesbuilder_cancel", hdr,
		fmt.Sprintf(`{"a":"fd1.salesbuilder.salesbuilder_cancel","k":%q,"v":{"reason":"named"}}`, pk)); status != http.StatusOK || p.Error != nil {
		t.Fatalf("HTTP cancel naming its sale: %d %s", status, p.raw)
	}
}

// TestTopSaleFreshSocketLeavesAnOpenSocketsSale: a fresh socket falls back
// to its key's newest active sale only when no other open socket of the key
// is ringing it up; else its k-less payment and completion would take the
// money of the sale in front of the other till.
func TestTopSaleFreshSocketLeavesAnOpenSocketsSale(t *testing.T) {
	alongside(t)
	l := startLane(t)
	key := l.newKey("counter-1", "counter")
	c1 := dialMux(t, l, "counter-1", "", key, "")
	pk := c1.sale(t, sbA+"sale_create", nil, nil)["physkey"].(string)
	total := c1.sale(t, sbA+"sale_add_product", nil, map[string]any{"pid": 1001})["saletotal"]
	c1b := dialMux(t, l, "counter-1b", "", key, "")
	c1b.fails(t, sbA+"sale_add_payment", nil, map[string]any{"type": 1, "amount": total}, "not_found", pk, "in use on another connection", "name it in k")
	c1b.fails(t, sbA+"salesbuilder_complete", nil, nil, "not_found", pk, "in use on another connection")
	if s := c1.fetch(t, pk); s["phase"] != 0.0 || paymentsOf(t, c1, pk) != 0 {
		t.Fatalf("c1's sale after the other socket's refused k-less payment: phase %v, %d payments; want active, none", s["phase"], paymentsOf(t, c1, pk))
	}
	// c1 still rings its own sale up without k.
	c1.sale(t, sbA+"sale_add_payment", nil, map[string]any{"type": 1, "amount": total})
	if s := c1.sale(t, sbA+"salesbuilder_complete", nil, nil); s["physkey"] != pk || s["phase"] != 1.0 {
		t.Fatalf("c1's k-less completion: %v", s)
	}
}
