package bench

// The lane in this process, and the load of presell tablets that bench
// presell, firehose and soak put on it.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/greenlane-pos/greenlane/fd1client"
	lanesrv "github.com/greenlane-pos/greenlane/lane"
	"github.com/greenlane-pos/greenlane/lanedb"
	"github.com/greenlane-pos/greenlane/protocol"
)

type benchKey struct {
	key, id string
}

// freshKey creates an API key named name or, on a DB an earlier run used,
// name-2, name-3 … (a name is never given twice), revoking the earlier
// run's keys as it goes, as staff replace a device's key.
func freshKey(ctx context.Context, db *lanedb.DB, name string, scope protocol.Scope) (benchKey, error) {
	base := name
	key, err := db.CreateAPIKey(ctx, name, []string{string(scope)})
	for n := 2; errors.Is(err, lanedb.ErrKeyNameTaken) && n < 10000; n++ {
		_, _ = db.RevokeAPIKey(ctx, name) // an earlier run's; one revoked already says so
		name = fmt.Sprintf("%s-%d", base, n)
		key, err = db.CreateAPIKey(ctx, name, []string{string(scope)})
	}
	var k *lanedb.APIKey
	if err == nil {
		k, err = db.Authenticate(ctx, key)
	}
	if err != nil {
		return benchKey{}, fmt.Errorf("API key %s: %w", name, err)
	}
	return benchKey{key: key, id: k.KeyID}, nil
}

// lane is a lane server running in this process, wired as `greenlane
// serve` wires it, so that what a bench measures is what a lane runs.
type lane struct {
	*lanesrv.Lane
	addr   string
	where  string             // its lane DB, password and all (DB.Path hides it): for another process
	cancel context.CancelFunc // stops the server
	served chan error
}

// defaultWait is the writer's batching wait as the lane runs.
var defaultWait = lanedb.DefaultWriterOptions().MaxWait

// laneOptions are what a phase varies.
type laneOptions struct {
	groupWait      time.Duration // the writer's batching wait; 0: group commit off
	presellWorkers int           // 0: the server's default
	lease          time.Duration // 0: the default claim lease
	log            *slog.Logger
}

// startLane starts the server on db and returns once it accepts sockets.
func startLane(ctx context.Context, db *lanedb.DB, where string, opts laneOptions) (*lane, error) {
	cfg := lanesrv.DefaultConfig()
	cfg.Writer.MaxWait = opts.groupWait
	cfg.Server.Addr = "127.0.0.1:0"
	// Bench tablets ask as fast as the lane answers, thousands of sockets
	// from one address, dialled at once, each key holding many open sales
	// (bench recall's setup makes thousands on four keys): the limits a
	// misbehaving client meets are not what is measured.
	cfg.Server.RequestRate, cfg.Server.RequestBurst = 1e6, 1e6
	cfg.Server.KeyRequestRate, cfg.Server.KeyRequestBurst = 1e6, 1e6
	cfg.Sales.MaxOpenPresells, cfg.Sales.MaxOpenSales = lanedb.MaxTicket, 1_000_000
	cfg.Server.MaxUnauthSockets, cfg.Server.MaxUnauthPerAddress = cfg.Server.MaxSockets, cfg.Server.MaxSockets
	cfg.Server.MaxSocketsPerKey, cfg.Server.MaxConnsPerAddress = cfg.Server.MaxSockets, cfg.Server.MaxConns
	cfg.Hub.MaxPerKey = cfg.Server.MaxSockets * cfg.Hub.MaxPerSocket
	if opts.presellWorkers > 0 {
		cfg.Presell.Workers = opts.presellWorkers
	}
	if opts.lease > 0 {
		cfg.Sales.Lease = opts.lease
	}
	ln, err := lanesrv.New(ctx, db, cfg, opts.log)
	if err != nil {
		return nil, fmt.Errorf("start the lane: %w", err)
	}
	sctx, cancel := context.WithCancel(ctx)
	l := &lane{Lane: ln, where: where, cancel: cancel, served: make(chan error, 1)}
	ready := make(chan string, 1)
	go func() { l.served <- ln.Serve(sctx, func(a net.Addr) { ready <- a.String() }) }()
	select {
	case l.addr = <-ready:
		return l, nil
	case err := <-l.served:
		cancel()
		ln.Close()
		return nil, fmt.Errorf("start the lane server: %w", err)
	}
}

