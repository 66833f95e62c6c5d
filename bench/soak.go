package bench

// The soak benchmark (issue 6): a crowd of presell tablets as fast as the
// lane answers, beside a second process writing the lane DB as the counter
// program does. Does the lane stay correct (no failure, no busy error
// reaching a tablet, the counter never locked out), and does it give back
// what the crowd cost (RSS and goroutines back to their baseline)? The
// tablets and the counter run as `bench child` processes, so that this
// one's memory and goroutines are the server's.

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/pprof/profile"
	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/greenlane-pos/greenlane/lanedb"
	"github.com/greenlane-pos/greenlane/protocol"
	"github.com/greenlane-pos/greenlane/server"
)

// SoakConfig is one soak benchmark run.
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
	// MemProfile receives a heap profile of this process taken at the
	// "after" reading: what the server still holds once the tablets have
	// gone, to find a leak by. Default nil.
	MemProfile io.Writer
}

// targetSoakTablets is issue 6's setting: 500 tablets for 60 s on this
// (2-core) machine, with a counter process writing the same lane DB.
const targetSoakTablets = 500

// What "back to baseline" allows once the tablets have gone. Goroutines
// come and go by ones and twos on an idle server (a connection reaped, a
// timer's goroutine); a leak grows with the tablets. RSS keeps some of
// what the load touched: the Go heap's free spans until the scavenger
// returns them (10% or 8 MB covers that), and SQLite's page caches, now
// warm (allowed up to their fixed bound). A leak of a few KB per sale over
// a minute fits in neither.
const (
	goroutineSlack = 2
	rssSlackShare  = 0.10
	rssSlackBytes  = 8 << 20
)

func DefaultSoakConfig() SoakConfig {
	c := SoakConfig{Common: defaultCommon(), Tablets: targetSoakTablets, Counter: true, Settle: 3 * time.Second}
	c.Duration, c.WarmUp = time.Minute, 2*time.Second
	return c
}

func (c SoakConfig) validate() error {
	// Past the server's socket cap the extra tablets would be refused,
	// which is no soak.
	return errors.Join(atLeast("settle", c.Settle, 0, "0 or more"),
		inRange("tablets", c.Tablets, 1, server.DefaultConfig().MaxSockets, " (the server's socket cap)"))
}

// SoakReport is the outcome of a run.
type SoakReport struct {
	cfg     SoakConfig
	load    *loadResult
	counter *counterResult // nil when no counter ran
	mem     [numReadings]serverSample
	leak    []goroutineDelta // goroutine stacks that did not go away; nil when back
	// sqliteCache is the most SQLite's page caches may hold in this
	// process: what may stay outside Go without a leak.
	sqliteCache int64
}

// The server's readings.
const (
	memStart = iota // server up, no clients, after GC
	memPeak         // the largest 1 s sample during the load
	memEnd          // as the window closed, tablets still connected
	memAfter        // tablets gone, settled, after GC
	memFreed        // then after debug.FreeOSMemory
	numReadings
)

// RunSoak runs the soak benchmark and prints the report to out. An error
// means it could not run; failed requests are in SoakReport.Err.
func RunSoak(ctx context.Context, cfg SoakConfig, out io.Writer) (*SoakReport, error) {
	prefix, cleanup, log, p, err := cfg.begin(out, cfg.validate)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	if cfg.MemProfile != nil {
		// Before the lane starts, so that all it allocates is sampled
		// alike; the default 512 KB misses a few MB left behind.
		runtime.MemProfileRate = 4096
	}
	counter := "no counter process"
	if cfg.Counter {
		counter = fmt.Sprintf("a counter process writes the lane DB every %s", counterEvery)
	}
	p.printf("greenlane bench soak — %d presell tablets × %s (after %s warm-up), each create → %d × add_product → set_customer → park as fast as the lane answers; %s; demo lane DB, %s\n",
		cfg.Tablets, cfg.Duration, cfg.WarmUp, linesPerSale, counter, durability(prefix))
	where := "server in this process, tablets in a child process"
	if cfg.Child == nil {
		where = "server in this process, tablets in this process (their memory and goroutines are counted too)"
	}
	switch {
	case cfg.Counter && cfg.Child == nil:
		where += ", counter on a goroutine of this process (its own connection)"
	case cfg.Counter:
		where += ", counter in another"
	}
	p.machine(where + loadAverage("start"))
	rep, stats := &SoakReport{cfg: cfg}, &loadStats{}
	err = withLanes(ctx, prefix, "soak", 1, laneOptions{groupWait: defaultWait, log: log}, cfg.Tablets, protocol.ScopePresell, stats,
		func(ls []*lane, keys []string) error { return rep.soakLane(ctx, ls[0], keys, stats) })
	if err != nil {
		return nil, fmt.Errorf("soak: %w", err)
	}
	p.soakReport(rep)
	return rep, p.err
}

