// Package firehose is the firehose hub: it tails the lane DB's journal and
// fans its rows out to the firehoses that follow them, live and on replay
// after a reconnect, with their filters. It knows journal rows, not
// sales: every data event it sends is a row some domain package wrote,
// and the event families it serves are described to it at wiring time
// (Family). Memory events (a device's readings, request traces) are
// published to it directly.
package firehose

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/greenlane-pos/greenlane/internal/setting"
	"github.com/greenlane-pos/greenlane/lanedb"
	"github.com/greenlane-pos/greenlane/protocol"
)

// Data events come from the lane DB's journal: the hub tails it, so what
// a subscriber sees live and what it replays after a reconnect are the
// same rows in the same order, with the same seq, including rows another
// program wrote. Memory events are published directly and never replayed.
// One goroutine owns every subscription, which makes "replay, then go
// live" free of gaps and duplicates: nothing is published while a
// subscription is being set up.

// HubConfig tunes the hub. DefaultHubConfig holds every default.
type HubConfig struct {
	// Poll is how often the hub looks for journal rows written by other
	// programs (its own writes wake it at once): 1ms to 1m. Default 250ms.
	Poll time.Duration
	// StorePoll replaces Poll on a PostgreSQL store database, where the
	// other instances' sales are the rule, not the exception, and a
	// display on one must see a sale made on another live: 1ms to 1m.
	// Default 25ms.
	StorePoll time.Duration
	// MaxReplay caps the events one open_firehose with since replays:
	// 1 to 10000000. Default 10000.
	MaxReplay int
	// ReplayScan caps the journal one open_firehose with since reads,
	// matching its filters or not, in bytes of event bodies (and 256 a
	// row): a narrow filter over a long journal must not make one open a
	// long job. Past it the ack says catching_up, with the seq to resume
	// from. 64 KiB to 1 GiB. Default 4 MiB.
	ReplayScan int
	// Replays caps the replays read at once, lane-wide; more wait their
	// turn, taken in turn by key (one key's opens never stand in front of
	// another key's). A replay runs beside the hub, not on it, so live
	// events never wait for one; this keeps replays from taking every CPU.
	// 1 to 1024. Default 1.
	Replays int
	// MaxPerSocket caps the firehoses open on one socket: 1 to 100000.
	// Default 64.
	MaxPerSocket int
	// MaxPerKey caps the firehoses open with one API key over all its
	// sockets: 1 to 1000000. A device needs a few; every firehose costs
	// the hub work for every event, so one key (up to its 32 sockets)
	// gets no more than one socket may have. Default 64.
	MaxPerKey int
}

// Validate reports every field out of its range, each as a
// *setting.Error naming the field. (NewHub still takes a zero Poll or
// MaxReplay as the default.)
func (c HubConfig) Validate() error {
	return errors.Join(
		setting.Range("Poll", c.Poll, time.Millisecond, time.Minute),
		setting.Range("StorePoll", c.StorePoll, time.Millisecond, time.Minute),
		setting.Range("MaxReplay", c.MaxReplay, 1, 10_000_000),
		setting.Range("ReplayScan", c.ReplayScan, 64<<10, 1<<30),
		setting.Range("Replays", c.Replays, 1, 1024),
		setting.Range("MaxPerSocket", c.MaxPerSocket, 1, 100_000),
		setting.Range("MaxPerKey", c.MaxPerKey, 1, 1_000_000),
	)
}

// DefaultHubConfig returns the defaults.
func DefaultHubConfig() HubConfig {
	return HubConfig{Poll: 250 * time.Millisecond, StorePoll: 25 * time.Millisecond, MaxReplay: 10000, MaxPerSocket: 64, MaxPerKey: 64,
		ReplayScan: 4 << 20, Replays: 1}
}

// Sink is where a subscription's packets go: a socket's send queue.
type Sink interface {
	// Enqueue queues one packet; it must not block the hub.
	Enqueue(b []byte)
	// EnqueueGroup queues packets that go out as one burst (an ack and
	// its replay).
	EnqueueGroup(group [][]byte)
	// SocketID names the socket: firehoses are counted, named (by rq) and
	// closed per socket.
	SocketID() uint64
	// ReplayBudget is how many bytes of replay the sink takes in one burst.
	ReplayBudget() int
	// Crowded reports whether the sink's queue is over half full: the hub
	// gives it time to drain before it publishes more of a backlog.
	Crowded() bool
}

// Subscription is one open firehose.
type Subscription struct {
	Sink   Sink
	ID     string          // the rq that opened it, as text
	RP     json.RawMessage // that rq, as sent
	Family string          // a Family's Name
	Conds  []protocol.Cond
	// Tablet, when set, keeps only events whose source.tablet (or tablet)
	// is this tablet.
	Tablet string
	// Physkey, when set, keeps only events about this sale (salephyskey or
	// physkey).
	Physkey string
	// OwnOnly, when set, is a caller that does not see the whole lane (a
	// presell tablet): the journal events it gets are only those of sales
	// its keys created.
	OwnOnly *protocol.Caller
	// Key is the id of the API key the firehose counts against
	// (HubConfig.MaxPerKey) and whose replays take their turn together;
	// KeyName names it in a refusal. "" counts against no key.
	Key, KeyName string

	// state is where the firehose is in its life (subPending, …); a
	// closed one is skipped at once, wherever the hub is.
	state atomic.Int32
	// after is the last seq its replay sent: live events up to it are
	// not sent again.
	after int64

	// filter is Physkey, Tablet and Conds, shared with the firehoses that
	// ask for the same (nil: it keeps everything). Set when it opens and
	// by Update, under the hub's mu.
	filter *filter

	// rt is the open request's rt, which every event of the firehose
	// carries (SPEC §1.1: it tags the tab the socket carries it for).
	// Subscribe reads it from the ack, the reply to that request.
	rt json.RawMessage
	// budget is its sink's ReplayBudget, asked once as it opens: the most
	// bytes one event may take (see fits).
	budget int
}

