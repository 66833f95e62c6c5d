package lane

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/greenlane-pos/greenlane/fixtures"
	"github.com/greenlane-pos/greenlane/lanedb"
	"github.com/greenlane-pos/greenlane/protocol"
)

// rules is who may call each endpoint, decided here, on purpose, one line
// per endpoint. A new endpoint fails TestEveryEndpointHasADecidedRule until
// it has a line.
//
//	public       anyone, before login
//	any          any logged-in key
//	any+display  any logged-in key, customer displays included
//	S|T          a key with scope S or T (admin passes every scope)
//	S@purpose    scope S, on a socket of that purpose only
var rules = map[string]string{
	"fd1.session.login":                      "public",
	"fd1.session.ignore":                     "public",
	"fd1.session.cancel_request":             "any",
	"fd1.debug.ping":                         "any",
	"fd1.debug.inject_event":                 "debug",
	"fd1.diag.stats":                         "debug@debugscope",
	"fd1.customerdisplay.get_info":           "any+display",
	"fd1.firehose.open_firehose":             "any+display",
	"fd1.firehose.close_firehose":            "any+display",
	"fd1.firehose.set_firehose_option":       "any+display",
	"fd1.products.get_products_list":         "presell|counter",
	"fd1.customers.get_customers":            "presell|counter",
	"fd1.salesbuilder.sale_create":           "presell|counter",
	"fd1.salesbuilder.get_sale":              "presell|counter",
	"fd1.salesbuilder.sale_fetch":            "presell|counter",
	"fd1.salesbuilder.sale_get_price":        "presell|counter",
	"fd1.salesbuilder.sale_add_product":      "presell|counter",
	"fd1.salesbuilder.sale_set_customer":     "presell|counter",
	"fd1.salesbuilder.sale_remove_line":      "presell|counter",
	"fd1.salesbuilder.sale_edit_line":        "presell|counter",
	"fd1.salesbuilder.sale_park":             "presell|counter",
	"fd1.salesbuilder.sale_unpark":           "presell|counter",
	"fd1.salesbuilder.salesbuilder_cancel":   "presell|counter",
	"fd1.salesbuilder.sale_add_payment":      "counter",
	"fd1.salesbuilder.sale_remove_payment":   "counter",
	"fd1.salesbuilder.salesbuilder_complete": "counter",
	"fd1.presell.get_presells":               "presell|counter", // a presell key: its own presells only
	"fd1.presell.recall":                     "counter",
	"fd1.presell.heartbeat":                  "counter",
	"fd1.presell.release":                    "counter",
	"fd1.presell.accept_prices":              "counter",
}

// allowed says what a rule means, independently of protocol.Allow.
func allowed(rule string, c *protocol.Caller) bool {
	if rule == "public" {
		return true
	}
	if !c.LoggedIn() {
		return false
	}
	display := c.Purpose == protocol.PurposeCustomerDisplay
	switch rule {
	case "any":
		return !display
	case "any+display":
		return true
	}
	if display {
		return false
	}
	scopes, purpose, _ := strings.Cut(rule, "@")
	if purpose != "" && string(c.Purpose) != purpose {
		return false
	}
	for _, s := range strings.Split(scopes, "|") {
		if c.Has(protocol.Scope(s)) {
			return true
		}
	}
	return false
}

func testLane(t *testing.T) *Lane {
	t.Helper()
	ctx := context.Background()
	db, err := lanedb.Open(ctx, filepath.Join(t.TempDir(), "lane.db"), lanedb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	demo, _ := fixtures.Find("demo")
	if err := demo.Load(ctx, db, false); err != nil {
		t.Fatal(err)
	}
	l, err := New(ctx, db, DefaultConfig(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close(); db.Close() })
	return l
}

func TestEveryEndpointHasADecidedRule(t *testing.T) {
	l := testLane(t)
	registered := map[string]bool{}
	for _, e := range l.Server.Router().Endpoints() {
		registered[e.Name] = true
		if _, ok := rules[e.Name]; !ok {
			t.Errorf("endpoint %s has no line in rules: decide who may call it", e.Name)
		}
	}
	var stale []string
	for name := range rules {
		if !registered[name] {
			stale = append(stale, name)
		}
	}
	sort.Strings(stale)
	if len(stale) > 0 {
		t.Errorf("rules names endpoints that do not exist: %v", stale)
	}
}

func TestEveryEndpointTimesEveryScope(t *testing.T) {
	l := testLane(t)
	purposes := []protocol.Purpose{protocol.PurposeNone, protocol.PurposePresell, protocol.PurposeCustomerDisplay, protocol.PurposeDebugScope}
	callers := []*protocol.Caller{{}} // not logged in
	for _, p := range purposes {
		for _, s := range protocol.AllScopes {
			callers = append(callers, &protocol.Caller{KeyID: "k", KeyName: string(s), Scopes: []protocol.Scope{s}, Purpose: p})
		}
	}
	checked := 0
	for _, e := range l.Server.Router().Endpoints() {
		rule, ok := rules[e.Name]
		if !ok {
			continue // reported by TestEveryEndpointHasADecidedRule
		}
		for _, c := range callers {
			want := allowed(rule, c)
			err := e.Allow(c)
			if (err == nil) != want {
				t.Errorf("%s (%s) for scopes %v on a %q socket: allowed=%v, want %v (%v)", e.Name, rule, c.Scopes, c.Purpose, err == nil, want, err)
			}
			if code := protocol.AsError(err).Code; err != nil && code != protocol.CodeForbidden && code != protocol.CodeLoginRequired {
				t.Errorf("%s refused with %s (%v), want forbidden or login_required", e.Name, code, err)
			}
			checked++
		}
	}
	if checked < 30*len(callers) {
		t.Fatalf("checked only %d endpoint×caller pairs", checked)
	}
}
