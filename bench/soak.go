package bench

// The soak benchmark (`greenlane bench soak`, issue 6) keeps the lane busy
// for a long stretch: a crowd of presell tablets, each a closed loop of
// create → 3 × add_product → set_customer → park as fast as the lane
// answers, while a second process writes the same lane DB as the counter
// program does. It asks two things: does the lane stay correct under it (no
// failed request, no busy error reaching a tablet, the counter never locked
// out), and does it give back what the crowd cost once the tablets have
// gone (the server's RSS and goroutines back to their baseline: no leak).
//
// Three processes take part, so that this one's memory and goroutines are
// the server's:
//   - this one: the lane server (wired as `greenlane serve` wires it), the
//     ticket recycler (see recycleTickets) and the measuring;
//   - `greenlane bench soak-clients`: the tablets; it sends back its latency
//     histograms and error counts as JSON (soak_clients.go);
//   - `greenlane bench counter-proc`: a short BEGIN IMMEDIATE transaction on
//     the lane DB file every 20 ms (soak_counter.go).

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"time"

	"github.com/greenlane-pos/greenlane/lanedb"
	"github.com/greenlane-pos/greenlane/server"
)

// SoakConfig is one soak benchmark run. DefaultSoakConfig holds every
// default.
type SoakConfig struct {
	// Tablets is how many presell tablets run at once. Default 500.
	Tablets int
	// Duration is how long the load is measured. Default 60s.
	Duration time.Duration
	// WarmUp runs before the measurement and is not counted. Default 2s.
	WarmUp time.Duration
	// DB is where the lane DB goes: a folder, or a path prefix
	// (PREFIX.soak.db). A file of that name is replaced; the DB is kept.
	// Default "": a temporary folder, removed at the end.
	DB string
	// Counter runs the counter process beside the tablets. Default true.
	Counter bool
	// Settle is how long the server is left alone after the tablets have
	// disconnected before its memory and goroutines are read again.
	// Default 3s.
	Settle time.Duration
	// SoakClients makes the command of the child process that runs the
	// tablets (`greenlane bench soak-clients`). Default nil: the tablets run
	// in this process, and their memory and goroutines are counted too.
	SoakClients func(ctx context.Context) *exec.Cmd
	// CounterProc makes the command of the counter process (`greenlane
	// bench counter-proc --db PATH`) for the lane DB at path. Default nil:
	// the same loop runs on a goroutine of this process, on a connection of
	// its own (SQLite tells it from the lane's writer all the same).
	CounterProc func(ctx context.Context, path string) *exec.Cmd
	// CPUProfile, when set, receives a CPU profile of the measured window
	// (this process: the server's side). Default nil.
	CPUProfile io.Writer
	// MemProfile, when set, receives a heap profile of this process taken
	// at the "after" reading: what the server still holds once the tablets
	// have gone, to find a leak by. Default nil.
	MemProfile io.Writer
	// Log receives the server's warnings and errors. Default nil: dropped.
	Log io.Writer
}

// DefaultSoakConfig returns the defaults, which are the setting.
func DefaultSoakConfig() SoakConfig {
	return SoakConfig{
		Tablets:  targetSoakTablets,
		Duration: time.Minute,
		WarmUp:   2 * time.Second,
		Counter:  true,
		Settle:   3 * time.Second,
	}
}

// soakRecycleEvery is how often submitted presells are voided (see
// recycleTickets): at a few hundred sales a second the 9,999 tickets would
// otherwise run out within a minute.
const soakRecycleEvery = 250 * time.Millisecond

// soakMemProfileRate is the heap profile's sampling interval, in bytes,
// when one is asked for.
const soakMemProfileRate = 4096

// soakStartSettle lets the freshly started server reach its idle state
// (background goroutines started, first statements prepared) before the
// baseline is read.
const soakStartSettle = 500 * time.Millisecond

func (c SoakConfig) validate() error {
	// Past the server's socket cap the extra tablets would be refused,
	// which is no soak.
	maxSockets := server.DefaultConfig().MaxSockets
	switch {
	case c.Tablets < 1 || c.Tablets > maxSockets:
		return fmt.Errorf("tablets %d: want 1…%d (the server's socket cap)", c.Tablets, maxSockets)
	case c.Duration <= 0:
		return fmt.Errorf("duration %s: want more than 0", c.Duration)
	case c.WarmUp < 0:
		return fmt.Errorf("warm-up %s: want 0 or more", c.WarmUp)
	case c.Settle < 0:
		return fmt.Errorf("settle %s: want 0 or more", c.Settle)
	}
	return nil
}

