package bench

// The presell benchmark drives presell tablets against the lane server in
// this process, with group commit on and then off, runs a bare
// one-transaction-per-sale loop on lanedb as the baseline, and measures
// the memory an idle presell socket costs the server.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/greenlane-pos/greenlane/protocol"
)

// Config is one presell benchmark run. DefaultConfig holds every default.
type Config struct {
	// Tablets is how many presell tablets run at once. Default 200.
	Tablets int
	// Duration is how long each phase is measured. Default 10s.
	Duration time.Duration
	// WarmUp runs before each measurement and is not counted. Default 1s.
	WarmUp time.Duration
	// DB is where the phases' lane DBs go: a folder, or a path prefix
	// (PREFIX.gc-on.db, PREFIX.gc-off.db, PREFIX.baseline.db, PREFIX.idle.db).
	// Files of those names are replaced; the DBs are kept after the run.
	// Default "": a temporary folder, removed at the end.
	DB string
	// GroupCommitWait is the writer's batching wait in the group-commit-on
	// phase. Default lanedb's default (2ms).
	GroupCommitWait time.Duration
	// PresellWorkers is the server's per-presell-socket worker limit.
	// Default 0: the server's default.
	PresellWorkers int
	// IdleSockets is how many idle presell sockets the memory figure opens.
	// Default 1000; 0 skips the figure.
	IdleSockets int
	// RecycleEvery is how often submitted presells are voided so their
	// ticket numbers come free again (see voidPresells). Default 250ms;
	// 0 never (the lane then runs out of tickets after 9,999 sales).
	RecycleEvery time.Duration
	// IdleClients makes the command of the child process that holds the
	// idle sockets (`greenlane bench idle-clients`), so that this process's
	// memory is the server's alone. Default nil: the sockets are held in
	// this process and their client side is counted too.
	IdleClients func(ctx context.Context) *exec.Cmd
	// CPUProfile, when set, receives a CPU profile of the measured window
	// of the group-commit-on phase. Default nil.
	CPUProfile io.Writer
	// Log receives the server's warnings and errors. Default nil: dropped.
	Log io.Writer
}

// Bounds that keep a mistyped flag from exhausting the machine.
const (
	maxTablets     = 5000
	maxIdleSockets = 20000
)

// The targets, for 200 tablets on a 2-core machine that runs both
// the tablets and the server.
const (
	targetTablets       = 200
	targetSalesPerSec   = 1000
	targetP99           = 50 * time.Millisecond
	targetBaselineRatio = 0.5
	targetOnOffRatio    = 1.3
	targetIdleBytes     = 40 * 1024 // 40 KB, KB = 1024 bytes as printed
)

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{Tablets: 200, Duration: 10 * time.Second, WarmUp: time.Second, GroupCommitWait: defaultWait,
		IdleSockets: 1000, RecycleEvery: 250 * time.Millisecond}
}

func (c Config) validate() error {
	switch {
	case c.Tablets < 1 || c.Tablets > maxTablets:
		return fmt.Errorf("tablets %d: want 1…%d", c.Tablets, maxTablets)
	case c.Duration <= 0:
		return fmt.Errorf("duration %s: want more than 0", c.Duration)
	case c.WarmUp < 0:
		return fmt.Errorf("warm-up %s: want 0 or more", c.WarmUp)
	case c.GroupCommitWait <= 0:
		return fmt.Errorf("group commit wait %s: want more than 0 (the off phase is run anyway)", c.GroupCommitWait)
	case c.PresellWorkers < 0:
		return fmt.Errorf("presell workers %d: want 0 (the server's default) or more", c.PresellWorkers)
	case c.IdleSockets < 0 || c.IdleSockets > maxIdleSockets:
		return fmt.Errorf("idle sockets %d: want 0…%d", c.IdleSockets, maxIdleSockets)
	case c.RecycleEvery < 0:
		return fmt.Errorf("recycle interval %s: want 0 (never) or more", c.RecycleEvery)
	}
	return nil
}

// Report is the outcome of a run.
type Report struct {
	cfg      Config
	on, off  *loadResult
	baseline *baselineResult
	idle     *idleResult // nil when skipped
}

