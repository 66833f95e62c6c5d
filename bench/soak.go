package bench

// The soak benchmark (`greenlane bench soak`, issue 6): a crowd of presell
// tablets as fast as the lane answers, beside a second process writing the
// lane DB as the counter program does. Does the lane stay correct (no
// failure, no busy error reaching a tablet, the counter never locked out),
// and does it give back what the crowd cost (RSS and goroutines back to
// their baseline)? The tablets and the counter (soak_counter.go) run as
// `bench child` processes, so that this one's memory and goroutines are
// the server's.

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"runtime/pprof"
	"sync"
	"time"

	"github.com/greenlane-pos/greenlane/protocol"
	"github.com/greenlane-pos/greenlane/server"
)

// SoakConfig is one soak benchmark run. DefaultSoakConfig holds every
// default.
type SoakConfig struct {
	// Tablets is how many presell tablets run at once. Default 500.
	Tablets int
	Common
	// Counter runs the counter process beside the tablets. Default true.
	Counter bool
	// Settle is how long the server is left alone after the tablets have
	// disconnected before its memory and goroutines are read again.
	// Default 3s.
	Settle time.Duration
	// MemProfile, when set, receives a heap profile of this process taken
	// at the "after" reading: what the server still holds once the tablets
	// have gone, to find a leak by. Default nil.
	MemProfile io.Writer
}

// DefaultSoakConfig returns the defaults, which are the setting.
func DefaultSoakConfig() SoakConfig {
	c := SoakConfig{Common: defaultCommon(), Tablets: targetSoakTablets, Counter: true, Settle: 3 * time.Second}
	c.Duration, c.WarmUp = time.Minute, 2*time.Second
	return c
}

const (
	soakMemProfileRate = 4096 // bytes: the default 512 KB misses a few MB left behind
	// soakStartSettle lets a fresh server reach its idle state before the
	// baseline is read.
	soakStartSettle = 500 * time.Millisecond
)

func (c SoakConfig) validate() error {
	// Past the server's socket cap the extra tablets would be refused,
	// which is no soak.
	maxSockets := server.DefaultConfig().MaxSockets
	switch {
	case c.Tablets < 1 || c.Tablets > maxSockets:
		return fmt.Errorf("tablets %d: want 1…%d (the server's socket cap)", c.Tablets, maxSockets)
	case c.Settle < 0:
		return fmt.Errorf("settle %s: want 0 or more", c.Settle)
	}
	return nil
}

// SoakReport is the outcome of a run.
type SoakReport struct {
	cfg     SoakConfig
	load    *loadResult
	counter *counterResult // nil when no counter ran
	mem     memFigures
	leak    []goroutineDelta // goroutine groups that did not go away; nil when back
	// sqliteCache is the most SQLite's page caches may hold in this
	// process: a bound on what "outside Go" may keep without a leak.
	sqliteCache int64
}

// RunSoak runs the soak benchmark and prints the report to out. An error
// means the benchmark itself could not run; failed requests and missed
// targets are in the report (see SoakReport.Err).
func RunSoak(ctx context.Context, cfg SoakConfig, out io.Writer) (*SoakReport, error) {
	prefix, cleanup, log, p, err := cfg.begin(out, cfg.validate)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	if cfg.MemProfile != nil {
		runtime.MemProfileRate = soakMemProfileRate // before the lane starts, so all it allocates is sampled alike
	}
	p.soakHeader(cfg)
	rep := &SoakReport{cfg: cfg}
	stats := &loadStats{}
	err = withLane(ctx, prefix+".soak.db", laneOptions{groupWait: defaultWait, log: log}, cfg.Tablets,
		protocol.ScopePresell, stats, func(l *lane, keys []string) error { return rep.soakLane(ctx, l, keys, stats) })
	if err != nil {
		return nil, fmt.Errorf("soak: %w", err)
	}
	rep.load.fill(stats)
	p.soakReport(rep)
	return rep, p.err
}

// soakLane reads the server's baseline, runs the load, and reads the
// server again once the tablets have gone and it has settled. Every helper
// of the bench (sampler, recycler, pipes to the children) has ended by
// then, so the two readings count the same goroutines of the bench's own.
func (rep *SoakReport) soakLane(ctx context.Context, l *lane, keys []string, stats *loadStats) error {
	var err error
	if rep.sqliteCache, err = l.DB.PageCacheBound(ctx); err != nil {
		return err
	}
	if err := sleep(ctx, soakStartSettle); err != nil {
		return err
	}
	rep.mem.start = readServerSample(true)
	baseline := goroutineGroups()
	peak := startPeakSampler(time.Second)
	counter, err := startCounter(ctx, rep.cfg, l.DB.Path)
	if err == nil {
		err = rep.tablets(ctx, l, keys, stats)
	}
	if counter != nil {
		var cerr error
		rep.counter, cerr = stopCounter(counter)
		err = errors.Join(err, cerr)
	}
	// The end-of-load reading counts as a sample too, so that the peak is
	// never below it.
	rep.mem.peak = peak.stop().max(rep.mem.end)
	if err = errors.Join(err, sleep(ctx, rep.cfg.Settle)); err != nil {
		return err
	}
	rep.mem.after = readServerSample(true)
	rep.mem.freed = readFreedSample()
	if rep.cfg.MemProfile != nil {
		// The GCs of the readings above make the profile's in-use figures current.
		if err := pprof.Lookup("heap").WriteTo(rep.cfg.MemProfile, 0); err != nil {
			return fmt.Errorf("write the heap profile: %w", err)
		}
	}
	if !rep.mem.goroutinesBack() {
		rep.leak = diffGoroutines(baseline, goroutineGroups())
	}
	return nil
}