// A firehose's states: counted from its open until it is closed, live
// (in the hub's lists) from its ack on.
const (
	subPending int32 = iota
	subLive
	subClosed
)

// event is one event on its way to subscribers: v is serialised once.
type event struct {
	family string
	sc     string
	noSC   bool  // the family's packets carry no sc
	seq    int64 // 0 for memory events
	v      json.RawMessage
	fields map[string]any // v decoded, with _sc, for filters; nil until needed
	// verdicts holds each filter's answer for this event (filter.keeps).
	verdicts map[*filter]bool
	// creator is the name of the key that created the sale the event is
	// about, once looked up (creatorKnown).
	creator      string
	creatorKnown bool
}

// Hub fans events out to firehoses.
type Hub struct {
	db   *lanedb.DB
	cfg  HubConfig
	log  *slog.Logger
	ops  chan func()
	wake chan struct{}

	// written holds the rows handed over by Written, at most maxWritten,
	// until the hub takes them; writtenLost says some were not kept.
	// fresh wakes the hub for them.
	writtenMu   sync.Mutex
	written     []lanedb.JournalEntry
	writtenLost bool
	fresh       chan struct{}

	// Set by NewHub, read-only after.
	families  []Family
	byName    map[string]*Family
	byJournal map[string]*Family       // journal family → Family
	following map[string]*atomic.Int64 // open firehoses by family
	names     string                   // every family's name, sorted, for errors

	// replays lets replays read, HubConfig.Replays at once, in turn by key.
	replays *replayGate

	// creators maps a sale's physkey to the name of the key that created
	// it; replays read it beside the run goroutine.
	creatorsMu sync.Mutex
	creators   map[string]string

	// Owned by the run goroutine.
	subs map[string][]*Subscription // live firehoses by family, closed ones until purged
	head int64                      // last journal seq published
	// behind says more journal rows are due at once: a backlog, worked
	// through a turn at a time (Run).
	behind bool
	// latest holds, for each family with Current, the newest row of each
	// journal physkey the hub has seen, at most maxLatest of them: what a
	// firehose opened without since starts from (Family.Current).
	latest map[string]map[string]latestRow
	// readFailures counts journal reads failed in a row, and warned is
	// when the last of them was logged (see journalFailed).
	readFailures int
	warned       time.Time

	// mu guards the firehoses counted open (from before an open's replay
	// until closed), by socket and rq and by key, and the filters they
	// share. Opening and closing take it, not the hub's goroutine, so a
	// busy hub neither delays a close nor keeps a closed socket's
	// firehoses costing work.
	mu       sync.Mutex
	bySocket map[uint64]map[string]*Subscription
	byKey    map[string]int
	filters  filters
	// purgeDue says a firehose closed: the hub drops closed ones from
	// its lists before its next event.
	purgeDue atomic.Bool
	// headSeen is head, for readers off the hub goroutine (Stats).
	headSeen atomic.Int64

	published atomic.Int64
	dropped   atomic.Int64
	// reads counts the journal reads of tail: rows told by Written and
	// following on cost none.
	reads atomic.Int64
	// drainWaits counts the turns of a backlog that waited for crowded
	// firehoses to drain (awaitRoom).
	drainWaits atomic.Int64
	// unsendable is the newest seq of a row warned about as one that cannot
	// be sent (not JSON, too big): each replay meets it again, and warns no
	// more.
	unsendable atomic.Int64
	// filterRuns counts filter evaluations: the hub's work per event
	// beyond queueing packets.
	filterRuns atomic.Int64
}

// NewHub makes a hub over the lane DB's journal serving families; Run
// starts it. Family names, and the journal families they follow, must be
// unique: a clash is a wiring mistake and panics.
func NewHub(db *lanedb.DB, cfg HubConfig, log *slog.Logger, families ...Family) *Hub {
	if cfg.Poll <= 0 {
		cfg.Poll = DefaultHubConfig().Poll
	}
	if cfg.StorePoll <= 0 {
		cfg.StorePoll = DefaultHubConfig().StorePoll
	}
	if cfg.MaxReplay <= 0 {
		cfg.MaxReplay = DefaultHubConfig().MaxReplay
	}
	if cfg.ReplayScan <= 0 {
		cfg.ReplayScan = DefaultHubConfig().ReplayScan
	}
	if cfg.Replays <= 0 {
		cfg.Replays = DefaultHubConfig().Replays
	}
	h := &Hub{db: db, cfg: cfg, log: log, ops: make(chan func(), 1024), wake: make(chan struct{}, 1), fresh: make(chan struct{}, 1), subs: map[string][]*Subscription{},
		replays: newReplayGate(cfg.Replays),
		filters: filters{byKey: map[string]*filter{}}, bySocket: map[uint64]map[string]*Subscription{}, byKey: map[string]int{},
		creators: map[string]string{}, families: slices.Clone(families), byName: map[string]*Family{}, byJournal: map[string]*Family{},
		following: map[string]*atomic.Int64{}, latest: map[string]map[string]latestRow{}}
	names := make([]string, 0, len(families))
	for i := range h.families {
		f := &h.families[i]
		if f.Name == "" || h.byName[f.Name] != nil {
			panic(fmt.Sprintf("firehose: family name %q is empty or given twice", f.Name))
		}
		h.byName[f.Name] = f
		h.following[f.Name] = new(atomic.Int64)
		names = append(names, f.Name)
		if f.Journal == "" {
			continue
		}
		if h.byJournal[f.Journal] != nil || f.Body == nil {
			panic(fmt.Sprintf("firehose: family %q: journal family %q given twice or without a Body", f.Name, f.Journal))
		}
		h.byJournal[f.Journal] = f
		if f.Current != nil {
			h.latest[f.Name] = map[string]latestRow{}
		}
	}
	sort.Strings(names)
	h.names = strings.Join(names, ", ")
	return h
}