// laneURL is an ordinary client's socket (a display's purpose travels in
// its login).
func (l *lane) laneURL() string { return "ws://" + l.addr + "/fd1/open_websocket" }

func (l *lane) presellURL() string { return l.laneURL() + "?purpose=presell" }

// stop shuts the server down, then the lane's background work and writer
// (which finishes what is queued); the DB stays open.
func (l *lane) stop() error {
	l.cancel()
	err := <-l.served
	l.Lane.Close()
	if err != nil {
		return fmt.Errorf("stop the lane server: %w", err)
	}
	return nil
}

// synchronous names the writer connection's durability setting, and
// whether a commit is durable with it: a figure is only worth comparing
// when it is. On SQLite that is PRAGMA synchronous FULL; on PostgreSQL,
// synchronous_commit on (COMMIT waits for the WAL flush) with fsync on.
func (l *lane) synchronous(ctx context.Context) (label string, durable bool, err error) {
	var commit, fsync string
	var n int
	err = l.Writer.Do(ctx, func(ctx context.Context, tx *lanedb.Tx) error {
		if l.DB.Postgres() {
			return tx.QueryRowContext(ctx, "SELECT current_setting('synchronous_commit'), current_setting('fsync')").Scan(&commit, &fsync)
		}
		return tx.GetContext(ctx, &n, "PRAGMA synchronous")
	})
	switch {
	case err != nil:
		return "", false, fmt.Errorf("read the writer's durability setting: %w", err)
	case l.DB.Postgres():
		return "synchronous_commit " + commit + ", fsync " + fsync, commit == "on" && fsync == "on", nil
	}
	name := fmt.Sprint(n)
	if names := []string{"OFF", "NORMAL", "FULL", "EXTRA"}; n >= 0 && n < len(names) {
		name = names[n]
	}
	return "synchronous " + name, name == "FULL", nil
}

// withLanes runs fn against instances lane servers (each with a DB handle,
// writer and hub of its own, as `greenlane serve` processes on one store
// database have) on a fresh demo DB for phase file, with keys for n
// devices of scope; then it stops them and checks that every park a
// tablet saw succeed is in the DB (stats nil: nothing to check), as a
// reply promises a commit.
func withLanes(ctx context.Context, prefix, file string, instances int, opts laneOptions, n int, scope protocol.Scope,
	stats *loadStats, fn func(ls []*lane, keys []string) error) error {
	db, where, err := openPhaseDB(ctx, prefix, file)
	if err != nil {
		return err
	}
	defer db.Close()
	keys := make([]string, n)
	for i := range keys {
		k, err := freshKey(ctx, db, fmt.Sprintf("bench-%s-%03d", scope, i+1), scope)
		if err != nil {
			return err
		}
		keys[i] = k.key
	}
	var ls []*lane
	for i := range instances {
		d := db
		if i > 0 {
			if d, err = lanedb.Open(ctx, where, lanedb.DefaultOptions()); err != nil {
				break
			}
			defer d.Close()
		}
		var l *lane
		if l, err = startLane(ctx, d, where, opts); err != nil {
			break
		}
		ls = append(ls, l)
	}
	if err != nil {
		err = fmt.Errorf("instance %d: %w", len(ls)+1, err)
	} else {
		err = fn(ls, keys)
	}
	for _, l := range ls {
		err = errors.Join(err, l.stop())
	}
	if err != nil || stats == nil {
		return err
	}
	inDB, err := lanedb.SubmittedPresellCount(ctx, db.Read)
	if acked := stats.Parked; err == nil && inDB != acked {
		stats.Errs.add("verify", 1, fmt.Sprintf("verify: tablets saw %d parks succeed, the DB holds %d submitted presells", acked, inDB))
	}
	return err
}

