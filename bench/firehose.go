package bench

// The firehose benchmark (issue 5) measures how fast the lane's firehoses
// deliver, in two phases, each on a fresh demo lane DB:
//
//   - fan-out: N subscriber sockets follow device.event while events are
//     injected at a fixed rate (see firehose_fanout.go);
//   - display lag: presell tablets build sales while a customer display
//     follows custdisp lane-wide; for every add_product, the lag is the
//     time the display read the matching custdisp.sale.lines.add less the
//     time the tablet read its reply.
//
// All clients live in this process: the figures are latencies, and one
// process lets both ends read the same monotonic clock.
//
// A custdisp event takes a longer road than the reply to the change that
// made it: the commit wakes the hub, which reads the new journal rows back
// and publishes them, while the reply goes out as soon as the commit
// returns. The lag is negative when the event wins the race; the report
// gives it as measured, with the share that did.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/greenlane-pos/greenlane/fd1client"
	"github.com/greenlane-pos/greenlane/protocol"
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

// The firehose targets, for this machine with clients and server
// in one process.
const (
	targetSubscribers = 1000
	targetFanoutP99   = 50 * time.Millisecond
	targetLagTablets  = 50
	targetLagP99      = 10 * time.Millisecond
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
	p.printf("greenlane bench firehose — %s per phase (after %s warm-up), demo lane DB, synchronous FULL\n", cfg.Duration, cfg.WarmUp)
	p.machine("subscribers, tablets, display and server share this process")
	var checks []string
	var errs int64
	if cfg.Subscribers > 0 {
		if rep.fanout, err = runFanout(ctx, cfg, prefix+".fanout.db", log); err != nil {
			return nil, fmt.Errorf("fan-out phase: %w", err)
		}
		p.fanout(rep.fanout)
		label := fmt.Sprintf("fan-out p99 ≤ %s", ms(targetFanoutP99))
		if cfg.Subscribers != targetSubscribers {
			label += fmt.Sprintf(" (set for %d subscribers)", targetSubscribers)
		}
		h := &rep.fanout.latency[viaHub]
		checks = append(checks, check(label, h.count() > 0 && h.quantile(0.99) <= targetFanoutP99))
		errs += rep.fanout.errs.total()
	}
	if cfg.Tablets > 0 {
		if rep.display, err = runDisplayLag(ctx, cfg, prefix+".display.db", log); err != nil {
			return nil, fmt.Errorf("display-lag phase: %w", err)
		}
		p.displayLag(rep.display)
		label := fmt.Sprintf("display lag p99 ≤ %s", ms(targetLagP99))
		if cfg.Tablets != targetLagTablets {
			label += fmt.Sprintf(" (set for %d tablets)", targetLagTablets)
		}
		d := rep.display
		checks = append(checks, check(label, d.lag.count() > 0 && d.lag.quantile(0.99) <= targetLagP99))
		errs += d.load.errs.total() + d.errs.total()
	}
	checks = append(checks, check("0 errors, 0 missing", errs == 0))
	p.printf("targets: %s\n", strings.Join(checks, ", "))
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

func (p *printer) fanout(r *fanoutResult) {
	p.printf("fan-out: %d subscribers on device.event, %d events/s (in turn through the hub and an inject_event socket)\n", r.subscribersWanted, r.rate)
	p.printf("   %.0f events/s  %.0f deliveries/s  errors %d  missing %d\n",
		perSec(r.events, r.window), perSec(r.deliveries, r.window), r.errs.total(), r.errs.count("missing"))
	p.latency("delivery", &r.latency[viaHub])
	p.printf("      (server timestamp → subscriber read it: stamped just before hub.PublishMemory, every other event)\n")
	p.latency("via socket", &r.latency[viaSocket])
	p.printf("      (inject_event request sent → subscriber read it: adds the request's trip into the server)\n")
	p.latency("inject trip", &r.injectTrip)
	p.printf("      (inject_event request sent → its reply read, on the injector)\n")
	p.cpuLine(r.cpu)
	p.failedExamples("errors by code", &r.errs)
	if r.subscribers != r.subscribersWanted {
		p.printf("   only %d of %d subscribers connected\n", r.subscribers, r.subscribersWanted)
	}
}

func (p *printer) displayLag(r *displayResult) {
	l := r.load
	p.printf("display lag: %d presell tablets (create → %d × add_product → park), 1 customer display on custdisp, lane-wide\n",
		l.tabletsWanted, linesPerSale)
	p.printf("   %.0f sales/s  %.0f req/s  errors %d  busy %d\n", l.salesPerSec(), l.reqPerSec(), l.errs.total()+r.errs.total(), l.errs.busy())
	for _, k := range []kind{kindCreate, kindAddProduct, kindPark} {
		p.latency(kindNames[k], &l.latency[k])
	}
	p.writer(l)
	p.printf("   display: %.0f custdisp events/s received\n", perSec(r.events, l.window))
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
	p.failedExamples("errors by code", &r.errs)
	if l.tablets != l.tabletsWanted {
		p.printf("   only %d of %d tablets connected\n", l.tablets, l.tabletsWanted)
	}
}

// scLinesAdd is the event a display gets for each add_product.
const scLinesAdd = "custdisp.sale.lines.add"

type displayResult struct {
	load   *loadResult     // the tablets' throughput and round trips, the CPU over the window
	lag    signedHistogram // lines.add receipt − add_product reply receipt
	events int64           // custdisp events the display received in the window
	errs   tally           // the display's side: missing events, a broken socket
}

// runDisplayLag runs the tablets as bench presell's group-commit-on phase
// does, with its window, recycler and profile, and a display following
// them; then it waits for the display to catch up and counts what it
// never got.
func runDisplayLag(ctx context.Context, cfg FirehoseConfig, path string, log *slog.Logger) (*displayResult, error) {
	res := &displayResult{}
	stats := &loadStats{}
	err := withLane(ctx, path, laneOptions{groupWait: defaultWait, log: log}, cfg.Tablets, protocol.ScopePresell, stats, func(l *lane, keys []string) error {
		displayKey, err := l.DB.CreateAPIKey(ctx, "bench-display", []string{string(protocol.ScopeDisplay)})
		if err != nil {
			return fmt.Errorf("create the display's key: %w", err)
		}
		m := &lagMatcher{replies: map[lagKey]lagEnd{}, shown: map[lagKey]time.Time{}, lag: &res.lag}
		disp, err := openDisplay(ctx, l.laneURL(), displayKey, m, stats)
		if err != nil {
			return err
		}
		defer disp.close(&res.errs)
		// The i-th add_product of a new sale makes the line with seqnce i,
		// which is how its event is recognised.
		shape := saleShape{lines: linesPerSale, onLine: func(t *tablet, physkey string, seqnce int64) {
			m.replied(lagKey{physkey, seqnce}, t.replyAt, t.stats.inWindow())
		}}
		res.load, err = drive(ctx, l, connectTablets(ctx, l.presellURL(), keys, stats), len(keys), stats, shape,
			loadConfig{warmUp: cfg.WarmUp, duration: cfg.Duration, recycleEvery: cfg.RecycleEvery, profile: cfg.DisplayCPUProfile})
		if err != nil {
			return err
		}
		res.load.name, res.load.groupWait = "display lag", defaultWait
		res.events = disp.windowEvents.Load()
		waitUntil(ctx, cfg.Drain, func() bool { return m.waiting() == 0 })
		disp.close(&res.errs)
		m.countLeftovers(&res.errs, cfg.Drain)
		return ctx.Err()
	})
	if err != nil {
		return nil, err
	}
	res.load.fill(stats)
	return res, nil
}

type lagKey struct {
	sale   string
	seqnce int64
}

// lagEnd is a reply still waiting for its event.
type lagEnd struct {
	at       time.Time
	measured bool // the reply came inside the window
}

// lagMatcher pairs each add_product reply with its lines.add event,
// whichever comes first. It holds only the unpaired ones, a few per
// tablet, so its memory does not grow with the run.
type lagMatcher struct {
	mu      sync.Mutex
	replies map[lagKey]lagEnd    // replies whose event has not come yet
	shown   map[lagKey]time.Time // events that came before their reply
	lag     *signedHistogram
}

func (m *lagMatcher) replied(k lagKey, at time.Time, measured bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if shownAt, ok := m.shown[k]; ok {
		delete(m.shown, k)
		if measured {
			m.lag.record(shownAt.Sub(at))
		}
		return
	}
	m.replies[k] = lagEnd{at: at, measured: measured}
}

func (m *lagMatcher) displayed(k lagKey, at time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if r, ok := m.replies[k]; ok {
		delete(m.replies, k)
		if r.measured {
			m.lag.record(at.Sub(r.at))
		}
		return
	}
	m.shown[k] = at
}

func (m *lagMatcher) waiting() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.replies)
}

