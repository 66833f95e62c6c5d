package bench

// The recall benchmark (issue 4): does a counter still find and recall
// presells quickly on a lane DB with a long history? On a built (or
// reused) history, tablets make the open presells over their sockets;
// then the counter's get_presells (five filters in turn) and recall by
// ticket (each followed by a release, timed too, so that the presell
// stays open) are timed on one counter socket, in process (the baseline)
// and on several sockets at once, and the query plans show that the
// lookups walk the open-presell indexes, not the history.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/greenlane-pos/greenlane/fd1client"
	"github.com/greenlane-pos/greenlane/fixtures"
	"github.com/greenlane-pos/greenlane/lanedb"
	"github.com/greenlane-pos/greenlane/presell"
	"github.com/greenlane-pos/greenlane/progress"
	"github.com/greenlane-pos/greenlane/protocol"
)

// RecallConfig is one recall benchmark run.
type RecallConfig struct {
	// Sales is how many historic (completed) sales the lane DB holds.
	// Default 1,000,000.
	Sales int64
	// Open is how many open presells tablets make before the counters
	// start. Default 200.
	Open int
	// Requests is how many requests of each kind are measured, per figure.
	// Default 2,000.
	Requests int
	// WarmUp is how many requests of each kind run unmeasured first.
	// Default 300.
	WarmUp int
	// Counters is how many counter sockets the concurrent figure runs at
	// once. Default 8; 0 or 1 skips that figure.
	Counters int
	// GroupCommitWait is the lane writer's batching wait (0: group commit
	// off). Default lanedb's default (2ms), as the lane runs.
	GroupCommitWait time.Duration
	// DB is the lane DB file, or a PostgreSQL URL whose server gets the
	// database NAME_recall (see store.go). One that holds a finished build
	// of Sales historic sales is reused (its open presells voided first),
	// any other bench DB rebuilt, and it is kept after the run; a lane DB
	// this benchmark did not build is refused. Default "": a temporary
	// folder, removed at the end.
	DB string
	// Progress receives the build's progress display. Default nil: none.
	Progress io.Writer
	// CPUProfile receives a CPU profile of the measuring (every figure,
	// warm-ups included; not the build). Default nil.
	CPUProfile io.Writer
	// Log receives the server's warnings and errors. Default nil: dropped.
	Log io.Writer
}

// targetRecallP99 is issue 4's target for get_presells and recall by
// ticket, one counter, on this (2-core) machine.
const targetRecallP99 = 5 * time.Millisecond

func DefaultRecallConfig() RecallConfig {
	return RecallConfig{Sales: 1_000_000, Open: 200, Requests: 2000, WarmUp: 300, Counters: 8, GroupCommitWait: defaultWait}
}

func (c RecallConfig) validate() error {
	err := errors.Join(inRange("sales", c.Sales, 0, 50_000_000, ""),
		inRange("open presells", c.Open, 1, lanedb.MaxTicket, " (the lane's tickets)"),
		inRange("requests", c.Requests, 1, 10_000_000, ""), inRange("warm-up", c.WarmUp, 0, 10_000_000, ""),
		inRange("counters", c.Counters, 0, 64, ""), atLeast("group commit wait", c.GroupCommitWait, 0, "0 (off) or more"))
	if err == nil && c.Open < max(c.Counters, 1) {
		// Each counter recalls presells of its own, so none waits on another's claim.
		return fmt.Errorf("open presells %d: want at least one per counter (%d)", c.Open, c.Counters)
	}
	return err
}

type RecallReport struct {
	cfg      RecallConfig
	figures  []*recallFigure // 1 counter, direct, then many when run
	plansOK  bool
	voided   int64
	open     []openPresell
	counters []*counter
}

