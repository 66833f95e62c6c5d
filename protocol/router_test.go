package protocol_test

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/greenlane-pos/greenlane/protocol"
)

func rtrHandler(context.Context, *protocol.Call) (*protocol.Result, error) {
	return &protocol.Result{}, nil
}

// rtrTestRouter registers a few endpoints, some with and some without the
// fd1. prefix, in unsorted order.
func rtrTestRouter(t *testing.T) (*protocol.Router, map[string]*protocol.Endpoint) {
	t.Helper()
	eps := map[string]*protocol.Endpoint{
		"list":  {Name: "products.get_products_list", Aliases: []string{"products.list", "fd1.catalog.products"}, Access: protocol.Access{AnyKey: true}, Handler: rtrHandler},
		"login": {Name: "fd1.session.login", Access: protocol.Access{Public: true}, Handler: rtrHandler},
		"add":   {Name: "fd1.sales.add_item", Aliases: []string{"sales.add"}, Access: protocol.Access{AnyKey: true}, Handler: rtrHandler},
	}
	r := protocol.NewRouter()
	for _, key := range []string{"list", "login", "add"} {
		r.Handle(eps[key])
	}
	return r, eps
}

func TestRouterHandleNormalizesName(t *testing.T) {
	_, eps := rtrTestRouter(t)
	if got := eps["list"].Name; got != "fd1.products.get_products_list" {
		t.Fatalf("Name after Handle = %q, want the fd1. prefix added", got)
	}
	if got := eps["login"].Name; got != "fd1.session.login" {
		t.Fatalf("Name after Handle = %q, want it unchanged", got)
	}
}

func TestRouterLookup(t *testing.T) {
	r, eps := rtrTestRouter(t)
	cases := []struct {
		a    string
		want string // key into eps
	}{
		{"fd1.products.get_products_list", "list"},
		{"products.get_products_list", "list"},
		{"products.list", "list"},
		{"fd1.products.list", "list"},
		{"catalog.products", "list"},
		{"fd1.catalog.products", "list"},
		{"fd1.session.login", "login"},
		{"session.login", "login"},
		{"fd1.sales.add_item", "add"},
		{"sales.add_item", "add"},
		{"sales.add", "add"},
		{"fd1.sales.add", "add"},
	}
	for _, tc := range cases {
		t.Run(tc.a, func(t *testing.T) {
			got, err := r.Lookup(tc.a)
			if err != nil {
				t.Fatalf("Lookup(%q): %v", tc.a, err)
			}
			if got != eps[tc.want] {
				t.Fatalf("Lookup(%q) = %s, want %s", tc.a, got.Name, eps[tc.want].Name)
			}
		})
	}
}

func TestRouterLookupUnknown(t *testing.T) {
	r, _ := rtrTestRouter(t)
	for _, tc := range []struct{ name, a string }{
		{"unknown", "products.nope"},
		{"empty", ""},
		{"prefix only", "fd1."},
		{"prefix without dot", "fd1"},
		{"upper-case prefix", "FD1.products.get_products_list"},
		{"upper-case name", "fd1.Products.get_products_list"},
		{"double prefix", "fd1.fd1.products.get_products_list"},
		{"other protocol prefix", "fn1.products.get_products_list"},
		{"leading space", " fd1.products.get_products_list"},
		{"trailing space", "fd1.products.get_products_list "},
		{"trailing dot", "fd1.products.get_products_list."},
		{"prefix of a name", "fd1.products.get_products"},
		{"cyrillic o", "fd1.pr\u043educts.get_products_list"},
		{"cyrillic o without prefix", "pr\u043educts.get_products_list"},
		{"fullwidth dot after prefix", "fd1\uff0eproducts.get_products_list"},
		{"fullwidth dot inside", "fd1.products\uff0eget_products_list"},
		{"zero-width space", "fd1.products.get_products_list\u200b"},
		{"zero-width joiner in prefix", "fd1\u200d.products.get_products_list"},
		{"NUL byte", "fd1.products.get_products_list\x00"},
		{"combining accent", "fd1.products.get_products_list\u0301"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ep, err := r.Lookup(tc.a)
			if ep != nil {
				t.Fatalf("Lookup(%q) found %s", tc.a, ep.Name)
			}
			var pe *protocol.Error
			if !errors.As(err, &pe) || pe.Code != protocol.CodeUnknownEndpoint {
				t.Fatalf("Lookup(%q) error = %v, want unknown_endpoint", tc.a, err)
			}
		})
	}
}

