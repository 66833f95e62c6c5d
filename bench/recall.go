package bench

// The recall benchmark (`greenlane bench recall`, issue 4) asks whether a
// counter still finds and recalls presells quickly on a lane DB that holds
// a long history. It builds (or reuses) a lane DB with --sales historic
// sales, has tablets make --open presells over their sockets, then times
// the counter's two requests against the lane server in this process:
// fd1.presell.get_presells (five filters in turn) and fd1.presell.recall by
// ticket (each followed by fd1.presell.release, timed too, so the presell
// stays open). It does so with one counter socket, then with the same
// lookups as direct lanedb calls (the baseline), then with several counter
// sockets at once, and prints the query plans to show that the lookups walk
// the open-presell indexes, not the history.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/greenlane-pos/greenlane/fixtures"
	"github.com/greenlane-pos/greenlane/lanedb"
	"github.com/greenlane-pos/greenlane/protocol"
)

// RecallConfig is one recall benchmark run. DefaultRecallConfig holds every
// default.
type RecallConfig struct {
	// Sales is how many historic (completed) sales the lane DB holds.
	// Default 1,000,000.
	Sales int64
	// Open is how many open presells tablets make before the counters start.
	// Default 200.
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
	// DB is the lane DB file. A file that holds a finished build of Sales
	// historic sales is reused (its open presells are voided first), any
	// other bench DB is rebuilt; it is kept after the run. A lane DB that
	// this benchmark did not build is refused. Default "": a temporary
	// folder, removed at the end.
	DB string
	// Progress receives the build's progress display. Default nil: none.
	Progress io.Writer
	// CPUProfile, when set, receives a CPU profile of the measuring (all
	// figures, warm-ups included; not the build). Default nil.
	CPUProfile io.Writer
	// Log receives the server's warnings and errors. Default nil: dropped.
	Log io.Writer
}

// Bounds that keep a mistyped flag from exhausting the machine.
const (
	maxHistorySales = 50_000_000
	maxCounters     = 64
	maxRequests     = 10_000_000
)

// DefaultRecallConfig returns the defaults.
func DefaultRecallConfig() RecallConfig {
	return RecallConfig{Sales: 1_000_000, Open: 200, Requests: 2000, WarmUp: 300, Counters: 8,
		GroupCommitWait: lanedb.DefaultWriterOptions().MaxWait}
}

func (c RecallConfig) validate() error {
	switch {
	case c.Sales < 0 || c.Sales > maxHistorySales:
		return fmt.Errorf("sales %d: want 0…%d", c.Sales, maxHistorySales)
	case c.Open < 1 || c.Open > lanedb.MaxTicket:
		return fmt.Errorf("open presells %d: want 1…%d (the lane's tickets)", c.Open, lanedb.MaxTicket)
	case c.Requests < 1 || c.Requests > maxRequests:
		return fmt.Errorf("requests %d: want 1…%d", c.Requests, maxRequests)
	case c.WarmUp < 0 || c.WarmUp > maxRequests:
		return fmt.Errorf("warm-up %d: want 0…%d", c.WarmUp, maxRequests)
	case c.GroupCommitWait < 0:
		return fmt.Errorf("group commit wait %s: want 0 (off) or more", c.GroupCommitWait)
	case c.Counters < 0 || c.Counters > maxCounters:
		return fmt.Errorf("counters %d: want 0…%d", c.Counters, maxCounters)
	case c.Open < max(c.Counters, 1):
		// Each counter recalls presells of its own, so none waits on another's claim.
		return fmt.Errorf("open presells %d: want at least one per counter (%d)", c.Open, c.Counters)
	}
	return nil
}

// RecallReport is the outcome of a run.
type RecallReport struct {
	cfg    RecallConfig
	path   string
	build  *buildResult
	voided int64 // open presells of an earlier run, voided
	facts  *dbFacts
	plans  []*queryPlan
	single *recallFigure // one counter socket
	direct *recallFigure // the lanedb baseline
	many   *recallFigure // several counter sockets; nil when skipped
}

// recallFigure is what one way of asking measured.
type recallFigure struct {
	name     string
	clients  []recallClient
	own      [][]openPresell // per client: the presells it recalls
	release  bool            // the recall claims, so each is released after
	stats    *recallStats
	listTook time.Duration         // wall time of the measured get_presells
	cycTook  time.Duration         // wall time of the measured recall cycles
	writer   lanedb.WriterSnapshot // the lane's writer during the measured cycles
	cpu      cpuUse                // over the measured cycles
}