// voidPresells voids the presells in phases (an SQL list), open claims
// and all, but for the newest keep, in one UPDATE, and says how many: for
// a lane DB no lane is serving (bench recall's leftovers, baseline-1tx's
// tickets). A lane's are voided by the recycler.
func voidPresells(ctx context.Context, write writeFunc, by, phases string, keep int) (int64, error) {
	var n int64
	err := write(ctx, func(ctx context.Context, tx *lanedb.Tx) error {
		if keep > 0 {
			// An upper bound first, from the sales_phase index alone.
			var open int
			if err := tx.GetContext(ctx, &open, `SELECT COUNT(*) FROM sales WHERE phase IN `+phases); err != nil || open <= keep {
				return err
			}
		}
		now := lanedb.FormatDateTime(time.Now().UTC())
		res, err := tx.ExecContext(ctx, `UPDATE sales SET phase = ?, voided_utc = ?, voided_by = ?,
			claim_session = NULL, claim_key = NULL, claim_name = NULL, claim_expires_ms = NULL,
			updated_utc = ?, version = version + 1 WHERE physkey IN (SELECT physkey FROM sales
				WHERE presell = 1 AND phase IN `+phases+` ORDER BY submitted_utc DESC, physkey DESC LIMIT ? OFFSET ?)`,
			lanedb.PhaseVoid, now, by, now, math.MaxInt32, keep)
		if err == nil {
			n, err = res.RowsAffected()
		}
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("void presells: %w", err)
	}
	return n, nil
}

// writeFunc commits one mutation: through a lane's writer, or directWrite.
type writeFunc func(ctx context.Context, fn lanedb.Mutation) error

// directWrite runs a mutation in a transaction of its own, beside no lane.
func directWrite(db *lanedb.DB) writeFunc {
	return func(ctx context.Context, fn lanedb.Mutation) error {
		return db.WriteTx(ctx, func(tx *lanedb.Tx) error { return fn(ctx, tx) })
	}
}

// recycleKeep is the open presells the recyclers leave: a quarter of the tickets.
const recycleKeep = lanedb.MaxTicket / 4

// A recycler voids what it finds in recycleJobs writer jobs of at least
// recycleChunk presells each. Each job waits for its commit, so at most
// one joins a batch: a batch of tablets' changes waits a millisecond or
// two for its share, not for the whole backlog at once, and the jobs of
// one round span about the round (a job waits out the queue ahead of it,
// as a tablet's change does). A backlog that grows makes bigger jobs.
const (
	recycleJobs  = 8
	recycleChunk = 16
)

// recyclerName is who the recycler voids as.
const recyclerName = "bench recycler"

// recycler voids submitted presells beside a load. A lane has 9,999
// tickets, each taken while its presell is open; a shop's counter frees
// them as fast as tablets submit, a bench has none, and at 1,000 sales/s
// they would run out in ten seconds. So the recycler stands in for the
// counter, at a fraction of its cost: every interval it voids the
// submitted presells beyond the newest recycleKeep (a shop's queue: a load
// that never reaches it, as the realistic phases', meets no recycling),
// each by lanedb's UpdateSale, which writes the phase and who voided it
// and tells the writer's cache which sale it wrote. One raw UPDATE of them
// all would be cheaper to run, but the cache cannot follow it and would
// empty: every open sale's next change would then read its sale, lines,
// product and customer again, four statements more, which a lane meets
// only when another program commits to its DB, not four times a second.
type recycler struct {
	l    *lane
	keep int // recycleKeep
	n    atomic.Int64
	err  error // why it stopped early; read once wg is done
}

// recycle runs a recycler for l on wg until ctx ends (none when every ≤ 0).
func recycle(ctx context.Context, wg *sync.WaitGroup, every time.Duration, l *lane) *recycler {
	r := &recycler{l: l, keep: recycleKeep}
	if every <= 0 {
		return r
	}
	wg.Go(func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if err := r.once(ctx); err != nil {
				if ctx.Err() == nil {
					r.err = fmt.Errorf("ticket recycler: %w", err)
				}
				return
			}
		}
	})
	return r
}

