package integration

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// pgGate is a TCP relay between lanes and PostgreSQL that the test can
// shut, so that the lanes lose their connections (their store lock with
// them) and cannot get new ones, as in a PostgreSQL restart, while the
// CLI, connecting straight to the server, can.
type pgGate struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	shut   bool
	conns  []net.Conn
}

func newPGGate(t *testing.T, dbURL string) (g *pgGate, gatedURL string) {
	t.Helper()
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g = &pgGate{ln: ln, target: u.Host}
	t.Cleanup(func() { ln.Close(); g.cut() })
	go g.serve()
	u.Host = ln.Addr().String()
	return g, u.String()
}

func (g *pgGate) serve() {
	for {
		c, err := g.ln.Accept()
		if err != nil {
			return
		}
		g.mu.Lock()
		shut := g.shut
		g.mu.Unlock()
		if shut {
			c.Close()
			continue
		}
		s, err := net.Dial("tcp", g.target)
		if err != nil {
			c.Close()
			continue
		}
		g.mu.Lock()
		g.conns = append(g.conns, c, s)
		g.mu.Unlock()
		go func() { _, _ = io.Copy(s, c); s.Close(); c.Close() }()
		go func() { _, _ = io.Copy(c, s); s.Close(); c.Close() }()
	}
}

// cut closes every relayed connection; shut also refuses new ones until
// open.
func (g *pgGate) cut() {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, c := range g.conns {
		c.Close()
	}
	g.conns = nil
}

func (g *pgGate) close() { g.mu.Lock(); g.shut = true; g.mu.Unlock(); g.cut() }
func (g *pgGate) open()  { g.mu.Lock(); g.shut = false; g.mu.Unlock() }

// TestStoreRewrittenWhileLockLost: two lanes serve a store; PostgreSQL
// goes away for them (their store lock with their connections), and a
// `fixture reset` runs in that window and wipes the store. Once the lanes
// reach the server again, neither serves the rewritten store: each logs an
// ERROR saying the store was rewritten and to start it again, and exits
// non-zero (for a service manager to restart it on the new store).
func TestStoreRewrittenWhileLockLost(t *testing.T) {
	alongside(t)
	db, adminKey := demoStore(t)
	gate, gated := newPGGate(t, db)
	lanes := []*lane{startStoreLane(t, gated, adminKey), startStoreLane(t, gated, adminKey)}
	tab := lanes[0].login(presellQuery, lanes[0].newKey("tablet-1", "presell"), "")
	k := sale(t, tab, sbA+"sale_create", nil, nil)["physkey"].(string)
	sale(t, tab, sbA+"sale_add_product", k, map[string]any{"pid": 1001, "qty": 1})
	sale(t, tab, sbA+"sale_park", k, nil)

	gate.close()
	for _, l := range lanes {
		for deadline := time.Now().Add(30 * time.Second); !strings.Contains(l.log(), "store lock lost with its PostgreSQL connection"); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("the lane did not see its store lock lost in 30s:\n%s", l.log())
			}
		}
	}
	// The server may take a moment to see the cut connections end and let
	// go of their locks: the reset is refused until it has.
	var out string
	var err error
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if out, err = cli(t, "fixture", "reset", "--db", db); err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		t.Fatalf("fixture reset while the lanes are cut off: %v %s", err, out)
	}
	if n := fmt.Sprint(storeRows(t, db, `SELECT count(*) AS n FROM sales`)[0]["n"]); n != "0" {
		t.Fatalf("the reset left %s sales", n)
	}
	gate.open()
	for i, l := range lanes {
		select {
		case <-l.exited:
		case <-time.After(30 * time.Second):
			t.Fatalf("lane %d serves on the rewritten store 30s after PostgreSQL came back:\n%s", i, l.log())
		}
		code := l.cmd.ProcessState.ExitCode()
		log := l.log()
		if code == 0 || !strings.Contains(log, "level=ERROR") ||
			!strings.Contains(log, "rewrote it while this lane had lost its store lock") ||
			!strings.Contains(log, "start it again") {
			t.Errorf("lane %d: exit status %d, want non-zero with an ERROR saying the store was rewritten and to start it again:\n%s", i, code, log)
		}
	}
}

