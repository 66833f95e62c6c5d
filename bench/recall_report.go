package bench

import (
	"context"
	"errors"
	"fmt"
	"github.com/greenlane-pos/greenlane/progress"
	"io/fs"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/greenlane-pos/greenlane/lanedb"
)

// targetRecallP99 is issue 4's target for get_presells and recall by
// ticket, one counter, on this (2-core) machine.
const targetRecallP99 = 5 * time.Millisecond

// dbFacts are the lane DB's size and rows as measured.
type dbFacts struct {
	fileBytes, walBytes    int64
	sales, lines, payments int64
	open                   int
}

// readDBFacts measures the file and counts the big tables' rows.
func readDBFacts(ctx context.Context, db *lanedb.DB, open int) (*dbFacts, error) {
	f := &dbFacts{open: open}
	for _, s := range []struct {
		path string
		dst  *int64
	}{{db.Path, &f.fileBytes}, {db.Path + "-wal", &f.walBytes}} {
		st, err := os.Stat(s.path)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("size of the lane DB: %w", err)
		}
		if err == nil {
			*s.dst = st.Size()
		}
	}
	for _, c := range []struct {
		table string
		dst   *int64
	}{{"sales", &f.sales}, {"sale_lines", &f.lines}, {"payments", &f.payments}} {
		n, err := db.CountRows(ctx, c.table)
		if err != nil {
			return nil, err
		}
		*c.dst = n
	}
	return f, nil
}

func (p *printer) recallHeader(cfg RecallConfig) {
	gc := "group commit off"
	if cfg.GroupCommitWait > 0 {
		gc = "group commit wait " + cfg.GroupCommitWait.String()
	}
	p.printf("greenlane bench recall — %s historic sales, %d open presells, %s measured requests of each kind per figure (after %s warm-up); %s, synchronous FULL\n",
		progress.Thousands(cfg.Sales), cfg.Open, progress.Thousands(int64(cfg.Requests)), progress.Thousands(int64(cfg.WarmUp)), gc)
	p.printf("machine: %d CPUs, %s/%s, %s, GOMAXPROCS %d; counters and server share this process%s\n",
		runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, runtime.Version(), runtime.GOMAXPROCS(0), loadAverage())
}

// loadAverage is "; load average 0.12 at start" where the system tells
// it (Linux): on a small machine another busy program moves every tail
// latency, and the report should say so.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) > 0 {
		return "; load average " + f[0] + " at start"
	}
	return ""
}

// recallBuild says where the lane DB came from.
func (p *printer) recallBuild(rep *RecallReport) {
	b := rep.build
	switch {
	case b.reused:
		p.printf("lane DB: reused %s: its finished build holds %s historic sales (not rebuilt)\n", rep.path, progress.Thousands(b.sales))
	default:
		why := ""
		if b.replaced >= 0 {
			why = fmt.Sprintf("; replaced a bench DB built for %s sales", progress.Thousands(b.replaced))
		}
		p.printf("lane DB: built %s historic sales in %s (%s sales/s; bulk INSERTs, 10,000 sales per transaction, synchronous OFF during the build only) at %s%s\n",
			progress.Thousands(b.sales), roundTook(b.took), progress.Thousands(int64(perSec(b.sales, b.took))), rep.path, why)
	}
}

// recallFacts prints the lane DB's size and rows.
func (p *printer) recallFacts(rep *RecallReport) {
	f := rep.facts
	voided := ""
	if rep.voided > 0 {
		voided = fmt.Sprintf("; %d left open by an earlier run voided", rep.voided)
	}
	p.printf("lane DB: %s on disk (+ %s WAL); rows: sales %s, sale_lines %s, payments %s; open presells %d, made by %d tablets over sockets%s\n",
		mb(f.fileBytes), mb(f.walBytes), progress.Thousands(f.sales), progress.Thousands(f.lines), progress.Thousands(f.payments),
		f.open, min(setupTablets, f.open), voided)
}

// recallPlans prints each query plan with its verdict.
func (p *printer) recallPlans(rep *RecallReport) {
	p.printf("query plans (EXPLAIN QUERY PLAN of the SQL lanedb runs, as run):\n")
	for _, plan := range rep.plans {
		verdict := "✓ walks only open presells (partial index), not the history"
		if !plan.ok() {
			verdict = "✗ SCANS THE HISTORIC SALES — a server problem: " + strings.Join(plan.scans, "; ")
		}
		what := plan.request
		if len(plan.names) > 0 && plan.names[0] != "" {
			what += " (" + strings.Join(plan.names, ", ") + ")"
		}
		p.printf("   %s: %s\n", what, verdict)
		for _, line := range plan.lines {
			p.printf("      %s\n", line)
		}
	}
}