// RunRecall runs the recall benchmark and prints the report to out. An
// error means it could not run; failed requests are in RecallReport.Err.
func RunRecall(ctx context.Context, cfg RecallConfig, out io.Writer) (*RecallReport, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	path, cleanup := cfg.DB, func() {}
	if cfg.DB == "" || lanedb.IsPostgresURL(cfg.DB) {
		prefix, done, err := workPrefix(cfg.DB)
		if err == nil {
			path, err = phaseDB(prefix, "recall")
		}
		if err != nil {
			return nil, err
		}
		cleanup = done
	}
	defer cleanup()
	p := &printer{w: out}
	gc := "group commit off"
	if cfg.GroupCommitWait > 0 {
		gc = "group commit wait " + cfg.GroupCommitWait.String()
	}
	p.printf("greenlane bench recall — %s historic sales, %d open presells, %s measured requests of each kind per figure (after %s warm-up); %s, %s\n",
		progress.Thousands(cfg.Sales), cfg.Open, progress.Thousands(int64(cfg.Requests)), progress.Thousands(int64(cfg.WarmUp)), gc, durability(path))
	p.machine("counters and server share this process" + loadAverage("start"))
	db, err := prepareRecallDB(ctx, cfg, path, p)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	rep := &RecallReport{cfg: cfg}
	// The counters hold a claim through every get_presells figure ("qk
	// mine" lists live claims), which a long run must not see lapse, and
	// heartbeats would be extra requests on the measured sockets.
	l, err := startLane(ctx, db, path, laneOptions{groupWait: cfg.GroupCommitWait, lease: 24 * time.Hour, log: serverLog(cfg.Log)})
	if err != nil {
		return nil, err
	}
	sync, durable, err := l.synchronous(ctx)
	if err = errors.Join(err, rep.run(ctx, l, p), l.stop()); err != nil {
		return nil, err
	}
	single := &rep.figures[0].stats
	list, recall := single.ops[opList].quantile(0.99), single.ops[opRecall].quantile(0.99)
	errs, errText := rep.Err(), "0"
	if errs != nil {
		errText = errs.Error()
	}
	p.printf("errors: %s\n", errText)
	p.printf("target (issue 4: p99 ≤ %s, 1 counter, %s historic sales%s): %s, %s, %s, %s, %s\n",
		ms(targetRecallP99), progress.Thousands(cfg.Sales), loadAverage("end"),
		check("get_presells p99 "+ms(list), list <= targetRecallP99), check("recall p99 "+ms(recall), recall <= targetRecallP99),
		check("0 errors", errs == nil), check("an index, not a scan", rep.plansOK), check(sync, durable))
	return rep, p.err
}

// run makes the open presells, prints the DB and the plans, and measures.
func (rep *RecallReport) run(ctx context.Context, l *lane, p *printer) error {
	var err error
	if rep.voided, err = voidPresells(ctx, directWrite(l.DB), "bench recall", "(0, 5)", 0); err != nil {
		return err
	}
	if err := makeOpenPresells(ctx, l, rep.cfg.Open); err != nil {
		return err
	}
	rows, err := l.Presell.Open(ctx)
	if err != nil {
		return err
	}
	for _, r := range rows {
		submitted, err := time.Parse(lanedb.DateTime, r.Submitted)
		if err != nil || r.Ticket == nil {
			return fmt.Errorf("open presell %s: ticket %v, submitted %q", r.Physkey, r.Ticket, r.Submitted)
		}
		rep.open = append(rep.open, openPresell{ticket: *r.Ticket, physkey: r.Physkey, submitted: submitted})
	}
	if len(rep.open) != rep.cfg.Open {
		return fmt.Errorf("the tablets made %d open presells, the lane DB lists %d", rep.cfg.Open, len(rep.open))
	}
	if err := p.recallFacts(ctx, l.DB, len(rep.open), rep.voided); err != nil {
		return err
	}
	if rep.counters, err = connectCounters(ctx, l, max(rep.cfg.Counters, 1)); err != nil {
		return err
	}
	defer func() {
		for _, c := range rep.counters {
			c.c.Close()
		}
	}()
	if rep.plansOK, err = p.recallPlans(ctx, l.DB, rep.workload(1, rep.open), rep.counters[0].keyID); err != nil {
		return err
	}
	stopProfile, err := startProfile(rep.cfg.CPUProfile)
	if err != nil {
		return err
	}
	defer stopProfile()
	return rep.measure(ctx, l, p)
}

// Err is nil when no request failed. Otherwise it summarises the failures
// by figure and code, with an example.
func (r *RecallReport) Err() error {
	var ts []namedTally
	for _, f := range r.figures {
		ts = append(ts, namedTally{f.name, &f.stats.errs})
	}
	return failures("", ts...)
}

// historyMarker is the lane_counters row in which a finished build
// records its historic sales: written last, it tells a complete bench DB
// (which may be replaced) from anyone else's lane DB.
const historyMarker = "bench_recall_sales"

