package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/greenlane-pos/greenlane/fd1client"
	lanesrv "github.com/greenlane-pos/greenlane/lane"
	"github.com/greenlane-pos/greenlane/lanedb"
	"github.com/greenlane-pos/greenlane/protocol"
)

// openDemoDB creates a fresh demo lane DB at path, replacing any earlier
// one, so that every phase starts from the same state: an SQLite file (and
// its WAL), or a PostgreSQL database dropped and made anew through the
// database admin names on the same server (see store.go). It uses lanedb's
// default options: synchronous FULL on SQLite.
func openDemoDB(ctx context.Context, admin, path string) (*lanedb.DB, error) {
	if lanedb.IsPostgresURL(path) {
		if err := recreateDatabase(ctx, admin, path); err != nil {
			return nil, err
		}
	} else {
		for _, p := range []string{path, path + "-wal", path + "-shm"} {
			if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("replace bench DB %s: %w", p, err)
			}
		}
	}
	db, err := lanedb.Open(ctx, path, lanedb.DefaultOptions())
	if err != nil {
		return nil, err
	}
	if err := loadDemo(ctx, db); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

type benchKey struct {
	key, id string
}

// freshKey creates an API key named name. A reused lane DB still has the
// live key of that name from an earlier run: it is revoked and made anew,
// as staff would replace a device's key.
func freshKey(ctx context.Context, db *lanedb.DB, name string, scope protocol.Scope) (benchKey, error) {
	key, err := db.CreateAPIKey(ctx, name, []string{string(scope)})
	if errors.Is(err, lanedb.ErrKeyNameTaken) {
		if _, err = db.RevokeAPIKey(ctx, name); err == nil {
			key, err = db.CreateAPIKey(ctx, name, []string{string(scope)})
		}
	}
	if err != nil {
		return benchKey{}, fmt.Errorf("API key %s: %w", name, err)
	}
	k, err := db.Authenticate(ctx, key)
	if err != nil {
		return benchKey{}, fmt.Errorf("API key %s: %w", name, err)
	}
	return benchKey{key: key, id: k.KeyID}, nil
}