// once voids the submitted presells beyond the newest r.keep.
func (r *recycler) once(ctx context.Context) error {
	var old []string
	err := sqlx.SelectContext(ctx, r.l.DB.Read, &old, `SELECT physkey FROM sales WHERE presell = 1 AND phase = ?
		ORDER BY submitted_utc DESC, physkey DESC LIMIT ? OFFSET ?`, lanedb.PhaseParked, math.MaxInt32, r.keep)
	if err != nil {
		return fmt.Errorf("list old presells: %w", err)
	}
	for chunk := range slices.Chunk(old, max(recycleChunk, (len(old)+recycleJobs-1)/recycleJobs)) {
		var n int64
		err := r.l.Writer.Do(ctx, func(ctx context.Context, tx *lanedb.Tx) error {
			n = 0 // a batch may run a job again
			stamp := lanedb.FormatDateTime(time.Now().UTC())
			for _, physkey := range chunk {
				sale, err := lanedb.GetSale(ctx, tx, physkey)
				if err != nil {
					return err
				}
				if sale.Phase != lanedb.PhaseParked {
					continue // taken meanwhile
				}
				sale.Phase, sale.UpdatedUTC = lanedb.PhaseVoid, stamp
				sale.VoidedUTC, sale.VoidedBy = sql.NullString{String: stamp, Valid: true}, sql.NullString{String: recyclerName, Valid: true}
				if err := lanedb.UpdateSale(ctx, tx, sale); err != nil {
					return err
				}
				n++
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("void presells: %w", err)
		}
		r.n.Add(n)
	}
	return nil
}

// parallel runs fn(0…n-1), 32 at a time: a burst of a thousand
// handshakes is no part of what is measured.
func parallel(n int, fn func(i int)) {
	sem := make(chan struct{}, 32)
	var wg sync.WaitGroup
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			fn(i)
		})
	}
	wg.Wait()
}

// kind is one of the four requests a presell tablet makes per sale.
type kind int

const (
	kindCreate kind = iota
	kindAddProduct
	kindSetCustomer
	kindPark
	numKinds
)

// kindNames name the kinds, and their endpoints fd1.salesbuilder.sale_NAME.
var kindNames = [numKinds]string{"create", "add_product", "set_customer", "park"}

// linesPerSale is how many add_product requests a sale makes.
const linesPerSale = 3

type lineChoice struct {
	PID int64 `json:"pid"`
	Qty int64 `json:"qty"`
}

// pickLine chooses 1–3 of one of the demo's first ten products (sold by
// the unit), or one time in ten 100–1500 g of a weighed one.
func pickLine(rng *rand.Rand) lineChoice {
	if rng.IntN(10) == 0 {
		weighed := []int64{1024, 1025, 1026, 1027, 1028, 1030, 1031}
		return lineChoice{PID: weighed[rng.IntN(len(weighed))], Qty: 100 + rng.Int64N(1401)}
	}
	return lineChoice{PID: 1001 + rng.Int64N(10), Qty: 1 + rng.Int64N(3)}
}

type customerChoice struct {
	CID int64 `json:"cid"`
}

// pickCustomer is one of the demo's ten customers (two have a discount,
// so set_customer reprices lines).
func pickCustomer(rng *rand.Rand) int64 { return 1 + rng.Int64N(10) }

// loadStats is what the tablets of one load record, shared by all of
// them: atomic while they run, JSON from a child to its parent.
type loadStats struct {
	// window is open while the load is measured: requests that finish in
	// the warm-up or after the end are not timed, but their errors count.
	window  atomic.Bool
	Latency [numKinds]histogram `json:"latency"`
	All     histogram           `json:"all"` // every kind together
	// Late is how late a paced tablet's timer woke: the bench's own
	// scheduling (Go rounds short timers up to a millisecond on an idle
	// process), which the figures from the scheduled send include.
	Late     histogram `json:"-"`
	Requests int64     `json:"requests"` // successful replies inside the window
	Sales    int64     `json:"sales"`    // parks answered OK inside the window
	Parked   int64     `json:"parked"`   // parks answered OK over the whole run
	Errs     tally     `json:"errs"`
}

func (s *loadStats) inWindow() bool { return s.window.Load() }

func (s *loadStats) open(open bool) error {
	s.window.Store(open)
	return nil
}

// instanceStats is one lane instance's share when a load is spread.
type instanceStats struct {
	all     histogram // every request kind, inside the window
	sales   atomic.Int64
	tablets int
}

// tablet is one presell tablet: a socket that sends one request and waits
// for its reply before the next (a closed loop, as a person at a tablet
// does), or the same calls made in process (local).
type tablet struct {
	c     *fd1client.Conn
	local localFunc // set: no socket, the change is made in this process
	rng   *rand.Rand
	stats *loadStats
	inst  *instanceStats // nil with one instance
	// pace, when set, is the mean gap between requests, scheduled as a
	// Poisson process (open loop) and timed from the schedule, so that a
	// late lane is not hidden by a tablet that waited for it.
	pace time.Duration
	ik   bool            // each request carries an ik of its own (saleShape.ik)
	next time.Time       // the next request's scheduled time
	ctx  context.Context // cuts a paced wait short when the load ends
	// replyAt is when the last reply was read, before decoding: bench
	// firehose compares it with a display's receipt.
	replyAt time.Time
}

