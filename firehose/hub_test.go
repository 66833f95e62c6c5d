package firehose

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/greenlane-pos/greenlane/internal/pgtest"
	"github.com/greenlane-pos/greenlane/internal/syncbuf"
	"github.com/greenlane-pos/greenlane/lanedb"
	"github.com/greenlane-pos/greenlane/protocol"
)

// fakeSink collects packets like a socket's send queue.
type fakeSink struct {
	id     uint64
	budget int
	mu     sync.Mutex
	got    [][]byte
	more   chan struct{}
}

func newSink(id uint64) *fakeSink { return &fakeSink{id: id, more: make(chan struct{}, 1)} }

func (f *fakeSink) Enqueue(b []byte) {
	f.mu.Lock()
	f.got = append(f.got, b)
	f.mu.Unlock()
	select {
	case f.more <- struct{}{}:
	default:
	}
}

func (f *fakeSink) SocketID() uint64 { return f.id }

func (f *fakeSink) EnqueueGroup(group [][]byte) {
	for _, b := range group {
		f.Enqueue(b)
	}
}

func (f *fakeSink) ReplayBudget() int {
	if f.budget > 0 {
		return f.budget
	}
	return 1 << 20
}

// Crowded: a fakeSink takes whatever comes.
func (f *fakeSink) Crowded() bool { return false }

// waitFor returns the first n packets, decoded.
func (f *fakeSink) waitFor(t *testing.T, n int) []map[string]json.RawMessage {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		f.mu.Lock()
		have := len(f.got)
		f.mu.Unlock()
		if have >= n {
			break
		}
		select {
		case <-f.more:
		case <-deadline:
			t.Fatalf("got %d packets, want %d", have, n)
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]map[string]json.RawMessage, len(f.got))
	for i, b := range f.got {
		if err := json.Unmarshal(b, &out[i]); err != nil {
			t.Fatalf("packet %d is not JSON: %s", i, b)
		}
	}
	return out
}

// The families of a lane, as lane wires them (the packages that own them
// import this one, so the test names them itself).
const (
	famCustdisp = "custdisp.sale"
	famPresell  = "presell"
	famDevice   = "device.event"
	famTrace    = "debugscope.trace"
)

// inProgress is the test's Current for custdisp rows, the sales core's
// rule: a sale active or parked is still on its way.
func inProgress(r lanedb.JournalEntry) bool {
	var b struct{ Status string }
	_ = json.Unmarshal([]byte(r.Detail), &b)
	return b.Status == "active" || b.Status == "parked"
}

var testFamilies = []Family{
	{Name: famCustdisp, Journal: "custdisp", Names: []string{"custdisp"}, Prefixes: []string{"custdisp.sale"}, Body: Detail, Current: inProgress},
	{Name: famPresell, Journal: "presell", Names: []string{"presell"}, Prefixes: []string{"presell."}, Body: DetailWithEnvelope},
	{Name: famDevice, Names: []string{famDevice}},
	{Name: famTrace, Names: []string{famTrace}, NoSC: true},
}

func testHub(t *testing.T) (*Hub, *lanedb.DB, *lanedb.Writer) {
	t.Helper()
	return testHubWith(t, HubConfig{Poll: 20 * time.Millisecond, MaxReplay: 1000})
}

func testHubWith(t *testing.T, cfg HubConfig) (*Hub, *lanedb.DB, *lanedb.Writer) {
	t.Helper()
	return testHubLogging(t, cfg, io.Discard)
}

// testHubLogging is testHubWith with the hub's log written to logs.
func testHubLogging(t *testing.T, cfg HubConfig, logs io.Writer) (*Hub, *lanedb.DB, *lanedb.Writer) {
	t.Helper()
	db, err := lanedb.Open(context.Background(), filepath.Join(t.TempDir(), "lane.db"), lanedb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	w := db.NewWriter(lanedb.DefaultWriterOptions())
	h := NewHub(db, cfg, slog.New(slog.NewTextHandler(logs, nil)), testFamilies...)
	ctx, cancel := context.WithCancel(context.Background())
	go h.Run(ctx)
	t.Cleanup(func() { cancel(); w.Close(); db.Close() })
	return h, db, w
}

// journal writes a custdisp event for sale pk, as the SalesBuilder does.
func journal(t *testing.T, w *lanedb.Writer, h *Hub, pk, tablet, status string) {
	t.Helper()
	if err := writeEvent(w, h, pk, tablet, status); err != nil {
		t.Fatal(err)
	}
}

// writeEvent journals a custdisp event and tells h it did (Notify), as
// the sales core does on PostgreSQL; with h nil it tells nobody, as on
// SQLite, where the lane DB hands the row over itself (toldHub).
func writeEvent(w *lanedb.Writer, h *Hub, pk, tablet, status string) error {
	return w.Do(context.Background(), func(ctx context.Context, tx *lanedb.Tx) error {
		body := map[string]any{"salephyskey": pk, "source": map[string]any{"tablet": tablet}, "status": status, "lines": []any{}}
		err := lanedb.Journal(ctx, tx, time.Now(), "custdisp", "sale.status", pk, "t", body)
		if h != nil {
			tx.OnCommit(h.Notify)
		}
		return err
	})
}

// toldHub is a hub wired as a lane on SQLite wires it: the lane DB hands
// it the rows its writes commit (Written), and nobody calls Notify. It
// polls once a minute: what it publishes within a test, it did not wait
// for a poll to find.
func toldHub(t *testing.T) (*Hub, *lanedb.DB, *lanedb.Writer) {
	t.Helper()
	h, db, w := testHubWith(t, HubConfig{Poll: time.Minute, MaxReplay: 1000})
	if !db.OnJournal(h.Written) {
		t.Fatal("the lane DB does not hand its journal rows over")
	}
	return h, db, w
}

// followCustdisp opens a live firehose of custdisp events on h and
// returns its sink; the ack is its first packet.
func followCustdisp(t *testing.T, h *Hub) *fakeSink {
	t.Helper()
	sink := newSink(1)
	followInto(t, h, sink)
	return sink
}

// followInto opens a live firehose of custdisp events on h into sink.
func followInto(t *testing.T, h *Hub, sink Sink) {
	t.Helper()
	ack := func(ReplayState) []byte { return []byte(`{"ack":1}`) }
	if err := h.Subscribe(context.Background(), &Subscription{Sink: sink, ID: "fh", RP: json.RawMessage(`"fh"`), Family: famCustdisp}, 0, ack); err != nil {
		t.Fatal(err)
	}
}

// eachWiring runs test on a hub told of the journal by Notify (as on
// PostgreSQL) and on one handed the rows (as on SQLite); notify is the hub
// to Notify, nil for the second.
func eachWiring(t *testing.T, test func(t *testing.T, h *Hub, db *lanedb.DB, w *lanedb.Writer, notify *Hub)) {
	t.Run("notified", func(t *testing.T) {
		h, db, w := testHub(t)
		test(t, h, db, w, h)
	})
	t.Run("told", func(t *testing.T) {
		h, db, w := toldHub(t)
		test(t, h, db, w, nil)
	})
}

// wantSeqRun fails t unless got is the n seqs from first on, each once,
// in order.
func wantSeqRun(t *testing.T, got []int64, first int64, n int) {
	t.Helper()
	ok := len(got) == n
	for i := 0; ok && i < n; i++ {
		ok = got[i] == first+int64(i)
	}
	if !ok {
		t.Fatalf("%d seqs %v…, want the %d from %d on, each once, in order", len(got), got[:min(len(got), 10)], n, first)
	}
}

func seqs(ps []map[string]json.RawMessage) []int64 {
	var out []int64
	for _, p := range ps {
		var s int64
		if raw, ok := p["seq"]; ok {
			_ = json.Unmarshal(raw, &s)
			out = append(out, s)
		}
	}
	return out
}

func TestHubReplayThenLiveHasNoGapAndNoDuplicate(t *testing.T) {
	eachWiring(t, testReplayThenLive)
}

func testReplayThenLive(t *testing.T, h *Hub, _ *lanedb.DB, w *lanedb.Writer, notify *Hub) {
	for i := 0; i < 30; i++ {
		journal(t, w, notify, "pk-a", "tablet-1", "active")
	}
	// Writes keep coming while the subscriber replays from seq 10.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 60; i++ {
			select {
			case <-stop:
				return
			default:
				if err := writeEvent(w, notify, "pk-a", "tablet-1", "active"); err != nil {
					t.Error(err)
					return
				}
			}
		}
	}()
	sink := newSink(1)
	sub := &Subscription{Sink: sink, ID: "d", RP: json.RawMessage(`"d"`), Family: famCustdisp}
	err := h.Subscribe(context.Background(), sub, 10, func(ReplayState) []byte { return []byte(`{"ack":true}`) })
	if err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(stop)
	wantSeqRun(t, seqs(sink.waitFor(t, 1+90-10)), 11, 80)
}