// tablets runs the tablets (in the tablets child) through warm-up and
// window beside the ticket recycler, reads the server at the end of the
// load, then disconnects them and collects their figures into stats.
func (rep *SoakReport) tablets(ctx context.Context, l *lane, keys []string, stats *loadStats) error {
	c, connected, err := startChild(ctx, rep.cfg.Child, "tablets", childOrder{URL: l.presellURL(), Keys: keys})
	if err != nil {
		return err
	}
	rctx, stopRecycler := context.WithCancel(ctx)
	var wg sync.WaitGroup
	rec := recycle(rctx, &wg, rep.cfg.RecycleEvery, l.write)
	if connected > 0 {
		order := func(open bool) error {
			return c.send(childOrder{Window: map[bool]string{true: "open", false: "close"}[open]})
		}
		rep.load, err = measure(ctx, l, loadConfig{warmUp: rep.cfg.WarmUp, duration: rep.cfg.Duration,
			profile: rep.cfg.CPUProfile, window: order})
		rep.mem.end = readServerSample(false)
	}
	res := soakClientsResult{Errs: &stats.errs}
	ferr := c.finish(&res)
	stopRecycler()
	wg.Wait()
	if err = errors.Join(err, ferr, rec.err); err != nil {
		return err
	}
	if connected == 0 {
		return fmt.Errorf("%w: %s", errNoTablets, stats.errs.example())
	}
	if err := res.into(stats); err != nil {
		return err
	}
	rep.load.name = fmt.Sprintf("soak (%d tablets)", rep.cfg.Tablets)
	rep.load.recycled, rep.load.tablets, rep.load.tabletsWanted = rec.n.Load(), connected, len(keys)
	return nil
}

// Err is nil when no request failed and every acknowledged park is in the
// DB. Busy errors are not in it, though "0 busy errors" is a target: a busy
// answer is the lane's documented "retry", a target missed (marked ✗), not
// a broken promise.
func (r *SoakReport) Err() error {
	if r.load == nil {
		return nil
	}
	return failures(" (busy errors not counted)", namedTally{r.load.name, r.load.errs})
}

// soakClientsResult is what the tablets measured, as the child sends it.
type soakClientsResult struct {
	Sales    int64                   `json:"sales"`
	Requests int64                   `json:"requests"`
	Parked   int64                   `json:"parked"`
	Latency  [numKinds]histogramJSON `json:"latency"`
	All      histogramJSON           `json:"all"`
	Errs     *tally                  `json:"errs"`
}

// into fills stats (whose tally already holds the child's) from the result.
func (r *soakClientsResult) into(s *loadStats) error {
	s.sales.Store(r.Sales)
	s.requests.Store(r.Requests)
	s.parked.Store(r.Parked)
	for k := range s.latency {
		if err := s.latency[k].load(r.Latency[k]); err != nil {
			return fmt.Errorf("%s latency: %w", kindNames[k], err)
		}
	}
	return s.all.load(r.All)
}

// tabletsChild connects the tablets, says how many did, runs them
// following the window orders until the orders end, and returns what they
// measured.
func tabletsChild(ctx context.Context, o childOrder, ready func(int) error, orders <-chan childOrder) (any, error) {
	stats := &loadStats{}
	tablets := connectTablets(ctx, o.URL, o.Keys, stats)
	if err := ready(len(tablets)); err != nil {
		return nil, err
	}
	loadCtx, stop := context.WithCancel(ctx)
	defer stop()
	wait := runTablets(loadCtx, tablets, presellSale)
	var orderErr error
	for o := range orders {
		switch o.Window {
		case "open":
			stats.window.Store(windowOpen)
		case "close":
			stats.window.Store(windowClosed)
		default:
			orderErr = cmp.Or(orderErr, fmt.Errorf("unknown order %+v", o))
		}
	}
	stop()
	wait()
	if orderErr != nil {
		return nil, orderErr
	}
	res := &soakClientsResult{Sales: stats.sales.Load(), Requests: stats.requests.Load(), Parked: stats.parked.Load(), Errs: &stats.errs}
	for k := range stats.latency {
		res.Latency[k] = stats.latency[k].export()
	}
	res.All = stats.all.export()
	return res, nil
}
