package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// Firehoses over real sockets (SPEC §5, §6; DESIGN §4): device events with
// q filters, a customer display following a sale from tablet to counter,
// replay after a reconnect, slow subscribers, presell events, debugscope.

const (
	fhOpenA   = "fd1.firehose.open_firehose"
	fhCloseA  = "fd1.firehose.close_firehose"
	fhOptionA = "fd1.firehose.set_firehose_option"
	injectA   = "fd1.debug.inject_event"
	custdisp  = "customerdisplay"
	btSC      = "device.bluetooth.announcement"
)

// fhOpen builds an open_firehose packet; v and q are left out when nil.
func fhOpen(rq any, v, q map[string]any) map[string]any {
	p := map[string]any{"a": fhOpenA, "rq": rq}
	if v != nil {
		p["v"] = v
	}
	if q != nil {
		p["q"] = q
	}
	return p
}

// openFH sends an open_firehose packet and checks that the one reply is the
// firehose.status ack for it; it returns the ack's data.
func openFH(t *testing.T, c *conn, pkt map[string]any) map[string]any {
	t.Helper()
	r := c.in(t).call(pkt)
	rq, _ := json.Marshal(pkt["rq"])
	if r.Error != nil || r.R != fhOpenA || r.rpKey() != string(rq) || r.SC != "firehose.status" {
		t.Fatalf("open_firehose rq %s: want its firehose.status ack, got %s", rq, r.raw)
	}
	d := r.data(t)
	if d["status"] != "open" {
		t.Fatalf("open_firehose rq %s: ack status %v: %s", rq, d["status"], r.raw)
	}
	if _, ok := d["seq"].(float64); !ok {
		t.Fatalf("open_firehose rq %s: ack has no journal seq: %s", rq, r.raw)
	}
	return d
}

// isEvent reports whether p is a firehose event (no r, no a, a v).
func (p *packet) isEvent() bool {
	return p.R == "" && p.A == "" && p.Error == nil && len(p.V) > 0
}

// seq is an event's journal seq; ok is false when it carries none.
func (p *packet) seq(t *testing.T) (int64, bool) {
	t.Helper()
	var f map[string]json.RawMessage
	if err := json.Unmarshal(p.raw, &f); err != nil {
		t.Fatalf("packet is not an object: %s", p.raw)
	}
	raw, ok := f["seq"]
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(string(raw), 10, 64)
	if err != nil || n <= 0 {
		t.Fatalf("seq %s is not a positive integer: %s", raw, p.raw)
	}
	return n, true
}

// mustSeq is the seq of a journal event, which must have one.
func (p *packet) mustSeq(t *testing.T) int64 {
	t.Helper()
	n, ok := p.seq(t)
	if !ok {
		t.Fatalf("event has no seq: %s", p.raw)
	}
	return n
}

// vmap decodes an event's v.
func (p *packet) vmap(t *testing.T) map[string]any {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal(p.V, &v); err != nil {
		t.Fatalf("event v is not an object: %s", p.raw)
	}
	return v
}

// nextEvent reads the next packet, which must be an event of firehose rp.
func nextEvent(t *testing.T, c *conn, rp any) *packet {
	t.Helper()
	p := c.in(t).next()
	want, _ := json.Marshal(rp)
	if !p.isEvent() || p.rpKey() != string(want) {
		t.Fatalf("want the next event of firehose %s, got %s", want, p.raw)
	}
	return p
}

// nextEvents reads n events of firehose rp.
func nextEvents(t *testing.T, c *conn, rp any, n int) []*packet {
	t.Helper()
	out := make([]*packet, n)
	for i := range out {
		out[i] = nextEvent(t, c, rp)
	}
	return out
}

// callPast sends a request on a socket that also receives firehose events
// and returns its reply, skipping the events that come first.
func callPast(t *testing.T, c *conn, pkt map[string]any) *packet {
	t.Helper()
	c = c.in(t)
	c.send(pkt)
	rq, _ := json.Marshal(pkt["rq"])
	for {
		p := c.next()
		if p.isEvent() {
			continue
		}
		if p.rpKey() != string(rq) {
			t.Fatalf("reply to rq %s came back as %s", rq, p.raw)
		}
		return p
	}
}

// inject publishes a device.event through fd1.debug.inject_event.
func inject(t *testing.T, c *conn, sc string, data any) {
	t.Helper()
	r := c.in(t).call(map[string]any{"a": injectA, "rq": "inject", "v": map[string]any{"event": "device.event", "sc": sc, "data": data}})
	if r.Error != nil || r.R != injectA || r.rpKey() != `"inject"` {
		t.Fatalf("inject %s: %s", sc, r.raw)
	}
}

// keyRequest is one key to create: its name and scopes.
type keyRequest struct{ name, scopes string }

// keysFor creates keys of different scopes at once and returns them by name.
func (l *lane) keysFor(reqs ...keyRequest) map[string]string {
	l.t.Helper()
	skipIfRemote(l.t, "creates API keys with chosen scopes through the CLI on the lane DB")
	keys := make(map[string]string, len(reqs))
	errs := make([]error, len(reqs))
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i, r := range reqs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := exec.Command(binary, "apikey", "create", "--db", l.db, "--name", r.name, "--scope", r.scopes)
			cmd.Env = quietEnv()
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Run(); err != nil {
				errs[i] = fmt.Errorf("apikey create %s: %w: %s", r.name, err, stderr.String())
				return
			}
			key := strings.TrimSpace(stdout.String())
			if key == "" || strings.Contains(key, "\n") {
				errs[i] = fmt.Errorf("apikey create %s printed %q", r.name, stdout.String())
				return
			}
			mu.Lock()
			keys[r.name] = key
			mu.Unlock()
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			l.t.Fatal(err)
		}
	}
	return keys
}

// --- 1. device.event and q filters ---

