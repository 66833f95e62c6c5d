package integration

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/greenlane-pos/greenlane/internal/pgtest"
	"github.com/greenlane-pos/greenlane/lanedb"
)

// The store mode (issue 15): several `greenlane serve` processes on one
// PostgreSQL database serve one store.

// storeDB is a fresh store database (pgtest.FreshDB) for a test that
// starts its own lanes.
func storeDB(t *testing.T) string {
	t.Helper()
	needsOwnLane(t)
	return pgtest.FreshDB(t)
}

// demoStore is a store database with the demo fixture loaded and an admin
// key made, both with the CLI.
func demoStore(t *testing.T) (db, adminKey string) {
	t.Helper()
	db = storeDB(t)
	if _, err := cli(t, "fixture", "load", "demo", "--db", db); err != nil {
		t.Fatal(err)
	}
	key, err := cli(t, "apikey", "create", "--db", db, "--name", "admin", "--scope", "admin")
	if err != nil {
		t.Fatal(err)
	}
	return db, strings.TrimSpace(key)
}

// startStoreLane starts `greenlane serve --db URL` on a store database
// that was loaded beforehand; key is an admin key made with the CLI.
func startStoreLane(t *testing.T, dbURL, key string, extra ...string) *lane {
	t.Helper()
	l := &lane{t: t, db: dbURL, key: key, exited: make(chan struct{})}
	l.launch(quietEnv(), append([]string{"serve", "--addr", "127.0.0.1:0", "--db", dbURL}, extra...))
	return l
}