// Notify tells the hub the journal grew. It never blocks.
func (h *Hub) Notify() {
	select {
	case h.wake <- struct{}{}:
	default:
	}
}

// Written hands the hub the journal rows a transaction of this process
// has just committed (lanedb's DB.OnJournal), in place of Notify: the hub
// publishes them without reading them back, when they follow on from the
// rows already published. Otherwise (another program wrote in between,
// the journal started over, rows were not kept) the hub reads the journal
// as Notify has it do. It never blocks.
func (h *Hub) Written(rows []lanedb.JournalEntry) {
	h.writtenMu.Lock()
	if len(h.written)+len(rows) <= maxWritten {
		h.written = append(h.written, rows...)
	} else {
		h.writtenLost = true
	}
	h.writtenMu.Unlock()
	select { // unless it is woken already
	case h.fresh <- struct{}{}:
	default:
	}
}

// maxWritten bounds the rows Written keeps for the hub: a hub that falls
// this far behind reads them back from the journal instead.
const maxWritten = 1024

// Run publishes until ctx ends. It starts at the journal's current end:
// older events are for replay.
//
// It works in turns of bounded work: the operations queued (opens going
// live, option changes, memory events), then at most tailBatch journal
// rows. A backlog of rows (a burst of edits, many firehoses) is worked
// through turn by turn, so an open or a close never waits for all of it,
// and each turn waits for the firehoses' queues to drain (awaitRoom).
func (h *Hub) Run(ctx context.Context) {
	if _, newest, err := lanedb.JournalBounds(ctx, h.db.Read); err == nil {
		h.setHead(newest)
		h.seedLatest(ctx, newest)
	}
	// Polling is how other programs' journal rows arrive; it must work
	// alone, so that any PostgreSQL-compatible engine can serve a store. On
	// PostgreSQL every instance appends under one lock (lanedb's
	// lockJournal), so seq order is commit order and "seq > head" misses
	// nothing.
	every := h.cfg.Poll
	if h.db.Postgres() {
		every = h.cfg.StorePoll
	}
	poll := time.NewTicker(every)
	defer poll.Stop()
	for ctx.Err() == nil {
		h.runQueued()
		if h.behind {
			h.awaitRoom(ctx)
			h.behind = h.catchUp(ctx)
			continue
		}
		select {
		case <-ctx.Done():
			return
		case op := <-h.ops:
			op()
		case <-h.wake:
			h.behind = h.tail(ctx)
		case <-h.fresh:
			h.behind = h.takeWritten(ctx)
		case <-poll.C:
			h.behind = h.tail(ctx)
		}
	}
}

// runQueued runs the operations queued when it starts, no more: ones
// queued meanwhile wait for the next turn, so a flood of memory events
// cannot keep the journal from being followed either.
func (h *Hub) runQueued() {
	for n := len(h.ops); n > 0; n-- {
		select {
		case op := <-h.ops:
			op()
		default:
			return
		}
	}
}