// prepareRecallDB opens the lane DB to measure as the lane runs it, and
// says where it came from: a named DB holding a finished build of the
// same size is reused, one of another size rebuilt, and one that bench
// recall did not build refused rather than replaced.
func prepareRecallDB(ctx context.Context, cfg RecallConfig, path string, p *printer) (*lanedb.DB, error) {
	replaced := ""
	if db, err := openIfThere(ctx, path, cfg.DB != ""); err != nil {
		return nil, err
	} else if db != nil {
		held, ok, err := lanedb.CounterValue(ctx, db.Read, historyMarker)
		var maxSID int64
		if err == nil && ok {
			maxSID, err = lanedb.MaxSID(ctx, db.Read)
		}
		switch {
		case err == nil && !ok:
			err = fmt.Errorf("%s is a lane DB that bench recall did not build: not replacing it (name another --db)", db.Path)
		case err == nil && maxSID == held && held == cfg.Sales:
			p.printf("lane DB: reused %s: its finished build holds %s historic sales (not rebuilt)\n", db.Path, progress.Thousands(cfg.Sales))
			return db, nil
		}
		// Another size, or sids (1…N) that disagree with the count: the
		// file changed since. Rebuilt.
		db.Close()
		if err != nil {
			return nil, err
		}
		replaced = fmt.Sprintf("; replaced a bench DB built for %s sales", progress.Thousands(held))
	}
	start := time.Now()
	if err := buildHistory(ctx, cfg.DB, path, cfg.Sales, cfg.Progress); err != nil {
		return nil, err
	}
	took := time.Since(start)
	db, err := lanedb.Open(ctx, path, lanedb.DefaultOptions())
	if err != nil {
		return nil, err
	}
	how := "synchronous OFF during the build only"
	if db.Postgres() {
		how = "then ANALYZE"
	}
	p.printf("lane DB: built %s historic sales in %s (%s sales/s; fixtures.Generate: bulk INSERTs, 20,000 sales per transaction, %s) at %s%s\n",
		progress.Thousands(cfg.Sales), took.Round(time.Millisecond), progress.Thousands(int64(perSec(cfg.Sales, took))), how, db.Path, replaced)
	return db, nil
}

// buildHistory makes a fresh demo lane DB at path with n sales completed
// over a past year, three in ten presells, so that every ticket number is
// in the history many times, then the marker. The load runs with
// synchronous OFF (a crash loses a bench DB with no marker, which is
// rebuilt) and a 64 MB page cache (the random_key index takes inserts all
// over; SQLite's default 2 MB makes each miss a read).
func buildHistory(ctx context.Context, admin, path string, n int64, prog io.Writer) error {
	if err := freshDemo(ctx, admin, path); err != nil {
		return err
	}
	db, err := lanedb.Open(ctx, path, lanedb.Options{Synchronous: "OFF"})
	if err != nil {
		return err
	}
	defer db.Close()
	if err := db.SetWriterCacheKB(ctx, 64<<10); err != nil {
		return err
	}
	err = fixtures.Generate(ctx, db, fixtures.GenerateOptions{OntoStore: true, Sales: int(n), PresellPercent: 30, Seed: 4, Progress: prog})
	if err == nil && db.Postgres() {
		// The planner's statistics, which autovacuum would gather soon
		// after such a load: without them the plans would be guesses.
		_, err = db.Exec(ctx, "ANALYZE")
	}
	if err != nil {
		return fmt.Errorf("build historic sales: %w", err)
	}
	return db.WriteTx(ctx, func(tx *lanedb.Tx) error { return lanedb.SetCounter(ctx, tx, historyMarker, n) })
}

// recallFacts prints the lane DB's size and its big tables' rows.
func (p *printer) recallFacts(ctx context.Context, db *lanedb.DB, open int, voided int64) error {
	size, err := db.DatabaseSize(ctx)
	if err != nil {
		return err
	}
	wal := "pg_database_size; the WAL is the cluster's, left out"
	if n, err := db.WALSize(); err == nil {
		wal = "+ " + mb(n) + " WAL"
	} else if !errors.Is(err, lanedb.ErrNotOnPostgres) {
		return err
	}
	var rows [3]string
	for i, table := range []string{"sales", "sale_lines", "payments"} {
		n, err := db.CountRows(ctx, table)
		if err != nil {
			return err
		}
		rows[i] = progress.Thousands(n)
	}
	note := ""
	if voided > 0 {
		note = fmt.Sprintf("; %d left open by an earlier run voided", voided)
	}
	p.printf("lane DB: %s on disk (%s); rows: sales %s, sale_lines %s, payments %s; open presells %d, made by %d tablets over sockets%s\n",
		mb(size), wal, rows[0], rows[1], rows[2], open, min(setupTablets, open), note)
	return nil
}

// setupTablets is how many tablets make the open presells at once.
const setupTablets = 4