// lane is the lane server running in this process, wired as `greenlane
// serve` wires it (package lane), so that what a bench measures is what a
// lane runs.
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
func startLane(ctx context.Context, db *lanedb.DB, opts laneOptions) (*lane, error) {
	if opts.log == nil {
		opts.log = serverLog(nil)
	}
	cfg := lanesrv.DefaultConfig()
	cfg.Writer.MaxWait = opts.groupWait
	cfg.Server.Addr = "127.0.0.1:0"
	// A bench tablet asks as fast as the lane answers, far above what the
	// per-socket and per-key limits allow a misbehaving client; the limits
	// are not what is measured here.
	cfg.Server.RequestRate, cfg.Server.RequestBurst = 1e6, 1e6
	cfg.Server.KeyRequestRate, cfg.Server.KeyRequestBurst = 1e6, 1e6
	// Likewise a bench tablet may hold many open presells (the recall
	// benchmark's setup makes thousands on four keys): no per-key cap.
	cfg.Sales.MaxOpenPresells = lanedb.MaxTicket
	cfg.Sales.MaxOpenSales = 1_000_000
	// Bench clients are thousands of sockets from one address on one key,
	// all dialled at once: the flood caps would refuse most of them.
	cfg.Server.MaxUnauthSockets = cfg.Server.MaxSockets
	cfg.Server.MaxUnauthPerAddress = cfg.Server.MaxSockets
	cfg.Server.MaxSocketsPerKey = cfg.Server.MaxSockets
	cfg.Hub.MaxPerKey = cfg.Server.MaxSockets * cfg.Hub.MaxPerSocket
	cfg.Server.MaxConnsPerAddress = cfg.Server.MaxConns
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
	l := &lane{Lane: ln, cancel: cancel, served: make(chan error, 1)}
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

// laneURL is the socket of an ordinary FD1 client (a counter, a customer
// display, a debugscope: their purpose travels in the login packet).
func (l *lane) laneURL() string { return "ws://" + l.addr + "/fd1/open_websocket" }

func (l *lane) presellURL() string { return l.laneURL() + "?purpose=presell" }

// stop shuts the server down gracefully, then the lane's background work
// and its writer (which finishes what is queued). The DB stays open for the
// caller to check and close.
func (l *lane) stop() error {
	l.cancel()
	err := <-l.served
	l.Lane.Close()
	if err != nil {
		return fmt.Errorf("stop the lane server: %w", err)
	}
	return nil
}

// withLane runs fn against a lane server on a fresh demo DB for phase
// file under prefix (see phaseDB) with keys for n devices of scope, then
// stops the server and checks that every park a tablet saw succeed is in
// the DB (stats nil: nothing to check).
func withLane(ctx context.Context, prefix, file string, opts laneOptions, n int, scope protocol.Scope, stats *loadStats,
	fn func(l *lane, keys []string) error) error {
	open := func() (*lanedb.DB, string, error) { return openPhaseDB(ctx, prefix, file) }
	return withLanes(ctx, open, 1, opts, n, scope, stats, func(ls []*lane, keys []string) error { return fn(ls[0], keys) })
}

// withLanes is withLane with instances lane servers on the one DB that
// open makes (each instance with a handle, a writer and a hub of its own,
// as separate `greenlane serve` processes on one store database have).
// open returns the fresh DB and where it is, for the further handles.
func withLanes(ctx context.Context, open func() (*lanedb.DB, string, error), instances int, opts laneOptions,
	n int, scope protocol.Scope, stats *loadStats, fn func(ls []*lane, keys []string) error) error {
	db, where, err := open()
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
	dbs := []*lanedb.DB{db}
	for i := 1; i < instances; i++ {
		other, err := lanedb.Open(ctx, where, lanedb.DefaultOptions())
		if err != nil {
			return fmt.Errorf("instance %d: %w", i+1, err)
		}
		defer other.Close()
		dbs = append(dbs, other)
	}
	var ls []*lane
	var runErr error
	for i, d := range dbs {
		l, err := startLane(ctx, d, opts)
		if err != nil {
			runErr = fmt.Errorf("instance %d: %w", i+1, err)
			break
		}
		l.where = where
		ls = append(ls, l)
	}
	if runErr == nil {
		runErr = fn(ls, keys)
	}
	for _, l := range ls {
		if err := l.stop(); err != nil && runErr == nil {
			runErr = err
		}
	}
	if runErr != nil || stats == nil {
		return runErr
	}
	// A reply promises a commit: a difference is a lost or an
	// unacknowledged sale.
	inDB, err := lanedb.SubmittedPresellCount(ctx, db.Read)
	if err != nil {
		return err
	}
	if acked := stats.parked.Load(); inDB != acked {
		stats.errs.add("verify", 1, fmt.Sprintf("verify: tablets saw %d parks succeed, the DB holds %d submitted presells", acked, inDB))
	}
	return nil
}

// writeFunc runs one mutation in a committed write transaction: through the
// server's group-commit writer, or straight on the DB for the baseline.
type writeFunc func(ctx context.Context, fn lanedb.Mutation) error

// directWrite runs a mutation in a transaction of its own (one BEGIN
// IMMEDIATE … COMMIT), beside no lane.
func directWrite(db *lanedb.DB) writeFunc {
	return func(ctx context.Context, fn lanedb.Mutation) error {
		return db.WriteTx(ctx, func(tx *lanedb.Tx) error { return fn(ctx, tx) })
	}
}

// voidPresells voids the presells in phases (a SQL list), open claims and
// all, but for the newest keep of them, and returns how many it voided.
//
// Why the benches do: a lane has 9,999 presell tickets and a ticket stays
// taken while its presell is open. In a shop the counter recalls and
// completes presells as fast as tablets submit them; a bench has no
// counter, so at 1,000 sales/s the tickets would run out after ten seconds.
// Voiding stands in for the counter's work at a fraction of its cost: one
// short UPDATE every RecycleEvery, written like any other change. Bench
// recall voids an earlier run's presells the same way.
//
// The recycler keeps recycleKeep open, as a shop has a queue of presells
// waiting: it only needs tickets free, and a load that never reaches that
// many (the realistic phases' default) is not interrupted every tick by a
// bulk write no counter makes (a counter takes presells one by one). A
// tick below it only counts, and writes nothing.
func voidPresells(ctx context.Context, write writeFunc, by, phases string, keep int) (int64, error) {
	var n int64
	err := write(ctx, func(ctx context.Context, tx *lanedb.Tx) error {
		if keep > 0 {
			// An upper bound first, read from the sales_phase index alone:
			// the sales in phases, presells or not.
			var open int
			if err := tx.GetContext(ctx, &open, `SELECT COUNT(*) FROM sales WHERE phase IN `+phases); err != nil {
				return fmt.Errorf("count presells: %w", err)
			}
			if open <= keep {
				return nil
			}
		}
		now := lanedb.FormatDateTime(time.Now().UTC())
		res, err := tx.ExecContext(ctx, `UPDATE sales SET phase = ?, voided_utc = ?, voided_by = ?,
			claim_session = NULL, claim_key = NULL, claim_name = NULL, claim_expires_ms = NULL,
			updated_utc = ?, version = version + 1 WHERE physkey IN (SELECT physkey FROM sales
				WHERE presell = 1 AND phase IN `+phases+` ORDER BY submitted_utc DESC, physkey DESC LIMIT ? OFFSET ?)`,
			lanedb.PhaseVoid, now, by, now, math.MaxInt32, keep)
		if err != nil {
			return fmt.Errorf("void presells: %w", err)
		}
		n, err = res.RowsAffected()
		return err
	})
	return n, err
}

// recycleKeep is how many submitted presells the benches' recyclers leave
// open (see voidPresells): a quarter of the tickets.
const recycleKeep = lanedb.MaxTicket / 4

// recycler voids submitted presells every interval beside a load.
type recycler struct {
	n   atomic.Int64
	err error // why it stopped early; read once wg is done
}

// recycle starts a recycler (none when every ≤ 0) that runs until ctx
// ends, on wg.
func recycle(ctx context.Context, wg *sync.WaitGroup, every time.Duration, write writeFunc) *recycler {
	r := &recycler{}
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
			n, err := voidPresells(ctx, write, "bench recycler", "(5)", recycleKeep)
			if err != nil {
				if ctx.Err() == nil {
					r.err = fmt.Errorf("ticket recycler: %w", err)
				}
				return
			}
			r.n.Add(n)
		}
	})
	return r
}

