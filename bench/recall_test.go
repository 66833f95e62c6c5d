package bench

import (
	"bytes"
	"context"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/greenlane-pos/greenlane/progress"
)

// TestRecallSmall runs the recall benchmark with tiny settings and checks
// that every figure is printed and no request failed. It asserts no speed.
func TestRecallSmall(t *testing.T) {
	cfg := DefaultRecallConfig()
	cfg.Sales, cfg.Open, cfg.Requests, cfg.WarmUp, cfg.Counters = 2000, 20, 100, 20, 3
	cfg.DB = filepath.Join(t.TempDir(), "recall.db")
	var progress, log, out bytes.Buffer
	cfg.Progress, cfg.Log = &progress, &log
	rep, err := RunRecall(context.Background(), cfg, &out)
	t.Logf("report:\n%s\nprogress:\n%s", out.String(), progress.String())
	if err != nil {
		t.Fatalf("RunRecall: %v (server log: %s)", err, log.String())
	}
	if err := rep.Err(); err != nil {
		t.Errorf("requests failed: %v", err)
	}
	for _, want := range []string{
		"lane DB: built 2,000 historic sales", "sales 2,020", "open presells 20",
		"get_presells (all", "recall by ticket (lookup): ✓", "sales_open_presells",
		"1 counter over WebSocket:", "direct lanedb", "3 counters over WebSocket at once:",
		"recall lookup", "release ", "writer over the cycles:", "socket/direct (p50 p99): get_presells",
		"errors: 0", "0 errors ✓", "an index, not a scan ✓",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the report lacks %q", want)
		}
	}
	if strings.Contains(out.String(), "SCANS THE HISTORIC") {
		t.Errorf("a query plan scans the historic sales")
	}
	// Every figure timed every request it was asked for.
	if n := len(regexp.MustCompile(`get_presells +p50 \S+ +p99 \S+ +p999 \S+ +max \S+ +n 100 `).FindAllString(out.String(), -1)); n != 3 {
		t.Errorf("want 3 get_presells figures of 100 requests, found %d", n)
	}
	if !strings.Contains(progress.String(), "2,000 sales in") || strings.Contains(progress.String(), "\r") {
		t.Errorf("progress to a non-terminal: want plain lines ending with the build time, got %q", progress.String())
	}

	// A second run on the same file reuses the build and voids the first
	// run's open presells.
	out.Reset()
	rep, err = RunRecall(context.Background(), cfg, &out)
	if err != nil {
		t.Fatalf("second RunRecall: %v", err)
	}
	if err := rep.Err(); err != nil {
		t.Errorf("second run: requests failed: %v", err)
	}
	for _, want := range []string{"reused", "20 left open by an earlier run voided", "open presells 20"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the second report lacks %q:\n%s", want, out.String())
		}
	}
}

func TestThousands(t *testing.T) {
	for n, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", 1234567: "1,234,567", -1234: "-1,234"} {
		if got := progress.Thousands(n); got != want {
			t.Errorf("progress.Thousands(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestBigScans(t *testing.T) {
	ok := []string{"SCAN s USING INDEX sales_open_presells", "SEARCH c USING INTEGER PRIMARY KEY (rowid=?)",
		"CORRELATED SCALAR SUBQUERY 1", "  SEARCH l USING PRIMARY KEY (sale_physkey=?)", "SCAN c"}
	if got := bigScans(ok); len(got) != 0 {
		t.Errorf("bigScans flagged %q", got)
	}
	bad := []string{"SCAN s", "SCAN sales USING COVERING INDEX sales_phase", "  SCAN l"}
	if got := bigScans(bad); len(got) != 3 {
		t.Errorf("bigScans(%q) = %q, want all three", bad, got)
	}
}