// Run runs the presell benchmark and prints the report to out as each
// phase finishes. An error means the benchmark itself could not run; failed
// requests are in the report (see Report.Err).
func Run(ctx context.Context, cfg Config, out io.Writer) (*Report, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	prefix, cleanup, err := workPrefix(cfg.DB)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	log := serverLog(cfg.Log)
	rep := &Report{cfg: cfg}
	p := &printer{w: out}
	p.printf("greenlane bench presell — %d tablets × %s (after %s warm-up), demo lane DB, synchronous FULL\n",
		cfg.Tablets, cfg.Duration, cfg.WarmUp)
	p.machine("tablets and server share this process")
	load := func(name, path string, wait time.Duration, profile io.Writer) (*loadResult, error) {
		return runLoad(ctx, name, path, laneOptions{groupWait: wait, presellWorkers: cfg.PresellWorkers, log: log},
			cfg.Tablets, presellSale, loadConfig{warmUp: cfg.WarmUp, duration: cfg.Duration, recycleEvery: cfg.RecycleEvery, profile: profile})
	}
	if rep.on, err = load("group commit on", prefix+".gc-on.db", cfg.GroupCommitWait, cfg.CPUProfile); err != nil {
		return nil, err
	}
	p.load(rep.on)
	if rep.off, err = load("group commit off", prefix+".gc-off.db", 0, nil); err != nil {
		return nil, err
	}
	p.load(rep.off)
	if rep.baseline, err = runBaseline(ctx, prefix+".baseline.db", cfg); err != nil {
		return nil, err
	}
	p.printf("%-28s %5.0f sales/s  (%d sales, 1 transaction each, no sockets, no JSON)\n",
		"baseline:", rep.baseline.salesPerSec(), rep.baseline.sales)
	p.printf("ratios: on/off %.2f×   on/baseline %.2f×\n", rep.onOff(), rep.onBaseline())
	if cfg.IdleSockets > 0 {
		if rep.idle, err = measureIdle(ctx, prefix+".idle.db", cfg, log); err != nil {
			return nil, err
		}
		p.idle(rep.idle)
	}
	p.targets(rep)
	return rep, p.err
}

// loadConfig is the timing of a load.
type loadConfig struct {
	warmUp, duration time.Duration
	recycleEvery     time.Duration
	profile          io.Writer // a CPU profile of the window; nil: none
	// window opens (true) and closes the measuring window; nil: the
	// tablets' own loadStats.
	window func(open bool) error
}

// loadResult is what one load measured.
type loadResult struct {
	name          string
	groupWait     time.Duration
	window        time.Duration
	sales         int64
	requests      int64
	latency       *[numKinds]histogram
	errs          *tally
	tablets       int // tablets that connected
	tabletsWanted int
	writer        writerStats // over the window
	cpu           cpuUse      // over the window
	recycled      int64
}

func (r *loadResult) salesPerSec() float64 { return perSec(r.sales, r.window) }
func (r *loadResult) reqPerSec() float64   { return perSec(r.requests, r.window) }

// worstP99 is the highest p99 over the request kinds.
func (r *loadResult) worstP99() time.Duration {
	var worst time.Duration
	for k := range r.latency {
		worst = max(worst, r.latency[k].quantile(0.99))
	}
	return worst
}

// fill copies the tablets' figures in, once every tablet has stopped.
func (r *loadResult) fill(s *loadStats) {
	r.sales, r.requests, r.latency, r.errs = s.sales.Load(), s.requests.Load(), &s.latency, &s.errs
}

// errNoTablets ends a load in which not one tablet could log in.
var errNoTablets = errors.New("no tablet could connect")

