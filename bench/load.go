package bench

import (
	"context"
	"errors"
	"fmt"
	"runtime/pprof"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/greenlane-pos/greenlane/lanedb"
	"github.com/greenlane-pos/greenlane/protocol"
)

// The measuring window of a load phase: requests that finish during the
// warm-up or after the end are not timed, but their errors still count.
const (
	windowWarmUp int32 = iota
	windowOpen
	windowClosed
)

// errNoTablets ends a phase in which not one tablet could log in.
var errNoTablets = errors.New("no tablet could connect")

// busyLabel starts the sample message of a busy error.
const busyLabel = "busy, "

// maxErrorSamples bounds the error messages kept for the summary.
const maxErrorSamples = 5

// loadStats is what the tablets of one phase record, shared by all of them.
type loadStats struct {
	window   atomic.Int32
	latency  [numKinds]histogram
	requests atomic.Int64 // successful replies inside the window
	sales    atomic.Int64 // parks answered OK inside the window
	parked   atomic.Int64 // parks answered OK over the whole run

	mu      sync.Mutex
	errors  map[string]int64 // real failures by code
	busy    int64            // unavailable / locked: the lane asked to retry
	samples []string
}

func newLoadStats() *loadStats { return &loadStats{errors: map[string]int64{}} }

func (s *loadStats) inWindow() bool { return s.window.Load() == windowOpen }

func (s *loadStats) succeeded(k kind, d time.Duration) {
	if s.inWindow() {
		s.latency[k].record(d)
		s.requests.Add(1)
	}
}

func (s *loadStats) saleDone() {
	s.parked.Add(1)
	if s.inWindow() {
		s.sales.Add(1)
	}
}

// failed counts an error reply to a request of kind k.
func (s *loadStats) failed(k kind, e *protocol.Error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	label := ""
	if isBusy(e) {
		s.busy++
		label = busyLabel
	} else {
		s.errors[string(e.Code)]++
	}
	s.sample(fmt.Sprintf("%s%s: %s: %s", label, kindNames[k], e.Code, e.Message))
}

// broken counts a tablet whose socket failed (it stops for the phase).
func (s *loadStats) broken(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.errors["connection"]++
	s.sample(err.Error())
}

// sample keeps the first few distinct error messages.
func (s *loadStats) sample(msg string) {
	if len(s.samples) < maxErrorSamples && !slices.Contains(s.samples, msg) {
		s.samples = append(s.samples, msg)
	}
}

// loadSpec is one load phase: a fresh DB and a server with these options.
type loadSpec struct {
	name       string
	dbPath     string
	groupWait  time.Duration // 0: group commit off
	cpuProfile bool          // profile the measuring window
}

// loadResult is what one load phase measured.
type loadResult struct {
	name          string
	groupWait     time.Duration
	window        time.Duration
	sales         int64
	requests      int64
	latency       *[numKinds]histogram
	errors        map[string]int64
	busy          int64
	samples       []string
	tablets       int // tablets that connected
	tabletsWanted int
	commits       int64
	mutations     int64
	commitNS      int64
	recycled      int64
}

func (r *loadResult) salesPerSec() float64 { return perSec(r.sales, r.window) }
func (r *loadResult) reqPerSec() float64   { return perSec(r.requests, r.window) }

// errorCount is the number of real (non-busy) failures.
func (r *loadResult) errorCount() int64 {
	var n int64
	for _, c := range r.errors {
		n += c
	}
	return n
}

// worstP99 is the highest p99 over the request kinds.
func (r *loadResult) worstP99() time.Duration {
	var worst time.Duration
	for k := range r.latency {
		worst = max(worst, r.latency[k].quantile(0.99))
	}
	return worst
}