// soakLane reads the server's baseline, runs the load, and reads it again
// once the tablets have gone and it has settled; every helper of the
// bench's has ended by then, so that both count the same goroutines.
func (rep *SoakReport) soakLane(ctx context.Context, l *lane, keys []string, stats *loadStats) error {
	var err error
	if rep.sqliteCache, err = l.DB.PageCacheBound(ctx); err != nil && !errors.Is(err, lanedb.ErrNotOnPostgres) {
		return err
	}
	if err := sleep(ctx, 500*time.Millisecond); err != nil { // a fresh server settles before its baseline
		return err
	}
	rep.mem[memStart] = readServerSample(true)
	baseline := goroutineGroups()
	// The peak is read every second without a GC first: what the machine
	// had to hold, each figure's largest on its own.
	peak, stopPeak := readServerSample(false), make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for done := false; !done; peak = peak.max(readServerSample(false)) {
			select {
			case <-stopPeak:
				done = true
			case <-t.C:
			}
		}
	})
	var counter *child
	if rep.cfg.Counter {
		counter, _, err = startChild(ctx, rep.cfg.Child, "counter", childOrder{DB: l.where})
	}
	if err == nil {
		err = rep.tablets(ctx, l, keys, stats)
	}
	if counter != nil {
		rep.counter = &counterResult{}
		err = errors.Join(err, counter.finish(rep.counter))
	}
	close(stopPeak)
	wg.Wait()
	rep.mem[memPeak] = peak.max(rep.mem[memEnd]) // never below the end of the load
	if err = errors.Join(err, sleep(ctx, rep.cfg.Settle)); err != nil {
		return err
	}
	rep.mem[memAfter], rep.mem[memFreed] = readServerSample(true), readFreedSample()
	if rep.cfg.MemProfile != nil {
		// The readings' GCs make the profile's in-use figures current.
		if err := pprof.Lookup("heap").WriteTo(rep.cfg.MemProfile, 0); err != nil {
			return fmt.Errorf("write the heap profile: %w", err)
		}
	}
	if !rep.goroutinesBack() {
		rep.leak = diffGoroutines(baseline, goroutineGroups())
	}
	return nil
}

// tablets runs the tablets' child through warm-up and window beside the
// recycler, reads the server as the load ends, then takes their figures.
func (rep *SoakReport) tablets(ctx context.Context, l *lane, keys []string, stats *loadStats) error {
	c, connected, err := startChild(ctx, rep.cfg.Child, "tablets", childOrder{URL: l.presellURL(), Keys: keys})
	if err != nil {
		return err
	}
	rctx, stopRecycler := context.WithCancel(ctx)
	var wg sync.WaitGroup
	rec := recycle(rctx, &wg, rep.cfg.RecycleEvery, l)
	if connected > 0 {
		window := func(open bool) error {
			return c.send(childOrder{Window: map[bool]string{true: "open", false: "close"}[open]})
		}
		rep.load, err = measure(ctx, []*lane{l}, loadConfig{warmUp: rep.cfg.WarmUp, duration: rep.cfg.Duration, profile: rep.cfg.CPUProfile}, window)
		rep.mem[memEnd] = readServerSample(false)
	}
	ferr := c.finish(stats)
	stopRecycler()
	wg.Wait()
	if err = errors.Join(err, ferr, rec.err); err != nil {
		return err
	}
	if connected == 0 {
		return fmt.Errorf("%w: %s", errNoTablets, stats.Errs.example())
	}
	rep.load.loadStats, rep.load.name = stats, fmt.Sprintf("soak (%d tablets)", rep.cfg.Tablets)
	rep.load.recycled, rep.load.tablets, rep.load.tabletsWanted = rec.n.Load(), connected, len(keys)
	rep.load.synchronous, rep.load.durable, err = l.synchronous(ctx)
	return err
}