// do runs fn on the hub goroutine and waits for its error, or for ctx.
// Given up on, fn may still run later: its error comes back over a
// channel, never through a variable the caller would read meanwhile (a
// data race that -race caught on an open given up while it waited).
func (h *Hub) do(ctx context.Context, fn func() error) error {
	done := make(chan error, 1)
	select {
	case h.ops <- func() { done <- fn() }:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// tailBatch is the most journal rows the hub publishes in one turn.
const tailBatch = 100

// catchUp takes the next turn of a backlog: of the rows handed over while
// some are left, else of the journal.
func (h *Hub) catchUp(ctx context.Context) bool {
	h.writtenMu.Lock()
	handed := len(h.written) > 0 || h.writtenLost
	h.writtenMu.Unlock()
	if handed {
		return h.takeWritten(ctx)
	}
	return h.tail(ctx)
}

// drainWait bounds how long the hub waits before one turn of a backlog
// for crowded firehoses to drain. A reader that does not drain is dropped
// by its queue's bound once the hub goes on; it must not hold the others
// up for longer.
const drainWait = 250 * time.Millisecond

// awaitRoom waits, running the operations queued meanwhile, until no live
// firehose's queue is crowded, or drainWait has passed. A backlog (hundreds
// of rows another program wrote at once) otherwise goes out far faster
// than a socket writes it, and fills the queue of every display following
// it, however fast it reads: each was dropped as a slow client.
func (h *Hub) awaitRoom(ctx context.Context) {
	if !h.crowded() {
		return
	}
	h.drainWaits.Add(1)
	deadline := time.NewTimer(drainWait)
	defer deadline.Stop()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for h.crowded() {
		select {
		case <-ctx.Done():
			return
		case <-deadline.C:
			return
		case op := <-h.ops:
			op()
		case <-tick.C:
		}
	}
}

// crowded reports whether a live firehose's queue is crowded.
func (h *Hub) crowded() bool {
	for _, subs := range h.subs {
		for _, s := range subs {
			if s.state.Load() == subLive && s.Sink.Crowded() {
				return true
			}
		}
	}
	return false
}

// tail publishes the journal rows after head, at most tailBatch of them,
// and reports whether more may follow at once.
func (h *Hub) tail(ctx context.Context) bool {
	h.purge()
	h.reads.Add(1)
	rows, err := lanedb.JournalAfter(ctx, h.db.Read, h.head, tailBatch)
	if err != nil {
		if ctx.Err() == nil {
			h.journalFailed(err)
		}
		return false
	}
	if h.readFailures > 0 {
		h.log.Info("firehose: the journal reads again", "failed_reads", h.readFailures)
		h.readFailures = 0
	}
	for _, r := range rows {
		h.publishRow(r)
	}
	if len(rows) == 0 && h.restarted(ctx) {
		return true // publish what the restarted journal already holds
	}
	return len(rows) == tailBatch
}

// publishRow publishes one journal row, the next after head.
func (h *Hub) publishRow(r lanedb.JournalEntry) {
	h.setHead(r.Seq)
	if ev, ok := h.journalEvent(r); ok {
		h.remember(r, ev)
		h.publish(ev)
	}
}

// takeWritten publishes the rows handed over by Written when they follow
// head seq by seq, the rows a read of the journal would return. Anything
// else reads the journal (tail): a row another program wrote in between,
// rows a poll already read, a journal started over, rows not kept. Like
// tail, it publishes at most tailBatch rows in one turn and reports
// whether more follow at once; they wait for the next turn, after the
// operations queued meanwhile.
func (h *Hub) takeWritten(ctx context.Context) bool {
	h.writtenMu.Lock()
	rows, lost := h.written, h.writtenLost
	h.written, h.writtenLost = nil, false
	more := !lost && len(rows) > tailBatch
	if more {
		h.written = rows[tailBatch:len(rows):len(rows)]
		rows = rows[:tailBatch]
	}
	h.writtenMu.Unlock()
	if lost || !follows(h.head, rows) {
		return h.tail(ctx) || more
	}
	h.purge()
	for _, r := range rows {
		h.publishRow(r)
	}
	return more
}

// follows reports whether rows are the seqs right after head, in order.
func follows(head int64, rows []lanedb.JournalEntry) bool {
	for i, r := range rows {
		if r.Seq != head+1+int64(i) {
			return false
		}
	}
	return true
}

// setHead moves head, for the hub and for Stats.
func (h *Hub) setHead(seq int64) {
	h.head = seq
	h.headSeen.Store(seq)
}

// purge drops closed firehoses from the hub's lists, when one closed.
func (h *Hub) purge() {
	if !h.purgeDue.Swap(false) {
		return
	}
	for fam, list := range h.subs {
		h.subs[fam] = slices.DeleteFunc(list, func(s *Subscription) bool { return s.state.Load() == subClosed })
	}
}

// journalWarnEvery is how often a journal that cannot be read is logged
// again while it stays so.
const journalWarnEvery = 10 * time.Second

// journalFailed logs a failed journal read: the first of a run, then one
// every journalWarnEvery with the count. The hub polls a store database
// every 25ms, so a PostgreSQL that is down for a minute would otherwise
// write thousands of the same line.
func (h *Hub) journalFailed(err error) {
	h.readFailures++
	if h.readFailures == 1 || time.Since(h.warned) >= journalWarnEvery {
		h.warned = time.Now()
		h.log.Warn("firehose: read journal", "err", h.db.Unreachable(err), "failed_reads", h.readFailures)
	}
}

// restarted reports whether the journal now ends before head, and if so
// starts head over: 'fixture reset' (or load --replace) empties the journal
// and restarts seq at 1 while the lane may be running, and a hub waiting
// for seq > head would otherwise stay silent until seq caught up.
func (h *Hub) restarted(ctx context.Context) bool {
	_, newest, err := lanedb.JournalBounds(ctx, h.db.Read)
	if err != nil || newest >= h.head {
		return false
	}
	h.log.Info("firehose: the journal was reset; following it from its start", "was", h.head, "now", newest)
	h.setHead(0)
	for _, m := range h.latest {
		clear(m) // rows of a journal that is gone
	}
	for _, list := range h.subs {
		for _, s := range list {
			s.after = 0 // seqs of a journal that is gone
		}
	}
	return true
}

// maxLatest bounds the rows kept per family for opens without since (the
// newest rows of that many sales): a lane has far fewer sales in progress
// at once, and an open looks through them on the hub's goroutine.
const maxLatest = 256

// seedRows is how many of the journal's newest rows Run reads to seed
// latest, so that a display opened right after the lane restarts still
// finds the sale in progress. One bounded read by seq, once.
const seedRows = 1000

// seedLatest remembers the rows among the journal's newest seedRows, up
// to newest, when some family wants them.
func (h *Hub) seedLatest(ctx context.Context, newest int64) {
	if len(h.latest) == 0 || newest == 0 {
		return
	}
	rows, err := lanedb.JournalAfter(ctx, h.db.Read, max(newest-seedRows, 0), seedRows)
	if err != nil {
		h.log.Warn("firehose: read the journal's newest rows; displays opened before the next change show idle", "err", err)
		return
	}
	for _, r := range rows {
		if r.Seq > newest {
			continue
		}
		if ev, ok := h.journalEvent(r); ok {
			h.remember(r, ev)
		}
	}
}

// latestRow is a remembered row with its event, decoded as it was for
// publishing: an open matches against it without decoding it again.
type latestRow struct {
	row lanedb.JournalEntry
	ev  *event
}

// remember keeps r (as ev) as the newest row of its physkey when its
// family has Current. Past 2×maxLatest physkeys it keeps the newest
// maxLatest: one sort now and then, not a scan per row.
func (h *Hub) remember(r lanedb.JournalEntry, ev *event) {
	m := h.latest[ev.family]
	if m == nil {
		return // a family without Current
	}
	m[r.Physkey] = latestRow{row: r, ev: ev}
	if len(m) <= 2*maxLatest {
		return
	}
	for _, o := range newestFirst(m)[maxLatest:] {
		delete(m, o.row.Physkey)
	}
}

// newestFirst is m's rows, the newest first.
func newestFirst(m map[string]latestRow) []latestRow {
	rows := make([]latestRow, 0, len(m))
	for _, r := range m {
		rows = append(rows, r)
	}
	slices.SortFunc(rows, func(a, b latestRow) int { return cmp.Compare(b.row.Seq, a.row.Seq) })
	return rows
}

// current is the packet a firehose of fam opened without since starts
// with: the newest remembered row s matches, when fam.Current says it
// shows a state still in progress, else nil. A match that is over (a
// sale's idle) means nothing: a live firehose would have shown that last.
// It runs on the hub goroutine, just before s goes live, and looks at
// most at the newest maxLatest rows.
func (h *Hub) current(s *Subscription, fam *Family) []byte {
	m := h.latest[fam.Name]
	if len(m) == 0 {
		return nil
	}
	rows := newestFirst(m)
	for _, r := range rows[:min(len(rows), maxLatest)] {
		if !h.matches(s, r.ev) {
			continue
		}
		if !fam.Current(r.row) {
			return nil
		}
		if p := packet(s.RP, s.rt, r.ev); len(p) <= s.budget {
			return p
		}
		return nil // too big for one burst: the next change brings it
	}
	return nil
}

// journalEvent turns a journal row into an event of the family that
// follows its journal family; rows of no family served here are skipped.
func (h *Hub) journalEvent(r lanedb.JournalEntry) (*event, bool) {
	f := h.byJournal[r.Family]
	if f == nil {
		return nil, false
	}
	v, err := f.Body(r)
	if err != nil {
		h.unsendableRow(r.Seq, "family", r.Family, "err", err)
		return nil, false
	}
	return &event{family: f.Name, sc: r.Family + "." + r.Event, noSC: f.NoSC, seq: r.Seq, v: v}, true
}

// fits reports whether packet p of ev fits s's sink in one burst. One that
// does not (a row another program wrote, megabytes long) is passed over,
// live and in replays alike: sent, it would drop the socket as a slow
// client, and a replay could never get past it.
func (h *Hub) fits(s *Subscription, ev *event, p []byte) bool {
	if len(p) <= s.budget {
		return true
	}
	if ev.seq > 0 {
		h.unsendableRow(ev.seq, "bytes", len(p), "err", "larger than a subscriber takes in one burst (half of --send-queue-bytes on a socket)")
	}
	return false
}

// unsendableRow warns that journal row seq cannot be sent, once: each
// replay meets it again.
func (h *Hub) unsendableRow(seq int64, args ...any) {
	if old := h.unsendable.Load(); seq > old && h.unsendable.CompareAndSwap(old, seq) {
		h.log.Warn("firehose: a journal row cannot be sent", append([]any{"seq", seq}, args...)...)
	}
}

// publish delivers ev to the firehoses of its family it matches. Those
// closed meanwhile are dropped first.
func (h *Hub) publish(ev *event) {
	h.purge()
	for _, s := range h.subs[ev.family] {
		if s.state.Load() != subLive || ev.seq > 0 && ev.seq <= s.after {
			continue
		}
		if !h.matches(s, ev) {
			continue
		}
		if p := packet(s.RP, s.rt, ev); h.fits(s, ev, p) {
			s.Sink.Enqueue(p)
			h.published.Add(1)
		}
	}
}

// decoded is ev's v as a map, decoded once, with the event's schema name
// as "_sc" (a q filter may ask for it) in place of any field of that name.
func (ev *event) decoded() map[string]any {
	if ev.fields == nil {
		ev.fields = map[string]any{}
		_ = json.Unmarshal(ev.v, &ev.fields)
		ev.fields["_sc"] = ev.sc
	}
	return ev.fields
}

// matches applies a subscription's options and q filter to an event.
// Only journal events (seq > 0) are kept from an OwnOnly caller: they are
// about sales, whose creator the lane DB knows; memory events are not.
// Nothing is copied per firehose, and firehoses that share a filter share
// its verdict.
func (h *Hub) matches(s *Subscription, ev *event) bool {
	if s.OwnOnly != nil && ev.seq > 0 && !s.OwnOnly.HasKeyName(h.creator(ev)) {
		return false
	}
	return s.filter.keeps(ev, &h.filterRuns)
}

// maxCreators bounds the hub's memory of who created which sale; past it
// the memory starts afresh (a lookup is one indexed read).
const maxCreators = 10000

// creator is the name of the key that created the sale an event is about
// ("" when the event names none or the sale cannot be read), read from the
// lane DB once per sale: the creator of a sale never changes.
func (h *Hub) creator(ev *event) string {
	if !ev.creatorKnown {
		ev.creator, ev.creatorKnown = h.lookupCreator(ev), true
	}
	return ev.creator
}

// lookupCreator is creator's lookup: the hub's memory, else the lane DB.
func (h *Hub) lookupCreator(ev *event) string {
	f := ev.decoded()
	physkey, _ := f["salephyskey"].(string)
	if physkey == "" {
		physkey, _ = f["physkey"].(string)
	}
	if physkey == "" {
		return ""
	}
	h.creatorsMu.Lock()
	name, ok := h.creators[physkey]
	h.creatorsMu.Unlock()
	if ok {
		return name
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	sale, err := lanedb.GetSale(ctx, h.db.Read, physkey)
	if err != nil {
		if !errors.Is(err, lanedb.ErrNoSale) {
			h.log.Warn("firehose: read the creator of a sale", "physkey", physkey, "err", err)
		}
		return "" // unknown: a tablet's firehose leaves the event out
	}
	h.creatorsMu.Lock()
	defer h.creatorsMu.Unlock()
	if len(h.creators) >= maxCreators {
		clear(h.creators)
	}
	h.creators[physkey] = sale.CreatedBy
	return sale.CreatedBy
}

// packet is the wire form {rp, rt, sc, v, seq}, built around the event's
// serialised v so that v is encoded once for every subscriber; rt only
// when the firehose's open had one.
func packet(rp, rt json.RawMessage, ev *event) []byte {
	b := make([]byte, 0, len(ev.v)+len(rp)+len(rt)+len(ev.sc)+48)
	b = append(b, `{"rp":`...)
	b = append(b, rp...)
	if len(rt) > 0 {
		b = append(b, `,"rt":`...)
		b = append(b, rt...)
	}
	if ev.sc != "" && !ev.noSC {
		b = append(b, `,"sc":`...)
		b = strconv.AppendQuote(b, ev.sc)
	}
	b = append(b, `,"v":`...)
	b = append(b, ev.v...)
	if ev.seq > 0 {
		b = append(b, `,"seq":`...)
		b = strconv.AppendInt(b, ev.seq, 10)
	}
	return append(b, '}')
}

// Subscribe adds s after replaying the journal rows after since (when
// since > 0 and s follows a journal family), or, without since, the row
// of the state in progress (Family.Current). The ack is written first,
// then the replay, then live events.
//
// The replay is read on the caller's goroutine, up to the journal's end
// as it was then; only the rows committed meanwhile are read on the hub's,
// just before s goes live, so that nothing falls between the two and no
// live firehose waits for a long replay.
func (h *Hub) Subscribe(ctx context.Context, s *Subscription, since int64, ack func(ReplayState) []byte) error {
	fam := h.byName[s.Family]
	if fam == nil {
		return fmt.Errorf("firehose: subscribe to family %q, which this hub does not serve", s.Family)
	}
	// The ack is the reply to the open request, which echoes its rt
	// (SPEC §3.1): the events take it from there, so they carry exactly
	// what the reply does. ack only builds bytes; calling it twice is free
	// of effects.
	s.rt = rtOf(ack(ReplayState{}))
	if err := ctx.Err(); err != nil {
		return err // its socket is gone already
	}
	// Counted from here, before any replay is read (a refusal costs
	// nothing, and opens pipelined on many sockets count at once), until
	// it is closed or fails to go live.
	if err := h.admit(s); err != nil {
		return err
	}
	defer func() {
		if s.state.Load() != subLive {
			h.forget(s)
		}
	}()
	replaying := since > 0 && fam.Journal != ""
	page := &replayPage{last: since}
	if replaying {
		if err := h.replays.enter(ctx, s.Key); err != nil {
			return err
		}
		defer h.replays.leave(s.Key)
		var err error
		if page, err = h.replay(ctx, s, since); err != nil {
			return err
		}
	} else {
		s.budget = s.Sink.ReplayBudget()
	}
	return h.do(ctx, func() error { return h.goLive(ctx, s, fam, since, page, ack) })
}

// goLive, on the hub goroutine, reads what the replay has not (rows
// committed while it read, up to head), queues the ack and that burst,
// and makes s live unless the burst did not hold all it has to catch up
// on. Unless the hub is in a backlog, one bounded turn of the journal
// runs first, so that a change committed just before the open is in its
// ack's seq; a backlog is not waited for: s follows it live from head.
func (h *Hub) goLive(ctx context.Context, s *Subscription, fam *Family, since int64, page *replayPage, ack func(ReplayState) []byte) error {
	if err := ctx.Err(); err != nil {
		return err // the open gave up while this waited its turn
	}
	if s.state.Load() == subClosed {
		return protocol.Errorf(protocol.CodeNotFound, "the firehose was closed while it opened")
	}
	if !h.behind {
		// Not in a backlog, where opens (a burst of displays reconnecting)
		// would each publish a turn to everyone without awaitRoom: the open
		// goes live at head and gets the backlog with the others.
		h.behind = h.tail(ctx)
	}
	replaying := since > 0 && fam.Journal != ""
	if replaying && !page.more {
		if err := h.replayRows(ctx, s, page, h.head); err != nil {
			return err
		}
	}
	if since == 0 && fam.Current != nil {
		if p := h.current(s, fam); p != nil {
			page.packets = append(page.packets, p)
		}
	}
	group := make([][]byte, 0, len(page.packets)+1)
	// A replay may have read past head (the hub is behind): its ack says
	// so, and the firehose skips those rows when the hub publishes them.
	// A since past the journal's end (a restored lane DB) reads nothing
	// and shows in the ack as a seq below it.
	group = append(group, ack(ReplayState{Head: max(h.head, page.readTo), Replayed: len(page.packets), Truncated: page.truncated,
		More: page.more, Resume: page.last}))
	group = append(group, page.packets...)
	if !page.more {
		// Following before the ack can leave: a client that has its
		// ack may at once make an event a publisher only builds while
		// someone follows (a trace). Nothing is published to s before
		// this op ends, so the ack still goes first.
		h.following[s.Family].Add(1)
		if !s.state.CompareAndSwap(subPending, subLive) {
			h.following[s.Family].Add(-1)
			return protocol.Errorf(protocol.CodeNotFound, "the firehose was closed while it opened")
		}
		s.after = page.readTo
		h.subs[s.Family] = append(h.subs[s.Family], s)
	}
	s.Sink.EnqueueGroup(group) // with page.more, not live yet: the client reopens from resume to catch up
	return nil
}

// rtOf is the rt of a reply packet, nil when it has none; an rt sent as
// null is reflected as null, as the reply does (SPEC §2).
func rtOf(reply []byte) json.RawMessage {
	var r struct {
		RT json.RawMessage `json:"rt"`
	}
	if json.Unmarshal(reply, &r) != nil {
		return nil
	}
	return r.RT
}

// admit counts s open, or refuses it when its socket already has a
// firehose of its rq open, or its most firehoses, or its key has.
func (h *Hub) admit(s *Subscription) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	socketID := s.Sink.SocketID()
	onSocket := h.bySocket[socketID]
	if onSocket[s.ID] != nil {
		return protocol.Errorf(protocol.CodeConflict, "a firehose opened by rq %q is already open on this socket; close it first or use another rq", s.ID)
	}
	if open := len(onSocket); h.cfg.MaxPerSocket > 0 && open >= h.cfg.MaxPerSocket {
		// A count, not a rate: waiting frees nothing (limit_reached, as the
		// key's cap below).
		return protocol.Errorf(protocol.CodeLimitReached, "this socket already has %d firehoses open, the most one socket may have; close some first", open)
	}
	if open := h.byKey[s.Key]; s.Key != "" && h.cfg.MaxPerKey > 0 && open >= h.cfg.MaxPerKey {
		return protocol.Errorf(protocol.CodeLimitReached,
			"key %q already has %d firehoses open over its sockets, the most one key may have; close some (closing a socket closes its firehoses), or give each device its own key", s.KeyName, open)
	}
	if onSocket == nil {
		onSocket = map[string]*Subscription{}
		h.bySocket[socketID] = onSocket
	}
	onSocket[s.ID] = s
	if s.Key != "" {
		h.byKey[s.Key]++
	}
	s.filter = h.filters.intern(s.Physkey, s.Tablet, s.Conds)
	return nil
}

// forget stops counting s, closes it and lets go of its filter, once;
// the hub skips it from now on and drops it from its lists before its
// next event. It reports whether s was still counted.
func (h *Hub) forget(s *Subscription) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.forgetLocked(s)
}

func (h *Hub) forgetLocked(s *Subscription) bool {
	socketID := s.Sink.SocketID()
	if h.bySocket[socketID][s.ID] != s {
		return false
	}
	delete(h.bySocket[socketID], s.ID)
	if len(h.bySocket[socketID]) == 0 {
		delete(h.bySocket, socketID)
	}
	if s.Key != "" {
		if h.byKey[s.Key]--; h.byKey[s.Key] <= 0 {
			delete(h.byKey, s.Key)
		}
	}
	h.filters.release(s.filter)
	if s.state.Swap(subClosed) == subLive {
		h.following[s.Family].Add(-1)
		h.purgeDue.Store(true)
	}
	return true
}

// ReplayState is what the ack of a firehose opened with since says.
type ReplayState struct {
	Head      int64 // the journal's end when the firehose opened
	Replayed  int   // events replayed in this reply
	Truncated bool  // events older than the journal keeps were lost
	More      bool  // the replay was cut to fit: reopen with since = Resume
	Resume    int64
}

// replayPage is one burst of replay, as packets for the subscriber, and
// what reading it has used of the budgets.
type replayPage struct {
	packets   [][]byte
	last      int64 // the last seq read: sent, or passed over
	readTo    int64 // the same, or since while no row was read; 0 when since is past the journal's end
	truncated bool
	more      bool
	budget    int // bytes the sink still takes
	scanLeft  int // bytes of journal still to be read (HubConfig.ReplayScan)
}

// replayRowCost is what reading one journal row counts against
// ReplayScan besides its body.
const replayRowCost = 256

// replay reads the journal rows after since that s wants, as many as fit
// the sink's replay budget, MaxReplay and ReplayScan. When they do not all
// fit, the page says so and the firehose does not go live: the client
// reopens from the last seq read, so nothing is lost between replay and
// live.
func (h *Hub) replay(ctx context.Context, s *Subscription, since int64) (*replayPage, error) {
	s.budget = s.Sink.ReplayBudget()
	page := &replayPage{last: since, budget: s.budget, scanLeft: h.cfg.ReplayScan}
	oldest, newest, err := lanedb.JournalBounds(ctx, h.db.Read)
	if err != nil {
		return page, err
	}
	page.truncated = oldest > since+1
	if since <= newest {
		// The client has the rows up to since, which the journal holds:
		// they count as read, also when the hub has yet to publish them
		// (it is behind another program's rows), so that the ack's seq is
		// not below since and they are not sent again live.
		page.readTo = since
	}
	return page, h.replayRows(ctx, s, page, math.MaxInt64)
}

// replayRows adds to page the rows after page.last, up to seq upTo, that
// s wants, until a budget runs out (page.more). At least one row is read
// each time, so that a client reopening from page.last always advances.
func (h *Hub) replayRows(ctx context.Context, s *Subscription, page *replayPage, upTo int64) error {
	read := false
	for page.last < upTo {
		rows, err := lanedb.JournalAfter(ctx, h.db.Read, page.last, 500)
		if err != nil || len(rows) == 0 {
			return err
		}
		for _, r := range rows {
			if r.Seq > upTo {
				return nil
			}
			cost := len(r.Detail) + replayRowCost
			if read && cost > page.scanLeft {
				page.more = true
				return nil
			}
			page.scanLeft -= cost
			read = true
			if f := h.byJournal[r.Family]; f == nil || f.Name != s.Family {
				page.last, page.readTo = r.Seq, r.Seq
				continue
			}
			ev, ok := h.journalEvent(r)
			if !ok || !h.matches(s, ev) {
				page.last, page.readTo = r.Seq, r.Seq
				continue
			}
			p := packet(s.RP, s.rt, ev)
			if !h.fits(s, ev, p) {
				page.last, page.readTo = r.Seq, r.Seq
				continue
			}
			if len(page.packets) >= h.cfg.MaxReplay || page.budget-len(p) < 0 {
				page.more = true
				return nil
			}
			page.budget -= len(p)
			page.packets = append(page.packets, p)
			page.last, page.readTo = r.Seq, r.Seq
		}
		if len(rows) < 500 {
			return nil
		}
	}
	return nil
}

// Unsubscribe closes the firehose id of a socket ("" closes all of them)
// and reports how many it closed. It does not wait for the hub: a closed
// firehose is skipped at once and dropped before the hub's next event.
// The error is always nil; it stays for callers that pass a ctx.
func (h *Hub) Unsubscribe(_ context.Context, socketID uint64, id string) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var closing []*Subscription
	for rq, s := range h.bySocket[socketID] {
		if id == "" || rq == id {
			closing = append(closing, s)
		}
	}
	for _, s := range closing {
		h.forgetLocked(s)
	}
	return len(closing), nil
}

