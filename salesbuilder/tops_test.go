package salesbuilder_test

import (
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/greenlane-pos/greenlane/protocol"
)

// TestTopSaleIsEachSockets: a change that leaves k out works on the sale
// its own socket last touched, not on the newest sale of its key: two
// sockets of one key (two tabs) each build their own order. A socket that
// has touched none falls back to the key's most recently changed active
// sale, but not while that sale is another open socket's; one whose sale
// has gone (parked) is refused and changes nothing.
func TestTopSaleIsEachSockets(t *testing.T) {
	var bClosed atomic.Bool
	a, b := tablet("tablet-1"), tablet("tablet-1")
	b.Session = "session-tablet-1-second-tab"
	l := newLane(t, func(o *Options) {
		o.SessionOpen = func(session string) bool { return session != b.Session || !bClosed.Load() }
	})
	fresh := tablet("tablet-1")
	fresh.Session = "session-tablet-1-reconnected"

	s1 := l.sale(a, "salesbuilder.sale_create", "", nil).Physkey
	s2 := l.sale(b, "salesbuilder.sale_create", "", nil).Physkey
	tests := []struct {
		name   string
		caller *protocol.Caller
		close  bool   // b's socket closes first
		want   string // "" for refused
	}{
		{"the first tab, after the second created a sale", a, false, s1},
		{"the second tab", b, false, s2},
		{"a new socket while the second tab, whose sale is the newest, is open", fresh, false, ""},
		{"a new socket once the second tab closed: its newest active sale", fresh, true, s2},
	}
	for _, tt := range tests {
		bClosed.Store(tt.close)
		v, err := l.call(tt.caller, "salesbuilder.sale_add_product", "", map[string]any{"pid": 1001}, "")
		if tt.want == "" {
			wantMessage(t, err, protocol.CodeNotFound, s2, "in use on another connection", "name it in k")
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if got := v.K; string(got) != fmt.Sprintf("%q", tt.want) {
			t.Errorf("%s: the line went to %s, want %s", tt.name, got, tt.want)
		}
	}
	bClosed.Store(false)
	// b parks its sale: its k-less change is refused, not moved to s1.
	l.sale(b, "salesbuilder.sale_park", s2, nil)
	_, err := l.call(b, "salesbuilder.sale_add_product", "", map[string]any{"pid": 1001}, "")
	wantMessage(t, err, protocol.CodeNotFound, s2, "is parked", "name the sale in k")
	if v := l.sale(a, "salesbuilder.sale_fetch", s1, nil); len(v.Lines) != 1 {
		t.Errorf("the first tab's sale holds %d lines, want 1", len(v.Lines))
	}
	if v := l.sale(a, "salesbuilder.sale_fetch", s2, nil); len(v.Lines) != 2 {
		t.Errorf("the second tab's sale holds %d lines, want 2 (its own and the reconnected socket's)", len(v.Lines))
	}
}

// TestTopSaleGoneIsRefused: once a socket's own sale is no longer its to
// change, every request without k (change or read, k "active" too) is
// refused saying what became of it, and no other sale of the key changes.
func TestTopSaleGoneIsRefused(t *testing.T) {
	tests := []struct {
		name string
		end  func(l *lane, till *protocol.Caller, k string)
		want []string
	}{
		{"completed", func(l *lane, till *protocol.Caller, k string) {
			l.sale(till, "salesbuilder.sale_add_payment", k, map[string]any{"type": 1, "amount": 20})
			l.sale(till, "salesbuilder.salesbuilder_complete", k, nil)
		}, []string{"was completed (sid 1)"}},
		{"cancelled", func(l *lane, till *protocol.Caller, k string) {
			l.sale(till, "salesbuilder.salesbuilder_cancel", k, nil)
		}, []string{"was cancelled"}},
		{"parked", func(l *lane, till *protocol.Caller, k string) {
			l.sale(till, "salesbuilder.sale_park", k, nil)
		}, []string{"is parked"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newLane(t)
			till := counter("counter-1")
			other := l.counterSale(till, map[string]any{"pid": 1020})
			k := l.counterSale(till, map[string]any{"pid": 1020})
			tt.end(l, till, k)
			for _, call := range []struct{ a, k string }{
				{"salesbuilder.sale_add_payment", ""},
				{"salesbuilder.sale_add_payment", "active"},
				{"salesbuilder.sale_add_product", ""},
				{"salesbuilder.salesbuilder_complete", ""},
				{"salesbuilder.get_sale", ""},
			} {
				var v any
				switch call.a {
				case "salesbuilder.sale_add_payment":
					v = map[string]any{"type": 1, "amount": 5.5}
				case "salesbuilder.sale_add_product":
					v = map[string]any{"pid": 1001}
				}
				_, err := l.call(till, call.a, call.k, v, "")
				wantMessage(t, err, protocol.CodeNotFound, append([]string{k, "name the sale in k"}, tt.want...)...)
			}
			if o := l.sale(till, "salesbuilder.sale_fetch", other, nil); len(o.Payments) != 0 || len(o.Lines) != 1 {
				t.Errorf("the key's other sale changed: %d payments, %d lines", len(o.Payments), len(o.Lines))
			}
		})
	}
}

// TestHTTPMoneyNamesTheSale: in HTTP mode a request has no top sale of its
// own, so a payment, reversal or completion without k is refused, while
// the same request naming the sale goes through.
func TestHTTPMoneyNamesTheSale(t *testing.T) {
	l := newLane(t)
	ws := counter("counter-1")
	k := l.counterSale(ws, map[string]any{"pid": 1020})
	web := counter("counter-1")
	web.Transport, web.Session = "http", "session-http-request"
	tests := []struct {
		a string
		v any
	}{
		{"salesbuilder.sale_add_payment", map[string]any{"type": 1, "amount": 20}},
		{"salesbuilder.sale_remove_payment", map[string]any{"seq": 1}},
		{"salesbuilder.salesbuilder_complete", nil},
	}
	for _, tt := range tests {
		_, err := l.call(web, tt.a, "", tt.v, "")
		wantMessage(t, err, protocol.CodeBadArgument, "k:", "over HTTP")
	}
	if v := l.sale(ws, "salesbuilder.sale_fetch", k, nil); len(v.Payments) != 0 {
		t.Fatalf("a refused k-less payment was taken: %v", v.Payments)
	}
	pay := map[string]any{"type": 1, "amount": 20}
	l.sale(web, "salesbuilder.sale_add_payment", k, pay)
	l.sale(web, "salesbuilder.sale_remove_payment", k, map[string]any{"seq": 1})
	l.sale(web, "salesbuilder.sale_add_payment", k, pay)
	if v := l.sale(web, "salesbuilder.salesbuilder_complete", k, nil); v.Phase != 1 {
		t.Fatalf("completing over HTTP with k: phase %d", v.Phase)
	}
}
