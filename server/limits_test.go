package server

import (
	"testing"
	"time"

	"github.com/greenlane-pos/greenlane/protocol"
)

func TestLoginGuard(t *testing.T) {
	g := newLoginGuard(3) // 3 a minute: one back every 20s
	for i := 0; i < 3; i++ {
		if wait := g.Take("10.0.0.1:5000"); wait != 0 {
			t.Fatalf("failure %d is slowed (%v), the budget is 3", i+1, wait)
		}
	}
	wait := g.Take("10.0.0.1:6000") // another port, same host
	if wait <= 0 || wait > 20*time.Second {
		t.Fatalf("the 4th failure: wait %v, want (0, 20s]", wait)
	}
	if w := g.Take("10.0.0.2:5000"); w != 0 {
		t.Fatalf("another address is slowed too (%v)", w)
	}
}

func TestRetrySeconds(t *testing.T) {
	tests := []struct {
		wait time.Duration
		want int
	}{
		{0, 1}, {time.Millisecond, 1}, {time.Second, 1}, {time.Second + 1, 2}, {59500 * time.Millisecond, 60},
	}
	for _, tt := range tests {
		if got := retrySeconds(tt.wait); got != tt.want {
			t.Errorf("retrySeconds(%v) = %d, want %d", tt.wait, got, tt.want)
		}
	}
}

func TestLoginGuardForgetsIdleAddresses(t *testing.T) {
	g := newLoginGuard(1)
	g.maxAddr = 4
	for i := 0; i < 20; i++ {
		g.Take("10.0.0." + string(rune('a'+i)) + ":1")
	}
	if len(g.byAddr) > 4 {
		t.Fatalf("the table grew to %d addresses, cap 4", len(g.byAddr))
	}
}

func TestKeyRate(t *testing.T) {
	tablet := protocol.Caller{KeyID: "k1", KeyName: "tablet-1", Logins: []protocol.Login{{KeyID: "k1", Scopes: []protocol.Scope{protocol.ScopePresell}}}}
	tests := []struct {
		name   string
		caller protocol.Caller
		want   int // of 10 requests at once, with a burst of 3
	}{
		{"a device key gets its burst", tablet, 3},
		{"an admin key is not limited", protocol.Caller{KeyID: "k2", Logins: []protocol.Login{{KeyID: "k2", Scopes: []protocol.Scope{protocol.ScopeAdmin}}}}, 10},
		{"the acting key counts, not another login", protocol.Caller{KeyID: "k3", Logins: []protocol.Login{
			{KeyID: "k2", Scopes: []protocol.Scope{protocol.ScopeAdmin}}, {KeyID: "k3", Scopes: []protocol.Scope{protocol.ScopeCounter}}}}, 3},
		{"a caller built without logins goes by its scopes", protocol.Caller{KeyID: "k4", Scopes: []protocol.Scope{protocol.ScopeAdmin}}, 10},
		{"not logged in: the gate refuses it, not the limit", protocol.Caller{}, 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := newKeyRate(0.01, 3)
			got := 0
			for range 10 {
				if k.allow(&tt.caller) {
					got++
				}
			}
			if got != tt.want {
				t.Fatalf("%d of 10 allowed, want %d", got, tt.want)
			}
		})
	}

	// Two sockets of one key draw on one bucket; another key has its own.
	k := newKeyRate(0.01, 3)
	other := protocol.Caller{KeyID: "k9", Logins: []protocol.Login{{KeyID: "k9", Scopes: []protocol.Scope{protocol.ScopePresell}}}}
	a, b := tablet, tablet
	a.SocketID, b.SocketID = 1, 2
	if !k.allow(&a) || !k.allow(&b) || !k.allow(&a) || k.allow(&b) {
		t.Fatal("two sockets of one key were not held to one burst of 3")
	}
	if !k.allow(&other) {
		t.Fatal("another key was refused")
	}
}

func TestKeyRateForgetsIdleKeys(t *testing.T) {
	k := newKeyRate(1e6, 1) // refills at once
	for i := range 100 {
		c := protocol.Caller{KeyID: string(rune('a' + i)), Scopes: []protocol.Scope{protocol.ScopePresell}}
		k.allow(&c)
	}
	k.lastGC = time.Time{}
	for _, e := range k.byKey {
		e.seen = time.Now().Add(-2 * time.Minute)
	}
	k.allow(&protocol.Caller{KeyID: "new", Scopes: []protocol.Scope{protocol.ScopePresell}})
	if len(k.byKey) != 1 {
		t.Fatalf("%d buckets kept, want only the new key's: the others are full and idle", len(k.byKey))
	}
}

// TestRoomLocked: the socket closed for room is the oldest of the address
// waiting most, skipping one still upgrading or whose login is being
// checked; none when every waiting socket is one of those.
func TestRoomLocked(t *testing.T) {
	type waiter struct {
		host     string
		upgraded bool
		checking bool
	}
	tests := []struct {
		name    string
		waiting []waiter // in arrival order
		want    int      // index in waiting of the one closed; -1: none
	}{
		{"the busiest address pays, not the oldest socket", []waiter{{"device", true, false}, {"flood", true, false}, {"flood", true, false}}, 1},
		{"its oldest", []waiter{{"a", true, false}, {"b", true, false}, {"a", true, false}}, 0},
		{"not while its login is checked", []waiter{{"a", true, true}, {"a", true, false}, {"b", true, false}}, 1},
		{"not while upgrading", []waiter{{"a", false, false}, {"a", true, false}, {"b", true, false}}, 1},
		{"another address when the busiest has none to close", []waiter{{"a", true, true}, {"a", false, false}, {"b", true, false}}, 2},
		{"none", []waiter{{"a", true, true}, {"b", false, false}}, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &Server{door: doorCount{waiting: map[string][]*admission{}}}
			var socks []*socket
			for i, w := range tt.waiting {
				a := &admission{host: w.host, unauth: true, checking: w.checking}
				sk := &socket{id: uint64(i), door: a}
				if w.upgraded {
					a.sk = sk
				}
				s.door.waiting[w.host] = append(s.door.waiting[w.host], a)
				socks = append(socks, sk)
			}
			got := s.roomLocked()
			switch {
			case tt.want < 0 && got != nil:
				t.Fatalf("closed socket %d, want none", got.id)
			case tt.want >= 0 && got != socks[tt.want]:
				t.Fatalf("closed %v, want socket %d", got, tt.want)
			}
		})
	}
}