// TestStoreTwoInstances: two servers on one PostgreSQL database are one
// store. A tablet on A parks a presell; a display on B sees that sale live
// as it is built and parked on A; a counter on B recalls it by its ticket
// and completes it; the display sees that too, and A's tablet finds its
// presell completed.
func TestStoreTwoInstances(t *testing.T) {
	alongside(t)
	db, adminKey := demoStore(t)
	a := startStoreLane(t, db, adminKey)
	b := startStoreLane(t, db, adminKey)
	keys := a.keysFor(keyRequest{"tablet-1", "presell"}, keyRequest{"counter-1", "counter"}, keyRequest{"display-1", "display"})

	display := b.login("", keys["display-1"], custdisp)
	openFH(t, display, fhOpen("all", map[string]any{"event": "custdisp.sale"}, nil))

	tablet := a.login(presellQuery, keys["tablet-1"], "")
	parked := presellFromTablet(t, tablet, 0, soldLine{1001, 2}, soldLine{1020, 1})
	pk := parked["physkey"].(string)

	// B's display sees A's sale: created, two lines, parked, in that order.
	var seen []string
	var lastSeq float64
	for len(seen) < 4 {
		ev := nextEvent(t, display, "all")
		seq, ok := ev.seq(t)
		if !ok || float64(seq) <= lastSeq {
			t.Fatalf("event out of order or without seq after %v: %s", lastSeq, ev.raw)
		}
		lastSeq = float64(seq)
		if !strings.Contains(string(ev.V), pk) {
			t.Fatalf("an event of another sale: %s", ev.raw)
		}
		seen = append(seen, ev.SC)
	}
	want := []string{"custdisp.sale.add", "custdisp.sale.lines.add", "custdisp.sale.lines.add", "custdisp.sale.status"}
	if strings.Join(seen, " ") != strings.Join(want, " ") {
		t.Fatalf("B's display saw %v, want %v", seen, want)
	}

	counter := b.login("", keys["counter-1"], "")
	recalled := sale(t, counter, presellA+"recall", nil, map[string]any{"ticket": parked["ticket"]})
	if recalled["physkey"] != pk || recalled["holder"] != "counter-1" || recalled["tablet"] != "tablet-1" {
		t.Fatalf("B's counter recalled ticket %v: %v, want %s held by counter-1", parked["ticket"], recalled, pk)
	}
	sale(t, counter, sbA+"sale_add_payment", pk, map[string]any{"type": 3, "amount": recalled["saletotal"]})
	done := sale(t, counter, sbA+"salesbuilder_complete", pk, nil)
	if done["phase"] != 1.0 || num(done["sid"]) < 1 {
		t.Fatalf("completed on B: %v", done)
	}
	for _, wantSC := range []string{"custdisp.sale.status", "custdisp.sale.payments.add", "custdisp.sale.status"} {
		ev := nextEvent(t, display, "all")
		if ev.SC != wantSC {
			t.Fatalf("after the recall B's display got %s, want %s", ev.raw, wantSC)
		}
	}

	// The tablet on A can no longer change it: B's counter completed it.
	wantErr(t, tablet, req(sbA+"sale_add_product", pk, map[string]any{"pid": 1001}), "conflict")

	// The store database holds it once, completed by counter-1.
	ctx := context.Background()
	c, err := pgx.Connect(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	var phase, sid, n int64
	var holder string
	if err := c.QueryRow(ctx, `SELECT phase, sid, holder_name, (SELECT count(*) FROM sales) FROM sales WHERE physkey = $1`, pk).
		Scan(&phase, &sid, &holder, &n); err != nil {
		t.Fatal(err)
	}
	if phase != 1 || sid != int64(num(done["sid"])) || holder != "counter-1" || n != 1 {
		t.Fatalf("in the store DB: phase %d sid %d holder %s, %d sales; want 1, %v, counter-1, 1 sale", phase, sid, holder, n, done["sid"])
	}
	for _, l := range []*lane{a, b} {
		if bad := l.troubles(); bad != "" {
			t.Errorf("a lane logged trouble:\n%s", bad)
		}
	}
}

// TestStoreRecallRace: a counter on each instance and the tablet that made
// the presell (on A) claim the same presell at the same moment, for each of
// n presells. Each time exactly one wins and the others are told who has
// it (never an internal error, never two winners), and the winner gives it
// back. The claim's conditional UPDATE is what decides, across processes.
func TestStoreRecallRace(t *testing.T) {
	alongside(t)
	const n = 1000
	db, adminKey := demoStore(t)
	a := startStoreLane(t, db, adminKey, "--max-open-presells", fmt.Sprint(n))
	b := startStoreLane(t, db, adminKey, "--max-open-presells", fmt.Sprint(n))
	keys := a.keysFor(keyRequest{"tablet-1", "presell"}, keyRequest{"counter-1", "counter"}, keyRequest{"counter-2", "counter"})
	tablet := dialMux(t, a, "tablet-1", presellQuery, keys["tablet-1"], "")
	sockets := []*muxSocket{
		dialMux(t, a, "counter-1", "", keys["counter-1"], ""),
		dialMux(t, b, "counter-2", "", keys["counter-2"], ""),
		tablet,
	}
	names := []string{"counter-1", "counter-2", "tablet-1"}
	presells := submitPresells(t, tablet, n, 5)
	wins := make([]int, len(names))
	for i, p := range presells {
		pkts := []map[string]any{
			{"a": presellA + "recall", "v": map[string]any{"ticket": p.ticket}},
			{"a": presellA + "recall", "k": p.physkey},
			{"a": sbA + "sale_unpark", "k": p.physkey},
		}
		start := make(chan struct{})
		replies := make([]*packet, len(sockets))
		errs := make([]error, len(sockets))
		var wg sync.WaitGroup
		for who, s := range sockets {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				replies[who], errs[who] = s.call(pkts[who])
			}()
		}
		close(start)
		wg.Wait()
		var won []int
		for who, r := range replies {
			if errs[who] != nil {
				t.Fatalf("presell %d, %s: %v", i, names[who], errs[who])
			}
			if r.Error == nil {
				won = append(won, who)
			}
		}
		if len(won) != 1 {
			var got []string
			for who, r := range replies {
				got = append(got, names[who]+": "+string(r.raw))
			}
			t.Fatalf("presell %d: %d winners, want one:\n%s", i, len(won), strings.Join(got, "\n"))
		}
		w := won[0]
		wins[w]++
		for who, r := range replies {
			if who != w {
				if err := claimedBy(r, names[w]); err != nil {
					t.Fatalf("presell %d, loser %s: %v", i, names[who], err)
				}
			}
		}
		got := sockets[w].sale(t, sbA+"sale_park", p.physkey, nil)
		if got["phase"] != 5.0 || got["holder"] != "" {
			t.Fatalf("presell %d: %s parked it back: phase %v holder %q", i, names[w], got["phase"], got["holder"])
		}
	}
	if wins[0] == 0 || wins[1] == 0 {
		t.Errorf("wins %v: a counter never won; the instances did not really compete", wins)
	}
	t.Logf("%d races: counter-1 (A) won %d, counter-2 (B) %d, tablet-1 (A) %d", n, wins[0], wins[1], wins[2])
}