// SoakReport is the outcome of a run.
type SoakReport struct {
	cfg     SoakConfig
	load    *loadResult
	stats   *loadStats     // the tablets' figures, as the clients sent them
	yields  int64          // writer pauses left for the counter in the window
	counter *counterResult // nil when no counter ran
	mem     memFigures
	leak    []goroutineDelta // goroutine groups that did not go away; nil when back
	// sqliteCache is the most SQLite's page caches may hold in this
	// process: a bound on what "outside Go" may keep without a leak.
	sqliteCache int64
}

// soak is one run in progress.
type soak struct {
	cfg SoakConfig
	log *slog.Logger // the in-process server's logger: warnings and errors only
}

// RunSoak runs the soak benchmark and prints the report to out. An error
// means the benchmark itself could not run; failed requests and missed
// targets are in the report (see SoakReport.Err).
func RunSoak(ctx context.Context, cfg SoakConfig, out io.Writer) (*SoakReport, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	prefix, cleanup, err := workPrefix(cfg.DB)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	if cfg.MemProfile != nil {
		// The default samples one allocation per 512 KB: too coarse to see
		// a few MB left behind. Set before the lane starts, so that what
		// it allocates is sampled alike.
		runtime.MemProfileRate = soakMemProfileRate
	}
	s := &soak{cfg: cfg, log: serverLog(cfg.Log)}
	p := &printer{w: out}
	p.soakHeader(cfg)
	rep, err := s.run(ctx, prefix+".soak.db")
	if err != nil {
		return nil, err
	}
	p.soakReport(rep)
	return rep, p.err
}

// run builds the lane on a fresh demo DB, soaks it, and checks that every
// park a tablet saw succeed is in the DB.
func (s *soak) run(ctx context.Context, path string) (*SoakReport, error) {
	db, err := openDemoDB(ctx, path)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	keys, err := createPresellKeys(ctx, db, "bench-soak", s.cfg.Tablets)
	if err != nil {
		return nil, err
	}
	l, err := startLane(ctx, db, laneOptions{writer: lanedb.DefaultWriterOptions(), log: s.log})
	if err != nil {
		return nil, err
	}
	rep, runErr := s.soakLane(ctx, l, keys)
	if err := l.stop(); err != nil && runErr == nil {
		runErr = err
	}
	if runErr != nil {
		return nil, fmt.Errorf("soak: %w", runErr)
	}
	if err := verifyParked(ctx, db, rep.stats); err != nil {
		return nil, err
	}
	rep.load.fill(rep.stats)
	return rep, nil
}

// soakLane reads the server's baseline, runs the load, and reads the
// server again once the tablets have gone and it has settled. Every helper
// of the bench (sampler, recycler, pipes to the children) has ended by
// then, so the two readings count the same goroutines of the bench's own.
func (s *soak) soakLane(ctx context.Context, l *lane, keys []string) (*SoakReport, error) {
	rep := &SoakReport{cfg: s.cfg}
	var err error
	if rep.sqliteCache, err = l.DB.PageCacheBound(ctx); err != nil {
		return nil, err
	}
	if err := sleep(ctx, soakStartSettle); err != nil {
		return nil, err
	}
	rep.mem.start = readServerSample(true)
	baseline := goroutineGroups()
	if err := s.load(ctx, l, keys, rep); err != nil {
		return nil, err
	}
	if err := sleep(ctx, s.cfg.Settle); err != nil {
		return nil, err
	}
	rep.mem.after = readServerSample(true)
	rep.mem.freed = readFreedSample()
	if s.cfg.MemProfile != nil {
		// The GCs of the readings above make the profile's in-use figures current.
		if err := pprof.Lookup("heap").WriteTo(s.cfg.MemProfile, 0); err != nil {
			return nil, fmt.Errorf("write the heap profile: %w", err)
		}
	}
	if !rep.mem.goroutinesBack() {
		rep.leak = diffGoroutines(baseline, goroutineGroups())
	}
	return rep, nil
}

// load runs the counter process and the tablets, sampling the server's
// peak, and returns once both children have ended: the tablets'
// sockets are closed by then.
func (s *soak) load(ctx context.Context, l *lane, keys []string, rep *SoakReport) error {
	peak := startPeakSampler(time.Second)
	// The end-of-load reading counts as a sample too, so that the peak
	// is never below it.
	defer func() { rep.mem.peak = peak.stop().max(rep.mem.end) }()
	counter, err := s.startCounter(ctx, l.DB.Path)
	if err != nil {
		return err
	}
	err = s.tablets(ctx, l, keys, rep)
	if counter != nil {
		var cerr error
		rep.counter, cerr = stopCounter(counter)
		err = errors.Join(err, cerr)
	}
	return err
}