// Err is nil when no request failed and every acknowledged park is in
// the DB. Busy errors are not in it, though "0 busy errors" is a target:
// a busy answer is the lane's documented "retry", a target missed (✗),
// not a broken promise.
func (r *SoakReport) Err() error {
	if r.load == nil {
		return nil
	}
	return failures(" (busy errors not counted)", namedTally{r.load.name, &r.load.Errs})
}

// tabletsChild connects the tablets, says how many did, and runs them by
// the window orders until the orders end.
func tabletsChild(ctx context.Context, o childOrder, ready func(int) error, orders <-chan childOrder) (any, error) {
	stats := &loadStats{}
	tablets := connectTablets(ctx, []string{o.URL}, nil, o.Keys, stats)
	if err := ready(len(tablets)); err != nil {
		return nil, err
	}
	loadCtx, stop := context.WithCancel(ctx)
	defer stop()
	wait := runTablets(loadCtx, tablets, presellSale)
	var orderErr error
	for o := range orders {
		if o.Window != "open" && o.Window != "close" {
			orderErr = cmp.Or(orderErr, fmt.Errorf("unknown order %+v", o))
		}
		_ = stats.open(o.Window == "open")
	}
	stop()
	wait()
	return stats, orderErr
}

// serverSample is a reading of this process, which holds the server.
type serverSample struct {
	rss        uint64 // resident set (VmRSS); 0 where the system does not say
	goroutines int
	heapInuse  uint64 // Go heap spans in use
	stackInuse uint64 // goroutine stacks
	goHeld     uint64 // what the Go runtime holds from the system: Sys less HeapReleased
}

// outsideGo is the resident memory the Go runtime does not account for:
// SQLite's page caches and C heap (modernc's libc allocates outside the Go
// heap), the program's text, the lane DB's mapped -shm file. goHeld
// counts some address space never touched, so this is a lower bound.
func (s serverSample) outsideGo() int64 { return int64(s.rss) - int64(s.goHeld) }

func (s serverSample) max(o serverSample) serverSample {
	return serverSample{rss: max(s.rss, o.rss), goroutines: max(s.goroutines, o.goroutines),
		heapInuse: max(s.heapInuse, o.heapInuse), goHeld: max(s.goHeld, o.goHeld)}
}

// readServerSample reads the process. With gc, two full collections run
// first (the second frees what the first's finalizers released), so that
// the heap holds only what is live.
func readServerSample(gc bool) serverSample {
	if gc {
		runtime.GC()
		runtime.GC()
	}
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	s := serverSample{goroutines: runtime.NumGoroutine(), heapInuse: m.HeapInuse, stackInuse: m.StackInuse, goHeld: m.Sys - m.HeapReleased}
	if st, err := selfStat(); err == nil {
		s.rss = uint64(st.ResidentMemory())
	}
	return s
}

// readFreedSample reads the process after handing the Go heap's free
// pages back, which tells memory the runtime merely kept from memory in use.
func readFreedSample() serverSample {
	debug.FreeOSMemory()
	return readServerSample(false)
}

// rssAllowance is how far above the baseline RSS still counts as back:
// the slack, plus the SQLite page caches' fixed bound.
func (r *SoakReport) rssAllowance() uint64 {
	return max(uint64(float64(r.mem[memStart].rss)*rssSlackShare), rssSlackBytes) + uint64(max(r.sqliteCache, 0))
}

