package protocol_test

import (
	"slices"
	"testing"

	"github.com/greenlane-pos/greenlane/protocol"
)

// session logs keys in one after another, as several fd1.session.login
// packets on one socket do.
func session(purpose protocol.Purpose, keys ...protocol.Login) protocol.Caller {
	c := protocol.Caller{Purpose: purpose, Transport: "ws", Session: "s1"}
	for _, k := range keys {
		c = c.WithLogin(k)
	}
	return c
}

func key(name string, scopes ...protocol.Scope) protocol.Login {
	return protocol.Login{KeyID: "id-" + name, KeyName: name, Scopes: scopes}
}

var (
	tablet  = key("tablet", protocol.ScopePresell)
	till    = key("till", protocol.ScopeCounter)
	display = key("display", protocol.ScopeDisplay)
	admin   = key("admin", protocol.ScopeAdmin)
	both    = key("both", protocol.ScopePresell, protocol.ScopeCounter)
)

func TestAdmitActsAsTheKeyWhoseScopeAllowed(t *testing.T) {
	builders := protocol.Access{Scopes: []protocol.Scope{protocol.ScopePresell, protocol.ScopeCounter}}
	tenders := protocol.Access{Scopes: []protocol.Scope{protocol.ScopeCounter}}
	tests := []struct {
		name   string
		caller protocol.Caller
		access protocol.Access
		want   string // the key name the call acts as; "" means refused
	}{
		{"one key", session(protocol.PurposePresell, tablet), builders, "tablet"},
		{"tablet then till: a payment is the till's", session(protocol.PurposePresell, tablet, till), tenders, "till"},
		{"tablet then till: building is the tablet's", session(protocol.PurposePresell, tablet, till), builders, "tablet"},
		{"till then tablet: building is the till's, the first key holding a needed scope", session(protocol.PurposeNone, till, tablet), builders, "till"},
		{"display then tablet: the display cannot build", session(protocol.PurposeNone, display, tablet), builders, "tablet"},
		{"display then till: a payment is the till's", session(protocol.PurposeNone, display, till), tenders, "till"},
		{"admin counts for every scope", session(protocol.PurposeNone, tablet, admin), tenders, "admin"},
		{"admin first wins", session(protocol.PurposeNone, admin, till), tenders, "admin"},
		{"one key with both scopes", session(protocol.PurposeNone, display, both), tenders, "both"},
		{"no key carries the scope", session(protocol.PurposePresell, tablet, display), tenders, ""},
		{"any key: the first key", session(protocol.PurposeNone, display, till), protocol.Access{AnyKey: true}, "display"},
		{"public: the first key", session(protocol.PurposeNone, tablet, till), protocol.Access{Public: true}, "tablet"},
		{"public before login: nobody", session(protocol.PurposeNone), protocol.Access{Public: true}, ""},
		{"a caller built without logins is its own key",
			protocol.Caller{KeyID: "id-sys", KeyName: "sys", Scopes: []protocol.Scope{protocol.ScopeAdmin}}, tenders, "sys"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := &protocol.Endpoint{Name: "fd1.test.x", Access: tt.access, Handler: rtrHandler}
			before := tt.caller
			call, err := e.Admit(&protocol.Request{A: "fd1.test.x"}, tt.caller)
			if tt.want == "" && !tt.access.Public {
				if err == nil {
					t.Fatalf("Admit let the call in as %q, want a refusal", call.Caller.KeyName)
				}
				return
			}
			if err != nil {
				t.Fatalf("Admit: %v", err)
			}
			if call.Caller.KeyName != tt.want || call.Caller.KeyID != idOf(tt.want) {
				t.Fatalf("the call acts as %q (%q), want %q", call.Caller.KeyName, call.Caller.KeyID, tt.want)
			}
			if call.Endpoint != e || call.Req.A != "fd1.test.x" {
				t.Fatalf("the call lost its endpoint or request: %+v", call)
			}
			// The session itself is untouched: the next request starts over.
			if tt.caller.KeyName != before.KeyName || !slices.Equal(tt.caller.Scopes, before.Scopes) {
				t.Fatalf("Admit changed the session's caller: %+v", tt.caller)
			}
		})
	}
}

