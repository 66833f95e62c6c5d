package bench

// The firehose benchmark (issue 5) measures how fast the lane's firehoses
// deliver, every client in this process so that both ends read one
// monotonic clock:
//
//   - fan-out: N subscriber sockets follow device.event while events are
//     injected at a fixed rate;
//   - display lag: presell tablets build sales while a customer display
//     follows custdisp lane-wide; for every add_product, the lag is when
//     the display read the matching custdisp.sale.lines.add less when the
//     tablet read its reply. The event takes a longer road (the commit
//     wakes the hub, which reads the journal back) than the reply (sent
//     as the commit returns), and the lag is negative when it wins the
//     race anyway: the report gives it as measured, with that share.
//
// The issue asks for fan-out "server timestamp → client receipt", but a
// device.event's body is what the injector sent, with no time of the
// server's. So the events come in two ways, taking turns: through the
// in-process hub (hub.PublishMemory, as inject_event's handler calls it),
// stamped just before, which is the server's timestamp and the target's
// figure; and through an inject_event socket, stamped just before the
// request is written: an upper bound that also holds the request's trip,
// printed beside it. The stamp is nanoseconds since the phase began on the
// monotonic clock, which a wall-clock step cannot skew and which stays far
// below 2^53, so that it survives the server decoding a body into float64.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/greenlane-pos/greenlane/fd1client"
	"github.com/greenlane-pos/greenlane/firehose"
	"github.com/greenlane-pos/greenlane/protocol"
)

// FirehoseConfig is one firehose benchmark run.
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
	// still arrive; what has not by then is counted missing. Default 5s.
	Drain time.Duration
	// DisplayCPUProfile receives a CPU profile of the display-lag phase's
	// measured window. Default nil.
	DisplayCPUProfile io.Writer
}

// Bounds that keep a mistyped flag from exhausting the machine (every
// subscriber costs two file descriptors and four goroutines here, both
// ends of its socket being in this process), and the targets.
const (
	maxSubscribers    = 5000
	maxRate           = 10000
	targetSubscribers = 1000
	targetFanoutP99   = 50 * time.Millisecond
	targetLagTablets  = 50
	targetLagP99      = 10 * time.Millisecond
)

func DefaultFirehoseConfig() FirehoseConfig {
	return FirehoseConfig{Common: defaultCommon(), Subscribers: targetSubscribers, Rate: 50, Tablets: targetLagTablets, Drain: 5 * time.Second}
}

func (c FirehoseConfig) validate() error {
	if c.Subscribers == 0 && c.Tablets == 0 {
		return fmt.Errorf("subscribers and tablets are both 0: nothing to measure")
	}
	return errors.Join(inRange("subscribers", c.Subscribers, 0, maxSubscribers, " (0 skips the fan-out phase)"),
		inRange("rate", c.Rate, 1, maxRate, " events/s"), inRange("tablets", c.Tablets, 0, maxTablets, " (0 skips the display-lag phase)"),
		atLeast("drain", c.Drain, 1, "more than 0"))
}

// FirehoseReport is the outcome of a run. A skipped phase is nil.
type FirehoseReport struct {
	fanout  *fanoutResult
	display *displayResult
}