// makeOpenPresells has tablets make n presells over their sockets, so
// that the lane allocates the tickets as in a shop.
func makeOpenPresells(ctx context.Context, l *lane, n int) error {
	stats := &loadStats{} // its window stays closed: only failures are kept
	keys := make([]benchKey, min(setupTablets, n))
	for i := range keys {
		var err error
		if keys[i], err = freshKey(ctx, l.DB, fmt.Sprintf("bench-recall-tablet-%d", i+1), protocol.ScopePresell); err != nil {
			return err
		}
	}
	errs := make([]error, len(keys))
	parallel(len(keys), func(i int) {
		t, err := dialTablet(ctx, l.presellURL(), keys[i].key, i+1, stats)
		if err != nil {
			errs[i] = err
			return
		}
		defer t.c.Close()
		for range part(n, len(keys), i) {
			if ok, err := t.sale(saleShape{lines: 2, customer: true}); !ok || err != nil {
				errs[i] = err // an error reply is in stats
				return
			}
		}
	})
	err := errors.Join(errs...)
	if err == nil && stats.Errs.total() > 0 {
		err = fmt.Errorf("%s; e.g. %s", stats.Errs.codes(), stats.Errs.example())
	}
	if err != nil {
		return fmt.Errorf("make open presells: %w", err)
	}
	return nil
}

// part is worker i's part of n jobs split among workers.
func part(n, workers, i int) int {
	if i < n%workers {
		return n/workers + 1
	}
	return n / workers
}

type openPresell struct {
	ticket    int64
	physkey   string
	submitted time.Time
}

// connectCounters opens n counter sockets, each with a key of its own.
func connectCounters(ctx context.Context, l *lane, n int) ([]*counter, error) {
	out := make([]*counter, 0, n)
	for i := range n {
		key, err := freshKey(ctx, l.DB, fmt.Sprintf("bench-recall-counter-%02d", i+1), protocol.ScopeCounter)
		var c *fd1client.Conn
		if err == nil {
			c, err = fd1client.Open(ctx, l.laneURL(), key.key, protocol.PurposeNone, fd1client.Options{})
		}
		if err != nil {
			for _, c := range out {
				c.c.Close()
			}
			return nil, fmt.Errorf("counter %d: %w", i+1, err)
		}
		out = append(out, &counter{c: c, keyID: key.id})
	}
	return out, nil
}

// presellListLimit is how many rows get_presells answers with when the
// counter names no limit (salesbuilder's maxPresellRows).
const presellListLimit = 500

// listVariant is one way a counter asks for the presell list.
type listVariant int

const (
	listAll      listVariant = iota // no filter: the whole queue
	listTicket                      // the customer says a number
	listCustomer                    // part of a name
	listAge                         // waiting at least this long
	listMine                        // what this counter holds
	numListVariants
)

var listVariantNames = [numListVariants]string{"all", "ticket", "customer", "age(>=)", "qk mine"}

// listQuery is one get_presells request. wantRows is the row count it
// must answer with, or -1 when that depends on the draw.
type listQuery struct {
	variant  listVariant
	q        map[string]any // the request's q (nil: none)
	wantRows int
}

type recallOp int

const (
	opList recallOp = iota
	opRecall
	opRelease
	numRecallOps
)

var recallOpNames = [numRecallOps]string{"get_presells", "recall", "release"}

// customerParts are what a counter types to find a customer: parts of the
// demo customers' names, in any case.
var customerParts = []string{"ngata", "whit", "walker", "tūhoe", "raman", "o'connor", "chen", "martin", "pōmare", "fitz", "zz"}

// workload draws one counter's requests, deterministically from its seed.
type workload struct {
	rng  *rand.Rand
	all  []openPresell // what the ticket filter asks for
	own  []openPresell // what this counter recalls (its share when counters run at once)
	next int           // round robin over the list variants, so that each gets an equal share
}

func (w *workload) nextList() listQuery {
	q := listQuery{variant: listVariant(w.next % int(numListVariants)), wantRows: -1}
	w.next++
	switch q.variant {
	case listAll:
		q.wantRows = min(len(w.all), presellListLimit)
	case listTicket:
		q.q, q.wantRows = map[string]any{"ticket": w.all[w.rng.IntN(len(w.all))].ticket}, 1
	case listCustomer:
		q.q = map[string]any{"customer": customerParts[w.rng.IntN(len(customerParts))]}
	case listAge:
		// Cut at a random presell's submit time, so that each figure (run
		// later, when all are older) lists about as many.
		cut := w.all[w.rng.IntN(len(w.all))].submitted
		q.q = map[string]any{"age(>=)": max(int64(time.Since(cut).Seconds()), 0)}
	case listMine:
		q.wantRows = 1 // every counter holds one presell while it lists (see measure)
	}
	return q
}

