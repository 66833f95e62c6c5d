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

// TestRecallSmall runs the recall benchmark with tiny settings, on an
// SQLite file and on a PostgreSQL store database, and checks that every
// figure is printed and no request failed, and that a second run reuses
// the build. It asserts no speed.
func TestRecallSmall(t *testing.T) {
	shared := []string{"lane DB: built 2,000 historic sales", "sales 2,020", "open presells 20",
		"get_presells (all", "1 counter over WebSocket:", "direct lanedb", "3 counters over WebSocket at once:",
		"recall lookup", "release ", "writer over the cycles:", "socket/direct (p50 p99): get_presells",
		"errors: 0", "0 errors ✓", "an index, not a scan ✓"}
	for _, tc := range []struct {
		name string
		db   func(t *testing.T) string
		want []string
	}{
		{"sqlite", func(t *testing.T) string { return filepath.Join(t.TempDir(), "recall.db") }, []string{
			"synchronous OFF during the build only", " MB WAL)", "EXPLAIN QUERY PLAN", "sales_open_presells",
			"recall by ticket (lookup): ✓ walks only open presells", "synchronous FULL ✓"}},
		{"postgres", storeDB, []string{"then ANALYZE) at postgres://", "_recall?", "(pg_database_size; the WAL is the cluster's, left out)",
			"EXPLAIN (COSTS OFF)", "Index Scan using sales_open_presells on sales s",
			"recall by ticket (lookup): ✓ an index, no Seq Scan", "synchronous_commit on, fsync on ✓"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultRecallConfig()
			cfg.Sales, cfg.Open, cfg.Requests, cfg.WarmUp, cfg.Counters = 2000, 20, 50, 10, 3
			cfg.DB = tc.db(t)
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
			for _, want := range append(shared, tc.want...) {
				if !strings.Contains(out.String(), want) {
					t.Errorf("the report lacks %q", want)
				}
			}
			if strings.Contains(out.String(), "SCANS THE HISTORIC") {
				t.Errorf("a query plan scans the historic sales")
			}
			// Every figure timed every request it was asked for.
			if n := len(regexp.MustCompile(`get_presells +p50 \S+ +p99 \S+ +p999 \S+ +max \S+ +n 50 `).FindAllString(out.String(), -1)); n != 3 {
				t.Errorf("want 3 get_presells figures of 50 requests, found %d", n)
			}
			if !strings.Contains(progress.String(), "2,000 sales in") || strings.Contains(progress.String(), "\r") {
				t.Errorf("progress to a non-terminal: want plain lines ending with the build time, got %q", progress.String())
			}

			// A second run on the same file (or database) reuses the build
			// and voids the first run's open presells.
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
		})
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
		"CORRELATED SCALAR SUBQUERY 1", "  SEARCH l USING PRIMARY KEY (sale_physkey=?)", "SCAN c",
		"  ->  Index Scan using sales_open_presells on sales s", "->  Bitmap Heap Scan on sale_lines l", "Seq Scan on customers c", "Seq Scan on "}
	if got := bigScans(ok); len(got) != 0 {
		t.Errorf("bigScans flagged %q", got)
	}
	bad := []string{"SCAN s", "SCAN sales USING COVERING INDEX sales_phase", "  SCAN l",
		"  ->  Seq Scan on sales s", "->  Parallel Seq Scan on sale_lines l", "Seq Scan on payments"}
	if got := bigScans(bad); len(got) != len(bad) {
		t.Errorf("bigScans(%q) = %q, want all", bad, got)
	}
}