// TestStoreClaimOfAnotherLanesSession: a lane takes a claim over from
// another connection of the same key only once it has seen that
// connection close, which it can only for its own. A claim held by a
// counter's socket on lane A stands against the same key recalling on
// lane B, open or closed (B cannot see it close), told "held by another
// connection of this key"; on A itself it moves over once A's socket has
// closed, as on a SQLite lane.
func TestStoreClaimOfAnotherLanesSession(t *testing.T) {
	alongside(t)
	db, adminKey := demoStore(t)
	a := startStoreLane(t, db, adminKey)
	b := startStoreLane(t, db, adminKey)
	keys := a.keysFor(keyRequest{"tablet-1", "presell"}, keyRequest{"counter-1", "counter"})
	tablet := a.login(presellQuery, keys["tablet-1"], "")
	for _, tc := range []struct {
		name        string
		closeHolder bool
		on          *lane
		want        []string // in the claimed refusal; nil: the recall takes the claim
	}{
		{"open on A, recalled on B", false, b, []string{`held by another connection of this key ("counter-1") for `, "not on this lane"}},
		{"closed on A, recalled on B", true, b, []string{`held by another connection of this key ("counter-1") for `, "not on this lane"}},
		{"open on A, recalled on A", false, a, []string{`held by another connection of this key ("counter-1") for `, "once that connection has closed"}},
		{"closed on A, recalled on A", true, a, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			parked := presellFromTablet(t, tablet, 0, soldLine{1001, 1})
			holder := a.login("", keys["counter-1"], "")
			sale(t, holder, presellA+"recall", nil, map[string]any{"ticket": parked["ticket"]})
			if tc.closeHolder {
				holder.ws.Close()
			}
			other := tc.on.login("", keys["counter-1"], "")
			defer other.ws.Close()
			recall := func() *packet {
				return doPkt(t, other, req(presellA+"recall", nil, map[string]any{"ticket": parked["ticket"]}))
			}
			if tc.want == nil {
				// A sees its socket close a moment after the test closed it.
				for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
					r := recall()
					if r.Error == nil {
						return
					}
					if r.Error.Code != "claimed" || time.Now().After(deadline) {
						t.Fatalf("recall on the lane that saw the holder close: %s", r.raw)
					}
				}
			}
			r := recall()
			r.wantError(t, "claimed")
			for _, m := range tc.want {
				if !strings.Contains(r.Error.Message, m) {
					t.Errorf("refusal %q does not say %q", r.Error.Message, m)
				}
			}
			if !tc.closeHolder {
				// The holder still has it: no claim_lost.
				sale(t, holder, sbA+"sale_add_product", parked["physkey"], map[string]any{"pid": 1001, "qty": 1})
				holder.ws.Close()
			}
		})
	}
}

// TestStoreServeRefusesAClockOffTheStore: `serve --clock -13h` on a store
// database refuses to start, as a machine clock that far off does: it
// would stamp the presells it parks 13 h old, for the other lanes'
// sweepers to void at once.
func TestStoreServeRefusesAClockOffTheStore(t *testing.T) {
	alongside(t)
	db, _ := demoStore(t)
	// A lane that starts serves until killed: the timeout fails it.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, binary, "serve", "--addr", "127.0.0.1:0", "--db", db, "--clock", "-13h").CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 ||
		!strings.Contains(string(out), "the lane's clock is 13h0m0s behind the store database's") ||
		!strings.Contains(string(out), "--max-clock-skew") {
		t.Fatalf("serve --clock -13h on a store: %v, want exit status 1 saying the clock is 13h behind:\n%s", err, out)
	}
}

// TestStoreRewrittenUnderARunningLane: the store's generation changes under
// a lane that never noticed losing its lock (as when it was paused while a
// fixture command ran): its next change is refused as unavailable, nothing
// of it lands in the store, and the lane stops with an ERROR saying why.
func TestStoreRewrittenUnderARunningLane(t *testing.T) {
	alongside(t)
	db, adminKey := demoStore(t)
	l := startStoreLane(t, db, adminKey)
	tab := l.login(presellQuery, l.newKey("tablet-1", "presell"), "")
	sale(t, tab, sbA+"sale_create", nil, nil) // a change lands before the rewrite
	before := fmt.Sprint(storeRows(t, db, `SELECT count(*) AS n FROM sales`)[0]["n"])
	storeExec(t, db, `UPDATE lane_meta SET value = 'rewritten' WHERE key = 'store_generation'`)
	r := do(t, tab, sbA+"sale_create", nil, nil)
	if r.Error == nil || r.Error.Code != "unavailable" {
		t.Fatalf("sale_create on the rewritten store: %s, want unavailable", r.raw)
	}
	if after := fmt.Sprint(storeRows(t, db, `SELECT count(*) AS n FROM sales`)[0]["n"]); after != before {
		t.Errorf("%s sales after the refused change, want %s", after, before)
	}
	select {
	case <-l.exited:
	case <-time.After(30 * time.Second):
		t.Fatalf("the lane serves on the rewritten store:\n%s", l.log())
	}
	if code, log := l.cmd.ProcessState.ExitCode(), l.log(); code == 0 || !strings.Contains(log, "level=ERROR") || !strings.Contains(log, "start it again") {
		t.Errorf("exit status %d, want non-zero with an ERROR saying to start it again:\n%s", code, log)
	}
}