// filter is the lanedb filter get_presells builds for q, for a counter
// whose key id is claimKey.
func (q listQuery) filter(claimKey string) lanedb.PresellFilter {
	f := lanedb.PresellFilter{Limit: presellListLimit}
	switch q.variant {
	case listTicket:
		f.Conds = []lanedb.Cond{{Column: "ticket", Op: "=", Value: q.q["ticket"]}}
	case listCustomer:
		f.Customer = q.q["customer"].(string)
	case listAge:
		// As the server does: age >= N seconds is submitted <= now - N.
		at := time.Now().Add(-time.Duration(q.q["age(>=)"].(int64)) * time.Second).UTC().Format(lanedb.DateTime)
		f.Conds = []lanedb.Cond{{Column: "submitted_utc", Op: "<=", Value: at}}
	case listMine:
		f.ClaimKey, f.Now = claimKey, time.Now()
	}
	return f
}

// recallStats is what one figure measured, shared by its counters.
type recallStats struct {
	record atomic.Bool // false during warm-up
	ops    [numRecallOps]histogram
	lists  [numListVariants]histogram
	rows   [numListVariants]atomic.Int64 // rows answered, for the average
	errs   tally                         // counted in warm-up too
}

type recallFigure struct {
	name      string
	clients   []recallClient
	own       [][]openPresell // per client: the presells it recalls
	release   bool            // the recall claims, so each is released after
	stats     recallStats
	listTook  time.Duration // wall time of the measured get_presells
	cycleTook time.Duration // wall time of the measured recall cycles
	writer    lanedb.WriterSnapshot
	cpu       cpuUse
}

// recallClient is a counter socket, or the baseline's direct calls, each
// call with its latency. A *protocol.Error is a failed request (counted,
// the counter goes on); any other error means the client broke.
type recallClient interface {
	list(ctx context.Context, q listQuery) (rows int, took time.Duration, err error)
	recall(ctx context.Context, ticket int64) (physkey string, took time.Duration, err error)
	release(ctx context.Context, physkey string) (took time.Duration, err error)
}

// step makes one request of op (a recall with its release, when release)
// and records it; the error is only a broken client's.
func (s *recallStats) step(ctx context.Context, op recallOp, c recallClient, w *workload, release bool) error {
	if op == opList {
		q := w.nextList()
		what := "get_presells " + listVariantNames[q.variant]
		rows, took, err := c.list(ctx, q)
		if err == nil && q.wantRows >= 0 && rows != q.wantRows {
			s.errs.fail(what, protocol.Errorf("wrong_rows", "answered %d rows, want %d", rows, q.wantRows))
		}
		if err == nil && s.record.Load() {
			s.ops[opList].record(took)
			s.lists[q.variant].record(took)
			s.rows[q.variant].Add(int64(rows))
		}
		return s.failed(what, err)
	}
	p := w.own[w.rng.IntN(len(w.own))]
	what := fmt.Sprintf("recall ticket %d", p.ticket)
	physkey, took, err := c.recall(ctx, p.ticket)
	if err != nil {
		return s.failed(what, err)
	}
	s.timed(opRecall, took)
	if physkey != p.physkey {
		s.errs.fail(what, protocol.Errorf("wrong_presell", "answered %s, want %s", physkey, p.physkey))
	}
	if !release {
		return nil
	}
	// Given back, so that the presell stays open for the next.
	if took, err = c.release(ctx, physkey); err == nil {
		s.timed(opRelease, took)
	}
	return s.failed(fmt.Sprintf("release ticket %d", p.ticket), err)
}

func (s *recallStats) timed(op recallOp, d time.Duration) {
	if s.record.Load() {
		s.ops[op].record(d)
	}
}

// failed counts a failed request and passes a broken client on.
func (s *recallStats) failed(what string, err error) error {
	if pe := (*protocol.Error)(nil); err != nil && !errors.As(err, &pe) {
		return fmt.Errorf("%s: %w", what, err)
	}
	if err != nil {
		s.errs.fail(what, err)
	}
	return nil
}

// workload is a request stream recalling from own, seeded by client
// number so that every figure asks the same questions.
func (rep *RecallReport) workload(seed uint64, own []openPresell) *workload {
	return &workload{rng: rand.New(rand.NewPCG(seed, 0x5eed)), all: rep.open, own: own}
}

// share is counter i's own presells when the counters run at once: every
// n-th one, so that no two counters ever recall the same presell (one
// would find it claimed, which is the lane working, not a measurement).
func (rep *RecallReport) share(i int) []openPresell {
	var out []openPresell
	for j := i; j < len(rep.open); j += len(rep.counters) {
		out = append(out, rep.open[j])
	}
	return out
}

