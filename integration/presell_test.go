package integration

import (
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

const presellQuery = "?purpose=presell"

// TestPresellTicket: a presell socket submits a sale with sale_park; the
// presold sale, its lines and its ticket are in the lane DB where a second
// process (the counter) reads them, and the counter recalls it.
func TestPresellTicket(t *testing.T) {
	alongside(t)
	l := startLane(t)
	tablets := l.newKeys("tablet", "presell", 2)
	counterKey := l.newKeys("counter", "counter", 1)[0]
	t1 := l.login(presellQuery, tablets[0], "")
	t2 := l.login(presellQuery, tablets[1], "")
	add := sbA + "sale_add_product"

	s := sale(t, t1, sbA+"sale_create", nil, nil)
	p1 := s["physkey"].(string)
	if s["presell"] != 1.0 || s["tablet"] != "tablet-1" || s["ticket"] != nil {
		t.Fatalf("new presell: presell %v tablet %v ticket %v", s["presell"], s["tablet"], s["ticket"])
	}
	sale(t, t1, add, p1, map[string]any{"pid": 1001, "qty": 2})
	sale(t, t1, add, p1, map[string]any{"plu": "101", "qty": 300}) // 300 g at 39.90/kg
	p2 := sale(t, t2, sbA+"salesbuilder_create", nil, nil)["physkey"].(string)
	sale(t, t2, add, p2, map[string]any{"plu": "CROI"})
	sale(t, t2, add, p2, map[string]any{"barcode": kombucha2nd})
	sale(t, t2, sbA+"sale_set_customer", p2, map[string]any{"cid": 7}) // 5% off

	// Both tablets submit at the same moment.
	park1, park2 := req(sbA+"sale_park", p1, nil), req(sbA+"sale_park", p2, nil)
	t1.send(park1)
	t2.send(park2)
	r1, r2 := t1.next(), t2.next()
	parked := map[string]map[string]any{}
	for i, r := range []*packet{r1, r2} {
		s := saleReply(t, r)
		tablet := fmt.Sprintf("tablet-%d", i+1)
		if s["phase"] != 5.0 || s["presell"] != 1.0 || s["tablet"] != tablet || s["holder"] != tablet {
			t.Fatalf("submitted presell: %s", r.raw)
		}
		if tk := num(s["ticket"]); tk < 1 || tk > 9999 || tk != math.Trunc(tk) {
			t.Fatalf("ticket = %v: %s", s["ticket"], r.raw)
		}
		if !wordRE.MatchString(fmt.Sprint(s["ticket_word"])) || fmt.Sprint(s["ticket_barcode"]) == "" || s["ticket_barcode"] == nil {
			t.Fatalf("ticket_word %v ticket_barcode %v", s["ticket_word"], s["ticket_barcode"])
		}
		parked[s["physkey"].(string)] = s
	}
	a, b := parked[p1], parked[p2]
	if a == nil || b == nil {
		t.Fatalf("park replies name %v, want %s and %s", parked, p1, p2)
	}
	if a["ticket"] == b["ticket"] || a["ticket_word"] == b["ticket_word"] || a["ticket_barcode"] == b["ticket_barcode"] {
		t.Fatalf("two presells share a ticket: %v/%v/%v and %v/%v/%v",
			a["ticket"], a["ticket_word"], a["ticket_barcode"], b["ticket"], b["ticket_word"], b["ticket_barcode"])
	}
	checkTotal(t, a, 22.97, 0)
	checkTotal(t, b, 10.55, 0) // 4.94 + 5.605 (5% off 5.90, rounded once, half up)

	// A second OS process reads the presold sales from the DB file while
	// the lane keeps running.
	rows := sqliteRows(t, l.db, `SELECT physkey, phase, presell, created_by, holder_name, ticket, ticket_word,
		ticket_barcode, saletotal_cents, cid, sid, submitted_utc IS NOT NULL AS submitted
		FROM sales WHERE physkey IN %s ORDER BY physkey`, sqlList([]string{p1, p2}))
	if len(rows) != 2 {
		t.Fatalf("sqlite3 sees %d of the 2 presells: %v", len(rows), rows)
	}
	for _, row := range rows {
		s := parked[row["physkey"].(string)]
		want := map[string]any{
			"physkey": s["physkey"], "phase": 5.0, "presell": 1.0, "created_by": s["tablet"], "holder_name": s["tablet"],
			"ticket": s["ticket"], "ticket_word": s["ticket_word"], "ticket_barcode": s["ticket_barcode"],
			"saletotal_cents": float64(cents(s["saletotal"])), "cid": s["cid"], "sid": nil, "submitted": 1.0,
		}
		if !equalJSON(row, want) {
			t.Fatalf("presell row in the DB:\n got %v\nwant %v", row, want)
		}
	}
	lines := sqliteRows(t, l.db, `SELECT sale_physkey, seqnce, pid, qty, unitprice_cents, totalprice_cents, pricecause
		FROM sale_lines WHERE sale_physkey IN %s ORDER BY sale_physkey, seqnce`, sqlList([]string{p1, p2}))
	var want []map[string]any
	for _, pk := range []string{p1, p2} {
		for _, x := range parked[pk]["lines"].([]any) {
			ln := x.(map[string]any)
			want = append(want, map[string]any{"sale_physkey": pk, "seqnce": ln["seqnce"], "pid": ln["pid"], "qty": ln["qty"],
				"unitprice_cents": float64(cents(ln["unitprice"])), "totalprice_cents": float64(cents(ln["totalprice"])), "pricecause": ln["pricecause"]})
		}
	}
	sort.Slice(want, func(i, j int) bool {
		if want[i]["sale_physkey"] != want[j]["sale_physkey"] {
			return want[i]["sale_physkey"].(string) < want[j]["sale_physkey"].(string)
		}
		return num(want[i]["seqnce"]) < num(want[j]["seqnce"])
	})
	if len(want) != 4 || !equalJSON(lines, want) {
		t.Fatalf("presell lines in the DB:\n got %v\nwant %v", lines, want)
	}

	// The tablet's list shows its submitted presell with its ticket.
	list := doPkt(t, t1, map[string]any{"a": sbA + "get_sale", "rq": "mine", "qk": "all"}).rows(t)
	if len(list) != 1 || list[0]["physkey"] != p1 || list[0]["phase"] != 5.0 || list[0]["ticket"] != a["ticket"] {
		t.Fatalf("tablet-1 get_sale qk=all: %v", list)
	}

	t.Run("an empty presell cannot be submitted", func(t *testing.T) {
		e := sale(t, t1, sbA+"sale_create", nil, nil)["physkey"].(string)
		wantErr(t, t1, req(sbA+"sale_park", e, nil), "conflict", e, "no lines")
		row := sqliteRows(t, l.db, `SELECT phase, ticket, submitted_utc FROM sales WHERE physkey = %s`, sqlQuote(e))
		if !equalJSON(row, []map[string]any{{"phase": 0, "ticket": nil, "submitted_utc": nil}}) {
			t.Fatalf("refused presell in the DB: %v", row)
		}
	})

	t.Run("the counter recalls and completes a presell", func(t *testing.T) {
		c := l.login("", counterKey, "")
		s := sale(t, c, sbA+"sale_unpark", p1, nil)
		if s["phase"] != 0.0 || s["holder"] != "counter-1" || s["tablet"] != "tablet-1" || s["ticket"] != a["ticket"] {
			t.Fatalf("recalled presell: %v", s)
		}
		checkLines(t, s, line{1, 1001, 2, 5.5, 11, 0, 0, 10}, line{2, 1024, 300, 39.9, 11.97, 0, 0, 10})
		// The tablet let go of it.
		wantErr(t, t1, req(sbA+"sale_add_product", p1, map[string]any{"pid": 1001}), "claimed", "counter-1")
		sale(t, c, sbA+"sale_add_payment", p1, map[string]any{"type": 3, "amount": 22.97})
		d := sale(t, c, sbA+"salesbuilder_complete", p1, nil)
		if d["phase"] != 1.0 || num(d["sid"]) < 1 || d["change"] != 0.0 {
			t.Fatalf("completed presell: %v", d)
		}
		row := sqliteRows(t, l.db, `SELECT phase, sid, created_by, holder_name, presell FROM sales WHERE physkey = %s`, sqlQuote(p1))
		if !equalJSON(row, []map[string]any{{"phase": 1, "sid": d["sid"], "created_by": "tablet-1", "holder_name": "counter-1", "presell": 1}}) {
			t.Fatalf("completed presell in the DB: %v", row)
		}
	})
}

// TestPresellKeyCannotComplete: completing (taking the money for) a sale is
// the counter's right; a tablet builds and submits presells only.
func TestPresellKeyCannotComplete(t *testing.T) {
	alongside(t)
	l := startLane(t)
	tab := l.login(presellQuery, l.newKeys("tablet", "presell", 1)[0], "")
	pk := sale(t, tab, sbA+"sale_create", nil, nil)["physkey"].(string)
	sale(t, tab, sbA+"sale_add_product", pk, map[string]any{"pid": 1001})
	if r := do(t, tab, sbA+"sale_add_payment", pk, map[string]any{"type": 1, "amount": 10}); r.Error != nil && r.Error.Code != "forbidden" {
		t.Fatalf("payment from a tablet: %s", r.raw)
	}
	wantErr(t, tab, req(sbA+"salesbuilder_complete", pk, nil), "forbidden", "counter")
	row := sqliteRows(t, l.db, `SELECT phase, sid FROM sales WHERE physkey = %s`, sqlQuote(pk))
	if !equalJSON(row, []map[string]any{{"phase": 0, "sid": nil}}) {
		t.Fatalf("the tablet completed its sale: %v", row)
	}
}

// TestPresellOrderWithoutK: on a presell socket, requests are ordered per
// sale. A request without k means the tablet's top sale, so it must not
// overtake earlier requests that named that same sale by its physkey.
func TestPresellOrderWithoutK(t *testing.T) {
	alongside(t)
	l := startLane(t)
	c := l.login(presellQuery, l.newKeys("tablet", "presell", 1)[0], "")
	for round := range 5 {
		pk := sale(t, c, sbA+"sale_create", nil, nil)["physkey"].(string)
		var pkts []map[string]any
		for range 3 {
			pkts = append(pkts, req(sbA+"sale_add_product", pk, map[string]any{"pid": 1001}))
		}
		park := req(sbA+"sale_park", nil, nil)
		got := c.in(t).callAll(append(pkts, park)...)
		for _, p := range pkts {
			rq, _ := json.Marshal(p["rq"])
			if r := got[string(rq)]; r.Error != nil {
				t.Fatalf("round %d: add_product sent before the park failed: %s", round, r.raw)
			}
		}
		rq, _ := json.Marshal(park["rq"])
		s := saleReply(t, got[string(rq)])
		if s["physkey"] != pk || s["phase"] != 5.0 || len(s["lines"].([]any)) != 3 {
			t.Fatalf("round %d: park without k submitted %v with %d lines, want %s with the 3 lines sent before it",
				round, s["physkey"], len(s["lines"].([]any)), pk)
		}
	}
}

// TestExactlyOnce: a request with an ik has its effect once, however often
// it is sent, and every retry gets the first reply byte for byte.
func TestExactlyOnce(t *testing.T) {
	alongside(t)
	l := startLane(t)
	keys := l.newKeys("tablet", "presell", 2)
	c := l.login(presellQuery, keys[0], "")
	ikCreate, ikAdd := newUUID(), newUUID()
	create := map[string]any{"a": sbA + "sale_create", "rq": "create", "ik": ikCreate}
	first := doPkt(t, c, create)
	pk := saleReply(t, first)["physkey"].(string)
	add := map[string]any{"a": sbA + "sale_add_product", "rq": "add", "ik": ikAdd, "k": pk, "v": map[string]any{"pid": 1020, "qty": 2}}
	firstAdd := doPkt(t, c, add)
	checkLines(t, saleReply(t, firstAdd), line{1, 1020, 2, 11.5, 23, 0, 0, 10})

	// The link drops; the tablet reconnects, logs in again and resends.
	c.ws.Close()
	c = l.login(presellQuery, keys[0], "")
	for round := range 2 {
		if round == 1 {
			create["rq"], add["rq"] = "create-again", "add-again" // rq is not part of the request's identity
		}
		again := doPkt(t, c, create)
		if string(again.Data) != string(first.Data) || again.k() != pk {
			t.Fatalf("retried create:\n got %s\nwant %s", again.raw, first.raw)
		}
		againAdd := doPkt(t, c, add)
		if string(againAdd.Data) != string(firstAdd.Data) || againAdd.k() != pk {
			t.Fatalf("retried add_product:\n got %s\nwant %s", againAdd.raw, firstAdd.raw)
		}
	}
	checkOnce := func(t *testing.T, lines int) {
		t.Helper()
		n := sqliteRows(t, l.db, `SELECT (SELECT COUNT(*) FROM sales WHERE created_by = 'tablet-1') AS sales,
			(SELECT COUNT(*) FROM sale_lines WHERE sale_physkey = %s) AS lines,
			(SELECT COUNT(*) FROM idempotency WHERE ik IN %s) AS iks`, sqlQuote(pk), sqlList([]string{ikCreate, ikAdd}))
		if !equalJSON(n, []map[string]any{{"sales": 1, "lines": lines, "iks": 2}}) {
			t.Fatalf("after retries the DB holds %v, want 1 sale with %d lines and one record per ik", n, lines)
		}
	}
	checkOnce(t, 1)

	t.Run("same ik, other arguments", func(t *testing.T) {
		other := map[string]any{"a": sbA + "sale_add_product", "rq": "add-3", "ik": ikAdd, "k": pk, "v": map[string]any{"pid": 1020, "qty": 3}}
		wantErr(t, c, other, "ik_reused", ikAdd)
		otherEndpoint := map[string]any{"a": sbA + "sale_add_product", "rq": "add-4", "ik": ikCreate, "k": pk, "v": map[string]any{"pid": 1020, "qty": 2}}
		wantErr(t, c, otherEndpoint, "ik_reused", ikCreate)
		checkOnce(t, 1)
	})

	t.Run("malformed ik", func(t *testing.T) {
		// Any 1–128 printable ASCII characters is an ik ("12345" and
		// "not-a-uuid" are); these are not.
		for _, ik := range []string{"", "has space", "naïve", "tab\there", strings.Repeat("x", 129)} {
			p := map[string]any{"a": sbA + "sale_add_product", "rq": "bad-ik", "ik": ik, "k": pk, "v": map[string]any{"pid": 1001}}
			wantErr(t, c, p, "bad_argument", "ik")
		}
		checkOnce(t, 1)
	})

	t.Run("link drops before the reply", func(t *testing.T) {
		ik := newUUID()
		p := map[string]any{"a": sbA + "sale_add_product", "rq": "lost", "ik": ik, "k": pk, "v": map[string]any{"pid": 1001}}
		lost := l.login(presellQuery, keys[0], "")
		lost.in(t).send(p)
		lost.ws.Close()
		retry := l.login(presellQuery, keys[0], "").in(t)
		s := saleReply(t, doPkt(t, retry, p))
		checkLines(t, s, line{1, 1020, 2, 11.5, 23, 0, 0, 10}, line{2, 1001, 1, 5.5, 5.5, 0, 0, 10})
		again := doPkt(t, retry, p)
		if s2 := saleReply(t, again); !equalJSON(s2, s) {
			t.Fatalf("second retry: %v\nfirst retry: %v", s2, s)
		}
		checkOnce(t, 2)
	})

	t.Run("another key's ik does not replay its reply", func(t *testing.T) {
		other := l.login(presellQuery, keys[1], "").in(t)
		r := doPkt(t, other, map[string]any{"a": sbA + "sale_create", "rq": "theirs", "ik": ikCreate})
		if r.Error != nil {
			r.wantError(t, "ik_reused")
			return
		}
		if s := saleReply(t, r); s["physkey"] == pk || s["holder"] != "tablet-2" {
			t.Fatalf("tablet-2 got tablet-1's sale %v (holder %v) for a reused ik", s["physkey"], s["holder"])
		}
	})

	t.Run("a retry under the other name generation gets that name's reply shape", func(t *testing.T) {
		r := doPkt(t, c, map[string]any{"a": sbA + "salesbuilder_create", "rq": "old-name", "ik": ikCreate})
		if r.Error != nil {
			r.wantError(t, "ik_reused")
			return
		}
		if s := saleReply(t, r); s["physkey"] != pk {
			t.Fatalf("retry under the other name: physkey %v, want %s", s["physkey"], pk)
		}
	})
}

// tabletClient is a presell tablet for goroutines: it reports failures as
// errors instead of failing the test from a goroutine.
type tabletClient struct {
	name string
	ws   *websocket.Conn
	seq  int
}

func dialTablet(addr, name, key string) (*tabletClient, error) {
	ws, _, err := websocket.DefaultDialer.Dial("ws://"+addr+"/fd1/open_websocket"+presellQuery, nil)
	if err != nil {
		return nil, fmt.Errorf("dial: %w", err)
	}
	tc := &tabletClient{name: name, ws: ws}
	r, err := tc.exchange(map[string]any{"a": "fd1.session.login", "v": map[string]any{"apikey": key}})
	if err != nil {
		ws.Close()
		return nil, err
	}
	for _, p := range r {
		if p.Error != nil {
			ws.Close()
			return nil, fmt.Errorf("login: %s", p.raw)
		}
	}
	return tc, nil
}

// exchange gives each packet an rq, sends them all back to back, then reads
// one reply per packet; replies come back in the order of pkts, matched by rp.
func (tc *tabletClient) exchange(pkts ...map[string]any) ([]*packet, error) {
	index := map[string]int{}
	for i, p := range pkts {
		tc.seq++
		rq := fmt.Sprintf("%s/%d", tc.name, tc.seq)
		p["rq"] = rq
		b, _ := json.Marshal(rq)
		index[string(b)] = i
		msg, err := json.Marshal(p)
		if err != nil {
			return nil, err
		}
		if err := tc.ws.WriteMessage(websocket.TextMessage, msg); err != nil {
			return nil, fmt.Errorf("send %s: %w", p["a"], err)
		}
	}
	out := make([]*packet, len(pkts))
	for range pkts {
		_ = tc.ws.SetReadDeadline(time.Now().Add(60 * time.Second))
		_, msg, err := tc.ws.ReadMessage()
		if err != nil {
			return nil, fmt.Errorf("read: %w", err)
		}
		p := &packet{raw: msg}
		if err := json.Unmarshal(msg, p); err != nil {
			return nil, fmt.Errorf("reply is not JSON: %s", msg)
		}
		noteSales(msg)
		i, ok := index[p.rpKey()]
		if !ok || out[i] != nil {
			return nil, fmt.Errorf("unexpected or repeated reply: %s", msg)
		}
		out[i] = p
	}
	return out, nil
}

// soldLine is a line a tablet was told is on its sale.
type soldLine struct{ pid, qty int }

// soldSale is a presell a tablet built and submitted.
type soldSale struct {
	tablet  string
	physkey string
	lines   []soldLine // index = seqnce - 1
	ticket  float64
}

// activePIDs are the demo products on sale; weighed ones (sold in grams).
var (
	activePIDs = func() []int {
		var out []int
		for pid := 1001; pid <= 1039; pid++ {
			out = append(out, pid)
		}
		return out
	}()
	weighedPID = map[int]bool{1024: true, 1025: true, 1026: true, 1027: true, 1028: true, 1030: true, 1031: true}
)

// runTablet builds nSales presells of nLines lines each, pipelined: every
// create and add_product is sent before any reply is read (requests for one
// sale stay in order on the lane; different sales run side by side), then
// submits them all at once. The only error it accepts is the one it asks
// for: one add_product of an unknown pid per sale.
func runTablet(addr, name, key string, n, nSales, nLines int) ([]soldSale, error) {
	tc, err := dialTablet(addr, name, key)
	if err != nil {
		return nil, err
	}
	defer tc.ws.Close()
	sales := make([]soldSale, nSales)
	var pkts []map[string]any
	for j := range sales {
		sales[j] = soldSale{tablet: name, physkey: newUUID()}
		pkts = append(pkts, map[string]any{"a": sbA + "sale_create", "v": map[string]any{"physkey": sales[j].physkey}})
	}
	for m := range nLines {
		for j := range sales {
			pid := activePIDs[(n*7+j*5+m*3)%len(activePIDs)]
			qty := 1 + (n+j+m)%3
			if weighedPID[pid] {
				qty = 100 + 50*m + j
			}
			sales[j].lines = append(sales[j].lines, soldLine{pid, qty})
			pkts = append(pkts, map[string]any{"a": sbA + "sale_add_product", "k": sales[j].physkey, "v": map[string]any{"pid": pid, "qty": qty, "linesource": 10}})
		}
	}
	// One bad line per sale, last: it fails alone (its savepoint), whatever
	// else shares its group-commit batch, and uses up no seqnce.
	for j := range sales {
		pkts = append(pkts, map[string]any{"a": sbA + "sale_add_product", "k": sales[j].physkey, "v": map[string]any{"pid": 99999}})
	}
	replies, err := tc.exchange(pkts...)
	if err != nil {
		return nil, err
	}
	bad := replies[len(replies)-nSales:]
	replies = replies[:len(replies)-nSales]
	for _, r := range bad {
		if r.Error == nil || r.Error.Code != "unknown_product" || !strings.Contains(r.Error.Message, "99999") {
			return nil, fmt.Errorf("add of pid 99999 answered %s", r.raw)
		}
	}
	for i, r := range replies {
		s, err := saleFrom(r)
		if err != nil {
			return nil, err
		}
		if i < nSales {
			if s["physkey"] != sales[i].physkey || s["presell"] != 1.0 || s["tablet"] != name {
				return nil, fmt.Errorf("create answered %s", r.raw)
			}
			continue
		}
		// The add of line m to sale j: the sale now has m+1 lines, this one last.
		m, j := (i-nSales)/nSales, (i-nSales)%nSales
		got, _ := s["lines"].([]any)
		want := sales[j].lines[m]
		if s["physkey"] != sales[j].physkey || len(got) != m+1 {
			return nil, fmt.Errorf("add of line %d to %s answered with %d lines: %s", m+1, sales[j].physkey, len(got), r.raw)
		}
		ln := got[m].(map[string]any)
		if ln["seqnce"] != float64(m+1) || ln["pid"] != float64(want.pid) || ln["qty"] != float64(want.qty) {
			return nil, fmt.Errorf("add of line %d to %s: line %v, want pid %d qty %d", m+1, sales[j].physkey, ln, want.pid, want.qty)
		}
	}
	var parks []map[string]any
	for j := range sales {
		parks = append(parks, map[string]any{"a": sbA + "sale_park", "k": sales[j].physkey})
	}
	replies, err = tc.exchange(parks...)
	if err != nil {
		return nil, err
	}
	for j, r := range replies {
		s, err := saleFrom(r)
		if err != nil {
			return nil, err
		}
		lines, _ := s["lines"].([]any)
		if s["physkey"] != sales[j].physkey || s["phase"] != 5.0 || num(s["ticket"]) < 1 || len(lines) != nLines {
			return nil, fmt.Errorf("park answered %s", r.raw)
		}
		sales[j].ticket = num(s["ticket"])
	}
	return sales, nil
}

// TestPresellConcurrency: many tablets build and submit presells at once,
// pipelining, while a counter process writes the same lane DB. Nobody gets
// an error, every line a tablet was told about is in the DB exactly once,
// and every presell has its own ticket. Group commit must not change that.
func TestPresellConcurrency(t *testing.T) {
	alongside(t)
	tests := []struct {
		name                  string
		flags                 []string
		tablets, sales, lines int
	}{
		{"group commit", nil, 50, 3, 4},
		{"no group commit", []string{"--group-commit-wait", "0"}, 20, 2, 3},
	}
	// Every tablet dials at once from this one address; in a store each
	// has its own, so the per-address cap on sockets not yet logged in is
	// lifted here.
	for i := range tests {
		tests[i].flags = append(tests[i].flags, "--max-unauth-per-address", "64")
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := startLane(t, tt.flags...)
			keys := l.newKeys("tablet", "presell", tt.tablets)
			counter := startCounterProc(t, l.db)

			results := make([][]soldSale, tt.tablets)
			errs := make([]error, tt.tablets)
			var wg sync.WaitGroup
			start := make(chan struct{})
			for i := range tt.tablets {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					name := fmt.Sprintf("tablet-%d", i+1)
					results[i], errs[i] = runTablet(l.addr, name, keys[i], i, tt.sales, tt.lines)
				}()
			}
			before := counter.commits.Load()
			close(start)
			wg.Wait()
			during := counter.commits.Load() - before
			counterSales, counterStaff := counter.stop()
			for i, err := range errs {
				if err != nil {
					t.Errorf("tablet-%d: %v", i+1, err)
				}
			}
			if t.Failed() {
				return
			}

			// Everything the tablets were told, read back by another process.
			rows := sqliteRows(t, l.db, `SELECT s.physkey, s.phase, s.created_by, s.holder_name, s.ticket,
				l.seqnce, l.pid, l.qty FROM sales s LEFT JOIN sale_lines l ON l.sale_physkey = s.physkey
				WHERE s.presell = 1 ORDER BY s.physkey, l.seqnce`)
			type dbSale struct {
				phase, ticket     float64
				createdBy, holder string
				lines             map[float64][]soldLine
			}
			inDB := map[string]*dbSale{}
			for _, r := range rows {
				pk := r["physkey"].(string)
				s := inDB[pk]
				if s == nil {
					s = &dbSale{phase: num(r["phase"]), ticket: num(r["ticket"]), createdBy: fmt.Sprint(r["created_by"]), holder: fmt.Sprint(r["holder_name"]), lines: map[float64][]soldLine{}}
					inDB[pk] = s
				}
				if r["seqnce"] != nil {
					s.lines[num(r["seqnce"])] = append(s.lines[num(r["seqnce"])], soldLine{int(num(r["pid"])), int(num(r["qty"]))})
				}
			}
			if len(inDB) != tt.tablets*tt.sales {
				t.Errorf("the DB holds %d presells, the tablets submitted %d", len(inDB), tt.tablets*tt.sales)
			}
			tickets := map[float64]string{}
			for _, sales := range results {
				for _, want := range sales {
					got := inDB[want.physkey]
					if got == nil {
						t.Errorf("%s's presell %s is not in the DB", want.tablet, want.physkey)
						continue
					}
					if got.phase != 5 || got.createdBy != want.tablet || got.holder != want.tablet || got.ticket != want.ticket {
						t.Errorf("%s in the DB: phase %v created_by %s holder %s ticket %v; want 5, %s, %s, %v",
							want.physkey, got.phase, got.createdBy, got.holder, got.ticket, want.tablet, want.tablet, want.ticket)
					}
					if len(got.lines) != len(want.lines) {
						t.Errorf("%s has %d lines in the DB, the tablet was told %d", want.physkey, len(got.lines), len(want.lines))
					}
					for i, wl := range want.lines {
						if gl := got.lines[float64(i+1)]; len(gl) != 1 || gl[0] != wl {
							t.Errorf("%s line %d in the DB: %v, want once %v", want.physkey, i+1, gl, wl)
						}
					}
					if other, dup := tickets[want.ticket]; dup {
						t.Errorf("ticket %v is on both %s and %s", want.ticket, other, want.physkey)
					}
					tickets[want.ticket] = want.physkey
				}
			}

			// The counter's own writes all landed, and the file is sound.
			theirs := sqliteRows(t, l.db, `SELECT (SELECT COUNT(*) FROM sales WHERE created_by = 'counterproc' AND phase = 1) AS sales,
				(SELECT COUNT(*) FROM sale_lines l JOIN sales s ON s.physkey = l.sale_physkey WHERE s.created_by = 'counterproc') AS lines,
				(SELECT COUNT(*) FROM staff WHERE lastname = 'Process') AS staff`)
			if !equalJSON(theirs, []map[string]any{{"sales": counterSales, "lines": counterSales, "staff": counterStaff}}) {
				t.Errorf("counter process rows in the DB: %v, it committed %d sales and %d staff", theirs, counterSales, counterStaff)
			}
			if ok := sqliteRows(t, l.db, `PRAGMA quick_check`); !equalJSON(ok, []map[string]any{{"quick_check": "ok"}}) {
				t.Errorf("quick_check: %v", ok)
			}
			if bad := l.troubles(); bad != "" {
				t.Errorf("the lane logged errors or warnings:\n%s", bad)
			}
			t.Logf("%d tablets submitted %d presells; meanwhile the counter process committed %d transactions (%d sales and %d staff changes in all)",
				tt.tablets, len(tickets), during, counterSales, counterStaff)
		})
	}
}

