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

	"github.com/gorilla/websocket"

	"github.com/greenlane-pos/greenlane/lanedb"
	"github.com/greenlane-pos/greenlane/protocol"
)

// scLinesAdd is the event a display gets for each add_product.
const scLinesAdd = "custdisp.sale.lines.add"

// displayResult is what the display-lag phase measured.
type displayResult struct {
	load   *loadResult     // the tablets' throughput and round trips
	lag    signedHistogram // lines.add receipt − add_product reply receipt
	events int64           // custdisp events the display received in the window
	cpu    cpuUse          // over the window
	errs   errorTally      // the display's side: missing events, a broken socket
}

func (r *displayResult) eventsPerSec() float64 { return perSec(r.events, r.load.window) }

// errorCount is the tablets' real (non-busy) failures plus the display's.
func (r *displayResult) errorCount() int64 { return r.load.errorCount() + r.errs.total() }

func (r *displayResult) errorSummary() string {
	var parts []string
	if r.load.errorCount() > 0 {
		parts = append(parts, "tablets: "+codeSummary(r.load.errors))
	}
	if r.errs.total() > 0 {
		parts = append(parts, "display: "+r.errs.summary())
	}
	return strings.Join(parts, "; ")
}

// example is one failure message, a tablet's real failure first.
func (r *displayResult) example() string {
	for _, s := range r.load.samples {
		if !strings.HasPrefix(s, busyLabel) {
			return s
		}
	}
	return r.errs.example()
}

// runDisplayLag runs the display-lag phase on a fresh lane DB.
func runDisplayLag(ctx context.Context, cfg FirehoseConfig, path string, log *slog.Logger) (*displayResult, error) {
	db, err := openDemoDB(ctx, path)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	keys, err := createPresellKeys(ctx, db, "bench-tablet", cfg.Tablets)
	if err != nil {
		return nil, err
	}
	displayKey, err := db.CreateAPIKey(ctx, "bench-display", []string{string(protocol.ScopeDisplay)})
	if err != nil {
		return nil, fmt.Errorf("create the display's key: %w", err)
	}
	l, err := startLane(ctx, db, laneOptions{writer: lanedb.DefaultWriterOptions(), log: log})
	if err != nil {
		return nil, err
	}
	// The tablets run as in bench presell's group-commit-on phase, with
	// its window, recycler and profile; the warm-up is displayLag's, so
	// that the CPU reading covers the window alone.
	pb := &benchmark{log: log, cfg: Config{Tablets: cfg.Tablets, Duration: cfg.Duration,
		RecycleEvery: cfg.RecycleEvery, CPUProfile: cfg.DisplayCPUProfile}}
	stats := newLoadStats()
	res, runErr := displayLag(ctx, cfg, pb, l, keys, displayKey, stats)
	if err := l.stop(); err != nil && runErr == nil {
		runErr = err
	}
	if runErr != nil {
		return nil, runErr
	}
	if err := verifyParked(ctx, db, stats); err != nil {
		return nil, err
	}
	res.load.fill(stats)
	return res, nil
}

// displayLag opens the display, runs the tablets through warm-up and
// window, then waits for the display to catch up and counts what it
// never got.
func displayLag(ctx context.Context, cfg FirehoseConfig, pb *benchmark, l *lane, keys []string, displayKey string, stats *loadStats) (*displayResult, error) {
	res := &displayResult{}
	m := newLagMatcher(&res.lag)
	disp, err := openDisplay(ctx, l.laneURL(), displayKey, m, stats)
	if err != nil {
		return nil, err
	}
	defer disp.close(&res.errs)
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
			if err := runLagTablet(loadCtx, t, m); err != nil {
				stats.broken(err)
			}
		})
	}
	recycled := pb.startRecycler(loadCtx, &wg, func(ctx context.Context, fn lanedb.Mutation) error { return l.writer.Do(ctx, fn) })
	load, cpu, err := measureAfterWarmUp(ctx, cfg.WarmUp, pb, l, stats)
	stopLoad()
	wg.Wait() // every tablet finishes the sale it started
	if err != nil {
		return nil, err
	}
	load.tablets, load.tabletsWanted, load.recycled = len(tablets), len(keys), recycled.Load()
	res.load, res.events, res.cpu = load, disp.windowEvents.Load(), cpu
	waitUntil(ctx, cfg.Drain, func() bool { return m.waiting() == 0 })
	disp.close(&res.errs)
	m.countLeftovers(&res.errs, cfg.Drain)
	return res, ctx.Err()
}

// measureAfterWarmUp lets the tablets warm up, then measures the window
// and the CPU use over it.
func measureAfterWarmUp(ctx context.Context, warmUp time.Duration, pb *benchmark, l *lane, stats *loadStats) (*loadResult, cpuUse, error) {
	if err := sleep(ctx, warmUp); err != nil {
		return nil, cpuUse{}, err
	}
	mark := readCPUMark()
	load, err := pb.measure(ctx, l.writer, stats, loadSpec{name: "display lag",
		groupWait: lanedb.DefaultWriterOptions().MaxWait, cpuProfile: true})
	return load, mark.since(), err
}

