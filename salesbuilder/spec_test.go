package salesbuilder_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/greenlane-pos/greenlane/protocol"
)

// A line added through FD1 records how it came (SPEC §9.2 linesource): the
// client's own code when it gives a listed one, else 10, "API call".
func TestLineSourceDefaultsToAPICall(t *testing.T) {
	l := newLane(t)
	tab := tablet("tablet-1")
	k := l.sale(tab, "salesbuilder.sale_create", "", nil).Physkey
	tests := []struct {
		name string
		v    map[string]any
		want int64 // 0: refused with bad_argument
	}{
		{"none given", map[string]any{"pid": 1001}, 10},
		{"null is none", map[string]any{"pid": 1001, "linesource": nil}, 10},
		{"zero is not a code", map[string]any{"pid": 1001, "linesource": 0}, 0},
		{"scan", map[string]any{"pid": 1001, "linesource": 1}, 1},
		{"lookup", map[string]any{"pid": 1001, "linesource": 3}, 3},
		{"voice", map[string]any{"pid": 1001, "linesource": 14}, 14},
		{"not a listed code", map[string]any{"pid": 1001, "linesource": 5}, 0},
		{"too big", map[string]any{"pid": 1001, "linesource": 99}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := l.call(tab, "salesbuilder.sale_add_product", k, tt.v, "")
			if tt.want == 0 {
				wantCode(t, err, protocol.CodeBadArgument)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			lines := viewOf(t, res).Lines
			if got := lines[len(lines)-1].LineSource; got != tt.want {
				t.Fatalf("linesource %d, want %d", got, tt.want)
			}
		})
	}
}

// A claim's end reads as the staff's clock (SPEC §9: local store time):
// the demo lane is in Pacific/Auckland and the test clock is 09:30 UTC,
// 22:30 there, with a two-minute lease. It says how long first: the clock
// alone is ambiguous in the hour repeated when daylight saving ends.
func TestClaimMessagesShowTheStoreClock(t *testing.T) {
	l := newLane(t)
	tab, till1, till2 := tablet("tablet-1"), counter("counter-1"), counter("counter-2")
	k := l.submitted(tab, 1001).Physkey
	l.sale(till1, "salesbuilder.sale_unpark", k, nil)

	_, err := l.call(till2, "salesbuilder.sale_unpark", k, nil, "")
	wantCode(t, err, protocol.CodeClaimed)
	if msg := err.Error(); !strings.Contains(msg, `held by "counter-1" for 2 more min (until 22:32)`) || strings.Contains(msg, "Z") {
		t.Fatalf("claimed message %q, want the time left and the store's clock (for 2 more min (until 22:32)), no UTC stamp", msg)
	}

	l.advance(3 * time.Minute)
	_, err = l.call(till1, "salesbuilder.sale_add_product", k, map[string]any{"pid": 1001}, "")
	wantCode(t, err, protocol.CodeClaimLost)
	if msg := err.Error(); !strings.Contains(msg, "lapsed 1 min ago (at 22:32)") {
		t.Fatalf("claim_lost message %q, want lapsed 1 min ago (at 22:32)", msg)
	}
}

// TestChangesRefuseUnknownFields: every endpoint that changes a sale or a
// presell refuses a v field it does not take, naming it and the fields it
// takes, and leaves the sale as it was; a read ignores one.
func TestChangesRefuseUnknownFields(t *testing.T) {
	l := newLane(t)
	tab, till := tablet("tablet-1"), counter("counter-1")
	k := l.sale(tab, "salesbuilder.sale_create", "", nil).Physkey
	l.sale(tab, "salesbuilder.sale_add_product", k, map[string]any{"pid": 1001})
	parked := l.submitted(tab, 1001).Physkey
	l.sale(till, "fd1.presell.recall", parked, nil)
	tests := []struct {
		who      *protocol.Caller
		a, k     string
		v        map[string]any
		bad      string // the field the message must name
		mentions string // a field the endpoint takes, or "no v fields"
	}{
		{tab, "salesbuilder.sale_create", "", map[string]any{"physkye": "x"}, "physkye", "physkey"},
		{tab, "salesbuilder.sale_add_product", k, map[string]any{"plu": "FW", "qyt": 3}, "qyt", "qty"},
		{tab, "salesbuilder.salesbuilder_add_product", k, map[string]any{"pid": 1001, "quantity": 3}, "quantity", "qty"},
		{tab, "salesbuilder.sale_set_customer", k, map[string]any{"cid": 1, "foo": 1}, "foo", "physkeycust"},
		{tab, "salesbuilder.sale_edit_line", k, map[string]any{"seqnce": 1, "qty": 2, "prcie": 1}, "prcie", "price"},
		{tab, "salesbuilder.sale_remove_line", k, map[string]any{"seqnce": 1, "all": true}, "all", "seqnce"},
		{till, "salesbuilder.sale_add_payment", parked, map[string]any{"type": 1, "amount": 5, "tip": 5}, "tip", "amount"},
		{till, "salesbuilder.sale_remove_payment", parked, map[string]any{"seq": 1, "x": 1}, "x", "seq"},
		{tab, "salesbuilder.sale_park", k, map[string]any{"ticket": 5}, "ticket", "no v fields"},
		{till, "salesbuilder.sale_unpark", k, map[string]any{"forse": true}, "forse", "force"},
		{till, "salesbuilder.salesbuilder_complete", parked, map[string]any{"cash": 5}, "cash", "no v fields"},
		{tab, "salesbuilder.salesbuilder_cancel", k, map[string]any{"reson": "x"}, "reson", "reason"},
		{till, "fd1.presell.recall", "", map[string]any{"tickt": 1}, "tickt", "ticket"},
		{till, "fd1.presell.heartbeat", parked, map[string]any{"lease": 60}, "lease", "no v fields"},
		{till, "fd1.presell.release", parked, map[string]any{"reason": "x"}, "reason", "no v fields"},
		{till, "fd1.presell.accept_prices", parked, map[string]any{"all": true}, "all", "no v fields"},
	}
	for _, tt := range tests {
		t.Run(tt.a, func(t *testing.T) {
			before := l.sale(till, "salesbuilder.sale_fetch", k, nil).Version
			_, err := l.call(tt.who, tt.a, tt.k, tt.v, "")
			wantCode(t, err, protocol.CodeBadArgument)
			msg := err.Error()
			if !strings.Contains(msg, "v."+tt.bad+":") || !strings.Contains(msg, tt.mentions) {
				t.Fatalf("message %q does not name v.%s and %q", msg, tt.bad, tt.mentions)
			}
			if after := l.sale(till, "salesbuilder.sale_fetch", k, nil).Version; after != before {
				t.Fatalf("refused request changed the sale: version %d -> %d", before, after)
			}
		})
	}
	// Reads stay lenient.
	if _, err := l.call(tab, "salesbuilder.sale_fetch", k, map[string]any{"extra": 1}, ""); err != nil {
		t.Fatalf("sale_fetch with an extra field: %v", err)
	}
}