// TestHubFilters: the tablet and sale options, q filters on memory events,
// and closing. The hub sends what the journal holds and nothing it made up:
// a completed sale is followed by the next row, not by an event of the
// hub's own (the idle a display goes to is journaled by the sales core).
func TestHubFilters(t *testing.T) {
	h, _, w := testHub(t)
	all, one, byKey := newSink(1), newSink(2), newSink(3)
	ctx := context.Background()
	ack := func(ReplayState) []byte { return []byte(`{"ack":1}`) }
	for _, s := range []*Subscription{
		{Sink: all, ID: "a", RP: json.RawMessage(`"a"`), Family: famCustdisp},
		{Sink: one, ID: "b", RP: json.RawMessage(`"b"`), Family: famCustdisp, Tablet: "tablet-2"},
		{Sink: byKey, ID: "c", RP: json.RawMessage(`"c"`), Family: famCustdisp, Physkey: "pk-1"},
	} {
		if err := h.Subscribe(ctx, s, 0, ack); err != nil {
			t.Fatal(err)
		}
	}
	journal(t, w, h, "pk-1", "tablet-1", "active")
	journal(t, w, h, "pk-2", "tablet-2", "active")
	journal(t, w, h, "pk-1", "tablet-1", "complete")
	journal(t, w, h, "pk-1", "tablet-1", "active")
	// all: the 4 rows, in order, and nothing between them.
	ps := all.waitFor(t, 1+4)
	if got := seqs(ps); !slices.Equal(got, []int64{1, 2, 3, 4}) {
		t.Fatalf("lane-wide firehose got seqs %v, want 1…4", got)
	}
	var status struct {
		Status string `json:"status"`
	}
	if err := json.Unmarshal(ps[4]["v"], &status); err != nil || status.Status != "active" {
		t.Fatalf("packet after the completion %s, want the next row (active)", ps[4]["v"])
	}
	if got := seqs(one.waitFor(t, 2)); !slices.Equal(got, []int64{2}) {
		t.Fatalf("tablet-2 display got seqs %v, want [2]", got)
	}
	if got := seqs(byKey.waitFor(t, 4)); !slices.Equal(got, []int64{1, 3, 4}) {
		t.Fatalf("pk-1 display got seqs %v, want [1 3 4]", got)
	}

	// Memory events with a q filter.
	dev := newSink(4)
	conds, err := protocol.ParseEventFilter(map[string]json.RawMessage{"_sc": json.RawMessage(`"device.x"`), "temp(>=)": json.RawMessage(`-90`)})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Subscribe(ctx, &Subscription{Sink: dev, ID: "dev", RP: json.RawMessage(`"dev"`), Family: famDevice, Conds: conds}, 0, ack); err != nil {
		t.Fatal(err)
	}
	for _, ev := range []struct {
		sc   string
		temp any
	}{{"device.x", -95}, {"device.y", 20}, {"device.x", nil}, {"device.x", 22.5}} {
		data := map[string]any{}
		if ev.temp != nil {
			data["temp"] = ev.temp
		}
		if err := h.PublishMemory(famDevice, ev.sc, data); err != nil {
			t.Fatal(err)
		}
	}
	ps = dev.waitFor(t, 2)
	if string(ps[1]["v"]) != `{"temp":22.5}` {
		t.Fatalf("delivered %s, want only the matching event", ps[1]["v"])
	}

	// Unsubscribe: nothing more arrives, and a second open of the same rq
	// after closing works.
	if n, err := h.Unsubscribe(ctx, 4, "dev"); err != nil || n != 1 {
		t.Fatalf("unsubscribe: %d %v", n, err)
	}
	if err := h.Subscribe(ctx, &Subscription{Sink: dev, ID: "dev", RP: json.RawMessage(`"dev"`), Family: famDevice}, 0, ack); err != nil {
		t.Fatal(err)
	}
	if err := h.Subscribe(ctx, &Subscription{Sink: dev, ID: "dev", RP: json.RawMessage(`"dev"`), Family: famDevice}, 0, ack); err == nil {
		t.Fatal("the same rq opened twice on one socket")
	}
}

func TestPacketWrapsVOnce(t *testing.T) {
	ev := &event{family: famCustdisp, sc: "custdisp.sale.lines.add", seq: 42, v: json.RawMessage(`{"a":1}`)}
	if got := string(packet(json.RawMessage(`7`), nil, ev)); got != `{"rp":7,"sc":"custdisp.sale.lines.add","v":{"a":1},"seq":42}` {
		t.Fatalf("packet = %s", got)
	}
	if got := string(packet(json.RawMessage(`7`), json.RawMessage(`{"tab":"Z"}`), ev)); got != `{"rp":7,"rt":{"tab":"Z"},"sc":"custdisp.sale.lines.add","v":{"a":1},"seq":42}` {
		t.Fatalf("packet with rt = %s", got)
	}
	tr := &event{family: famTrace, sc: "tufe.trace", noSC: true, v: json.RawMessage(`{"msg":"x"}`)}
	if got := string(packet(json.RawMessage(`"t"`), nil, tr)); got != `{"rp":"t","v":{"msg":"x"}}` {
		t.Fatalf("trace packet = %s", got)
	}
}

// heldSink is a sink whose replay stops at its start (ReplayBudget) until
// the test lets it go.
type heldSink struct {
	*fakeSink
	reading, gate chan struct{}
}

func (s *heldSink) ReplayBudget() int {
	close(s.reading)
	<-s.gate
	return s.fakeSink.ReplayBudget()
}

// TestHubLiveWhileAReplayReads: a replay in progress (held at its start)
// holds up neither live events to other firehoses nor other opens, and
// the replayed firehose still gets every row once, the ones committed
// while it read included.
func TestHubLiveWhileAReplayReads(t *testing.T) {
	h, _, w := testHub(t)
	for range 20 {
		journal(t, w, h, "pk-a", "tablet-1", "active")
	}
	ctx := context.Background()
	ack := func(ReplayState) []byte { return []byte(`{"ack":1}`) }
	live := newSink(1)
	if err := h.Subscribe(ctx, &Subscription{Sink: live, ID: "l", RP: json.RawMessage(`"l"`), Family: famCustdisp}, 0, ack); err != nil {
		t.Fatal(err)
	}
	slow := &heldSink{fakeSink: newSink(2), reading: make(chan struct{}), gate: make(chan struct{})}
	done := make(chan error, 1)
	go func() {
		done <- h.Subscribe(ctx, &Subscription{Sink: slow, ID: "s", RP: json.RawMessage(`"s"`), Family: famCustdisp}, 1, ack)
	}()
	<-slow.reading
	journal(t, w, h, "pk-a", "tablet-1", "complete") // seq 21
	// 20: the sale in progress when it opened (Family.Current).
	if got := seqs(live.waitFor(t, 3)); !slices.Equal(got, []int64{20, 21}) {
		t.Fatalf("live firehose got seqs %v while a replay read, want [20 21]", got)
	}
	other := newSink(3)
	if err := h.Subscribe(ctx, &Subscription{Sink: other, ID: "o", RP: json.RawMessage(`"o"`), Family: famCustdisp}, 0, ack); err != nil {
		t.Fatalf("an open without since while a replay read: %v", err)
	}
	close(slow.gate)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	journal(t, w, h, "pk-a", "tablet-1", "active") // seq 22, live
	wantSeqRun(t, seqs(slow.waitFor(t, 1+21)), 2, 21)
}