// synchronous names the writer connection's durability setting, and
// whether a commit is durable with it: a figure is only worth comparing
// when it is. On SQLite that is PRAGMA synchronous at FULL; on PostgreSQL,
// synchronous_commit on (COMMIT waits for the WAL flush) with fsync on.
func (l *lane) synchronous(ctx context.Context) (label string, durable bool, err error) {
	if l.DB.Postgres() {
		var commit, fsync string
		err := l.Writer.Do(ctx, func(ctx context.Context, tx *lanedb.Tx) error {
			if err := tx.GetContext(ctx, &commit, "SHOW synchronous_commit"); err != nil {
				return err
			}
			return tx.GetContext(ctx, &fsync, "SHOW fsync")
		})
		if err != nil {
			return "", false, fmt.Errorf("read synchronous_commit and fsync: %w", err)
		}
		return "synchronous_commit " + commit + ", fsync " + fsync, commit == "on" && fsync == "on", nil
	}
	var n int
	err = l.Writer.Do(ctx, func(ctx context.Context, tx *lanedb.Tx) error {
		return tx.GetContext(ctx, &n, "PRAGMA synchronous")
	})
	if err != nil {
		return "", false, fmt.Errorf("read PRAGMA synchronous: %w", err)
	}
	name := fmt.Sprint(n)
	if names := []string{"OFF", "NORMAL", "FULL", "EXTRA"}; n >= 0 && n < len(names) {
		name = names[n]
	}
	return "synchronous " + name, name == "FULL", nil
}