// RunFirehose runs the firehose benchmark and prints the report to out.
// An error means it could not run; failed requests and missing events are
// in FirehoseReport.Err.
func RunFirehose(ctx context.Context, cfg FirehoseConfig, out io.Writer) (*FirehoseReport, error) {
	prefix, cleanup, log, p, err := cfg.begin(out, cfg.validate)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	rep := &FirehoseReport{}
	p.printf("greenlane bench firehose — %s per phase (after %s warm-up), demo lane DB, %s\n", cfg.Duration, cfg.WarmUp, durability(prefix))
	p.machine("subscribers, tablets, display and server share this process")
	var checks []string
	target := func(label string, p99 time.Duration, n, want int, what string, h quantiler) {
		label = fmt.Sprintf("%s p99 ≤ %s", label, ms(p99))
		if n != want {
			label += fmt.Sprintf(" (set for %d %s)", want, what)
		}
		checks = append(checks, check(label, h.count() > 0 && h.quantile(0.99) <= p99))
	}
	opts := laneOptions{groupWait: defaultWait, log: log}
	if cfg.Subscribers > 0 {
		rep.fanout = &fanoutResult{subscribersWanted: cfg.Subscribers, rate: cfg.Rate}
		// One debug key serves every socket: the injector needs the scope,
		// and a subscriber may use any key.
		err := withLanes(ctx, prefix, "fanout", 1, opts, 1, protocol.ScopeDebug, nil, func(ls []*lane, keys []string) error {
			return rep.fanout.run(ctx, cfg, ls[0], keys[0])
		})
		if err != nil {
			return nil, fmt.Errorf("fan-out phase: %w", err)
		}
		p.fanout(rep.fanout)
		target("fan-out", targetFanoutP99, cfg.Subscribers, targetSubscribers, "subscribers", &rep.fanout.latency[viaHub])
	}
	if cfg.Tablets > 0 {
		if rep.display, err = runDisplayLag(ctx, cfg, prefix, opts); err != nil {
			return nil, fmt.Errorf("display-lag phase: %w", err)
		}
		p.displayLag(rep.display)
		target("display lag", targetLagP99, cfg.Tablets, targetLagTablets, "tablets", &rep.display.lag)
		checks = append(checks, check(rep.display.load.synchronous, rep.display.load.durable))
	}
	checks = append(checks, check("0 errors, 0 missing", rep.Err() == nil))
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
		ts = append(ts, namedTally{"display-lag tablets", &r.display.load.Errs}, namedTally{"display", &r.display.errs})
	}
	return failures(" (busy errors not counted)", ts...)
}

func (p *printer) fanout(r *fanoutResult) {
	p.printf("fan-out: %d subscribers on device.event, %d events/s (in turn through the hub and an inject_event socket)\n", r.subscribersWanted, r.rate)
	p.printf("   %.0f events/s  %.0f deliveries/s  errors %d  missing %d\n",
		perSec(r.events, r.window), perSec(r.deliveries, r.window), r.errs.total(), r.errs.Counts["missing"])
	for _, f := range []struct {
		label, note string
		h           *histogram
	}{
		{"delivery", "server timestamp → subscriber read it: stamped just before hub.PublishMemory, every other event", &r.latency[viaHub]},
		{"via socket", "inject_event request sent → subscriber read it: adds the request's trip into the server", &r.latency[viaSocket]},
		{"inject trip", "inject_event request sent → its reply read, on the injector", &r.injectTrip},
	} {
		p.latency(f.label, f.h)
		p.printf("      (%s)\n", f.note)
	}
	p.cpuLine(r.cpu)
	p.examples("errors by code", &r.errs, true)
	p.connected(len(r.subs), r.subscribersWanted, "subscribers")
}

func (p *printer) displayLag(r *displayResult) {
	l := r.load
	p.printf("display lag: %d presell tablets (create → %d × add_product → park), 1 customer display on custdisp, lane-wide\n",
		l.tabletsWanted, linesPerSale)
	p.printf("   %.0f sales/s  %.0f req/s  errors %d  busy %d\n", l.salesPerSec(), perSec(l.Requests, l.window), l.Errs.total()+r.errs.total(), l.Errs.busy())
	for _, k := range []kind{kindCreate, kindAddProduct, kindPark} {
		p.latency(kindNames[k], &l.Latency[k])
	}
	p.writer(l)
	p.printf("   display: %.0f custdisp events/s received\n", perSec(r.events, l.window))
	p.latency("lines.add lag", &r.lag)
	p.printf("      (display read custdisp.sale.lines.add − tablet read its add_product reply)\n")
	p.printf("      %.1f%% arrived before the reply", 100*r.lag.negShare())
	if r.lag.neg.count() > 0 {
		p.printf(" (by up to %s)", ms(r.lag.neg.maxValue()))
	}
	p.printf("\n")
	p.examples("tablet errors by code", &l.Errs, false)
	p.cpuLine(l.cpu)
	p.examples("errors by code", &r.errs, true)
	p.connected(l.tablets, l.tabletsWanted, "tablets")
}