// TestHubReplayScanIsBounded: an open whose filter matches nothing in a
// long journal reads at most ReplayScan of it, and says where to resume;
// reopening from there walks the journal to its end, and a filter that
// matches gets every event of it once across the pages.
func TestHubReplayScanIsBounded(t *testing.T) {
	h, _, w := testHubWith(t, HubConfig{Poll: 20 * time.Millisecond, MaxReplay: 1000, ReplayScan: 64 << 10})
	pad := strings.Repeat("x", 4000)
	for i := range 60 { // about 240 KB of bodies: several scans' worth
		pk := []string{"pk-a", "pk-b"}[i%2]
		err := w.Do(context.Background(), func(ctx context.Context, tx *lanedb.Tx) error {
			body := map[string]any{"salephyskey": pk, "status": "active", "pad": pad}
			return lanedb.Journal(ctx, tx, time.Now(), "custdisp", "sale.status", pk, "t", body)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	for n, tc := range []struct {
		physkey string
		want    int // events
	}{{"no-such-sale", 0}, {"pk-a", 29}} {
		since, rounds := int64(1), 0
		var got []int64
		for ; rounds < 100; rounds++ {
			sink := newSink(uint64(1000*(n+1) + rounds))
			var st ReplayState
			sub := &Subscription{Sink: sink, ID: "d", RP: json.RawMessage(`"d"`), Family: famCustdisp, Physkey: tc.physkey}
			if err := h.Subscribe(context.Background(), sub, since, func(s ReplayState) []byte { st = s; return []byte(`{"ack":1}`) }); err != nil {
				t.Fatal(err)
			}
			got = append(got, seqs(sink.waitFor(t, 1+st.Replayed))...)
			if st.Replayed > 16 {
				t.Fatalf("%s: one open replayed %d events of 4 KB, past the 64 KB scan", tc.physkey, st.Replayed)
			}
			if !st.More {
				break
			}
			if st.Resume <= since {
				t.Fatalf("%s: resume %d does not move on from since %d", tc.physkey, st.Resume, since)
			}
			since = st.Resume
		}
		if rounds < 3 || len(got) != tc.want || len(got) > 0 && (got[0] != 3 || got[len(got)-1] != 59) {
			t.Fatalf("%s: %d opens, events %v; want several opens and %d events, seq 3…59", tc.physkey, rounds+1, got, tc.want)
		}
		for i := 1; i < len(got); i++ {
			if got[i] != got[i-1]+2 {
				t.Fatalf("%s: events %v have a gap or a repeat", tc.physkey, got)
			}
		}
	}
}

func TestHubReplayInPagesWhenItDoesNotFit(t *testing.T) {
	h, _, w := testHub(t)
	for i := 0; i < 40; i++ {
		journal(t, w, h, "pk-a", "tablet-1", "active")
	}
	var got []int64
	since := int64(5)
	for round := 0; round < 20; round++ {
		sink := newSink(uint64(100 + round))
		sink.budget = 1200 // a few events' worth
		var st ReplayState
		sub := &Subscription{Sink: sink, ID: "d", RP: json.RawMessage(`"d"`), Family: famCustdisp}
		if err := h.Subscribe(context.Background(), sub, since, func(s ReplayState) []byte { st = s; return []byte(`{"ack":1}`) }); err != nil {
			t.Fatal(err)
		}
		ps := sink.waitFor(t, 1+st.Replayed)
		got = append(got, seqs(ps)...)
		if !st.More {
			break
		}
		if st.Replayed == 0 || st.Resume <= since {
			t.Fatalf("a page made no progress: %+v", st)
		}
		since = st.Resume
	}
	wantSeqRun(t, got, 6, 35)
}

// TestHubFollowsAResetJournal: after a fixture reset empties the journal
// and restarts seq at 1 under a running lane, new events still reach the
// firehoses.
func TestHubFollowsAResetJournal(t *testing.T) {
	eachWiring(t, testFollowsAResetJournal)
}

func testFollowsAResetJournal(t *testing.T, h *Hub, db *lanedb.DB, w *lanedb.Writer, notify *Hub) {
	sink := followCustdisp(t, h)
	for i := 0; i < 5; i++ {
		journal(t, w, notify, "pk-a", "tablet-1", "active")
	}
	sink.waitFor(t, 1+5)
	if err := db.WriteTx(context.Background(), func(tx *lanedb.Tx) error { return lanedb.ClearLaneState(context.Background(), tx) }); err != nil {
		t.Fatal(err)
	}
	journal(t, w, notify, "pk-b", "tablet-1", "active")
	got := sink.waitFor(t, 1+6)
	if s := seqs(got); s[len(s)-1] != 1 {
		t.Fatalf("seqs %v: the event after the reset (seq 1) was not published", s)
	}
}

// TestLookup: what a client's v.event asks for, by the families the hub
// was given; an unknown one lists them all.
func TestLookup(t *testing.T) {
	h, _, _ := testHub(t)
	for _, tt := range []struct{ event, want string }{
		{"custdisp", famCustdisp},
		{"custdisp.sale", famCustdisp},
		{"custdisp.sale.lines.add", famCustdisp},
		{"presell", famPresell},
		{"presell.claimed", famPresell},
		{"device.event", famDevice},
		{"debugscope.trace", famTrace},
		{"custdisp.other", ""},
		{"presellx", ""},
		{"device.event.x", ""},
		{"", ""},
	} {
		f, err := h.Lookup(tt.event)
		if tt.want == "" {
			want := fmt.Sprintf("v.event: unknown event family %q (families: custdisp.sale, debugscope.trace, device.event, presell)", tt.event)
			var pe *protocol.Error
			if !errors.As(err, &pe) || pe.Code != protocol.CodeBadArgument || pe.Message != want {
				t.Errorf("Lookup(%q) = %q, %v; want the error %q", tt.event, f.Name, err, want)
			}
			continue
		}
		if err != nil || f.Name != tt.want {
			t.Errorf("Lookup(%q) = %q, %v; want %q", tt.event, f.Name, err, tt.want)
		}
	}
	if _, err := h.Lookup(strings.Repeat("x", 100)); err == nil || !strings.Contains(err.Error(), strings.Repeat("x", 60)+"…") {
		t.Errorf("a long unknown event is not clipped in the error: %v", err)
	}
}

// TestPublishMemoryOnlyToMemoryFamilies: journal families come from the
// journal alone (live and replay must be the same rows), so publishing to
// one directly is refused, as is a family the hub does not serve.
func TestPublishMemoryOnlyToMemoryFamilies(t *testing.T) {
	h, _, _ := testHub(t)
	for _, tt := range []struct {
		family string
		ok     bool
	}{{famDevice, true}, {famTrace, true}, {famCustdisp, false}, {famPresell, false}, {"nosuch", false}} {
		if err := h.PublishMemory(tt.family, "x", map[string]any{}); (err == nil) != tt.ok {
			t.Errorf("PublishMemory(%q): %v, want ok=%v", tt.family, err, tt.ok)
		}
	}
}

// TestHubWarnsOnceWhileTheJournalIsUnreadable: a store database that
// refuses connections (as while PostgreSQL restarts) fails every poll; the
// hub logs the first failure of the run (saying plainly that the store
// database cannot be reached), not each one, says when the journal reads
// again, and warns anew on the next run of failures.
func TestHubWarnsOnceWhileTheJournalIsUnreadable(t *testing.T) {
	ctx := context.Background()
	dbURL := pgtest.FreshDB(t)
	db, err := lanedb.Open(ctx, dbURL, lanedb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	var logs bytes.Buffer
	h := NewHub(db, HubConfig{}, slog.New(slog.NewTextHandler(&logs, nil)), testFamilies...)
	allow := pgtest.Switch(t, dbURL)
	count := func(text string) int { return strings.Count(logs.String(), text) }

	for _, step := range []struct {
		name        string
		open        bool
		tails       int
		warn, again int // lines logged so far
	}{
		{"readable", true, 3, 0, 0},
		{"refused", false, 30, 1, 0},
		{"readable again", true, 2, 1, 1},
		{"refused again", false, 5, 2, 1},
	} {
		allow(step.open)
		for range step.tails {
			h.tail(ctx)
		}
		if w, a := count(`msg="firehose: read journal" err="the store database cannot be reached: `), count(`msg="firehose: the journal reads again" failed_reads=30`); w != step.warn || a != step.again {
			t.Fatalf("%s: %d warnings and %d recoveries logged, want %d and %d; the log:\n%s", step.name, w, a, step.warn, step.again, logs.String())
		}
	}
}

// TestHubOpenWithoutSinceStartsFromTheSaleInProgress: a firehose of a
// family with Current opened without since first gets the newest row it
// matches when that row is a state in progress, then live rows; when the
// newest it matches is over (idle), nothing but the live rows.
func TestHubOpenWithoutSinceStartsFromTheSaleInProgress(t *testing.T) {
	type row struct{ pk, tablet, status string }
	for _, tt := range []struct {
		name   string
		rows   []row
		tablet string // the firehose's tablet option
		want   int64  // seq of the row sent after the ack; 0: none
	}{
		{"a sale being rung up", []row{{"pk-1", "t1", "active"}, {"pk-1", "t1", "active"}}, "", 2},
		{"a sale parked for the counter", []row{{"pk-1", "t1", "active"}, {"pk-1", "t1", "parked"}}, "", 2},
		{"a sale completed", []row{{"pk-1", "t1", "active"}, {"pk-1", "t1", "complete"}, {"pk-1", "t1", "idle"}}, "", 0},
		{"the newest sale is over, an older one parked", []row{{"pk-1", "t1", "parked"}, {"pk-2", "t2", "active"}, {"pk-2", "t2", "idle"}}, "", 0},
		{"its tablet's sale, not a newer one of another", []row{{"pk-1", "t1", "active"}, {"pk-2", "t2", "active"}}, "t1", 1},
		{"its tablet's sale past another's idle", []row{{"pk-1", "t1", "active"}, {"pk-2", "t2", "active"}, {"pk-2", "t2", "idle"}}, "t1", 1},
		{"only another tablet's sale", []row{{"pk-2", "t2", "active"}}, "t1", 0},
		{"an empty journal", nil, "", 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h, _, w := testHub(t)
			for _, r := range tt.rows {
				journal(t, w, h, r.pk, r.tablet, r.status)
			}
			sink := newSink(1)
			sub := &Subscription{Sink: sink, ID: "d", RP: json.RawMessage(`"d"`), Family: famCustdisp, Tablet: tt.tablet}
			if err := h.Subscribe(context.Background(), sub, 0, func(ReplayState) []byte { return []byte(`{"ack":1}`) }); err != nil {
				t.Fatal(err)
			}
			// A live row after the open: what arrives before it is all the
			// open sent.
			journal(t, w, h, "pk-live", cmp.Or(tt.tablet, "t1"), "active")
			live := int64(len(tt.rows) + 1)
			want := []int64{live}
			if tt.want > 0 {
				want = []int64{tt.want, live}
			}
			if got := seqs(sink.waitFor(t, 1+len(want))); !slices.Equal(got, want) {
				t.Fatalf("seqs %v, want %v", got, want)
			}
		})
	}
}

// TestHubRemembersTheSaleInProgressAcrossARestart: a hub started over a
// journal that holds a sale in progress (the lane restarted mid-sale)
// sends it to a display that opens before the next change; other families
// (presell, no Current) open with nothing.
func TestHubRemembersTheSaleInProgressAcrossARestart(t *testing.T) {
	first, db, w := testHub(t)
	journal(t, w, first, "pk-1", "t1", "active")
	if err := w.Do(context.Background(), func(ctx context.Context, tx *lanedb.Tx) error {
		return lanedb.Journal(ctx, tx, time.Now(), "presell", "submitted", "pk-1", "t", map[string]any{})
	}); err != nil {
		t.Fatal(err)
	}
	h := NewHub(db, HubConfig{Poll: 20 * time.Millisecond}, slog.New(slog.NewTextHandler(io.Discard, nil)), testFamilies...)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go h.Run(ctx)
	ack := func(ReplayState) []byte { return []byte(`{"ack":1}`) }
	display, counter := newSink(1), newSink(2)
	if err := h.Subscribe(ctx, &Subscription{Sink: display, ID: "d", RP: json.RawMessage(`"d"`), Family: famCustdisp}, 0, ack); err != nil {
		t.Fatal(err)
	}
	if err := h.Subscribe(ctx, &Subscription{Sink: counter, ID: "p", RP: json.RawMessage(`"p"`), Family: famPresell}, 0, ack); err != nil {
		t.Fatal(err)
	}
	if got := seqs(display.waitFor(t, 2)); !slices.Equal(got, []int64{1}) {
		t.Fatalf("display got seqs %v, want [1]", got)
	}
	if err := w.Do(ctx, func(ctx context.Context, tx *lanedb.Tx) error {
		tx.OnCommit(h.Notify)
		return lanedb.Journal(ctx, tx, time.Now(), "presell", "claimed", "pk-1", "t", map[string]any{})
	}); err != nil {
		t.Fatal(err)
	}
	if got := seqs(counter.waitFor(t, 2)); !slices.Equal(got, []int64{3}) {
		t.Fatalf("presell firehose got seqs %v, want only the live row 3", got)
	}
}

// TestHubEventsCarryTheOpenRT: every event of a firehose, replayed or
// live, carries the rt of its open (as its ack does); without one, none.
func TestHubEventsCarryTheOpenRT(t *testing.T) {
	h, _, w := testHub(t)
	journal(t, w, h, "pk-1", "t1", "active")
	journal(t, w, h, "pk-1", "t1", "active")
	cases := []struct {
		name  string
		ack   string
		since int64
		rt    string // "" = no rt
	}{
		{"replayed and live", `{"r":"fd1.firehose.open_firehose","rp":"a","rt":"tabZ","data":{}}`, 1, `"tabZ"`},
		{"the sale in progress and live", `{"r":"fd1.firehose.open_firehose","rp":"b","rt":{"tab":2},"data":{}}`, 0, `{"tab":2}`},
		{"no rt", `{"r":"fd1.firehose.open_firehose","rp":"c","data":{}}`, 1, ""},
		{"rt null, reflected as sent", `{"r":"fd1.firehose.open_firehose","rp":"d","rt":null,"data":{}}`, 1, "null"},
	}
	sinks := make([]*fakeSink, len(cases))
	for i, tt := range cases {
		sinks[i] = newSink(uint64(i + 1))
		sub := &Subscription{Sink: sinks[i], ID: "f", RP: json.RawMessage(`"f"`), Family: famCustdisp}
		if err := h.Subscribe(context.Background(), sub, tt.since, func(ReplayState) []byte { return []byte(tt.ack) }); err != nil {
			t.Fatal(err)
		}
	}
	journal(t, w, h, "pk-1", "t1", "active")
	for i, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			ps := sinks[i].waitFor(t, 3)
			if got := seqs(ps); !slices.Equal(got, []int64{2, 3}) {
				t.Fatalf("seqs %v, want [2 3]", got)
			}
			for _, p := range ps[1:] {
				if rt, ok := p["rt"]; string(rt) != tt.rt || ok != (tt.rt != "") {
					t.Fatalf("event carries rt %s (present %v), want %q", rt, ok, tt.rt)
				}
			}
		})
	}
}