// dialParallel bounds the sockets opened at once: a burst of a thousand
// handshakes is no part of what is measured.
const dialParallel = 32

// parallel runs fn(0…n-1), dialParallel at a time.
func parallel(n int, fn func(i int)) {
	sem := make(chan struct{}, dialParallel)
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

var kindNames = [numKinds]string{"create", "add_product", "set_customer", "park"}

var kindEndpoints = [numKinds]string{
	"fd1.salesbuilder.sale_create",
	"fd1.salesbuilder.sale_add_product",
	"fd1.salesbuilder.sale_set_customer",
	"fd1.salesbuilder.sale_park",
}

// linesPerSale is how many add_product requests a sale makes.
const linesPerSale = 3

// Products a tablet rings up: the demo's first ten (sold by the unit) and,
// now and then, a weighed product sold in grams.
var (
	unitPIDs    = []int64{1001, 1002, 1003, 1004, 1005, 1006, 1007, 1008, 1009, 1010}
	weighedPIDs = []int64{1024, 1025, 1026, 1027, 1028, 1030, 1031}
)

// demoCustomers is the cid range of the demo fixture (two have a discount,
// so set_customer reprices lines).
const demoCustomers = 10

type lineChoice struct {
	PID int64 `json:"pid"`
	Qty int64 `json:"qty"`
}

// pickLine chooses a product and quantity: 1–3 of a unit product, or one
// time in ten 100–1500 g of a weighed one.
func pickLine(rng *rand.Rand) lineChoice {
	if rng.IntN(10) == 0 {
		return lineChoice{PID: weighedPIDs[rng.IntN(len(weighedPIDs))], Qty: 100 + rng.Int64N(1401)}
	}
	return lineChoice{PID: unitPIDs[rng.IntN(len(unitPIDs))], Qty: 1 + rng.Int64N(3)}
}

type customerChoice struct {
	CID int64 `json:"cid"`
}

func pickCustomer(rng *rand.Rand) int64 { return 1 + rng.Int64N(demoCustomers) }

// The measuring window of a load: requests that finish during the warm-up
// or after the end are not timed, but their errors still count.
const (
	windowWarmUp int32 = iota
	windowOpen
	windowClosed
)

// loadStats is what the tablets of one load record, shared by all of them.
type loadStats struct {
	window  atomic.Int32
	latency [numKinds]histogram
	all     histogram // every kind together
	// late is, in a paced load, how late each tablet's timer woke for a
	// request it had to wait for: the bench's own scheduling (Go's timers
	// round short waits up to a millisecond on an idle process), which the
	// figures from the scheduled send include.
	late     histogram
	requests atomic.Int64 // successful replies inside the window
	sales    atomic.Int64 // parks answered OK inside the window
	parked   atomic.Int64 // parks answered OK over the whole run
	errs     tally
}

// instanceStats is what the tablets of one lane instance record, beside
// their loadStats, when a load is spread over several instances.
type instanceStats struct {
	all     histogram    // every request kind, inside the window
	sales   atomic.Int64 // parks answered OK inside the window
	tablets int          // tablets that connected to it
}

func (s *loadStats) inWindow() bool { return s.window.Load() == windowOpen }

// tablet is one presell tablet: a socket that sends one request and waits
// for its reply before the next (a closed loop, as a person at a tablet
// does), or the same calls made in process (local).
type tablet struct {
	c     *fd1client.Conn
	local localFunc // set: no socket, the change is made in this process
	rng   *rand.Rand
	stats *loadStats
	inst  *instanceStats // the instance it is on; nil with one instance
	// pace, when set, is the mean time between requests: each is scheduled
	// at exponentially distributed gaps (a Poisson process, open loop) and
	// timed from its scheduled time, so a late lane is not hidden by a
	// tablet that waited for it (no coordinated omission).
	pace time.Duration
	next time.Time       // the next request's scheduled time
	ctx  context.Context // cuts a paced wait short when the load ends
	// replyAt is when the last reply was read off the socket, before it
	// was decoded: bench firehose compares it with a display's receipt.
	replyAt time.Time
}

// localFunc makes change k of sale key (v is the line or customer) and
// returns the sale's physkey.
type localFunc func(ctx context.Context, k kind, key string, v any) (string, error)

// tabletRand is tablet n's random draws: seeded by tablet number, so
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

// saleShape is what a tablet's sale is made of: create, lines ×
// add_product, set_customer when customer is set, park. onLine, when set,
// hears of each line added (its seqnce: a sale's lines take 1, 2, …).
type saleShape struct {
	lines    int
	customer bool
	onLine   func(t *tablet, physkey string, seqnce int64)
}

// presellSale is what bench presell and bench soak ring up.
var presellSale = saleShape{lines: linesPerSale, customer: true}

// sale makes one sale. An error reply abandons it (it is counted); a
// broken socket is returned. ok is false for an abandoned sale.
func (t *tablet) sale(shape saleShape) (ok bool, err error) {
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
		t.stats.parked.Add(1)
		if t.stats.inWindow() {
			t.stats.sales.Add(1)
			if t.inst != nil {
				t.inst.sales.Add(1)
			}
		}
	}
	return ok, err
}