// localFunc makes change k of sale key (v is the line or customer), with
// ik when not "", and returns the sale's physkey.
type localFunc func(ctx context.Context, k kind, key string, v any, ik string) (string, error)

// tabletRand is tablet n's random draws: seeded by its number, so that
// every run rings up the same sales.
func tabletRand(n int) *rand.Rand { return rand.New(rand.NewPCG(uint64(n), 0x9e3779b97f4a7c15)) }

// dialTablet opens a presell socket and logs in with key as tablet n.
func dialTablet(ctx context.Context, url, key string, n int, stats *loadStats) (*tablet, error) {
	c, err := fd1client.Open(ctx, url, key, protocol.PurposeNone, fd1client.Options{})
	if err != nil {
		return nil, err
	}
	return &tablet{c: c, rng: tabletRand(n), stats: stats}, nil
}

// saleShape is a sale: create, lines × add_product, set_customer if
// customer, park; onLine hears of each line added (seqnce 1, 2, …).
type saleShape struct {
	lines    int
	customer bool
	ik       bool // each change carries an ik of its own
	onLine   func(t *tablet, physkey string, seqnce int64)
}

// presellSale is what bench presell and bench soak ring up.
var presellSale = saleShape{lines: linesPerSale, customer: true}

// sale makes one sale. An error reply abandons it (it is counted); a
// broken socket is returned. ok is false for an abandoned sale.
func (t *tablet) sale(shape saleShape) (ok bool, err error) {
	t.ik = shape.ik
	physkey, ok, err := t.do(kindCreate, "", struct{}{})
	for seqnce := int64(1); ok && seqnce <= int64(shape.lines); seqnce++ {
		if _, ok, err = t.do(kindAddProduct, physkey, pickLine(t.rng)); ok && shape.onLine != nil {
			shape.onLine(t, physkey, seqnce)
		}
	}
	if ok && shape.customer {
		_, ok, err = t.do(kindSetCustomer, physkey, customerChoice{pickCustomer(t.rng)})
	}
	if ok {
		_, ok, err = t.do(kindPark, physkey, struct{}{})
	}
	if ok {
		atomic.AddInt64(&t.stats.Parked, 1)
		if t.stats.inWindow() {
			atomic.AddInt64(&t.stats.Sales, 1)
			if t.inst != nil {
				t.inst.sales.Add(1)
			}
		}
	}
	return ok, err
}

// do sends one request of kind k about sale key and waits for its reply.
// It returns the reply's k (the sale's physkey) and whether it was a
// success; err is set only when the socket broke.
func (t *tablet) do(k kind, key string, v any) (string, bool, error) {
	start := time.Now()
	if t.pace > 0 {
		t.next = t.next.Add(time.Duration(t.rng.ExpFloat64() * float64(t.pace)))
		if wait := time.Until(t.next); wait > 0 {
			// A load that ends sends the sale's rest at once.
			if sleep(t.ctx, wait) == nil && t.stats.inWindow() {
				t.stats.Late.record(time.Since(t.next))
			}
		}
		start = t.next
	}
	physkey, e, err := t.call(k, key, v)
	if err == nil && e == nil && k == kindCreate && physkey == "" {
		e = protocol.Errorf("bad_reply", "create answered no physkey")
	}
	if err != nil || e != nil {
		if e != nil {
			t.stats.Errs.reply(kindNames[k], e)
		}
		return "", false, err
	}
	if t.stats.inWindow() {
		d := t.replyAt.Sub(start)
		t.stats.Latency[k].record(d)
		t.stats.All.record(d)
		atomic.AddInt64(&t.stats.Requests, 1)
		if t.inst != nil {
			t.inst.all.record(d)
		}
	}
	return physkey, true, nil
}

