package integration

import (
	"fmt"
	"slices"
	"testing"
)

// TestReplayEndsIdleLikeLive: the idle status that follows a finished sale
// (completed or voided) is a journal row, written in the transaction that
// finished the sale. A display that replays the journal after a reconnect
// gets it exactly as a live display did, seq and all, and a live display
// gets it once.
func TestReplayEndsIdleLikeLive(t *testing.T) {
	l := startLane(t)
	keys := l.keysFor(keyRequest{"tablet-1", "presell"}, keyRequest{"counter-1", "counter"}, keyRequest{"display-1", "display"})
	live := l.login("", keys["display-1"], custdisp)
	openFH(t, live, fhOpen("live", map[string]any{"event": "custdisp.sale"}, nil))
	tab := l.login(presellQuery, keys["tablet-1"], "")
	counter := l.login("", keys["counter-1"], "")

	// The replay starts after this sale's first event.
	sale(t, tab, sbA+"sale_create", nil, nil)
	since := nextEvent(t, live, "live").mustSeq(t)

	// One sale paid and completed at the counter, one cancelled by the
	// tablet, then one more change after both.
	paid := sale(t, tab, sbA+"sale_create", nil, nil)["physkey"].(string)
	sale(t, tab, sbA+"sale_add_product", paid, map[string]any{"pid": 1001})
	ticket := sale(t, tab, sbA+"sale_park", paid, nil)["ticket"]
	total := sale(t, counter, "fd1.presell.recall", nil, map[string]any{"ticket": ticket})["saletotal"]
	sale(t, counter, sbA+"sale_add_payment", paid, map[string]any{"type": 1, "amount": total})
	sale(t, counter, sbA+"salesbuilder_complete", paid, nil)
	voided := sale(t, tab, sbA+"sale_create", nil, nil)["physkey"].(string)
	sale(t, tab, sbA+"sale_add_product", voided, map[string]any{"pid": 1002})
	sale(t, tab, sbA+"sale_cancel", voided, nil)
	after := sale(t, tab, sbA+"sale_create", nil, nil)["physkey"].(string)

	names := map[string]string{paid: "paid", voided: "voided", after: "after"}
	describe := func(evs []*packet) []string {
		var out []string
		for _, p := range evs {
			v := p.vmap(t)
			out = append(out, fmt.Sprintf("%s %s %v", names[fmt.Sprint(v["salephyskey"])], p.SC, v["status"]))
		}
		return out
	}
	want := []string{
		"paid custdisp.sale.add active", "paid custdisp.sale.lines.add active", "paid custdisp.sale.status parked",
		"paid custdisp.sale.status active", "paid custdisp.sale.payments.add active",
		"paid custdisp.sale.status complete", "paid custdisp.sale.status idle",
		"voided custdisp.sale.add active", "voided custdisp.sale.lines.add active",
		"voided custdisp.sale.status void", "voided custdisp.sale.status idle",
		"after custdisp.sale.add active",
	}
	got := nextEvents(t, live, "live", len(want))
	if d := describe(got); !slices.Equal(d, want) {
		t.Fatalf("live display saw\n%q\nwant\n%q", d, want)
	}
	// Each idle is the row right after the status that finished its sale,
	// and says the display holds nothing: no lines, no payments, total 0,
	// at the finished sale's time.
	last := since
	for i, p := range got {
		seq := p.mustSeq(t)
		if seq <= last {
			t.Fatalf("live event %d has seq %d after %d", i, seq, last)
		}
		v := p.vmap(t)
		if v["status"] == "idle" {
			fin := got[i-1].vmap(t)
			src, _ := v["source"].(map[string]any)
			if seq != last+1 || !equalJSON(v["lines"], []any{}) || !equalJSON(v["payments"], []any{}) || v["saletotal"] != 0.0 ||
				v["salephyskey"] != fin["salephyskey"] || v["datetimelocal"] != fin["datetimelocal"] ||
				!equalJSON(v["source"], fin["source"]) || src["tablet"] != "tablet-1" {
				t.Fatalf("idle status %s\nafter %s\nwant the next seq (%d), no lines or payments, total 0, the sale's source and time", p.raw, got[i-1].raw, last+1)
			}
		}
		last = seq
	}

	re := l.login("", keys["display-1"], custdisp)
	ack := openFH(t, re, fhOpen("re", map[string]any{"event": "custdisp.sale", "since": since}, nil))
	if ack["replayed"] != float64(len(want)) || ack["replay_truncated"] != false {
		t.Fatalf("replay ack %v, want %d replayed, not truncated", ack, len(want))
	}
	for i, p := range nextEvents(t, re, "re", len(want)) {
		if !samePayload(t, p, got[i]) {
			t.Fatalf("replayed event %d is\n%s\nwant (as the live display saw it)\n%s", i, p.raw, got[i].raw)
		}
	}
}