func TestDeviceEventFirehose(t *testing.T) {
	alongside(t)
	l := startLane(t)
	gateway := l.login("", l.key, "") // injects, as a sensor gateway would publish
	c := l.login("", l.key, "")

	// SPEC §5.2's packet, byte for byte.
	c.sendRaw([]byte(`{"a":"fd1.firehose.open_firehose","rq":"dev","v":{"event":"device.event"},"q":{"_sc":"device.bluetooth.announcement","temp(>=)":-90}}`))
	ack := c.next()
	var ackFields map[string]json.RawMessage
	if err := json.Unmarshal(ack.raw, &ackFields); err != nil {
		t.Fatal(err)
	}
	if ack.Error != nil || ack.R != fhOpenA || ack.rpKey() != `"dev"` || ack.SC != "firehose.status" || len(ackFields) != 4 {
		t.Fatalf("ack = %s, want exactly {r, rp:\"dev\", sc:\"firehose.status\", data}", ack.raw)
	}
	d := ack.data(t)
	if d["status"] != "open" || d["event"] != "device.event" || d["seq"] == nil {
		t.Fatalf("ack data = %v", d)
	}
	if _, ok := d["replayed"]; ok {
		t.Fatalf("ack without since reports a replay: %s", ack.raw)
	}

	inject(t, gateway, btSC, map[string]any{"addr": "BC5729024562", "dbm": -66, "temp": 22.5})
	got := nextEvent(t, c, "dev")
	const want = `{"rp":"dev","sc":"device.bluetooth.announcement","v":{"addr":"BC5729024562","dbm":-66,"temp":22.5}}`
	if string(got.raw) != want {
		t.Fatalf("event on the wire:\n got %s\nwant %s (SPEC §5.2)", got.raw, want)
	}
	if _, hasSeq := got.seq(t); hasSeq {
		t.Fatalf("a memory event carries a seq: %s", got.raw)
	}

	// None of these match; the marker (at the bound itself) does, and must be
	// the next event: the hub handles injections in order.
	for _, ev := range []struct {
		sc   string
		data map[string]any
	}{
		{btSC, map[string]any{"addr": "cold", "temp": -95}},
		{btSC, map[string]any{"addr": "just-below", "temp": -90.01}},
		{"device.scale.reading", map[string]any{"addr": "other-schema", "temp": 22.5}},
		{btSC, map[string]any{"addr": "no-temp", "dbm": -40}},
		{btSC, map[string]any{"addr": "text-temp", "temp": "22.5"}},
		{btSC, map[string]any{"addr": "null-temp", "temp": nil}},
		{btSC, map[string]any{"addr": "nested-temp", "sensor": map[string]any{"temp": 20}}},
	} {
		inject(t, gateway, ev.sc, ev.data)
	}
	inject(t, gateway, btSC, map[string]any{"addr": "marker", "temp": -90})
	if m := nextEvent(t, c, "dev").vmap(t); m["addr"] != "marker" {
		t.Fatalf("a non-matching event was delivered: %v", m)
	}

	t.Run("several keys are AND", func(t *testing.T) {
		c := l.login("", l.key, "").in(t)
		openFH(t, c, fhOpen("and", map[string]any{"event": "device.event"},
			map[string]any{"_sc": btSC, "temp(>=)": 0, "dbm(>=)": -70, "addr(!=)": "skip"}))
		for _, data := range []map[string]any{
			{"addr": "weak", "temp": 20, "dbm": -80},
			{"addr": "freezing", "temp": -5, "dbm": -60},
			{"addr": "skip", "temp": 20, "dbm": -60},
			{"addr": "no-dbm", "temp": 20},
			{"addr": "all-three", "temp": 20, "dbm": -60},
			{"addr": "marker", "temp": 0, "dbm": -70},
		} {
			inject(t, gateway, btSC, data)
		}
		for _, want := range []string{"all-three", "marker"} {
			if got := nextEvent(t, c, "and").vmap(t)["addr"]; got != want {
				t.Fatalf("delivered %v, want %s (every key must hold)", got, want)
			}
		}
	})

	t.Run("operators", func(t *testing.T) {
		c := l.login("", l.key, "").in(t)
		// A firehose for markers only; the op firehoses never match a marker
		// (it has another sc), so once the marker arrives every op event
		// injected before it has arrived too.
		openFH(t, c, fhOpen("m", map[string]any{"event": "device.event"}, map[string]any{"_sc": "test.marker"}))
		ops := []struct {
			key  string
			val  any
			want []string
		}{
			{"x", 10, []string{"e10"}}, // a plain key is equality
			{"x(=)", 10, []string{"e10"}},
			{"x(!=)", 10, []string{"e9", "e11"}}, // missing or mistyped x never matches, not even !=
			{"x(<)", 10, []string{"e9"}},
			{"x(<=)", 10, []string{"e9", "e10"}},
			{"x(>)", 10, []string{"e11"}},
			{"x(>=)", 10, []string{"e10", "e11"}},
			{"x(>=)", 9.5, []string{"e10", "e11"}},
			{"x(<)", -1, nil},
			{"s(=)", "mango", []string{"e10"}},
			{"s(!=)", "mango", []string{"e9", "e11"}},
			{"s(<)", "m", []string{"e9"}},
			{"s(>=)", "mango", []string{"e10", "e11"}},
			{"ok", true, []string{"e10"}},
			{"ok(!=)", true, []string{"e9"}},
			{"pos.lat(<)", 0, []string{"e11"}}, // dotted path into a nested object
		}
		for i, op := range ops {
			openFH(t, c, fhOpen(fmt.Sprintf("op%d", i), map[string]any{"event": "device.event"},
				map[string]any{"_sc": "test.op", op.key: op.val}))
		}
		for _, data := range []map[string]any{
			{"id": "e9", "x": 9, "s": "apple", "ok": false, "pos": map[string]any{"lat": 1}},
			{"id": "e10", "x": 10, "s": "mango", "ok": true},
			{"id": "e11", "x": 11, "s": "zebra", "pos": map[string]any{"lat": -41.29}},
			{"id": "no-fields", "y": 1},
			{"id": "strings", "x": "10", "s": 10, "ok": "true", "pos": "-41"},
		} {
			inject(t, gateway, "test.op", data)
		}
		inject(t, gateway, "test.marker", map[string]any{"id": "marker"})
		got := map[string][]string{}
		for {
			p := c.next()
			if !p.isEvent() {
				t.Fatalf("want events, got %s", p.raw)
			}
			if p.rpKey() == `"m"` {
				break
			}
			if p.SC != "test.op" {
				t.Fatalf("event with sc %q on an op firehose: %s", p.SC, p.raw)
			}
			var rp string
			_ = json.Unmarshal(p.RP, &rp)
			got[rp] = append(got[rp], fmt.Sprint(p.vmap(t)["id"]))
		}
		for i, op := range ops {
			if rp := fmt.Sprintf("op%d", i); !slices.Equal(got[rp], op.want) {
				t.Errorf("q {%q: %v} delivered %v, want %v", op.key, op.val, got[rp], op.want)
			}
		}

		// set_firehose_option replaces q; close_firehose stops a firehose.
		r := c.call(map[string]any{"a": fhOptionA, "rq": "opt", "k": "op5", "q": map[string]any{"_sc": "test.op", "x(<)": 10}})
		if r.Error != nil || r.rpKey() != `"opt"` || r.SC != "firehose.status" || r.data(t)["status"] != "open" {
			t.Fatalf("set_firehose_option: %s", r.raw)
		}
		r = c.call(map[string]any{"a": fhCloseA, "rq": "close", "k": "op0"})
		if r.Error != nil || r.rpKey() != `"close"` || r.SC != "firehose.status" || r.data(t)["status"] != "closed" {
			t.Fatalf("close_firehose: %s", r.raw)
		}
		inject(t, gateway, "test.op", map[string]any{"id": "e9", "x": 9})
		inject(t, gateway, "test.op", map[string]any{"id": "e10", "x": 10})
		inject(t, gateway, "test.marker", map[string]any{"id": "marker"})
		got = map[string][]string{}
		for p := c.next(); p.rpKey() != `"m"`; p = c.next() {
			var rp string
			_ = json.Unmarshal(p.RP, &rp)
			got[rp] = append(got[rp], fmt.Sprint(p.vmap(t)["id"]))
		}
		if len(got["op0"]) != 0 {
			t.Errorf("closed firehose op0 still delivered %v", got["op0"])
		}
		if !slices.Equal(got["op5"], []string{"e9"}) {
			t.Errorf("op5 after set_firehose_option q {x(<):10} delivered %v, want [e9]", got["op5"])
		}
		if !slices.Equal(got["op1"], []string{"e10"}) {
			t.Errorf("op1, still open, delivered %v, want [e10]", got["op1"])
		}
	})
}

// --- 2. a customer display follows a sale ---

// step is one change to the followed sale and what the display must show.
type step struct {
	sc     string
	status string
	sale   map[string]any // the reply of the request that made the change
}

// displayLines is a reply's lines as a display shows them (SPEC §6.2).
func displayLines(sale map[string]any) []any {
	out := []any{}
	lines, _ := sale["lines"].([]any)
	for _, x := range lines {
		ln := x.(map[string]any)
		out = append(out, map[string]any{"seqnce": ln["seqnce"], "pid": ln["pid"], "qty": ln["qty"],
			"totalprice": ln["totalprice"], "product": ln["product"]})
	}
	return out
}