// RunRecall runs the recall benchmark and prints the report to out as it
// goes. An error means the benchmark itself could not run; failed requests
// are in the report (see RecallReport.Err).
func RunRecall(ctx context.Context, cfg RecallConfig, out io.Writer) (*RecallReport, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	path, named, cleanup, err := recallDBPath(cfg.DB)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	p := &printer{w: out}
	p.recallHeader(cfg)
	db, build, err := prepareRecallDB(ctx, path, named, cfg.Sales, cfg.Progress)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	rep := &RecallReport{cfg: cfg, path: path, build: build}
	p.recallBuild(rep)
	r := &recallRun{cfg: cfg, db: db, rep: rep, p: p, log: serverLog(cfg.Log)}
	if err := r.run(ctx); err != nil {
		return nil, err
	}
	p.recallTargets(rep)
	return rep, p.err
}

// recallDBPath turns RecallConfig.DB into the lane DB's path. named is
// false for a temporary folder, which cleanup removes.
func recallDBPath(db string) (path string, named bool, cleanup func(), err error) {
	if db != "" {
		return db, true, func() {}, nil
	}
	dir, err := os.MkdirTemp("", "greenlane-recall-")
	if err != nil {
		return "", false, nil, fmt.Errorf("bench work folder: %w", err)
	}
	return filepath.Join(dir, "recall.db"), false, func() { os.RemoveAll(dir) }, nil
}

// recallRun is one run after the lane DB is ready.
type recallRun struct {
	cfg  RecallConfig
	db   *lanedb.DB
	rep  *RecallReport
	p    *printer
	log  *slog.Logger
	lane *lane
}

// run starts the lane, makes the open presells, and measures the figures.
func (r *recallRun) run(ctx context.Context) (err error) {
	// The counters hold a claim through every get_presells figure ("qk
	// mine" lists live claims), and a long run must not see it lapse;
	// heartbeats would be extra requests on the measured sockets. The
	// lease's length costs the lane nothing.
	if r.lane, err = startLane(ctx, r.db, laneOptions{groupWait: r.cfg.GroupCommitWait, lease: 24 * time.Hour, log: r.log}); err != nil {
		return err
	}
	defer func() {
		if stopErr := r.lane.stop(); err == nil {
			err = stopErr
		}
	}()
	open, err := r.setUp(ctx)
	if err != nil {
		return err
	}
	counters, err := r.connectCounters(ctx)
	if err != nil {
		return err
	}
	defer func() {
		for _, c := range counters {
			c.close()
		}
	}()
	plan := &figurePlan{open: open, counters: counters}
	if r.rep.plans, err = explainRecallQueries(ctx, r.db, plan.workload(1, open), counters[0].keyID); err != nil {
		return err
	}
	r.p.recallPlans(r.rep)
	stopProfile, err := startProfile(r.cfg.CPUProfile)
	if err != nil {
		return err
	}
	defer stopProfile()
	return r.measure(ctx, plan)
}

// setUp voids an earlier run's open presells, has tablets make this run's,
// and reads the lane DB's size and rows.
func (r *recallRun) setUp(ctx context.Context) ([]openPresell, error) {
	var err error
	if r.rep.voided, err = voidPresells(ctx, func(ctx context.Context, fn lanedb.Mutation) error {
		return r.db.WriteTx(ctx, func(tx *lanedb.Tx) error { return fn(ctx, tx) })
	}, "bench recall", "(0, 5)"); err != nil {
		return nil, err
	}
	if err := makeOpenPresells(ctx, r.db, r.lane, r.cfg.Open); err != nil {
		return nil, err
	}
	open, err := listOpenPresells(ctx, r.db)
	if err != nil {
		return nil, err
	}
	if len(open) != r.cfg.Open {
		return nil, fmt.Errorf("the tablets made %d open presells, the lane DB lists %d", r.cfg.Open, len(open))
	}
	if r.rep.facts, err = readDBFacts(ctx, r.db, len(open)); err != nil {
		return nil, err
	}
	r.p.recallFacts(r.rep)
	return open, nil
}

