// Package bench holds greenlane's benchmark programs. They print figures
// and ratios against a baseline run in the same process; nothing here
// asserts wall-clock speed.
//
//   - presell: tablets against the lane with group commit on and off, the
//     same sales as a bare one-transaction-per-sale loop, through the sales
//     core in process and as its SQL alone, tablets at a person's pace,
//     and the memory an idle presell socket costs the server;
//   - recall: the counter's lookups on a lane DB with a long history;
//   - firehose: one event to many subscribers, and a customer display's lag;
//   - soak: a crowd of tablets and a counter process for a long stretch,
//     and whether the server gives back what they cost.
//
// The product does the work: every client is an fd1client socket, every
// lane is wired as `greenlane serve` wires it (package lane), every lane
// DB is a fixture or fixtures.Generate's, and the baseline prices with the
// salesbuilder's own rules. What is here is load, timing and reporting.
package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/greenlane-pos/greenlane/protocol"
)

// Common is what the presell, firehose and soak benchmarks' configs share.
type Common struct {
	// Duration is how long each phase is measured. Default 10s (soak: 60s).
	Duration time.Duration
	// WarmUp runs before each measurement and is not counted. Default 1s
	// (soak: 2s).
	WarmUp time.Duration
	// DB is where the phases' lane DBs go: a folder, or a path prefix
	// (PREFIX.<phase>.db). Files of those names are replaced; the DBs are
	// kept. Default "": a temporary folder, removed at the end.
	DB string
	// RecycleEvery is how often submitted presells are voided so that
	// their tickets come free again (see voidPresells). Default 250ms; 0
	// never (the lane then runs out of tickets after 9,999 sales).
	RecycleEvery time.Duration
	// CPUProfile, when set, receives a CPU profile of the main phase's
	// (first) measured window. Default nil.
	CPUProfile io.Writer
	// Log receives the server's warnings and errors. Default nil: dropped.
	Log io.Writer
	// Child makes the command of a helper that must not share the server's
	// process (see child.go): bench presell's idle sockets, bench soak's
	// tablets and counter. Default nil: they run in this process, and
	// their memory and goroutines are counted too.
	Child ChildCommand
}

func defaultCommon() Common {
	return Common{Duration: 10 * time.Second, WarmUp: time.Second, RecycleEvery: 250 * time.Millisecond}
}

func (c Common) validate() error {
	switch {
	case c.Duration <= 0:
		return fmt.Errorf("duration %s: want more than 0", c.Duration)
	case c.WarmUp < 0:
		return fmt.Errorf("warm-up %s: want 0 or more", c.WarmUp)
	case c.RecycleEvery < 0:
		return fmt.Errorf("recycle interval %s: want 0 (never) or more", c.RecycleEvery)
	}
	return nil
}

// inRange is an error when v is outside lo…hi; note follows the range.
func inRange[T int | int64](name string, v, lo, hi T, note string) error {
	if v < lo || v > hi {
		return fmt.Errorf("%s %d: want %d…%d%s", name, v, lo, hi, note)
	}
	return nil
}

// begin checks a run's config and makes its work folder (see Common.DB),
// its server log and its printer.
func (c Common) begin(out io.Writer, validate func() error) (prefix string, cleanup func(), log *slog.Logger, p *printer, err error) {
	if err = errors.Join(validate(), c.validate()); err != nil {
		return "", nil, nil, nil, err
	}
	if prefix, cleanup, err = workPrefix(c.DB); err != nil {
		return "", nil, nil, nil, err
	}
	return prefix, cleanup, serverLog(c.Log), &printer{w: out}, nil
}

// printer writes a report; it keeps the first write error.
type printer struct {
	w   io.Writer
	err error
}

func (p *printer) printf(format string, args ...any) {
	if p.err == nil {
		_, p.err = fmt.Fprintf(p.w, format, args...)
	}
}