func (r *SoakReport) rssKnown() bool { return r.mem[memStart].rss > 0 && r.mem[memAfter].rss > 0 }

func (r *SoakReport) rssBack() bool {
	return r.rssKnown() && r.mem[memAfter].rss <= r.mem[memStart].rss+r.rssAllowance()
}

func (r *SoakReport) goroutinesBack() bool {
	d := r.mem[memAfter].goroutines - r.mem[memStart].goroutines
	return d >= -goroutineSlack && d <= goroutineSlack
}

// goroutineGroup is the goroutines that share one stack.
type goroutineGroup struct {
	count  int
	frames []string // "function file.go:line", innermost first
}

// goroutineGroups reads the goroutine profile by stack (its program
// counters), but for the caller's, which differs from call to call.
func goroutineGroups() map[string]goroutineGroup {
	var buf bytes.Buffer
	if err := pprof.Lookup("goroutine").WriteTo(&buf, 0); err != nil {
		return nil
	}
	prof, err := profile.Parse(&buf)
	if err != nil {
		return nil
	}
	groups := map[string]goroutineGroup{}
	for _, smp := range prof.Sample {
		var key strings.Builder
		var frames []string
		for _, loc := range smp.Location {
			fmt.Fprintf(&key, "%#x ", loc.Address)
			for _, l := range loc.Line { // innermost (inlined) first
				frames = append(frames, fmt.Sprintf("%s %s:%d", l.Function.Name, filepath.Base(l.Function.Filename), l.Line))
			}
		}
		if !slices.ContainsFunc(frames, func(f string) bool { return strings.HasPrefix(f, selfFrame+" ") }) {
			g := groups[key.String()]
			groups[key.String()] = goroutineGroup{count: g.count + int(smp.Value[0]), frames: frames}
		}
	}
	return groups
}

// selfFrame is goroutineGroups as its frames are named.
const selfFrame = "github.com/greenlane-pos/greenlane/bench.goroutineGroups"

// goroutineDelta is a stack whose goroutines grew (or shrank) in number.
type goroutineDelta struct {
	delta  int
	frames []string
}

// diffGoroutines lists the ten stacks whose count changed most.
func diffGoroutines(before, after map[string]goroutineGroup) []goroutineDelta {
	var out []goroutineDelta
	for key, g := range after {
		if d := g.count - before[key].count; d != 0 {
			out = append(out, goroutineDelta{delta: d, frames: g.frames})
		}
	}
	for key, g := range before {
		if _, ok := after[key]; !ok {
			out = append(out, goroutineDelta{delta: -g.count, frames: g.frames})
		}
	}
	abs := func(n int) int { return max(n, -n) }
	slices.SortFunc(out, func(a, b goroutineDelta) int {
		return cmp.Or(abs(b.delta)-abs(a.delta), strings.Compare(strings.Join(a.frames, ","), strings.Join(b.frames, ",")))
	})
	return out[:min(len(out), 10)]
}

// appFrames drops the runtime's own frames (where every goroutine parks)
// and keeps the first n of the rest.
func appFrames(frames []string, n int) []string {
	var out []string
	for _, f := range frames {
		if !strings.HasPrefix(f, "runtime.") && !strings.HasPrefix(f, "internal/") {
			if out = append(out, f); len(out) == n {
				break
			}
		}
	}
	if len(out) == 0 && len(frames) > 0 {
		return frames[:min(len(frames), n)]
	}
	return out
}

