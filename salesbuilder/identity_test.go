package salesbuilder_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/greenlane-pos/greenlane/lanedb"
	"github.com/greenlane-pos/greenlane/protocol"
)

// twoKeys is one presell socket that logged in with a tablet key and then a
// counter key (SPEC §4.1: several logins add up).
func twoKeys(tab, till string) protocol.Caller {
	c := protocol.Caller{Purpose: protocol.PurposePresell, Transport: "ws", Session: "session-" + tab + "+" + till}
	c = c.WithLogin(protocol.Login{KeyID: "id-" + tab, KeyName: tab, Scopes: []protocol.Scope{protocol.ScopePresell}})
	return c.WithLogin(protocol.Login{KeyID: "id-" + till, KeyName: till, Scopes: []protocol.Scope{protocol.ScopeCounter}})
}

// admit runs endpoint a as the server does: through the access check, which
// picks the key the call acts as.
func (l *lane) admit(c protocol.Caller, a, k string, v any) (*protocol.Result, error) {
	l.t.Helper()
	req := &protocol.Request{A: a}
	if k != "" {
		req.K, _ = json.Marshal(k)
	}
	if v != nil {
		req.V, _ = json.Marshal(v)
	}
	ep, err := l.router.Lookup(a)
	if err != nil {
		return nil, err
	}
	call, err := ep.Admit(req, c)
	if err != nil {
		return nil, err
	}
	return ep.Handler(context.Background(), call)
}

// lastActor is the actor of the newest journal row of family and event for
// the sale.
func (l *lane) lastActor(physkey, family, event string) string {
	l.t.Helper()
	rows, err := lanedb.JournalAfter(context.Background(), l.db.Read, 0, 10000)
	if err != nil {
		l.t.Fatal(err)
	}
	actor := ""
	for _, r := range rows {
		if r.Physkey == physkey && r.Family == family && r.Event == event {
			actor = r.Actor
		}
	}
	return actor
}

func TestTwoKeySessionActsAsTheKeyWhoseScopeAllowed(t *testing.T) {
	l := newLane(t)
	other := tablet("tablet-2")
	both := twoKeys("tablet-1", "till-1")

	t.Run("unpark of another tablet's presell is the counter's claim", func(t *testing.T) {
		k := l.submitted(other, 1001).Physkey
		if _, err := l.admit(both, "salesbuilder.sale_unpark", k, nil); err != nil {
			t.Fatal(err)
		}
		sale, err := lanedb.GetSale(context.Background(), l.db.Read, k)
		if err != nil {
			t.Fatal(err)
		}
		if sale.ClaimState.Name.String != "till-1" || sale.HolderName != "till-1" || sale.CreatedBy != "tablet-2" {
			t.Fatalf("claim %q holder %q created_by %q, want the claim and holder till-1, created by tablet-2",
				sale.ClaimState.Name.String, sale.HolderName, sale.CreatedBy)
		}
		if got := l.lastActor(k, familyPresell, "claimed"); got != "till-1" {
			t.Fatalf("claimed by %q in the journal, want till-1", got)
		}
	})

	t.Run("cancelling another tablet's sale is the admin's void, not the counter's", func(t *testing.T) {
		k := l.sale(other, "salesbuilder.sale_create", "", nil).Physkey
		// A counter scope does not void a sale another key is building.
		_, err := l.admit(both, "salesbuilder.salesbuilder_cancel", k, nil)
		wantCode(t, err, protocol.CodeClaimed)
		withAdmin := twoKeys("tablet-1", "till-1")
		withAdmin = withAdmin.WithLogin(protocol.Login{KeyID: "id-admin-1", KeyName: "admin-1", Scopes: []protocol.Scope{protocol.ScopeAdmin}})
		if _, err := l.admit(withAdmin, "salesbuilder.salesbuilder_cancel", k, nil); err != nil {
			t.Fatal(err)
		}
		sale, err := lanedb.GetSale(context.Background(), l.db.Read, k)
		if err != nil {
			t.Fatal(err)
		}
		if sale.VoidedBy.String != "admin-1" {
			t.Fatalf("voided_by %q, want admin-1", sale.VoidedBy.String)
		}
		if got := l.lastActor(k, familyPresell, "voided"); got != "admin-1" {
			t.Fatalf("voided by %q in the journal, want admin-1", got)
		}
	})

	t.Run("building is the tablet's, a price override the counter's", func(t *testing.T) {
		res, err := l.admit(both, "salesbuilder.sale_create", "", nil)
		if err != nil {
			t.Fatal(err)
		}
		k := viewOf(t, res).Physkey
		if _, err := l.admit(both, "salesbuilder.sale_add_product", k, map[string]any{"pid": 1001}); err != nil {
			t.Fatal(err)
		}
		if got := l.lastActor(k, familyCustdisp, evLinesAdd); got != "tablet-1" {
			t.Fatalf("line added by %q, want tablet-1", got)
		}
		if _, err := l.admit(both, "salesbuilder.sale_add_product", k, map[string]any{"pid": 1001, "price": 1}); err != nil {
			t.Fatal(err)
		}
		if got := l.lastActor(k, familyCustdisp, evLinesAdd); got != "till-1" {
			t.Fatalf("line priced by hand added by %q, want till-1", got)
		}
		if got := l.lastActor(k, familyPresell, "created"); got != "tablet-1" {
			t.Fatalf("created by %q, want tablet-1", got)
		}
		// Both keys' sales are the session's: a payment without k finds
		// the top sale the tablet key holds.
		if _, err := l.admit(both, "salesbuilder.sale_add_payment", "", map[string]any{"type": 1, "amount": 20}); err != nil {
			t.Fatal(err)
		}
		if got := l.lastActor(k, familyCustdisp, evPaymentsAdd); got != "till-1" {
			t.Fatalf("payment by %q, want till-1", got)
		}
	})
}

func TestTabletSeesOnlyItsOwnSales(t *testing.T) {
	l := newLane(t)
	tab, other, till := tablet("tablet-1"), tablet("tablet-2"), counter("counter-1")
	k := l.sale(tab, "salesbuilder.sale_create", "", nil).Physkey
	l.sale(tab, "salesbuilder.sale_add_product", k, map[string]any{"pid": 1001})
	both := twoKeys("tablet-2", "counter-2")
	reads := []struct {
		a string
		v any
	}{
		{"salesbuilder.sale_fetch", nil},
		{"salesbuilder.get_sale", nil},
		{"salesbuilder.sale_get_price", map[string]any{"pid": 1001}},
	}
	callers := []struct {
		name   string
		caller protocol.Caller
		sees   bool
	}{
		{"its tablet", *tab, true},
		{"another tablet", *other, false},
		{"a counter", *till, true},
		{"another tablet with a counter key too", both, true},
	}
	for _, c := range callers {
		for _, r := range reads {
			t.Run(c.name+"/"+r.a, func(t *testing.T) {
				res, err := l.admit(c.caller, r.a, k, r.v)
				if !c.sees {
					wantCode(t, err, protocol.CodeNotFound)
					return
				}
				if err != nil {
					t.Fatalf("%s: %v", r.a, err)
				}
				if string(res.K) != `"`+k+`"` {
					t.Fatalf("%s answered k %s, want %s", r.a, res.K, k)
				}
			})
		}
	}
}
