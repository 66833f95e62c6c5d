package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/greenlane-pos/greenlane/fd1client"
	"github.com/greenlane-pos/greenlane/lanedb"
	"github.com/greenlane-pos/greenlane/protocol"
)

// presellListLimit is how many rows get_presells answers with when the
// counter names no limit (salesbuilder's maxPresellRows).
const presellListLimit = 500

// listVariant is one way a counter asks for the presell list.
type listVariant int

const (
	listAll      listVariant = iota // no filter: the whole queue
	listTicket                      // q.ticket: the customer says a number
	listCustomer                    // q.customer: part of a name
	listAge                         // q.age(>=): waiting at least this long
	listMine                        // qk mine: what this counter holds
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

// The kinds of request the benchmark times.
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
	all      []openPresell // every open presell: what the ticket filter asks for
	own      []openPresell // what this counter recalls (its share when counters run at once)
	allRows  int           // rows of the unfiltered list
	mineRows int           // presells this counter holds while it lists
	next     int           // round robin over the list variants
}

// nextList is the next get_presells request: the variants take turns, so
// each gets an equal share of the requests.
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

// sample is a request of variant v drawn as nextList would, without
// moving the round robin on (for the query plans).
func (w *workload) sample(v listVariant) listQuery {
	saved := w.next
	w.next = int(v)
	q := w.nextList()
	w.next = saved
	return q
}

// nextRecall is the presell to recall next.
func (w *workload) nextRecall() openPresell { return w.own[w.rng.IntN(len(w.own))] }

// recallStats is what one figure measured. Histograms are shared by its
// counters (fixed memory however many requests are made).
type recallStats struct {
	record atomic.Bool // false during warm-up
	ops    [numRecallOps]histogram
	lists  [numListVariants]histogram
	rows   [numListVariants]atomic.Int64 // rows answered, for the average
	errs   tally                         // counted in warm-up too
}

func (s *recallStats) timed(op recallOp, d time.Duration) {
	if s.record.Load() {
		s.ops[op].record(d)
	}
}

func (s *recallStats) listed(q listQuery, rows int, d time.Duration) {
	if s.record.Load() {
		s.ops[opList].record(d)
		s.lists[q.variant].record(d)
		s.rows[q.variant].Add(int64(rows))
	}
}

// isBroken tells a broken client from a failed request.
func isBroken(err error) bool {
	var pe *protocol.Error
	return err != nil && !errors.As(err, &pe)
}

// listLoop makes n get_presells requests on c and checks the row counts
// that are known. It stops early only when the client breaks.
func listLoop(ctx context.Context, c recallClient, w *workload, n int, s *recallStats) error {
	for range n {
		if err := ctx.Err(); err != nil {
			return err
		}
		q := w.nextList()
		rows, took, err := c.list(ctx, q)
		if isBroken(err) {
			return fmt.Errorf("get_presells: %w", err)
		}
		if err != nil {
			s.errs.fail("get_presells "+listVariantNames[q.variant], err)
			continue
		}
		s.listed(q, rows, took)
		if q.wantRows >= 0 && rows != q.wantRows {
			s.errs.fail("get_presells "+listVariantNames[q.variant], protocol.Errorf("wrong_rows",
				"answered %d rows, want %d", rows, q.wantRows))
		}
	}
	return nil
}

// recallLoop makes n recall-by-ticket cycles on c: recall a random open
// presell (checking it is the right one), then, when release is set,
// release it so that it stays open for the next.
func recallLoop(ctx context.Context, c recallClient, w *workload, n int, release bool, s *recallStats) error {
	for range n {
		if err := ctx.Err(); err != nil {
			return err
		}
		p := w.nextRecall()
		physkey, took, err := c.recall(ctx, p.ticket)
		if isBroken(err) {
			return fmt.Errorf("recall: %w", err)
		}
		if err != nil {
			s.errs.fail(fmt.Sprintf("recall ticket %d", p.ticket), err)
			continue
		}
		s.timed(opRecall, took)
		if physkey != p.physkey {
			s.errs.fail(fmt.Sprintf("recall ticket %d", p.ticket), protocol.Errorf("wrong_presell",
				"answered %s, want %s", physkey, p.physkey))
		}
		if !release {
			continue
		}
		took, err = c.release(ctx, physkey)
		if isBroken(err) {
			return fmt.Errorf("release: %w", err)
		}
		if err != nil {
			s.errs.fail(fmt.Sprintf("release ticket %d", p.ticket), err)
			continue
		}
		s.timed(opRelease, took)
	}
	return nil
}

// clientLoop is listLoop or recallLoop with their arguments bound.
type clientLoop func(ctx context.Context, c recallClient, w *workload, n int) error