// measure runs the figures: one counter socket, the lookups in process
// ("qk mine" as the first counter), and every counter socket at once.
// get_presells runs while each counter holds one presell (the customer it
// serves, for "qk mine" to find), the recall cycles once they are given
// back.
func (rep *RecallReport) measure(ctx context.Context, l *lane, p *printer) error {
	first := rep.counters[0]
	rep.figures = []*recallFigure{
		{name: "1 counter over WebSocket", clients: []recallClient{first}, own: [][]openPresell{rep.open}, release: true},
		{name: "direct lanedb (baseline: no socket, no JSON, no claim)", own: [][]openPresell{rep.open},
			clients: []recallClient{&directClient{db: l.DB, presell: l.Presell, claimKey: first.keyID}}},
	}
	if n := len(rep.counters); n > 1 {
		many := &recallFigure{name: fmt.Sprintf("%d counters over WebSocket at once", n), release: true}
		for i, c := range rep.counters {
			many.clients, many.own = append(many.clients, c), append(many.own, rep.share(i))
		}
		rep.figures = append(rep.figures, many)
	}
	serving := make([]string, len(rep.counters))
	for i, c := range rep.counters {
		t := rep.share(i)[0].ticket
		var err error
		if serving[i], _, err = c.recall(ctx, t); err != nil {
			return fmt.Errorf("counter %d recalls ticket %d to serve: %w", i+1, t, err)
		}
	}
	for _, f := range rep.figures {
		if err := rep.phase(ctx, l, f, opList); err != nil {
			return err
		}
	}
	for i, c := range rep.counters {
		if _, err := c.release(ctx, serving[i]); err != nil {
			return fmt.Errorf("counter %d releases %s: %w", i+1, serving[i], err)
		}
	}
	for _, f := range rep.figures {
		if err := rep.phase(ctx, l, f, opRecall); err != nil {
			return err
		}
		p.recallFigure(f)
	}
	p.recallRatios(&rep.figures[0].stats, &rep.figures[1].stats)
	return nil
}

// phase runs op on f's clients at once, WarmUp requests unrecorded, then
// Requests recorded, with the lane's writer and the CPU over them.
func (rep *RecallReport) phase(ctx context.Context, l *lane, f *recallFigure, op recallOp) error {
	works := make([]*workload, len(f.clients))
	for i := range works {
		works[i] = rep.workload(uint64(i+1), f.own[i])
	}
	if err := f.runClients(ctx, works, rep.cfg.WarmUp, op); err != nil {
		return err
	}
	before := l.Writer.Stats().Snapshot()
	f.stats.record.Store(true)
	mark := readCPUMark()
	err := f.runClients(ctx, works, rep.cfg.Requests, op)
	took := time.Since(mark.at)
	f.stats.record.Store(false)
	if op == opList {
		f.listTook = took
	} else {
		f.cycleTook, f.writer, f.cpu = took, l.Writer.Stats().Snapshot().Sub(before), mark.since()
	}
	return err
}

// runClients splits n requests of op among f's clients; a broken client
// is counted and the others finish.
func (f *recallFigure) runClients(ctx context.Context, works []*workload, n int, op recallOp) error {
	var wg sync.WaitGroup
	for i, c := range f.clients {
		wg.Go(func() {
			for range part(n, len(f.clients), i) {
				if ctx.Err() != nil {
					return
				}
				if err := f.stats.step(ctx, op, c, works[i], f.release); err != nil {
					if ctx.Err() == nil {
						f.stats.errs.fail(fmt.Sprintf("counter %d", i+1), err)
					}
					return
				}
			}
		})
	}
	wg.Wait()
	return ctx.Err()
}

// counter is a counter program on a socket, one request at a time.
type counter struct {
	c     *fd1client.Conn
	keyID string
}

func (c *counter) list(_ context.Context, q listQuery) (int, time.Duration, error) {
	req := &fd1client.Request{A: "fd1.presell.get_presells", V: struct{}{}, Q: q.q}
	if q.variant == listMine {
		req.QK = "mine"
	}
	p, took, err := c.call(req)
	if err != nil {
		return 0, took, err
	}
	var data struct {
		Rows []json.RawMessage `json:"rows"`
	}
	if err := json.Unmarshal(p.Data, &data); err != nil {
		return 0, took, protocol.Errorf("bad_reply", "get_presells answered data=%.100s: %v", p.Data, err)
	}
	return len(data.Rows), took, nil
}

// recall claims the presell and answers with the whole sale; k is its
// physkey.
func (c *counter) recall(_ context.Context, ticket int64) (string, time.Duration, error) {
	p, took, err := c.call(&fd1client.Request{A: "fd1.presell.recall", V: map[string]int64{"ticket": ticket}})
	if err == nil && p.Key() == "" {
		err = protocol.Errorf("bad_reply", "recall answered k=%s, not a physkey", p.K)
	}
	if err != nil {
		return "", took, err
	}
	return p.Key(), took, nil
}

func (c *counter) release(_ context.Context, physkey string) (time.Duration, error) {
	_, took, err := c.call(&fd1client.Request{A: "fd1.presell.release", K: physkey, V: struct{}{}})
	return took, err
}