// checkCustdisp checks a display's events against the steps of one sale:
// order, sc, strictly increasing seq, and a body that agrees with the reply
// the tablet or counter got for the same change; then the idle status,
// journaled with the completion (the next seq).
func checkCustdisp(t *testing.T, who string, got []*packet, steps []step, holders []string) {
	t.Helper()
	if len(got) != len(steps)+1 {
		t.Fatalf("%s: %d events, want %d and the idle status", who, len(got), len(steps))
	}
	var last int64
	for i, st := range steps {
		p := got[i]
		v := p.vmap(t)
		seq := p.mustSeq(t)
		if p.SC != st.sc || seq <= last {
			t.Fatalf("%s: event %d is %s seq %d (previous %d), want %s with a higher seq", who, i, p.SC, seq, last, st.sc)
		}
		last = seq
		s := st.sale
		src, _ := v["source"].(map[string]any)
		bad := []string{}
		check := func(what string, ok bool) {
			if !ok {
				bad = append(bad, what)
			}
		}
		check("salephyskey", v["salephyskey"] == s["physkey"])
		check("status", v["status"] == st.status)
		check("phase", v["phase"] == s["phase"])
		check("saletotal", cents(v["saletotal"]) == cents(s["saletotal"]) && v["saletotal"] != nil)
		check("lines", equalJSON(v["lines"], displayLines(s)))
		check("payments", equalJSON(v["payments"], s["payments"]))
		check("source.tablet", src["tablet"] == "tablet-1")
		check("source.holder", src["holder"] == holders[i])
		check("source.lane", src["lane"] == 1.0)
		check("datetimelocal", dateTimeRE.MatchString(fmt.Sprint(v["datetimelocal"])))
		check("ticket", v["ticket"] == s["ticket"])
		if c, ok := s["customer"].(map[string]any); ok {
			check("customer", v["customer"] == c["name"])
		} else {
			check("customer", v["customer"] == nil)
		}
		if st.status == "complete" {
			check("datetimelocal frozen at completion", v["datetimelocal"] == s["completeddt"])
		}
		if len(bad) > 0 {
			t.Fatalf("%s: event %d (%s) disagrees with the reply on %v:\nevent %s\nreply %v", who, i, p.SC, bad, p.raw, s)
		}
	}
	idle := got[len(steps)]
	v := idle.vmap(t)
	if seq, _ := idle.seq(t); seq != last+1 || idle.SC != "custdisp.sale.status" || v["status"] != "idle" ||
		!equalJSON(v["lines"], []any{}) || !equalJSON(v["payments"], []any{}) || v["saletotal"] != 0.0 ||
		v["salephyskey"] != steps[0].sale["physkey"] {
		t.Fatalf("%s: after completion want the idle status (seq %d, no lines, total 0), got %s", who, last+1, idle.raw)
	}
}

// samePayload reports whether two events carry the same sc, v and seq
// (they may come on firehoses with different rp).
func samePayload(t *testing.T, a, b *packet) bool {
	sa, okA := a.seq(t)
	sb, okB := b.seq(t)
	return a.SC == b.SC && bytes.Equal(a.V, b.V) && sa == sb && okA == okB
}

func TestDisplayFollowsASale(t *testing.T) {
	alongside(t)
	l := startLane(t)
	keys := l.keysFor(keyRequest{"tablet-1", "presell"}, keyRequest{"tablet-2", "presell"},
		keyRequest{"counter-1", "counter"}, keyRequest{"display-1", "display"})
	dk := keys["display-1"]

	dT := l.login("", dk, custdisp) // follows tablet-1
	a := openFH(t, dT, fhOpen("cd1", map[string]any{"event": "custdisp.sale", "tablet": "tablet-1"}, nil))
	if a["event"] != "custdisp.sale" {
		t.Fatalf("display ack event %v", a["event"])
	}
	dO := l.login("", dk, custdisp) // follows tablet-2
	openFH(t, dO, fhOpen("cd1", map[string]any{"event": "custdisp.sale", "tablet": "tablet-2"}, nil))
	dAll := l.login("", dk, custdisp) // the whole lane, no options
	openFH(t, dAll, fhOpen("all", map[string]any{"event": "custdisp.sale"}, nil))
	dK := l.login("", dk, custdisp) // narrowed to the sale once known, by set_firehose_option
	openFH(t, dK, fhOpen("k", map[string]any{"event": "custdisp.sale"}, nil))

	t1 := l.login(presellQuery, keys["tablet-1"], "")
	t2 := l.login(presellQuery, keys["tablet-2"], "")
	counter := l.login("", keys["counter-1"], "")
	var steps []step
	var holders []string
	var all []string // every event on the lane, in order: "A:sc", "N:sc"
	mine := func(sc, status, holder string, s map[string]any) {
		steps = append(steps, step{sc, status, s})
		holders = append(holders, holder)
		all = append(all, "A:"+sc)
	}

	s := sale(t, t1, sbA+"sale_create", nil, nil)
	pk := s["physkey"].(string)
	mine("custdisp.sale.add", "active", "tablet-1", s)
	for _, pid := range []int{1001, 1020} {
		mine("custdisp.sale.lines.add", "active", "tablet-1", sale(t, t1, sbA+"sale_add_product", pk, map[string]any{"pid": pid}))
	}

	// dK narrows to this sale; dK2 opens on it with k (and a numeric rq).
	r := dK.call(map[string]any{"a": fhOptionA, "rq": "narrow", "k": "k", "v": map[string]any{"k": pk}})
	var dKEarly []*packet
	for ; r.isEvent(); r = dK.next() {
		dKEarly = append(dKEarly, r) // events published before the option reply
	}
	if r.Error != nil || r.rpKey() != `"narrow"` || r.R != fhOptionA || r.data(t)["status"] != "open" {
		t.Fatalf("set_firehose_option: %s", r.raw)
	}
	dK2 := l.login("", dk, custdisp)
	openFH(t, dK2, map[string]any{"a": fhOpenA, "rq": 7, "k": pk, "v": map[string]any{"event": "custdisp.sale"}})

	n := sale(t, t2, sbA+"sale_create", nil, nil) // noise: another tablet's sale
	npk := n["physkey"].(string)
	all = append(all, "N:custdisp.sale.add")
	mine("custdisp.sale.lines.add", "active", "tablet-1", sale(t, t1, sbA+"sale_add_product", pk, map[string]any{"pid": 1012}))
	mine("custdisp.sale.lines.edit", "active", "tablet-1", sale(t, t1, sbA+"sale_edit_line", pk, map[string]any{"seqnce": 1, "qty": 3}))
	sale(t, t2, sbA+"sale_add_product", npk, map[string]any{"pid": 1002})
	all = append(all, "N:custdisp.sale.lines.add")
	mine("custdisp.sale.lines.delete", "active", "tablet-1", sale(t, t1, sbA+"sale_remove_line", pk, map[string]any{"seqnce": 2}))
	mine("custdisp.sale.edit", "active", "tablet-1", sale(t, t1, sbA+"sale_set_customer", pk, map[string]any{"cid": hemiCID}))
	parked := sale(t, t1, sbA+"sale_park", pk, nil)
	mine("custdisp.sale.status", "parked", "tablet-1", parked)
	recalled := sale(t, counter, "fd1.presell.recall", nil, map[string]any{"ticket": parked["ticket"]})
	if recalled["physkey"] != pk {
		t.Fatalf("recall by ticket %v found %v, want %s", parked["ticket"], recalled["physkey"], pk)
	}
	mine("custdisp.sale.status", "active", "counter-1", recalled)
	mine("custdisp.sale.payments.add", "active", "counter-1",
		sale(t, counter, sbA+"sale_add_payment", pk, map[string]any{"type": 3, "amount": recalled["saletotal"]}))
	sale(t, t2, sbA+"sale_cancel", npk, nil)
	all = append(all, "N:custdisp.sale.status", "N:idle")
	done := sale(t, counter, sbA+"salesbuilder_complete", pk, nil)
	if done["phase"] != 1.0 {
		t.Fatalf("complete: %v", done)
	}
	mine("custdisp.sale.status", "complete", "counter-1", done)
	all = append(all, "A:idle")
	m := sale(t, t2, sbA+"sale_create", nil, nil) // a last tablet-2 change, after everything
	all = append(all, "N2:custdisp.sale.add")

	if len(steps) != 11 {
		t.Fatalf("test bug: %d steps", len(steps))
	}
	got := nextEvents(t, dT, "cd1", len(steps)+1)
	checkCustdisp(t, "tablet-1 display", got, steps, holders)
	// The completed sale as the display shows it: line 2 was removed and
	// line 3 keeps its seqnce; products carry description and sku.
	var shown []string
	for _, x := range got[len(steps)-1].vmap(t)["lines"].([]any) {
		ln := x.(map[string]any)
		pr, _ := ln["product"].(map[string]any)
		shown = append(shown, fmt.Sprintf("%v/%v/%v/%v/%v", ln["seqnce"], ln["pid"], ln["qty"], pr["description"], pr["sku"]))
	}
	if want := []string{"1/1001/3/Flat White/FW", "3/1012/1/Ginger Kombucha 330ml/KOMB"}; !slices.Equal(shown, want) {
		t.Fatalf("completed sale's lines on the display: %v, want %v", shown, want)
	}

	t.Run("set_firehose_option with only q keeps the tablet", func(t *testing.T) {
		r := callPast(t, dT, map[string]any{"a": fhOptionA, "rq": "q-only", "k": "cd1", "q": map[string]any{"_sc": "custdisp.sale.add"}})
		if r.Error != nil || r.data(t)["status"] != "open" {
			t.Fatalf("set_firehose_option: %s", r.raw)
		}
		other := sale(t, t2, sbA+"sale_create", nil, nil)["physkey"]
		own := sale(t, t1, sbA+"sale_create", nil, nil)["physkey"]
		if v := nextEvent(t, dT, "cd1").vmap(t); v["salephyskey"] != own {
			t.Fatalf("a display narrowed to tablet-1 got sale %v (tablet-1's is %v, tablet-2's %v)", v["salephyskey"], own, other)
		}
	})

	t.Run("a display following another tablet sees none of it", func(t *testing.T) {
		evs := nextEvents(t, dO, "cd1", 5)
		want := []struct{ pk, sc, status string }{
			{npk, "custdisp.sale.add", "active"}, {npk, "custdisp.sale.lines.add", "active"},
			{npk, "custdisp.sale.status", "void"}, {npk, "custdisp.sale.status", "idle"},
			{m["physkey"].(string), "custdisp.sale.add", "active"},
		}
		for i, w := range want {
			v := evs[i].vmap(t)
			if v["salephyskey"] != w.pk || evs[i].SC != w.sc || v["status"] != w.status {
				t.Fatalf("tablet-2 display event %d: %s, want %s %s of %s", i, evs[i].raw, w.sc, w.status, w.pk)
			}
		}
	})

	t.Run("a lane-wide display sees every sale in order", func(t *testing.T) {
		evs := nextEvents(t, dAll, "all", len(all))
		var names []string
		var ofA []*packet
		for _, p := range evs {
			v := p.vmap(t)
			tag := "N2"
			switch v["salephyskey"] {
			case pk:
				tag = "A"
				ofA = append(ofA, p)
			case npk:
				tag = "N"
			}
			name := p.SC
			if v["status"] == "idle" {
				name = "idle"
			}
			names = append(names, tag+":"+name)
		}
		if !slices.Equal(names, all) {
			t.Fatalf("lane-wide display saw\n%v\nwant\n%v", names, all)
		}
		for i := range ofA {
			if !samePayload(t, ofA[i], got[i]) {
				t.Fatalf("event %d differs between the lane-wide and the tablet display:\n%s\n%s", i, ofA[i].raw, got[i].raw)
			}
		}
	})

	t.Run("displays narrowed to the sale", func(t *testing.T) {
		// dK: whatever came before the option reply, then only this sale.
		rest := nextEvents(t, dK, "k", len(steps)+1-len(dKEarly))
		evs := append(dKEarly, rest...)
		for i := range evs {
			if !samePayload(t, evs[i], got[i]) {
				t.Fatalf("set_firehose_option display, event %d:\n got %s\nwant %s", i, evs[i].raw, got[i].raw)
			}
		}
		// dK2 opened after the first three events: it opens on the third
		// (the sale as it then was), then has the rest, under rp 7.
		evs = nextEvents(t, dK2, 7, len(steps)+1-2)
		for i := range evs {
			if !samePayload(t, evs[i], got[i+2]) || !strings.HasPrefix(string(evs[i].raw), `{"rp":7,`) {
				t.Fatalf("k display, event %d:\n got %s\nwant %s", i, evs[i].raw, got[i+2].raw)
			}
		}
		// A leak of tablet-2's sale would have shown in the comparisons: its
		// events fall between this sale's. The socket still answers.
		r := dK.call(map[string]any{"a": "fd1.customerdisplay.get_info", "rq": "info"})
		if r.Error != nil || r.rpKey() != `"info"` {
			t.Fatalf("set_firehose_option display: after the idle status want the get_info reply, got %s", r.raw)
		}
	})
}