// fillTickets gives every presell ticket not yet held to a submitted
// presell written straight into the lane DB (as a back-office program
// may), so the lane's next submit finds none free, and returns one filler's
// physkey. The fillers were touched just now: the sweeper leaves them be.
func fillTickets(t *testing.T, l *lane) string {
	t.Helper()
	now := sqlQuote(time.Now().UTC().Format("2006-01-02 15:04:05"))
	sqliteExec(t, l.db, `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 9999)
		INSERT INTO sales (physkey, random_key, phase, startdt, updated_utc, presell, ticket, ticket_word, ticket_barcode,
			submitted_utc, created_by, holder_name)
		SELECT 'fill-' || i, 'fill-' || i, 5, %[1]s, %[1]s, 1, i, 'fill-' || i, 'FILL' || i, %[1]s, 'filler', 'filler'
		FROM n WHERE i NOT IN (SELECT ticket FROM sales WHERE ticket IS NOT NULL AND phase IN (0, 5))`, now)
	rows := sqliteRows(t, l.db, `SELECT COUNT(*) AS n, MIN(CASE WHEN physkey LIKE 'fill-%%' THEN physkey END) AS k
		FROM sales WHERE ticket IS NOT NULL AND phase IN (0, 5)`)
	if n := num(rows[0]["n"]); n != 9999 {
		t.Fatalf("%v tickets held after filling, want 9999", n)
	}
	return rows[0]["k"].(string)
}