func perSec(n int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

// runLoad runs one phase: fresh DB, a key per tablet, the server, the
// tablets (warm-up, then the measured window), and a check that every
// acknowledged park is in the DB.
func (b *benchmark) runLoad(ctx context.Context, spec loadSpec) (*loadResult, error) {
	db, err := openDemoDB(ctx, spec.dbPath)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	keys, err := createPresellKeys(ctx, db, "bench-tablet", b.cfg.Tablets)
	if err != nil {
		return nil, err
	}
	wopts := lanedb.DefaultWriterOptions()
	wopts.MaxWait = spec.groupWait
	l, err := startLane(ctx, db, laneOptions{writer: wopts, presellWorkers: b.cfg.PresellWorkers, log: b.log})
	if err != nil {
		return nil, err
	}
	stats := newLoadStats()
	res, runErr := b.drive(ctx, l, keys, stats, spec)
	if err := l.stop(); err != nil && runErr == nil {
		runErr = err
	}
	if runErr != nil {
		return nil, fmt.Errorf("%s: %w", spec.name, runErr)
	}
	if err := verifyParked(ctx, db, stats); err != nil {
		return nil, err
	}
	res.fill(stats)
	return res, nil
}

// drive connects the tablets, runs them through warm-up and window, and
// stops them; it returns once every tablet has finished its last sale.
func (b *benchmark) drive(ctx context.Context, l *lane, keys []string, stats *loadStats, spec loadSpec) (*loadResult, error) {
	tablets := connectTablets(ctx, l.presellURL(), keys, stats)
	if len(tablets) == 0 {
		return nil, fmt.Errorf("%w: %s", errNoTablets, firstSample(stats))
	}
	loadCtx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	var wg sync.WaitGroup
	for _, t := range tablets {
		wg.Go(func() {
			defer t.close()
			if err := t.run(loadCtx); err != nil {
				stats.broken(err)
			}
		})
	}
	recycled := b.startRecycler(loadCtx, &wg, func(ctx context.Context, fn lanedb.Mutation) error { return l.writer.Do(ctx, fn) })

	res, err := b.measure(ctx, l.writer, stats, spec)
	stopLoad()
	wg.Wait() // every tablet finishes the sale it started
	if err != nil {
		return nil, err
	}
	res.tablets, res.tabletsWanted, res.recycled = len(tablets), len(keys), recycled.Load()
	return res, nil
}

// measure waits out the warm-up, then opens the window for the duration
// and reads the writer's counters over it.
func (b *benchmark) measure(ctx context.Context, w *lanedb.Writer, stats *loadStats, spec loadSpec) (*loadResult, error) {
	if err := sleep(ctx, b.cfg.WarmUp); err != nil {
		return nil, err
	}
	ws := w.Stats()
	batches, mutations, commitNS := ws.Batches.Load(), ws.Mutations.Load(), ws.CommitNS.Load()
	stopProfile, err := b.startProfile(spec.cpuProfile)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	stats.window.Store(windowOpen)
	err = sleep(ctx, b.cfg.Duration)
	stats.window.Store(windowClosed)
	window := time.Since(start)
	stopProfile()
	if err != nil {
		return nil, err
	}
	return &loadResult{
		name: spec.name, groupWait: spec.groupWait, window: window,
		commits:   ws.Batches.Load() - batches,
		mutations: ws.Mutations.Load() - mutations,
		commitNS:  ws.CommitNS.Load() - commitNS,
	}, nil
}

// fill copies the tablets' figures into the result. Call it only after
// every tablet has stopped.
func (r *loadResult) fill(s *loadStats) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r.sales, r.requests, r.latency = s.sales.Load(), s.requests.Load(), &s.latency
	r.errors, r.busy, r.samples = s.errors, s.busy, s.samples
}

// verifyParked checks that every park a tablet saw succeed is a submitted
// presell in the DB (a reply promises a commit), and counts a difference
// as an error: a lost or an unacknowledged sale.
func verifyParked(ctx context.Context, db *lanedb.DB, s *loadStats) error {
	inDB, err := countPresells(ctx, db)
	if err != nil {
		return err
	}
	if acked := s.parked.Load(); inDB != acked {
		s.mu.Lock()
		s.errors["verify"]++
		s.sample(fmt.Sprintf("verify: tablets saw %d parks succeed, the DB holds %d submitted presells", acked, inDB))
		s.mu.Unlock()
	}
	return nil
}

// connectTablets dials and logs in every tablet at once. A tablet that
// cannot connect is counted as a connection error and left out.
func connectTablets(ctx context.Context, url string, keys []string, stats *loadStats) []*tablet {
	out := make([]*tablet, len(keys))
	var wg sync.WaitGroup
	for i, key := range keys {
		wg.Go(func() {
			t, err := dialTablet(ctx, url, key, uint64(i+1), stats)
			if err != nil {
				stats.broken(fmt.Errorf("tablet %d: %w", i+1, err))
				return
			}
			out[i] = t
		})
	}
	wg.Wait()
	tablets := out[:0]
	for _, t := range out {
		if t != nil {
			tablets = append(tablets, t)
		}
	}
	return tablets
}

// startRecycler runs recycleLoop beside the load (when enabled) and
// returns where its count ends up once wg is done.
func (b *benchmark) startRecycler(ctx context.Context, wg *sync.WaitGroup, write writeFunc) *atomic.Int64 {
	var total atomic.Int64
	if b.cfg.RecycleEvery <= 0 {
		return &total
	}
	wg.Go(func() {
		n, err := recycleLoop(ctx, b.cfg.RecycleEvery, write)
		total.Store(n)
		if err != nil {
			b.log.Warn("ticket recycler stopped", "err", err)
		}
	})
	return &total
}

// startProfile starts the CPU profile when this phase is the profiled one.
func (b *benchmark) startProfile(on bool) (stop func(), err error) {
	if !on || b.cfg.CPUProfile == nil {
		return func() {}, nil
	}
	if err := pprof.StartCPUProfile(b.cfg.CPUProfile); err != nil {
		return nil, fmt.Errorf("start CPU profile: %w", err)
	}
	return pprof.StopCPUProfile, nil
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func firstSample(s *loadStats) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.samples) == 0 {
		return "no error recorded"
	}
	return s.samples[0]
}

// sortedCodes lists error codes by count, most first.
func sortedCodes(m map[string]int64) []string {
	codes := make([]string, 0, len(m))
	for c := range m {
		codes = append(codes, c)
	}
	sort.Slice(codes, func(i, j int) bool {
		if m[codes[i]] != m[codes[j]] {
			return m[codes[i]] > m[codes[j]]
		}
		return codes[i] < codes[j]
	})
	return codes
}
