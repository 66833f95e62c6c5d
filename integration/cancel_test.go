package integration

import (
	"net/url"
	"testing"
)

// TestCancelChecksHolderAndClaim: voiding a sale is checked as paying it
// is. A counter key that does not hold a sale (another counter's, a
// tablet's being built, a presell nobody recalled) is refused a void with
// the very error a payment gets, over a socket and over HTTP; the holder,
// the tablet that made a presell, a counter that recalled it and the admin
// key still void.
func TestCancelChecksHolderAndClaim(t *testing.T) {
	alongside(t)
	l := startLane(t)
	tabKey := l.newKey("tablet-1", "presell")
	cks := l.newKeys("counter", "counter", 2)
	tab := dialMux(t, l, "tablet-1", presellQuery, tabKey, "")
	c1 := dialMux(t, l, "counter-1", "", cks[0], "")
	c2 := dialMux(t, l, "counter-2", "", cks[1], "")
	admin := dialMux(t, l, "admin", "", l.key, "")

	counterSale := c1.sale(t, sbA+"sale_create", nil, nil)["physkey"].(string)
	c1.sale(t, sbA+"sale_add_product", counterSale, map[string]any{"pid": 1001})
	building := tab.sale(t, sbA+"sale_create", nil, nil)["physkey"].(string)
	tab.sale(t, sbA+"sale_add_product", building, map[string]any{"pid": 1002})
	queued := presellOn(t, tab, 0, soldLine{1003, 1})["physkey"].(string)

	refused := []struct {
		name, k, code, mention string
	}{
		{"another counter's sale", counterSale, "claimed", `held by "counter-1", not by this key`},
		{"a tablet's sale being built", building, "claimed", `held by "tablet-1", not by this key`},
		{"a presell nobody recalled", queued, "conflict", "changes again only once a counter recalls it"},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			before := c2.fetch(t, tc.k)
			paid := c2.fails(t, sbA+"sale_add_payment", tc.k, map[string]any{"type": 1, "amount": 1}, tc.code, tc.mention)
			ws := c2.fails(t, sbA+"salesbuilder_cancel", tc.k, map[string]any{"reason": "not mine"}, tc.code, tc.mention)
			_, http := l.httpCall("GET", "/fd1/salesbuilder/salesbuilder_cancel?k="+url.QueryEscape(tc.k), map[string]string{"x-api-key": cks[1]}, "")
			http.wantError(t, tc.code)
			for how, p := range map[string]*packet{"over a socket": ws, "over HTTP": http} {
				if p.Error.Message != paid.Error.Message {
					t.Errorf("cancel %s says %q; a payment is refused with %q", how, p.Error.Message, paid.Error.Message)
				}
			}
			if after := c2.fetch(t, tc.k); !equalJSON(after, before) {
				t.Fatalf("a refused cancel changed the sale:\n%v\n%v", before, after)
			}
		})
	}

	t.Run("who still voids", func(t *testing.T) {
		voids := []struct {
			name string
			who  *muxSocket
			k    string
			pre  func()
		}{
			{"the holder, its own sale", c1, counterSale, nil},
			{"a tablet, its own sale being built", tab, building, nil},
			{"a counter, a presell it recalled", c2, queued, func() { c2.sale(t, presellA+"recall", queued, nil) }},
			{"the tablet, its presell in the queue", tab, presellOn(t, tab, 0, soldLine{1004, 1})["physkey"].(string), nil},
			{"the admin key, a presell in the queue", admin, presellOn(t, tab, 0, soldLine{1005, 1})["physkey"].(string), nil},
			{"the admin key, a counter's sale", admin, c1.sale(t, sbA+"sale_create", nil, nil)["physkey"].(string), nil},
		}
		for _, v := range voids {
			if v.pre != nil {
				v.pre()
			}
			if s := v.who.sale(t, sbA+"salesbuilder_cancel", v.k, map[string]any{"reason": "test"}); s["phase"] != 10000.0 {
				t.Errorf("%s: cancel left %v", v.name, s)
			}
		}
	})
}