// TestPresellTicketsRunOut: with all 9999 tickets held by open presells, a
// submit is refused with limit_reached (a limit, which a client shows, not
// unavailable, which it retries in silence) and the order stays as it was;
// once the counter frees a ticket, the same order submits.
func TestPresellTicketsRunOut(t *testing.T) {
	alongside(t)
	l := startLane(t)
	tab := dialMux(t, l, "tablet-1", presellQuery, l.newKeys("tablet", "presell", 1)[0], "")
	presellOn(t, tab, 0, soldLine{1001, 1})
	filler := fillTickets(t, l)

	pk := tab.sale(t, sbA+"sale_create", nil, nil)["physkey"].(string)
	tab.sale(t, sbA+"sale_add_product", pk, map[string]any{"pid": 1002})
	tab.fails(t, sbA+"sale_park", pk, nil, "limit_reached", "all 9999 presell tickets are taken by open presells")
	if s := tab.fetch(t, pk); s["phase"] != 0.0 || s["ticket"] != nil || len(s["lines"].([]any)) != 1 {
		t.Fatalf("the refused order is now %v, want it still being built with its line", s)
	}

	sqliteExec(t, l.db, `UPDATE sales SET phase = 10000, version = version + 1 WHERE physkey = %s`, sqlQuote(filler))
	freed := num(dbSale(t, l, filler)["ticket"])
	if s := tab.sale(t, sbA+"sale_park", pk, nil); s["phase"] != 5.0 || num(s["ticket"]) != freed {
		t.Fatalf("submit after ticket %v was freed: %v", freed, s)
	}
}