func rtrExpectPanic(t *testing.T, what string, f func()) {
	t.Helper()
	defer func() {
		if recover() == nil {
			t.Fatalf("%s did not panic", what)
		}
	}()
	f()
}

func TestRouterHandlePanics(t *testing.T) {
	ep := func(name string, aliases ...string) *protocol.Endpoint {
		return &protocol.Endpoint{Name: name, Aliases: aliases, Access: protocol.Access{AnyKey: true}, Handler: rtrHandler}
	}
	cases := []struct {
		name  string
		first *protocol.Endpoint // nil = none
		then  *protocol.Endpoint
	}{
		{"same name twice", ep("fd1.a.b"), ep("fd1.a.b")},
		{"same name with and without prefix", ep("a.b"), ep("fd1.a.b")},
		{"alias equals a name", ep("a.b"), ep("c.d", "fd1.a.b")},
		{"alias equals an alias", ep("a.b", "x.y"), ep("c.d", "fd1.x.y")},
		{"name equals an alias", ep("a.b", "x.y"), ep("x.y")},
		{"alias equals its own name", nil, ep("a.b", "fd1.a.b")},
		{"repeated alias", nil, ep("a.b", "x.y", "fd1.x.y")},
		{"no handler", nil, &protocol.Endpoint{Name: "a.b"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := protocol.NewRouter()
			if tc.first != nil {
				r.Handle(tc.first)
			}
			rtrExpectPanic(t, "Handle", func() { r.Handle(tc.then) })
		})
	}
}

func TestRouterEndpointsSorted(t *testing.T) {
	r, _ := rtrTestRouter(t)
	eps := r.Endpoints()
	var names []string
	for _, e := range eps {
		names = append(names, e.Name)
	}
	want := []string{"fd1.products.get_products_list", "fd1.sales.add_item", "fd1.session.login"}
	if !reflect.DeepEqual(names, want) {
		t.Fatalf("Endpoints() = %q, want %q (sorted, one per endpoint, no aliases)", names, want)
	}
	// The slice is a copy: changing it does not change the router.
	eps[0] = nil
	if again := r.Endpoints(); again[0] == nil {
		t.Fatal("Endpoints() returned the router's own slice")
	}
	if got := protocol.NewRouter().Endpoints(); len(got) != 0 {
		t.Fatalf("empty router lists %d endpoints", len(got))
	}
}

