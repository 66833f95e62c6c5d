package integration

import (
	"encoding/json"
	"testing"

	"github.com/chromedp/chromedp"
)

// A customer display that opens (is switched on, or reloaded) while a sale
// is being rung up starts from that sale: the newest custdisp row it
// matches, when that row shows a sale still in progress (SPEC §6.2: every
// body is the whole current sale). And every event of a firehose carries
// the rt of its open (SPEC §1.1).

// openedWith opens a custdisp firehose without since on a new display
// socket and returns the events it sends before the reply to a call made
// right after the ack: all the open sent by itself.
func openedWith(t *testing.T, l *lane, key string, v map[string]any) []*packet {
	t.Helper()
	c := l.login("", key, custdisp)
	openFH(t, c, fhOpen("d", v, nil))
	c.send(map[string]any{"a": "fd1.customerdisplay.get_info", "rq": "info"})
	var evs []*packet
	for {
		p := c.next()
		if !p.isEvent() {
			if p.rpKey() != `"info"` || p.Error != nil {
				t.Fatalf("want the get_info reply, got %s", p.raw)
			}
			return evs
		}
		evs = append(evs, p)
	}
}

func TestFirehoseOpensOnTheSaleInProgress(t *testing.T) {
	alongside(t)
	l := startLane(t)
	keys := l.keysFor(keyRequest{"tablet-1", "presell"}, keyRequest{"tablet-2", "presell"},
		keyRequest{"counter-1", "counter"}, keyRequest{"display-1", "display"})
	dk := keys["display-1"]
	stayer := l.login("", dk, custdisp) // tablet-1's display, on from the start
	openFH(t, stayer, fhOpen("st", map[string]any{"event": "custdisp.sale", "tablet": "tablet-1"}, nil))
	t1 := l.login(presellQuery, keys["tablet-1"], "")
	t2 := l.login(presellQuery, keys["tablet-2"], "")
	counter := l.login("", keys["counter-1"], "")

	pk := sale(t, t1, sbA+"sale_create", nil, nil)["physkey"].(string)
	sale(t, t1, sbA+"sale_add_product", pk, map[string]any{"pid": 1006, "qty": 2})
	shown := nextEvents(t, stayer, "st", 2)[1] // what tablet-1's display shows now
	npk := sale(t, t2, sbA+"sale_create", nil, nil)["physkey"].(string)

	one := func(who string, evs []*packet, pk, sc string) *packet {
		t.Helper()
		if len(evs) != 1 {
			t.Fatalf("%s: %d events on open, want 1", who, len(evs))
		}
		v := evs[0].vmap(t)
		if v["salephyskey"] != pk || evs[0].SC != sc || v["status"] != "active" {
			t.Fatalf("%s: opened on %s, want %s of sale %s", who, evs[0].raw, sc, pk)
		}
		evs[0].mustSeq(t)
		return evs[0]
	}
	none := func(who string, evs []*packet) {
		t.Helper()
		if len(evs) != 0 {
			t.Fatalf("%s: opened on %s, want nothing (idle)", who, evs[0].raw)
		}
	}

	// Mid-sale: tablet-1's display shows exactly what the one on from the
	// start shows (the same row: sc, v and seq); a lane-wide one the newest
	// sale; one for a tablet with no sale, nothing.
	got := one("tablet-1 display", openedWith(t, l, dk, map[string]any{"event": "custdisp.sale", "tablet": "tablet-1"}),
		pk, "custdisp.sale.lines.add")
	if !samePayload(t, got, shown) || len(displayLines(got.vmap(t))) != 1 {
		t.Fatalf("tablet-1 display opened on\n%s\nwant what the live one shows\n%s", got.raw, shown.raw)
	}
	one("lane-wide display", openedWith(t, l, dk, map[string]any{"event": "custdisp.sale"}), npk, "custdisp.sale.add")
	none("tablet-3 display", openedWith(t, l, dk, map[string]any{"event": "custdisp.sale", "tablet": "tablet-3"}))

	// Paid and completed at the counter: the thank-you is over with it.
	parked := sale(t, t1, sbA+"sale_park", pk, nil)
	sale(t, counter, presellA+"recall", nil, map[string]any{"ticket": parked["ticket"]})
	sale(t, counter, sbA+"sale_add_payment", pk, map[string]any{"type": 1, "amount": 20})
	sale(t, counter, sbA+"salesbuilder_complete", pk, nil)
	none("tablet-1 display after the sale", openedWith(t, l, dk, map[string]any{"event": "custdisp.sale", "tablet": "tablet-1"}))
	// The lane's newest row is that idle: a lane-wide display that had been
	// on shows idle, tablet-2's sale started before notwithstanding.
	none("lane-wide display after the sale", openedWith(t, l, dk, map[string]any{"event": "custdisp.sale"}))
	one("tablet-2 display", openedWith(t, l, dk, map[string]any{"event": "custdisp.sale", "tablet": "tablet-2"}), npk, "custdisp.sale.add")
}