// --- 3. replay after a reconnect ---

// custdispRow is a lane-wide subscriber's record of one event.
type custdispRow struct {
	seq    int64
	tablet string
	p      *packet
}

func TestReplaySince(t *testing.T) {
	alongside(t)
	l := startLane(t)
	keys := l.keysFor(keyRequest{"tablet-1", "presell"}, keyRequest{"tablet-2", "presell"},
		keyRequest{"counter-1", "counter"}, keyRequest{"display-1", "display"})
	dk := keys["display-1"]

	stayer := l.login("", dk, custdisp) // connected the whole time
	openFH(t, stayer, fhOpen("all", map[string]any{"event": "custdisp.sale"}, nil))
	var seen []custdispRow // the stayer's journal events, in order
	stay := func(n int) {
		t.Helper()
		for range n {
			p := nextEvent(t, stayer, "all")
			seq := p.mustSeq(t) // the idle status too: it is a journal row
			if len(seen) > 0 && seq <= seen[len(seen)-1].seq {
				t.Fatalf("stayer: seq %d after %d", seq, seen[len(seen)-1].seq)
			}
			src, _ := p.vmap(t)["source"].(map[string]any)
			tablet, _ := src["tablet"].(string)
			seen = append(seen, custdispRow{seq, tablet, p})
		}
	}
	after := func(since int64, tablet string) []custdispRow {
		var out []custdispRow
		for _, r := range seen {
			if r.seq > since && (tablet == "" || r.tablet == tablet) {
				out = append(out, r)
			}
		}
		return out
	}

	d1 := l.login("", dk, custdisp) // lane-wide
	openFH(t, d1, fhOpen("d1", map[string]any{"event": "custdisp.sale"}, nil))
	d2 := l.login("", dk, custdisp) // tablet-1 only
	openFH(t, d2, fhOpen("d2", map[string]any{"event": "custdisp.sale", "tablet": "tablet-1"}, nil))

	t1 := l.login(presellQuery, keys["tablet-1"], "")
	t2 := l.login(presellQuery, keys["tablet-2"], "")
	counter := l.login("", keys["counter-1"], "")
	add := func(c *conn, pk string, pid int) { sale(t, c, sbA+"sale_add_product", pk, map[string]any{"pid": pid}) }

	pa := sale(t, t1, sbA+"sale_create", nil, nil)["physkey"].(string)
	add(t1, pa, 1001)
	add(t1, pa, 1002)
	last1 := nextEvents(t, d1, "d1", 3)[2].mustSeq(t)
	last2 := nextEvents(t, d2, "d2", 3)[2].mustSeq(t)
	if last1 != last2 {
		t.Fatalf("the two displays' last seq differ: %d, %d", last1, last2)
	}
	d1.ws.Close()
	d2.ws.Close()

	// Missed while disconnected: 12 journal events (the last the idle status).
	add(t1, pa, 1003)
	ticket := sale(t, t1, sbA+"sale_park", pa, nil)["ticket"]
	pb := sale(t, t2, sbA+"sale_create", nil, nil)["physkey"].(string)
	add(t2, pb, 1004)
	add(t2, pb, 1005)
	sale(t, t2, sbA+"sale_park", pb, nil)
	pc := sale(t, t1, sbA+"sale_create", nil, nil)["physkey"].(string)
	add(t1, pc, 1006)
	total := sale(t, counter, "fd1.presell.recall", nil, map[string]any{"ticket": ticket})["saletotal"]
	sale(t, counter, sbA+"sale_add_payment", pa, map[string]any{"type": 1, "amount": total})
	sale(t, counter, sbA+"salesbuilder_complete", pa, nil)

	// A third tablet writes while the displays reconnect: those events are
	// either replayed or live, never both, never neither.
	const during = 20
	var wg sync.WaitGroup
	var bgErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		tc, err := dialTablet(l.addr, "tablet-2", keys["tablet-2"])
		if err != nil {
			bgErr = err
			return
		}
		defer tc.ws.Close()
		pd := newUUID()
		pkts := []map[string]any{{"a": sbA + "sale_create", "v": map[string]any{"physkey": pd}}}
		for i := 1; i < during; i++ {
			pkts = append(pkts, map[string]any{"a": sbA + "sale_add_product", "k": pd, "v": map[string]any{"pid": 1010 + i%5}})
		}
		replies, err := tc.exchange(pkts...)
		for _, r := range replies {
			if err == nil && r.Error != nil {
				err = fmt.Errorf("background tablet: %s", r.raw)
			}
		}
		bgErr = err
	}()
	re1 := l.login("", dk, custdisp)
	ack1 := openFH(t, re1, fhOpen("d1", map[string]any{"event": "custdisp.sale", "since": last1}, nil))
	re2 := l.login("", dk, custdisp)
	ack2 := openFH(t, re2, fhOpen("d2", map[string]any{"event": "custdisp.sale", "tablet": "tablet-1", "since": last2}, nil))
	wg.Wait()
	if bgErr != nil {
		t.Fatal(bgErr)
	}
	stay(3 + 11 + 1 + during)

	for _, rc := range []struct {
		name, rp, tablet string
		c                *conn
		ack              map[string]any
		since            int64
	}{
		{"lane-wide display", "d1", "", re1, ack1, last1},
		{"tablet-1 display", "d2", "tablet-1", re2, ack2, last2},
	} {
		want := after(rc.since, rc.tablet)
		head := int64(num(rc.ack["seq"]))
		replayed := 0
		for _, r := range want {
			if r.seq <= head {
				replayed++
			}
		}
		if rc.ack["replay_truncated"] != false || num(rc.ack["replayed"]) != float64(replayed) {
			t.Fatalf("%s: ack %v, want replayed %d of the events up to seq %d, replay_truncated false", rc.name, rc.ack, replayed, head)
		}
		if rc.tablet != "" && replayed != 8 {
			t.Fatalf("%s: %d events replayed, want tablet-1's 8", rc.name, replayed)
		}
		got := nextEvents(t, rc.c, rc.rp, len(want))
		for i, p := range got {
			if !samePayload(t, p, want[i].p) {
				t.Fatalf("%s: after reconnecting, event %d is\n%s\nwant (as the stayer saw it)\n%s", rc.name, i, p.raw, want[i].p.raw)
			}
		}
	}

	// Live again: the next change is the next event, with nothing doubled.
	add(t1, pc, 1007)
	stay(1)
	for _, rc := range []struct {
		c  *conn
		rp string
	}{{re1, "d1"}, {re2, "d2"}} {
		if p := nextEvent(t, rc.c, rc.rp); !samePayload(t, p, seen[len(seen)-1].p) {
			t.Fatalf("%s: live event after the replay is %s, want %s", rc.rp, p.raw, seen[len(seen)-1].p.raw)
		}
	}

	t.Run("since older than the journal keeps", func(t *testing.T) {
		// The lane trims its journal (sweeper, JournalKeep=100000) far too
		// rarely to wait for; delete the oldest rows from another process,
		// which is the same change to the file.
		cut := last1 + 2
		sqliteExec(t, l.db, fmt.Sprintf("DELETE FROM journal WHERE seq <= %d", cut))
		c := l.login("", dk, custdisp).in(t)
		ack := openFH(t, c, fhOpen("old", map[string]any{"event": "custdisp.sale", "since": last1}, nil))
		want := after(cut, "")
		if ack["replay_truncated"] != true || num(ack["replayed"]) != float64(len(want)) {
			t.Fatalf("ack %v, want replay_truncated true and the %d events still kept", ack, len(want))
		}
		for i, p := range nextEvents(t, c, "old", len(want)) {
			if !samePayload(t, p, want[i].p) {
				t.Fatalf("truncated replay event %d: %s, want %s", i, p.raw, want[i].p.raw)
			}
		}
	})
}