// tablets runs the tablets through warm-up and window beside the ticket
// recycler, reads the server at the end of the load, then disconnects
// them and collects their figures.
func (s *soak) tablets(ctx context.Context, l *lane, keys []string, rep *SoakReport) error {
	clients, err := startSoakClients(ctx, s.cfg.SoakClients, soakRequest{URL: l.presellURL(), Keys: keys})
	if err != nil {
		return err
	}
	rctx, stopRecycler := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var recycled int64
	var recycleErr error
	wg.Go(func() {
		recycled, recycleErr = recycleLoop(rctx, soakRecycleEvery, func(ctx context.Context, fn lanedb.Mutation) error {
			return l.writer.Do(ctx, fn)
		})
	})
	if clients.connected > 0 {
		rep.load, rep.yields, err = s.window(ctx, l.writer, clients)
		rep.mem.end = readServerSample(false)
	}
	stats, ferr := clients.finish()
	stopRecycler()
	wg.Wait()
	if err = errors.Join(err, ferr); err != nil {
		return err
	}
	if clients.connected == 0 {
		return fmt.Errorf("%w: %s", errNoTablets, firstSample(stats))
	}
	if recycleErr != nil {
		return fmt.Errorf("ticket recycler: %w", recycleErr)
	}
	rep.stats = stats
	rep.load.recycled, rep.load.tablets, rep.load.tabletsWanted = recycled, clients.connected, len(keys)
	return nil
}

// window waits out the warm-up, then has the clients time their requests
// for the duration, and reads the writer's counters over the same span.
func (s *soak) window(ctx context.Context, w *lanedb.Writer, clients *soakClients) (*loadResult, int64, error) {
	if err := sleep(ctx, s.cfg.WarmUp); err != nil {
		return nil, 0, err
	}
	ws := w.Stats()
	batches, mutations, commitNS, yields := ws.Batches.Load(), ws.Mutations.Load(), ws.CommitNS.Load(), ws.Yields.Load()
	stopProfile, err := s.startProfile()
	if err != nil {
		return nil, 0, err
	}
	defer stopProfile()
	start := time.Now()
	if err := clients.order("open"); err != nil {
		return nil, 0, err
	}
	err = sleep(ctx, s.cfg.Duration)
	if oerr := clients.order("close"); err == nil {
		err = oerr
	}
	window := time.Since(start)
	if err != nil {
		return nil, 0, err
	}
	return &loadResult{
		name:      fmt.Sprintf("soak (%d tablets)", s.cfg.Tablets),
		window:    window,
		commits:   ws.Batches.Load() - batches,
		mutations: ws.Mutations.Load() - mutations,
		commitNS:  ws.CommitNS.Load() - commitNS,
	}, ws.Yields.Load() - yields, nil
}

// startProfile starts the CPU profile of the window when one is wanted.
func (s *soak) startProfile() (stop func(), err error) {
	if s.cfg.CPUProfile == nil {
		return func() {}, nil
	}
	if err := pprof.StartCPUProfile(s.cfg.CPUProfile); err != nil {
		return nil, fmt.Errorf("start CPU profile: %w", err)
	}
	return pprof.StopCPUProfile, nil
}

// Err is nil when no request failed and every acknowledged park is in the
// DB. Otherwise it summarises the failures by code, with an example.
//
// Busy errors are not in it, although "0 busy errors reaching clients" is
// one of the soak's targets: as in the other benches the exit status says
// whether the lane broke a promise (a wrong or missing answer, a dropped
// socket, a lost sale), while a busy error is the lane's documented answer
// under pressure ("retry"), which a tablet survives. It is a target missed,
// like a memory figure that did not come back, and the report marks it ✗.
func (r *SoakReport) Err() error {
	res := r.load
	if res == nil || res.errorCount() == 0 {
		return nil
	}
	example := ""
	for _, s := range res.samples {
		if example == "" && !strings.HasPrefix(s, busyLabel) {
			example = s
		}
	}
	return fmt.Errorf("%d requests failed (busy errors not counted): %s; e.g. %s",
		res.errorCount(), codeSummary(res.errors), example)
}
