package server

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/greenlane-pos/greenlane/internal/syncbuf"
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

// TestSocketRefusalsAreToldAndCounted: a socket refused at its upgrade
// is counted by why, and logged without a line per socket. A lane full
// of sockets (lane-wide) is told once in full, then counted, and its end
// is told once a socket gets in again; an address over its own cap is a
// stranger's doing, logged within that address's line budget.
func TestSocketRefusalsAreToldAndCounted(t *testing.T) {
	for _, tt := range []struct {
		name    string
		cfg     func(*Config)
		reason  string // the metric's label
		status  int
		told    string // what the log says of it
		lines   int    // lines that say it, after the refusals
		endTold bool   // a socket let in afterwards tells the end
	}{
		{"the lane full of sockets", func(c *Config) { c.MaxSockets = 2 }, "max_sockets", http.StatusServiceUnavailable,
			"maximum of open sockets (serve --max-sockets 2)", 1, true},
		{"an address with its most sockets not logged in", func(c *Config) { c.MaxUnauthPerAddress = 2 }, "unauth_per_address", http.StatusTooManyRequests,
			`msg="websocket refused"`, refusals, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tt.cfg(&cfg)
			s, _ := testServer(t, cfg)
			var logs syncbuf.Buffer
			s.log = slog.New(slog.NewTextHandler(&logs, nil))
			if l := s.refusalLogs[tt.reason]; l != nil {
				l.Calm = 0 // the end told at the next socket let in
			}
			srv := httptest.NewServer(s.Handler())
			defer srv.Close()
			url := "ws" + strings.TrimPrefix(srv.URL, "http") + "/fd1/open_websocket"
			dial := func() (*websocket.Conn, int) {
				t.Helper()
				ws, resp, err := websocket.DefaultDialer.Dial(url, nil)
				if err == nil {
					return ws, http.StatusSwitchingProtocols
				}
				if resp == nil {
					t.Fatal(err)
				}
				return nil, resp.StatusCode
			}
			var open []*websocket.Conn
			for range 2 {
				ws, status := dial()
				if ws == nil {
					t.Fatalf("socket %d refused with %d", len(open)+1, status)
				}
				open = append(open, ws)
			}
			for range refusals {
				if ws, status := dial(); status != tt.status {
					if ws != nil {
						ws.Close()
					}
					t.Fatalf("a socket past the cap: %d, want %d", status, tt.status)
				}
			}
			if got := s.Stats().SocketsRefused[tt.reason]; got != refusals {
				t.Errorf("SocketsRefused[%s] = %d after %d refusals; all: %v", tt.reason, got, refusals, s.Stats().SocketsRefused)
			}
			if n := strings.Count(logs.String(), tt.told); n != tt.lines {
				t.Errorf("%d lines say %q for %d refusals, want %d; the log:\n%s", n, tt.told, refusals, tt.lines, logs.String())
			}
			open[0].Close()
			// The lane lets the socket go once its read pump sees the close.
			for {
				ws, status := dial()
				if ws != nil {
					defer ws.Close()
					break
				}
				if status != tt.status {
					t.Fatalf("a socket once one closed: %d", status)
				}
				time.Sleep(10 * time.Millisecond)
			}
			for _, ws := range open[1:] {
				ws.Close()
			}
			if got := strings.Contains(logs.String(), "takes sockets again"); got != tt.endTold {
				t.Errorf("the log tells the end: %v, want %v; the log:\n%s", got, tt.endTold, logs.String())
			}
		})
	}
}

// refusals is how many sockets TestSocketRefusalsAreToldAndCounted has
// refused past a cap.
const refusals = 20
