package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestFirehoseSmall runs both phases with tiny settings, on SQLite files
// and on PostgreSQL store databases, and checks that the figures are
// printed, every event arrived and no request failed. It asserts no speed.
func TestFirehoseSmall(t *testing.T) {
	for _, tc := range []struct {
		name string
		db   func(t *testing.T) string
		want string
	}{
		{"sqlite", func(t *testing.T) string { return t.TempDir() }, "synchronous FULL ✓"},
		{"postgres", storeDB, "synchronous_commit on, fsync on ✓"},
	} {
		t.Run(tc.name, func(t *testing.T) { firehoseSmall(t, tc.db(t), tc.want) })
	}
}

func firehoseSmall(t *testing.T, db, durable string) {
	cfg := DefaultFirehoseConfig()
	cfg.Subscribers, cfg.Rate, cfg.Tablets = 20, 40, 3
	cfg.Duration, cfg.WarmUp = time.Second, 200*time.Millisecond
	cfg.DB = db
	var log, out bytes.Buffer
	cfg.Log = &log
	rep, err := RunFirehose(context.Background(), cfg, &out)
	t.Logf("report:\n%s", out.String())
	if err != nil {
		t.Fatalf("RunFirehose: %v (server log: %s)", err, log.String())
	}
	if err := rep.Err(); err != nil {
		t.Errorf("failures: %v", err)
	}
	for _, want := range []string{
		"fan-out: 20 subscribers", "delivery ", "via socket ", "inject trip ",
		"display lag: 3 presell tablets", "add_product ", "lines.add lag ", "arrived before the reply",
		"targets: fan-out p99", "display lag p99", durable, "0 errors, 0 missing ✓",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the report lacks %q", want)
		}
	}
	if !regexp.MustCompile(`events/s +\d+ deliveries/s +errors 0 +missing 0`).MatchString(out.String()) {
		t.Errorf("the fan-out line does not say errors 0, missing 0")
	}
	f := rep.fanout
	if f.events == 0 || f.deliveries != f.events*int64(cfg.Subscribers) {
		t.Errorf("fan-out: %d events, %d deliveries; want every event at all %d subscribers", f.events, f.deliveries, cfg.Subscribers)
	}
	if f.latency[viaHub].count() == 0 || f.latency[viaSocket].count() == 0 {
		t.Errorf("fan-out: %d hub and %d socket deliveries timed; want both", f.latency[viaHub].count(), f.latency[viaSocket].count())
	}
	// A lag is counted when its reply came inside the window, which each
	// tablet reads just after timing the request: the two counts may
	// differ by the requests in flight as the window opens and closes.
	d := rep.display
	lags, replies := d.lag.count(), d.load.Latency[kindAddProduct].count()
	if d.load.Sales == 0 || lags == 0 || (lags-replies) > int64(2*cfg.Tablets) || (replies-lags) > int64(2*cfg.Tablets) {
		t.Errorf("display lag: %d sales, %d lags for %d add_product replies; want a lag for each", d.load.Sales, lags, replies)
	}
}

// TestFirehoseSkipsPhases: a phase set to 0 is not run or printed.
func TestFirehoseSkipsPhases(t *testing.T) {
	cfg := DefaultFirehoseConfig()
	cfg.Subscribers, cfg.Tablets, cfg.Rate = 0, 1, 10
	cfg.Duration, cfg.WarmUp = 300*time.Millisecond, 0
	cfg.DB = t.TempDir()
	var out bytes.Buffer
	rep, err := RunFirehose(context.Background(), cfg, &out)
	if err != nil {
		t.Fatalf("RunFirehose: %v", err)
	}
	if rep.fanout != nil || strings.Contains(out.String(), "fan-out") {
		t.Errorf("the fan-out phase ran with 0 subscribers:\n%s", out.String())
	}
	cfg.Tablets = 0
	if _, err := RunFirehose(context.Background(), cfg, &out); err == nil {
		t.Errorf("0 subscribers and 0 tablets: want an error")
	}
}

// TestDecodeBenchEvent: an event's body reads back as sent, whichever way
// it came in, and nothing else reads as a bench event.
func TestDecodeBenchEvent(t *testing.T) {
	for _, want := range []benchEventData{{12, 987654321, "hub"}, {0, 5, "socket"}} {
		body, _ := json.Marshal(want.body())
		msg := `{"rp":2,"sc":"device.event.bench","v":` + string(body) + `}`
		got, v, ok := decodeBenchEvent([]byte(msg))
		if !ok || got != want || viaNames[v] != want.Via {
			t.Errorf("%s: got %+v via %d ok %v; want %+v", msg, got, v, ok, want)
		}
	}
	for _, msg := range []string{
		`{"rp":2,"sc":"firehose.status","data":{"status":"open"}}`,
		`{"rp":2,"sc":"device.event.bench","v":{"b":"carrier-pigeon 1 5"}}`,
		`{"rp":2,"sc":"device.event.bench","v":{"b":"hub 1"}}`,
		`not json`,
	} {
		if _, _, ok := decodeBenchEvent([]byte(msg)); ok {
			t.Errorf("%s: decoded as a bench event", msg)
		}
	}
}

// TestSignedHistogram: quantiles run from the most negative value up.
func TestSignedHistogram(t *testing.T) {
	var h signedHistogram
	for i := -250; i <= 749; i++ { // 250 negative, 750 zero or positive
		h.record(time.Duration(i) * time.Millisecond)
	}
	for _, tc := range []struct {
		q    float64
		want time.Duration
	}{{0.001, -250 * time.Millisecond}, {0.1, -151 * time.Millisecond}, {0.5, 249 * time.Millisecond}, {0.99, 739 * time.Millisecond}, {1, 749 * time.Millisecond}} {
		got := h.quantile(tc.q)
		if diff := (got - tc.want).Abs(); diff > tc.want.Abs()/50+time.Millisecond {
			t.Errorf("quantile(%v) = %s, want %s within 2%%", tc.q, got, tc.want)
		}
	}
	if h.count() != 1000 || h.negShare() != 0.25 || h.maxValue() != 749*time.Millisecond {
		t.Errorf("count %d, negative share %v, max %s; want 1000, 0.25, 749ms", h.count(), h.negShare(), h.maxValue())
	}
	var allNeg signedHistogram
	allNeg.record(-3 * time.Millisecond)
	allNeg.record(-5 * time.Millisecond)
	if got := allNeg.maxValue(); (got + 3*time.Millisecond).Abs() > 100*time.Microsecond {
		t.Errorf("max of -3ms and -5ms = %s, want about -3ms", got)
	}
}