func (p *printer) soakReport(rep *SoakReport) {
	p.load(rep.load)
	lock, caches := "BEGIN IMMEDIATE", "SQLite's page caches, at most "+mb(rep.sqliteCache)
	if lanedb.IsPostgresURL(rep.cfg.DB) {
		lock, caches = "BEGIN, then the journal lock", "no SQLite page caches: PostgreSQL's are in its server"
		p.printf("   writer yields: left out on PostgreSQL (a yield is a pause for another process holding SQLite's one write lock; there, writers queue on the journal lock)\n")
	} else {
		p.printf("   writer yields: %d in the window (a pause left for another process writing the lane DB)\n", rep.load.writer.Yields)
	}
	if c := rep.counter; c != nil {
		elapsed, wait := time.Duration(c.ElapsedNS), "-"
		if h := &c.Wait; h.count() > 0 {
			wait = fmt.Sprintf("p50 %s  p99 %s  max %s", ms(h.quantile(0.5)), ms(h.quantile(0.99)), ms(h.maxValue()))
		}
		p.printf("counter process: %d transactions (%d sales, %d staff) in %s, %.1f/s; lock wait (%s) %s; slowest transaction %s; busy %d\n",
			c.Transactions, c.Sales, c.Staff, elapsed.Round(100*time.Millisecond), perSec(c.Transactions, elapsed),
			lock, wait, ms(time.Duration(c.SlowestTx)), c.Busy)
		if c.BusyExample != "" {
			p.printf("   e.g. %s\n", c.BusyExample)
		}
	}
	m := rep.mem
	p.printf("server process (this one: RSS = VmRSS, heap = Go HeapInuse):\n")
	labels := [numReadings]string{"start (server up, no clients, after GC)", "peak  (1 s samples over the load, each figure's max)",
		fmt.Sprintf("end   (window closed, %d tablets connected)", rep.load.tablets),
		fmt.Sprintf("after (tablets gone, %s settle, after GC)", rep.cfg.Settle), "      then debug.FreeOSMemory (for information)"}
	for i, s := range m {
		rss := "n/a"
		if s.rss > 0 {
			rss = mb(int64(s.rss))
		}
		p.printf("   %-54s RSS %9s  goroutines %5d  heap %9s\n", labels[i], rss, s.goroutines, mb(int64(s.heapInuse)))
	}
	start, after := m[memStart], m[memAfter]
	rss := "not known on this system ✗"
	if rep.rssKnown() {
		rss = fmt.Sprintf("%s (allowed +%s: %.0f%% of the baseline or %s, whichever is larger, plus %s) %s",
			signedMB(int64(after.rss)-int64(start.rss)), mb(int64(rep.rssAllowance())),
			100*rssSlackShare, mb(rssSlackBytes), caches, mark(rep.rssBack()))
	}
	p.printf("   back to baseline: RSS %s; goroutines %+d (allowed ±%d) %s\n",
		rss, after.goroutines-start.goroutines, goroutineSlack, mark(rep.goroutinesBack()))
	if rep.rssKnown() {
		p.printf("   RSS after − start by owner: Go runtime %s (heap in use %s), outside Go %s (%s; C heap; file maps)\n",
			signedMB(int64(after.goHeld)-int64(start.goHeld)), signedMB(int64(after.heapInuse)-int64(start.heapInuse)),
			signedMB(after.outsideGo()-start.outsideGo()), caches)
	}
	if len(rep.leak) > 0 {
		p.printf("   goroutines not back, by stack (after − start; runtime frames left out):\n")
		for _, g := range rep.leak {
			p.printf("     %+d  %s\n", g.delta, strings.Join(appFrames(g.frames, 6), " ← "))
		}
	}
	checks := []string{check("0 errors", rep.Err() == nil), check("0 busy errors reaching clients", rep.load.Errs.busy() == 0)}
	if c := rep.counter; c != nil {
		checks = append(checks, check("counter never locked out", c.Busy == 0))
	}
	checks = append(checks, check("RSS back to baseline", rep.rssBack()), check("goroutines back to baseline", rep.goroutinesBack()),
		check(rep.load.synchronous, rep.load.durable))
	note := ""
	if rep.cfg.Tablets != targetSoakTablets {
		note = fmt.Sprintf(", set for %d tablets", targetSoakTablets)
	}
	p.printf("targets (issue 6%s%s): %s\n", note, loadAverage("end"), strings.Join(checks, ", "))
}