// follower is a socket following a firehose, with the packets its reader
// could not read: its fields are the reader's own until the socket closes.
type follower struct {
	*fd1client.Conn
	bad    int64
	closed bool
}

// openFollower logs in and opens family's firehose.
func openFollower(ctx context.Context, url, key string, purpose protocol.Purpose, family string) (*follower, error) {
	c, err := fd1client.Open(ctx, url, key, purpose, fd1client.Options{})
	if err != nil {
		return nil, err
	}
	if err = c.OpenFirehose(family); err != nil {
		c.Close()
		return nil, err
	}
	return &follower{Conn: c}, nil
}

// close closes the socket and waits for its reader, the first time only,
// and counts a reader that had failed and the packets it could not read.
func (f *follower) close(errs *tally, who, events string) {
	if f.closed {
		return
	}
	f.closed = true
	if f.Close(); f.FollowErr() != nil {
		errs.add("connection", 1, fmt.Sprintf("%s stopped reading: %v", who, f.FollowErr()))
	}
	errs.add("bad_event", f.bad, fmt.Sprintf("%s received %d packets that were not %s events", who, f.bad, events))
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
// does, with a display following them, then counts what it never got.
func runDisplayLag(ctx context.Context, cfg FirehoseConfig, prefix string, opts laneOptions) (*displayResult, error) {
	res, stats := &displayResult{}, &loadStats{}
	err := withLanes(ctx, prefix, "display", 1, opts, cfg.Tablets, protocol.ScopePresell, stats, func(ls []*lane, keys []string) error {
		l := ls[0]
		displayKey, err := l.DB.CreateAPIKey(ctx, "bench-display", []string{string(protocol.ScopeDisplay)})
		if err != nil {
			return fmt.Errorf("create the display's key: %w", err)
		}
		// Lane-wide: no tablet, no sale, so every sale of the lane.
		disp, err := openFollower(ctx, l.laneURL(), displayKey, protocol.PurposeCustomerDisplay, "custdisp")
		if err != nil {
			return fmt.Errorf("customer display: %w", err)
		}
		const who = "the display"
		defer disp.close(&res.errs, who, "custdisp")
		m := &lagMatcher{ends: map[lagKey]lagEnd{}, lag: &res.lag}
		var events atomic.Int64
		disp.Follow(func(msg []byte, at time.Time) {
			sc, k, ok := decodeCustdisp(msg)
			switch {
			case !ok:
				disp.bad++
			case stats.inWindow():
				events.Add(1)
			}
			if ok && sc == scLinesAdd {
				m.pair(k, lagEnd{at: at, shown: true})
			}
		})
		// The i-th add_product of a new sale makes the line with seqnce i,
		// which is how its event is recognised.
		shape := saleShape{lines: linesPerSale, onLine: func(t *tablet, physkey string, seqnce int64) {
			m.pair(lagKey{physkey, seqnce}, lagEnd{at: t.replyAt, measured: t.stats.inWindow()})
		}}
		res.load, err = drive(ctx, ls, connectTablets(ctx, []string{l.presellURL()}, nil, keys, stats), len(keys), stats, shape,
			loadConfig{warmUp: cfg.WarmUp, duration: cfg.Duration, recycleEvery: cfg.RecycleEvery, profile: cfg.DisplayCPUProfile})
		if err != nil {
			return err
		}
		res.load.name, res.load.groupWait, res.events = "display lag", defaultWait, events.Load()
		waitUntil(ctx, cfg.Drain, func() bool { return m.waiting() == 0 })
		disp.close(&res.errs, who, "custdisp")
		m.countLeftovers(&res.errs, cfg.Drain)
		return ctx.Err()
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

type lagKey struct {
	sale   string
	seqnce int64
}

// lagEnd is a reply or an event still waiting for the other.
type lagEnd struct {
	at       time.Time
	shown    bool // the event, not the reply
	measured bool // a reply that came inside the window
}

// lagMatcher pairs each add_product reply with its lines.add event,
// whichever comes first, holding only the unpaired few.
type lagMatcher struct {
	mu   sync.Mutex
	ends map[lagKey]lagEnd
	lag  *signedHistogram
}

func (m *lagMatcher) pair(k lagKey, e lagEnd) {
	m.mu.Lock()
	defer m.mu.Unlock()
	o, ok := m.ends[k]
	if !ok || o.shown == e.shown {
		m.ends[k] = e
		return
	}
	delete(m.ends, k)
	if e.shown {
		e, o = o, e
	}
	if e.measured {
		m.lag.record(o.at.Sub(e.at))
	}
}

// waiting is how many replies still wait for their event.
func (m *lagMatcher) waiting() (n int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, e := range m.ends {
		if !e.shown {
			n++
		}
	}
	return n
}

// countLeftovers counts the replies whose event never came and the events
// no reply claimed.
func (m *lagMatcher) countLeftovers(errs *tally, drain time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for k, e := range m.ends {
		if e.shown {
			errs.add("unmatched", 1, fmt.Sprintf("%s for line %d of sale %s, whose add_product no tablet saw succeed", scLinesAdd, k.seqnce, k.sale))
		} else {
			errs.add("missing", 1, fmt.Sprintf("no %s for line %d of sale %s within %s of the last sale", scLinesAdd, k.seqnce, k.sale, drain))
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

// The bench's events, of the device.event family.
const (
	benchSC      = "device.event.bench"
	deviceFamily = "device.event"
)

// via is the way an event came into the server (see the top of the file).
type via int

const (
	viaHub via = iota
	viaSocket
	numVias
)

var viaNames = [numVias]string{"hub", "socket"}

type fanoutResult struct {
	subs              []*subscriber // those that connected
	subscribersWanted int
	rate              int
	window            time.Duration
	events            int64 // measured events the server accepted
	deliveries        int64 // measured events the subscribers received
	latency           [numVias]histogram
	injectTrip        histogram // inject request → its reply, on the injector
	cpu               cpuUse    // over the window
	errs              tally
	base              time.Time // the phase's clock: nanoseconds since base
}

func (r *fanoutResult) now() int64 { return int64(time.Since(r.base)) }

// benchEventData is a bench event. N numbers the measured events from 1;
// warm-up events carry 0 and are not counted.
type benchEventData struct {
	N   int64
	NS  int64
	Via string
}

// body is the event's v: {"b": "via n ns"}. One string lets a subscriber
// read it without encoding/json, which with a thousand subscribers would
// cost the bench as much CPU as the read itself, and it survives the
// server's decoding and re-encoding of v.
func (d benchEventData) body() map[string]string {
	return map[string]string{"b": fmt.Sprintf("%s %d %d", d.Via, d.N, d.NS)}
}

// benchHead is what precedes a bench event's body in the packet.
var benchHead = []byte(`"sc":"` + benchSC + `","v":{"b":"`)

// decodeBenchEvent reads a bench event as the hub writes it.
func decodeBenchEvent(msg []byte) (benchEventData, via, bool) {
	var d benchEventData
	i := bytes.Index(msg, benchHead)
	if i < 0 {
		return d, 0, false
	}
	rest := msg[i+len(benchHead):]
	f := strings.Fields(string(rest[:max(bytes.IndexByte(rest, '"'), 0)]))
	if len(f) != 3 {
		return d, 0, false
	}
	var errN, errNS error
	d.Via = f[0]
	d.N, errN = strconv.ParseInt(f[1], 10, 64)
	d.NS, errNS = strconv.ParseInt(f[2], 10, 64)
	v := slices.Index(viaNames[:], d.Via)
	return d, via(max(v, 0)), v >= 0 && errN == nil && errNS == nil
}

// subscriber is one socket following device.event. Its counts are its
// reader's own, read after the reader has stopped.
type subscriber struct {
	*follower
	received int64          // measured events
	lastN    [numVias]int64 // each way in keeps its order; the two ways may cross
	disorder int64          // events out of order or repeated
}

// run opens the subscribers and the injector, injects through warm-up and
// window, waits for the deliveries and counts what is missing.
func (r *fanoutResult) run(ctx context.Context, cfg FirehoseConfig, l *lane, key string) error {
	r.base = time.Now()
	all := make([]*subscriber, cfg.Subscribers)
	var delivered atomic.Int64 // measured events received, over all subscribers
	parallel(len(all), func(i int) {
		f, err := openFollower(ctx, l.laneURL(), key, protocol.PurposeNone, deviceFamily)
		if err != nil {
			r.errs.add("connection", 1, fmt.Sprintf("subscriber %d: %v", i+1, err))
			return
		}
		all[i] = &subscriber{follower: f}
	})
	if r.subs = slices.DeleteFunc(all, func(s *subscriber) bool { return s == nil }); len(r.subs) == 0 {
		return fmt.Errorf("no subscriber could connect: %s", r.errs.example())
	}
	for _, s := range r.subs {
		s.Follow(func(msg []byte, at time.Time) {
			switch d, v, ok := decodeBenchEvent(msg); {
			case !ok:
				s.bad++
			case d.N > 0: // 0: warm-up
				r.latency[v].record(time.Duration(at.Sub(r.base).Nanoseconds() - d.NS))
				s.received++
				delivered.Add(1)
				if d.N <= s.lastN[v] {
					s.disorder++
				}
				s.lastN[v] = d.N
			}
		})
	}
	defer r.closeSubscribers()
	c, err := fd1client.Open(ctx, l.laneURL(), key, protocol.PurposeNone, fd1client.Options{})
	if err != nil {
		return fmt.Errorf("injector: %w", err)
	}
	inj := &injector{c: c, hub: l.Hub, res: r, sentAt: map[int64]sentInfo{}}
	c.Follow(inj.reply)
	defer c.Close()
	if err := inj.inject(ctx, cfg.Rate, cfg.WarmUp, false); err != nil {
		return err
	}
	stopProfile, err := startProfile(cfg.CPUProfile)
	if err != nil {
		return err
	}
	mark := readCPUMark()
	err = inj.inject(ctx, cfg.Rate, cfg.Duration, true)
	r.window, r.cpu = time.Since(mark.at), mark.since()
	if stopProfile(); err != nil {
		return err
	}
	r.events = inj.awaitReplies(ctx, cfg.Drain)
	want := r.events * int64(len(r.subs))
	waitUntil(ctx, cfg.Drain, func() bool { return delivered.Load() >= want })
	r.closeSubscribers()
	r.deliveries = delivered.Load()
	// Every subscriber must get every accepted event, once and in order
	// (the hub publishes from one goroutine and each socket's queue is
	// first in, first out; only events that came in different ways may
	// cross, as the socket's take a longer road).
	for i, s := range r.subs {
		r.errs.add("missing", r.events-s.received, fmt.Sprintf("subscriber %d received %d of %d events", i+1, s.received, r.events))
		r.errs.add("disorder", s.disorder, fmt.Sprintf("subscriber %d received %d events out of order or twice", i+1, s.disorder))
	}
	return ctx.Err()
}

// closeSubscribers closes every socket at once (each waits for its
// reader), then counts those that had failed.
func (r *fanoutResult) closeSubscribers() {
	for _, s := range r.subs {
		go s.Close()
	}
	for i, s := range r.subs {
		s.close(&r.errs, fmt.Sprintf("subscriber %d", i+1), benchSC)
	}
}

// injector sends the events at a fixed rate, in turn through the hub and
// an inject_event socket whose replies a reader takes: an open loop, so
// that a slow server cannot slow the events down and hide its delay.
type injector struct {
	c   *fd1client.Conn
	hub *firehose.Hub
	res *fanoutResult

	mu     sync.Mutex
	sentAt map[int64]sentInfo // rq → when, for replies still due

	turns, numbered int64        // events sent, warm-up included, and measured ones: the sender's own
	sent, replied   atomic.Int64 // inject requests written, and their replies read
	accepted        atomic.Int64 // measured events the server accepted, both ways
}

type sentInfo struct {
	ns       int64
	measured bool
}

// inject sends rate events per second for d. The i-th event is due at
// start + i/rate; one sent late (this process was busy) goes at once and
// carries its real send time, so that the lateness is not charged to the
// server.
func (inj *injector) inject(ctx context.Context, rate int, d time.Duration, measured bool) error {
	interval := time.Second / time.Duration(rate)
	start := time.Now()
	for i := int64(0); ; i++ {
		due := start.Add(time.Duration(i) * interval)
		if due.Sub(start) >= d {
			return sleep(ctx, time.Until(start.Add(d))) // the window is d long, not d less the last gap
		}
		if err := sleep(ctx, time.Until(due)); err != nil {
			return err
		}
		data := benchEventData{Via: viaNames[inj.turns%2]}
		inj.turns++
		if measured {
			inj.numbered++
			data.N = inj.numbered
		}
		if data.Via == viaNames[viaSocket] {
			if err := inj.request(data, measured); err != nil {
				return err
			}
			continue
		}
		data.NS = inj.res.now() // as inject_event's handler does, stamped just before
		if err := inj.hub.PublishMemory(deviceFamily, benchSC, data.body()); err != nil {
			inj.res.errs.add("publish", 1, fmt.Sprintf("hub.PublishMemory: %v", err))
		} else if measured {
			inj.accepted.Add(1)
		}
	}
}

// request writes one inject request stamped just before the write. The
// lock is held over the write, so that the reader finds the request's
// entry however soon the reply comes.
func (inj *injector) request(data benchEventData, measured bool) error {
	inj.mu.Lock()
	defer inj.mu.Unlock()
	data.NS = inj.res.now()
	rq, err := inj.c.Request(&fd1client.Request{A: "fd1.debug.inject_event", V: map[string]any{
		"event": deviceFamily, "sc": benchSC, "data": data.body(),
	}})
	if err != nil {
		return fmt.Errorf("injector: %w", err)
	}
	inj.sentAt[rq] = sentInfo{ns: data.NS, measured: measured}
	inj.sent.Add(1)
	return nil
}

// reply matches a reply to its request: a success is an accepted event
// with its round trip, an error one the subscribers will not get.
func (inj *injector) reply(msg []byte, at time.Time) {
	r, err := fd1client.Decode(msg, at)
	var rp int64
	if err != nil || r.A != "" || json.Unmarshal(r.RP, &rp) != nil {
		return // not a reply (e.g. fn1.link.link_status)
	}
	inj.mu.Lock()
	info, ok := inj.sentAt[rp]
	delete(inj.sentAt, rp)
	inj.mu.Unlock()
	switch {
	case !ok:
		inj.res.errs.add("bad_reply", 1, fmt.Sprintf("injector: a reply to rq %d, which is not due", rp))
		return
	case r.Error != nil:
		inj.res.errs.add("inject_"+string(r.Error.Code), 1, fmt.Sprintf("inject_event: %s: %s", r.Error.Code, r.Error.Message))
	case info.measured:
		inj.accepted.Add(1)
		inj.res.injectTrip.record(time.Duration(at.Sub(inj.res.base).Nanoseconds() - info.ns))
	}
	inj.replied.Add(1)
}

// awaitReplies waits up to limit for every reply, counts those that
// never came, and says how many measured events the server accepted.
func (inj *injector) awaitReplies(ctx context.Context, limit time.Duration) int64 {
	sent := inj.sent.Load()
	waitUntil(ctx, limit, func() bool { return inj.replied.Load() >= sent })
	inj.res.errs.add("inject_no_reply", sent-inj.replied.Load(),
		fmt.Sprintf("injector: %d of %d inject requests unanswered after %s", sent-inj.replied.Load(), sent, limit))
	return inj.accepted.Load()
}