// TestReplayLongerThanSendQueue: a display that missed more events than
// its send queue holds gets them all on reconnect; the replay is the lane's
// burst, not a client failing to read.
func TestReplayLongerThanSendQueue(t *testing.T) {
	alongside(t)
	l := startLane(t, "--send-queue", "16")
	keys := l.keysFor(keyRequest{"tablet-1", "presell"}, keyRequest{"display-1", "display"})
	d := l.login("", keys["display-1"], custdisp)
	openFH(t, d, fhOpen("cd", map[string]any{"event": "custdisp.sale"}, nil))
	tab := l.login(presellQuery, keys["tablet-1"], "")
	pk := sale(t, tab, sbA+"sale_create", nil, nil)["physkey"].(string)
	since := nextEvent(t, d, "cd").mustSeq(t)
	d.ws.Close()

	const missed = 60
	var pkts []map[string]any
	for range missed {
		pkts = append(pkts, req(sbA+"sale_add_product", pk, map[string]any{"pid": 1001}))
	}
	for _, r := range tab.callAll(pkts...) {
		if r.Error != nil {
			t.Fatalf("add_product: %s", r.raw)
		}
	}
	re := l.login("", keys["display-1"], custdisp)
	ack := openFH(t, re, fhOpen("cd", map[string]any{"event": "custdisp.sale", "since": since}, nil))
	if num(ack["replayed"]) != missed {
		t.Fatalf("ack %v, want %d replayed", ack, missed)
	}
	last := since
	for i := range missed {
		p := nextEvent(t, re, "cd")
		seq := p.mustSeq(t)
		if seq <= last || len(p.vmap(t)["lines"].([]any)) != i+1 {
			t.Fatalf("replayed event %d: seq %d after %d: %s", i, seq, last, p.raw)
		}
		last = seq
	}
	if r := doPkt(t, re, req("fd1.customerdisplay.get_info", nil, nil)); r.Error != nil {
		t.Fatalf("get_info after the replay: %s", r.raw)
	}
}

// --- 4. slow subscribers ---

