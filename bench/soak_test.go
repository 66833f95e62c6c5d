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

// TestSoakSmall runs the soak with tiny settings, tablets and counter in
// child processes as the real program runs them, on an SQLite file and on
// a PostgreSQL store database, and checks that every figure is printed and
// no request failed. It asserts no speed, and not the memory targets
// either: on a shared test machine a few seconds are too short for RSS to
// settle.
func TestSoakSmall(t *testing.T) {
	for _, tc := range []struct {
		name string
		db   func(t *testing.T) string
		want []string
	}{
		{"sqlite", func(t *testing.T) string { return t.TempDir() }, []string{"demo lane DB, synchronous FULL",
			"writer yields: ", "lock wait (BEGIN IMMEDIATE)", "plus SQLite's page caches", "synchronous FULL ✓"}},
		{"postgres", storeDB, []string{"demo lane DB, on PostgreSQL", "writer yields: left out on PostgreSQL",
			"lock wait (BEGIN, then the journal lock)", "plus no SQLite page caches", "synchronous_commit on, fsync on ✓"}},
	} {
		t.Run(tc.name, func(t *testing.T) { soakSmall(t, tc.db(t), tc.want) })
	}
}

func soakSmall(t *testing.T, db string, want []string) {
	cfg := DefaultSoakConfig()
	cfg.Tablets, cfg.Duration, cfg.WarmUp, cfg.Settle = 10, 2*time.Second, 300*time.Millisecond, time.Second
	cfg.DB = db
	cfg.Child = testChild
	var log, out bytes.Buffer
	cfg.Log = &log
	rep, err := RunSoak(context.Background(), cfg, &out)
	t.Logf("report:\n%s", out.String())
	if err != nil {
		t.Fatalf("RunSoak: %v (server log: %s)", err, log.String())
	}
	if err := rep.Err(); err != nil {
		t.Errorf("requests failed: %v", err)
	}
	for _, want := range append([]string{
		"greenlane bench soak — 10 presell tablets", "tablets in a child process, counter in another",
		"create ", "add_product ", "set_customer ", "park ", "writer: ",
		"counter process: ", "start (server up", "peak ", "end ", "after (tablets gone",
		"back to baseline: RSS ", "0 errors ✓", "0 busy errors reaching clients ", "targets (issue 6",
	}, want...) {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the report lacks %q", want)
		}
	}
	if !regexp.MustCompile(`sales/s +\d+ req/s +errors 0 +busy 0`).MatchString(out.String()) {
		t.Errorf("the load line does not say errors 0, busy 0")
	}
	if rep.load.Sales == 0 || rep.load.tablets != cfg.Tablets {
		t.Errorf("%d sales by %d tablets; want sales by all %d", rep.load.Sales, rep.load.tablets, cfg.Tablets)
	}
	if c := rep.counter; c == nil || c.Transactions == 0 || c.Busy != 0 {
		t.Errorf("counter process: %+v; want transactions and no busy", c)
	}
	if m := rep.mem; m[memStart].goroutines == 0 || m[memPeak].goroutines < m[memStart].goroutines || m[memAfter].goroutines == 0 {
		t.Errorf("memory readings %+v: want goroutines at start, peak and after", m)
	}
}

// TestSoakInProcess: without child commands the tablets and the counter
// run in this process, and the report says so.
func TestSoakInProcess(t *testing.T) {
	cfg := DefaultSoakConfig()
	cfg.Tablets, cfg.Duration, cfg.WarmUp, cfg.Settle = 3, time.Second, 100*time.Millisecond, 0
	cfg.DB = t.TempDir()
	var out bytes.Buffer
	rep, err := RunSoak(context.Background(), cfg, &out)
	t.Logf("report:\n%s", out.String())
	if err != nil {
		t.Fatalf("RunSoak: %v", err)
	}
	if err := rep.Err(); err != nil {
		t.Errorf("requests failed: %v", err)
	}
	if !strings.Contains(out.String(), "tablets in this process") || !strings.Contains(out.String(), "counter on a goroutine") {
		t.Errorf("the header does not say the clients ran in this process")
	}
	if rep.load.Sales == 0 || rep.counter == nil || rep.counter.Transactions == 0 {
		t.Errorf("%d sales, counter %+v: want both at work", rep.load.Sales, rep.counter)
	}
}

// TestGoroutineDiff: a stack that gained goroutines is listed with its
// gain, one that lost them with a negative count, an unchanged one not.
func TestGoroutineDiff(t *testing.T) {
	before := map[string]goroutineGroup{
		"a": {count: 3, frames: []string{"runtime.gopark proc.go:1", "server.(*socket).readPump socket.go:10"}},
		"b": {count: 1, frames: []string{"lane.sweep lane.go:5"}},
		"c": {count: 2, frames: []string{"gone.fn x.go:1"}},
	}
	after := map[string]goroutineGroup{
		"a": {count: 8, frames: before["a"].frames},
		"b": {count: 1, frames: before["b"].frames},
	}
	got := diffGoroutines(before, after)
	if len(got) != 2 || got[0].delta != 5 || got[1].delta != -2 {
		t.Fatalf("diff = %+v, want +5 (a) then -2 (c)", got)
	}
	if f := appFrames(got[0].frames, 6); len(f) != 1 || f[0] != "server.(*socket).readPump socket.go:10" {
		t.Errorf("appFrames = %q, want the runtime frame left out", f)
	}
	groups := goroutineGroups()
	if len(groups) == 0 {
		t.Errorf("goroutineGroups read no stacks from this process")
	}
	for _, g := range groups {
		if strings.Contains(strings.Join(g.frames, "\n"), "bench.TestGoroutineDiff ") {
			t.Errorf("goroutineGroups kept its caller's own stack: %q", g.frames)
		}
	}
}

// TestHistogramWire: a histogram survives the trip to JSON and back.
func TestHistogramWire(t *testing.T) {
	var h, back histogram
	for i := 1; i <= 500; i++ {
		h.record(time.Duration(i) * 37 * time.Microsecond)
	}
	b, err := json.Marshal(&h)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	for _, q := range []float64{0.5, 0.99, 0.999, 1} {
		if a, b := h.quantile(q), back.quantile(q); a != b {
			t.Errorf("quantile(%v): %s before, %s after", q, a, b)
		}
	}
	if back.count() != h.count() || back.maxValue() != h.maxValue() {
		t.Errorf("count %d max %s, want %d and %s", back.count(), back.maxValue(), h.count(), h.maxValue())
	}
	for _, bad := range []string{`{"max":1}`, `{"hdr":{"LowestTrackableValue":1,"HighestTrackableValue":1000,"SignificantFigures":2,"Counts":[1]},"max":1}`,
		`{"hdr":{"LowestTrackableValue":1,"HighestTrackableValue":3600000000000,"SignificantFigures":2,"Counts":[-1]},"max":1}`} {
		if err := json.Unmarshal([]byte(bad), &back); err == nil {
			t.Errorf("%s was accepted", bad)
		}
	}
}