// recallFigure prints one figure.
func (p *printer) recallFigure(f *recallFigure) {
	s := f.stats
	p.printf("%s:\n", f.name)
	list := &s.ops[opList]
	p.printf("   %-14s %s  %5.0f req/s  (the five filters below in turn)\n", recallOpNames[opList],
		quantiles(list), perSec(list.count(), f.listTook))
	for v := range numListVariants {
		h := &s.lists[v]
		p.printf("     %-12s %s  %5.1f rows\n", listVariantNames[v], quantiles(h),
			float64(s.rows[v].Load())/float64(max(h.count(), 1)))
	}
	if !f.release {
		p.printf("   %-14s %s  %5.0f req/s  (lanedb.OpenPresellBy: the lookup only)\n", "recall lookup",
			quantiles(&s.ops[opRecall]), perSec(s.ops[opRecall].count(), f.cycTook))
		return
	}
	p.printf("   %-14s %s  %5.0f cycles/s  (by ticket: find, claim, journal, COMMIT, answer the sale)\n",
		recallOpNames[opRecall], quantiles(&s.ops[opRecall]), perSec(s.ops[opRecall].count(), f.cycTook))
	p.printf("   %-14s %s\n", recallOpNames[opRelease], quantiles(&s.ops[opRelease]))
	if w := f.writer; w.commits > 0 {
		p.printf("   writer over the cycles: %s commits, %.1f changes per commit, COMMIT avg %s\n",
			progress.Thousands(w.commits), float64(w.mutations)/float64(w.commits), ms(time.Duration(w.commitNS/w.commits)))
	}
}

// quantiles is "p50 0.52ms  p99 1.20ms  p999 2.31ms  max 3.10ms  n 2000".
func quantiles(h *histogram) string {
	return fmt.Sprintf("p50 %-8s p99 %-8s p999 %-8s max %-8s n %-5d", fineMS(h.quantile(0.50)), fineMS(h.quantile(0.99)),
		fineMS(h.quantile(0.999)), fineMS(h.maxValue()), h.count())
}

// fineMS is ms with a third decimal below 0.1 ms, where the direct
// lookups are, so that their ratio to the sockets means something.
func fineMS(d time.Duration) string {
	if d < 100*time.Microsecond {
		return fmt.Sprintf("%.3fms", float64(d)/float64(time.Millisecond))
	}
	return ms(d)
}

// recallRatios compares one counter socket with the direct calls, p50
// and p99: the five-filter mix, the unfiltered list alone (the mix's
// median falls among cheap and dear filters, the unfiltered list does not
// move), and recall.
func (p *printer) recallRatios(rep *RecallReport) {
	sock, dir := rep.single.stats, rep.direct.stats
	times := func(v float64) string {
		if v >= 10 {
			return fmt.Sprintf("%.0f×", v)
		}
		return fmt.Sprintf("%.1f×", v)
	}
	r := func(a, b *histogram) string {
		return times(ratio(float64(a.quantile(0.5)), float64(b.quantile(0.5)))) + " " +
			times(ratio(float64(a.quantile(0.99)), float64(b.quantile(0.99))))
	}
	p.printf("socket/direct (p50 p99): get_presells %s, unfiltered %s; recall %s (the socket's recall also claims and commits; the baseline only looks up)\n",
		r(&sock.ops[opList], &dir.ops[opList]), r(&sock.lists[listAll], &dir.lists[listAll]),
		r(&sock.ops[opRecall], &dir.ops[opRecall]))
}

// recallTargets prints the errors and issue 4's target with ✓ or ✗.
func (p *printer) recallTargets(rep *RecallReport) {
	errs := rep.Err()
	if errs == nil {
		p.printf("errors: 0\n")
	} else {
		p.printf("errors: %v\n", errs)
	}
	plansOK := true
	for _, plan := range rep.plans {
		plansOK = plansOK && plan.ok()
	}
	list, recall := rep.single.stats.ops[opList].quantile(0.99), rep.single.stats.ops[opRecall].quantile(0.99)
	p.printf("target (issue 4: p99 ≤ %s, 1 counter, %s historic sales%s): %s, %s, %s, %s\n",
		ms(targetRecallP99), progress.Thousands(rep.cfg.Sales), strings.Replace(loadAverage(), " at start", " at end", 1),
		check("get_presells p99 "+ms(list), list <= targetRecallP99),
		check("recall p99 "+ms(recall), recall <= targetRecallP99),
		check("0 errors", errs == nil),
		check("an index, not a scan", plansOK))
}

// roundTook rounds a duration to about three figures.
func roundTook(d time.Duration) time.Duration {
	switch {
	case d >= 10*time.Second:
		return d.Round(100 * time.Millisecond)
	case d >= 10*time.Millisecond:
		return d.Round(time.Millisecond)
	}
	return d.Round(time.Microsecond)
}

// mb prints a size in MB (1 MB = 1024 × 1024 bytes).
func mb(n int64) string { return fmt.Sprintf("%.1f MB", float64(n)/(1<<20)) }