func TestSlowSubscriberIsCutOff(t *testing.T) {
	l := startLane(t, "--send-queue", "8")
	gateway := l.login("", l.key, "")
	slow := l.login("", l.key, "")
	openFH(t, slow, fhOpen("slow", map[string]any{"event": "device.event"}, nil))
	fast := l.login("", l.key, "")
	openFH(t, fast, fhOpen("fast", map[string]any{"event": "device.event"}, nil))

	// The reading subscriber reads in its own goroutine, as a display would,
	// until the end marker (n 0), and tells each event it got on seen: the
	// next event is sent only once it has the last, so a busy machine that
	// is slow to schedule the reader never fills the reader's queue.
	nRE := regexp.MustCompile(`^\{"rp":"fast","sc":"test.load","v":\{"n":(\d+),`)
	var fastGot []int
	fastErr := make(chan error, 1)
	seen := make(chan int, 8192)
	go func() {
		for {
			_ = fast.ws.SetReadDeadline(time.Now().Add(30 * time.Second))
			_, msg, err := fast.ws.ReadMessage()
			if err != nil {
				fastErr <- fmt.Errorf("the reading subscriber's socket failed after %d events: %w", len(fastGot), err)
				return
			}
			m := nRE.FindSubmatch(msg)
			if m == nil {
				fastErr <- fmt.Errorf("unexpected packet: %.200s", msg)
				return
			}
			n, _ := strconv.Atoi(string(m[1]))
			if n == 0 {
				fastErr <- nil
				return
			}
			fastGot = append(fastGot, n)
			seen <- n
		}
	}()
	send := func(n int, pad string) {
		t.Helper()
		inject(t, gateway, "test.load", map[string]any{"n": n, "pad": pad})
		select {
		case got := <-seen:
			if got != n {
				t.Fatalf("the reading subscriber got event %d, want %d", got, n)
			}
		case err := <-fastErr:
			t.Fatal(err)
		}
	}

	// Big events fill the slow socket's TCP buffers quickly; then its queue
	// of 8 fills and the lane must drop it.
	pad := strings.Repeat("x", 32<<10)
	n := 0
	for !strings.Contains(l.log(), "send queue full") {
		if n++; n > 4000 {
			t.Fatalf("the lane never dropped the subscriber that does not read; log:\n%s", l.log())
		}
		send(n, pad)
	}
	cutAt := n
	for range 50 { // deliveries to the others continue
		n++
		send(n, pad)
	}
	inject(t, gateway, "test.load", map[string]any{"n": 0, "pad": "end"})
	if err := <-fastErr; err != nil {
		t.Fatal(err)
	}
	for i, got := range fastGot {
		if got != i+1 {
			t.Fatalf("the reading subscriber got event %d as number %d: every event, in order, expected", got, i+1)
		}
	}
	if len(fastGot) != n {
		t.Fatalf("the reading subscriber got %d of %d events", len(fastGot), n)
	}

	// The slow socket: what was written before the cut, in order, then the
	// connection ends (not our read deadline).
	_ = slow.ws.SetReadDeadline(time.Now().Add(30 * time.Second))
	slowGot := 0
	var readErr error
	for {
		_, msg, err := slow.ws.ReadMessage()
		if err != nil {
			readErr = err
			break
		}
		if !bytes.HasPrefix(msg, []byte(fmt.Sprintf(`{"rp":"slow","sc":"test.load","v":{"n":%d,`, slowGot+1))) {
			t.Fatalf("slow subscriber packet %d: %.120s", slowGot+1, msg)
		}
		slowGot++
	}
	if isTimeout(readErr) {
		t.Fatalf("the slow subscriber's socket stayed open after %d events: %v", slowGot, readErr)
	}
	if slowGot >= cutAt {
		t.Fatalf("the slow subscriber got %d events; it was cut off after event %d was injected", slowGot, cutAt)
	}
	if ce, ok := readErr.(*websocket.CloseError); ok && ce.Code != websocket.ClosePolicyViolation && ce.Code != websocket.CloseAbnormalClosure {
		t.Fatalf("slow subscriber closed with %d %q, want 1008 (or the link dropped)", ce.Code, ce.Text)
	}
	line := ""
	for _, ln := range strings.Split(l.log(), "\n") {
		if strings.Contains(ln, "send queue full") {
			line = ln
		}
	}
	if !strings.Contains(line, "remote="+slow.ws.LocalAddr().String()) || strings.Count(l.log(), "send queue full") != 1 {
		t.Fatalf("want exactly one send-queue-full drop, of the slow socket (%s); log:\n%s", slow.ws.LocalAddr(), l.log())
	}
	t.Logf("slow subscriber cut off after %d of %d events; the reader got all %d", slowGot, n, len(fastGot))
	gateway.ping()
}

// --- 5. presell events ---

func TestPresellFirehose(t *testing.T) {
	alongside(t)
	l := startLane(t)
	keys := l.keysFor(keyRequest{"tablet-1", "presell"}, keyRequest{"counter-1", "counter"}, keyRequest{"display-1", "display"})
	counter := l.login("", keys["counter-1"], "")
	if a := openFH(t, counter, fhOpen("ps", map[string]any{"event": "presell"}, nil)); a["event"] != "presell" {
		t.Fatalf("counter presell ack: %v", a)
	}
	tab := l.login(presellQuery, keys["tablet-1"], "")
	tabWatch := l.login(presellQuery, keys["tablet-1"], "") // a presell key may follow presells too
	if a := openFH(t, tabWatch, fhOpen("mine", map[string]any{"event": "presell.submitted"}, nil)); a["event"] != "presell" {
		t.Fatalf("tablet presell ack: %v", a)
	}
	disp := l.login("", keys["display-1"], custdisp)
	if a := openFH(t, disp, fhOpen("p", map[string]any{"event": "presell"}, nil)); a["event"] != "custdisp.sale" {
		t.Fatalf("a display asking for presell events: ack %v, want custdisp.sale", a)
	}
	plain := l.login("", keys["display-1"], "") // a display key on an ordinary socket
	wantErr(t, plain, fhOpen("p", map[string]any{"event": "presell"}, nil), "forbidden", "counter", "presell")

	counterOther := l.login("", keys["counter-1"], "") // does the counter's work
	pk := sale(t, tab, sbA+"sale_create", nil, nil)["physkey"].(string)
	sale(t, tab, sbA+"sale_add_product", pk, map[string]any{"pid": 1001})
	ticket := sale(t, tab, sbA+"sale_park", pk, nil)["ticket"]
	sale(t, counterOther, "fd1.presell.recall", nil, map[string]any{"ticket": ticket})
	sale(t, counterOther, "fd1.presell.release", pk, nil)
	s := sale(t, counterOther, "fd1.presell.recall", nil, map[string]any{"ticket": ticket})
	sale(t, counterOther, sbA+"sale_add_payment", pk, map[string]any{"type": 1, "amount": s["saletotal"]})
	sid := sale(t, counterOther, sbA+"salesbuilder_complete", pk, nil)["sid"]
	qk := sale(t, tab, sbA+"sale_create", nil, nil)["physkey"].(string)
	sale(t, tab, sbA+"sale_add_product", qk, map[string]any{"pid": 1002})
	qticket := sale(t, tab, sbA+"sale_park", qk, nil)["ticket"]
	// The second is voided from the command line: another process writes
	// the lane DB, and the lane's firehoses carry that change too.
	cmd := exec.Command(binary, "presell", "void", fmt.Sprint(qticket), "--db", l.db, "--reason", "customer left")
	cmd.Env = quietEnv()
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), qk) {
		t.Fatalf("presell void: %v: %s", err, out)
	}

	want := []struct {
		event, physkey, actor string
		ticket                any
	}{
		{"created", pk, "tablet-1", nil}, {"submitted", pk, "tablet-1", ticket}, {"claimed", pk, "counter-1", ticket},
		{"released", pk, "counter-1", ticket}, {"claimed", pk, "counter-1", ticket}, {"completed", pk, "counter-1", ticket},
		{"created", qk, "tablet-1", nil}, {"submitted", qk, "tablet-1", qticket}, {"voided", qk, "cli", qticket},
	}
	var counterSaw []*packet
	for _, sub := range []struct {
		who string
		c   *conn
		rp  string
	}{{"counter", counter, "ps"}, {"tablet", tabWatch, "mine"}} {
		var last int64
		for i, w := range want {
			p := nextEvent(t, sub.c, sub.rp)
			if sub.rp == "ps" {
				counterSaw = append(counterSaw, p)
			}
			v := p.vmap(t)
			seq := p.mustSeq(t)
			if p.SC != "presell."+w.event || seq <= last || v["physkey"] != w.physkey || v["actor"] != w.actor ||
				!dateTimeRE.MatchString(fmt.Sprint(v["at_utc"])) || (w.ticket != nil && v["ticket"] != w.ticket) {
				t.Fatalf("%s: presell event %d = %s\nwant presell.%s of %s by %s, ticket %v, seq above %d", sub.who, i, p.raw, w.event, w.physkey, w.actor, w.ticket, last)
			}
			last = seq
			switch w.event {
			case "completed":
				if v["sid"] != sid {
					t.Fatalf("%s: presell.completed sid %v, want %v", sub.who, v["sid"], sid)
				}
			case "voided":
				if !strings.Contains(fmt.Sprint(v), "customer left") {
					t.Fatalf("%s: presell.voided does not carry the reason: %s", sub.who, p.raw)
				}
			}
		}
	}
	// Presell events replay like sale events: from the submission on.
	ack := openFH(t, counterOther, fhOpen("again", map[string]any{"event": "presell", "since": counterSaw[1].mustSeq(t)}, nil))
	if ack["replayed"] != 7.0 || ack["replay_truncated"] != false {
		t.Fatalf("presell replay ack %v, want 7 replayed", ack)
	}
	for i, p := range nextEvents(t, counterOther, "again", 7) {
		if !samePayload(t, p, counterSaw[i+2]) {
			t.Fatalf("replayed presell event %d: %s, want %s", i, p.raw, counterSaw[i+2].raw)
		}
	}

	// The display got sale display events for the same changes, nothing else.
	var scs []string
	for {
		p := nextEvent(t, disp, "p")
		if !strings.HasPrefix(p.SC, "custdisp.sale.") {
			t.Fatalf("display got %s", p.raw)
		}
		v := p.vmap(t)
		scs = append(scs, p.SC+":"+fmt.Sprint(v["status"]))
		if v["salephyskey"] == qk && v["status"] == "idle" {
			break
		}
	}
	wantSCs := []string{"custdisp.sale.add:active", "custdisp.sale.lines.add:active", "custdisp.sale.status:parked",
		"custdisp.sale.status:active", "custdisp.sale.status:parked", "custdisp.sale.status:active",
		"custdisp.sale.payments.add:active", "custdisp.sale.status:complete", "custdisp.sale.status:idle",
		"custdisp.sale.add:active", "custdisp.sale.lines.add:active", "custdisp.sale.status:parked",
		"custdisp.sale.status:void", "custdisp.sale.status:idle"}
	if !slices.Equal(scs, wantSCs) {
		t.Fatalf("display events:\n%v\nwant\n%v", scs, wantSCs)
	}
}