// connectCounters opens the counter sockets (one for the single figure and
// the baseline's "qk mine"; Counters for the concurrent one), each with a
// counter-scope key of its own, as each counter device has.
func (r *recallRun) connectCounters(ctx context.Context) ([]*counter, error) {
	n := max(r.cfg.Counters, 1)
	out := make([]*counter, 0, n)
	for i := range n {
		key, err := freshKey(ctx, r.db, fmt.Sprintf("bench-recall-counter-%02d", i+1), protocol.ScopeCounter)
		if err == nil {
			var c *counter
			if c, err = dialCounter(ctx, r.lane.laneURL(), key); err == nil {
				out = append(out, c)
				continue
			}
		}
		for _, c := range out {
			c.close()
		}
		return nil, fmt.Errorf("counter %d: %w", i+1, err)
	}
	return out, nil
}

// measure runs the figures: get_presells while each counter holds one
// presell (the customer it is serving, so "qk mine" finds something), then
// the recall cycles once those are given back.
func (r *recallRun) measure(ctx context.Context, plan *figurePlan) error {
	figures := r.figures(plan)
	serving, err := plan.holdServing(ctx)
	if err != nil {
		return err
	}
	for _, f := range figures {
		loop := func(ctx context.Context, c recallClient, w *workload, n int) error {
			return listLoop(ctx, c, w, n, f.stats)
		}
		if f.listTook, _, _, err = r.phase(ctx, f.clients, plan.workloads(f), f.stats, loop); err != nil {
			return err
		}
	}
	if err := plan.releaseServing(ctx, serving); err != nil {
		return err
	}
	for _, f := range figures {
		loop := func(ctx context.Context, c recallClient, w *workload, n int) error {
			return recallLoop(ctx, c, w, n, f.release, f.stats)
		}
		if f.cycTook, f.writer, f.cpu, err = r.phase(ctx, f.clients, plan.workloads(f), f.stats, loop); err != nil {
			return err
		}
		r.p.recallFigure(f)
	}
	r.p.recallRatios(r.rep)
	return nil
}

// figures are the ways of asking: one counter socket, the same lookups on
// lanedb directly (its "qk mine" is the first counter's), and, unless
// Counters ≤ 1, every counter socket at once, each recalling its share.
func (r *recallRun) figures(plan *figurePlan) []*recallFigure {
	first := plan.counters[0]
	r.rep.single = &recallFigure{name: "1 counter over WebSocket", clients: []recallClient{first},
		own: [][]openPresell{plan.open}, release: true, stats: &recallStats{}}
	r.rep.direct = &recallFigure{name: "direct lanedb (baseline: no socket, no JSON, no claim)",
		clients: []recallClient{&directClient{db: r.db, claimKey: first.keyID}},
		own:     [][]openPresell{plan.open}, stats: &recallStats{}}
	figures := []*recallFigure{r.rep.single, r.rep.direct}
	if n := len(plan.counters); n > 1 {
		many := &recallFigure{name: fmt.Sprintf("%d counters over WebSocket at once", n), release: true, stats: &recallStats{}}
		for i, c := range plan.counters {
			many.clients = append(many.clients, c)
			many.own = append(many.own, plan.share(i))
		}
		r.rep.many = many
		figures = append(figures, many)
	}
	return figures
}

// phase runs loop on every client at once, WarmUp requests unrecorded and
// then Requests recorded (each split among the clients), and returns the
// recorded part's wall time and what the lane's writer did over it.
func (r *recallRun) phase(ctx context.Context, clients []recallClient, works []*workload, s *recallStats,
	loop clientLoop) (time.Duration, lanedb.WriterSnapshot, cpuUse, error) {
	if err := runClients(ctx, clients, works, r.cfg.WarmUp, s, loop); err != nil {
		return 0, lanedb.WriterSnapshot{}, cpuUse{}, err
	}
	before := r.lane.Writer.Stats().Snapshot()
	s.record.Store(true)
	mark := readCPUMark()
	start := time.Now()
	err := runClients(ctx, clients, works, r.cfg.Requests, s, loop)
	took := time.Since(start)
	s.record.Store(false)
	return took, r.lane.Writer.Stats().Snapshot().Sub(before), mark.since(), err
}

// Err is nil when no request failed. Otherwise it summarises the failures
// by figure and code, with an example.
func (r *RecallReport) Err() error {
	var ts []namedTally
	for _, f := range []*recallFigure{r.single, r.direct, r.many} {
		if f != nil {
			ts = append(ts, namedTally{f.name, &f.stats.errs})
		}
	}
	return failures("", ts...)
}

