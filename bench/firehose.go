package bench

// The firehose benchmark (issue 5) measures how fast the lane's firehoses
// deliver, in two phases, each on a fresh demo lane DB and a server wired
// as `greenlane serve` wires it:
//
//   - fan-out: N subscriber sockets follow device.event while an injector
//     socket sends fd1.debug.inject_event at a fixed rate; each delivery's
//     latency is the subscriber's receipt time less the time stamped in the
//     event (see firehose_fanout.go on what that includes).
//   - display lag: presell tablets build sales while a customer display
//     follows custdisp lane-wide; for every add_product, the lag is the
//     time the display read the matching custdisp.sale.lines.add less the
//     time the tablet read its reply.
//
// All clients live in this process: the figures are latencies, and one
// process lets both ends read the same monotonic clock.

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"
)

// FirehoseConfig is one firehose benchmark run. DefaultFirehoseConfig
// holds every default.
type FirehoseConfig struct {
	// Subscribers is how many sockets follow device.event in the fan-out
	// phase. Default 1000; 0 skips the phase.
	Subscribers int
	// Rate is how many events per second the injector sends. Default 50.
	Rate int
	// Tablets is how many presell tablets build sales in the display-lag
	// phase. Default 50; 0 skips the phase.
	Tablets int
	Common
	// Drain is how long, after the last event was sent, deliveries may
	// still arrive; what has not arrived by then is counted missing.
	// Default 5s.
	Drain time.Duration
	// DisplayCPUProfile, when set, receives a CPU profile of the
	// display-lag phase's measured window. Default nil.
	DisplayCPUProfile io.Writer
}

// Bounds that keep a mistyped flag from exhausting the machine: every
// subscriber costs two file descriptors and four goroutines here, as both
// ends of its socket live in this process.
const (
	maxSubscribers = 5000
	maxRate        = 10000
)

// DefaultFirehoseConfig returns the defaults, which are the setting.
func DefaultFirehoseConfig() FirehoseConfig {
	return FirehoseConfig{Common: defaultCommon(), Subscribers: targetSubscribers, Rate: 50, Tablets: targetLagTablets,
		Drain: 5 * time.Second}
}

func (c FirehoseConfig) validate() error {
	switch {
	case c.Subscribers < 0 || c.Subscribers > maxSubscribers:
		return fmt.Errorf("subscribers %d: want 0 (skip the fan-out phase)…%d", c.Subscribers, maxSubscribers)
	case c.Rate < 1 || c.Rate > maxRate:
		return fmt.Errorf("rate %d: want 1…%d events/s", c.Rate, maxRate)
	case c.Tablets < 0 || c.Tablets > maxTablets:
		return fmt.Errorf("tablets %d: want 0 (skip the display-lag phase)…%d", c.Tablets, maxTablets)
	case c.Subscribers == 0 && c.Tablets == 0:
		return fmt.Errorf("subscribers and tablets are both 0: nothing to measure")
	case c.Drain <= 0:
		return fmt.Errorf("drain %s: want more than 0", c.Drain)
	}
	return nil
}

// FirehoseReport is the outcome of a run. A skipped phase is nil.
type FirehoseReport struct {
	cfg     FirehoseConfig
	fanout  *fanoutResult
	display *displayResult
}

// RunFirehose runs the firehose benchmark and prints the report to out as
// each phase finishes. An error means the benchmark itself could not run;
// failed requests and missing events are in the report (see
// FirehoseReport.Err).
func RunFirehose(ctx context.Context, cfg FirehoseConfig, out io.Writer) (*FirehoseReport, error) {
	prefix, cleanup, log, p, err := cfg.begin(out, cfg.validate)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	rep := &FirehoseReport{cfg: cfg}
	p.firehoseHeader(cfg)
	if cfg.Subscribers > 0 {
		if rep.fanout, err = runFanout(ctx, cfg, prefix+".fanout.db", log); err != nil {
			return nil, fmt.Errorf("fan-out phase: %w", err)
		}
		p.fanout(rep.fanout)
	}
	if cfg.Tablets > 0 {
		if rep.display, err = runDisplayLag(ctx, cfg, prefix+".display.db", log); err != nil {
			return nil, fmt.Errorf("display-lag phase: %w", err)
		}
		p.displayLag(rep.display)
	}
	p.firehoseTargets(rep)
	return rep, p.err
}

// Err is nil when every request succeeded (busy errors aside, as in bench
// presell) and every event arrived. Otherwise it summarises the failures.
func (r *FirehoseReport) Err() error {
	var ts []namedTally
	if r.fanout != nil {
		ts = append(ts, namedTally{"fan-out", &r.fanout.errs})
	}
	if r.display != nil {
		ts = append(ts, namedTally{"display-lag tablets", r.display.load.errs}, namedTally{"display", &r.display.errs})
	}
	return failures(" (busy errors not counted)", ts...)
}

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
	p.machine("subscribers, tablets, display and server share this process")
}

// fanout prints the fan-out phase.
func (p *printer) fanout(r *fanoutResult) {
	p.printf("fan-out: %d subscribers on device.event, %d events/s (in turn through the hub and an inject_event socket)\n", r.subscribersWanted, r.rate)
	p.printf("   %.0f events/s  %.0f deliveries/s  errors %d  missing %d\n",
		r.eventsPerSec(), r.deliveriesPerSec(), r.errs.total(), r.missing())
	p.latency("delivery", &r.latency[viaHub])
	p.printf("      (server timestamp → subscriber read it: stamped just before hub.PublishMemory, every other event)\n")
	p.latency("via socket", &r.latency[viaSocket])
	p.printf("      (inject_event request sent → subscriber read it: adds the request's trip into the server)\n")
	p.latency("inject trip", &r.injectTrip)
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
	p.printf("   %.0f sales/s  %.0f req/s  errors %d  busy %d\n", l.salesPerSec(), l.reqPerSec(), r.errorCount(), l.errs.busy())
	for _, k := range []kind{kindCreate, kindAddProduct, kindPark} {
		p.latency(kindNames[k], &l.latency[k])
	}
	p.writer(l)
	p.printf("   display: %.0f custdisp events/s received\n", r.eventsPerSec())
	h := &r.lag
	p.latency("lines.add lag", h)
	p.printf("      (display read custdisp.sale.lines.add − tablet read its add_product reply)\n")
	p.printf("      %.1f%% arrived before the reply", 100*h.negShare())
	if h.neg.count() > 0 {
		p.printf(" (by up to %s)", ms(h.neg.maxValue()))
	}
	p.printf("\n")
	if l.errs.total()+l.errs.busy() > 0 {
		p.examples("tablet errors by code", l.errs)
	}
	p.cpuLine(l.cpu)
	p.errorLines(&r.errs)
	if l.tablets != l.tabletsWanted {
		p.printf("   only %d of %d tablets connected\n", l.tablets, l.tabletsWanted)
	}
}

// errorLines prints a tally's failures by code, with examples.
func (p *printer) errorLines(e *tally) {
	if e.total() > 0 {
		p.examples("errors by code", e)
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
		errs += f.errs.total()
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
