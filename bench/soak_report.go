package bench

import (
	"fmt"
	"strings"
	"time"
)

// targetSoakTablets is issue 6's setting: 500 tablets for 60 s on this
// (2-core) machine, with a counter process writing the same lane DB.
const targetSoakTablets = 500

func (p *printer) soakHeader(cfg SoakConfig) {
	counter := "no counter process"
	if cfg.Counter {
		counter = fmt.Sprintf("a counter process writes the lane DB every %s", counterEvery)
	}
	p.printf("greenlane bench soak — %d presell tablets × %s (after %s warm-up), each create → %d × add_product → set_customer → park as fast as the lane answers; %s; demo lane DB, synchronous FULL\n",
		cfg.Tablets, cfg.Duration, cfg.WarmUp, linesPerSale, counter)
	p.machine(soakWhere(cfg) + loadAverage("start"))
}

// soakWhere says which process runs what: the memory figures are this
// process's.
func soakWhere(cfg SoakConfig) string {
	tablets := "tablets in a child process"
	if cfg.Child == nil {
		tablets = "tablets in this process (their memory and goroutines are counted too)"
	}
	counter := ""
	switch {
	case cfg.Counter && cfg.Child == nil:
		counter = ", counter on a goroutine of this process (own SQLite connection)"
	case cfg.Counter:
		counter = ", counter in another"
	}
	return "server in this process, " + tablets + counter
}

func (p *printer) soakReport(rep *SoakReport) {
	p.load(rep.load)
	p.printf("   writer yields: %d in the window (a pause left for another process writing the lane DB)\n", rep.load.writer.Yields)
	p.counter(rep.counter)
	p.memory(rep)
	p.soakTargets(rep)
}

func (p *printer) counter(c *counterResult) {
	if c == nil {
		return
	}
	var wait histogram
	if err := wait.load(c.Wait); err != nil {
		p.printf("counter process: bad wait figures: %v\n", err)
		return
	}
	elapsed := time.Duration(c.ElapsedNS)
	p.printf("counter process: %d transactions (%d sales, %d staff) in %s, %.1f/s; lock wait (BEGIN IMMEDIATE) %s; slowest transaction %s; busy %d\n",
		c.Transactions, c.Sales, c.Staff, elapsed.Round(100*time.Millisecond), perSec(c.Transactions, elapsed),
		quantilesOf(&wait), ms(time.Duration(c.SlowestTx)), c.Busy)
	if c.BusyExample != "" {
		p.printf("   e.g. %s\n", c.BusyExample)
	}
}

func (p *printer) memory(rep *SoakReport) {
	m := rep.mem
	p.printf("server process (this one: RSS = VmRSS, heap = Go HeapInuse):\n")
	rows := []struct {
		label string
		s     serverSample
	}{
		{"start (server up, no clients, after GC)", m.start},
		{"peak  (1 s samples over the load, each figure's max)", m.peak},
		{fmt.Sprintf("end   (window closed, %d tablets connected)", rep.load.tablets), m.end},
		{fmt.Sprintf("after (tablets gone, %s settle, after GC)", rep.cfg.Settle), m.after},
		{"      then debug.FreeOSMemory (for information)", m.freed},
	}
	for _, r := range rows {
		p.printf("   %-54s RSS %9s  goroutines %5d  heap %9s\n", r.label, rssText(r.s.rss), r.s.goroutines, mib(r.s.heapInuse))
	}
	p.printf("   back to baseline: RSS %s; goroutines %+d (allowed ±%d) %s\n",
		rssVerdict(m, rep.sqliteCache), m.after.goroutines-m.start.goroutines, goroutineSlack, mark(m.goroutinesBack()))
	if m.rssKnown() {
		p.printf("   RSS after − start by owner: Go runtime %s (heap in use %s), outside Go %s (SQLite's page caches, at most %s here, and C heap; file maps)\n",
			signedMiB(int64(m.after.goHeld)-int64(m.start.goHeld)), signedMiB(int64(m.after.heapInuse)-int64(m.start.heapInuse)),
			signedMiB(m.after.outsideGo()-m.start.outsideGo()), mb(rep.sqliteCache))
	}
	p.leak(rep.leak)
}

// rssVerdict is "+2.1 MB (allowed +17.8 MB: 10% of the baseline or 8 MB,
// whichever is larger, plus SQLite's page caches, 9.8 MB) ✓".
func rssVerdict(m memFigures, sqliteCache int64) string {
	if !m.rssKnown() {
		return "not known on this system ✗"
	}
	return fmt.Sprintf("%s (allowed +%s: %.0f%% of the baseline or %s, whichever is larger, plus SQLite's page caches, %s) %s",
		signedMiB(int64(m.after.rss)-int64(m.start.rss)), mib(rssAllowance(m.start.rss, sqliteCache)),
		100*rssSlackShare, mib(rssSlackBytes), mb(sqliteCache), mark(m.rssBack(sqliteCache)))
}

func (p *printer) leak(groups []goroutineDelta) {
	if len(groups) == 0 {
		return
	}
	p.printf("   goroutines not back, by stack (after − start; runtime frames left out):\n")
	for _, g := range groups {
		p.printf("     %+d  %s\n", g.delta, strings.Join(appFrames(g.frames, 6), " ← "))
	}
}

// appFrames drops the runtime's own frames (where every goroutine parks)
// and keeps the first n of the rest.
func appFrames(frames []string, n int) []string {
	var out []string
	for _, f := range frames {
		if strings.HasPrefix(f, "runtime.") || strings.HasPrefix(f, "internal/") {
			continue
		}
		if out = append(out, f); len(out) == n {
			break
		}
	}
	if len(out) == 0 && len(frames) > 0 {
		return frames[:min(len(frames), n)]
	}
	return out
}

func (p *printer) soakTargets(rep *SoakReport) {
	checks := []string{
		check("0 errors", rep.Err() == nil),
		check("0 busy errors reaching clients", rep.load.errs.busy() == 0),
	}
	if c := rep.counter; c != nil {
		checks = append(checks, check("counter never locked out", c.Busy == 0))
	}
	checks = append(checks,
		check("RSS back to baseline", rep.mem.rssBack(rep.sqliteCache)),
		check("goroutines back to baseline", rep.mem.goroutinesBack()))
	note := ""
	if rep.cfg.Tablets != targetSoakTablets {
		note = fmt.Sprintf(", set for %d tablets", targetSoakTablets)
	}
	p.printf("targets (issue 6%s%s): %s\n", note, loadAverage("end"),
		strings.Join(checks, ", "))
}

// quantilesOf is "p50 0.52ms  p99 1.20ms  max 3.10ms" of h, or "-" when
// nothing was recorded.
func quantilesOf(h *histogram) string {
	if h.count() == 0 {
		return "-"
	}
	return fmt.Sprintf("p50 %s  p99 %s  max %s", ms(h.quantile(0.5)), ms(h.quantile(0.99)), ms(h.maxValue()))
}

func rssText(n uint64) string {
	if n == 0 {
		return "n/a"
	}
	return mib(n)
}

// mib prints a size in MB (1 MB = 1024 × 1024 bytes), as bench recall does.
func mib(n uint64) string { return mb(int64(n)) }

func signedMiB(n int64) string {
	if n < 0 {
		return "−" + mb(-n)
	}
	return "+" + mb(n)
}
