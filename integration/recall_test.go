package integration

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// The counter-recall suite (issue 4): counters (and the tablet that made
// a presell, and a program writing the lane DB directly) claim submitted
// presells; one device at a time holds a presell under a lease.

const presellA = "fd1.presell."

// --- a socket several goroutines may use ---

// muxSocket is a logged-in socket that several goroutines may call at
// once: one reader hands each reply to the call waiting for its rp. Its
// methods return errors rather than failing the test, so goroutines can
// use them.
type muxSocket struct {
	name    string
	ws      *websocket.Conn
	wmu     sync.Mutex
	mu      sync.Mutex
	waiting map[string]chan *packet
	seq     atomic.Int64
	dead    chan struct{}
	readErr error
}

// dialMux opens a socket (query "" or presellQuery), logs in with key and
// purpose, and starts its reader.
func dialMux(t *testing.T, l *lane, name, query, key, purpose string) *muxSocket {
	t.Helper()
	ws, _, err := websocket.DefaultDialer.Dial("ws://"+l.addr+"/fd1/open_websocket"+query, nil)
	if err != nil {
		t.Fatalf("%s: dial: %v", name, err)
	}
	m := &muxSocket{name: name, ws: ws, waiting: map[string]chan *packet{}, dead: make(chan struct{})}
	go m.readLoop()
	t.Cleanup(func() { ws.Close() })
	v := map[string]any{"apikey": key}
	if purpose != "" {
		v["purpose"] = purpose
	}
	r, err := m.call(map[string]any{"a": "fd1.session.login", "v": v})
	if err != nil || r.Error != nil {
		t.Fatalf("%s: login: %v %s", name, err, rawOf(r))
	}
	return m
}

func rawOf(p *packet) string {
	if p == nil {
		return ""
	}
	return string(p.raw)
}

func (m *muxSocket) readLoop() {
	defer close(m.dead)
	for {
		_, msg, err := m.ws.ReadMessage()
		if err != nil {
			m.readErr = err
			return
		}
		p := &packet{raw: msg}
		if err := json.Unmarshal(msg, p); err != nil {
			m.readErr = fmt.Errorf("reply is not JSON: %s", msg)
			return
		}
		noteSales(msg)
		m.mu.Lock()
		ch := m.waiting[p.rpKey()]
		delete(m.waiting, p.rpKey())
		m.mu.Unlock()
		if ch != nil {
			ch <- p
		}
	}
}

// send gives pkt its own rq, registers for its reply and sends it.
func (m *muxSocket) send(pkt map[string]any) (chan *packet, error) {
	rq := fmt.Sprintf("%s/%d", m.name, m.seq.Add(1))
	pkt["rq"] = rq
	key, _ := json.Marshal(rq)
	ch := make(chan *packet, 1)
	m.mu.Lock()
	m.waiting[string(key)] = ch
	m.mu.Unlock()
	b, err := json.Marshal(pkt)
	if err != nil {
		return nil, err
	}
	m.wmu.Lock()
	err = m.ws.WriteMessage(websocket.TextMessage, b)
	m.wmu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("%s: send %s: %w", m.name, pkt["a"], err)
	}
	return ch, nil
}

func (m *muxSocket) wait(ch chan *packet, pkt map[string]any) (*packet, error) {
	select {
	case p := <-ch:
		if p.R != pkt["a"] {
			return p, fmt.Errorf("%s: reply to %s came back as r=%s: %s", m.name, pkt["a"], p.R, p.raw)
		}
		return p, nil
	case <-m.dead:
		return nil, fmt.Errorf("%s: socket closed waiting for %s: %v", m.name, pkt["a"], m.readErr)
	case <-time.After(30 * time.Second):
		return nil, fmt.Errorf("%s: no reply to %s within 30s", m.name, pkt["a"])
	}
}

// call sends one request and waits for its reply.
func (m *muxSocket) call(pkt map[string]any) (*packet, error) {
	ch, err := m.send(pkt)
	if err != nil {
		return nil, err
	}
	return m.wait(ch, pkt)
}

// callMany sends every packet before waiting for any reply (pipelining;
// the reader takes replies meanwhile) and returns the replies in order.
func (m *muxSocket) callMany(pkts []map[string]any) ([]*packet, error) {
	chs := make([]chan *packet, len(pkts))
	for i, p := range pkts {
		ch, err := m.send(p)
		if err != nil {
			return nil, err
		}
		chs[i] = ch
	}
	out := make([]*packet, len(pkts))
	for i, ch := range chs {
		p, err := m.wait(ch, pkts[i])
		if err != nil {
			return nil, err
		}
		out[i] = p
	}
	return out, nil
}