// runLoad runs one load on a fresh demo DB: a key per tablet, the server,
// the tablets (warm-up, then the measured window), and the check that
// every acknowledged park is in the DB.
func runLoad(ctx context.Context, name, path string, opts laneOptions, tablets int, shape saleShape, c loadConfig) (*loadResult, error) {
	stats := &loadStats{}
	var res *loadResult
	err := withLane(ctx, path, opts, tablets, protocol.ScopePresell, stats, func(l *lane, keys []string) (err error) {
		res, err = drive(ctx, l, connectTablets(ctx, l.presellURL(), keys, stats), len(keys), stats, shape, c)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	res.name, res.groupWait = name, opts.groupWait
	res.fill(stats)
	return res, nil
}

// drive runs the tablets beside the ticket recycler through warm-up and
// window, and stops them; it returns once every tablet has finished its
// last sale.
func drive(ctx context.Context, l *lane, tablets []*tablet, wanted int, stats *loadStats, shape saleShape, c loadConfig) (*loadResult, error) {
	if len(tablets) == 0 {
		return nil, fmt.Errorf("%w: %s", errNoTablets, stats.errs.example())
	}
	loadCtx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	wait := runTablets(loadCtx, tablets, shape)
	var wg sync.WaitGroup
	rec := recycle(loadCtx, &wg, c.recycleEvery, l.write)
	if c.window == nil {
		c.window = func(open bool) error {
			stats.window.Store(map[bool]int32{true: windowOpen, false: windowClosed}[open])
			return nil
		}
	}
	res, err := measure(ctx, l, c)
	stopLoad()
	wait()
	wg.Wait()
	if err = errors.Join(err, rec.err); err != nil {
		return nil, err
	}
	res.tablets, res.tabletsWanted, res.recycled = len(tablets), wanted, rec.n.Load()
	return res, nil
}

// measure waits out the warm-up, then opens the window for the duration
// and reads the writer and the CPU over it.
func measure(ctx context.Context, l *lane, c loadConfig) (*loadResult, error) {
	if err := sleep(ctx, c.warmUp); err != nil {
		return nil, err
	}
	before := writerNow(l.Writer)
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
	res := &loadResult{window: time.Since(mark.at), cpu: mark.since(), writer: writerNow(l.Writer).since(before)}
	stopProfile()
	return res, err
}

// Err is nil when no request failed, busy errors aside (the lane asked to
// retry: they are reported, not failures). Otherwise it summarises the
// failures by phase and code, with an example.
func (r *Report) Err() error {
	var parts []string
	var total int64
	example := ""
	for _, res := range []*loadResult{r.on, r.off} {
		if res == nil || res.errs.total() == 0 {
			continue
		}
		total += res.errs.total()
		parts = append(parts, res.name+": "+res.errs.codes())
		if example == "" {
			example = res.errs.example()
		}
	}
	if total == 0 {
		return nil
	}
	return fmt.Errorf("%d requests failed (busy errors not counted): %s; e.g. %s",
		total, strings.Join(parts, "; "), example)
}

// load prints one load: throughput, errors, latency per kind and what the
// writer did.
func (p *printer) load(r *loadResult) {
	title := r.name + ":"
	if r.groupWait > 0 {
		title = fmt.Sprintf("%s (wait %s):", r.name, r.groupWait)
	}
	p.printf("%-28s %5.0f sales/s  %5.0f req/s  errors %d  busy %d\n",
		title, r.salesPerSec(), r.reqPerSec(), r.errs.total(), r.errs.busy())
	for k := range numKinds {
		p.latency(kindNames[k], &r.latency[k])
	}
	p.writer(r)
	if r.errs.total()+r.errs.busy() > 0 {
		p.examples("errors by code", r.errs)
	}
	p.tablets(r)
}

func (p *printer) tablets(r *loadResult) {
	if r.tablets < 1 || r.tablets != r.tabletsWanted {
		p.printf("   only %d of %d tablets connected\n", r.tablets, r.tabletsWanted)
	}
}

// writer prints the group-commit figures of a load.
func (p *printer) writer(r *loadResult) {
	if w := r.writer; w.commits > 0 {
		p.printf("   writer: %.0f commits/s, %.1f requests per commit, COMMIT %s avg; %d presells recycled\n",
			perSec(w.commits, r.window), float64(w.mutations)/float64(w.commits), ms(time.Duration(w.commitNS/w.commits)), r.recycled)
	}
}

func (rep *Report) onOff() float64 { return ratio(rep.on.salesPerSec(), rep.off.salesPerSec()) }

func (rep *Report) onBaseline() float64 {
	return ratio(rep.on.salesPerSec(), rep.baseline.salesPerSec())
}

// targets prints each target with ✓ or ✗.
func (p *printer) targets(rep *Report) {
	on := rep.on
	checks := []string{
		check(fmt.Sprintf("≥%d sales/s", targetSalesPerSec), on.salesPerSec() >= targetSalesPerSec),
		check(fmt.Sprintf("p99 ≤ %s", ms(targetP99)), on.worstP99() <= targetP99),
		check("0 errors", on.errs.total()+rep.off.errs.total() == 0),
		check(fmt.Sprintf("≥%.1f× baseline", targetBaselineRatio), rep.onBaseline() >= targetBaselineRatio),
		check(fmt.Sprintf("on/off ≥%.1f×", targetOnOffRatio), rep.onOff() >= targetOnOffRatio),
	}
	if rep.idle != nil {
		checks = append(checks, check(fmt.Sprintf("≤%d KB/socket", targetIdleBytes/1024), rep.idle.bytesPerSocket <= targetIdleBytes))
	}
	note := ""
	if rep.cfg.Tablets != targetTablets {
		note = fmt.Sprintf(" (set for %d tablets)", targetTablets)
	}
	p.printf("targets%s: %s\n", note, strings.Join(checks, ", "))
}