func TestNormalize(t *testing.T) {
	for in, want := range map[string]string{
		"a.b":     "fd1.a.b",
		"fd1.a.b": "fd1.a.b",
		"":        "fd1.",
		"fd1.":    "fd1.",
		"FD1.a":   "fd1.FD1.a",
		"fd1a":    "fd1.fd1a",
	} {
		if got := protocol.Normalize(in); got != want {
			t.Errorf("Normalize(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestEndpointAllow(t *testing.T) {
	endpoints := map[string]protocol.Access{
		"public":      {Public: true},
		"any key":     {AnyKey: true},
		"counter":     {Scopes: []protocol.Scope{protocol.ScopeCounter}},
		"presell|ctr": {Scopes: []protocol.Scope{protocol.ScopePresell, protocol.ScopeCounter}},
		"admin":       {Scopes: []protocol.Scope{protocol.ScopeAdmin}},
		"display":     {Display: true, Scopes: []protocol.Scope{protocol.ScopeDisplay}},
		"display any": {Display: true, AnyKey: true},
		"debugscope":  {Purpose: protocol.PurposeDebugScope, Scopes: []protocol.Scope{protocol.ScopeDebug}},
		"presell pur": {Purpose: protocol.PurposePresell, AnyKey: true},
	}
	key := func(purpose protocol.Purpose, scopes ...protocol.Scope) *protocol.Caller {
		return &protocol.Caller{KeyID: "k1", KeyName: "till 1", Scopes: scopes, Purpose: purpose, Transport: "ws"}
	}
	callers := map[string]*protocol.Caller{
		"nil":                nil,
		"logged out":         {Transport: "ws"},
		"logged out, scoped": {Scopes: []protocol.Scope{protocol.ScopeAdmin}, Purpose: protocol.PurposeDebugScope},
		"no scopes":          key(protocol.PurposeNone),
		"counter":            key(protocol.PurposeNone, protocol.ScopeCounter),
		"presell":            key(protocol.PurposeNone, protocol.ScopePresell),
		"presell socket":     key(protocol.PurposePresell, protocol.ScopePresell),
		"display":            key(protocol.PurposeNone, protocol.ScopeDisplay),
		"display socket":     key(protocol.PurposeCustomerDisplay, protocol.ScopeDisplay),
		"admin display":      key(protocol.PurposeCustomerDisplay, protocol.ScopeAdmin),
		"debug plain":        key(protocol.PurposeNone, protocol.ScopeDebug),
		"debug socket":       key(protocol.PurposeDebugScope, protocol.ScopeDebug),
		"counter debugsk":    key(protocol.PurposeDebugScope, protocol.ScopeCounter),
		"admin":              key(protocol.PurposeNone, protocol.ScopeAdmin),
		"admin debugsk":      key(protocol.PurposeDebugScope, protocol.ScopeAdmin),
	}
	const (
		ok     = protocol.Code("")
		login  = protocol.CodeLoginRequired
		forbid = protocol.CodeForbidden
	)
	cases := []struct {
		endpoint, caller string
		want             protocol.Code
	}{
		// Public endpoints need nothing.
		{"public", "nil", ok},
		{"public", "logged out", ok},
		{"public", "display socket", ok},
		{"public", "counter", ok},

		// Everything else needs a key.
		{"any key", "nil", login},
		{"any key", "logged out", login},
		{"any key", "logged out, scoped", login},
		{"counter", "logged out", login},
		{"display", "nil", login},
		{"debugscope", "logged out, scoped", login},

		// No scopes listed: any logged-in key.
		{"any key", "no scopes", ok},
		{"any key", "presell", ok},
		{"any key", "debug socket", ok},

		// Scopes: any one of them; admin passes.
		{"counter", "counter", ok},
		{"counter", "presell", forbid},
		{"counter", "no scopes", forbid},
		{"counter", "display", forbid},
		{"counter", "admin", ok},
		{"presell|ctr", "presell", ok},
		{"presell|ctr", "counter", ok},
		{"presell|ctr", "presell socket", ok},
		{"presell|ctr", "debug plain", forbid},
		{"presell|ctr", "admin", ok},
		{"admin", "admin", ok},
		{"admin", "counter", forbid},
		{"admin", "no scopes", forbid},

		// A customer display socket reaches Display endpoints only.
		{"display", "display socket", ok},
		{"display any", "display socket", ok},
		{"display", "display", ok},
		{"display", "counter", forbid},
		{"display", "admin", ok},
		{"any key", "display socket", forbid},
		{"counter", "display socket", forbid},
		{"presell|ctr", "display socket", forbid},
		{"any key", "admin display", forbid},
		{"counter", "admin display", forbid},
		{"display", "admin display", ok},

		// A purpose endpoint needs a socket with that purpose.
		{"debugscope", "debug socket", ok},
		{"debugscope", "debug plain", forbid},
		{"debugscope", "admin", forbid},
		{"debugscope", "admin debugsk", ok},
		{"debugscope", "counter debugsk", forbid},
		{"debugscope", "display socket", forbid},
		{"debugscope", "presell socket", forbid},
		{"presell pur", "presell socket", ok},
		{"presell pur", "presell", forbid},
		{"presell pur", "admin", forbid},
	}
	for _, tc := range cases {
		t.Run(tc.endpoint+"/"+tc.caller, func(t *testing.T) {
			access, found := endpoints[tc.endpoint]
			caller, known := callers[tc.caller]
			if !found || !known {
				t.Fatalf("test table names unknown endpoint %q or caller %q", tc.endpoint, tc.caller)
			}
			e := &protocol.Endpoint{Name: "fd1.test." + strings.ReplaceAll(tc.endpoint, " ", "_"), Access: access, Handler: rtrHandler}
			err := e.Allow(caller)
			if tc.want == ok {
				if err != nil {
					t.Fatalf("Allow = %v, want nil", err)
				}
				return
			}
			var pe *protocol.Error
			if !errors.As(err, &pe) {
				t.Fatalf("Allow = %v (%T), want a *protocol.Error %s", err, err, tc.want)
			}
			if pe.Code != tc.want {
				t.Fatalf("Allow code = %q, want %q (message %q)", pe.Code, tc.want, pe.Message)
			}
			if !strings.Contains(pe.Message, e.Name) {
				t.Errorf("message %q does not name the endpoint %s", pe.Message, e.Name)
			}
		})
	}
}

func TestCallerHas(t *testing.T) {
	var nilCaller *protocol.Caller
	if nilCaller.Has(protocol.ScopeCounter) || nilCaller.LoggedIn() {
		t.Fatal("a nil caller has nothing and is not logged in")
	}
	c := &protocol.Caller{KeyID: "k", Scopes: []protocol.Scope{protocol.ScopePresell}}
	if !c.Has(protocol.ScopePresell) || c.Has(protocol.ScopeCounter) || c.Has(protocol.ScopeAdmin) {
		t.Fatal("presell caller scopes wrong")
	}
	admin := &protocol.Caller{KeyID: "k", Scopes: []protocol.Scope{protocol.ScopeAdmin}}
	for _, s := range protocol.AllScopes {
		if !admin.Has(s) {
			t.Errorf("admin lacks %s", s)
		}
	}
}

func TestParseScopes(t *testing.T) {
	cases := []struct {
		in      string
		want    []protocol.Scope
		wantErr string
	}{
		{in: "presell", want: []protocol.Scope{protocol.ScopePresell}},
		{in: "presell,counter", want: []protocol.Scope{protocol.ScopePresell, protocol.ScopeCounter}},
		{in: " counter , display ", want: []protocol.Scope{protocol.ScopeCounter, protocol.ScopeDisplay}},
		{in: "counter,presell,counter,presell", want: []protocol.Scope{protocol.ScopeCounter, protocol.ScopePresell}},
		{in: "admin,,debug,", want: []protocol.Scope{protocol.ScopeAdmin, protocol.ScopeDebug}},
		{in: "presell,counter,display,debug,admin", want: protocol.AllScopes},
		{in: "", wantErr: "no scope"},
		{in: " , ,", wantErr: "no scope"},
		{in: "root", wantErr: `unknown scope "root"`},
		{in: "counter,root", wantErr: `unknown scope "root"`},
		{in: "Counter", wantErr: `unknown scope "Counter"`},
		{in: "counter;presell", wantErr: "unknown scope"},
		{in: "counter presell", wantErr: "unknown scope"},
		{in: "c\u043eunter", wantErr: "unknown scope"},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			got, err := protocol.ParseScopes(tc.in)
			if tc.wantErr != "" {
				if err == nil {
					t.Fatalf("ParseScopes(%q) = %q, want an error", tc.in, got)
				}
				if !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %q does not contain %q", err, tc.wantErr)
				}
				if got != nil {
					t.Fatalf("scopes %q returned with an error", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseScopes(%q): %v", tc.in, err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("ParseScopes(%q) = %q, want %q", tc.in, got, tc.want)
			}
			for _, s := range got {
				if !s.Known() {
					t.Errorf("returned unknown scope %q", s)
				}
			}
		})
	}
}

func TestHandleRefusesAnEndpointWithoutAnAccessRule(t *testing.T) {
	for _, a := range []protocol.Access{{}, {Display: true}, {Purpose: protocol.PurposeDebugScope}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Handle accepted an endpoint with access %+v, which names nobody", a)
				}
			}()
			protocol.NewRouter().Handle(&protocol.Endpoint{Name: "fd1.x.y", Access: a, Handler: rtrHandler})
		}()
	}
}