// call makes one request over the socket or in process: the sale's
// physkey, or the error reply; err only when the socket broke.
func (t *tablet) call(k kind, key string, v any) (string, *protocol.Error, error) {
	var ik string
	if t.ik {
		// Time-ordered, as the tablet page makes them (web/static/lib/fd1.js).
		u, err := uuid.NewV7()
		if err != nil {
			return "", nil, fmt.Errorf("new ik: %w", err)
		}
		ik = u.String()
	}
	if t.local != nil {
		physkey, err := t.local(context.Background(), k, key, v, ik)
		t.replyAt = time.Now()
		var pe *protocol.Error
		if err != nil && !errors.As(err, &pe) {
			pe = protocol.Errorf(protocol.CodeInternal, "%v", err)
		}
		return physkey, pe, nil
	}
	p, err := t.c.Call(&fd1client.Request{A: "fd1.salesbuilder.sale_" + kindNames[k], K: key, V: v, IK: ik})
	if err != nil {
		return "", nil, err
	}
	t.replyAt = p.At
	return p.Key(), p.Error, nil
}

// connectTablets dials and logs in a tablet per key at once, tablet i on
// urls[i mod n] (recording into insts[i mod n] too, when set); one that
// cannot connect is counted and left out.
func connectTablets(ctx context.Context, urls []string, insts []*instanceStats, keys []string, stats *loadStats) []*tablet {
	out := make([]*tablet, len(keys))
	var wg sync.WaitGroup
	for i, key := range keys {
		wg.Go(func() {
			t, err := dialTablet(ctx, urls[i%len(urls)], key, i+1, stats)
			if err != nil {
				stats.Errs.add("connection", 1, fmt.Sprintf("tablet %d: %v", i+1, err))
				return
			}
			if insts != nil {
				t.inst = insts[i%len(urls)]
			}
			out[i] = t
		})
	}
	wg.Wait()
	out = slices.DeleteFunc(out, func(t *tablet) bool { return t == nil })
	for _, t := range out {
		if t.inst != nil {
			t.inst.tablets++
		}
	}
	return out
}

// runTablets makes sales on every tablet until ctx ends (a broken socket
// is counted and stops its tablet). A started sale is finished, so that
// every sale counted is whole: wait returns once each tablet is done.
func runTablets(ctx context.Context, tablets []*tablet, shape saleShape) (wait func()) {
	var wg sync.WaitGroup
	for _, t := range tablets {
		wg.Go(func() {
			if t.c != nil {
				defer t.c.Close()
			}
			t.ctx, t.next = ctx, time.Now()
			for ctx.Err() == nil {
				if _, err := t.sale(shape); err != nil {
					t.stats.Errs.add("connection", 1, err.Error())
					return
				}
			}
		})
	}
	return wg.Wait
}

type loadConfig struct {
	warmUp, duration time.Duration
	recycleEvery     time.Duration
	ik               bool          // tablets send an ik with each change (Config.IK)
	profile          io.Writer     // a CPU profile of the window; nil: none
	pace             time.Duration // a tablet's mean gap between requests (open loop); 0: none (closed loop)
}

// loadResult is a load's figures: the tablets' (its loadStats) and the
// lane's over the window.
type loadResult struct {
	*loadStats
	name          string
	groupWait     time.Duration
	paced         bool
	untimed       bool // no request was timed (baseline-1tx)
	window        time.Duration
	tablets       int // tablets that connected
	tabletsWanted int
	writer        lanedb.WriterSnapshot // over the window
	cpu           cpuUse                // over the window
	recycled      int64
	synchronous   string           // the writer connection's durability setting (see lane.synchronous)
	durable       bool             // a commit is durable with it
	instances     []*instanceStats // per lane instance; nil with one
	spread        string           // the runs' spread; "" for one run
}

func (r *loadResult) salesPerSec() float64 { return perSec(r.Sales, r.window) }

// p99 is the request p99 over every kind; 0 when not timed.
func (r *loadResult) p99() time.Duration { return r.All.quantile(0.99) }

// errNoTablets ends a load in which not one tablet could log in.
var errNoTablets = errors.New("no tablet could connect")

// drive runs the tablets beside the recycler (on the first lane) through
// warm-up and window; the writer figures are every lane's summed.
func drive(ctx context.Context, ls []*lane, tablets []*tablet, wanted int, stats *loadStats, shape saleShape, c loadConfig) (*loadResult, error) {
	if len(tablets) == 0 {
		return nil, fmt.Errorf("%w: %s", errNoTablets, stats.Errs.example())
	}
	for _, t := range tablets {
		t.pace = c.pace
	}
	loadCtx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	wait := runTablets(loadCtx, tablets, shape)
	var wg sync.WaitGroup
	rec := recycle(loadCtx, &wg, c.recycleEvery, ls[0])
	res, err := measure(ctx, ls, c, stats.open)
	stopLoad()
	wait()
	wg.Wait()
	if err = errors.Join(err, rec.err); err != nil {
		return nil, err
	}
	res.loadStats, res.tablets, res.tabletsWanted, res.recycled = stats, len(tablets), wanted, rec.n.Load()
	res.synchronous, res.durable, err = ls[0].synchronous(ctx)
	return res, err
}