// countLeftovers counts, once the display has stopped, the replies whose
// event never came and the events no reply claimed.
func (m *lagMatcher) countLeftovers(errs *tally, drain time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for k := range m.replies {
		errs.add("missing", 1, fmt.Sprintf("no %s for line %d of sale %s within %s of the last sale", scLinesAdd, k.seqnce, k.sale, drain))
	}
	for k := range m.shown {
		errs.add("unmatched", 1, fmt.Sprintf("%s for line %d of sale %s, whose add_product no tablet saw succeed", scLinesAdd, k.seqnce, k.sale))
	}
}

// display is a customer display following every sale of the lane.
type display struct {
	c            *fd1client.Conn
	windowEvents atomic.Int64
	closeOnce    sync.Once
	bad          int64 // packets that were not custdisp events; the reader's own
}

// openDisplay logs a display in, opens custdisp lane-wide (no tablet, no
// sale: every sale of the lane) and hands every lines.add to the matcher,
// with the time its frame was read.
func openDisplay(ctx context.Context, url, key string, m *lagMatcher, stats *loadStats) (*display, error) {
	c, err := fd1client.Open(ctx, url, key, protocol.PurposeCustomerDisplay, fd1client.Options{})
	if err == nil {
		if err = c.OpenFirehose("custdisp"); err != nil {
			c.Close()
		}
	}
	if err != nil {
		return nil, fmt.Errorf("customer display: %w", err)
	}
	d := &display{c: c}
	c.Follow(func(msg []byte, at time.Time) {
		sc, k, ok := decodeCustdisp(msg)
		switch {
		case !ok:
			d.bad++
		case stats.inWindow():
			d.windowEvents.Add(1)
		}
		if ok && sc == scLinesAdd {
			m.displayed(k, at)
		}
	})
	return d, nil
}