// runClients splits n requests among the clients and waits for all. A
// broken client is counted and the others finish; the phase's error is
// only the context's.
func runClients(ctx context.Context, clients []recallClient, works []*workload, n int,
	s *recallStats, loop clientLoop) error {
	var wg sync.WaitGroup
	for i, c := range clients {
		share := n/len(clients) + btoi(i < n%len(clients))
		wg.Go(func() {
			if err := loop(ctx, c, works[i], share); err != nil && ctx.Err() == nil {
				s.errs.fail(fmt.Sprintf("counter %d", i+1), err)
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

// workload is a fresh request stream recalling from own. Every counter
// holds one presell while it lists (see holdServing), so "qk mine" answers
// one row.
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

// workloads makes f's request streams afresh, seeded by client number, so
// that every figure asks the same questions.
func (p *figurePlan) workloads(f *recallFigure) []*workload {
	works := make([]*workload, len(f.clients))
	for i := range works {
		works[i] = p.workload(uint64(i+1), f.own[i])
	}
	return works
}

// holdServing has each counter recall the first of its presells and keep
// it, as a counter serving a customer does. It returns what they hold.
func (p *figurePlan) holdServing(ctx context.Context) ([]string, error) {
	held := make([]string, len(p.counters))
	for i, c := range p.counters {
		first := p.share(i)[0]
		physkey, _, err := c.recall(ctx, first.ticket)
		if err != nil {
			return nil, fmt.Errorf("counter %d recalls ticket %d to serve: %w", i+1, first.ticket, err)
		}
		held[i] = physkey
	}
	return held, nil
}

// releaseServing gives back what holdServing took.
func (p *figurePlan) releaseServing(ctx context.Context, held []string) error {
	for i, c := range p.counters {
		if _, err := c.release(ctx, held[i]); err != nil {
			return fmt.Errorf("counter %d releases %s: %w", i+1, held[i], err)
		}
	}
	return nil
}

// recallClient is one counter as the benchmark drives it: over a socket,
// or (the baseline) straight on lanedb. Each call returns the latency it
// measured. An error that is a *protocol.Error is a failed request (counted,
// the counter goes on); any other error means the client broke.
type recallClient interface {
	list(ctx context.Context, q listQuery) (rows int, took time.Duration, err error)
	recall(ctx context.Context, ticket int64) (physkey string, took time.Duration, err error)
	release(ctx context.Context, physkey string) (took time.Duration, err error)
}

// counter is a counter program on a socket: it lists presells, recalls
// one by ticket and gives it back, one request at a time (a closed loop, as
// a person at the counter works).
type counter struct {
	c     *fd1client.Conn
	keyID string
}

// dialCounter opens a counter socket and logs in with key.
func dialCounter(ctx context.Context, url string, key benchKey) (*counter, error) {
	c, err := fd1client.Open(ctx, url, key.key, protocol.PurposeNone, fd1client.Options{})
	if err != nil {
		return nil, err
	}
	return &counter{c: c, keyID: key.id}, nil
}

func (c *counter) close() { c.c.Close() }

// list is fd1.presell.get_presells with q's filter.
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

// recall is fd1.presell.recall by ticket: it claims the presell and answers
// with the whole sale; k is its physkey.
func (c *counter) recall(_ context.Context, ticket int64) (string, time.Duration, error) {
	p, took, err := c.call(&fd1client.Request{A: "fd1.presell.recall", V: map[string]int64{"ticket": ticket}})
	if err != nil {
		return "", took, err
	}
	if p.Key() == "" {
		return "", took, protocol.Errorf("bad_reply", "recall answered k=%s, not a physkey", p.K)
	}
	return p.Key(), took, nil
}

// release is fd1.presell.release: the presell goes back to the queue.
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

// directClient is the baseline: the same lookups as direct lanedb calls on
// the read pool, with no socket, no JSON and no claim.
type directClient struct {
	db       *lanedb.DB
	claimKey string // whose claims "qk mine" lists
}

// list is lanedb.OpenPresells with the filter get_presells would build.
func (d *directClient) list(ctx context.Context, q listQuery) (int, time.Duration, error) {
	f := presellFilter(q, d.claimKey)
	start := time.Now()
	rows, _, err := lanedb.OpenPresells(ctx, d.db.Read, f)
	return len(rows), time.Since(start), directErr(err)
}

// presellFilter is the lanedb filter get_presells builds for q, for a
// counter whose key id is claimKey.
func presellFilter(q listQuery, claimKey string) lanedb.PresellFilter {
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

// recall is the lookup half of a recall: lanedb.OpenPresellBy by ticket.
func (d *directClient) recall(ctx context.Context, ticket int64) (string, time.Duration, error) {
	start := time.Now()
	physkey, err := lanedb.OpenPresellBy(ctx, d.db.Read, ticket, "")
	return physkey, time.Since(start), directErr(err)
}

// release has nothing to give back: the lookup claimed nothing.
func (d *directClient) release(context.Context, string) (time.Duration, error) { return 0, nil }

// directErr makes a lanedb error a failed request (code "db"), so that the
// baseline counts it like a socket's error reply and goes on.
func directErr(err error) error {
	if err == nil {
		return nil
	}
	var pe *protocol.Error
	if errors.As(err, &pe) {
		return err
	}
	return protocol.Errorf("db", "%v", err)
}