func signedMB(n int64) string {
	if n < 0 {
		return "−" + mb(-n)
	}
	return "+" + mb(n)
}

// The counter child writes the lane DB as the lane's counter program does,
// from another OS process and through the database's own locking rather
// than greenlane's writer: a short transaction every counterEvery, in turn
// inserting a staff member and completing a one-line cash sale (as
// integration's counter process does). On SQLite that is BEGIN IMMEDIATE;
// on PostgreSQL, as docs/lanedb.md asks of a counter program there, BEGIN
// then the store-wide journal lock, which every lane's writer holds for
// each batch (so that the sale's MAX(sid) + 1 does not race a lane's).
// Either wait is the wait for the lanes' writers. A transaction that gives
// up on the lock after the busy timeout (the lane kept it 10 s) is counted
// and the loop goes on, since that is what the soak measures; any other
// error ends it.

// counterEvery is the counter's pace: a busy counter rings up a sale every
// few seconds, so this is generous, and frequent enough that the lane's
// writer sees another process writing all the time (see its yieldPolicy).
const counterEvery = 20 * time.Millisecond

// counterBusyTimeout is the counter's busy_timeout (lock_timeout on
// PostgreSQL), in milliseconds, as the counter program opens the lane DB.
const counterBusyTimeout = 10000

type counterResult struct {
	Transactions int64     `json:"transactions"` // committed
	Sales        int64     `json:"sales"`
	Staff        int64     `json:"staff"`
	Busy         int64     `json:"busy"` // gave up on the lock
	BusyExample  string    `json:"busy_example,omitempty"`
	Wait         histogram `json:"wait"`          // for the lanes' writers
	SlowestTx    int64     `json:"slowest_tx_ns"` // BEGIN to COMMIT
	ElapsedNS    int64     `json:"elapsed_ns"`
}

// counterChild is ready after its first transaction.
func counterChild(ctx context.Context, o childOrder, ready func(int) error, orders <-chan childOrder) (any, error) {
	conn, err := openCounterDB(o.DB)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	go func() {
		for range orders {
		}
		stop()
	}()
	res, start := &counterResult{}, time.Now()
	tick := time.NewTicker(counterEvery)
	defer tick.Stop()
	// A transaction is never interrupted half-way: stopping waits for it.
	txCtx, pg := context.WithoutCancel(ctx), lanedb.IsPostgresURL(o.DB)
	for n := 0; ; n++ {
		began := time.Now()
		tx, err := conn.BeginTxx(txCtx, nil) // BEGIN IMMEDIATE: waits for the write lock
		if err == nil && pg {
			_, err = tx.ExecContext(txCtx, `SELECT pg_advisory_xact_lock($1)`, lanedb.JournalLockKey) // likewise
		}
		res.Wait.record(time.Since(began))
		switch {
		case err != nil:
		case n%2 == 0:
			err = counterStaff(txCtx, tx, n)
		default:
			err = counterSale(txCtx, tx)
		}
		if tx != nil && err == nil {
			err = tx.Commit()
		} else if tx != nil {
			_ = tx.Rollback()
		}
		switch {
		case lanedb.IsBusy(err) || pgCode(err) == "55P03": // lock_not_available: lock_timeout passed
			res.Busy++
			res.BusyExample = cmp.Or(res.BusyExample, err.Error())
		case err != nil:
			return nil, fmt.Errorf("counter transaction %d: %w", n+1, err)
		default:
			res.SlowestTx = max(res.SlowestTx, int64(time.Since(began)))
			res.Transactions++
			res.Staff += int64(1 - n%2)
			res.Sales += int64(n % 2)
		}
		if n == 0 {
			if err := ready(1); err != nil {
				return nil, err
			}
		}
		select {
		case <-ctx.Done():
			res.ElapsedNS = int64(time.Since(start))
			return res, nil
		case <-tick.C:
		}
	}
}

