package bench

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// childEnv makes this test binary act as a bench child of the kind it
// names, as `greenlane bench child KIND` does for the real program.
const childEnv = "GREENLANE_BENCH_TEST_CHILD"

func TestMain(m *testing.M) {
	if kind := os.Getenv(childEnv); kind != "" {
		if err := Child(context.Background(), kind, os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "bench child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// testChild runs the bench's children as this test binary.
func testChild(ctx context.Context, kind string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+kind)
	return cmd
}

// TestPresellSmall runs every phase twice with tiny settings and checks
// that the report holds every figure, parses, and that no request failed.
// It asserts no speed.
func TestPresellSmall(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Tablets, cfg.Duration, cfg.WarmUp, cfg.Runs = 2, 500*time.Millisecond, 100*time.Millisecond, 2
	cfg.Realistic = []int{4}
	cfg.IdleSockets = 20
	cfg.DB = t.TempDir()
	cfg.Child = testChild
	var log bytes.Buffer
	cfg.Log = &log
	var out bytes.Buffer
	rep, err := Run(context.Background(), cfg, &out)
	t.Logf("report:\n%s", out.String())
	if err != nil {
		t.Fatalf("Run: %v (server log: %s)", err, log.String())
	}
	if err := rep.Err(); err != nil {
		t.Errorf("requests failed: %v", err)
	}
	report := out.String()
	for _, want := range []string{
		"group commit on (wait 2ms):", "group commit off:", "baseline-1tx:", "ceiling-core (wait 2ms):", "ceiling-sql (wait 2ms):",
		"realistic 4 tablets × 1 req/s:", "from the scheduled send: Poisson, open loop",
		"create ", "add_product ", "set_customer ", "park ", "all requests ",
		"statements and", "busy per change", "WAL pages written per change", "2 runs: sales/s median", "CPU over the window: this process",
		"memory per idle presell socket:", "KB RSS (20 sockets", "child process",
	} {
		if !strings.Contains(report, want) {
			t.Errorf("the report lacks %q", want)
		}
	}
	for _, re := range []string{
		`(?m)^machine: .*load average [0-9.]+`,
		`(?m)^ratios: on/off \d+\.\d\d×   on/baseline \d+\.\d\d×$`,
		`(?m)^   writer: .*COMMIT [0-9.]+ms avg \(99% (≤|over) [0-9.]+ms\)`,
		`(?m)^ceilings: socket/ceiling-core \d+\.\d\d×   core/ceiling-sql \d+\.\d\d×`,
		`(?m)^targets \(set for 200 tablets\): writer ≤50µs/change \(\d+µs\) [✓✗], on/baseline ≥2\.0× \([0-9.]+×\) [✓✗], ≥2500 sales/s \(\d+\) [✓✗], ` +
			`p99 ≤50\.0ms \([0-9.]+m?s\) [✓✗], ≤20 KB RSS/idle socket \(-?[0-9.]+\) [✓✗], synchronous FULL ✓, 0 errors ✓$`,
	} {
		if !regexp.MustCompile(re).MatchString(report) {
			t.Errorf("the report has no line matching %s", re)
		}
	}
	// Every load phase (5 timed ones: all but baseline-1tx) prints its
	// throughput with no failure.
	if n := len(regexp.MustCompile(`sales/s +\d+ req/s +errors 0 +busy \d+`).FindAllString(report, -1)); n != 5 {
		t.Errorf("want five timed phases with errors 0, found %d", n)
	}
	for _, r := range rep.phases {
		if r.Sales == 0 && !r.paced {
			t.Errorf("%s made no sales", r.name)
		}
	}
	// The tablets sent an ik with every change, as the tablet page does
	// (the default), and the ceilings stored one as the core does: every
	// phase but baseline-1tx stored a reply per change.
	if !strings.Contains(report, "each change with an ik") {
		t.Errorf("the report does not say the tablets send an ik")
	}
	for _, c := range []struct {
		file string
		iks  bool
	}{{"gc-on", true}, {"gc-off", true}, {"core", true}, {"sql", true}, {"realistic-4", true}, {"baseline", false}} {
		if n := idempotencyRows(t, filepath.Join(cfg.DB, "bench."+c.file+".db")); (n > 0) != c.iks {
			t.Errorf("phase %s stored %d replies by ik; want some: %v", c.file, n, c.iks)
		}
	}
}

// idempotencyRows counts the replies stored by ik in the lane DB at path.
func idempotencyRows(t *testing.T, path string) int {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow(`SELECT COUNT(*) FROM idempotency`).Scan(&n); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return n
}

func TestHistogramQuantiles(t *testing.T) {
	var h histogram
	for i := 1; i <= 1000; i++ {
		h.record(time.Duration(i) * time.Millisecond)
	}
	for _, tc := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 500 * time.Millisecond}, {0.99, 990 * time.Millisecond}, {0.999, 999 * time.Millisecond}, {1, time.Second}} {
		got := h.quantile(tc.q)
		if diff := (got - tc.want).Abs(); diff > tc.want/50 {
			t.Errorf("quantile(%v) = %s, want %s within 2%%", tc.q, got, tc.want)
		}
	}
	if h.count() != 1000 || h.maxValue() != time.Second {
		t.Errorf("count %d max %s, want 1000 and 1s", h.count(), h.maxValue())
	}
	if got := new(histogram).quantile(0.5); got != 0 {
		t.Errorf("empty histogram quantile = %s, want 0", got)
	}
}

// TestReportErr: busy errors are reported but are no failure; any other
// error code is, with a real (not busy) example.
func TestReportErr(t *testing.T) {
	busyOnly := &loadResult{name: "on", loadStats: &loadStats{Errs: tally{Busy: 3, Samples: []string{busyLabel + "park: unavailable: x"}}}}
	clean := &loadResult{name: "off", loadStats: &loadStats{}}
	if err := (&Report{phases: []*loadResult{busyOnly, clean}}).Err(); err != nil {
		t.Errorf("busy errors only: Err() = %v, want nil", err)
	}
	failed := &loadResult{name: "off", loadStats: &loadStats{Errs: tally{Counts: map[string]int64{"conflict": 2, "connection": 1},
		Samples: []string{busyLabel + "park: unavailable: x", "add_product: conflict: y"}}}}
	err := (&Report{phases: []*loadResult{busyOnly, failed}}).Err()
	if err == nil || !strings.Contains(err.Error(), "3 requests failed") ||
		!strings.Contains(err.Error(), "conflict ×2, connection ×1") || !strings.Contains(err.Error(), "e.g. add_product: conflict: y") {
		t.Errorf("Err() = %v, want 3 failures by code with the conflict as example", err)
	}
}