// runLagTablet makes sales until ctx ends; it returns only on a broken
// socket.
func runLagTablet(ctx context.Context, t *tablet, m *lagMatcher) error {
	for ctx.Err() == nil {
		if err := lagSale(t, m); err != nil {
			return err
		}
	}
	return nil
}

// lagSale is create → 3 × add_product → park, handing the matcher the
// receipt time of every add_product reply. The i-th add_product of a new
// sale makes the line with seqnce i (a sale's seqnce starts at 1 and each
// line takes the next), which is how its event is recognised. An error
// reply abandons the sale (it is counted); a broken socket is returned.
func lagSale(t *tablet, m *lagMatcher) error {
	physkey, ok, err := t.do(kindCreate, "", struct{}{})
	if !ok || err != nil {
		return err
	}
	for seqnce := int64(1); seqnce <= linesPerSale; seqnce++ {
		if _, ok, err := t.do(kindAddProduct, physkey, pickLine(t.rng)); !ok || err != nil {
			return err
		}
		m.replied(lagKey{physkey, seqnce}, t.replyAt, t.stats.inWindow())
	}
	if _, ok, err := t.do(kindPark, physkey, struct{}{}); !ok || err != nil {
		return err
	}
	t.stats.saleDone()
	return nil
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
func (m *lagMatcher) countLeftovers(errs *errorTally, drain time.Duration) {
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
	ws           *websocket.Conn
	m            *lagMatcher
	stats        *loadStats // for the window
	windowEvents atomic.Int64
	closing      atomic.Bool
	done         chan struct{}
	closeOnce    sync.Once
	bad          int64 // packets that were not custdisp events; the reader's own
	err          error // why reading stopped, when the bench did not stop it
}

// openDisplay logs a display in, opens custdisp lane-wide (no tablet, no
// sale: every sale of the lane) and starts its reader.
func openDisplay(ctx context.Context, url, key string, m *lagMatcher, stats *loadStats) (*display, error) {
	t, err := dialLoggedIn(ctx, url, key, protocol.PurposeCustomerDisplay)
	if err == nil {
		if err = openFirehose(t, "custdisp"); err != nil {
			t.ws.Close()
		}
	}
	if err != nil {
		return nil, fmt.Errorf("customer display: %w", err)
	}
	d := &display{ws: t.ws, m: m, stats: stats, done: make(chan struct{})}
	go d.read()
	return d, nil
}

// read hands every lines.add to the matcher until the socket closes. The
// receipt time is taken as soon as the frame is read, before decoding.
func (d *display) read() {
	defer close(d.done)
	for {
		_, msg, err := d.ws.ReadMessage()
		if err != nil {
			if !d.closing.Load() {
				d.err = err
			}
			return
		}
		at := time.Now()
		sc, k, ok := decodeCustdisp(msg)
		if !ok {
			d.bad++
			continue
		}
		if d.stats.inWindow() {
			d.windowEvents.Add(1)
		}
		if sc == scLinesAdd {
			d.m.displayed(k, at)
		}
	}
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
func (d *display) close(errs *errorTally) {
	d.closeOnce.Do(func() {
		d.closing.Store(true)
		_ = d.ws.WriteControl(websocket.CloseMessage,
			websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
		d.ws.Close()
		<-d.done
		if d.err != nil {
			errs.add("connection", 1, fmt.Sprintf("the display stopped reading: %v", d.err))
		}
		errs.add("bad_event", d.bad, fmt.Sprintf("the display received %d packets that were not custdisp events", d.bad))
	})
}

// signedHistogram records durations that may be negative: the negative
// ones by their size in one histogram, the rest in another. Its memory is
// fixed, as a histogram's.
type signedHistogram struct {
	neg, pos histogram
}

func (h *signedHistogram) record(d time.Duration) {
	if d < 0 {
		h.neg.record(-d)
		return
	}
	h.pos.record(d)
}

func (h *signedHistogram) count() int64 { return h.neg.count() + h.pos.count() }

// negShare is the fraction of values below zero.
func (h *signedHistogram) negShare() float64 {
	if n := h.count(); n > 0 {
		return float64(h.neg.count()) / float64(n)
	}
	return 0
}

// quantile is the value that a fraction q of values did not exceed. The
// r-th smallest value overall is, among the negatives, the one whose size
// is the (negatives − r + 1)-th smallest.
func (h *signedHistogram) quantile(q float64) time.Duration {
	n := h.count()
	if n == 0 {
		return 0
	}
	rank, negN := quantileRank(q, n), h.neg.count()
	if rank <= negN {
		return -h.neg.atRank(negN - rank + 1)
	}
	return h.pos.atRank(rank - negN)
}

// maxValue is the largest value; negative when every value is.
func (h *signedHistogram) maxValue() time.Duration {
	if h.pos.count() > 0 {
		return h.pos.maxValue()
	}
	return -h.neg.atRank(1)
}