// ackSink records, as each ack is queued, how many firehoses the hub
// says follow its family.
type ackSink struct {
	*fakeSink
	hub       *Hub
	family    string
	following []int64
}

func (a *ackSink) EnqueueGroup(group [][]byte) {
	a.following = append(a.following, a.hub.Following(a.family))
	a.fakeSink.EnqueueGroup(group)
}

// TestHubFollowsBeforeTheAck: a client that has its ack may at once make
// an event that is only built while someone follows (a trace of its next
// request); by the time the ack is queued, the hub counts the firehose.
func TestHubFollowsBeforeTheAck(t *testing.T) {
	h, _, _ := testHub(t)
	ack := func(ReplayState) []byte { return []byte(`{"ack":1}`) }
	for i, fam := range []string{famTrace, famDevice, famCustdisp} {
		s := &ackSink{fakeSink: newSink(uint64(i + 1)), hub: h, family: fam}
		if err := h.Subscribe(context.Background(), &Subscription{Sink: s, ID: "x", RP: json.RawMessage(`"x"`), Family: fam}, 0, ack); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(s.following, []int64{1}) {
			t.Errorf("%s: the hub counted %v followers as the ack was queued, want [1]", fam, s.following)
		}
	}
}

// TestHubSharedFilterRunsOncePerEvent counts the hub's work per event:
// firehoses asking for the same sale, tablet and q share one filter, which
// runs once per event however many follow it; different filters run once
// each. (A thousand displays with one filter used to cost a thousand
// evaluations, and a copy of the event each, per event.)
func TestHubSharedFilterRunsOncePerEvent(t *testing.T) {
	nothing := map[string]json.RawMessage{"saletotal(>)": json.RawMessage(`1e9`), "_sc": json.RawMessage(`"custdisp.sale.status"`)}
	const events = 10
	for _, tt := range []struct {
		name      string
		firehoses int
		options   func(i int, s *Subscription) // sets firehose i's options
		want      int64                        // evaluations per event
	}{
		{"200 with one q", 200, func(int, *Subscription) {}, 1},
		{"200 with one q, half of them one tablet's", 200, func(i int, s *Subscription) {
			if i%2 == 0 {
				s.Tablet = "tablet-1"
			}
		}, 2},
		{"20 with a q each", 20, func(i int, s *Subscription) { s.Physkey = fmt.Sprintf("pk-%d", i) }, 20},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h, _, w := testHub(t)
			ack := func(ReplayState) []byte { return []byte(`{"ack":1}`) }
			conds, err := protocol.ParseEventFilter(nothing)
			if err != nil {
				t.Fatal(err)
			}
			for i := range tt.firehoses {
				s := &Subscription{Sink: newSink(uint64(i + 1)), ID: "f", RP: json.RawMessage(`"f"`), Family: famCustdisp, Conds: conds}
				tt.options(i, s)
				if err := h.Subscribe(context.Background(), s, 0, ack); err != nil {
					t.Fatal(err)
				}
			}
			all := newSink(9999) // no filter: no evaluation; says when the hub is done
			if err := h.Subscribe(context.Background(), &Subscription{Sink: all, ID: "all", RP: json.RawMessage(`"all"`), Family: famCustdisp}, 0, ack); err != nil {
				t.Fatal(err)
			}
			before := h.filterRuns.Load()
			for range events {
				journal(t, w, h, "pk-a", "tablet-1", "active")
			}
			all.waitFor(t, 1+events)
			if got := h.filterRuns.Load() - before; got != tt.want*events {
				t.Fatalf("%d filter evaluations for %d events, want %d", got, events, tt.want*events)
			}
		})
	}
}