// TestStoreConcurrentSubmits: tablets on both instances build and submit
// presells at the same moment. Both instances pick tickets from one store:
// every submit succeeds (one that picked a ticket another instance took at
// that moment is run once more and takes the next free one), and no two
// open presells share a ticket.
func TestStoreConcurrentSubmits(t *testing.T) {
	alongside(t)
	const tablets, sales, lines = 10, 5, 3
	db, adminKey := demoStore(t)
	flags := []string{"--max-unauth-per-address", "64"}
	lanes := []*lane{
		startStoreLane(t, db, adminKey, flags...),
		startStoreLane(t, db, adminKey, flags...),
	}
	keys := lanes[0].newKeys("tablet", "presell", tablets)
	results := make([][]soldSale, tablets)
	errs := make([]error, tablets)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range tablets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			results[i], errs[i] = runTablet(lanes[i%2].addr, fmt.Sprintf("tablet-%d", i+1), keys[i], i, sales, lines)
		}()
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("tablet-%d (on %c): %v", i+1, 'A'+i%2, err)
		}
	}
	if t.Failed() {
		return
	}
	byTicket := map[float64]string{}
	for _, rs := range results {
		for _, s := range rs {
			if other, dup := byTicket[s.ticket]; dup {
				t.Fatalf("presells %s and %s were both given ticket %v", other, s.physkey, s.ticket)
			}
			byTicket[s.ticket] = s.physkey
		}
	}
	ctx := context.Background()
	c, err := pgx.Connect(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	var open, distinct int
	if err := c.QueryRow(ctx, `SELECT count(*), count(DISTINCT ticket) FROM sales WHERE presell = 1 AND phase = 5`).
		Scan(&open, &distinct); err != nil {
		t.Fatal(err)
	}
	if open != tablets*sales || distinct != open || len(byTicket) != open {
		t.Fatalf("store DB: %d submitted presells with %d distinct tickets; the tablets were told of %d; want %d each",
			open, distinct, len(byTicket), tablets*sales)
	}
	for _, l := range lanes {
		if bad := l.troubles(); bad != "" {
			t.Errorf("a lane logged trouble:\n%s", bad)
		}
	}
}

// TestStoreExactlyOnceAcrossInstances: a request retried with its ik on
// the other instance gets the stored reply and runs nothing again, also
// when the two copies arrive on both instances at the same moment, and
// when the change would now be refused.
func TestStoreExactlyOnceAcrossInstances(t *testing.T) {
	alongside(t)
	db, adminKey := demoStore(t)
	a := startStoreLane(t, db, adminKey)
	b := startStoreLane(t, db, adminKey)
	key := a.newKeys("tablet", "presell", 1)[0]
	onA, onB := a.login(presellQuery, key, ""), b.login(presellQuery, key, "")

	create := map[string]any{"a": sbA + "sale_create", "rq": "create", "ik": newUUID()}
	first := doPkt(t, onA, create)
	pk := saleReply(t, first)["physkey"].(string)
	if again := doPkt(t, onB, create); string(again.Data) != string(first.Data) {
		t.Fatalf("create retried on B:\n got %s\nwant %s", again.raw, first.raw)
	}

	// The same add_product, at once on both instances, for several iks.
	const rounds = 20
	for i := range rounds {
		add := map[string]any{"a": sbA + "sale_add_product", "rq": fmt.Sprint("add", i), "ik": newUUID(), "k": pk,
			"v": map[string]any{"pid": 1001, "qty": 1}}
		var ra, rb *packet
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); ra = onA.in(t).call(add) }()
		go func() { defer wg.Done(); rb = onB.in(t).call(add) }()
		wg.Wait()
		if ra.Error != nil || rb.Error != nil || string(ra.Data) != string(rb.Data) {
			t.Fatalf("round %d: the two copies got different replies:\nA %s\nB %s", i, ra.raw, rb.raw)
		}
	}
	// A park retried on B, which would refuse a parked sale, answers the park.
	park := map[string]any{"a": sbA + "sale_park", "rq": "park", "ik": newUUID(), "k": pk}
	parked := doPkt(t, onA, park)
	if again := doPkt(t, onB, park); parked.Error != nil || string(again.Data) != string(parked.Data) {
		t.Fatalf("park retried on B:\n got %s\nwant %s", again.raw, parked.raw)
	}
	ctx := context.Background()
	c, err := pgx.Connect(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	var sales, lines int
	if err := c.QueryRow(ctx, `SELECT (SELECT count(*) FROM sales), (SELECT count(*) FROM sale_lines WHERE sale_physkey = $1)`, pk).
		Scan(&sales, &lines); err != nil {
		t.Fatal(err)
	}
	if sales != 1 || lines != rounds {
		t.Fatalf("store DB: %d sales, %d lines; want 1 sale with %d lines (each ik once)", sales, lines, rounds)
	}
}