// do sends one request of kind k about sale key and waits for its reply.
// It returns the reply's k (the sale's physkey) and whether the reply was a
// success; err is set only when the socket broke.
func (t *tablet) do(k kind, key string, v any) (string, bool, error) {
	start := time.Now()
	if t.pace > 0 {
		t.next = t.next.Add(time.Duration(t.rng.ExpFloat64() * float64(t.pace)))
		if wait := time.Until(t.next); wait > 0 {
			// A load that ends sends the sale's rest at once.
			if sleep(t.ctx, wait) == nil && t.stats.inWindow() {
				t.stats.late.record(time.Since(t.next))
			}
		}
		start = t.next
	}
	physkey, e, err := t.call(k, key, v)
	if err != nil {
		return "", false, err
	}
	if e != nil {
		t.stats.errs.reply(kindNames[k], e)
		return "", false, nil
	}
	if t.stats.inWindow() {
		d := t.replyAt.Sub(start)
		t.stats.latency[k].record(d)
		t.stats.all.record(d)
		t.stats.requests.Add(1)
		if t.inst != nil {
			t.inst.all.record(d)
		}
	}
	if k == kindCreate && physkey == "" {
		t.stats.errs.reply(kindNames[k], protocol.Errorf("bad_reply", "create answered no physkey"))
		return "", false, nil
	}
	return physkey, true, nil
}

// call makes one request over the socket or in process: the sale's
// physkey, or the error reply; err only when the socket broke.
func (t *tablet) call(k kind, key string, v any) (string, *protocol.Error, error) {
	if t.local != nil {
		physkey, err := t.local(context.Background(), k, key, v)
		t.replyAt = time.Now()
		var pe *protocol.Error
		if err != nil && !errors.As(err, &pe) {
			pe = protocol.Errorf(protocol.CodeInternal, "%v", err)
		}
		return physkey, pe, nil
	}
	p, err := t.c.Call(&fd1client.Request{A: kindEndpoints[k], K: key, V: v})
	if err != nil {
		return "", nil, err
	}
	t.replyAt = p.At
	return p.Key(), p.Error, nil
}

// connectTablets dials and logs in every tablet at once. A tablet that
// cannot connect is counted as a connection error and left out.
func connectTablets(ctx context.Context, url string, keys []string, stats *loadStats) []*tablet {
	return connectSpread(ctx, []string{url}, nil, keys, stats)
}