// measure waits out the warm-up, then opens the window for the duration,
// reading the lanes' writers and the CPU over it.
func measure(ctx context.Context, ls []*lane, c loadConfig, open func(bool) error) (*loadResult, error) {
	if err := sleep(ctx, c.warmUp); err != nil {
		return nil, err
	}
	before := writerSnapshot(ls)
	stopProfile, err := startProfile(c.profile)
	if err != nil {
		return nil, err
	}
	defer stopProfile()
	mark := readCPUMark()
	if err := open(true); err != nil {
		return nil, err
	}
	err = errors.Join(sleep(ctx, c.duration), open(false))
	return &loadResult{window: time.Since(mark.at), cpu: mark.since(), writer: writerSnapshot(ls).Sub(before)}, err
}

// writerSnapshot is the sum of the lanes' writer counters.
func writerSnapshot(ls []*lane) lanedb.WriterSnapshot {
	var sum lanedb.WriterSnapshot
	for _, l := range ls {
		sum = sum.Add(l.Writer.Stats().Snapshot())
	}
	return sum
}

func (p *printer) load(r *loadResult) {
	title := r.name + ":"
	if r.groupWait > 0 && !r.paced {
		title = fmt.Sprintf("%s (wait %s):", r.name, r.groupWait)
	}
	if r.untimed {
		p.printf("%-28s %5.0f sales/s  (%d sales, 1 transaction each, no sockets, no JSON)\n", title, r.salesPerSec(), r.Sales)
	} else {
		p.printf("%-28s %5.0f sales/s  %5.0f req/s  errors %d  busy %d\n",
			title, r.salesPerSec(), perSec(r.Requests, r.window), r.Errs.total(), r.Errs.busy())
		for k := range numKinds {
			p.latency(kindNames[k], &r.Latency[k])
		}
		from := "from send"
		if r.paced {
			from = "from the scheduled send: Poisson, open loop"
		}
		p.printf("   %-13s %s  (%s)\n", "all requests", quantiles(&r.All, ms, 0), from)
		if r.Late.count() > 0 {
			p.printf("   tablets' own timers woke late by p50 %s, p99 %s (in the figures above: the bench's scheduling, not the lane)\n",
				ms(r.Late.quantile(0.5)), ms(r.Late.quantile(0.99)))
		}
	}
	p.writer(r)
	for i, in := range r.instances {
		p.printf("   instance %d: %5.0f sales/s  request p99 %-8s (%d tablets)\n", i+1, perSec(in.sales.Load(), r.window), ms(in.all.quantile(0.99)), in.tablets)
	}
	p.cpuLine(r.cpu)
	if r.spread != "" {
		p.printf("   %s\n", r.spread)
	}
	p.examples("errors by code", &r.Errs, false)
	p.connected(r.tablets, r.tabletsWanted, "tablets")
}

func (p *printer) writer(r *loadResult) {
	w := r.writer
	if w.Batches == 0 {
		return
	}
	pages := ""
	if w.Pages > 0 {
		pages = fmt.Sprintf(", %.1f WAL pages written per change", w.PagesPerMutation())
	}
	// The COMMIT times are kept in power-of-two buckets: the bound 99%
	// stayed under is the disk's tail, which every request queued behind
	// a slow COMMIT waits out.
	p99 := "≤ " + ms(w.CommitQuantile(0.99))
	if w.CommitQuantile(0.99) == lanedb.CommitBound(lanedb.CommitBuckets-1) {
		p99 = "over " + ms(lanedb.CommitBound(lanedb.CommitBuckets-2))
	}
	p.printf("   writer: %.0f commits/s, %.1f changes per commit, COMMIT %s avg (99%% %s), %.1f statements and %.0fµs busy per change%s; %d presells recycled\n",
		perSec(w.Batches, r.window), float64(w.Mutations)/float64(w.Batches), ms(w.Commit/time.Duration(w.Batches)), p99,
		w.StatementsPerMutation(), float64(w.BusyPerMutation())/float64(time.Microsecond), pages, r.recycled)
}
