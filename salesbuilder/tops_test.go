package salesbuilder_test

import (
	"testing"

	"github.com/greenlane-pos/greenlane/protocol"
)

// TestTopSaleIsEachSockets: a change that leaves k out works on the sale
// its own socket last touched, not on the newest sale of its key: two
// sockets of one key (two tabs) each build their own order. A socket that
// has touched none, and one whose sale has gone (parked), fall back to the
// key's most recently changed active sale.
func TestTopSaleIsEachSockets(t *testing.T) {
	l := newLane(t)
	a, b := tablet("tablet-1"), tablet("tablet-1")
	b.Session = "session-tablet-1-second-tab"
	fresh := tablet("tablet-1")
	fresh.Session = "session-tablet-1-reconnected"

	s1 := l.sale(a, "salesbuilder.sale_create", "", nil).Physkey
	s2 := l.sale(b, "salesbuilder.sale_create", "", nil).Physkey
	tests := []struct {
		name   string
		caller *protocol.Caller
		want   string
	}{
		{"the first tab, after the second created a sale", a, s1},
		{"the second tab", b, s2},
		{"a new socket of the key: its newest active sale", fresh, s2},
	}
	for _, tt := range tests {
		if got := l.sale(tt.caller, "salesbuilder.sale_add_product", "", map[string]any{"pid": 1001}).Physkey; got != tt.want {
			t.Errorf("%s: the line went to %s, want %s", tt.name, got, tt.want)
		}
	}
	// b parks its sale: its k-less change falls back to the key's active one.
	l.sale(b, "salesbuilder.sale_park", s2, nil)
	if got := l.sale(b, "salesbuilder.sale_add_product", "", map[string]any{"pid": 1001}).Physkey; got != s1 {
		t.Errorf("after parking, the second tab's line went to %s, want the key's active sale %s", got, s1)
	}
	if v := l.sale(a, "salesbuilder.sale_fetch", s1, nil); len(v.Lines) != 2 {
		t.Errorf("the first tab's sale holds %d lines, want 2", len(v.Lines))
	}
}
