package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/greenlane-pos/greenlane/internal/setting"
	"github.com/greenlane-pos/greenlane/lanedb"
	"github.com/greenlane-pos/greenlane/protocol"
)

// The firehose hub. Data events (sales for customer displays, presells)
// come from the lane DB's journal: the hub tails it, so what a subscriber
// sees live and what it replays after a reconnect are the same rows in the
// same order, with the same seq, including rows another program wrote.
// Memory events (device.event, debugscope.trace) are published directly
// and never replayed. One goroutine owns every subscription, which makes
// "replay, then go live" free of gaps and duplicates: nothing is published
// while a subscription is being set up.

// Event families a firehose may follow.
const (
	famCustdisp = "custdisp.sale"
	famPresell  = "presell"
	famDevice   = "device.event"
	famTrace    = "debugscope.trace"
)

var families = []string{famCustdisp, famPresell, famDevice, famTrace}

// HubConfig tunes the hub. DefaultHubConfig holds every default.
type HubConfig struct {
	// Poll is how often the hub looks for journal rows written by other
	// programs (its own writes wake it at once): 1ms to 1m. Default 250ms.
	Poll time.Duration
	// MaxReplay caps the events one open_firehose with since replays:
	// 1 to 10000000. Default 10000.
	MaxReplay int
	// MaxPerSocket caps the firehoses open on one socket: 1 to 100000.
	// Default 64.
	MaxPerSocket int
}

// Validate reports every field out of its range, each as a
// *setting.Error naming the field. (NewHub still takes a zero Poll or
// MaxReplay as the default.)
func (c HubConfig) Validate() error {
	return errors.Join(
		setting.Range("Poll", c.Poll, time.Millisecond, time.Minute),
		setting.Range("MaxReplay", c.MaxReplay, 1, 10_000_000),
		setting.Range("MaxPerSocket", c.MaxPerSocket, 1, 100_000),
	)
}

// DefaultHubConfig returns the defaults.
func DefaultHubConfig() HubConfig {
	return HubConfig{Poll: 250 * time.Millisecond, MaxReplay: 10000, MaxPerSocket: 64}
}

// sink is where a subscription's packets go: a socket's send queue.
type sink interface {
	enqueue(b []byte)
	enqueueGroup(group [][]byte)
	socketID() uint64
	// replayBudget is how many bytes of replay the sink takes in one burst.
	replayBudget() int
}

// subscription is one open firehose.
type subscription struct {
	sink    sink
	id      string          // the rq that opened it, as text
	rp      json.RawMessage // that rq, as sent
	family  string
	conds   []protocol.Cond
	tablet  string // custdisp: only this tablet's sales
	physkey string // custdisp: only this sale
	// ownOnly, when set, is a caller that does not see the whole lane (a
	// presell tablet): the firehose carries only sales its keys created.
	ownOnly *protocol.Caller
}

// event is one event on its way to subscribers: v is serialised once.
type event struct {
	family string
	sc     string
	seq    int64 // 0 for memory events
	v      json.RawMessage
	fields map[string]any // v decoded, for filters; nil until needed
}

// Hub fans events out to firehoses.
type Hub struct {
	db   *lanedb.DB
	cfg  HubConfig
	log  *slog.Logger
	ops  chan func()
	wake chan struct{}

	// Owned by the run goroutine.
	subs     map[string][]*subscription // by family
	head     int64                      // last journal seq published
	creators map[string]string          // sale physkey → key name that created it

	traceSubs atomic.Int64
	published atomic.Int64
	dropped   atomic.Int64
}

// NewHub makes a hub over the lane DB's journal; Run starts it.
func NewHub(db *lanedb.DB, cfg HubConfig, log *slog.Logger) *Hub {
	if cfg.Poll <= 0 {
		cfg.Poll = DefaultHubConfig().Poll
	}
	if cfg.MaxReplay <= 0 {
		cfg.MaxReplay = DefaultHubConfig().MaxReplay
	}
	return &Hub{db: db, cfg: cfg, log: log, ops: make(chan func(), 1024), wake: make(chan struct{}, 1), subs: map[string][]*subscription{},
		creators: map[string]string{}}
}