// do calls a on k with v and fails the test on a transport error.
func (m *muxSocket) do(t *testing.T, a string, k any, v map[string]any) *packet {
	t.Helper()
	p := map[string]any{"a": a}
	if k != nil {
		p["k"] = k
	}
	if v != nil {
		p["v"] = v
	}
	r, err := m.call(p)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// sale calls an endpoint that answers with one sale and returns it.
func (m *muxSocket) sale(t *testing.T, a string, k any, v map[string]any) map[string]any {
	t.Helper()
	return saleReply(t, m.do(t, a, k, v))
}

// fails calls and expects error code with a message naming every mention.
func (m *muxSocket) fails(t *testing.T, a string, k any, v map[string]any, code string, mention ...string) *packet {
	t.Helper()
	r := m.do(t, a, k, v)
	r.wantError(t, code)
	for _, s := range mention {
		if !strings.Contains(r.Error.Message, s) {
			t.Errorf("%s %s: %s message %q does not mention %q", m.name, a, code, r.Error.Message, s)
		}
	}
	return r
}

// --- presells for the counter ---

// presold is a presell a tablet submitted.
type presold struct {
	physkey string
	ticket  int64
	word    string
	barcode string
	version int64
	lines   []soldLine
}

// countPIDs are demo products sold by the piece (not weighed).
var countPIDs = func() []int {
	var out []int
	for _, pid := range activePIDs {
		if !weighedPID[pid] {
			out = append(out, pid)
		}
	}
	return out
}()

// submitPresells has tablet build and submit n presells of one line each
// (pid, qty from seed), pipelined in chunks: create, add_product and park
// of every presell of a chunk go out before any reply is read.
func submitPresells(t *testing.T, tablet *muxSocket, n, seed int) []presold {
	t.Helper()
	out := make([]presold, 0, n)
	const chunk = 250
	for start := 0; start < n; start += chunk {
		m := min(chunk, n-start)
		batch := make([]presold, m)
		var pkts []map[string]any
		for j := range batch {
			i := start + j
			pid, qty := countPIDs[(seed+i*7)%len(countPIDs)], 1+(seed+i)%3
			batch[j] = presold{physkey: newUUID(), lines: []soldLine{{pid, qty}}}
			pk := batch[j].physkey
			pkts = append(pkts,
				map[string]any{"a": sbA + "sale_create", "v": map[string]any{"physkey": pk}},
				map[string]any{"a": sbA + "sale_add_product", "k": pk, "v": map[string]any{"pid": pid, "qty": qty}},
				map[string]any{"a": sbA + "sale_park", "k": pk})
		}
		replies, err := tablet.callMany(pkts)
		if err != nil {
			t.Fatal(err)
		}
		for j := range batch {
			for _, r := range replies[3*j : 3*j+2] {
				if _, err := saleFrom(r); err != nil {
					t.Fatal(err)
				}
			}
			s := saleReply(t, replies[3*j+2])
			if s["physkey"] != batch[j].physkey || s["phase"] != 5.0 || len(s["lines"].([]any)) != 1 || num(s["ticket"]) < 1 {
				t.Fatalf("submit of %s answered %s", batch[j].physkey, replies[3*j+2].raw)
			}
			batch[j].ticket = int64(num(s["ticket"]))
			batch[j].word, _ = s["ticket_word"].(string)
			batch[j].barcode, _ = s["ticket_barcode"].(string)
			batch[j].version = int64(num(s["version"]))
		}
		out = append(out, batch...)
	}
	return out
}

// claimedBy checks that a loser's error is claimed and names the holder.
func claimedBy(p *packet, holder string) error {
	switch {
	case p == nil:
		return errors.New("no reply")
	case p.Error == nil:
		return fmt.Errorf("won as well: %s", p.raw)
	case p.Error.Code != "claimed":
		return fmt.Errorf("error %s (%s), want claimed", p.Error.Code, p.Error.Message)
	case !strings.Contains(p.Error.Message, `"`+holder+`"`):
		return fmt.Errorf("claimed message %q does not name the holder %q", p.Error.Message, holder)
	case string(p.Data) != "{}":
		return fmt.Errorf("error reply data = %s, want {}", p.Data)
	}
	return nil
}

// sqlPause is how long the SQL claimer waits, in race i, between reading
// the presell's version and claiming it: it claims faster than a socket
// round trip, so without a pause it would win every race.
func sqlPause(i int) time.Duration {
	return []time.Duration{0, 500 * time.Microsecond, time.Millisecond, 2 * time.Millisecond, 3 * time.Millisecond, 5 * time.Millisecond}[i%6]
}

// TestRecallRace: two counters, the tablet that made the presell and a
// program writing the lane DB directly (docs/lanedb.md) all claim the same
// presell at the same moment, for each of 1,000 presells. Each time exactly
// one wins and the others are told who has it; the winner adds a line and
// gives the presell back. No line is lost or doubled, no claim is left
// behind, the journal has one claim per presell, and the file is sound.
func TestRecallRace(t *testing.T) {
	alongside(t)
	const n = 1000
	// One tablet holds all n open at once: above the default per-key cap.
	l := startLane(t, "--max-open-presells", fmt.Sprint(n))
	tabletKey := l.newKeys("tablet", "presell", 1)[0]
	counterKeys := l.newKeys("counter", "counter", 2)
	tablet := dialMux(t, l, "tablet-1", presellQuery, tabletKey, "")
	counters := []*muxSocket{
		dialMux(t, l, "counter-1", "", counterKeys[0], ""),
		dialMux(t, l, "counter-2", "", counterKeys[1], ""),
	}
	claimer := startSQLClaimer(t, l.db)

	began := time.Now()
	presells := submitPresells(t, tablet, n, 3)
	t.Logf("the tablet submitted %d presells in %s", n, time.Since(began).Round(time.Millisecond))

	// Who may claim, and how each asks.
	names := []string{"counter-1", "counter-2", "tablet-1", sqlClaimerName}
	claimPkt := func(who int, i int, p presold) map[string]any {
		switch who {
		case 0: // a counter recalls by ticket, barcode, word or physkey in turn
			switch i % 4 {
			case 0:
				return map[string]any{"a": presellA + "recall", "v": map[string]any{"ticket": p.ticket}}
			case 1:
				return map[string]any{"a": presellA + "recall", "v": map[string]any{"barcode": p.barcode}}
			case 2:
				return map[string]any{"a": presellA + "recall", "v": map[string]any{"word": p.word}}
			}
			return map[string]any{"a": presellA + "recall", "k": p.physkey}
		case 1: // the other counter unparks it (the same claim) or recalls it by k
			if i%2 == 0 {
				return map[string]any{"a": sbA + "sale_unpark", "k": p.physkey}
			}
			return map[string]any{"a": presellA + "recall", "k": p.physkey}
		}
		return map[string]any{"a": sbA + "sale_unpark", "k": p.physkey} // the tablet takes its own back
	}
	sockets := []*muxSocket{counters[0], counters[1], tablet}

	wins := make([]int, len(names))
	winner := make([]int, n) // presell index -> who won
	var added []soldLine     // per presell, the line its winner added (pid 0: none)
	racing := time.Now()
	for i, p := range presells {
		start := make(chan struct{})
		replies := make([]*packet, len(sockets))
		errs := make([]error, len(names))
		var sqlAnswer string
		var wg sync.WaitGroup
		for who, s := range sockets {
			wg.Add(1)
			go func() {
				defer wg.Done()
				pkt := claimPkt(who, i, p)
				<-start
				replies[who], errs[who] = s.call(pkt)
			}()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			sqlAnswer = claimer.do("claim", p.physkey+" "+sqlPause(i).String())
		}()
		close(start)
		wg.Wait()
		for who, err := range errs {
			if err != nil {
				t.Fatalf("presell %d (%s), %s: %v", i, p.physkey, names[who], err)
			}
		}

		// Exactly one winner.
		var won []int
		for who, r := range replies {
			if r.Error == nil {
				won = append(won, who)
			}
		}
		switch sqlAnswer {
		case "won":
			won = append(won, 3)
		case "lost":
		default:
			t.Fatalf("presell %d (%s): the SQL claimer answered %q", i, p.physkey, sqlAnswer)
		}
		if len(won) != 1 {
			var got []string
			for who, r := range replies {
				got = append(got, fmt.Sprintf("%s: %s", names[who], r.raw))
			}
			t.Fatalf("presell %d (%s): %d winners %v, want exactly one\n%s\nsql-counter: %s",
				i, p.physkey, len(won), won, strings.Join(got, "\n"), sqlAnswer)
		}
		w := won[0]
		wins[w]++
		winner[i] = w
		for who, r := range replies {
			if who == w {
				continue
			}
			if err := claimedBy(r, names[w]); err != nil {
				t.Fatalf("presell %d (%s), loser %s: %v", i, p.physkey, names[who], err)
			}
		}

		// The winner adds a line (a socket) while a loser tries to, and
		// gives the presell back.
		loser := (w + 1 + i%2) % len(sockets)
		if loser == w {
			loser = (loser + 1) % len(sockets)
		}
		pid, qty := countPIDs[(i*11+5)%len(countPIDs)], 1+i%2
		add := func() map[string]any {
			return map[string]any{"a": sbA + "sale_add_product", "k": p.physkey, "v": map[string]any{"pid": pid, "qty": qty}}
		}
		if w == 3 {
			added = append(added, soldLine{})
			r, err := sockets[loser].call(add())
			if err == nil {
				err = claimedBy(r, names[w])
			}
			if err != nil {
				t.Fatalf("presell %d: %s adds a line while %s holds it: %v", i, names[loser], names[w], err)
			}
			claimer.must(t, "release", p.physkey, "ok")
			continue
		}
		s := saleReply(t, replies[w])
		if s["physkey"] != p.physkey || s["phase"] != 0.0 || s["holder"] != names[w] {
			t.Fatalf("presell %d: %s won with %s", i, names[w], replies[w].raw)
		}
		added = append(added, soldLine{pid, qty})
		var theirs *packet
		var theirErr error
		wg.Add(1)
		go func() {
			defer wg.Done()
			theirs, theirErr = sockets[loser].call(add())
		}()
		got := sockets[w].sale(t, sbA+"sale_add_product", p.physkey, map[string]any{"pid": pid, "qty": qty})
		wg.Wait()
		if theirErr == nil {
			theirErr = claimedBy(theirs, names[w])
		}
		if theirErr != nil {
			t.Fatalf("presell %d: %s adds a line while %s holds it: %v", i, names[loser], names[w], theirErr)
		}
		if lines := got["lines"].([]any); len(lines) != 2 {
			t.Fatalf("presell %d: %s added a line and has %d lines", i, names[w], len(lines))
		}
		release, how := sbA+"sale_park", "park"
		if w < 2 && i%2 == 1 {
			release, how = presellA+"release", "release"
		}
		got = sockets[w].sale(t, release, p.physkey, nil)
		if got["phase"] != 5.0 || got["holder"] != "" {
			t.Fatalf("presell %d: %s gave it back with %s: phase %v holder %q", i, names[w], how, got["phase"], got["holder"])
		}
	}
	elapsed := time.Since(racing)
	for who, n := range wins {
		if n == 0 {
			t.Errorf("%s never won a race: the contenders did not really compete", names[who])
		}
	}
	t.Logf("%d races in %s (%s each): counter-1 won %d, counter-2 %d, tablet-1 %d, sql-counter %d",
		n, elapsed.Round(time.Millisecond), (elapsed / n).Round(time.Microsecond), wins[0], wins[1], wins[2], wins[3])

	// Read everything back with a second process. The lane holds only
	// these presells, so whole-table queries do.
	index := map[string]int{}
	for i, p := range presells {
		index[p.physkey] = i
	}
	rows := sqliteRows(t, l.db, `SELECT physkey, phase, presell, holder_key, holder_name, claim_session, claim_key,
		claim_name, claim_expires_ms, version, ticket, saletotal_cents,
		(SELECT COALESCE(SUM(totalprice_cents), 0) FROM sale_lines WHERE sale_physkey = s.physkey) AS lines_cents
		FROM sales s WHERE presell = 1`)
	if len(rows) != n {
		t.Fatalf("the lane DB holds %d presells, the tablet submitted %d", len(rows), n)
	}
	for _, r := range rows {
		i, ok := index[r["physkey"].(string)]
		if !ok {
			t.Errorf("presell %v in the DB was never submitted", r["physkey"])
			continue
		}
		// Submitted, then one claim and one release (and a line for a socket).
		want := presells[i].version + 2
		if winner[i] != 3 {
			want++
		}
		if r["phase"] != 5.0 || r["holder_key"] != "" || r["holder_name"] != "" || r["claim_session"] != nil || r["claim_key"] != nil ||
			r["claim_name"] != nil || r["claim_expires_ms"] != nil || int64(num(r["version"])) != want ||
			int64(num(r["ticket"])) != presells[i].ticket || r["saletotal_cents"] != r["lines_cents"] {
			t.Errorf("presell %d after its race (won by %s): %v; want phase 5, no holder, no claim, version %d, ticket %d, total = lines",
				i, names[winner[i]], r, want, presells[i].ticket)
		}
	}
	lines := sqliteRows(t, l.db, `SELECT sale_physkey, seqnce, pid, qty FROM sale_lines
		WHERE sale_physkey IN (SELECT physkey FROM sales WHERE presell = 1) ORDER BY sale_physkey, seqnce`)
	gotLines := map[string][]soldLine{}
	for _, r := range lines {
		pk := r["sale_physkey"].(string)
		if int(num(r["seqnce"])) != len(gotLines[pk])+1 {
			t.Errorf("presell %s: line seqnce %v after %d lines", pk, r["seqnce"], len(gotLines[pk]))
		}
		gotLines[pk] = append(gotLines[pk], soldLine{int(num(r["pid"])), int(num(r["qty"]))})
	}
	for i, p := range presells {
		want := append([]soldLine(nil), p.lines...)
		if added[i].pid != 0 {
			want = append(want, added[i])
		}
		if fmt.Sprint(gotLines[p.physkey]) != fmt.Sprint(want) {
			t.Errorf("presell %d (won by %s) has lines %v, want %v", i, names[winner[i]], gotLines[p.physkey], want)
		}
	}
	// The journal: created and submitted by the tablet, one claim and one
	// release by the winner.
	journal := sqliteRows(t, l.db, `SELECT physkey, event, actor, COUNT(*) AS n FROM journal
		WHERE family = 'presell' GROUP BY physkey, event, actor ORDER BY physkey, event, actor`)
	gotJournal := map[string][]string{}
	for _, r := range journal {
		pk := r["physkey"].(string)
		gotJournal[pk] = append(gotJournal[pk], fmt.Sprintf("%s by %s x%v", r["event"], r["actor"], r["n"]))
	}
	for i, p := range presells {
		w := names[winner[i]]
		want := []string{"claimed by " + w + " x1", "created by tablet-1 x1", "released by " + w + " x1", "submitted by tablet-1 x1"}
		sort.Strings(want)
		if fmt.Sprint(gotJournal[p.physkey]) != fmt.Sprint(want) {
			t.Errorf("presell %d journal: %v, want %v", i, gotJournal[p.physkey], want)
		}
	}
	// SQLite's own check of the file (a store database's consistency is
	// PostgreSQL's, checked above row by row).
	if !isStoreURL(l.db) {
		if ok := sqliteRows(t, l.db, `PRAGMA integrity_check`); !equalJSON(ok, []map[string]any{{"integrity_check": "ok"}}) {
			t.Errorf("integrity_check: %v", ok)
		}
	}
	if bad := l.troubles(); bad != "" {
		t.Errorf("the lane logged errors or warnings:\n%s", bad)
	}
}

// --- helpers for the recall flow tests ---

// presellOn has a tablet build a presell with lines (and customer cid
// unless 0), submit it with sale_park, and returns the submitted sale.
func presellOn(t *testing.T, tab *muxSocket, cid int, lines ...soldLine) map[string]any {
	t.Helper()
	pk := tab.sale(t, sbA+"sale_create", nil, nil)["physkey"].(string)
	for _, ln := range lines {
		tab.sale(t, sbA+"sale_add_product", pk, map[string]any{"pid": ln.pid, "qty": ln.qty})
	}
	if cid != 0 {
		tab.sale(t, sbA+"sale_set_customer", pk, map[string]any{"cid": cid})
	}
	s := tab.sale(t, sbA+"sale_park", pk, nil)
	if s["phase"] != 5.0 || num(s["ticket"]) < 1 || len(s["lines"].([]any)) != len(lines) {
		t.Fatalf("submitted presell: %v", s)
	}
	return s
}

// fetch reads a sale with sale_fetch (any phase).
func (m *muxSocket) fetch(t *testing.T, pk string) map[string]any {
	t.Helper()
	return m.sale(t, sbA+"sale_fetch", pk, nil)
}

// dbSale reads a sale's row (state, claim, void) with the sqlite3 CLI.
func dbSale(t *testing.T, l *lane, pk string) map[string]any {
	t.Helper()
	rows := sqliteRows(t, l.db, `SELECT physkey, phase, sid, ticket, ticket_word, ticket_barcode, holder_name,
		claim_session, claim_name, claim_expires_ms, voided_by, voided_utc, completeddtutc, saletotal_cents, version
		FROM sales WHERE physkey = %s`, sqlQuote(pk))
	if len(rows) != 1 {
		t.Fatalf("sale %s: %d rows in the DB", pk, len(rows))
	}
	return rows[0]
}

// journalEntry is one journal row as a test compares it.
type journalEntry struct {
	Event, Actor string
	Detail       map[string]any
}

// journalOf reads a sale's presell journal, in order.
func journalOf(t *testing.T, l *lane, pk string) []journalEntry {
	t.Helper()
	var out []journalEntry
	for _, r := range sqliteRows(t, l.db, `SELECT event, actor, detail, at_utc FROM journal
		WHERE physkey = %s AND family = 'presell' ORDER BY seq`, sqlQuote(pk)) {
		e := journalEntry{Event: r["event"].(string), Actor: r["actor"].(string)}
		if err := json.Unmarshal([]byte(r["detail"].(string)), &e.Detail); err != nil {
			t.Fatalf("journal detail of %s is not JSON: %v", pk, r["detail"])
		}
		if !dateTimeRE.MatchString(fmt.Sprint(r["at_utc"])) {
			t.Fatalf("journal at_utc %v", r["at_utc"])
		}
		out = append(out, e)
	}
	return out
}

// events lists "event by actor" of a journal.
func events(j []journalEntry) string {
	var out []string
	for _, e := range j {
		out = append(out, e.Event+" by "+e.Actor)
	}
	return strings.Join(out, ", ")
}

// checkClaim checks a recall reply's claim: holder, and an expiry one lease
// from now.
func checkClaim(t *testing.T, s map[string]any, holder string, lease time.Duration) {
	t.Helper()
	c, _ := s["claim"].(map[string]any)
	if c == nil || c["holder"] != holder {
		t.Fatalf("claim = %v, want holder %s", s["claim"], holder)
	}
	exp, err := time.Parse(time.RFC3339, fmt.Sprint(c["expires"]))
	if err != nil {
		t.Fatalf("claim.expires %v: %v", c["expires"], err)
	}
	if want := time.Now().Add(lease); exp.Before(want.Add(-10*time.Second)) || exp.After(want.Add(5*time.Second)) {
		t.Fatalf("claim.expires %s, want about %s (a lease of %s from now)", exp, want.UTC().Format(time.RFC3339), lease)
	}
}

// presellList calls get_presells with q, qk and v and returns the rows.
func presellList(t *testing.T, c *muxSocket, q map[string]any, qk any, v map[string]any) ([]map[string]any, bool) {
	t.Helper()
	p := map[string]any{"a": presellA + "get_presells"}
	if q != nil {
		p["q"] = q
	}
	if qk != nil {
		p["qk"] = qk
	}
	if v != nil {
		p["v"] = v
	}
	r, err := c.call(p)
	if err != nil {
		t.Fatal(err)
	}
	if r.Error != nil {
		t.Fatalf("get_presells %v: %s", p, r.raw)
	}
	var d struct {
		Rows []map[string]any `json:"rows"`
		More bool             `json:"more"`
	}
	if err := json.Unmarshal(r.Data, &d); err != nil {
		t.Fatalf("get_presells data: %s", r.Data)
	}
	return d.Rows, d.More
}

// physkeys lists the rows' physkeys in order.
func physkeys(rows []map[string]any) []string {
	out := make([]string, len(rows))
	for i, r := range rows {
		out[i], _ = r["physkey"].(string)
	}
	return out
}

// pks lists sales' physkeys.
func pks(sales ...map[string]any) []string {
	out := make([]string, len(sales))
	for i, s := range sales {
		out[i] = s["physkey"].(string)
	}
	return out
}

// TestTabletListsItsOwnPresells: a presell key may list presells, its own
// only, wherever they are now: taken by a counter, or set back in the
// queue. (Its list of the sales it holds lost an order once a counter
// recalled it, and staff rang it up again.) A filter on another tablet
// finds nothing; a counter still lists them all.
func TestTabletListsItsOwnPresells(t *testing.T) {
	alongside(t)
	l := startLane(t)
	tabs := l.newKeys("tablet", "presell", 2)
	tab1 := dialMux(t, l, "tablet-1", presellQuery, tabs[0], "")
	tab2 := dialMux(t, l, "tablet-2", presellQuery, tabs[1], "")
	c1 := dialMux(t, l, "counter-1", "", l.newKey("counter-1", "counter"), "")
	p1 := presellOn(t, tab1, 0, soldLine{1001, 1})
	p2 := presellOn(t, tab2, 0, soldLine{1002, 1})
	if r, err := c1.call(map[string]any{"a": presellA + "recall", "v": map[string]any{"ticket": p1["ticket"]}}); err != nil || r.Error != nil {
		t.Fatalf("recall: %v %v", err, r)
	}
	rows, _ := presellList(t, tab1, nil, nil, nil)
	if got := physkeys(rows); len(got) != 1 || got[0] != p1["physkey"] || rows[0]["claimed_by"] != "counter-1" {
		t.Fatalf("tablet-1 lists %v (%v), want its presell, held by counter-1", got, rows)
	}
	if rows, _ := presellList(t, tab1, map[string]any{"tablet": "tablet-2"}, nil, nil); len(rows) != 0 {
		t.Fatalf("tablet-1 asking for tablet-2's presells got %v, want none", physkeys(rows))
	}
	if got, _ := presellList(t, tab2, nil, nil, nil); len(got) != 1 || got[0]["physkey"] != p2["physkey"] {
		t.Fatalf("tablet-2 lists %v, want its own presell only", physkeys(got))
	}
	if got, _ := presellList(t, c1, nil, nil, nil); len(got) != 2 {
		t.Fatalf("the counter lists %v, want both", physkeys(got))
	}
}

// TestRecallFlow: a counter recalls presells by ticket, barcode, word and
// physkey; lists and filters the queue; sees and accepts price drift;
// completes (the ticket is then free for a new presell) and cancels.
func TestRecallFlow(t *testing.T) {
	alongside(t)
	l := startLane(t)
	tabs := l.newKeys("tablet", "presell", 3)
	cks := l.newKeys("counter", "counter", 2)
	tab1 := dialMux(t, l, "tablet-1", presellQuery, tabs[0], "")
	tab2 := dialMux(t, l, "tablet-2", presellQuery, tabs[1], "")
	c1 := dialMux(t, l, "counter-1", "", cks[0], "")
	c2 := dialMux(t, l, "counter-2", "", cks[1], "")
	const lease = 120 * time.Second

	p1 := presellOn(t, tab1, 0, soldLine{1001, 2}, soldLine{1024, 250}) // 11.00 + 250 g at 39.90/kg
	p2 := presellOn(t, tab2, hemiCID, soldLine{1002, 1})                // Hemi Walker, 10% off
	p3 := presellOn(t, tab1, 7, soldLine{1003, 3})                      // Mei Lin Chen, 5% off
	p4 := presellOn(t, tab2, 0, soldLine{1001, 1})
	p5 := presellOn(t, tab1, 4, soldLine{1005, 1}) // Zoë Tūhoe
	ticket := func(s map[string]any) int64 { return int64(num(s["ticket"])) }

	t.Run("recall by ticket, barcode, word and k", func(t *testing.T) {
		ways := []struct {
			how string
			s   map[string]any
			k   any
			v   map[string]any
		}{
			{"ticket", p1, nil, map[string]any{"ticket": ticket(p1)}},
			{"barcode", p2, nil, map[string]any{"barcode": p2["ticket_barcode"]}},
			{"word", p3, nil, map[string]any{"word": p3["ticket_word"]}},
			{"k", p4, p4["physkey"], nil},
		}
		for _, w := range ways {
			pk := w.s["physkey"].(string)
			r := c1.sale(t, presellA+"recall", w.k, w.v)
			if r["physkey"] != pk || r["phase"] != 0.0 || r["holder"] != "counter-1" || r["tablet"] != w.s["tablet"] ||
				r["ticket"] != w.s["ticket"] || r["ticket_word"] != w.s["ticket_word"] || r["ticket_barcode"] != w.s["ticket_barcode"] {
				t.Fatalf("recall by %s: %v", w.how, r)
			}
			// The whole sale, as the tablet submitted it.
			for _, f := range []string{"lines", "saletotal", "customer", "cid", "payments", "startdt", "random_key"} {
				if !equalJSON(r[f], w.s[f]) {
					t.Errorf("recall by %s: %s = %v, the tablet submitted %v", w.how, f, r[f], w.s[f])
				}
			}
			if drift, ok := r["price_drift"].([]any); !ok || len(drift) != 0 {
				t.Errorf("recall by %s: price_drift = %v, want []", w.how, r["price_drift"])
			}
			checkClaim(t, r, "counter-1", lease)
			row := dbSale(t, l, pk)
			expMS := num(row["claim_expires_ms"])
			if row["phase"] != 0.0 || row["claim_name"] != "counter-1" || row["holder_name"] != "counter-1" || row["claim_session"] == nil ||
				expMS < float64(time.Now().Add(lease-10*time.Second).UnixMilli()) || expMS > float64(time.Now().Add(lease).UnixMilli()) {
				t.Errorf("recalled by %s, in the DB: %v", w.how, row)
			}
			j := journalOf(t, l, pk)
			if got := events(j); got != "created by "+w.s["tablet"].(string)+", submitted by "+w.s["tablet"].(string)+", claimed by counter-1" {
				t.Errorf("recall by %s: journal %s", w.how, got)
			} else if num(j[2].Detail["ticket"]) != num(w.s["ticket"]) {
				t.Errorf("recall by %s: claimed journal detail %v, want the ticket", w.how, j[2].Detail)
			}
		}
	})

	t.Run("get_presells", func(t *testing.T) {
		// Two presells were submitted an hour and two hours ago.
		// (The times are written from here, so that the statement is the
		// same SQL on SQLite and on a PostgreSQL store database.)
		ago := func(d time.Duration) string { return sqlQuote(time.Now().UTC().Add(-d).Format("2006-01-02 15:04:05")) }
		sqliteExec(t, l.db, `UPDATE sales SET submitted_utc = %s, version = version + 1 WHERE physkey = %s;
			UPDATE sales SET submitted_utc = %s, version = version + 1 WHERE physkey = %s;`,
			ago(time.Hour), sqlQuote(p1["physkey"].(string)), ago(2*time.Hour), sqlQuote(p2["physkey"].(string)))
		all, more := presellList(t, c2, nil, nil, nil)
		got := physkeys(all)
		if len(got) != 5 || more || got[3] != p1["physkey"] || got[4] != p2["physkey"] {
			t.Fatalf("get_presells: %v (more %v), want the 5 open presells with %s and then %s (the oldest) last", got, more, p1["physkey"], p2["physkey"])
		}
		if fmt.Sprint(sorted(got[:3])) != fmt.Sprint(sorted(pks(p3, p4, p5))) {
			t.Fatalf("get_presells: the newest three are %v, want %v", got[:3], pks(p3, p4, p5))
		}
		row := func(pk any) map[string]any {
			for _, r := range all {
				if r["physkey"] == pk {
					return r
				}
			}
			return nil
		}
		r2 := row(p2["physkey"])
		want2 := map[string]any{"physkey": p2["physkey"], "ticket": p2["ticket"], "ticket_word": p2["ticket_word"], "ticket_barcode": p2["ticket_barcode"],
			"cid": float64(hemiCID), "customer": "Hemi Walker", "saletotal": p2["saletotal"], "lines": 1.0, "tablet": "tablet-2", "phase": 0.0, "claimed_by": "counter-1"}
		for f, v := range want2 {
			if !equalJSON(r2[f], v) {
				t.Errorf("get_presells row of p2: %s = %v, want %v (row %v)", f, r2[f], v, r2)
			}
		}
		if age := num(r2["age"]); age < 7200 || age > 7300 {
			t.Errorf("p2 was submitted two hours ago; age = %v", r2["age"])
		}
		if _, err := time.Parse(time.RFC3339, fmt.Sprint(r2["claim_expires"])); err != nil {
			t.Errorf("p2 claim_expires = %v", r2["claim_expires"])
		}
		r5 := row(p5["physkey"])
		if r5["claimed_by"] != nil || r5["claim_expires"] != nil || r5["phase"] != 5.0 || r5["customer"] != "Zoë Tūhoe" ||
			num(r5["age"]) < 0 || num(r5["age"]) > 60 || r5["tablet"] != "tablet-1" || !equalJSON(r5["saletotal"], p5["saletotal"]) {
			t.Errorf("get_presells row of the unclaimed p5: %v", r5)
		}

		filters := []struct {
			name string
			q    map[string]any
			qk   any
			want []string
		}{
			{"ticket", map[string]any{"ticket": ticket(p3)}, nil, pks(p3)},
			{"tablet", map[string]any{"tablet": "tablet-2"}, nil, pks(p4, p2)},
			{"customer, any case", map[string]any{"customer": "LIN ch"}, nil, pks(p3)},
			{"customer, part of the surname", map[string]any{"customer": "walk"}, nil, pks(p2)},
			{"customer, LIKE characters match literally", map[string]any{"customer": "%"}, nil, nil},
			{"tablet and customer", map[string]any{"tablet": "tablet-1", "customer": "mei"}, nil, pks(p3)},
			{"age at least 50 minutes", map[string]any{"age(>=)": 3000}, nil, pks(p1, p2)},
			{"age at least 90 minutes", map[string]any{"age(>=)": 5400}, nil, pks(p2)},
			{"qk all", nil, "all", got},
		}
		for _, f := range filters {
			rows, _ := presellList(t, c2, f.q, f.qk, nil)
			if fmt.Sprint(physkeys(rows)) != fmt.Sprint(f.want) && !(len(rows) == 0 && len(f.want) == 0) {
				t.Errorf("get_presells %s: %v, want %v", f.name, physkeys(rows), f.want)
			}
		}
		young, _ := presellList(t, c2, map[string]any{"age(<)": 600}, nil, nil)
		if fmt.Sprint(sorted(physkeys(young))) != fmt.Sprint(sorted(pks(p3, p4, p5))) {
			t.Errorf("get_presells age(<) 600: %v, want %v", physkeys(young), pks(p3, p4, p5))
		}
		mine, _ := presellList(t, c1, nil, "mine", nil)
		if fmt.Sprint(sorted(physkeys(mine))) != fmt.Sprint(sorted(pks(p1, p2, p3, p4))) {
			t.Errorf("counter-1 qk mine: %v, want the four it claimed", physkeys(mine))
		}
		if none, _ := presellList(t, c2, nil, "mine", nil); len(none) != 0 {
			t.Errorf("counter-2 holds nothing but qk mine lists %v", physkeys(none))
		}
		two, more := presellList(t, c2, nil, nil, map[string]any{"limit": 2})
		if len(two) != 2 || !more || fmt.Sprint(physkeys(two)) != fmt.Sprint(got[:2]) {
			t.Errorf("get_presells v.limit 2: %v more %v, want %v and more", physkeys(two), more, got[:2])
		}
		if _, more := presellList(t, c2, nil, nil, map[string]any{"limit": 5}); more {
			t.Errorf("get_presells v.limit 5 of 5: more = true")
		}
		// v.oldest: the longest-waiting first, so that a cut list leaves
		// out the newest.
		oldest, _ := presellList(t, c2, nil, nil, map[string]any{"oldest": true})
		want := slices.Clone(got)
		slices.Reverse(want)
		if fmt.Sprint(physkeys(oldest)) != fmt.Sprint(want) {
			t.Errorf("get_presells v.oldest: %v, want %v", physkeys(oldest), want)
		}
		if two, more := presellList(t, c2, nil, nil, map[string]any{"oldest": true, "limit": 2}); !more ||
			fmt.Sprint(physkeys(two)) != fmt.Sprint([]any{p2["physkey"], p1["physkey"]}) {
			t.Errorf("get_presells v.oldest, v.limit 2: %v more %v, want the two oldest, %s then %s", physkeys(two), more, p2["physkey"], p1["physkey"])
		}
		// v.paid carries what each presell holds paid (reversed payments
		// do not count); without it rows carry no paid at all.
		paid := func(v map[string]any) map[any]any {
			rows, _ := presellList(t, c2, nil, nil, v)
			out := map[any]any{}
			for _, r := range rows {
				out[r["physkey"]] = r["paid"]
			}
			return out
		}
		c1.sale(t, sbA+"sale_add_payment", p4["physkey"], map[string]any{"type": 1, "amount": 2.5})
		withPaid := paid(map[string]any{"paid": true})
		if num(withPaid[p4["physkey"]]) != 2.5 || num(withPaid[p3["physkey"]]) != 0 || withPaid[p3["physkey"]] == nil {
			t.Errorf("get_presells v.paid: %v, want 2.5 paid on %s and 0 on the rest", withPaid, p4["physkey"])
		}
		if without := paid(nil); without[p4["physkey"]] != nil {
			t.Errorf("get_presells without v.paid carries paid: %v", without)
		}
		c1.sale(t, sbA+"sale_remove_payment", p4["physkey"], map[string]any{"seq": 1})
		if back := paid(map[string]any{"paid": true}); num(back[p4["physkey"]]) != 0 {
			t.Errorf("get_presells v.paid after the payment was reversed: %v, want 0 on %s", back, p4["physkey"])
		}
		r, err := c2.call(map[string]any{"a": presellA + "get_presells", "qk": "bogus"})
		if err != nil {
			t.Fatal(err)
		}
		r.wantError(t, "bad_argument")
	})

	t.Run("customer filter folds non-ASCII case", func(t *testing.T) {
		rows, _ := presellList(t, c2, map[string]any{"customer": "tūhoe"}, nil, nil)
		if fmt.Sprint(physkeys(rows)) != fmt.Sprint(pks(p5)) {
			t.Fatalf("customer tūhoe: %v, want %v", physkeys(rows), pks(p5))
		}
		rows, _ = presellList(t, c2, map[string]any{"customer": "ZOË"}, nil, nil)
		if fmt.Sprint(physkeys(rows)) != fmt.Sprint(pks(p5)) {
			t.Fatalf("customer ZOË (any case): %v, want %v (Zoë Tūhoe)", physkeys(rows), pks(p5))
		}
	})

	t.Run("price drift", func(t *testing.T) {
		// Hot Chocolate 5.50 goes up to 6.20 after two presells were submitted.
		d1 := presellOn(t, tab1, 0, soldLine{1006, 2}, soldLine{1004, 1}) // 11.00 + 4.80
		d2 := presellOn(t, tab2, 0, soldLine{1006, 2}, soldLine{1004, 1})
		sqliteExec(t, l.db, `UPDATE products SET price_cents = 620 WHERE pid = 1006`)
		wantDrift := []map[string]any{{"seqnce": 1, "pid": 1006, "description": "Hot Chocolate",
			"old_unitprice": 5.5, "new_unitprice": 6.2, "old_price": 11, "new_price": 12.4}}

		r := c2.sale(t, presellA+"recall", nil, map[string]any{"ticket": ticket(d1)})
		if !equalJSON(r["price_drift"], wantDrift) {
			t.Fatalf("recall after a price change: price_drift = %v, want %v", r["price_drift"], wantDrift)
		}
		checkLines(t, r, line{1, 1006, 2, 5.5, 11, 0, 0, 10}, line{2, 1004, 1, 4.8, 4.8, 0, 0, 10})
		checkTotal(t, r, 15.8, 0)

		// accept_prices reprices the presell at today's prices.
		a := c2.sale(t, presellA+"accept_prices", d1["physkey"], nil)
		checkLines(t, a, line{1, 1006, 2, 6.2, 12.4, 0, 0, 10}, line{2, 1004, 1, 4.8, 4.8, 0, 0, 10})
		checkTotal(t, a, 17.2, 0)
		if drift, ok := a["price_drift"].([]any); !ok || len(drift) != 0 {
			t.Fatalf("after accept_prices: price_drift = %v, want []", a["price_drift"])
		}
		checkClaim(t, a, "counter-2", lease)
		c2.sale(t, sbA+"sale_add_payment", d1["physkey"], map[string]any{"type": 1, "amount": 17.2})
		done := c2.sale(t, sbA+"salesbuilder_complete", d1["physkey"], nil)
		if done["phase"] != 1.0 || num(done["saletotal"]) != 17.2 || num(done["change"]) != 0 {
			t.Fatalf("completed at today's prices: %v", done)
		}

		// Without accept_prices the presold price stands, and is what is charged.
		r = c2.sale(t, presellA+"recall", nil, map[string]any{"barcode": d2["ticket_barcode"]})
		if !equalJSON(r["price_drift"], wantDrift) {
			t.Fatalf("recall of the second presell: price_drift = %v, want %v", r["price_drift"], wantDrift)
		}
		c2.sale(t, sbA+"sale_add_payment", d2["physkey"], map[string]any{"type": 1, "amount": 15.8})
		done = c2.sale(t, sbA+"salesbuilder_complete", d2["physkey"], nil)
		checkLines(t, done, line{1, 1006, 2, 5.5, 11, 0, 0, 10}, line{2, 1004, 1, 4.8, 4.8, 0, 0, 10})
		if done["phase"] != 1.0 || num(done["saletotal"]) != 15.8 || num(done["change"]) != 0 {
			t.Fatalf("completed at the presold prices: %v", done)
		}
		for pk, cents := range map[string]float64{d1["physkey"].(string): 1720, d2["physkey"].(string): 1580} {
			if row := dbSale(t, l, pk); row["phase"] != 1.0 || row["saletotal_cents"] != cents || row["claim_session"] != nil {
				t.Errorf("completed presell %s in the DB: %v, want phase 1, total %v cents, no claim", pk, row, cents)
			}
		}
	})

	t.Run("completion keeps physkey and ticket; the ticket is free again", func(t *testing.T) {
		pk := p1["physkey"].(string)
		total := num(c1.fetch(t, pk)["saletotal"])
		c1.sale(t, sbA+"sale_add_payment", pk, map[string]any{"type": 1, "amount": total})
		done := c1.sale(t, sbA+"salesbuilder_complete", pk, nil)
		if done["physkey"] != pk || done["phase"] != 1.0 || num(done["sid"]) < 1 || done["ticket"] != p1["ticket"] ||
			done["ticket_word"] != p1["ticket_word"] || done["ticket_barcode"] != p1["ticket_barcode"] || done["tablet"] != "tablet-1" {
			t.Fatalf("completed presell: %v", done)
		}
		row := dbSale(t, l, pk)
		if row["phase"] != 1.0 || row["sid"] != done["sid"] || row["ticket"] != p1["ticket"] || row["ticket_barcode"] != p1["ticket_barcode"] ||
			row["claim_session"] != nil || row["claim_name"] != nil || row["claim_expires_ms"] != nil || !dateTimeRE.MatchString(fmt.Sprint(row["completeddtutc"])) {
			t.Fatalf("completed presell in the DB: %v", row)
		}
		j := journalOf(t, l, pk)
		if last := j[len(j)-1]; last.Event != "completed" || last.Actor != "counter-1" || last.Detail["sid"] != done["sid"] || last.Detail["ticket"] != p1["ticket"] {
			t.Fatalf("journal of the completed presell: %s, last %+v", events(j), last)
		}
		if rows, _ := presellList(t, c2, map[string]any{"ticket": ticket(p1)}, nil, nil); len(rows) != 0 {
			t.Fatalf("the completed presell is still listed: %v", rows)
		}

		// The next presell submitted gets the same ticket number.
		sqliteExec(t, l.db, `INSERT INTO lane_counters (name, value) VALUES ('ticket_next', %d)
			ON CONFLICT (name) DO UPDATE SET value = excluded.value`, ticket(p1))
		pn := presellOn(t, tab2, 0, soldLine{1016, 1})
		if pn["ticket"] != p1["ticket"] || pn["ticket_word"] != p1["ticket_word"] || pn["ticket_barcode"] == p1["ticket_barcode"] {
			t.Fatalf("new presell got ticket %v %v %v; the completed one had %v %v %v (the barcode must differ)",
				pn["ticket"], pn["ticket_word"], pn["ticket_barcode"], p1["ticket"], p1["ticket_word"], p1["ticket_barcode"])
		}
		both := sqliteRows(t, l.db, `SELECT physkey, phase FROM sales WHERE ticket = %d ORDER BY phase`, ticket(p1))
		if !equalJSON(both, []map[string]any{{"physkey": pk, "phase": 1}, {"physkey": pn["physkey"], "phase": 5}}) {
			t.Fatalf("sales with ticket %d: %v", ticket(p1), both)
		}
		// The ticket now recalls the new presell; the old slip does not.
		r := c2.sale(t, presellA+"recall", nil, map[string]any{"ticket": ticket(p1)})
		if r["physkey"] != pn["physkey"] {
			t.Fatalf("recall of the reused ticket found %v, want the new presell %v", r["physkey"], pn["physkey"])
		}
		c2.sale(t, sbA+"sale_park", pn["physkey"], nil)
		c2.fails(t, presellA+"recall", nil, map[string]any{"barcode": p1["ticket_barcode"]}, "not_found", "completed", pk)
	})

	t.Run("cancel voids with who and when", func(t *testing.T) {
		pk := p2["physkey"].(string)
		before := c2.fetch(t, pk)
		// Another counter cannot cancel a presell counter-1 holds.
		c2.fails(t, sbA+"salesbuilder_cancel", pk, map[string]any{"reason": "mine now"}, "claimed", "counter-1")
		if after := c2.fetch(t, pk); !equalJSON(after, before) {
			t.Fatalf("a refused cancel changed the sale:\n%v\n%v", before, after)
		}
		v := c1.sale(t, sbA+"salesbuilder_cancel", pk, map[string]any{"reason": "customer left"})
		if v["phase"] != 10000.0 || v["physkey"] != pk {
			t.Fatalf("cancelled presell: %v", v)
		}
		row := dbSale(t, l, pk)
		voided, err := time.Parse("2006-01-02 15:04:05", fmt.Sprint(row["voided_utc"]))
		if row["phase"] != 10000.0 || row["voided_by"] != "counter-1" || err != nil || time.Since(voided) > time.Minute || time.Since(voided) < -time.Minute ||
			row["claim_session"] != nil || row["claim_expires_ms"] != nil || row["ticket"] != p2["ticket"] {
			t.Fatalf("cancelled presell in the DB: %v", row)
		}
		j := journalOf(t, l, pk)
		if last := j[len(j)-1]; last.Event != "voided" || last.Actor != "counter-1" || last.Detail["reason"] != "customer left" || last.Detail["ticket"] != p2["ticket"] {
			t.Fatalf("journal of the cancelled presell: %s, last %+v", events(j), last)
		}
		// A counter cancels a presell waiting in the queue (no claim) as
		// it pays one: once it has recalled it.
		q := p5["physkey"].(string)
		c2.fails(t, sbA+"sale_cancel", q, nil, "conflict", "changes again only once a counter recalls it")
		c2.sale(t, presellA+"recall", q, nil)
		if v := c2.sale(t, sbA+"sale_cancel", q, nil); v["phase"] != 10000.0 {
			t.Fatalf("cancel of a recalled presell: %v", v)
		}
		if row := dbSale(t, l, q); row["voided_by"] != "counter-2" || row["phase"] != 10000.0 {
			t.Fatalf("queued presell cancelled by counter-2, in the DB: %v", row)
		}
		if j := journalOf(t, l, q); events(j) != "created by tablet-1, submitted by tablet-1, claimed by counter-2, voided by counter-2" {
			t.Fatalf("journal of the cancelled queued presell: %s", events(j))
		}
		rows, _ := presellList(t, c2, nil, nil, nil)
		for _, r := range rows {
			if r["physkey"] == pk || r["physkey"] == q {
				t.Fatalf("a cancelled presell is still listed: %v", r)
			}
		}
		// The tablet that made it cannot change it any more.
		tab2.fails(t, sbA+"sale_add_product", pk, map[string]any{"pid": 1001}, "conflict", "cancelled")
	})

	t.Run("its tablet may cancel a presell waiting in the queue", func(t *testing.T) {
		q := presellOn(t, tab1, 0, soldLine{1007, 1})
		if v := tab1.sale(t, sbA+"salesbuilder_cancel", q["physkey"], map[string]any{"reason": "changed my mind"}); v["phase"] != 10000.0 {
			t.Fatalf("the tablet cancels its queued presell: %v", v)
		}
		if row := dbSale(t, l, q["physkey"].(string)); row["voided_by"] != "tablet-1" {
			t.Fatalf("cancelled by its tablet, in the DB: %v", row)
		}
		// A counter looks at the next one and gives it back to the queue.
		r := presellOn(t, tab1, 0, soldLine{1007, 1})
		rk := r["physkey"].(string)
		c1.sale(t, presellA+"recall", rk, nil)
		c1.sale(t, presellA+"release", rk, nil)
		if v := tab1.sale(t, sbA+"salesbuilder_cancel", rk, map[string]any{"reason": "changed my mind"}); v["phase"] != 10000.0 {
			t.Fatalf("the tablet cancels its queued presell after a counter released it: %v", v)
		}
	})

	t.Run("newest first, also within one second", func(t *testing.T) {
		tab3 := dialMux(t, l, "tablet-3", presellQuery, tabs[2], "")
		// a is made first but submitted last, so it is the newest presell.
		// b's physkey sorts above a's (as a later server-made UUIDv7 would):
		// a list that breaks ties of submitted_utc (whole seconds) by
		// physkey puts b first.
		for attempt := 0; ; attempt++ {
			a, b := "00000000-0000-4000-8000-"+newUUID()[24:], "ffffffff-ffff-4fff-bfff-"+newUUID()[24:]
			for _, pk := range []string{a, b} {
				tab3.sale(t, sbA+"sale_create", nil, map[string]any{"physkey": pk})
				tab3.sale(t, sbA+"sale_add_product", pk, map[string]any{"pid": 1001})
			}
			tab3.sale(t, sbA+"sale_park", b, nil)
			tab3.sale(t, sbA+"sale_park", a, nil)
			at := sqliteRows(t, l.db, `SELECT COUNT(DISTINCT submitted_utc) AS n FROM sales WHERE physkey IN %s`, sqlList([]string{a, b}))
			if num(at[0]["n"]) != 1 && attempt < 5 {
				continue // the second ticked over between the two: try again
			}
			rows, _ := presellList(t, c2, map[string]any{"tablet": "tablet-3"}, nil, map[string]any{"limit": 2})
			if got := physkeys(rows); fmt.Sprint(got) != fmt.Sprint([]string{a, b}) {
				t.Fatalf("get_presells: %v, want %s (submitted last) before %s", got, a, b)
			}
			return
		}
	})
}

func sorted(ss []string) []string {
	out := append([]string(nil), ss...)
	sort.Strings(out)
	return out
}

// waitLeaseOut sleeps until the claim on pk, as stored, has lapsed (plus a
// margin): the one place these tests wait on the clock.
func waitLeaseOut(t *testing.T, l *lane, pk string) {
	t.Helper()
	row := dbSale(t, l, pk)
	if row["claim_expires_ms"] == nil {
		t.Fatalf("presell %s has no claim to wait out: %v", pk, row)
	}
	time.Sleep(time.Until(time.UnixMilli(int64(num(row["claim_expires_ms"])))) + 150*time.Millisecond)
}

// TestClaimLease: a claim is a lease. Heartbeats keep it; once it lapses
// anyone may take the presell and the old holder's writes are refused; an
// admin may take a live claim over; a program writing the lane DB directly
// takes part on the same terms.
// TestClaimOfARevokedKeyWaitsOnNobody: a counter's key revoked (its
// device lost) while it held a presell: the next counter takes it at once
// instead of waiting out the lease, and the journal says from whom.
func TestClaimOfARevokedKeyWaitsOnNobody(t *testing.T) {
	alongside(t)
	l := startLane(t) // the default lease, 120s: far longer than the test
	tab := dialMux(t, l, "tablet-1", presellQuery, l.newKeys("tablet", "presell", 1)[0], "")
	cks := l.newKeys("counter", "counter", 2)
	a := dialMux(t, l, "counter-1", "", cks[0], "")
	b := dialMux(t, l, "counter-2", "", cks[1], "")
	p := presellOn(t, tab, 0, soldLine{1001, 1})
	pk := p["physkey"].(string)
	byTicket := map[string]any{"ticket": p["ticket"]}
	recall := presellA + "recall"
	a.sale(t, recall, nil, byTicket)
	b.fails(t, recall, nil, byTicket, "claimed", "counter-1")
	if _, err := cli(t, "apikey", "revoke", "counter-1", "--db", l.db); err != nil {
		t.Fatal(err)
	}
	r := b.sale(t, recall, nil, byTicket)
	if r["physkey"] != pk {
		t.Fatalf("counter-2 recalled %v, want %s", r["physkey"], pk)
	}
	if row := dbSale(t, l, pk); row["claim_name"] != "counter-2" {
		t.Fatalf("in the DB: %v", row)
	}
	j := journalOf(t, l, pk)
	if last := j[len(j)-1]; last.Event != "claimed" || last.Detail["took_over_from"] != "counter-1" || last.Detail["holder_revoked"] != true {
		t.Fatalf("journal: %s; last %+v, want counter-2's claim taken over from revoked counter-1", events(j), last)
	}
}

func TestClaimLease(t *testing.T) {
	alongside(t)
	const lease = 1500 * time.Millisecond
	l := startLane(t, "--presell-lease", lease.String())
	tab := dialMux(t, l, "tablet-1", presellQuery, l.newKeys("tablet", "presell", 1)[0], "")
	cks := l.newKeys("counter", "counter", 2)
	a := dialMux(t, l, "counter-1", "", cks[0], "")
	b := dialMux(t, l, "counter-2", "", cks[1], "")
	c := dialMux(t, l, "counter-admin", "", l.newKey("counter-admin", "counter,admin"), "")
	p := presellOn(t, tab, 0, soldLine{1001, 1})
	pk := p["physkey"].(string)
	byTicket := map[string]any{"ticket": p["ticket"]}
	recall := presellA + "recall"
	lines := func() int { return len(a.fetch(t, pk)["lines"].([]any)) }

	t.Run("heartbeats keep a claim past its lease", func(t *testing.T) {
		r := a.sale(t, recall, nil, byTicket)
		checkClaim(t, r, "counter-1", lease)
		first := num(dbSale(t, l, pk)["claim_expires_ms"])
		prev := first
		until := time.Now().Add(2*lease + lease/2)
		for beat := 0; time.Now().Before(until); beat++ {
			if beat == 2 {
				// A change by the holder renews the lease as well.
				a.sale(t, sbA+"sale_add_product", pk, map[string]any{"pid": 1002})
			} else {
				hb := a.do(t, presellA+"heartbeat", pk, nil).rows(t)
				if len(hb) != 1 || hb[0]["holder"] != "counter-1" {
					t.Fatalf("heartbeat: %v", hb)
				}
				if _, err := time.Parse(time.RFC3339, fmt.Sprint(hb[0]["expires"])); err != nil {
					t.Fatalf("heartbeat expires %v", hb[0]["expires"])
				}
			}
			exp := num(dbSale(t, l, pk)["claim_expires_ms"])
			if exp <= prev || exp < float64(time.Now().Add(lease-time.Second).UnixMilli()) {
				t.Fatalf("beat %d did not push the lease out: expires_ms %v, before %v", beat, exp, prev)
			}
			prev = exp
			b.fails(t, recall, nil, byTicket, "claimed", "counter-1")
			time.Sleep(lease / 4)
		}
		if now := float64(time.Now().UnixMilli()); now < first+float64(lease/2/time.Millisecond) {
			t.Fatalf("the test did not outlive the first lease")
		}
		row := dbSale(t, l, pk)
		if row["claim_name"] != "counter-1" || row["phase"] != 0.0 || num(row["claim_expires_ms"]) <= float64(time.Now().UnixMilli()) {
			t.Fatalf("after heartbeats past the first lease, in the DB: %v", row)
		}
	})

	t.Run("once the lease lapses another counter takes it without force", func(t *testing.T) {
		waitLeaseOut(t, l, pk)
		r := b.sale(t, recall, nil, byTicket)
		checkClaim(t, r, "counter-2", lease)
		j := journalOf(t, l, pk)
		if last := j[len(j)-1]; last.Event != "claimed" || last.Actor != "counter-2" || last.Detail["took_over_from"] != nil {
			t.Fatalf("journal: %s; last %+v (a lapsed claim is no claim: nothing was taken over)", events(j), last)
		}
		before, n := a.fetch(t, pk), lines()
		a.fails(t, sbA+"sale_add_product", pk, map[string]any{"pid": 1001}, "claim_lost", "counter-2")
		a.fails(t, presellA+"heartbeat", pk, nil, "claim_lost")
		a.fails(t, presellA+"release", pk, nil, "claim_lost")
		a.fails(t, sbA+"sale_park", pk, nil, "claim_lost")
		a.fails(t, presellA+"accept_prices", pk, nil, "claim_lost")
		if after := a.fetch(t, pk); !equalJSON(after, before) || lines() != n {
			t.Fatalf("refused writes changed the sale:\n%v\n%v", before, after)
		}
		if row := dbSale(t, l, pk); row["claim_name"] != "counter-2" {
			t.Fatalf("in the DB: %v", row)
		}
	})

	t.Run("a holder whose lease lapsed must recall again", func(t *testing.T) {
		q := presellOn(t, tab, 0, soldLine{1003, 1})
		qk := q["physkey"].(string)
		a.sale(t, recall, qk, nil)
		waitLeaseOut(t, l, qk)
		a.fails(t, sbA+"sale_add_product", qk, map[string]any{"pid": 1001}, "claim_lost", "lapsed")
		a.fails(t, presellA+"heartbeat", qk, nil, "claim_lost")
		if n := len(a.fetch(t, qk)["lines"].([]any)); n != 1 {
			t.Fatalf("a write after the lease lapsed added a line: %d lines", n)
		}
		checkClaim(t, a.sale(t, recall, qk, nil), "counter-1", lease)
		if s := a.sale(t, sbA+"sale_add_product", qk, map[string]any{"pid": 1001}); len(s["lines"].([]any)) != 2 {
			t.Fatalf("add after recalling again: %v", s["lines"])
		}
		if s := a.sale(t, presellA+"release", qk, nil); s["phase"] != 5.0 {
			t.Fatalf("release: %v", s)
		}
	})

	t.Run("qk mine lists live claims only", func(t *testing.T) {
		q := presellOn(t, tab, 0, soldLine{1005, 1})
		qk := q["physkey"].(string)
		a.sale(t, recall, qk, nil)
		if mine, _ := presellList(t, a, nil, "mine", nil); fmt.Sprint(physkeys(mine)) != fmt.Sprint([]string{qk}) {
			t.Fatalf("qk mine while the claim is live: %v, want %s", physkeys(mine), qk)
		}
		waitLeaseOut(t, l, qk)
		all, _ := presellList(t, a, map[string]any{"ticket": q["ticket"]}, nil, nil)
		if len(all) != 1 || all[0]["claimed_by"] != nil || all[0]["claim_expires"] != nil {
			t.Fatalf("get_presells of a presell whose claim lapsed: %v, want it unclaimed", all)
		}
		mine, _ := presellList(t, a, nil, "mine", nil)
		if len(mine) != 0 {
			t.Fatalf("qk mine after the claim lapsed: %v, want none (a lapsed claim is no claim)", physkeys(mine))
		}
	})

	t.Run("an admin takes over a live claim with force", func(t *testing.T) {
		// counter-2's claim lapsed while the last test waited: it recalls
		// the presell again (its own lapsed claim) and holds a live claim.
		checkClaim(t, b.sale(t, recall, pk, nil), "counter-2", lease)
		r := c.sale(t, recall, nil, map[string]any{"ticket": p["ticket"], "force": true})
		checkClaim(t, r, "counter-admin", lease)
		j := journalOf(t, l, pk)
		if last := j[len(j)-1]; last.Event != "claimed" || last.Actor != "counter-admin" || last.Detail["took_over_from"] != "counter-2" {
			t.Fatalf("journal: %s; last %+v, want a takeover from counter-2", events(j), last)
		}
		before := c.fetch(t, pk)
		b.fails(t, sbA+"sale_add_product", pk, map[string]any{"pid": 1001}, "claim_lost", "counter-admin")
		b.fails(t, presellA+"heartbeat", pk, nil, "claim_lost")
		b.fails(t, recall, nil, byTicket, "claimed", "counter-admin")
		// force needs admin.
		b.fails(t, recall, nil, map[string]any{"ticket": p["ticket"], "force": true}, "forbidden", "admin")
		a.fails(t, sbA+"sale_unpark", pk, map[string]any{"force": true}, "forbidden", "admin")
		if after := c.fetch(t, pk); !equalJSON(after, before) {
			t.Fatalf("refused requests changed the sale:\n%v\n%v", before, after)
		}
		if row := dbSale(t, l, pk); row["claim_name"] != "counter-admin" {
			t.Fatalf("in the DB: %v", row)
		}
		if s := c.sale(t, sbA+"sale_park", pk, nil); s["phase"] != 5.0 {
			t.Fatalf("the admin gives it back: %v", s)
		}
	})

	t.Run("a program claiming through the lane DB", func(t *testing.T) {
		sqlc := startSQLClaimer(t, l.db)
		r := presellOn(t, tab, 0, soldLine{1004, 1})
		rk := r["physkey"].(string)
		sqlc.must(t, "claim", rk, "won")
		row := dbSale(t, l, rk)
		if row["phase"] != 0.0 || row["claim_name"] != sqlClaimerName || row["claim_session"] != sqlc.session || row["holder_name"] != sqlClaimerName ||
			num(row["claim_expires_ms"]) < float64(time.Now().Add(110*time.Second).UnixMilli()) {
			t.Fatalf("claimed through SQL, in the DB: %v", row)
		}
		a.fails(t, recall, rk, nil, "claimed", sqlClaimerName)
		sqlc.must(t, "claim", rk, "won") // its own claim: claiming again renews it
		sqlc.must(t, "renew", rk, "ok")
		c.sale(t, recall, rk, map[string]any{"force": true})
		sqlc.must(t, "renew", rk, "lost")
		sqlc.must(t, "release", rk, "lost")
		sqlc.must(t, "claim", rk, "lost")
		c.sale(t, presellA+"release", rk, nil)
		sqlc.must(t, "claim", rk, "won")
		sqlc.must(t, "release", rk, "ok")
		if row := dbSale(t, l, rk); row["phase"] != 5.0 || row["claim_session"] != nil || row["holder_name"] != "" {
			t.Fatalf("released through SQL, in the DB: %v", row)
		}
		// The program crashes holding a claim; once its lease has run out a
		// counter takes the presell without force.
		sqlc.must(t, "claim", rk, "won")
		sqliteExec(t, l.db, `UPDATE sales SET claim_expires_ms = %d WHERE physkey = %s`, time.Now().Add(-time.Second).UnixMilli(), sqlQuote(rk))
		checkClaim(t, a.sale(t, recall, rk, nil), "counter-1", lease)
		sqlc.must(t, "renew", rk, "lost")
		j := journalOf(t, l, rk)
		want := "created by tablet-1, submitted by tablet-1, claimed by sql-counter, claimed by sql-counter, claimed by counter-admin, " +
			"released by counter-admin, claimed by sql-counter, released by sql-counter, claimed by sql-counter, claimed by counter-1"
		if events(j) != want {
			t.Fatalf("journal:\n got %s\nwant %s", events(j), want)
		}
		if j[4].Detail["took_over_from"] != sqlClaimerName || j[9].Detail["took_over_from"] != nil {
			t.Fatalf("takeovers in the journal: %+v and %+v", j[4], j[9])
		}
		// A presell still being built on its tablet cannot be claimed.
		building := tab.sale(t, sbA+"sale_create", nil, nil)["physkey"].(string)
		tab.sale(t, sbA+"sale_add_product", building, map[string]any{"pid": 1001})
		sqlc.must(t, "claim", building, "lost")
		a.fails(t, recall, building, nil, "conflict", "not been submitted")
	})

	t.Run("a recall retried with its ik after the link dropped", func(t *testing.T) {
		// The counter's link drops after it sent a recall; it reconnects
		// with the same key and resends the recall with the same ik, as
		// exactly-once clients do. If the lane answers that it holds the
		// presell, it must then be able to work on it.
		q := presellOn(t, tab, 0, soldLine{1006, 1})
		qk := q["physkey"].(string)
		ik := newUUID()
		lost := dialMux(t, l, "counter-1-lost", "", cks[0], "")
		first, err := lost.call(map[string]any{"a": recall, "k": qk, "ik": ik})
		if err != nil || first.Error != nil {
			t.Fatalf("recall: %v %s", err, rawOf(first))
		}
		lost.ws.Close()
		again := dialMux(t, l, "counter-1-again", "", cks[0], "")
		retry, err := again.call(map[string]any{"a": recall, "k": qk, "ik": ik})
		if err != nil {
			t.Fatal(err)
		}
		if retry.Error != nil {
			// An honest refusal is fine: the claim is the lost socket's.
			if c := retry.Error.Code; c != "claimed" && c != "claim_lost" && c != "ik_reused" && c != "conflict" {
				t.Fatalf("retried recall: %s", retry.raw)
			}
			return
		}
		checkClaim(t, saleReply(t, retry), "counter-1", lease)
		if r := again.do(t, sbA+"sale_add_product", qk, map[string]any{"pid": 1001}); r.Error != nil {
			t.Fatalf("the retried recall answered success, yet the next write is refused: %s", r.raw)
		}
	})
}

// TestRecallBadInput: recalls and claim requests that cannot be served get
// a clear error, and change nothing.
func TestRecallBadInput(t *testing.T) {
	alongside(t)
	l := startLane(t)
	tabKeys := l.newKeys("tablet", "presell", 2)
	cks := l.newKeys("counter", "counter", 2)
	displayKey := l.newKey("display-1", "display")
	counterDisplayKey := l.newKey("counter-display", "counter,display")
	tab := dialMux(t, l, "tablet-1", presellQuery, tabKeys[0], "")
	tab2 := dialMux(t, l, "tablet-2", presellQuery, tabKeys[1], "")
	c1 := dialMux(t, l, "counter-1", "", cks[0], "")
	c2 := dialMux(t, l, "counter-2", "", cks[1], "")

	queued := presellOn(t, tab, 0, soldLine{1001, 1})
	held := presellOn(t, tab, 0, soldLine{1002, 2})
	c1.sale(t, presellA+"recall", held["physkey"], nil)
	completed := presellOn(t, tab, 0, soldLine{1003, 1})
	c1.sale(t, presellA+"recall", completed["physkey"], nil)
	c1.sale(t, sbA+"sale_add_payment", completed["physkey"], map[string]any{"type": 1, "amount": 5.5})
	c1.sale(t, sbA+"salesbuilder_complete", completed["physkey"], nil)
	voided := presellOn(t, tab, 0, soldLine{1004, 1})
	c2.sale(t, presellA+"recall", voided["physkey"], nil)
	c2.sale(t, sbA+"salesbuilder_cancel", voided["physkey"], map[string]any{"reason": "test"})
	building := tab.sale(t, sbA+"sale_create", nil, nil)["physkey"].(string)
	tab.sale(t, sbA+"sale_add_product", building, map[string]any{"pid": 1005})
	plain := c2.sale(t, sbA+"sale_create", nil, nil)["physkey"].(string) // not a presell
	c2.sale(t, sbA+"sale_add_product", plain, map[string]any{"pid": 1005})

	// state is everything a refused request must leave alone: each sale as
	// sale_fetch shows it, its row and the journal.
	watched := []string{queued["physkey"].(string), held["physkey"].(string), completed["physkey"].(string), voided["physkey"].(string), building, plain}
	state := func(t *testing.T) string {
		t.Helper()
		var b strings.Builder
		for _, pk := range watched {
			b.Write(mustJSON(c2.fetch(t, pk)))
			b.WriteString("\n")
		}
		b.Write(mustJSON(sqliteRows(t, l.db, `SELECT physkey, phase, version, updated_utc, holder_key, claim_session, claim_key,
			claim_name, claim_expires_ms, voided_utc FROM sales ORDER BY physkey`)))
		b.Write(mustJSON(sqliteRows(t, l.db, `SELECT COUNT(*) AS n, MAX(seq) AS last FROM journal`)))
		return b.String()
	}
	before := state(t)
	unchanged := func(t *testing.T) {
		t.Helper()
		if after := state(t); after != before {
			t.Fatalf("a refused request changed the lane:\nbefore %s\nafter  %s", before, after)
		}
	}

	display := dialMux(t, l, "display-1", "", displayKey, "customerdisplay")
	counterDisplay := dialMux(t, l, "counter-display", "", counterDisplayKey, "customerdisplay")
	tabletPlain := dialMux(t, l, "tablet-1-plain", "", tabKeys[0], "")
	heldK, queuedK := held["physkey"], queued["physkey"]
	ticketOf := func(s map[string]any) any { return s["ticket"] }
	cases := []struct {
		name    string
		who     *muxSocket
		a       string
		k       any
		v       map[string]any
		code    string
		mention []string
	}{
		{"unknown ticket", c2, "recall", nil, map[string]any{"ticket": 9876}, "not_found", []string{"9876"}},
		{"unknown barcode", c2, "recall", nil, map[string]any{"barcode": "GL019876ABCD"}, "not_found", []string{"GL019876ABCD"}},
		{"unknown word", c2, "recall", nil, map[string]any{"word": "zebra-zinc"}, "not_found", []string{"zebra-zinc"}},
		{"not a ticket word", c2, "recall", nil, map[string]any{"word": "purple-monkey"}, "not_found", []string{"purple-monkey", "ticket word"}},
		{"unknown physkey", c2, "recall", newUUID(), nil, "not_found", nil},
		{"a sale that is not a presell", c2, "recall", plain, nil, "not_found", []string{"not a presell"}},
		{"ticket of a completed presell", c2, "recall", nil, map[string]any{"ticket": ticketOf(completed)}, "not_found", []string{"completed", completed["physkey"].(string)}},
		{"barcode of a completed presell", c2, "recall", nil, map[string]any{"barcode": completed["ticket_barcode"]}, "not_found", []string{"completed"}},
		{"word of a completed presell", c2, "recall", nil, map[string]any{"word": completed["ticket_word"]}, "not_found", []string{"completed"}},
		{"ticket of a cancelled presell", c2, "recall", nil, map[string]any{"ticket": ticketOf(voided)}, "not_found", []string{"cancelled", voided["physkey"].(string)}},
		{"physkey of a completed presell", c2, "recall", completed["physkey"], nil, "conflict", []string{"completed"}},
		{"physkey of a cancelled presell", c2, "recall", voided["physkey"], nil, "conflict", []string{"cancelled"}},
		{"a presell still being built", c2, "recall", building, nil, "conflict", []string{"not been submitted"}},
		{"customer display socket", display, "recall", nil, map[string]any{"ticket": ticketOf(queued)}, "forbidden", nil},
		{"customer display socket with a counter key", counterDisplay, "recall", nil, map[string]any{"ticket": ticketOf(queued)}, "forbidden", []string{"display"}},
		{"presell-only key on a presell socket", tab, "recall", nil, map[string]any{"ticket": ticketOf(queued)}, "forbidden", []string{"counter"}},
		{"presell-only key on a plain socket", tabletPlain, "recall", nil, map[string]any{"ticket": ticketOf(queued)}, "forbidden", []string{"counter"}},
		{"presell-only key heartbeats", tab, "heartbeat", heldK, nil, "forbidden", []string{"counter"}},
		{"another tablet unparks a presell", tab2, sbA + "sale_unpark", queuedK, nil, "not_found", []string{fmt.Sprint(queuedK)}},
		{"its tablet unparks a held presell", tab, sbA + "sale_unpark", heldK, nil, "claimed", []string{"counter-1"}},
		{"heartbeat for another's claim", c2, "heartbeat", heldK, nil, "conflict", []string{"no claim"}},
		{"heartbeat for an unclaimed presell", c2, "heartbeat", queuedK, nil, "conflict", []string{"no claim"}},
		{"release of another's claim", c2, "release", heldK, nil, "claimed", []string{"counter-1"}},
		{"release of an unclaimed presell", c2, "release", queuedK, nil, "conflict", []string{"not claimed"}},
		{"accept_prices on another's claim", c2, "accept_prices", heldK, nil, "claimed", []string{"counter-1"}},
		{"recall of another's claim", c2, "recall", heldK, nil, "claimed", []string{"counter-1"}},
		{"unpark of another's claim", c2, sbA + "sale_unpark", heldK, nil, "claimed", []string{"counter-1"}},
		{"force without admin", c2, "recall", heldK, map[string]any{"force": true}, "forbidden", []string{"admin"}},
		{"force without admin on a queued presell", c2, "recall", nil, map[string]any{"ticket": ticketOf(queued), "force": true}, "forbidden", []string{"admin"}},
		{"ticket and barcode", c2, "recall", nil, map[string]any{"ticket": ticketOf(queued), "barcode": queued["ticket_barcode"]}, "bad_argument", nil},
		{"ticket and word", c2, "recall", nil, map[string]any{"ticket": ticketOf(queued), "word": queued["ticket_word"]}, "bad_argument", nil},
		{"barcode and word", c2, "recall", nil, map[string]any{"barcode": queued["ticket_barcode"], "word": queued["ticket_word"]}, "bad_argument", nil},
		{"ticket and k", c2, "recall", queuedK, map[string]any{"ticket": ticketOf(queued)}, "bad_argument", nil},
		{"nothing named", c2, "recall", nil, map[string]any{}, "bad_argument", nil},
		{"ticket out of range", c2, "recall", nil, map[string]any{"ticket": 10000}, "bad_argument", nil},
		{"negative ticket", c2, "recall", nil, map[string]any{"ticket": -1}, "bad_argument", nil},
		{"ticket as words", c2, "recall", nil, map[string]any{"ticket": "twelve"}, "bad_argument", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := tc.a
			if !strings.HasPrefix(a, "fd1.") {
				a = presellA + a
			}
			tc.who.fails(t, a, tc.k, tc.v, tc.code, tc.mention...)
			unchanged(t)
		})
	}

	t.Run("HTTP mode lists presells but holds no claims", func(t *testing.T) {
		h := map[string]string{"x-api-key": cks[1]}
		for _, path := range []string{"/fd1/presell/recall", "/fd1/salesbuilder/sale_unpark"} {
			body := fmt.Sprintf(`{"rq":"h","v":{"ticket":%v}}`, queued["ticket"])
			if strings.HasSuffix(path, "unpark") {
				body = fmt.Sprintf(`{"rq":"h","k":%q}`, queuedK)
			}
			status, p := l.httpCall("POST", path, h, body)
			if status != 501 {
				t.Errorf("POST %s: status %d, want 501: %s", path, status, p.raw)
			}
			p.wantError(t, "unsupported")
			if !strings.Contains(p.Error.Message, "WebSocket") {
				t.Errorf("POST %s: message %q does not point at a WebSocket", path, p.Error.Message)
			}
			unchanged(t)
		}
		status, p := l.httpCall("GET", "/fd1/presell/get_presells?_rq=list", h, "")
		rows := p.rows(t)
		if status != 200 || fmt.Sprint(sorted(physkeys(rows))) != fmt.Sprint(sorted([]string{queuedK.(string), heldK.(string)})) {
			t.Fatalf("GET get_presells over HTTP: %d %s", status, p.raw)
		}
	})
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// cliQuiet runs a greenlane subcommand as a second process (without the
// race detector's pause at exit) and returns its stdout.
func cliQuiet(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = quietEnv()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("greenlane %s: %w: %s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

// waitPhase polls the lane DB until sale pk is in phase (the sweeper's
// work), for at most limit.
func waitPhase(t *testing.T, l *lane, pk string, phase float64, limit time.Duration) map[string]any {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		row := dbSale(t, l, pk)
		if row["phase"] == phase {
			return row
		}
		if time.Now().After(deadline) {
			t.Fatalf("presell %s still in phase %v after %s, want %v", pk, row["phase"], limit, phase)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestPresellExpiry: presells left untouched too long are voided, by the
// lane's sweeper or from the command line, each with a journal row saying
// why; a presell under a live claim is never voided that way.
func TestPresellExpiry(t *testing.T) {
	alongside(t)
	t.Run("the sweeper voids abandoned presells", func(t *testing.T) {
		const maxAge = 2 * time.Second
		l := startLane(t, "--presell-max-age", maxAge.String(), "--presell-sweep-every", "200ms")
		tab := dialMux(t, l, "tablet-1", presellQuery, l.newKeys("tablet", "presell", 1)[0], "")
		c1 := dialMux(t, l, "counter-1", "", l.newKeys("counter", "counter", 1)[0], "")
		// held is claimed (a 120 s lease) before old is submitted: whenever
		// old is old enough to be voided, so is held, but for its claim.
		held := presellOn(t, tab, 0, soldLine{1001, 1})
		hk := held["physkey"].(string)
		c1.sale(t, presellA+"recall", hk, nil)
		old := presellOn(t, tab, 0, soldLine{1002, 1})
		ok := old["physkey"].(string)
		building := tab.sale(t, sbA+"sale_create", nil, nil)["physkey"].(string) // never submitted
		tab.sale(t, sbA+"sale_add_product", building, map[string]any{"pid": 1003})

		row := waitPhase(t, l, ok, 10000, 30*time.Second)
		voided, err := time.Parse("2006-01-02 15:04:05", fmt.Sprint(row["voided_utc"]))
		if row["voided_by"] != "sweeper" || err != nil || time.Since(voided) > time.Minute {
			t.Fatalf("voided by the sweeper, in the DB: %v", row)
		}
		j := journalOf(t, l, ok)
		last := j[len(j)-1]
		reason, _ := last.Detail["reason"].(string)
		if events(j) != "created by tablet-1, submitted by tablet-1, expired by sweeper" || !strings.Contains(reason, "abandoned") ||
			!strings.Contains(reason, maxAge.String()) || last.Detail["ticket"] != old["ticket"] {
			t.Fatalf("journal of the expired presell: %s, last %+v", events(j), last)
		}
		waitPhase(t, l, building, 10000, 30*time.Second)
		if j := journalOf(t, l, building); events(j) != "created by tablet-1, expired by sweeper" {
			t.Fatalf("journal of the expired unsubmitted presell: %s", events(j))
		}
		if !strings.Contains(l.log(), "voided abandoned presells") {
			t.Errorf("the lane did not log the sweep:\n%s", l.log())
		}

		// held was older than old, and is still open: it is under a claim.
		if row := dbSale(t, l, hk); row["phase"] != 0.0 || row["claim_name"] != "counter-1" || row["voided_by"] != nil {
			t.Fatalf("the claimed presell, after the sweeper voided an younger one: %v", row)
		}
		c1.sale(t, sbA+"sale_add_product", hk, map[string]any{"pid": 1004})
		tab.fails(t, sbA+"sale_add_product", ok, map[string]any{"pid": 1001}, "conflict", "cancelled")
		c1.fails(t, presellA+"recall", nil, map[string]any{"ticket": old["ticket"]}, "not_found", "cancelled")

		// Given back, it is abandoned in its turn.
		c1.sale(t, presellA+"release", hk, nil)
		waitPhase(t, l, hk, 10000, 30*time.Second)
		if j := journalOf(t, l, hk); events(j) != "created by tablet-1, submitted by tablet-1, claimed by counter-1, released by counter-1, expired by sweeper" {
			t.Fatalf("journal of the released presell: %s", events(j))
		}
	})

	t.Run("the command line lists, expires and voids while the lane runs", func(t *testing.T) {
		l := startLane(t) // the sweeper's default age (12h) leaves these alone
		tab := dialMux(t, l, "tablet-1", presellQuery, l.newKeys("tablet", "presell", 1)[0], "")
		c1 := dialMux(t, l, "counter-1", "", l.newKeys("counter", "counter", 1)[0], "")
		var ps []map[string]any
		for i := range 5 {
			ps = append(ps, presellOn(t, tab, 0, soldLine{1001 + i, 1}))
		}
		pk := func(i int) string { return ps[i]["physkey"].(string) }
		ticket := func(i int) string { return fmt.Sprint(ps[i]["ticket"]) }
		// 4 has been paid $2.50 of, and given back to the queue.
		c1.sale(t, presellA+"recall", pk(4), nil)
		c1.sale(t, sbA+"sale_add_payment", pk(4), map[string]any{"type": 1, "amount": 2.5})
		c1.sale(t, presellA+"release", pk(4), nil)
		// 0, 1 and 4 were last changed long ago; 1 is claimed by a counter.
		c1.sale(t, presellA+"recall", pk(1), nil)
		sqliteExec(t, l.db, `UPDATE sales SET updated_utc = '2000-01-01 00:00:00.000000', version = version + 1 WHERE physkey IN %s`,
			sqlList([]string{pk(0), pk(1), pk(4)}))

		out, err := cliQuiet(t, "presell", "list", "--db", l.db)
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if err != nil || len(lines) != 6 || !strings.Contains(lines[0], "TICKET") || !strings.Contains(lines[0], "CLAIMED BY") ||
			strings.Fields(lines[0])[3] != "PAID" {
			t.Fatalf("presell list: %v\n%s", err, out)
		}
		for i := range ps {
			var found string
			for _, ln := range lines[1:] {
				if strings.Contains(ln, pk(i)) {
					found = ln
				}
			}
			f := strings.Fields(found)
			paid := map[bool]string{true: "2.5", false: "0"}[i == 4]
			if len(f) < 4 || f[0] != ticket(i) || f[1] != ps[i]["ticket_word"] || f[3] != paid || !strings.Contains(found, "tablet-1") ||
				strings.Contains(found, "counter-1 until") != (i == 1) {
				t.Fatalf("presell list: the line of presell %d (ticket %s, claimed %v) is %q\n%s", i, ticket(i), i == 1, found, out)
			}
		}

		out, err = cliQuiet(t, "presell", "expire", "--db", l.db, "--older-than", "1m")
		if want := "expired presell " + pk(0) + "\n1 presells older than 1m0s voided\nkept presell " + pk(4) + " (ticket " + ticket(4) +
			"): it holds $2.50 in payments; recall it at a counter to finish it or refund them\n"; err != nil || out != want {
			t.Fatalf("presell expire: %v\n got %q\nwant %q", err, out, want)
		}
		if row := dbSale(t, l, pk(0)); row["phase"] != 10000.0 || row["voided_by"] != "cli" || row["voided_utc"] == nil {
			t.Fatalf("expired from the command line, in the DB: %v", row)
		}
		j := journalOf(t, l, pk(0))
		if last := j[len(j)-1]; last.Event != "expired" || last.Actor != "cli" || !strings.Contains(fmt.Sprint(last.Detail["reason"]), "abandoned") {
			t.Fatalf("journal of the presell expired from the command line: %s, last %+v", events(j), last)
		}
		if row := dbSale(t, l, pk(1)); row["phase"] != 0.0 || row["claim_name"] != "counter-1" {
			t.Fatalf("presell expire voided a claimed presell: %v", row)
		}

		out, err = cliQuiet(t, "presell", "void", ticket(2), "--db", l.db)
		if want := "voided presell " + pk(2) + "\n"; err != nil || out != want {
			t.Fatalf("presell void TICKET: %v\n got %q\nwant %q", err, out, want)
		}
		out, err = cliQuiet(t, "presell", "void", pk(3), "--db", l.db, "--reason", "duplicate order")
		if want := "voided presell " + pk(3) + "\n"; err != nil || out != want {
			t.Fatalf("presell void PHYSKEY: %v\n got %q\nwant %q", err, out, want)
		}
		for i, reason := range map[int]string{2: "voided from the command line", 3: "duplicate order"} {
			row := dbSale(t, l, pk(i))
			j := journalOf(t, l, pk(i))
			last := j[len(j)-1]
			if row["phase"] != 10000.0 || row["voided_by"] != "cli" || last.Event != "voided" || last.Actor != "cli" || last.Detail["reason"] != reason {
				t.Fatalf("presell %d voided from the command line: %v; journal %s, last %+v", i, row, events(j), last)
			}
		}

		// A claimed presell is voided only with --force.
		before := dbSale(t, l, pk(1))
		if _, err := cliQuiet(t, "presell", "void", ticket(1), "--db", l.db); err == nil ||
			!strings.Contains(err.Error(), `"counter-1"`) || !strings.Contains(err.Error(), "--force") {
			t.Fatalf("presell void of a claimed presell: %v", err)
		}
		if after := dbSale(t, l, pk(1)); !equalJSON(after, before) {
			t.Fatalf("a refused void changed the presell:\n%v\n%v", before, after)
		}
		if out, err := cliQuiet(t, "presell", "void", ticket(1), "--db", l.db, "--force"); err != nil || out != "voided presell "+pk(1)+"\n" {
			t.Fatalf("presell void --force: %v %q", err, out)
		}
		if row := dbSale(t, l, pk(1)); row["phase"] != 10000.0 || row["claim_session"] != nil || row["voided_by"] != "cli" {
			t.Fatalf("force-voided presell in the DB: %v", row)
		}
		c1.fails(t, sbA+"sale_add_product", pk(1), map[string]any{"pid": 1001}, "conflict", "cancelled")

		// The one holding money is voided once the counter gives it back.
		if _, err := cliQuiet(t, "presell", "void", ticket(4), "--db", l.db); err == nil || !strings.Contains(err.Error(), "holds $2.50 in payments") {
			t.Fatalf("presell void of a presell holding money: %v", err)
		}
		c1.sale(t, presellA+"recall", pk(4), nil)
		c1.sale(t, sbA+"sale_remove_payment", pk(4), map[string]any{"seq": 1})
		c1.sale(t, presellA+"release", pk(4), nil)
		if out, err := cliQuiet(t, "presell", "void", ticket(4), "--db", l.db); err != nil || out != "voided presell "+pk(4)+"\n" {
			t.Fatalf("presell void once the payment was reversed: %v %q", err, out)
		}

		for _, which := range []string{"9999", ticket(0)} {
			if _, err := cliQuiet(t, "presell", "void", which, "--db", l.db); err == nil || !strings.Contains(err.Error(), "no open presell has ticket "+which) {
				t.Fatalf("presell void %s: %v", which, err)
			}
		}
		if out, err := cliQuiet(t, "presell", "list", "--db", l.db); err != nil || len(strings.Split(strings.TrimSpace(out), "\n")) != 1 {
			t.Fatalf("presell list with none open: %v\n%s", err, out)
		}
		if rows, _ := presellList(t, c1, nil, nil, nil); len(rows) != 0 {
			t.Fatalf("the lane still lists presells voided from the command line: %v", rows)
		}
	})
}

// TestClaimMessageAcrossDSTEnd: a presell another device holds says for how
// long, not only until when. The lane's clock is frozen at 13:59 UTC on 4
// April 2026, 02:59 NZDT in the demo lane's Pacific/Auckland, a minute
// before the clocks go back: the two-minute lease ends at 14:01 UTC, 02:01
// NZST, which alone reads as long lapsed at 02:59.
func TestClaimMessageAcrossDSTEnd(t *testing.T) {
	alongside(t)
	l := startLane(t, "--clock", "2026-04-04T13:59:00Z")
	tab := dialMux(t, l, "tablet-1", presellQuery, l.newKeys("tablet", "presell", 1)[0], "")
	cks := l.newKeys("counter", "counter", 2)
	holder := dialMux(t, l, "counter-1", "", cks[0], "")
	p := presellOn(t, tab, 0, soldLine{1001, 1})
	byTicket := map[string]any{"ticket": p["ticket"]}
	holder.sale(t, presellA+"recall", nil, byTicket)

	tests := []struct {
		name string
		key  string
		want string
	}{
		{"another counter", cks[1], `is held by "counter-1" for 2 more min (until 02:01)`},
		{"another connection of the same key", cks[0], `is held by another connection of this key ("counter-1") for 2 more min (until 02:01);`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			other := dialMux(t, l, "other", "", tt.key, "")
			other.fails(t, presellA+"recall", nil, byTicket, "claimed", tt.want)
		})
	}
}