// --- 6. debugscope ---

// nextTrace reads trace records from a debugscope socket until one from a
// request of key fp, skipping the traces of other sockets' requests.
func nextTrace(t *testing.T, c *conn, fp string) *packet {
	t.Helper()
	for {
		p := nextEvent(t, c, "tr")
		if p.SC != "" {
			t.Fatalf("a tufe.trace record carries sc (SPEC §5.5 leaves it out): %s", p.raw)
		}
		if _, hasSeq := p.seq(t); hasSeq {
			t.Fatalf("a trace record carries a seq: %s", p.raw)
		}
		if p.vmap(t)["fp"] == fp {
			return p
		}
	}
}

func TestDebugscope(t *testing.T) {
	alongside(t)
	l := startLane(t)
	keys := l.keysFor(keyRequest{"support-1", "debug"}, keyRequest{"counter-1", "counter"}, keyRequest{"display-1", "display"})
	ds := l.login("", keys["support-1"], "debugscope")
	// A debug key sees no sale: asking for sale events is refused, not
	// acked with nothing ever to follow.
	for event, scopes := range map[string][]string{"custdisp.sale": {"display", "counter", "presell"}, "presell": {"counter", "presell"}} {
		wantErr(t, ds, fhOpen("s-"+event, map[string]any{"event": event}, nil), "forbidden", scopes...)
	}
	if a := openFH(t, ds, fhOpen("tr", map[string]any{"event": "debugscope.trace"}, nil)); a["event"] != "debugscope.trace" {
		t.Fatalf("trace ack: %v", a)
	}
	disp := l.login("", keys["display-1"], custdisp)
	openFH(t, disp, fhOpen("cd", map[string]any{"event": "custdisp.sale"}, nil))
	other := l.login("", keys["counter-1"], "")

	do(t, other, "fd1.products.get_products_list", nil, map[string]any{"limit": 1})
	pk := sale(t, other, sbA+"sale_create", nil, nil)["physkey"].(string)
	do(t, other, sbA+"sale_add_product", pk, map[string]any{"pid": 99999}).wantError(t, "unknown_product")
	for _, w := range []struct{ msg, msg2 string }{
		{"fd1.products.get_products_list", "ok"},
		{sbA + "sale_create", "ok"},
		{sbA + "sale_add_product", "unknown_product"},
	} {
		p := nextTrace(t, ds, "counter-1")
		v := p.vmap(t)
		if v["msg"] != w.msg || v["msg2"] != w.msg2 {
			t.Fatalf("trace %s, want msg %s msg2 %s", p.raw, w.msg, w.msg2)
		}
		if _, ok := v["thr"].(float64); !ok {
			t.Fatalf("trace has no thr: %s", p.raw)
		}
		if _, err := time.Parse(time.RFC3339Nano, fmt.Sprint(v["rve"])); err != nil {
			t.Fatalf("trace rve: %v: %s", err, p.raw)
		}
	}

	r := callPast(t, ds, map[string]any{"a": "fd1.diag.stats", "rq": "stats"})
	if r.Error != nil || r.SC != "diag.stats" {
		t.Fatalf("diag.stats: %s", r.raw)
	}
	var st struct {
		Sockets struct {
			ByPurpose map[string]float64 `json:"by_purpose"`
			Total     float64            `json:"total"`
		} `json:"sockets"`
		Writer struct {
			Batches   float64 `json:"batches"`
			Mutations float64 `json:"mutations"`
		} `json:"writer"`
		Firehose struct {
			Firehoses map[string]float64 `json:"firehoses"`
			Head      float64            `json:"journal_head"`
			Delivered float64            `json:"events_delivered"`
		} `json:"firehose"`
	}
	if err := json.Unmarshal(r.Data, &st); err != nil {
		t.Fatalf("diag.stats data: %v: %s", err, r.Data)
	}
	if !equalJSON(st.Sockets.ByPurpose, map[string]any{"debugscope": 1, "customerdisplay": 1, "fd1": 1}) || st.Sockets.Total != 3 {
		t.Fatalf("diag.stats sockets: %s", r.Data)
	}
	if st.Writer.Batches < 1 || st.Writer.Mutations < 1 {
		t.Fatalf("diag.stats writer (a sale was created): %s", r.Data)
	}
	if st.Firehose.Firehoses["debugscope.trace"] != 1 || st.Firehose.Firehoses["custdisp.sale"] != 1 || st.Firehose.Head < 1 || st.Firehose.Delivered < 4 {
		t.Fatalf("diag.stats firehose: %s", r.Data)
	}

	t.Run("debugscope needs a debugscope socket", func(t *testing.T) {
		admin := l.login("", l.key, "").in(t)
		wantErr(t, admin, req("fd1.diag.stats", nil, nil), "forbidden", "debugscope")
		wantErr(t, admin, fhOpen("tr", map[string]any{"event": "debugscope.trace"}, nil), "forbidden", "debugscope")
		admin.ping()
		debugPlain := l.login("", keys["support-1"], "").in(t)
		wantErr(t, debugPlain, req("fd1.diag.stats", nil, nil), "forbidden", "debugscope")
		debugPlain.ping()
		callPast(t, disp, req("fd1.diag.stats", nil, nil)).wantError(t, "forbidden")
		// An admin key may be a debugscope socket.
		adminDS := l.login("", l.key, "debugscope").in(t)
		openFH(t, adminDS, fhOpen("tr2", map[string]any{"event": "debugscope.trace"}, nil))
		if r := callPast(t, adminDS, req("fd1.diag.stats", nil, nil)); r.Error != nil || r.SC != "diag.stats" {
			t.Fatalf("diag.stats with an admin key on a debugscope socket: %s", r.raw)
		}
	})

	t.Run("refused requests are traced too", func(t *testing.T) {
		c := other.in(t)
		wantErr(t, c, req("fd1.diag.stats", nil, nil), "forbidden")
		wantErr(t, c, req("fd1.nothing.here", nil, nil), "unknown_endpoint")
		c.ping()
		for _, w := range []struct{ msg, msg2 string }{
			// An unknown name is not echoed: a client may have put anything in it.
			{"fd1.diag.stats", "forbidden"}, {"(no endpoint)", "unknown_endpoint"}, {"fd1.debug.ping", "ok"},
		} {
			if v := nextTrace(t, ds.in(t), "counter-1").vmap(t); v["msg"] != w.msg || v["msg2"] != w.msg2 {
				t.Fatalf("trace %v, want msg %s msg2 %s", v, w.msg, w.msg2)
			}
		}
	})
}

// --- 7. bad input ---

