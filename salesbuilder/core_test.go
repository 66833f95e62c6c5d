package salesbuilder_test

import (
	"context"
	"testing"

	"github.com/greenlane-pos/greenlane/lanedb"
	"github.com/greenlane-pos/greenlane/protocol"
	"github.com/greenlane-pos/greenlane/salesbuilder"
)

// TestRingUpWithTheTypedCore: a sale rung up, paid and completed by
// calling the core's methods with plain values, no JSON and no endpoint
// names: a tablet builds and parks a presell (which gets its ticket from
// the presell workflow), a counter claims it, tenders cash and completes
// it, and the change is what was tendered above the total.
func TestRingUpWithTheTypedCore(t *testing.T) {
	l := newLane(t)
	ctx := context.Background()
	tab, till := tablet("tablet-1"), counter("till-1")
	till.Transport = "ws"
	sales := l.svc.Service
	do := func(name string, fn func(tx *lanedb.Tx) error) {
		t.Helper()
		if err := sales.Do(ctx, func(ctx context.Context, tx *lanedb.Tx) error { return fn(tx) }); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}

	var physkey string
	do("create", func(tx *lanedb.Tx) error {
		v, err := sales.Create(ctx, tx, tab, "")
		if err == nil {
			physkey = v.Physkey
		}
		return err
	})
	steps := []struct {
		name      string
		caller    *protocol.Caller
		change    func(tx *lanedb.Tx, c *protocol.Caller) (*salesbuilder.SaleView, error)
		wantTotal protocol.Money
		wantPhase int
	}{
		{"two FW by PLU", tab, func(tx *lanedb.Tx, c *protocol.Caller) (*salesbuilder.SaleView, error) {
			return sales.AddProduct(ctx, tx, c, physkey, salesbuilder.Item{PLU: "FW", Qty: 2})
		}, 1100, lanedb.PhaseActive},
		{"one more line by pid", tab, func(tx *lanedb.Tx, c *protocol.Caller) (*salesbuilder.SaleView, error) {
			return sales.AddProduct(ctx, tx, c, physkey, salesbuilder.Item{PID: 1001, Qty: 1})
		}, 1650, lanedb.PhaseActive},
		{"the first line's qty to 1", tab, func(tx *lanedb.Tx, c *protocol.Caller) (*salesbuilder.SaleView, error) {
			one := int64(1)
			return sales.EditLine(ctx, tx, c, physkey, 1, &one, nil)
		}, 1100, lanedb.PhaseActive},
		{"park: submitted", tab, func(tx *lanedb.Tx, c *protocol.Caller) (*salesbuilder.SaleView, error) {
			return sales.Park(ctx, tx, c, physkey)
		}, 1100, lanedb.PhaseParked},
		{"the counter takes it", till, func(tx *lanedb.Tx, c *protocol.Caller) (*salesbuilder.SaleView, error) {
			return sales.Unpark(ctx, tx, c, physkey, false)
		}, 1100, lanedb.PhaseActive},
		{"twenty dollars cash", till, func(tx *lanedb.Tx, c *protocol.Caller) (*salesbuilder.SaleView, error) {
			return sales.AddPayment(ctx, tx, c, physkey, 1, 2000)
		}, 1100, lanedb.PhaseActive},
	}
	for _, st := range steps {
		var v *salesbuilder.SaleView
		do(st.name, func(tx *lanedb.Tx) (err error) {
			v, err = st.change(tx, st.caller)
			return err
		})
		if v.SaleTotal != st.wantTotal || v.Phase != st.wantPhase {
			t.Fatalf("%s: total %s phase %d, want %s phase %d", st.name, v.SaleTotal, v.Phase, st.wantTotal, st.wantPhase)
		}
		if st.name == "park: submitted" && (v.Ticket == nil || v.TicketWord == nil) {
			t.Fatalf("a parked presell got no ticket: %+v", v)
		}
	}
	var done *salesbuilder.CompletedView
	do("complete", func(tx *lanedb.Tx) (err error) {
		done, err = sales.Complete(ctx, tx, till, physkey)
		return err
	})
	if done.Phase != lanedb.PhaseCompleted || done.SID == nil || done.Change != 900 {
		t.Fatalf("completed: phase %d sid %v change %s, want phase %d, a sid, change 9.00", done.Phase, done.SID, done.Change, lanedb.PhaseCompleted)
	}
}