// openCounterDB opens the lane DB as the counter program does: a
// connection of its own, WAL, a 10 s busy timeout, every transaction
// BEGIN IMMEDIATE; or a store database with a 10 s lock_timeout.
func openCounterDB(path string) (*sqlx.DB, error) {
	driver, dsn, where := "pgx", path, path
	if u, err := url.Parse(path); err == nil && lanedb.IsPostgresURL(path) {
		q := u.Query()
		q.Set("lock_timeout", strconv.Itoa(counterBusyTimeout)) // pgx passes it on as a setting
		u.RawQuery = q.Encode()
		dsn, where = u.String(), u.Redacted()
	} else {
		abs, err := filepath.Abs(path)
		if err != nil {
			return nil, fmt.Errorf("counter DB path %q: %w", path, err)
		}
		q := url.Values{"_txlock": {"immediate"}, "_pragma": {fmt.Sprintf("busy_timeout(%d)", counterBusyTimeout), "journal_mode(WAL)", "foreign_keys(1)"}}
		driver, dsn, where = "sqlite", (&url.URL{Scheme: "file", Path: abs}).String()+"?"+q.Encode(), abs
	}
	conn, err := sqlx.Open(driver, dsn)
	if err == nil {
		conn.SetMaxOpenConns(1)
		if err = conn.Ping(); err != nil {
			conn.Close()
		}
	}
	if err != nil {
		return nil, fmt.Errorf("open the lane DB %s: %w", where, err)
	}
	return conn, nil
}

func counterStaff(ctx context.Context, tx *sqlx.Tx, n int) error {
	physkey := uuid.NewString()
	if _, err := tx.ExecContext(ctx, tx.Rebind(`INSERT INTO staff (tid, physkey, name, firstname, lastname)
		VALUES ((SELECT COALESCE(MAX(tid), 0) + 1 FROM staff), ?, ?, 'Counter', 'Process')`),
		physkey, fmt.Sprintf("Counter Process %d", n)); err != nil {
		return fmt.Errorf("insert staff: %w", err)
	}
	res, err := tx.ExecContext(ctx, tx.Rebind(`UPDATE staff SET name = name || ' (temp)', active = 0 WHERE physkey = ?`), physkey)
	if err != nil {
		return fmt.Errorf("update staff: %w", err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return fmt.Errorf("update staff changed %d rows", n)
	}
	return nil
}

// counterSale rings up and completes a one-line cash sale (not a presell),
// numbered with the lane's next sid as the lane itself numbers sales.
func counterSale(ctx context.Context, tx *sqlx.Tx) error {
	now, physkey := time.Now(), uuid.NewString()
	local, utc := now.Format(time.DateTime), now.UTC().Format(time.DateTime)
	for _, s := range []struct {
		what, query string
		args        []any
	}{
		{"insert sale", `INSERT INTO sales (physkey, random_key, sid, phase, startdt, completeddt, completeddtutc,
			saletotal_cents, teller, location, created_by, updated_utc) VALUES (?, ?, (SELECT COALESCE(MAX(sid), 0) + 1 FROM sales),
			1, ?, ?, ?, 550, 1, 1, 'bench counter-proc', ?)`, []any{physkey, uuid.NewString(), local, local, utc, utc}},
		{"insert line", `INSERT INTO sale_lines (sale_physkey, seqnce, pid, description, plu, qty, unitprice_cents,
			prediscountprice_cents, totalprice_cents, linesource) VALUES (?, 1, 1001, 'Flat White', 'FW', 1, 550, 550, 550, 1)`, []any{physkey}},
		{"insert payment", `INSERT INTO payments (sale_physkey, sequence, type, amount_cents, dt)
			VALUES (?, 1, (SELECT code FROM payment_types WHERE globalcode = 1), 550, ?)`, []any{physkey, local}},
	} {
		if _, err := tx.ExecContext(ctx, tx.Rebind(s.query), s.args...); err != nil {
			return fmt.Errorf("%s: %w", s.what, err)
		}
	}
	return nil
}