// buildResult says where the lane DB came from.
type buildResult struct {
	reused   bool
	replaced int64 // historic sales in the file that was rebuilt; -1: no bench DB was there
	sales    int64
	took     time.Duration
}

// The recall benchmark's lane DB is the demo fixture plus --sales historic
// sales from fixtures.Generate, completed over a past year; three in ten
// were presells, so their ticket numbers (now free) are spread over every
// ticket many times: none of it may slow down finding the few presells
// that are open.
const (
	// historyMarker is the lane_counters row in which a finished build
	// records how many historic sales it wrote. It is written once the
	// build is done, so its presence means the build completed, and it
	// tells a bench DB (which may be replaced) from anyone else's lane DB.
	historyMarker = "bench_recall_sales"
	// buildCacheKB is the writer's page cache during the build (SQLite's
	// default is 2 MB): the random_key index takes inserts all over, and
	// every miss is a read from the OS.
	buildCacheKB = 64 << 10
)

// prepareRecallDB returns the lane DB to measure, opened with lanedb's
// defaults (synchronous FULL, as the lane runs). A file the caller named is
// reused when a finished build of the same size is in it; otherwise the
// history is built afresh.
func prepareRecallDB(ctx context.Context, path string, reuse bool, sales int64, prog io.Writer) (*lanedb.DB, *buildResult, error) {
	res := &buildResult{sales: sales, replaced: -1}
	if reuse {
		db, held, err := openBenchDB(ctx, path)
		if err != nil {
			return nil, nil, err
		}
		if db != nil && held == sales {
			res.reused = true
			return db, res, nil
		}
		if db != nil {
			db.Close()
		}
		res.replaced = held
	}
	start := time.Now()
	if err := buildHistory(ctx, path, sales, prog); err != nil {
		return nil, nil, err
	}
	res.took = time.Since(start)
	db, err := lanedb.Open(ctx, path, lanedb.DefaultOptions())
	if err != nil {
		return nil, nil, err
	}
	return db, res, nil
}

// openBenchDB opens an earlier run's lane DB at path and reports how many
// historic sales its finished build holds. It returns a nil DB (and -1)
// when there is no file. A lane DB that bench recall did not build is
// refused rather than replaced.
func openBenchDB(ctx context.Context, path string) (*lanedb.DB, int64, error) {
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return nil, -1, nil
	}
	db, err := lanedb.Open(ctx, path, lanedb.DefaultOptions())
	if err != nil {
		return nil, -1, err
	}
	held, ok, err := lanedb.CounterValue(ctx, db.Read, historyMarker)
	var maxSID int64
	if err == nil && ok {
		maxSID, err = lanedb.MaxSID(ctx, db.Read)
	}
	switch {
	case err != nil:
		db.Close()
		return nil, -1, err
	case !ok:
		db.Close()
		return nil, -1, fmt.Errorf("%s is a lane DB that bench recall did not build: not replacing it (name another --db)", path)
	case maxSID != held:
		// The history's sids run 1…N: a file whose count and sids
		// disagree was changed since, and is rebuilt.
		db.Close()
		return nil, held, nil
	}
	return db, held, nil
}

// buildHistory makes a fresh demo lane DB at path with n historic sales
// (fixtures.Generate), then the marker. The bulk load runs with
// synchronous OFF: a crash mid-build loses only a bench DB, which has no
// marker yet and is rebuilt. The caller reopens the file with the lane's
// settings.
func buildHistory(ctx context.Context, path string, n int64, prog io.Writer) error {
	fresh, err := openDemoDB(ctx, path)
	if err != nil {
		return err
	}
	if err := fresh.Close(); err != nil {
		return fmt.Errorf("close %s: %w", path, err)
	}
	db, err := lanedb.Open(ctx, path, lanedb.Options{Synchronous: "OFF"})
	if err != nil {
		return err
	}
	defer db.Close()
	if err := db.SetWriterCacheKB(ctx, buildCacheKB); err != nil {
		return err
	}
	err = fixtures.Generate(ctx, db, fixtures.GenerateOptions{OntoStore: true, Sales: int(n), PresellPercent: 30, Seed: 4, Progress: prog})
	if err != nil {
		return fmt.Errorf("build historic sales: %w", err)
	}
	return db.WriteTx(ctx, func(tx *lanedb.Tx) error { return lanedb.SetCounter(ctx, tx, historyMarker, n) })
}