func idOf(name string) string {
	if name == "" {
		return ""
	}
	return "id-" + name
}

func TestActForSwitchesOnlyWhenTheActingKeyLacksTheScope(t *testing.T) {
	tests := []struct {
		name   string
		caller protocol.Caller
		scope  protocol.Scope
		ok     bool
		want   string
	}{
		{"the acting key has it", session(protocol.PurposeNone, both, till), protocol.ScopeCounter, true, "both"},
		{"another key has it", session(protocol.PurposePresell, tablet, till), protocol.ScopeCounter, true, "till"},
		{"the first of several that have it", session(protocol.PurposePresell, tablet, till, admin), protocol.ScopeCounter, true, "till"},
		{"admin has every scope", session(protocol.PurposePresell, tablet, admin), protocol.ScopeCounter, true, "admin"},
		{"nobody has it", session(protocol.PurposePresell, tablet, display), protocol.ScopeCounter, false, "tablet"},
		{"not logged in", session(protocol.PurposeNone), protocol.ScopeCounter, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.caller
			if got := c.ActFor(tt.scope); got != tt.ok {
				t.Fatalf("ActFor(%s) = %v, want %v", tt.scope, got, tt.ok)
			}
			if c.KeyName != tt.want {
				t.Fatalf("acts as %q, want %q", c.KeyName, tt.want)
			}
		})
	}
	var nobody *protocol.Caller
	if nobody.ActFor(protocol.ScopeCounter) {
		t.Fatal("a nil caller carries no scope")
	}
}

func TestWithLoginKeepsEveryKey(t *testing.T) {
	c := session(protocol.PurposePresell, tablet, till, tablet)
	if c.KeyName != "tablet" || c.KeyID != "id-tablet" {
		t.Fatalf("the session acts as %q by default, want its first key", c.KeyName)
	}
	if got := c.KeyIDs(); !slices.Equal(got, []string{"id-tablet", "id-till"}) {
		t.Fatalf("KeyIDs = %v, want each key once, in login order", got)
	}
	if !slices.Equal(c.Scopes, []protocol.Scope{protocol.ScopePresell, protocol.ScopeCounter}) {
		t.Fatalf("Scopes = %v, want the union", c.Scopes)
	}
	for _, tt := range []struct {
		id, name string
		want     bool
	}{{"id-tablet", "tablet", true}, {"id-till", "till", true}, {"id-other", "other", false}, {"", "", false}} {
		if c.HasKeyID(tt.id) != tt.want || c.HasKeyName(tt.name) != tt.want {
			t.Errorf("HasKeyID(%q)/HasKeyName(%q) = %v/%v, want %v", tt.id, tt.name, c.HasKeyID(tt.id), c.HasKeyName(tt.name), tt.want)
		}
	}
	// WithLogin returns a new caller; the one before the login is unchanged.
	before := session(protocol.PurposePresell, tablet)
	after := before.WithLogin(till)
	after.Logins[0].KeyName = "changed"
	if len(before.Logins) != 1 || before.Logins[0].KeyName != "tablet" || before.Has(protocol.ScopeCounter) {
		t.Fatalf("WithLogin changed the caller it started from: %+v", before)
	}
}

func TestSeesLane(t *testing.T) {
	tests := []struct {
		name   string
		caller protocol.Caller
		want   bool
	}{
		{"tablet", session(protocol.PurposePresell, tablet), false},
		{"tablet and debug", session(protocol.PurposeNone, tablet, key("support", protocol.ScopeDebug)), false},
		{"till", session(protocol.PurposeNone, till), true},
		{"display", session(protocol.PurposeCustomerDisplay, display), true},
		{"admin", session(protocol.PurposeNone, admin), true},
		{"tablet then till", session(protocol.PurposePresell, tablet, till), true},
		{"nobody", session(protocol.PurposeNone), false},
	}
	for _, tt := range tests {
		if got := tt.caller.SeesLane(); got != tt.want {
			t.Errorf("%s: SeesLane = %v, want %v", tt.name, got, tt.want)
		}
	}
}
