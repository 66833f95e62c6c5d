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
	"slices"
	"strings"
	"sync"
	"time"

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
	// Duration is how long each phase is measured. Default 10s.
	Duration time.Duration
	// WarmUp runs before each measurement and is not counted. Default 1s.
	WarmUp time.Duration
	// Drain is how long, after the last event was sent, deliveries may
	// still arrive; what has not arrived by then is counted missing.
	// Default 5s.
	Drain time.Duration
	// DB is where the phases' lane DBs go: a folder, or a path prefix
	// (PREFIX.fanout.db, PREFIX.display.db). Files of those names are
	// replaced; the DBs are kept. Default "": a temporary folder, removed.
	DB string
	// RecycleEvery is how often submitted presells are voided in the
	// display-lag phase (see recycleTickets). Default 250ms; 0 never.
	RecycleEvery time.Duration
	// CPUProfile, when set, receives a CPU profile of the fan-out phase's
	// measured window. Default nil.
	CPUProfile io.Writer
	// DisplayCPUProfile, when set, receives a CPU profile of the
	// display-lag phase's measured window. Default nil.
	DisplayCPUProfile io.Writer
	// Log receives the server's warnings and errors. Default nil: dropped.
	Log io.Writer
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
	return FirehoseConfig{
		Subscribers:  targetSubscribers,
		Rate:         50,
		Tablets:      targetLagTablets,
		Duration:     10 * time.Second,
		WarmUp:       time.Second,
		Drain:        5 * time.Second,
		RecycleEvery: 250 * time.Millisecond,
	}
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
	case c.Duration <= 0:
		return fmt.Errorf("duration %s: want more than 0", c.Duration)
	case c.WarmUp < 0:
		return fmt.Errorf("warm-up %s: want 0 or more", c.WarmUp)
	case c.Drain <= 0:
		return fmt.Errorf("drain %s: want more than 0", c.Drain)
	case c.RecycleEvery < 0:
		return fmt.Errorf("recycle interval %s: want 0 (never) or more", c.RecycleEvery)
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
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	prefix, cleanup, err := workPrefix(cfg.DB)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	log := serverLog(cfg.Log)
	rep := &FirehoseReport{cfg: cfg}
	p := &printer{w: out}
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
	var parts []string
	if f := r.fanout; f != nil && f.errorCount() > 0 {
		parts = append(parts, fmt.Sprintf("fan-out: %s (e.g. %s)", f.errs.summary(), f.errs.example()))
	}
	if d := r.display; d != nil && d.errorCount() > 0 {
		parts = append(parts, fmt.Sprintf("display lag: %s (e.g. %s)", d.errorSummary(), d.example()))
	}
	if len(parts) == 0 {
		return nil
	}
	return fmt.Errorf("firehose benchmark saw failures: %s", strings.Join(parts, "; "))
}

// errorTally counts failures by code and keeps a few example messages.
// Safe for concurrent use.
type errorTally struct {
	mu      sync.Mutex
	counts  map[string]int64
	samples []string
}

func (e *errorTally) add(code string, n int64, msg string) {
	if n <= 0 {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.counts == nil {
		e.counts = map[string]int64{}
	}
	e.counts[code] += n
	if len(e.samples) < maxErrorSamples && !slices.Contains(e.samples, msg) {
		e.samples = append(e.samples, msg)
	}
}

func (e *errorTally) total() int64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	var n int64
	for _, c := range e.counts {
		n += c
	}
	return n
}

// summary is "missing ×3, connection ×1".
func (e *errorTally) summary() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return codeSummary(e.counts)
}

func (e *errorTally) example() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.samples) == 0 {
		return "no message"
	}
	return e.samples[0]
}

// dialLoggedIn opens a socket at url and logs in with key, in purpose when
// one is given (customerdisplay, debugscope travel in the login packet).
// It reuses the tablet's request loop for the requests made before the
// socket starts streaming.
func dialLoggedIn(ctx context.Context, url, key string, purpose protocol.Purpose) (*tablet, error) {
	ws, err := dial(ctx, url)
	if err != nil {
		return nil, err
	}
	t := &tablet{ws: ws}
	login := map[string]string{"apikey": key}
	if purpose != protocol.PurposeNone {
		login["purpose"] = string(purpose)
	}
	r, err := t.roundTrip(request{A: "fd1.session.login", V: login})
	if err == nil && r.Error != nil {
		err = fmt.Errorf("login refused: %s", r.Error)
	}
	if err != nil {
		ws.Close()
		return nil, err
	}
	return t, nil
}

// openFirehose asks for a firehose of event on t and waits for its
// firehose.status ack; after it the socket carries events. The read
// deadline the request loop set is lifted: a subscriber may wait long
// between events (the server's pings keep the link checked).
func openFirehose(t *tablet, event string) error {
	r, err := t.roundTrip(request{A: "fd1.firehose.open_firehose", V: map[string]string{"event": event}})
	if err != nil {
		return err
	}
	if r.Error != nil {
		return fmt.Errorf("open_firehose %s refused: %s", event, r.Error)
	}
	return t.ws.SetReadDeadline(time.Time{})
}

// waitUntil polls done every few milliseconds until it holds, ctx ends or
// limit passes; it reports whether done held.
func waitUntil(ctx context.Context, limit time.Duration, done func() bool) bool {
	deadline := time.Now().Add(limit)
	for !done() {
		if time.Now().After(deadline) || sleep(ctx, 5*time.Millisecond) != nil {
			return done()
		}
	}
	return true
}
