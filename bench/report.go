package bench

import (
	"fmt"
	"io"
	"runtime"
	"strings"
	"time"
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

// printer writes the report; it keeps the first write error.
type printer struct {
	w   io.Writer
	err error
}

func (p *printer) printf(format string, args ...any) {
	if p.err == nil {
		_, p.err = fmt.Fprintf(p.w, format, args...)
	}
}

func (p *printer) header(cfg Config) {
	p.printf("greenlane bench presell — %d tablets × %s (after %s warm-up), demo lane DB, synchronous FULL\n",
		cfg.Tablets, cfg.Duration, cfg.WarmUp)
	p.printf("machine: %d CPUs, %s/%s, %s, GOMAXPROCS %d; tablets and server share this process\n",
		runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, runtime.Version(), runtime.GOMAXPROCS(0))
}

// load prints one load phase: throughput, errors, latency per kind and
// what the writer did.
func (p *printer) load(r *loadResult) {
	title := r.name + ":"
	if r.groupWait > 0 {
		title = fmt.Sprintf("%s (wait %s):", r.name, r.groupWait)
	}
	p.printf("%-28s %5.0f sales/s  %5.0f req/s  errors %d  busy %d\n",
		title, r.salesPerSec(), r.reqPerSec(), r.errorCount(), r.busy)
	for k := range numKinds {
		h := &r.latency[k]
		p.printf("   %-13s p50 %-8s p99 %-8s p999 %-8s max %-8s n %d\n", kindNames[k],
			ms(h.quantile(0.50)), ms(h.quantile(0.99)), ms(h.quantile(0.999)), ms(h.maxValue()), h.count())
	}
	p.writer(r)
	if r.errorCount()+r.busy > 0 {
		p.printf("   errors by code: %s\n", errorSummary(r))
		for _, s := range r.samples {
			p.printf("     e.g. %s\n", s)
		}
	}
	if r.tablets < 1 || r.tablets != r.tabletsWanted {
		p.printf("   only %d of %d tablets connected\n", r.tablets, r.tabletsWanted)
	}
}

// writer prints the group-commit figures of a phase.
func (p *printer) writer(r *loadResult) {
	if r.commits == 0 {
		return
	}
	p.printf("   writer: %.0f commits/s, %.1f requests per commit, COMMIT %s avg; %d presells recycled\n",
		perSec(r.commits, r.window), float64(r.mutations)/float64(r.commits),
		ms(time.Duration(r.commitNS/r.commits)), r.recycled)
}

// errorSummary is "conflict ×3, busy ×2".
func errorSummary(r *loadResult) string {
	parts := []string{}
	if len(r.errors) > 0 {
		parts = append(parts, codeSummary(r.errors))
	}
	if r.busy > 0 {
		parts = append(parts, fmt.Sprintf("busy ×%d", r.busy))
	}
	return strings.Join(parts, ", ")
}

func (p *printer) baseline(r *baselineResult) {
	p.printf("%-28s %5.0f sales/s  (%d sales, 1 transaction each, no sockets, no JSON)\n",
		"baseline:", r.salesPerSec(), r.sales)
}

func (p *printer) ratios(rep *Report) {
	p.printf("ratios: on/off %.2f×   on/baseline %.2f×\n", onOff(rep), onBaseline(rep))
}

func (p *printer) idle(r *idleResult) {
	where := "clients in a child process: server side only"
	if r.inProcess {
		where = "clients in this process: both ends counted"
	}
	p.printf("memory per idle presell socket: %.1f KB (%d sockets, %+.1f goroutines each; %s)\n",
		r.bytesPerSocket/1024, r.sockets, r.goroutinesPerSocket, where)
}

// targets prints each target with ✓ or ✗.
func (p *printer) targets(rep *Report) {
	on := rep.on
	checks := []string{
		check(fmt.Sprintf("≥%d sales/s", targetSalesPerSec), on.salesPerSec() >= targetSalesPerSec),
		check(fmt.Sprintf("p99 ≤ %s", ms(targetP99)), on.worstP99() <= targetP99),
		check("0 errors", on.errorCount()+rep.off.errorCount() == 0),
		check(fmt.Sprintf("≥%.1f× baseline", targetBaselineRatio), onBaseline(rep) >= targetBaselineRatio),
		check(fmt.Sprintf("on/off ≥%.1f×", targetOnOffRatio), onOff(rep) >= targetOnOffRatio),
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

func check(label string, ok bool) string {
	if ok {
		return label + " ✓"
	}
	return label + " ✗"
}

func onOff(rep *Report) float64 { return ratio(rep.on.salesPerSec(), rep.off.salesPerSec()) }

func onBaseline(rep *Report) float64 {
	return ratio(rep.on.salesPerSec(), rep.baseline.salesPerSec())
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// ms prints a latency in milliseconds, to a precision that suits it.
func ms(d time.Duration) string {
	v := float64(d) / float64(time.Millisecond)
	switch {
	case v < 10:
		return fmt.Sprintf("%.2fms", v)
	case v < 1000:
		return fmt.Sprintf("%.1fms", v)
	}
	return fmt.Sprintf("%.2fs", d.Seconds())
}