// journalMany writes n custdisp rows for sale pk in one transaction, and
// tells h (nil: nobody; see writeEvent).
func journalMany(t *testing.T, w *lanedb.Writer, h *Hub, pk string, n int) {
	t.Helper()
	err := w.Do(context.Background(), func(ctx context.Context, tx *lanedb.Tx) error {
		if h != nil {
			tx.OnCommit(h.Notify)
		}
		for range n {
			body := map[string]any{"salephyskey": pk, "source": map[string]any{"tablet": "t1"}, "status": "active", "lines": []any{}}
			if err := lanedb.Journal(ctx, tx, time.Now(), "custdisp", "sale.status", pk, "t", body); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// holdHub keeps the hub's goroutine busy until the returned func is
// called, as a long turn of work would.
func holdHub(t *testing.T, h *Hub) (release func()) {
	t.Helper()
	held, gate := make(chan struct{}), make(chan struct{})
	h.ops <- func() { close(held); <-gate }
	<-held
	return sync.OnceFunc(func() { close(gate) })
}

// TestHubClosedFirehosesCostNoWork: a socket closed while the hub has a
// backlog stops costing work at once: the close does not wait for the
// hub, and none of the backlog is matched against its firehoses.
func TestHubClosedFirehosesCostNoWork(t *testing.T) {
	h, _, w := testHub(t)
	ctx := context.Background()
	ack := func(ReplayState) []byte { return []byte(`{"ack":1}`) }
	for i := range 50 { // a filter each: nothing shared
		s := &Subscription{Sink: newSink(7), ID: fmt.Sprint(i), RP: json.RawMessage(`"f"`), Family: famCustdisp, Physkey: fmt.Sprintf("pk-%d", i)}
		if err := h.Subscribe(ctx, s, 0, ack); err != nil {
			t.Fatal(err)
		}
	}
	all := newSink(8)
	if err := h.Subscribe(ctx, &Subscription{Sink: all, ID: "all", RP: json.RawMessage(`"all"`), Family: famCustdisp}, 0, ack); err != nil {
		t.Fatal(err)
	}
	release := holdHub(t, h)
	defer release()
	journalMany(t, w, h, "pk-a", 300)
	before := h.filterRuns.Load()
	// The bound only turns a close that waits for the hub into a failure
	// rather than a hang.
	closeCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if n, err := h.Unsubscribe(closeCtx, 7, ""); err != nil || n != 50 {
		t.Fatalf("closing the socket's firehoses while the hub is busy: %d closed, %v", n, err)
	}
	if st, err := h.Stats(closeCtx); err != nil || st.Firehoses[famCustdisp] != 1 {
		t.Fatalf("stats while the hub is busy: %+v, %v; want 1 custdisp firehose", st, err)
	}
	release()
	all.waitFor(t, 1+300)
	if got := h.filterRuns.Load() - before; got != 0 {
		t.Fatalf("%d filter evaluations for the closed socket's firehoses, want none", got)
	}
}

// TestHubOpenIsNotHeldUpByABacklog: an open queued behind a backlog of
// journal rows goes live after at most two turns of it (one before, one
// in the open), not after all of it, and still gets every row after its
// ack's seq once, live.
func TestHubOpenIsNotHeldUpByABacklog(t *testing.T) {
	eachWiring(t, testOpenNotHeldUpByABacklog)
}

func testOpenNotHeldUpByABacklog(t *testing.T, h *Hub, _ *lanedb.DB, w *lanedb.Writer, notify *Hub) {
	ctx := context.Background()
	release := holdHub(t, h)
	defer release()
	const backlog = 1000
	journalMany(t, w, notify, "pk-a", backlog)
	sink := newSink(1)
	var head int64
	done := make(chan error, 1)
	go func() {
		sub := &Subscription{Sink: sink, ID: "d", RP: json.RawMessage(`"d"`), Family: famCustdisp}
		done <- h.Subscribe(ctx, sub, 0, func(st ReplayState) []byte { head = st.Head; return []byte(`{"ack":1}`) })
	}()
	for len(h.ops) == 0 { // the open waits its turn
		time.Sleep(time.Millisecond)
	}
	release()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if head > 2*tailBatch {
		t.Fatalf("the open went live at seq %d: it waited for %d rows of the backlog, want at most %d", head, head, 2*tailBatch)
	}
	// First the sale in progress at the ack's seq (Family.Current), then
	// every row after it, live.
	wantSeqRun(t, seqs(sink.waitFor(t, 1+1+int(backlog-head))), head, 1+int(backlog-head))
}

// TestHubFirehosesPerKey: a key's firehoses are counted over all its
// sockets; past MaxPerKey an open is refused with limit_reached, and a
// closed firehose, or a closed socket's, makes room at once.
func TestHubFirehosesPerKey(t *testing.T) {
	h, _, _ := testHubWith(t, HubConfig{Poll: 20 * time.Millisecond, MaxPerSocket: 2, MaxPerKey: 3})
	ctx := context.Background()
	ack := func(ReplayState) []byte { return []byte(`{"ack":1}`) }
	open := func(socket uint64, rq, key string) error {
		return h.Subscribe(ctx, &Subscription{Sink: newSink(socket), ID: rq, RP: json.RawMessage(`"x"`), Family: famDevice, Key: key, KeyName: "name-" + key}, 0, ack)
	}
	steps := []struct {
		name   string
		do     func() error
		refuse protocol.Code // "" = allowed
		says   string        // in the refusal
	}{
		{"a's 1st, socket 1", func() error { return open(1, "a", "k1") }, "", ""},
		{"a's 2nd, socket 1", func() error { return open(1, "b", "k1") }, "", ""},
		{"a's 3rd on socket 1: the socket's cap", func() error { return open(1, "c", "k1") }, protocol.CodeLimitReached, "this socket already has 2 firehoses open"},
		{"a's 3rd, socket 2", func() error { return open(2, "a", "k1") }, "", ""},
		{"a's 4th, socket 3: the key's cap", func() error { return open(3, "a", "k1") }, protocol.CodeLimitReached, `key "name-k1" already has 3 firehoses open`},
		{"another key", func() error { return open(4, "a", "k2") }, "", ""},
		{"no key: not counted", func() error { return open(5, "a", "") }, "", ""},
		{"close one of a's", func() error { _, err := h.Unsubscribe(ctx, 1, "a"); return err }, "", ""},
		{"a's 3rd again", func() error { return open(3, "a", "k1") }, "", ""},
		{"a's 4th again", func() error { return open(3, "b", "k1") }, protocol.CodeLimitReached, `key "name-k1" already has 3 firehoses open`},
		{"close socket 1", func() error { _, err := h.Unsubscribe(ctx, 1, ""); return err }, "", ""},
		{"a's 3rd once more", func() error { return open(3, "b", "k1") }, "", ""},
	}
	for _, st := range steps {
		err := st.do()
		var pe *protocol.Error
		switch {
		case st.refuse == "" && err != nil:
			t.Fatalf("%s: %v", st.name, err)
		case st.refuse != "" && (!errors.As(err, &pe) || pe.Code != st.refuse):
			t.Fatalf("%s: %v, want %s", st.name, err, st.refuse)
		case st.refuse != "" && !strings.Contains(pe.Message, st.says):
			t.Fatalf("%s: the refusal %q does not say %q", st.name, pe.Message, st.says)
		}
	}
}

// TestHubSinceBeyondTheJournal: a display that saw more of the journal
// than the lane DB now holds (it was restored from a backup) opens with a
// since past its end: the ack's seq is the journal's end, below since, and
// the rows written after it are sent, not taken for seen.
func TestHubSinceBeyondTheJournal(t *testing.T) {
	h, _, w := testHub(t)
	journalMany(t, w, h, "pk-a", 5)
	sink := newSink(1)
	var st ReplayState
	sub := &Subscription{Sink: sink, ID: "d", RP: json.RawMessage(`"d"`), Family: famCustdisp}
	if err := h.Subscribe(context.Background(), sub, 50, func(s ReplayState) []byte { st = s; return []byte(`{"ack":1}`) }); err != nil {
		t.Fatal(err)
	}
	if st.Head != 5 || st.Replayed != 0 {
		t.Fatalf("ack %+v, want seq 5 and nothing replayed", st)
	}
	journal(t, w, h, "pk-b", "t1", "active")
	if got := seqs(sink.waitFor(t, 2)); !slices.Equal(got, []int64{6}) {
		t.Fatalf("seqs %v, want the new row 6", got)
	}
}

// TestHubSinceAheadOfABehindHub: a display that saw rows another program
// wrote reopens from them while the hub, more than a turn behind, has yet
// to publish them: its ack's seq is its since, not below it (which would
// say the lane DB was restored), and it gets none of those rows again.
func TestHubSinceAheadOfABehindHub(t *testing.T) {
	h, db, w := toldHub(t) // polls once a minute: the other program's rows wait
	other, err := lanedb.Open(context.Background(), db.Path, lanedb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	const written = 3 * tailBatch
	err = other.WriteTx(context.Background(), func(tx *lanedb.Tx) error {
		for range written {
			if err := lanedb.Journal(context.Background(), tx, time.Now(), "custdisp", "sale.status", "pk-other", "counter", map[string]string{"status": "active"}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sink := newSink(1)
	var st ReplayState
	sub := &Subscription{Sink: sink, ID: "d", RP: json.RawMessage(`"d"`), Family: famCustdisp}
	if err := h.Subscribe(context.Background(), sub, written, func(s ReplayState) []byte { st = s; return []byte(`{"ack":1}`) }); err != nil {
		t.Fatal(err)
	}
	if st.Head != written || st.Replayed != 0 {
		t.Fatalf("ack %+v, want seq %d (the since) and nothing replayed", st, written)
	}
	journal(t, w, nil, "pk-lane", "tablet-1", "active")
	if got := seqs(sink.waitFor(t, 2)); !slices.Equal(got, []int64{written + 1}) {
		t.Fatalf("seqs %v…, want only the new row %d", got[:min(len(got), 5)], written+1)
	}
}

// TestHubSkipsARowItCannotSend: a row another program wrote whose detail
// is not JSON is neither published nor replayed (its frame would not
// parse), the rows around it are, and it is warned about once, however
// often it is replayed.
func TestHubSkipsARowItCannotSend(t *testing.T) {
	logs := &syncbuf.Buffer{}
	h, db, w := testHubLogging(t, HubConfig{Poll: 20 * time.Millisecond, MaxReplay: 1000}, logs)
	sink := followCustdisp(t, h)
	journal(t, w, h, "pk-a", "tablet-1", "active")
	_, err := db.Exec(context.Background(), `INSERT INTO journal (at_utc, family, event, physkey, actor, detail)
		VALUES ('2026-12-06 09:00:00', 'custdisp', 'sale.status', 'pk-b', 'counter', '{"status":')`)
	if err != nil {
		t.Fatal(err)
	}
	journal(t, w, h, "pk-a", "tablet-1", "parked")
	if got := seqs(sink.waitFor(t, 1+2)); !slices.Equal(got, []int64{1, 3}) {
		t.Fatalf("live seqs %v, want 1 and 3 (2 is not JSON)", got)
	}
	for i := range 2 {
		replay := newSink(uint64(10 + i))
		sub := &Subscription{Sink: replay, ID: "r", RP: json.RawMessage(`"r"`), Family: famCustdisp}
		if err := h.Subscribe(context.Background(), sub, 1, func(ReplayState) []byte { return []byte(`{"ack":1}`) }); err != nil {
			t.Fatal(err)
		}
		if got := seqs(replay.waitFor(t, 1+1)); !slices.Equal(got, []int64{3}) {
			t.Fatalf("replay %d: seqs %v, want 3 alone", i+1, got)
		}
	}
	if n := strings.Count(logs.String(), "cannot be sent"); n != 1 {
		t.Fatalf("%d warnings about the row, want 1:\n%s", n, logs.String())
	}
}

// TestHubPassesOverAnEventTooBigForTheSink: a row another program wrote,
// too big for a socket's queue, is passed over like a row that is not
// JSON, live and in replays alike: a display is neither dropped for it
// nor asked again and again to catch up from before it.
func TestHubPassesOverAnEventTooBigForTheSink(t *testing.T) {
	logs := &syncbuf.Buffer{}
	h, db, w := testHubLogging(t, HubConfig{Poll: 20 * time.Millisecond, MaxReplay: 1000}, logs)
	const budget = 64 << 10
	huge := func() {
		t.Helper()
		detail := fmt.Sprintf(`{"status":"active","note":%q}`, strings.Repeat("x", budget))
		_, err := db.Exec(context.Background(), `INSERT INTO journal (at_utc, family, event, physkey, actor, detail)
			VALUES ('2026-12-06 09:00:00', 'custdisp', 'sale.status', 'pk-big', 'counter', ?)`, detail)
		if err != nil {
			t.Fatal(err)
		}
	}
	live := newSink(1)
	live.budget = budget
	ack := func(ReplayState) []byte { return []byte(`{"ack":1}`) }
	if err := h.Subscribe(context.Background(), &Subscription{Sink: live, ID: "l", RP: json.RawMessage(`"l"`), Family: famCustdisp}, 0, ack); err != nil {
		t.Fatal(err)
	}
	journal(t, w, h, "pk-a", "tablet-1", "active") // 1
	huge()                                         // 2
	journal(t, w, h, "pk-a", "tablet-1", "parked") // 3
	if got := seqs(live.waitFor(t, 1+2)); !slices.Equal(got, []int64{1, 3}) {
		t.Fatalf("live seqs %v, want 1 and 3 (2 is larger than the sink takes)", got)
	}
	replay := newSink(2)
	replay.budget = budget
	var st ReplayState
	sub := &Subscription{Sink: replay, ID: "r", RP: json.RawMessage(`"r"`), Family: famCustdisp}
	if err := h.Subscribe(context.Background(), sub, 1, func(s ReplayState) []byte { st = s; return []byte(`{"ack":1}`) }); err != nil {
		t.Fatal(err)
	}
	if st.More || st.Replayed != 1 {
		t.Fatalf("replay from 1: %+v, want row 3 replayed, nothing more to catch up on", st)
	}
	if got := seqs(replay.waitFor(t, 1+1)); !slices.Equal(got, []int64{3}) {
		t.Fatalf("replayed seqs %v, want 3", got)
	}
	if n := strings.Count(logs.String(), "cannot be sent"); n != 1 {
		t.Fatalf("%d warnings about the row, want 1:\n%s", n, logs.String())
	}
}

// drainSink is a socket's queue of 256 packets whose writer drains it
// only when given time: it empties a moment after the hub finds it
// crowded (over half full). A push past its bound is dropped, as the
// server drops a slow client.
type drainSink struct {
	*fakeSink
	stalled bool // never drains: a client that stopped reading
	mu      sync.Mutex
	queued  int
	over    int
}

const drainSinkBound = 256

func (d *drainSink) Enqueue(b []byte) {
	d.mu.Lock()
	if d.queued >= drainSinkBound {
		d.over++
		d.mu.Unlock()
		return
	}
	d.queued++
	d.mu.Unlock()
	d.fakeSink.Enqueue(b)
}

func (d *drainSink) Crowded() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.over > 0 {
		return false // dropped, as a socket is: it takes nothing more
	}
	crowded := 2*d.queued > drainSinkBound
	if crowded && !d.stalled {
		time.AfterFunc(time.Millisecond, func() {
			d.mu.Lock()
			d.queued = 0
			d.mu.Unlock()
		})
	}
	return crowded
}

func (d *drainSink) overflowed() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.over
}

// TestHubLetsFirehosesDrainThroughABacklog: a backlog of rows many times a
// socket's queue goes out turn by turn as the queues drain: a firehose
// that reads is never overrun, however far behind the hub is, and one
// that stopped reading holds the others up only for a while.
func TestHubLetsFirehosesDrainThroughABacklog(t *testing.T) {
	eachWiring(t, testLetsFirehosesDrain)
}

func testLetsFirehosesDrain(t *testing.T, h *Hub, _ *lanedb.DB, w *lanedb.Writer, notify *Hub) {
	reader := &drainSink{fakeSink: newSink(1)}
	stalled := &drainSink{fakeSink: newSink(2), stalled: true}
	followInto(t, h, reader)
	followInto(t, h, stalled)
	release := holdHub(t, h)
	defer release()
	const backlog = 1000 // within maxWritten: handed over whole
	journalMany(t, w, notify, "pk-a", backlog)
	release()
	wantSeqRun(t, seqs(reader.waitFor(t, 1+backlog)), 1, backlog)
	if n := reader.overflowed(); n != 0 {
		t.Fatalf("%d events overran the queue of a firehose that reads", n)
	}
	if stalled.overflowed() == 0 || h.drainWaits.Load() == 0 {
		t.Fatalf("the stalled firehose overflowed %d times, the hub waited %d times; want both", stalled.overflowed(), h.drainWaits.Load())
	}
}

// TestHubOpensInABacklogWaitWithIt: firehoses opened while the hub works
// through a backlog (displays reconnecting at once) go live without each
// publishing a turn of it to everyone: a reader's queue is not overrun.
func TestHubOpensInABacklogWaitWithIt(t *testing.T) {
	eachWiring(t, testOpensInABacklog)
}

func testOpensInABacklog(t *testing.T, h *Hub, _ *lanedb.DB, w *lanedb.Writer, notify *Hub) {
	reader := &drainSink{fakeSink: newSink(1)}
	followInto(t, h, reader)
	release := holdHub(t, h)
	defer release()
	const backlog, opens = 1000, 12
	journalMany(t, w, notify, "pk-a", backlog)
	var wg sync.WaitGroup
	ack := func(ReplayState) []byte { return []byte(`{"ack":1}`) }
	for i := range opens {
		wg.Go(func() {
			sub := &Subscription{Sink: newSink(uint64(10 + i)), ID: "o", RP: json.RawMessage(`"o"`), Family: famCustdisp}
			if err := h.Subscribe(context.Background(), sub, 0, ack); err != nil {
				t.Error(err)
			}
		})
	}
	for len(h.ops) < opens { // every open waits its turn
		time.Sleep(time.Millisecond)
	}
	release()
	wg.Wait()
	wantSeqRun(t, seqs(reader.waitFor(t, 1+backlog)), 1, backlog)
	if n := reader.overflowed(); n != 0 {
		t.Fatalf("%d events overran the reader's queue while %d firehoses opened", n, opens)
	}
}

// TestReplayGateTakesTurnsByKey: with one read, the keys waiting take it
// in turn, whatever order their opens came in; a key gets a second read
// only after each key waiting then had one.
func TestReplayGateTakesTurnsByKey(t *testing.T) {
	for _, tt := range []struct {
		name   string
		reads  int
		arrive []string // keys of the opens, in order, after "first" holds a read
		want   []string // the order they are let in
	}{
		{"one key's many, then another's", 1, []string{"a", "a", "a", "a", "b"}, []string{"a", "b", "a", "a", "a"}},
		{"three keys", 1, []string{"a", "a", "b", "b", "c"}, []string{"a", "b", "c", "a", "b"}},
		{"one key alone keeps its order", 1, []string{"a", "a", "a"}, []string{"a", "a", "a"}},
		{"two reads, still one per key", 2, []string{"a", "a", "a", "b"}, []string{"a", "b", "a", "a"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			g := newReplayGate(tt.reads)
			var order []string
			g.granted = func(key string) { order = append(order, key) }
			ctx := context.Background()
			// "first" holds a read, and with two reads "other" the second,
			// so that every open below waits.
			holders := []string{"first", "other"}[:tt.reads]
			for _, k := range holders {
				if err := g.enter(ctx, k); err != nil {
					t.Fatal(err)
				}
			}
			var wg sync.WaitGroup
			for i, key := range tt.arrive {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if err := g.enter(ctx, key); err != nil {
						t.Error(err)
						return
					}
					g.leave(key)
				}()
				for g.queued() < i+1 { // the next arrives after this one
					time.Sleep(time.Millisecond)
				}
			}
			for _, k := range holders {
				g.leave(k)
			}
			wg.Wait()
			g.mu.Lock()
			defer g.mu.Unlock()
			if got := order[len(holders):]; !slices.Equal(got, tt.want) {
				t.Fatalf("let in %v, want %v", got, tt.want)
			}
		})
	}
}

// TestReplayGateGivesUpWaiting: an open that gives up while it waits
// leaves its key's place, and one let in as it gave up hands its read on.
func TestReplayGateGivesUpWaiting(t *testing.T) {
	g := newReplayGate(1)
	ctx := context.Background()
	if err := g.enter(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	gone, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- g.enter(gone, "b") }()
	for g.queued() < 1 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("a cancelled wait returned %v", err)
	}
	g.leave("a")
	if err := g.enter(ctx, "c"); err != nil { // the read is free again
		t.Fatal(err)
	}
	if n := g.queued(); n != 0 {
		t.Fatalf("%d opens still queued, want none", n)
	}
}

// TestHubReplaysTakeTurnsByKey: a tablet key's many opens with since,
// queued while a replay reads, do not stand in front of a display key's
// reopen: it is the second replay let in.
func TestHubReplaysTakeTurnsByKey(t *testing.T) {
	h, _, w := testHub(t)
	journalMany(t, w, h, "pk-a", 50)
	var order []string
	h.replays.mu.Lock()
	h.replays.granted = func(key string) { order = append(order, key) }
	h.replays.mu.Unlock()
	ctx := context.Background()
	ack := func(ReplayState) []byte { return []byte(`{"ack":1}`) }
	slow := &heldSink{fakeSink: newSink(1), reading: make(chan struct{}), gate: make(chan struct{})}
	var wg sync.WaitGroup
	subscribe := func(sink Sink, id, key string) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := h.Subscribe(ctx, &Subscription{Sink: sink, ID: id, RP: json.RawMessage(`"r"`), Family: famCustdisp, Key: key}, 1, ack); err != nil {
				t.Error(err)
			}
		}()
	}
	subscribe(slow, "held", "tablet")
	<-slow.reading
	for i := range 8 {
		subscribe(newSink(2), fmt.Sprint(i), "tablet")
		for h.replays.queued() < i+1 {
			time.Sleep(time.Millisecond)
		}
	}
	subscribe(newSink(3), "d", "display")
	for h.replays.queued() < 9 {
		time.Sleep(time.Millisecond)
	}
	close(slow.gate)
	wg.Wait()
	h.replays.mu.Lock()
	defer h.replays.mu.Unlock()
	if i := slices.Index(order, "display"); i != 2 {
		t.Fatalf("replays let in %v: the display's was number %d, want 2 (after the one reading and one more of the tablet's)", order, i)
	}
}

// TestHubOpenGivenUpWhileQueued: an open whose client gives up while its
// turn waits behind other hub work returns at once; its turn, run later,
// hands its result back through do's channel and writes nothing the open
// still reads. (It wrote a variable the open read as it returned: a data
// race that go test -race, as CI runs it, reports here.)
func TestHubOpenGivenUpWhileQueued(t *testing.T) {
	h, _, _ := testHubWith(t, HubConfig{Poll: 20 * time.Millisecond})
	busy, release := make(chan struct{}), make(chan struct{})
	go func() {
		_ = h.do(context.Background(), func() error { close(busy); <-release; return nil })
	}()
	<-busy
	ctx, cancel := context.WithCancel(context.Background())
	opened := make(chan error, 1)
	go func() {
		opened <- h.Subscribe(ctx, &Subscription{Sink: newSink(1), ID: "a", RP: json.RawMessage(`"x"`), Family: famDevice}, 0,
			func(ReplayState) []byte { return []byte(`{"ack":1}`) })
	}()
	for deadline := time.Now().Add(30 * time.Second); len(h.ops) == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the open's turn was never queued")
		}
	}
	// Given up, and the hub free to run its turn at once: nothing orders
	// the open's return after that turn (which is what -race looks at).
	cancel()
	close(release)
	if err := <-opened; err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("an open given up while queued: %v, want context.Canceled (or none, had its turn come first)", err)
	}
	// The hub works through the open's turn, then this one.
	if err := h.do(context.Background(), func() error { return nil }); err != nil {
		t.Fatal(err)
	}
	h.mu.Lock()
	open := len(h.bySocket[1])
	h.mu.Unlock()
	if open != 0 {
		t.Fatalf("%d firehoses counted on the socket after its only open was given up", open)
	}
}