// Update changes the options of an open firehose: fn runs on the hub's
// goroutine, between two events.
func (h *Hub) Update(ctx context.Context, socketID uint64, id string, fn func(s *Subscription) error) error {
	notFound := protocol.Errorf(protocol.CodeNotFound, "no firehose opened by rq %q is open on this socket", id)
	h.mu.Lock()
	s := h.bySocket[socketID][id]
	h.mu.Unlock()
	if s == nil {
		return notFound
	}
	return h.do(ctx, func() error {
		if s.state.Load() != subLive {
			return notFound
		}
		if err := fn(s); err != nil {
			return err
		}
		h.mu.Lock()
		defer h.mu.Unlock()
		h.filters.release(s.filter)
		s.filter = h.filters.intern(s.Physkey, s.Tablet, s.Conds)
		return nil
	})
}

// Following is how many firehoses follow family now: a publisher of
// costly events (a trace of every request) skips the work when none does.
func (h *Hub) Following(family string) int64 {
	if n := h.following[family]; n != nil {
		return n.Load()
	}
	return 0
}

// PublishMemory delivers an event of a memory family (device.event, a
// trace): no seq, no replay. It does not wait for delivery.
func (h *Hub) PublishMemory(family, sc string, v any) error {
	fam := h.byName[family]
	if fam == nil || fam.Journal != "" {
		return fmt.Errorf("firehose: publish to %q, which is not a memory family of this hub", family)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode event: %w", err)
	}
	ev := &event{family: family, sc: sc, noSC: fam.NoSC, v: b}
	select {
	case h.ops <- func() { h.publish(ev) }:
		return nil
	default:
		h.dropped.Add(1)
		return protocol.Errorf(protocol.CodeUnavailable, "the firehose hub is busy; event dropped")
	}
}