// Notify tells the hub the journal grew. It never blocks.
func (h *Hub) Notify() {
	select {
	case h.wake <- struct{}{}:
	default:
	}
}

// Run publishes until ctx ends. It starts at the journal's current end:
// older events are for replay.
func (h *Hub) Run(ctx context.Context) {
	if _, newest, err := lanedb.JournalBounds(ctx, h.db.Read); err == nil {
		h.head = newest
	}
	poll := time.NewTicker(h.cfg.Poll)
	defer poll.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case op := <-h.ops:
			op()
		case <-h.wake:
			h.tail(ctx)
		case <-poll.C:
			h.tail(ctx)
		}
	}
}

// do runs fn on the hub goroutine and waits for it.
func (h *Hub) do(ctx context.Context, fn func()) error {
	done := make(chan struct{})
	select {
	case h.ops <- func() { fn(); close(done) }:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// tail publishes every journal row after head.
func (h *Hub) tail(ctx context.Context) {
	for {
		rows, err := lanedb.JournalAfter(ctx, h.db.Read, h.head, 500)
		if err != nil {
			if ctx.Err() == nil {
				h.log.Warn("firehose: read journal", "err", err)
			}
			return
		}
		for _, r := range rows {
			h.head = r.Seq
			if ev, ok := journalEvent(r); ok {
				h.publish(ev, h.subs[ev.family])
			}
		}
		if len(rows) == 0 && h.restarted(ctx) {
			continue // publish what the restarted journal already holds
		}
		if len(rows) < 500 {
			return
		}
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
	h.head = 0
	return true
}

// journalEvent turns a journal row into an event.
func journalEvent(r lanedb.JournalEntry) (*event, bool) {
	switch r.Family {
	case "custdisp":
		return &event{family: famCustdisp, sc: "custdisp." + r.Event, seq: r.Seq, v: json.RawMessage(r.Detail)}, true
	case "presell":
		// The detail says what is particular to the event; the envelope
		// says which presell, who and when.
		v := map[string]any{}
		_ = json.Unmarshal([]byte(r.Detail), &v)
		v["physkey"], v["actor"], v["at_utc"] = r.Physkey, r.Actor, r.AtUTC
		b, err := json.Marshal(v)
		if err != nil {
			return nil, false
		}
		return &event{family: famPresell, sc: "presell." + r.Event, seq: r.Seq, v: b, fields: v}, true
	}
	return nil, false
}

// publish delivers ev to the matching subscribers among subs.
func (h *Hub) publish(ev *event, subs []*subscription) {
	for _, s := range subs {
		if h.matches(s, ev) {
			s.sink.enqueue(packet(s.rp, ev))
			h.published.Add(1)
		}
	}
}

func (ev *event) decoded() map[string]any {
	if ev.fields == nil {
		ev.fields = map[string]any{}
		_ = json.Unmarshal(ev.v, &ev.fields)
	}
	return ev.fields
}

// matches applies a subscription's options and q filter to an event.
func (h *Hub) matches(s *subscription, ev *event) bool {
	if s.ownOnly != nil && (ev.family == famCustdisp || ev.family == famPresell) &&
		!s.ownOnly.HasKeyName(h.creator(ev)) {
		return false
	}
	if s.tablet == "" && s.physkey == "" && len(s.conds) == 0 {
		return true
	}
	f := ev.decoded()
	if s.physkey != "" && f["salephyskey"] != s.physkey && f["physkey"] != s.physkey {
		return false
	}
	if s.tablet != "" {
		src, _ := f["source"].(map[string]any)
		if src["tablet"] != s.tablet && f["tablet"] != s.tablet {
			return false
		}
	}
	if len(s.conds) == 0 {
		return true
	}
	withSC := make(map[string]any, len(f)+1)
	for k, v := range f {
		withSC[k] = v
	}
	withSC["_sc"] = ev.sc
	return protocol.Match(s.conds, withSC)
}

// maxCreators bounds the hub's memory of who created which sale; past it
// the memory starts afresh (a lookup is one indexed read).
const maxCreators = 10000

// creator is the name of the key that created the sale an event is about
// ("" when the event names none or the sale cannot be read), read from the
// lane DB once per sale: the creator of a sale never changes.
func (h *Hub) creator(ev *event) string {
	f := ev.decoded()
	physkey, _ := f["salephyskey"].(string)
	if physkey == "" {
		physkey, _ = f["physkey"].(string)
	}
	if physkey == "" {
		return ""
	}
	if name, ok := h.creators[physkey]; ok {
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
	if len(h.creators) >= maxCreators {
		clear(h.creators)
	}
	h.creators[physkey] = sale.CreatedBy
	return sale.CreatedBy
}

// packet is the wire form {rp, sc, v, seq}, built around the event's
// serialised v so that v is encoded once for every subscriber.
func packet(rp json.RawMessage, ev *event) []byte {
	b := make([]byte, 0, len(ev.v)+len(rp)+len(ev.sc)+48)
	b = append(b, `{"rp":`...)
	b = append(b, rp...)
	if ev.sc != "" && ev.family != famTrace { // tufe.trace carries no sc, to save bytes (SPEC §5.5)
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

// subscribe adds s after replaying the journal rows after since (when
// since > 0). The ack is written first, then the replay, then live events.
func (h *Hub) subscribe(ctx context.Context, s *subscription, since int64, ack func(replayState) []byte) error {
	var err error
	doErr := h.do(ctx, func() {
		open := 0
		for _, other := range h.allSubs() {
			if other.sink.socketID() != s.sink.socketID() {
				continue
			}
			open++
			if other.id == s.id {
				err = protocol.Errorf(protocol.CodeConflict, "a firehose opened by rq %q is already open on this socket; close it first or use another rq", s.id)
				return
			}
		}
		if h.cfg.MaxPerSocket > 0 && open >= h.cfg.MaxPerSocket {
			err = protocol.Errorf(protocol.CodeRateLimited, "this socket already has %d firehoses open, the most one socket may have; close some first", open)
			return
		}
		h.tail(ctx) // publish what is committed, so head is current
		var page replayPage
		if since > 0 && s.family != famDevice && s.family != famTrace {
			page, err = h.replay(ctx, s, since)
			if err != nil {
				return
			}
		}
		group := make([][]byte, 0, len(page.packets)+1)
		group = append(group, ack(replayState{head: h.head, replayed: len(page.packets), truncated: page.truncated,
			more: page.more, resume: page.last}))
		group = append(group, page.packets...)
		s.sink.enqueueGroup(group)
		if page.more {
			return // not live yet: the client reopens from resume to catch up
		}
		h.subs[s.family] = append(h.subs[s.family], s)
		if s.family == famTrace {
			h.traceSubs.Add(1)
		}
	})
	if doErr != nil {
		return doErr
	}
	return err
}

// replayState is what the ack of a firehose opened with since says.
type replayState struct {
	head      int64 // the journal's end when the firehose opened
	replayed  int   // events replayed in this reply
	truncated bool  // events older than the journal keeps were lost
	more      bool  // the replay was cut to fit: reopen with since = resume
	resume    int64
}

// replayPage is one burst of replay, as packets for the subscriber.
type replayPage struct {
	packets   [][]byte
	last      int64
	truncated bool
	more      bool
}

// replay reads the journal rows in (since, head] that s wants, as many as
// fit the sink's replay budget (and MaxReplay). When they do not all fit,
// the page says so and the firehose does not go live: the client reopens
// from the last seq it got, so nothing is lost between replay and live.
func (h *Hub) replay(ctx context.Context, s *subscription, since int64) (replayPage, error) {
	var page replayPage
	oldest, _, err := lanedb.JournalBounds(ctx, h.db.Read)
	if err != nil {
		return page, err
	}
	page.truncated = oldest > since+1
	page.last = since
	budget := s.sink.replayBudget()
	for after := since; after < h.head; {
		rows, err := lanedb.JournalAfter(ctx, h.db.Read, after, 500)
		if err != nil || len(rows) == 0 {
			return page, err
		}
		for _, r := range rows {
			if r.Seq > h.head {
				return page, nil
			}
			after = r.Seq
			ev, ok := journalEvent(r)
			if !ok || ev.family != s.family || !h.matches(s, ev) {
				page.last = r.Seq
				continue
			}
			p := packet(s.rp, ev)
			if len(page.packets) >= h.cfg.MaxReplay || budget-len(p) < 0 {
				page.more = true
				return page, nil
			}
			budget -= len(p)
			page.packets = append(page.packets, p)
			page.last = r.Seq
		}
	}
	return page, nil
}

func (h *Hub) allSubs() []*subscription {
	var out []*subscription
	for _, list := range h.subs {
		out = append(out, list...)
	}
	return out
}

// unsubscribe removes the firehose id of a socket ("" removes all of
// them) and reports how many it removed.
func (h *Hub) unsubscribe(ctx context.Context, socketID uint64, id string) (int, error) {
	n := 0
	err := h.do(ctx, func() {
		for fam, list := range h.subs {
			kept := list[:0]
			for _, s := range list {
				if s.sink.socketID() == socketID && (id == "" || s.id == id) {
					n++
					if fam == famTrace {
						h.traceSubs.Add(-1)
					}
					continue
				}
				kept = append(kept, s)
			}
			h.subs[fam] = kept
		}
	})
	return n, err
}

// update changes the options of an open firehose.
func (h *Hub) update(ctx context.Context, socketID uint64, id string, fn func(s *subscription) error) error {
	var err error
	found := false
	doErr := h.do(ctx, func() {
		for _, s := range h.allSubs() {
			if s.sink.socketID() == socketID && s.id == id {
				found = true
				err = fn(s)
				return
			}
		}
	})
	if doErr != nil {
		return doErr
	}
	if !found {
		return protocol.Errorf(protocol.CodeNotFound, "no firehose opened by rq %q is open on this socket", id)
	}
	return err
}

// PublishMemory delivers a memory event (device.event, a trace): no seq,
// no replay. It does not wait for delivery.
func (h *Hub) PublishMemory(family, sc string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode event: %w", err)
	}
	ev := &event{family: family, sc: sc, v: b}
	select {
	case h.ops <- func() { h.publish(ev, h.subs[family]) }:
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

// Stats reads the hub's figures.
func (h *Hub) Stats(ctx context.Context) (HubStats, error) {
	st := HubStats{Firehoses: map[string]int{}, Published: h.published.Load(), Dropped: h.dropped.Load()}
	err := h.do(ctx, func() {
		for fam, list := range h.subs {
			st.Firehoses[fam] = len(list)
		}
		st.Head = h.head
	})
	return st, err
}

// familyOf maps what a client asks for in v.event to a family.
func familyOf(event string) (string, error) {
	switch {
	case event == famDevice:
		return famDevice, nil
	case event == famTrace:
		return famTrace, nil
	case event == "custdisp" || strings.HasPrefix(event, "custdisp.sale"):
		return famCustdisp, nil
	case event == famPresell || strings.HasPrefix(event, "presell."):
		return famPresell, nil
	}
	known := append([]string(nil), families...)
	sort.Strings(known)
	return "", protocol.Errorf(protocol.CodeBadArgument, "v.event: unknown event family %q (families: %s)", clipText(event), strings.Join(known, ", "))
}

func clipText(s string) string {
	if len(s) > 60 {
		return s[:60] + "…"
	}
	return s
}