// TestStoreConnectionsDropped: PostgreSQL ends every connection of the
// store database (as a restart does) under a running instance. A request
// then is either served on a new connection or answered unavailable
// (retry), never an internal error, and the instance goes on serving
// without a restart.
func TestStoreConnectionsDropped(t *testing.T) {
	alongside(t)
	db, adminKey := demoStore(t)
	l := startStoreLane(t, db, adminKey)
	tablet := l.login(presellQuery, l.newKeys("tablet", "presell", 1)[0], "")
	pk := sale(t, tablet, sbA+"sale_create", nil, nil)["physkey"].(string)

	products := map[string]any{"a": "fd1.products.get_products_list", "rq": "products"}
	if r := doPkt(t, tablet, products); r.Error != nil {
		t.Fatalf("products before: %s", r.raw)
	}
	ctx := context.Background()
	c, err := pgx.Connect(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	var ended int
	if err := c.QueryRow(ctx, `SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE datname = current_database() AND pid <> pg_backend_pid()) AS t`).Scan(&ended); err != nil {
		t.Fatal(err)
	}
	if ended == 0 {
		t.Fatal("the instance held no connection to end")
	}
	// Reads run on the read pool, whose connections ended too.
	readServed := 0
	for i := range 3 {
		r := doPkt(t, tablet, products)
		switch {
		case r.Error == nil:
			readServed++
		case r.Error.Code != "unavailable":
			t.Fatalf("read %d after the connections ended: %s, want a reply or unavailable", i, r.raw)
		}
	}
	if readServed == 0 {
		t.Fatal("three reads after the connections ended were all unavailable: the read pool did not reconnect")
	}
	served := 0
	for i := range 3 {
		r := doPkt(t, tablet, req(sbA+"sale_add_product", pk, map[string]any{"pid": 1001}))
		switch {
		case r.Error == nil:
			served++
		case r.Error.Code != "unavailable":
			t.Fatalf("request %d after the connections ended: %s, want a reply or unavailable", i, r.raw)
		}
	}
	t.Logf("after the connections ended: %d of 3 reads and %d of 3 writes served, the rest unavailable", readServed, served)
	if served == 0 {
		t.Fatal("three requests after the connections ended were all unavailable: the instance did not reconnect")
	}
	var lines int
	if err := c.QueryRow(ctx, `SELECT count(*) FROM sale_lines WHERE sale_physkey = $1`, pk).Scan(&lines); err != nil {
		t.Fatal(err)
	}
	if lines != served {
		t.Fatalf("the sale has %d lines after %d served adds: an unavailable answer wrote, or a reply did not", lines, served)
	}
}

// isStoreURL reports whether db names a PostgreSQL store database rather
// than an SQLite file.
func isStoreURL(db string) bool {
	return strings.HasPrefix(db, "postgres://") || strings.HasPrefix(db, "postgresql://")
}

// storeRows is sqliteRows on a store database: the rows as sqlite3 -json
// gives them (numbers as float64, a condition as 1 or 0), so that the
// checks written for the SQLite file read PostgreSQL alike.
func storeRows(t *testing.T, db, query string) []map[string]any {
	t.Helper()
	return storeSnapshot(t, db, query)[0]
}

// storeSnapshot runs queries in one REPEATABLE READ transaction: they see
// one moment of the store. A killed instance's backend may still commit a
// transaction the instance sent before it died; read apart, a sale could
// be read before that commit and its lines after.
func storeSnapshot(t *testing.T, db string, queries ...string) [][]map[string]any {
	t.Helper()
	ctx := context.Background()
	c, err := pgx.Connect(ctx, db)
	if err != nil {
		t.Fatalf("connect to the store database: %v", err)
	}
	defer c.Close(ctx)
	tx, err := c.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		t.Fatalf("begin a snapshot of the store database: %v", err)
	}
	defer tx.Rollback(ctx)
	out := make([][]map[string]any, len(queries))
	for i, q := range queries {
		out[i] = pgRows(t, tx, q)
	}
	return out
}