// TestTabletKeyBuildsOnlyOnAPresellSocket: a key whose only sale-building
// scope is presell makes presells on a presell socket and nothing
// elsewhere (an ordinary socket, HTTP mode): there its sale would be one
// no counter lists, no sweeper takes and no limit counts. A key that also
// carries counter builds ordinary sales anywhere.
func TestTabletKeyBuildsOnlyOnAPresellSocket(t *testing.T) {
	l := newLane(t)
	offSocket := func(transport string) *protocol.Caller {
		c := tablet("tablet-1")
		c.Purpose, c.Transport = protocol.PurposeNone, transport
		return c
	}
	for _, transport := range []string{"ws", "http"} {
		_, err := l.call(offSocket(transport), "salesbuilder.sale_create", "", nil, "")
		wantCode(t, err, protocol.CodeForbidden)
		if !strings.Contains(err.Error(), "?purpose=presell") {
			t.Fatalf("%s: %q does not name ?purpose=presell", transport, err)
		}
	}
	if s := l.sale(tablet("tablet-1"), "salesbuilder.sale_create", "", nil); s.Presell != 1 {
		t.Fatalf("on a presell socket: presell %d, want 1", s.Presell)
	}
	both := offSocket("http")
	both.Scopes = append(both.Scopes, protocol.ScopeCounter)
	k := l.sale(both, "salesbuilder.sale_create", "", nil).Physkey
	// An ordinary sale made before this rule is not parked by the tablet
	// key alone (it would stay parked with no ticket, out of every list).
	_, err := l.call(offSocket("ws"), "salesbuilder.sale_park", k, nil, "")
	wantCode(t, err, protocol.CodeForbidden)
	if s := l.sale(both, "salesbuilder.sale_park", k, nil); s.Phase != 5 || s.Presell != 0 {
		t.Fatalf("counter-scoped park: %+v", s)
	}
}

// TestSaleReadsTakeQO: get_sale, its list and sale_fetch shape their reply
// by qo (SPEC §3.5) as the product and customer lists do: fields picked,
// renamed, in the template's order; a field the reply may omit (a ticket
// not given yet) may be named; a name the reply has no field of is
// refused.
func TestSaleReadsTakeQO(t *testing.T) {
	l := newLane(t)
	tab := tablet("tablet-1")
	k := l.sale(tab, "salesbuilder.sale_create", "", nil).Physkey
	l.sale(tab, "salesbuilder.sale_add_product", k, map[string]any{"pid": 1001, "qty": 2})
	read := func(a, key string, qk []string, qo string) (string, error) {
		t.Helper()
		req := &protocol.Request{A: a, QK: qk, QO: json.RawMessage(qo)}
		if key != "" {
			req.K, _ = json.Marshal(key)
		}
		ep, err := l.router.Lookup(a)
		if err != nil {
			t.Fatal(err)
		}
		res, err := ep.Handler(context.Background(), &protocol.Call{Req: req, Caller: tab, Endpoint: ep})
		if err != nil {
			return "", err
		}
		b, _ := json.Marshal(res.Data)
		return string(b), nil
	}
	one := fmt.Sprintf(`{"total":11,"physkey":%q,"ticket":null}`, k)
	tests := []struct {
		name, a, k string
		qk         []string
		want       string
	}{
		{"get_sale", "salesbuilder.get_sale", k, nil, one},
		{"get_sale qk all", "salesbuilder.get_sale", "", []string{"all"}, `{"rows":[` + one + `]}`},
		{"get_activesale_list", "fd1.sales.get_activesale_list", "", nil, `{"rows":[` + one + `]}`},
		{"sale_fetch", "salesbuilder.sale_fetch", k, nil, `{"rows":[` + one + `]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := read(tt.a, tt.k, tt.qk, `{"total":"saletotal","physkey":true,"ticket":true,"phase":false}`)
			if err != nil || got != tt.want {
				t.Fatalf("got %s, %v\nwant %s", got, err, tt.want)
			}
			got, err = read(tt.a, tt.k, tt.qk, `"physkey"`)
			if want := strings.ReplaceAll(strings.ReplaceAll(tt.want, `"total":11,`, ""), `,"ticket":null`, ""); err != nil || got != want {
				t.Fatalf("qo as a list: got %s, %v\nwant %s", got, err, want)
			}
			_, err = read(tt.a, tt.k, tt.qk, `{"x":"nosuch"}`)
			wantCode(t, err, protocol.CodeBadArgument)
		})
	}
}
