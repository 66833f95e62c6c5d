package bench

import (
	"fmt"
	"runtime"
	"strings"
	"time"
)

// The firehose targets, for this machine with clients and server
// in one process.
const (
	targetSubscribers = 1000
	targetFanoutP99   = 50 * time.Millisecond
	targetLagTablets  = 50
	targetLagP99      = 10 * time.Millisecond
)

func (p *printer) firehoseHeader(cfg FirehoseConfig) {
	p.printf("greenlane bench firehose — %s per phase (after %s warm-up), demo lane DB, synchronous FULL\n",
		cfg.Duration, cfg.WarmUp)
	p.printf("machine: %d CPUs, %s/%s, %s, GOMAXPROCS %d; subscribers, tablets, display and server share this process\n",
		runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, runtime.Version(), runtime.GOMAXPROCS(0))
}

// fanout prints the fan-out phase.
func (p *printer) fanout(r *fanoutResult) {
	p.printf("fan-out: %d subscribers on device.event, %d events/s (in turn through the hub and an inject_event socket)\n", r.subscribersWanted, r.rate)
	p.printf("   %.0f events/s  %.0f deliveries/s  errors %d  missing %d\n",
		r.eventsPerSec(), r.deliveriesPerSec(), r.errorCount(), r.missing())
	p.latencyLine("delivery", &r.latency[viaHub])
	p.printf("      (server timestamp → subscriber read it: stamped just before hub.PublishMemory, every other event)\n")
	p.latencyLine("via socket", &r.latency[viaSocket])
	p.printf("      (inject_event request sent → subscriber read it: adds the request's trip into the server)\n")
	p.latencyLine("inject trip", &r.injectTrip)
	p.printf("      (inject_event request sent → its reply read, on the injector)\n")
	p.cpuLine(r.cpu)
	p.errorLines(&r.errs)
	if r.subscribers != r.subscribersWanted {
		p.printf("   only %d of %d subscribers connected\n", r.subscribers, r.subscribersWanted)
	}
}

// displayLag prints the display-lag phase.
func (p *printer) displayLag(r *displayResult) {
	l := r.load
	p.printf("display lag: %d presell tablets (create → %d × add_product → park), 1 customer display on custdisp, lane-wide\n",
		l.tabletsWanted, linesPerSale)
	p.printf("   %.0f sales/s  %.0f req/s  errors %d  busy %d\n", l.salesPerSec(), l.reqPerSec(), r.errorCount(), l.busy)
	for _, k := range []kind{kindCreate, kindAddProduct, kindPark} {
		p.latencyLine(kindNames[k], &l.latency[k])
	}
	p.writer(l)
	p.printf("   display: %.0f custdisp events/s received\n", r.eventsPerSec())
	h := &r.lag
	p.printf("   %-13s p50 %-8s p99 %-8s p999 %-8s max %-8s n %d\n", "lines.add lag",
		ms(h.quantile(0.50)), ms(h.quantile(0.99)), ms(h.quantile(0.999)), ms(h.maxValue()), h.count())
	p.printf("      (display read custdisp.sale.lines.add − tablet read its add_product reply)\n")
	p.printf("      %.1f%% arrived before the reply", 100*h.negShare())
	if h.neg.count() > 0 {
		p.printf(" (by up to %s)", ms(h.neg.maxValue()))
	}
	p.printf("\n")
	if l.errorCount()+l.busy > 0 {
		p.printf("   tablet errors by code: %s\n", errorSummary(l))
		for _, s := range l.samples {
			p.printf("     e.g. %s\n", s)
		}
	}
	p.cpuLine(r.cpu)
	p.errorLines(&r.errs)
	if l.tablets != l.tabletsWanted {
		p.printf("   only %d of %d tablets connected\n", l.tablets, l.tabletsWanted)
	}
}

// cpuLine says how busy the machine was over the window, and with what.
func (p *printer) cpuLine(c cpuUse) {
	if !c.ok {
		return
	}
	p.printf("   CPU over the window: this process %.2f, other processes %.2f (of %d CPUs)\n",
		c.self, c.other, runtime.NumCPU())
}

func (p *printer) latencyLine(label string, h *histogram) {
	p.printf("   %-13s p50 %-8s p99 %-8s p999 %-8s max %-8s n %d\n", label,
		ms(h.quantile(0.50)), ms(h.quantile(0.99)), ms(h.quantile(0.999)), ms(h.maxValue()), h.count())
}

// errorLines prints a tally's failures by code, with examples.
func (p *printer) errorLines(e *errorTally) {
	if e.total() == 0 {
		return
	}
	p.printf("   errors by code: %s\n", e.summary())
	e.mu.Lock()
	samples := append([]string(nil), e.samples...)
	e.mu.Unlock()
	for _, s := range samples {
		p.printf("     e.g. %s\n", s)
	}
}

// firehoseTargets prints each target of the phases run with ✓ or ✗.
func (p *printer) firehoseTargets(rep *FirehoseReport) {
	var checks []string
	var errs int64
	if f := rep.fanout; f != nil {
		label := fmt.Sprintf("fan-out p99 ≤ %s", ms(targetFanoutP99))
		if rep.cfg.Subscribers != targetSubscribers {
			label += fmt.Sprintf(" (set for %d subscribers)", targetSubscribers)
		}
		h := &f.latency[viaHub]
		checks = append(checks, check(label, h.count() > 0 && h.quantile(0.99) <= targetFanoutP99))
		errs += f.errorCount()
	}
	if d := rep.display; d != nil {
		label := fmt.Sprintf("display lag p99 ≤ %s", ms(targetLagP99))
		if rep.cfg.Tablets != targetLagTablets {
			label += fmt.Sprintf(" (set for %d tablets)", targetLagTablets)
		}
		checks = append(checks, check(label, d.lag.count() > 0 && d.lag.quantile(0.99) <= targetLagP99))
		errs += d.errorCount()
	}
	checks = append(checks, check("0 errors, 0 missing", errs == 0))
	p.printf("targets: %s\n", strings.Join(checks, ", "))
}
