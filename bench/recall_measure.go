package bench

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/greenlane-pos/greenlane/fd1client"
	"github.com/greenlane-pos/greenlane/lanedb"
	"github.com/greenlane-pos/greenlane/presell"
	"github.com/greenlane-pos/greenlane/progress"
	"github.com/greenlane-pos/greenlane/protocol"
)

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

// listQuery is one get_presells request. wantRows is the row count it must
// answer with, or -1 when that depends on the draw.
type listQuery struct {
	variant  listVariant
	ticket   int64
	customer string
	age      int64 // seconds
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
	rng      *rand.Rand
	all      []openPresell // what the ticket filter asks for
	own      []openPresell // what this counter recalls (its share when counters run at once)
	allRows  int           // rows of the unfiltered list
	mineRows int           // presells this counter holds while it lists
	next     int           // round robin over the list variants, so each gets an equal share
}

func (w *workload) nextList() listQuery {
	q := listQuery{variant: listVariant(w.next % int(numListVariants)), wantRows: -1}
	w.next++
	switch q.variant {
	case listAll:
		q.wantRows = w.allRows
	case listTicket:
		q.ticket, q.wantRows = w.all[w.rng.IntN(len(w.all))].ticket, 1
	case listCustomer:
		q.customer = customerParts[w.rng.IntN(len(customerParts))]
	case listAge:
		// Cut at a random presell's submit time, so that each figure
		// (run later, when all are older) lists about as many.
		cut := w.all[w.rng.IntN(len(w.all))].submitted
		q.age = max(int64(time.Since(cut).Seconds()), 0)
	case listMine:
		q.wantRows = w.mineRows
	}
	return q
}