// call sends req and waits for its reply (an error reply returned as its
// *protocol.Error), timed from the send to the reply's arrival: encoding
// and decoding are the client's work, not the lane's.
func (c *counter) call(req *fd1client.Request) (*fd1client.Packet, time.Duration, error) {
	start := time.Now()
	p, err := c.c.Call(req)
	switch {
	case err != nil:
		return nil, 0, err
	case p.Error != nil:
		return p, p.At.Sub(start), p.Error
	}
	return p, p.At.Sub(start), nil
}

// directClient is the baseline: the presell workflow's list and lanedb's
// lookup by ticket, with no socket, no JSON and no claim. A lanedb error
// is a failed request (code "db"), as a socket's error reply.
type directClient struct {
	db       *lanedb.DB
	presell  *presell.Workflow
	claimKey string // whose claims "qk mine" lists
}

func (d *directClient) list(ctx context.Context, q listQuery) (int, time.Duration, error) {
	f := q.filter(d.claimKey)
	start := time.Now()
	rows, _, err := d.presell.List(ctx, f)
	return len(rows), time.Since(start), directErr(err)
}

func (d *directClient) recall(ctx context.Context, ticket int64) (string, time.Duration, error) {
	start := time.Now()
	physkey, err := lanedb.OpenPresellBy(ctx, d.db.Read, ticket, "")
	return physkey, time.Since(start), directErr(err)
}

func (d *directClient) release(context.Context, string) (time.Duration, error) { return 0, nil }

func directErr(err error) error {
	if pe := (*protocol.Error)(nil); err == nil || errors.As(err, &pe) {
		return err
	}
	return protocol.Errorf("db", "%v", err)
}

// recordingQueryer catches the query and arguments lanedb sends (through
// sqlx.SelectContext and GetContext), so that the plans are of the SQL it
// runs, built at run time, not of a copy that could drift.
type recordingQueryer struct {
	sqlx.QueryerContext
	query string
	args  []any
}

func (r *recordingQueryer) QueryxContext(ctx context.Context, query string, args ...any) (*sqlx.Rows, error) {
	r.query, r.args = query, args
	return r.QueryerContext.QueryxContext(ctx, query, args...)
}

func (r *recordingQueryer) QueryRowxContext(ctx context.Context, query string, args ...any) *sqlx.Row {
	r.query, r.args = query, args
	return r.QueryerContext.QueryRowxContext(ctx, query, args...)
}

type queryPlan struct {
	what  string   // the request, with the filters that run this plan
	lines []string // the plan, indented by depth
}

// recallPlans prints, with a verdict, the plans of get_presells (each
// filter as the counters draw it; those sharing a plan together) and of
// recall's lookup; ok is false when one scans the historic sales.
func (p *printer) recallPlans(ctx context.Context, db *lanedb.DB, w *workload, claimKey string) (ok bool, err error) {
	var plans []*queryPlan
	rec := &recordingQueryer{QueryerContext: db.Read}
	explain := func(request, name string) error {
		lines, err := planLines(ctx, db, rec.query, rec.args)
		if err != nil {
			return fmt.Errorf("%w: %q", err, strings.SplitN(strings.TrimSpace(rec.query), "\n", 2)[0])
		}
		for _, p := range plans {
			if strings.HasPrefix(p.what, request+" (") && slices.Equal(p.lines, lines) {
				p.what = strings.TrimSuffix(p.what, ")") + ", " + name + ")"
				return nil
			}
		}
		if name != "" {
			request += " (" + name + ")"
		}
		plans = append(plans, &queryPlan{what: request, lines: lines})
		return nil
	}
	for v := range numListVariants {
		w.next = int(v)
		if _, _, err := lanedb.OpenPresells(ctx, rec, w.nextList().filter(claimKey)); err != nil {
			return false, err
		}
		if err := explain("get_presells", listVariantNames[v]); err != nil {
			return false, err
		}
	}
	if _, err := lanedb.OpenPresellBy(ctx, rec, w.all[0].ticket, ""); err != nil {
		return false, err
	}
	if err := explain("recall by ticket (lookup)", ""); err != nil {
		return false, err
	}
	how, good := "EXPLAIN QUERY PLAN of the SQL lanedb runs, as run", "✓ walks only open presells (partial index), not the history"
	if db.Postgres() {
		how, good = "EXPLAIN (COSTS OFF) of the SQL lanedb runs, rewritten for PostgreSQL as run", "✓ an index, no Seq Scan of the history"
	}
	p.printf("query plans (%s):\n", how)
	ok = true
	for _, plan := range plans {
		verdict := good
		if scans := bigScans(plan.lines); len(scans) > 0 {
			ok, verdict = false, "✗ SCANS THE HISTORIC SALES — a server problem: "+strings.Join(scans, "; ")
		}
		p.printf("   %s: %s\n", plan.what, verdict)
		for _, line := range plan.lines {
			p.printf("      %s\n", line)
		}
	}
	return ok, nil
}