// pgRows reads query's rows through q as sqlite3 -json gives them.
func pgRows(t *testing.T, q interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}, query string) []map[string]any {
	t.Helper()
	ctx := context.Background()
	rows, err := q.Query(ctx, query)
	if err != nil {
		t.Fatalf("%q: %v", query, err)
	}
	defer rows.Close()
	var out []map[string]any
	for rows.Next() {
		vals, err := rows.Values()
		if err != nil {
			t.Fatalf("%q: %v", query, err)
		}
		row := map[string]any{}
		for i, f := range rows.FieldDescriptions() {
			switch v := vals[i].(type) {
			case int64:
				row[f.Name] = float64(v)
			case int32:
				row[f.Name] = float64(v)
			case bool:
				row[f.Name] = map[bool]float64{true: 1, false: 0}[v]
			case []byte:
				row[f.Name] = string(v)
			case pgtype.Numeric: // SUM of BIGINT: a whole number, as sqlite3 -json prints it
				f8, err := v.Float64Value()
				if err != nil || !f8.Valid {
					row[f.Name] = nil
					continue
				}
				row[f.Name] = f8.Float64
			default:
				row[f.Name] = v
			}
		}
		out = append(out, row)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("%q: %v", query, err)
	}
	return out
}

// storeExec is sqliteExec on a store database.
func storeExec(t *testing.T, db, stmts string) {
	t.Helper()
	ctx := context.Background()
	c, err := pgx.Connect(ctx, db)
	if err != nil {
		t.Fatalf("connect to the store database: %v", err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, stmts); err != nil {
		t.Fatalf("%q: %v", stmts, err)
	}
}

// relStartStore is relStart on a store database (loaded beforehand, so no
// --create).
func relStartStore(t *testing.T, db string, extra ...string) *relProc {
	t.Helper()
	return relLaunch(t, db, extra...)
}

// TestStoreKillNineUnderLoad is the crash test (TestKillNineUnderLoad's
// model and checks) across two instances on one store database: each
// round, three tablets and a counter work on one instance, which is killed
// with SIGKILL at a random moment of the load; the next round's clients
// reconnect to the other instance, which has been serving all along, while
// the killed one is started again. After every kill the store holds exactly
// what the clients were told, ik retries on the other instance return the
// first reply byte for byte, and the counter gets the presells it held
// through the dead instance back on the other one.
func TestStoreKillNineUnderLoad(t *testing.T) {
	alongside(t)
	if testing.Short() {
		t.Skip("kill -9 loop: run without -short, as .ci/run does")
	}
	const rounds = 12
	seed := time.Now().UnixNano()
	rng := rand.New(rand.NewPCG(uint64(seed), 0x9e3779b97f4a7c15))
	t.Logf("seed %d", seed)

	db, admin := demoStore(t)
	flags := []string{"--presell-lease", "3s", "--max-open-presells", "9999"}
	procs := []*relProc{relStartStore(t, db, flags...), relStartStore(t, db, flags...)}
	tablets := []string{"tablet-1", "tablet-2", "tablet-3"}
	keys := relKeys(t, db, map[string]string{"tablet-1": "presell", "tablet-2": "presell", "tablet-3": "presell", "counter-1": "counter"})
	m := newRelModel()

	runRound := func(r *relRound, afterReady func()) {
		t.Helper()
		m.runRound(t, r, tablets, keys, admin, rng, afterReady)
	}

	var midRequest int
	for round := 1; round <= rounds; round++ {
		i := round % 2
		p := procs[i]
		r := &relRound{addr: p.addr, killedCh: make(chan struct{})}
		runRound(r, func() {
			time.Sleep(time.Duration(20+rng.IntN(1000)) * time.Millisecond)
			n := r.outstanding()
			r.killed.Store(true)
			close(r.killedCh)
			p.kill9()
			if n > 0 {
				midRequest++
			}
		})
		p.checkLog()
		if t.Failed() {
			t.Fatalf("round %d (seed %d); killed instance's log:\n%s", round, seed, p.log())
		}
		relCheckDB(t, db, m, false)
		procs[i] = relStartStore(t, db, flags...) // back, while the other serves
	}
	if midRequest < rounds/2 {
		t.Errorf("only %d of %d kills landed with requests in flight; the load is too light to prove anything", midRequest, rounds)
	}

	// Settle on one instance: every presell finished, lost replies retried
	// with their ik; then both stop cleanly.
	r := &relRound{addr: procs[0].addr, killedCh: make(chan struct{}), settle: true}
	runRound(r, func() {})
	for _, p := range procs {
		sent := time.Now()
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		if took, code := p.waitExit(sent, 30*time.Second); code != 0 {
			t.Fatalf("an instance exited with %d after %v:\n%s", code, took, p.log())
		}
	}
	relCheckDB(t, db, m, true)
	t.Logf("%d kill -9s (%d mid-request); %d requests acknowledged, %d lost replies retried with their ik and applied once, %d ik retries byte-identical, %d recalled again after a claim lapsed",
		rounds, midRequest, m.acked.Load(), m.resolved.Load(), m.replays.Load(), m.recalls.Load())
}

// TestStoreFixtureRefusedWhileServing is TestFixtureRefusedWhileServing on
// a store database, whose lock is PostgreSQL's (lanedb.StoreLockKey): with
// two lanes serving it, the fixture commands that would wipe or rebuild it
// exit 1 saying how many lanes serve it, and the sales are still there;
// once the lanes stop, reset runs. A lane started while a command holds
// the lock refuses to start, saying so.
func TestStoreFixtureRefusedWhileServing(t *testing.T) {
	alongside(t)
	db, adminKey := demoStore(t)
	a := startStoreLane(t, db, adminKey)
	b := startStoreLane(t, db, adminKey)
	tab := a.login(presellQuery, a.newKey("tablet-1", "presell"), "")
	k := sale(t, tab, sbA+"sale_create", nil, nil)["physkey"].(string)
	sale(t, tab, sbA+"sale_add_product", k, map[string]any{"pid": 1001, "qty": 1})
	sale(t, tab, sbA+"sale_park", k, nil)
	sales := func() string {
		return fmt.Sprint(storeRows(t, db, `SELECT count(*) AS n FROM sales`)[0]["n"])
	}
	if n := sales(); n != "1" {
		t.Fatalf("%s sales before, want 1", n)
	}
	refused := func(lanes string, args ...string) {
		t.Helper()
		out, err := cli(t, append(args, "--db", db)...)
		var ee *exec.ExitError
		want := "a lane is serving it: " + lanes + " serving lane(s) hold its store lock"
		if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(err.Error(), want) ||
			!strings.Contains(err.Error(), "stop them first") {
			t.Errorf("%q while %s lane(s) serve: %v %s, want status 1: %s … stop them first", args, lanes, err, out, want)
		}
		if n := sales(); n != "1" {
			t.Fatalf("after %q the store holds %s sales, want the 1 it served", args, n)
		}
	}
	for _, args := range [][]string{
		{"fixture", "reset"}, {"fixture", "load", "demo", "--replace"}, {"fixture", "load", "empty"},
		{"fixture", "generate", "--products", "3", "--sales", "2"},
	} {
		refused("2", args...)
	}
	a.stop()
	refused("1", "fixture", "reset")
	b.stop()
	if out, err := cli(t, "fixture", "reset", "--db", db); err != nil || !strings.Contains(out, "reset ") {
		t.Fatalf("reset once the lanes stopped: %v %s", err, out)
	}
	if n := sales(); n != "0" {
		t.Fatalf("reset left %s sales", n)
	}

	// A command rewriting the store holds the lock exclusive: here the
	// test's own session, as a long load would.
	ctx := context.Background()
	c, err := pgx.Connect(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, `SELECT pg_advisory_lock($1)`, lanedb.StoreLockKey); err != nil {
		t.Fatal(err)
	}
	code, log := serveUntilListening(t, db)
	if code != 1 || !strings.Contains(log, "is being rewritten: a fixture command holds its store lock") {
		t.Fatalf("serve while a command holds the store lock: exit status %d, want 1 saying the store is being rewritten:\n%s", code, log)
	}
	if _, err := c.Exec(ctx, `SELECT pg_advisory_unlock($1)`, lanedb.StoreLockKey); err != nil {
		t.Fatal(err)
	}
	startStoreLane(t, db, adminKey).stop() // serves once the lock is let go
}

// serveUntilListening runs `greenlane serve` on the store database db and
// returns its exit status and log once it exits, or -1 and the log if it
// starts listening instead (it is then stopped).
func serveUntilListening(t *testing.T, db string) (code int, log string) {
	t.Helper()
	l := &lane{t: t, db: db, exited: make(chan struct{})}
	l.cmd = exec.Command(binary, "serve", "--addr", "127.0.0.1:0", "--db", db)
	l.cmd.Env = quietEnv()
	pipe, err := l.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := l.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addrc := make(chan string, 1)
	go l.readLog(pipe, addrc)
	select {
	case <-l.exited:
		return l.cmd.ProcessState.ExitCode(), l.log()
	case <-addrc:
		l.stop()
		return -1, l.log()
	}
}