// filter is the lanedb filter get_presells builds for q, for a counter
// whose key id is claimKey.
func (q listQuery) filter(claimKey string) lanedb.PresellFilter {
	f := lanedb.PresellFilter{Limit: presellListLimit}
	switch q.variant {
	case listTicket:
		f.Conds = []lanedb.Cond{{Column: "ticket", Op: "=", Value: q.ticket}}
	case listCustomer:
		f.Customer = q.customer
	case listAge:
		// As the server does: age >= N seconds is submitted <= now - N.
		at := time.Now().Add(-time.Duration(q.age) * time.Second).UTC().Format(lanedb.DateTime)
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

// recallClient is one counter as the benchmark drives it. Each call
// returns the latency it measured. A *protocol.Error is a failed request
// (counted, the counter goes on); any other error means the client broke.
type recallClient interface {
	list(ctx context.Context, q listQuery) (rows int, took time.Duration, err error)
	recall(ctx context.Context, ticket int64) (physkey string, took time.Duration, err error)
	release(ctx context.Context, physkey string) (took time.Duration, err error)
}

// step makes one request of op on c for w and records it; it returns an
// error only when the client broke.
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
	var pe *protocol.Error
	if err == nil || errors.As(err, &pe) {
		if err != nil {
			s.errs.fail(what, err)
		}
		return nil
	}
	return fmt.Errorf("%s: %w", what, err)
}

// runClients splits n requests of op among f's clients and waits for all.
// A broken client is counted and the others finish; the error is only the
// context's.
func (f *recallFigure) runClients(ctx context.Context, works []*workload, n int, op recallOp) error {
	var wg sync.WaitGroup
	for i, c := range f.clients {
		wg.Go(func() {
			for range n/len(f.clients) + btoi(i < n%len(f.clients)) {
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

// figurePlan hands each figure its clients and the presells each recalls.
type figurePlan struct {
	open     []openPresell
	counters []*counter
}

// workload is a fresh request stream recalling from own, seeded by client
// number so that every figure asks the same questions. Every counter holds
// one presell while it lists (see measure), so "qk mine" answers one row.
func (p *figurePlan) workload(seed uint64, own []openPresell) *workload {
	return &workload{rng: rand.New(rand.NewPCG(seed, 0x5eed)), all: p.open, own: own,
		allRows: min(len(p.open), presellListLimit), mineRows: 1}
}

// share is counter i's own presells when the counters run at once: every
// n-th one, so that no two counters ever recall the same presell (one would
// find it claimed, which is the lane working, not a measurement).
func (p *figurePlan) share(i int) []openPresell {
	var out []openPresell
	for j := i; j < len(p.open); j += len(p.counters) {
		out = append(out, p.open[j])
	}
	return out
}

// measure runs the figures: one counter socket, the same lookups made in
// process (its "qk mine" is the first counter's), and, unless Counters ≤ 1,
// every counter socket at once. get_presells runs while each counter holds
// one presell (the customer it is serving, so "qk mine" finds something),
// the recall cycles once those are given back.
func (rep *RecallReport) measure(ctx context.Context, l *lane, plan *figurePlan, p *printer) error {
	first := plan.counters[0]
	rep.single = &recallFigure{name: "1 counter over WebSocket", clients: []recallClient{first}, own: [][]openPresell{plan.open}, release: true}
	rep.direct = &recallFigure{name: "direct lanedb (baseline: no socket, no JSON, no claim)",
		clients: []recallClient{&directClient{db: l.DB, presell: l.Presell, claimKey: first.keyID}}, own: [][]openPresell{plan.open}}
	rep.figures = []*recallFigure{rep.single, rep.direct}
	if n := len(plan.counters); n > 1 {
		many := &recallFigure{name: fmt.Sprintf("%d counters over WebSocket at once", n), release: true}
		for i, c := range plan.counters {
			many.clients, many.own = append(many.clients, c), append(many.own, plan.share(i))
		}
		rep.figures = append(rep.figures, many)
	}
	serving := make([]string, len(plan.counters))
	for i, c := range plan.counters {
		t := plan.share(i)[0].ticket
		var err error
		if serving[i], _, err = c.recall(ctx, t); err != nil {
			return fmt.Errorf("counter %d recalls ticket %d to serve: %w", i+1, t, err)
		}
	}
	for _, f := range rep.figures {
		if err := rep.phase(ctx, l, plan, f, opList); err != nil {
			return err
		}
	}
	for i, c := range plan.counters {
		if _, err := c.release(ctx, serving[i]); err != nil {
			return fmt.Errorf("counter %d releases %s: %w", i+1, serving[i], err)
		}
	}
	for _, f := range rep.figures {
		if err := rep.phase(ctx, l, plan, f, opRecall); err != nil {
			return err
		}
		p.recallFigure(f)
	}
	p.recallRatios(rep)
	return nil
}

// phase runs op on every client of f at once, WarmUp requests unrecorded
// and then Requests recorded, timing the recorded part with the lane's
// writer and the CPU over it.
func (rep *RecallReport) phase(ctx context.Context, l *lane, plan *figurePlan, f *recallFigure, op recallOp) error {
	works := make([]*workload, len(f.clients))
	for i := range works {
		works[i] = plan.workload(uint64(i+1), f.own[i])
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

// counter is a counter program on a socket, one request at a time (a
// closed loop, as a person at the counter works).
type counter struct {
	c     *fd1client.Conn
	keyID string
}

func dialCounter(ctx context.Context, url string, key benchKey) (*counter, error) {
	c, err := fd1client.Open(ctx, url, key.key, protocol.PurposeNone, fd1client.Options{})
	if err != nil {
		return nil, err
	}
	return &counter{c: c, keyID: key.id}, nil
}

func (c *counter) list(_ context.Context, q listQuery) (int, time.Duration, error) {
	req := &fd1client.Request{A: "fd1.presell.get_presells", V: struct{}{}}
	switch q.variant {
	case listTicket:
		req.Q = map[string]any{"ticket": q.ticket}
	case listCustomer:
		req.Q = map[string]any{"customer": q.customer}
	case listAge:
		req.Q = map[string]any{"age(>=)": q.age}
	case listMine:
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

// call sends req and waits for its reply, an error reply returned as its
// *protocol.Error. The latency runs from the send to the reply's arrival:
// encoding the request and decoding the reply are the client's work, not
// the lane's.
func (c *counter) call(req *fd1client.Request) (*fd1client.Packet, time.Duration, error) {
	start := time.Now()
	p, err := c.c.Call(req)
	if err != nil {
		return nil, 0, err
	}
	if p.Error != nil {
		return p, p.At.Sub(start), p.Error
	}
	return p, p.At.Sub(start), nil
}

// directClient is the baseline: the presell workflow's list and lanedb's
// lookup by ticket on the read pool, with no socket, no JSON and no claim.
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

// directErr makes a lanedb error a failed request (code "db"), so that the
// baseline counts it like a socket's error reply and goes on.
func directErr(err error) error {
	var pe *protocol.Error
	if err == nil || errors.As(err, &pe) {
		return err
	}
	return protocol.Errorf("db", "%v", err)
}

// The plans are read from the SQL that lanedb actually runs, not from a
// copy of it here: lanedb builds the presell list's query at run time, so a
// copy could drift from it unnoticed. recordingQueryer catches the query
// and its arguments as lanedb sends them, and EXPLAIN QUERY PLAN is run on
// exactly those.
type recordingQueryer struct {
	sqlx.QueryerContext
	query string
	args  []any
}

func (r *recordingQueryer) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	r.query, r.args = query, args
	return r.QueryerContext.QueryContext(ctx, query, args...)
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
	request string   // get_presells, or recall's lookup
	names   []string // the filters that run this plan (get_presells)
	lines   []string // EXPLAIN QUERY PLAN, indented by depth
}

// recallPlans prints the plans of get_presells (each filter, drawn as the
// counters draw them; "qk mine" for claimKey) and of recall's lookup by
// ticket, the filters that share a plan together, each with its verdict.
// ok is false when a plan scans the historic sales.
func (p *printer) recallPlans(ctx context.Context, db *lanedb.DB, w *workload, claimKey string) (ok bool, err error) {
	var plans []*queryPlan
	rec := &recordingQueryer{QueryerContext: db.Read}
	explain := func(request, name string) error {
		steps, err := db.ExplainQueryPlan(ctx, rec.query, rec.args...)
		if err != nil {
			return fmt.Errorf("%w: %q", err, strings.SplitN(strings.TrimSpace(rec.query), "\n", 2)[0])
		}
		depth := map[int64]int{}
		var lines []string
		for _, s := range steps {
			if s.Parent != 0 {
				depth[s.ID] = depth[s.Parent] + 1
			}
			lines = append(lines, strings.Repeat("  ", depth[s.ID])+s.Detail)
		}
		for _, p := range plans {
			if p.request == request && slices.Equal(p.lines, lines) {
				p.names = append(p.names, name)
				return nil
			}
		}
		plans = append(plans, &queryPlan{request: request, names: []string{name}, lines: lines})
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
	p.printf("query plans (EXPLAIN QUERY PLAN of the SQL lanedb runs, as run):\n")
	ok = true
	for _, plan := range plans {
		verdict := "✓ walks only open presells (partial index), not the history"
		if scans := bigScans(plan.lines); len(scans) > 0 {
			ok, verdict = false, "✗ SCANS THE HISTORIC SALES — a server problem: "+strings.Join(scans, "; ")
		}
		what := plan.request
		if plan.names[0] != "" {
			what += " (" + strings.Join(plan.names, ", ") + ")"
		}
		p.printf("   %s: %s\n", what, verdict)
		for _, line := range plan.lines {
			p.printf("      %s\n", line)
		}
	}
	return ok, nil
}

// bigTables are the tables that grow with the lane's history, under the
// names and aliases lanedb's queries give them.
var bigTables = map[string]bool{"s": true, "sales": true, "l": true, "sale_lines": true, "payments": true}

// bigScans picks the plan steps that scan a big table, except a walk of
// one of the open-presell partial indexes, which hold only open presells.
func bigScans(lines []string) []string {
	var out []string
	for _, line := range lines {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "SCAN" && bigTables[f[1]] && !strings.Contains(line, "INDEX sales_open_") {
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

// recallRatios compares one counter socket with the direct calls, p50
// and p99: the five-filter mix, the unfiltered list alone (the mix's
// median falls among cheap and dear filters, the unfiltered list does not
// move), and recall.
func (p *printer) recallRatios(rep *RecallReport) {
	sock, dir := &rep.single.stats, &rep.direct.stats
	times := func(v float64) string {
		if v >= 10 {
			return fmt.Sprintf("%.0f×", v)
		}
		return fmt.Sprintf("%.1f×", v)
	}
	r := func(a, b *histogram) string {
		return times(ratio(float64(a.quantile(0.5)), float64(b.quantile(0.5)))) + " " +
			times(ratio(float64(a.quantile(0.99)), float64(b.quantile(0.99))))
	}
	p.printf("socket/direct (p50 p99): get_presells %s, unfiltered %s; recall %s (the socket's recall also claims and commits; the baseline only looks up)\n",
		r(&sock.ops[opList], &dir.ops[opList]), r(&sock.lists[listAll], &dir.lists[listAll]),
		r(&sock.ops[opRecall], &dir.ops[opRecall]))
}