// TestFirehoseEventsCarryRT: one display socket carries three firehoses,
// two tagged with rt: the event each opens on (the sale in progress, or a
// replay from since) and the live ones after carry its open's rt, the
// untagged one none.
func TestFirehoseEventsCarryRT(t *testing.T) {
	alongside(t)
	l := startLane(t)
	keys := l.keysFor(keyRequest{"tablet-1", "presell"}, keyRequest{"display-1", "display"})
	t1 := l.login(presellQuery, keys["tablet-1"], "")
	pk := sale(t, t1, sbA+"sale_create", nil, nil)["physkey"].(string)

	d := l.login("", keys["display-1"], custdisp)
	first := map[string]any{"event": "custdisp.sale"}
	a := fhOpen("a", first, nil)
	a["rt"] = "tabZ"
	if r := d.call(a); r.SC != "firehose.status" || string(r.RT) != `"tabZ"` {
		t.Fatalf("ack %s, want firehose.status with rt tabZ", r.raw)
	}
	start := nextEvent(t, d, "a")
	openFH(t, d, fhOpen("b", first, nil))
	nextEvent(t, d, "b")
	c := fhOpen("c", map[string]any{"event": "custdisp.sale", "since": start.mustSeq(t) - 1}, nil)
	c["rt"] = map[string]any{"tab": 3}
	if r := d.call(c); r.SC != "firehose.status" || string(r.RT) != `{"tab":3}` {
		t.Fatalf("ack %s, want firehose.status with rt {\"tab\":3}", r.raw)
	}
	replayed := nextEvent(t, d, "c")

	sale(t, t1, sbA+"sale_add_product", pk, map[string]any{"pid": 1006})
	live := map[string]*packet{}
	for range 3 {
		p := d.next()
		if !p.isEvent() {
			t.Fatalf("want an event, got %s", p.raw)
		}
		live[p.rpKey()] = p
	}
	for _, tc := range []struct {
		name string
		p    *packet
		rt   string // "" = none
	}{
		{"the sale in progress", start, `"tabZ"`},
		{"live on a", live[`"a"`], `"tabZ"`},
		{"live on b", live[`"b"`], ""},
		{"replayed", replayed, `{"tab":3}`},
		{"live on c", live[`"c"`], `{"tab":3}`},
	} {
		if tc.p == nil {
			t.Fatalf("%s: no event (live: %v)", tc.name, live)
		}
		var f map[string]json.RawMessage
		if err := json.Unmarshal(tc.p.raw, &f); err != nil {
			t.Fatal(err)
		}
		if rt, ok := f["rt"]; string(rt) != tc.rt || ok != (tc.rt != "") {
			t.Errorf("%s: %s, want rt %q", tc.name, tc.p.raw, tc.rt)
		}
	}
}

// TestBrowserDisplayOpensMidSale: the display page loaded while a tablet
// rings up a sale shows the sale's lines at once, then follows it.
func TestBrowserDisplayOpensMidSale(t *testing.T) {
	alongside(t)
	l := startLane(t)
	keys := l.keysFor(keyRequest{"tablet-1", "presell"}, keyRequest{"display-1", "display"})
	tab := l.login(presellQuery, keys["tablet-1"], "")
	pk := sale(t, tab, sbA+"sale_create", nil, nil)["physkey"].(string)
	sale(t, tab, sbA+"sale_add_product", pk, map[string]any{"pid": 1006, "qty": 2})

	ctx := newBrowser(t)
	browserRun(t, ctx,
		chromedp.Navigate("http://"+l.addr+"/display/?key="+keys["display-1"]+"&tablet=tablet-1"),
		waitText("#lines", "Hot Chocolate"), waitText("#total", "$11.00"),
	)
	sale(t, tab, sbA+"sale_add_product", pk, map[string]any{"pid": 1004, "qty": 1})
	browserRun(t, ctx, waitText("#lines", "Long Black"), waitText("#total", "$15.80"))
	browserLog(ctx).wantNoErrors(t)
}