// decodeCustdisp reads an event's sc and, for a lines.add, which line it
// added: the sale and the highest seqnce among its lines.
func decodeCustdisp(msg []byte) (sc string, k lagKey, ok bool) {
	var ev struct {
		SC string `json:"sc"`
		V  struct {
			SalePhyskey string `json:"salephyskey"`
			Lines       []struct {
				Seqnce int64 `json:"seqnce"`
			} `json:"lines"`
		} `json:"v"`
	}
	if err := json.Unmarshal(msg, &ev); err != nil || !strings.HasPrefix(ev.SC, "custdisp.") {
		return "", lagKey{}, false
	}
	k.sale = ev.V.SalePhyskey
	for _, l := range ev.V.Lines {
		k.seqnce = max(k.seqnce, l.Seqnce)
	}
	return ev.SC, k, true
}

// close closes the display and waits for its reader; a socket that had
// failed, or packets it could not read, are counted. It may be called
// again (the deferred call after an early return).
func (d *display) close(errs *tally) {
	d.closeOnce.Do(func() {
		d.c.Close()
		if err := d.c.FollowErr(); err != nil {
			errs.add("connection", 1, fmt.Sprintf("the display stopped reading: %v", err))
		}
		errs.add("bad_event", d.bad, fmt.Sprintf("the display received %d packets that were not custdisp events", d.bad))
	})
}