func (p *printer) machine(where string) {
	p.printf("machine: %d CPUs, %s/%s, %s, GOMAXPROCS %d; %s\n",
		runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, runtime.Version(), runtime.GOMAXPROCS(0), where)
}

// failedExamples is examples when something failed (not busy alone).
func (p *printer) failedExamples(label string, t *tally) {
	if t.total() > 0 {
		p.examples(label, t)
	}
}

func (p *printer) examples(label string, t *tally) {
	p.printf("   %s: %s\n", label, t.summary())
	for _, s := range t.examples() {
		p.printf("     e.g. %s\n", s)
	}
}

// loadAverage is "; load average 0.12 at start" (when) where the system
// tells it (Linux): on a small machine another busy program moves every
// tail latency, and the report should say so.
func loadAverage(when string) string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) > 0 {
		return "; load average " + f[0] + " at " + when
	}
	return ""
}

func check(label string, ok bool) string { return label + " " + mark(ok) }

func mark(ok bool) string {
	if ok {
		return "✓"
	}
	return "✗"
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

func perSec(n int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

// ms prints a latency in milliseconds, to a precision that suits it.
func ms(d time.Duration) string {
	v := float64(d) / float64(time.Millisecond)
	switch {
	case v < 10:
		return fmt.Sprintf("%.2fms", v)
	case v < 1000:
		return fmt.Sprintf("%.1fms", v)
	}
	return fmt.Sprintf("%.2fs", d.Seconds())
}

// fineMS is ms with a third decimal below 0.1 ms, where direct lanedb
// lookups are, so that their ratio to the sockets means something.
func fineMS(d time.Duration) string {
	if d < 100*time.Microsecond {
		return fmt.Sprintf("%.3fms", float64(d)/float64(time.Millisecond))
	}
	return ms(d)
}

// mb prints a size in MB (1 MB = 1024 × 1024 bytes).
func mb(n int64) string { return fmt.Sprintf("%.1f MB", float64(n)/(1<<20)) }

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// waitUntil polls done every few milliseconds until it holds, ctx ends or
// limit passes; it reports whether done held.
func waitUntil(ctx context.Context, limit time.Duration, done func() bool) bool {
	deadline := time.Now().Add(limit)
	for !done() {
		if time.Now().After(deadline) || sleep(ctx, 5*time.Millisecond) != nil {
			return done()
		}
	}
	return true
}

// startProfile starts a CPU profile into w; nil w profiles nothing.
func startProfile(w io.Writer) (stop func(), err error) {
	if w == nil {
		return func() {}, nil
	}
	if err := pprof.StartCPUProfile(w); err != nil {
		return nil, fmt.Errorf("start CPU profile: %w", err)
	}
	return pprof.StopCPUProfile, nil
}

// serverLog is the in-process server's logger: its warnings and errors go
// to w (nowhere when w is nil), so they do not drown the report.
func serverLog(w io.Writer) *slog.Logger {
	if w == nil {
		w = io.Discard
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// workPrefix turns a Config's DB into the phases' path prefix. An empty DB
// gets a temporary folder that cleanup removes; a folder gets "bench" in it.
func workPrefix(db string) (prefix string, cleanup func(), err error) {
	if db == "" {
		dir, err := os.MkdirTemp("", "greenlane-bench-")
		if err != nil {
			return "", nil, fmt.Errorf("bench work folder: %w", err)
		}
		return filepath.Join(dir, "bench"), func() { os.RemoveAll(dir) }, nil
	}
	if st, err := os.Stat(db); err == nil && st.IsDir() || strings.HasSuffix(db, string(filepath.Separator)) {
		if err := os.MkdirAll(db, 0o755); err != nil {
			return "", nil, fmt.Errorf("bench work folder: %w", err)
		}
		return filepath.Join(db, "bench"), func() {}, nil
	}
	return db, func() {}, nil
}

// busyLabel starts the sample message of a busy error.
const busyLabel = "busy, "

// maxErrorSamples bounds the error messages a tally keeps.
const maxErrorSamples = 5

// tally is the one error count of every bench: failures by code, busy
// answers apart (the lane asked to retry: reported, not a failure), and
// the first few distinct messages. Safe for concurrent use; the fields
// are exported for the soak's child, which sends its tally as JSON.
type tally struct {
	mu      sync.Mutex
	Counts  map[string]int64 `json:"errors"`
	Busy    int64            `json:"busy"`
	Samples []string         `json:"samples"`
}

// add counts n failures of code (none when n ≤ 0).
func (t *tally) add(code string, n int64, msg string) {
	if n <= 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.Counts == nil {
		t.Counts = map[string]int64{}
	}
	t.Counts[code] += n
	t.sample(msg)
}

// reply counts an error reply to what: busy answers apart.
func (t *tally) reply(what string, e *protocol.Error) {
	msg := fmt.Sprintf("%s: %s: %s", what, e.Code, e.Message)
	if !isBusy(e) {
		t.add(string(e.Code), 1, msg)
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.Busy++
	t.sample(busyLabel + msg)
}

// fail counts a failed request (its FD1 code) or a broken client
// ("connection").
func (t *tally) fail(what string, err error) {
	code := "connection"
	if pe := (*protocol.Error)(nil); errors.As(err, &pe) {
		code = string(pe.Code)
	}
	t.add(code, 1, what+": "+err.Error())
}

func (t *tally) sample(msg string) {
	if len(t.Samples) < maxErrorSamples && !slices.Contains(t.Samples, msg) {
		t.Samples = append(t.Samples, msg)
	}
}

// total is the number of real (non-busy) failures.
func (t *tally) total() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	var n int64
	for _, c := range t.Counts {
		n += c
	}
	return n
}

func (t *tally) count(code string) int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.Counts[code]
}

func (t *tally) busy() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.Busy
}

// codes is "conflict ×3, connection ×1": the real failures.
func (t *tally) codes() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	codes := make([]string, 0, len(t.Counts))
	for c := range t.Counts {
		codes = append(codes, c)
	}
	sort.Slice(codes, func(i, j int) bool {
		if t.Counts[codes[i]] != t.Counts[codes[j]] {
			return t.Counts[codes[i]] > t.Counts[codes[j]]
		}
		return codes[i] < codes[j]
	})
	for i, c := range codes {
		codes[i] = fmt.Sprintf("%s ×%d", c, t.Counts[c])
	}
	return strings.Join(codes, ", ")
}

// summary is codes with the busy answers: "conflict ×3, busy ×2".
func (t *tally) summary() string {
	parts := []string{}
	if t.total() > 0 {
		parts = append(parts, t.codes())
	}
	if b := t.busy(); b > 0 {
		parts = append(parts, fmt.Sprintf("busy ×%d", b))
	}
	return strings.Join(parts, ", ")
}

func (t *tally) examples() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.Samples)
}

// example is the first message of a real failure.
func (t *tally) example() string {
	for _, s := range t.examples() {
		if !strings.HasPrefix(s, busyLabel) {
			return s
		}
	}
	return "no message"
}

type namedTally struct {
	name string
	errs *tally
}

// failures sums the real failures of tallies by name and code, with an
// example; nil when there are none.
func failures(note string, ts ...namedTally) error {
	var parts []string
	var total int64
	example := ""
	for _, t := range ts {
		if n := t.errs.total(); n > 0 {
			total += n
			parts = append(parts, t.name+": "+t.errs.codes())
			if example == "" {
				example = t.errs.example()
			}
		}
	}
	if total == 0 {
		return nil
	}
	return fmt.Errorf("%d requests failed%s: %s; e.g. %s", total, note, strings.Join(parts, "; "), example)
}

// isBusy tells a busy error (the lane asks to retry later: overloaded or a
// lock held by another program) from a real failure.
func isBusy(e *protocol.Error) bool {
	msg := strings.ToLower(e.Message)
	return e.Code == protocol.CodeUnavailable || strings.Contains(msg, "locked") || strings.Contains(msg, "busy")
}