// HubStats are the hub's figures for fd1.diag.stats.
type HubStats struct {
	Firehoses map[string]int `json:"firehoses"` // open firehoses by family
	Head      int64          `json:"journal_head"`
	Published int64          `json:"events_delivered"`
	Dropped   int64          `json:"memory_events_dropped"`
}

// Stats reads the hub's figures. It does not wait for the hub: a
// support engineer looks at a busy hub too.
func (h *Hub) Stats(context.Context) (HubStats, error) {
	st := HubStats{Firehoses: map[string]int{}, Head: h.headSeen.Load(), Published: h.published.Load(), Dropped: h.dropped.Load()}
	for fam, n := range h.following {
		st.Firehoses[fam] = int(n.Load())
	}
	return st, nil
}

// Families are the families the hub serves, in the order NewHub got them.
func (h *Hub) Families() []Family {
	return append([]Family(nil), h.families...)
}

// Lookup maps what a client asks for in v.event to a family.
func (h *Hub) Lookup(event string) (Family, error) {
	for _, f := range h.families {
		if f.asks(event) {
			return f, nil
		}
	}
	return Family{}, protocol.Errorf(protocol.CodeBadArgument, "v.event: unknown event family %q (families: %s)", clipText(event), h.names)
}

func clipText(s string) string {
	if len(s) > 60 {
		return s[:60] + "…"
	}
	return s
}
