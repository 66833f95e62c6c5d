package salesbuilder_test

import (
	"context"
	"testing"
	"time"

	"github.com/greenlane-pos/greenlane/lanedb"
	"github.com/greenlane-pos/greenlane/salesbuilder"
)

// TestCustDispInProgress: the rows a sale's life journals for displays,
// each judged as a display opening after it would need: the sale while it
// is built, parked or paid; nothing once it is complete or void (the
// finishing row and the idle after it).
func TestCustDispInProgress(t *testing.T) {
	l := newLane(t)
	tab, till := tablet("tablet-1"), counter("counter-1")
	var k string
	steps := []struct {
		name string
		do   func()
		want []bool // the custdisp rows the step journals, in order
	}{
		{"create", func() { k = l.sale(tab, "salesbuilder.sale_create", "", nil).Physkey }, []bool{true}},
		{"add a line", func() { l.sale(tab, "salesbuilder.sale_add_product", k, map[string]any{"pid": 1001}) }, []bool{true}},
		{"park", func() { l.sale(tab, "salesbuilder.sale_park", k, nil) }, []bool{true}},
		{"counter unparks", func() { l.sale(till, "salesbuilder.sale_unpark", k, nil) }, []bool{true}},
		{"pay", func() { l.sale(till, "salesbuilder.sale_add_payment", k, map[string]any{"type": 1, "amount": 10}) }, []bool{true}},
		{"complete", func() {
			if _, err := l.call(till, "salesbuilder.salesbuilder_complete", k, nil, ""); err != nil {
				t.Fatal(err)
			}
		}, []bool{false, false}},
		{"another sale", func() { k = l.sale(tab, "salesbuilder.sale_create", "", nil).Physkey }, []bool{true}},
		{"void it", func() { l.sale(tab, "salesbuilder.salesbuilder_cancel", k, nil) }, []bool{false, false}},
	}
	var seen int64
	for _, st := range steps {
		st.do()
		rows, err := lanedb.JournalAfter(context.Background(), l.db.Read, seen, 100)
		if err != nil {
			t.Fatal(err)
		}
		var got []bool
		for _, r := range rows {
			seen = r.Seq
			if r.Family == salesbuilder.FamilyCustdisp {
				got = append(got, salesbuilder.CustDispInProgress(r))
			}
		}
		if len(got) != len(st.want) {
			t.Fatalf("%s: %d custdisp rows, want %d", st.name, len(got), len(st.want))
		}
		for i := range got {
			if got[i] != st.want[i] {
				t.Fatalf("%s: row %d in progress %v, want %v (%v)", st.name, i, got[i], st.want[i], got)
			}
		}
	}
}

// TestCustDispCurrent: a display opening now starts with a sale being
// built however long ago it last changed, and with a parked one only
// within ParkedShownFor of its parking: an order left waiting at the
// counter for longer must not greet the next customer.
func TestCustDispCurrent(t *testing.T) {
	now := time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)
	current := salesbuilder.CustDispCurrent(func() time.Time { return now })
	row := func(status string, ago time.Duration) lanedb.JournalEntry {
		return lanedb.JournalEntry{AtUTC: now.Add(-ago).Format(lanedb.DateTime), Family: salesbuilder.FamilyCustdisp,
			Detail: `{"status":"` + status + `","lines":[]}`}
	}
	for _, tt := range []struct {
		name string
		r    lanedb.JournalEntry
		want bool
	}{
		{"active, just now", row("active", 0), true},
		{"active, an hour ago", row("active", time.Hour), true},
		{"parked, 30 s ago", row("parked", 30*time.Second), true},
		{"parked, a minute ago", row("parked", salesbuilder.ParkedShownFor), true},
		{"parked, 61 s ago", row("parked", salesbuilder.ParkedShownFor+time.Second), false},
		{"complete, just now", row("complete", 0), false},
		{"idle", row("idle", 0), false},
		{"unreadable time", lanedb.JournalEntry{AtUTC: "yesterday", Detail: `{"status":"parked"}`}, false},
	} {
		if got := current(tt.r); got != tt.want {
			t.Errorf("%s: current %v, want %v", tt.name, got, tt.want)
		}
	}
}