// planLines is the plan on the read pool: SQLite's steps indented by
// depth, or PostgreSQL's EXPLAIN of the query as the Reader rewrites it.
func planLines(ctx context.Context, db *lanedb.DB, query string, args []any) ([]string, error) {
	var lines []string
	if db.Postgres() {
		err := sqlx.SelectContext(ctx, db.Read, &lines, "EXPLAIN (COSTS OFF) "+query, args...)
		return lines, err
	}
	steps, err := db.ExplainQueryPlan(ctx, query, args...)
	depth := map[int64]int{}
	for _, s := range steps {
		if s.Parent != 0 {
			depth[s.ID] = depth[s.Parent] + 1
		}
		lines = append(lines, strings.Repeat("  ", depth[s.ID])+s.Detail)
	}
	return lines, err
}

// bigTables are the tables that grow with the lane's history, under the
// names and aliases lanedb's queries give them.
var bigTables = map[string]bool{"s": true, "sales": true, "l": true, "sale_lines": true, "payments": true}

// bigScans picks the steps that scan a big table: SQLite's SCAN but of an
// open-presell partial index, and PostgreSQL's (Parallel) Seq Scan.
func bigScans(lines []string) []string {
	var out []string
	for _, line := range lines {
		f := strings.Fields(line)
		_, seq, pg := strings.Cut(line, "Seq Scan on ")
		if table, _, _ := strings.Cut(seq, " "); pg && bigTables[table] ||
			len(f) >= 2 && f[0] == "SCAN" && bigTables[f[1]] && !strings.Contains(line, "INDEX sales_open_") {
			out = append(out, strings.TrimSpace(line))
		}
	}
	return out
}

func (p *printer) recallFigure(f *recallFigure) {
	s := &f.stats
	p.printf("%s:\n", f.name)
	defer p.cpuLine(f.cpu)
	list := &s.ops[opList]
	p.printf("   %-14s %s  %5.0f req/s  (the five filters below in turn)\n", recallOpNames[opList],
		quantiles(list, fineMS, 5), perSec(list.count(), f.listTook))
	for v := range numListVariants {
		h := &s.lists[v]
		p.printf("     %-12s %s  %5.1f rows\n", listVariantNames[v], quantiles(h, fineMS, 5),
			float64(s.rows[v].Load())/float64(max(h.count(), 1)))
	}
	rec := &s.ops[opRecall]
	if !f.release {
		p.printf("   %-14s %s  %5.0f req/s  (lanedb.OpenPresellBy: the lookup only)\n", "recall lookup",
			quantiles(rec, fineMS, 5), perSec(rec.count(), f.cycleTook))
		return
	}
	p.printf("   %-14s %s  %5.0f cycles/s  (by ticket: find, claim, journal, COMMIT, answer the sale)\n",
		recallOpNames[opRecall], quantiles(rec, fineMS, 5), perSec(rec.count(), f.cycleTook))
	p.printf("   %-14s %s\n", recallOpNames[opRelease], quantiles(&s.ops[opRelease], fineMS, 5))
	if w := f.writer; w.Batches > 0 {
		p.printf("   writer over the cycles: %s commits, %.1f changes per commit, COMMIT avg %s\n",
			progress.Thousands(w.Batches), float64(w.Mutations)/float64(w.Batches), ms(w.Commit/time.Duration(w.Batches)))
	}
}

// recallRatios compares one socket with the direct calls, p50 and p99:
// the filter mix, the unfiltered list (steadier than the mix's median,
// which falls among cheap and dear filters), and recall.
func (p *printer) recallRatios(sock, dir *recallStats) {
	r := func(a, b *histogram) string {
		var out []string
		for _, q := range []float64{0.5, 0.99} {
			v, f := ratio(float64(a.quantile(q)), float64(b.quantile(q))), "%.1f×"
			if v >= 10 {
				f = "%.0f×"
			}
			out = append(out, fmt.Sprintf(f, v))
		}
		return strings.Join(out, " ")
	}
	p.printf("socket/direct (p50 p99): get_presells %s, unfiltered %s; recall %s (the socket's recall also claims and commits; the baseline only looks up)\n",
		r(&sock.ops[opList], &dir.ops[opList]), r(&sock.lists[listAll], &dir.lists[listAll]),
		r(&sock.ops[opRecall], &dir.ops[opRecall]))
}
