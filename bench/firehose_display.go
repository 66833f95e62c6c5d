package bench

// The display-lag phase: how far a customer display trails the tablet
// whose sale it shows, while many tablets build sales.
//
// A custdisp event takes a longer road than the reply to the change that
// made it: the change commits, the salesbuilder's commit hook wakes the
// hub, the hub reads the new journal rows back from the lane DB and
// publishes them. The reply goes out as soon as the commit returns. The
// lag is the display's receipt of custdisp.sale.lines.add less the
// tablet's receipt of its add_product reply, both on this process's
// monotonic clock. It is negative when the event wins the race; the report
// gives it as measured, with the share that did.

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/greenlane-pos/greenlane/fd1client"
	"github.com/greenlane-pos/greenlane/protocol"
)

// scLinesAdd is the event a display gets for each add_product.
const scLinesAdd = "custdisp.sale.lines.add"

// displayResult is what the display-lag phase measured.
type displayResult struct {
	load   *loadResult     // the tablets' throughput and round trips, the CPU over the window
	lag    signedHistogram // lines.add receipt − add_product reply receipt
	events int64           // custdisp events the display received in the window
	errs   tally           // the display's side: missing events, a broken socket
}

func (r *displayResult) eventsPerSec() float64 { return perSec(r.events, r.load.window) }

// errorCount is the tablets' real (non-busy) failures plus the display's.
func (r *displayResult) errorCount() int64 { return r.load.errs.total() + r.errs.total() }

// runDisplayLag runs the display-lag phase on a fresh lane DB: the
// tablets run as in bench presell's group-commit-on phase, with its
// window, recycler and profile, and a display follows them.
func runDisplayLag(ctx context.Context, cfg FirehoseConfig, path string, log *slog.Logger) (*displayResult, error) {
	res := &displayResult{}
	stats := &loadStats{}
	err := withLane(ctx, path, laneOptions{groupWait: defaultWait, log: log}, cfg.Tablets, protocol.ScopePresell, stats,
		func(l *lane, keys []string) error { return res.run(ctx, cfg, l, keys, stats) })
	if err != nil {
		return nil, err
	}
	res.load.fill(stats)
	return res, nil
}

// run opens the display, runs the tablets through warm-up and window,
// then waits for the display to catch up and counts what it never got.
func (res *displayResult) run(ctx context.Context, cfg FirehoseConfig, l *lane, keys []string, stats *loadStats) error {
	displayKey, err := l.DB.CreateAPIKey(ctx, "bench-display", []string{string(protocol.ScopeDisplay)})
	if err != nil {
		return fmt.Errorf("create the display's key: %w", err)
	}
	m := newLagMatcher(&res.lag)
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
	load, err := drive(ctx, l, connectTablets(ctx, l.presellURL(), keys, stats), len(keys), stats, shape,
		loadConfig{warmUp: cfg.WarmUp, duration: cfg.Duration, recycleEvery: cfg.RecycleEvery, profile: cfg.DisplayCPUProfile})
	if err != nil {
		return err
	}
	load.name, load.groupWait = "display lag", defaultWait
	res.load, res.events = load, disp.windowEvents.Load()
	waitUntil(ctx, cfg.Drain, func() bool { return m.waiting() == 0 })
	disp.close(&res.errs)
	m.countLeftovers(&res.errs, cfg.Drain)
	return ctx.Err()
}

// lagKey names one line of one sale.
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

func newLagMatcher(h *signedHistogram) *lagMatcher {
	return &lagMatcher{replies: map[lagKey]lagEnd{}, shown: map[lagKey]time.Time{}, lag: h}
}

// replied takes a tablet's reply receipt.
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

// displayed takes the display's receipt of a lines.add event.
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

// waiting is how many replies still wait for their event.
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

// display is a customer display: a socket logged in with purpose
// customerdisplay that follows every sale of the lane.
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
// failed, or packets it could not read, are counted as errors. It may be
// called again (the deferred call after an early return).
func (d *display) close(errs *tally) {
	d.closeOnce.Do(func() {
		d.c.Close()
		if err := d.c.FollowErr(); err != nil {
			errs.add("connection", 1, fmt.Sprintf("the display stopped reading: %v", err))
		}
		errs.add("bad_event", d.bad, fmt.Sprintf("the display received %d packets that were not custdisp events", d.bad))
	})
}