func TestFirehoseBadInput(t *testing.T) {
	alongside(t)
	l := startLane(t)
	keys := l.keysFor(keyRequest{"display-1", "display"})
	c := l.login("", l.key, "")
	dev := map[string]any{"event": "device.event"}

	t.Run("unknown event family", func(t *testing.T) {
		c := c.in(t)
		wantErr(t, c, fhOpen("w", map[string]any{"event": "weather.event"}, nil), "bad_argument",
			"weather.event", "custdisp.sale", "debugscope.trace", "device.event", "presell")
		wantErr(t, c, fhOpen("w", nil, nil), "bad_argument", "device.event")
		c.ping()
	})
	t.Run("bad filters", func(t *testing.T) {
		c := c.in(t)
		wantErr(t, c, fhOpen("f", dev, map[string]any{"temp(~)": 5}), "bad_filter", "~", ">=")
		wantErr(t, c, fhOpen("f", dev, map[string]any{"temp(>=": 5}), "bad_filter", "temp")
		wantErr(t, c, fhOpen("f", dev, map[string]any{"temp(>=)": nil}), "bad_filter", "null")
		wantErr(t, c, fhOpen("f", dev, map[string]any{"ok(<)": true}), "bad_filter", "boolean")
		wantErr(t, c, fhOpen("f", dev, map[string]any{"a b": 1}), "bad_filter")
		c.ping()
		openFH(t, c, fhOpen("f", dev, map[string]any{"temp(>=)": 5})) // the rq was never taken
	})
	t.Run("close or change a firehose that is not open", func(t *testing.T) {
		c := c.in(t)
		wantErr(t, c, map[string]any{"a": fhCloseA, "rq": "x", "k": "never-opened"}, "not_found", "never-opened")
		wantErr(t, c, map[string]any{"a": fhCloseA, "rq": "x"}, "bad_argument", "k")
		wantErr(t, c, map[string]any{"a": fhOptionA, "rq": "x", "k": "never-opened", "v": map[string]any{"tablet": "t"}}, "not_found", "never-opened")
		openFH(t, c, fhOpen("once", dev, nil))
		r := doPkt(t, c, map[string]any{"a": fhCloseA, "rq": "x", "k": "once"})
		if r.Error != nil || r.data(t)["status"] != "closed" {
			t.Fatalf("close: %s", r.raw)
		}
		wantErr(t, c, map[string]any{"a": fhCloseA, "rq": "x", "k": "once"}, "not_found", "once")
		c.ping()
	})
	t.Run("the same rq twice", func(t *testing.T) {
		c := l.login("", l.key, "").in(t)
		openFH(t, c, fhOpen("dup", dev, nil))
		wantErr(t, c, fhOpen("dup", dev, map[string]any{"n(>)": 0}), "conflict", "dup")
		// The first stays open, once: each event comes once.
		gateway := l.login("", l.key, "").in(t)
		inject(t, gateway, "test.dup", map[string]any{"n": 1})
		inject(t, gateway, "test.dup", map[string]any{"n": 2})
		var ns []any
		for _, p := range nextEvents(t, c, "dup", 2) {
			ns = append(ns, p.vmap(t)["n"])
		}
		if !equalJSON(ns, []any{1, 2}) {
			t.Fatalf("events %v, want [1 2] each once", ns)
		}
	})
	t.Run("open without rq", func(t *testing.T) {
		c := c.in(t)
		r := c.call(map[string]any{"a": fhOpenA, "v": dev})
		r.wantError(t, "bad_argument")
		if !strings.Contains(r.Error.Message, "rq") {
			t.Fatalf("message %q does not mention rq", r.Error.Message)
		}
		wantErr(t, c, fhOpen("neg", map[string]any{"event": "custdisp.sale", "since": -1}, nil), "bad_argument", "since")
		// An empty rq could never be closed (close_firehose's k names it).
		wantErr(t, c, fhOpen("", dev, nil), "bad_argument", "rq", "not empty")
		c.ping()
	})
	t.Run("a display socket cannot change anything", func(t *testing.T) {
		// Even with the admin key: the socket's purpose decides.
		for _, key := range []string{keys["display-1"], l.key} {
			displayCannotChange(t, l, key)
		}
	})
	t.Run("no firehose over HTTP", func(t *testing.T) {
		status, p := l.httpCall("GET", "/fd1/firehose/open_firehose?_rq=h&_v.event=device.event", map[string]string{"x-api-key": l.key}, "")
		if status < 400 || p.Error == nil || p.Error.Code != "unsupported" || !strings.Contains(p.Error.Message, "WebSocket") {
			t.Fatalf("HTTP open_firehose: %d %s", status, p.raw)
		}
		c.in(t).ping()
	})
}

// displayCannotChange logs in a customerdisplay socket with key and checks
// that only the display endpoints answer, the socket working throughout.
func displayCannotChange(t *testing.T, l *lane, key string) {
	t.Helper()
	d := l.login("", key, custdisp).in(t)
	info := func() {
		t.Helper()
		r := doPkt(t, d, req("fd1.customerdisplay.get_info", nil, nil))
		if r.Error != nil || r.data(t)["storename"] == nil {
			t.Fatalf("get_info: %s", r.raw)
		}
	}
	for _, p := range []map[string]any{
		req(sbA+"sale_create", nil, nil),
		req(sbA+"sale_add_product", newUUID(), map[string]any{"pid": 1001}),
		req("fd1.presell.recall", nil, map[string]any{"ticket": 1}),
		req(injectA, nil, map[string]any{"event": "device.event", "sc": "x", "data": map[string]any{}}),
		req("fd1.products.get_products_list", nil, nil),
	} {
		wantErr(t, d, p, "forbidden", "customer display")
		info()
	}
	wantErr(t, d, fhOpen("f", nil, map[string]any{"temp(~)": 1}), "bad_filter", "~")
	if a := openFH(t, d, fhOpen("f", map[string]any{"event": "device.event"}, nil)); a["event"] != "custdisp.sale" {
		t.Fatalf("a display asking for device events: ack %v, want custdisp.sale", a)
	}
}

// TestFirehosesPerKey: one key's firehoses are counted over all its
// sockets: past --max-firehoses-per-key (64 by default, one socket's
// worth) an open on any of them is refused with limit_reached, saying
// why; another key is not held back, and a socket that closes gives its
// firehoses back.
func TestFirehosesPerKey(t *testing.T) {
	alongside(t)
	l := startLane(t)
	keys := l.keysFor(keyRequest{"display-1", "display"}, keyRequest{"display-2", "display"})
	nothing := map[string]any{"saletotal(>)": 1e9}
	var socks []*conn
	for s := range 2 {
		c := l.login("", keys["display-1"], custdisp)
		var pkts []map[string]any
		for i := range 32 {
			pkts = append(pkts, fhOpen(fmt.Sprintf("s%d-%d", s, i), map[string]any{"event": "custdisp.sale"}, nothing))
		}
		for rq, r := range c.callAll(pkts...) {
			if r.Error != nil || r.SC != "firehose.status" {
				t.Fatalf("firehose %s of the key's first 64: %s", rq, r.raw)
			}
		}
		socks = append(socks, c)
	}
	third := l.login("", keys["display-1"], custdisp)
	r := third.call(fhOpen("one-more", map[string]any{"event": "custdisp.sale"}, nil))
	r.wantError(t, "limit_reached")
	if !strings.Contains(r.Error.Message, `key "display-1" already has 64 firehoses open`) {
		t.Fatalf("the refusal %q does not name the key and its cap", r.Error.Message)
	}
	openFH(t, l.login("", keys["display-2"], custdisp), fhOpen("other-key", map[string]any{"event": "custdisp.sale"}, nil))

	socks[0].ws.Close()
	// The lane sees the close when it reads it; each try is one round
	// trip, and the 32 firehoses come free with the socket.
	for try := 0; ; try++ {
		r := third.call(fhOpen(fmt.Sprintf("after-close-%d", try), map[string]any{"event": "custdisp.sale"}, nil))
		if r.Error == nil {
			break
		}
		if r.Error.Code != "limit_reached" || try == 1000 {
			t.Fatalf("open after another socket of the key closed, try %d: %s", try, r.raw)
		}
	}
}