// TestHubTakesTheLaneRowsAsTheyCommit: rows the lane DB hands over are
// published in seq order, every one once, without the hub reading the
// journal for them.
func TestHubTakesTheLaneRowsAsTheyCommit(t *testing.T) {
	h, _, w := toldHub(t)
	sink := followCustdisp(t, h)
	opened := h.reads.Load() // an open reads the journal once (goLive)
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Go(func() { journal(t, w, nil, fmt.Sprintf("pk-%d", i), "tablet-1", "active") })
	}
	wg.Wait()
	journalMany(t, w, nil, "pk-x", 3)
	got := seqs(sink.waitFor(t, 1+43))
	want := make([]int64, 43)
	for i := range want {
		want[i] = int64(i + 1)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("seqs %v, want 1…43 in order", got)
	}
	if n := h.reads.Load() - opened; n != 0 {
		t.Fatalf("the hub read the journal %d times for rows it was handed", n)
	}
}

// TestHubReadsWhatAnotherProgramWroteBetween: a row another program wrote
// between two of the lane's is not handed over; the lane's next row shows
// the gap, and the hub reads the journal for both at once, not at its
// next poll.
func TestHubReadsWhatAnotherProgramWroteBetween(t *testing.T) {
	h, db, w := toldHub(t)
	other, err := lanedb.Open(context.Background(), db.Path, lanedb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	sink := followCustdisp(t, h)
	journal(t, w, nil, "pk-lane", "tablet-1", "active")
	sink.waitFor(t, 1+1)
	err = other.WriteTx(context.Background(), func(tx *lanedb.Tx) error {
		return lanedb.Journal(context.Background(), tx, time.Now(), "custdisp", "sale.status", "pk-other", "counter", map[string]string{"status": "active"})
	})
	if err != nil {
		t.Fatal(err)
	}
	journal(t, w, nil, "pk-lane", "tablet-1", "parked")
	got := sink.waitFor(t, 1+3)
	if s := seqs(got); !slices.Equal(s, []int64{1, 2, 3}) {
		t.Fatalf("seqs %v, want 1, 2 (the other program's), 3", s)
	}
}

// TestHubReadsBackRowsItCouldNotKeep: rows handed over while the hub is
// busy are kept up to maxWritten; past that the hub reads them all back,
// and publishes every one, in order.
func TestHubReadsBackRowsItCouldNotKeep(t *testing.T) {
	h, _, w := toldHub(t)
	sink := followCustdisp(t, h)
	release := holdHub(t, h)
	n := maxWritten + 150
	journalMany(t, w, nil, "pk", n)
	release()
	wantSeqRun(t, seqs(sink.waitFor(t, 1+n)), 1, n)
	if h.reads.Load() == 0 {
		t.Fatal("the hub published rows it did not keep without reading them")
	}
}

// TestHubTakesHandedRowsInBoundedTurns: like a read of the journal, one
// turn publishes at most tailBatch of the rows handed over; the rest stay
// for the next turn, which the turn says is due at once. (The hub is not
// running: the test takes its turns.)
func TestHubTakesHandedRowsInBoundedTurns(t *testing.T) {
	db, err := lanedb.Open(context.Background(), filepath.Join(t.TempDir(), "lane.db"), lanedb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	h := NewHub(db, HubConfig{}, slog.New(slog.NewTextHandler(io.Discard, nil)), testFamilies...)
	rows := make([]lanedb.JournalEntry, 2*tailBatch+30)
	for i := range rows {
		rows[i] = lanedb.JournalEntry{Seq: int64(i + 1), Family: "custdisp", Event: "sale.status", Physkey: "pk", Detail: `{"status":"active"}`}
	}
	h.Written(rows)
	for turn, want := range []struct {
		head int64
		more bool
	}{{tailBatch, true}, {2 * tailBatch, true}, {2*tailBatch + 30, false}} {
		if more := h.takeWritten(context.Background()); more != want.more || h.head != want.head {
			t.Fatalf("turn %d: head %d, more due %v; want %d, %v", turn, h.head, more, want.head, want.more)
		}
	}
	if h.reads.Load() != 0 || len(h.written) != 0 {
		t.Fatalf("%d journal reads, %d rows left", h.reads.Load(), len(h.written))
	}
}