// connectSpread is connectTablets over several lane instances: tablet i
// dials urls[i mod len(urls)] and, when insts is set, records into
// insts[i mod len(urls)] too.
func connectSpread(ctx context.Context, urls []string, insts []*instanceStats, keys []string, stats *loadStats) []*tablet {
	out := make([]*tablet, len(keys))
	var wg sync.WaitGroup
	for i, key := range keys {
		wg.Go(func() {
			t, err := dialTablet(ctx, urls[i%len(urls)], key, i+1, stats)
			if err != nil {
				stats.errs.add("connection", 1, fmt.Sprintf("tablet %d: %v", i+1, err))
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

// runTablets makes sales of shape on every tablet until ctx ends; a
// tablet whose socket breaks is counted and stops. A started sale is
// always finished, so every sale counted is whole: wait returns once each
// tablet has finished its last and closed its socket.
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
					t.stats.errs.add("connection", 1, err.Error())
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
	profile          io.Writer     // a CPU profile of the window; nil: none
	pace             time.Duration // a tablet's mean gap between requests (open loop); 0: none (closed loop)
	// window opens (true) and closes the measuring window; nil: the
	// tablets' own loadStats.
	window func(open bool) error
}

type loadResult struct {
	name          string
	groupWait     time.Duration
	paced         bool
	window        time.Duration
	sales         int64
	requests      int64
	latency       *[numKinds]histogram // nil: not timed per request (baseline-1tx)
	all           *histogram
	late          *histogram // the tablets' timers (paced loads)
	errs          *tally
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

func (r *loadResult) salesPerSec() float64 { return perSec(r.sales, r.window) }
func (r *loadResult) reqPerSec() float64   { return perSec(r.requests, r.window) }

// p99 is the request p99 over every kind; 0 when not timed.
func (r *loadResult) p99() time.Duration {
	if r.all == nil {
		return 0
	}
	return r.all.quantile(0.99)
}

// fill copies the tablets' figures in, once every tablet has stopped.
func (r *loadResult) fill(s *loadStats) {
	r.sales, r.requests, r.latency, r.all, r.late, r.errs = s.sales.Load(), s.requests.Load(), &s.latency, &s.all, &s.late, &s.errs
}

// errNoTablets ends a load in which not one tablet could log in.
var errNoTablets = errors.New("no tablet could connect")

// drive runs the tablets beside the ticket recycler through warm-up and
// window, and stops them; it returns once every tablet has finished its
// last sale.
//
// With several lane instances (ls) on one DB, the first runs the recycler,
// and the writer figures are the sum of every instance's writer.
func drive(ctx context.Context, ls []*lane, tablets []*tablet, wanted int, stats *loadStats, shape saleShape, c loadConfig) (*loadResult, error) {
	if len(tablets) == 0 {
		return nil, fmt.Errorf("%w: %s", errNoTablets, stats.errs.example())
	}
	l := ls[0]
	synchronous, durable, err := l.synchronous(ctx)
	if err != nil {
		return nil, err
	}
	for _, t := range tablets {
		t.pace = c.pace
	}
	loadCtx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	wait := runTablets(loadCtx, tablets, shape)
	var wg sync.WaitGroup
	rec := recycle(loadCtx, &wg, c.recycleEvery, l.Writer.Do)
	if c.window == nil {
		c.window = func(open bool) error {
			stats.window.Store(map[bool]int32{true: windowOpen, false: windowClosed}[open])
			return nil
		}
	}
	res, err := measure(ctx, ls, c)
	stopLoad()
	wait()
	wg.Wait()
	if err = errors.Join(err, rec.err); err != nil {
		return nil, err
	}
	res.tablets, res.tabletsWanted, res.recycled, res.synchronous, res.durable = len(tablets), wanted, rec.n.Load(), synchronous, durable
	return res, nil
}

// measure waits out the warm-up, then opens the window for the duration
// and reads the writers (of every lane in ls) and the CPU over it.
func measure(ctx context.Context, ls []*lane, c loadConfig) (*loadResult, error) {
	if err := sleep(ctx, c.warmUp); err != nil {
		return nil, err
	}
	before := writerSnapshot(ls)
	stopProfile, err := startProfile(c.profile)
	if err != nil {
		return nil, err
	}
	mark := readCPUMark()
	if err := c.window(true); err != nil {
		stopProfile()
		return nil, err
	}
	err = errors.Join(sleep(ctx, c.duration), c.window(false))
	res := &loadResult{window: time.Since(mark.at), cpu: mark.since(), writer: writerSnapshot(ls).Sub(before)}
	stopProfile()
	return res, err
}

// writerSnapshot is the sum of the lanes' writer counters.
func writerSnapshot(ls []*lane) lanedb.WriterSnapshot {
	var sum lanedb.WriterSnapshot
	for _, l := range ls {
		sum = sum.Add(l.Writer.Stats().Snapshot())
	}
	return sum
}

// load prints one phase: throughput, errors, latency per kind and over
// all, what the writer did, and how busy the machine was.
func (p *printer) load(r *loadResult) {
	title := r.name + ":"
	if r.groupWait > 0 && !r.paced {
		title = fmt.Sprintf("%s (wait %s):", r.name, r.groupWait)
	}
	if r.latency == nil {
		p.printf("%-28s %5.0f sales/s  (%d sales, 1 transaction each, no sockets, no JSON)\n", title, r.salesPerSec(), r.sales)
	} else {
		p.printf("%-28s %5.0f sales/s  %5.0f req/s  errors %d  busy %d\n",
			title, r.salesPerSec(), r.reqPerSec(), r.errs.total(), r.errs.busy())
		for k := range numKinds {
			p.latency(kindNames[k], &r.latency[k])
		}
		from := "from send"
		if r.paced {
			from = "from the scheduled send: Poisson, open loop"
		}
		p.printf("   %-13s %s  (%s)\n", "all requests", quantiles(r.all, ms, 0), from)
		if r.late != nil && r.late.count() > 0 {
			p.printf("   tablets' own timers woke late by p50 %s, p99 %s (in the figures above: the bench's scheduling, not the lane)\n",
				ms(r.late.quantile(0.5)), ms(r.late.quantile(0.99)))
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
	if r.errs != nil && r.errs.total()+r.errs.busy() > 0 {
		p.examples("errors by code", r.errs, false)
	}
	p.connected(r.tablets, r.tabletsWanted, "tablets")
}

func (p *printer) connected(n, wanted int, what string) {
	if n != wanted {
		p.printf("   only %d of %d %s connected\n", n, wanted, what)
	}
}

// commitP99 says how long 99% of the COMMITs took at most (the writer
// keeps them in power-of-two buckets): the disk's tail, which every
// request queued behind a slow COMMIT waits out.
func commitP99(w lanedb.WriterSnapshot) string {
	q := w.CommitQuantile(0.99)
	if q == lanedb.CommitBound(lanedb.CommitBuckets-1) {
		return "over " + ms(lanedb.CommitBound(lanedb.CommitBuckets-2))
	}
	return "≤ " + ms(q)
}

func (p *printer) writer(r *loadResult) {
	if w := r.writer; w.Batches > 0 {
		pages := ""
		if w.Pages > 0 {
			pages = fmt.Sprintf(", %.1f WAL pages written per change", w.PagesPerMutation())
		}
		p.printf("   writer: %.0f commits/s, %.1f changes per commit, COMMIT %s avg (99%% %s), %.1f statements and %.0fµs busy per change%s; %d presells recycled\n",
			perSec(w.Batches, r.window), float64(w.Mutations)/float64(w.Batches), ms(w.Commit/time.Duration(w.Batches)), commitP99(w),
			w.StatementsPerMutation(), float64(w.BusyPerMutation())/float64(time.Microsecond), pages, r.recycled)
	}
}
