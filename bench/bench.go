// Package bench holds greenlane's benchmark programs (`greenlane bench
// presell|recall|firehose|soak`). Each prints its figures and their ratios
// to a baseline measured in the same run; nothing here asserts wall-clock
// speed.
//
// The product does the work: every client is an fd1client socket, every
// lane is wired by package lane as `greenlane serve` wires it, every lane
// DB is a fixture or fixtures.Generate's, and the baseline prices with the
// salesbuilder's own rules. What is here is load, timing and reporting.
package bench

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/prometheus/procfs"

	"github.com/greenlane-pos/greenlane/protocol"
)

// Common is what the presell, firehose and soak configs share.
type Common struct {
	// Duration is how long each phase is measured. Default 10s (soak: 60s).
	Duration time.Duration
	// WarmUp runs unmeasured before each measurement. Default 1s (soak: 2s).
	WarmUp time.Duration
	// DB is where the phases' lane DBs go: a folder or a path prefix
	// (PREFIX.<phase>.db), replaced and then kept; or a PostgreSQL URL,
	// beside whose database each phase makes its own (store.go).
	// Default "": a temporary folder, removed at the end.
	DB string
	// RecycleEvery is how often submitted presells beyond the newest 2,499
	// are voided to free their tickets (see recycler). Default 250ms;
	// 0 never (the lane then runs out of tickets after 9,999 sales).
	RecycleEvery time.Duration
	// CPUProfile receives a CPU profile of the main phase's (first)
	// measured window. Default nil.
	CPUProfile io.Writer
	// Log receives the server's warnings and errors. Default nil: dropped.
	Log io.Writer
	// Child makes the command of a helper that must not share the server's
	// process (child.go). Default nil: the helpers run in this process,
	// and their memory and goroutines are counted too.
	Child ChildCommand
}

func defaultCommon() Common {
	return Common{Duration: 10 * time.Second, WarmUp: time.Second, RecycleEvery: 250 * time.Millisecond}
}

// begin checks a run's config and gives it its phases' DB prefix (see
// phaseDB), a cleanup, the server's log and a printer.
func (c Common) begin(out io.Writer, validate func() error) (prefix string, cleanup func(), log *slog.Logger, p *printer, err error) {
	err = errors.Join(validate(), atLeast("duration", c.Duration, 1, "more than 0"), atLeast("warm-up", c.WarmUp, 0, "0 or more"),
		atLeast("recycle interval", c.RecycleEvery, 0, "0 (never) or more"))
	if err == nil {
		prefix, cleanup, err = workPrefix(c.DB)
	}
	if err != nil {
		return "", nil, nil, nil, err
	}
	return prefix, cleanup, serverLog(c.Log), &printer{w: out}, nil
}

// inRange is an error when v is outside lo…hi; note follows the range.
func inRange[T int | int64](name string, v, lo, hi T, note string) error {
	if v < lo || v > hi {
		return fmt.Errorf("%s %d: want %d…%d%s", name, v, lo, hi, note)
	}
	return nil
}

// atLeast is an error when d is below lo, saying what is wanted.
func atLeast(name string, d, lo time.Duration, want string) error {
	if d < lo {
		return fmt.Errorf("%s %s: want %s", name, d, want)
	}
	return nil
}

// serverLog is the in-process server's logger: its warnings and errors go
// to w (nowhere when nil), so that they do not drown the report.
func serverLog(w io.Writer) *slog.Logger {
	if w == nil {
		w = io.Discard
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn}))
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
	p.printf("machine: %d CPUs, %s/%s, %s, GOMAXPROCS %d, GOGC %s; %s\n",
		runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, runtime.Version(), runtime.GOMAXPROCS(0), gcPercent(), where)
}

// gcPercent is the collector's target (GOGC) as the runtime holds it.
func gcPercent() string {
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	switch metrics.Read(s); {
	case s[0].Value.Kind() != metrics.KindUint64:
		return "unknown"
	case s[0].Value.Uint64() > math.MaxInt32: // the runtime's "off"
		return "off"
	}
	return fmt.Sprint(s[0].Value.Uint64())
}

// examples prints the errors by code with the first messages; with
// failedOnly, only when something failed (not busy alone).
func (p *printer) examples(label string, t *tally, failedOnly bool) {
	total, busy := t.total(), t.busy()
	if total+busy == 0 || failedOnly && total == 0 {
		return
	}
	var parts []string
	if total > 0 {
		parts = append(parts, t.codes())
	}
	if busy > 0 {
		parts = append(parts, fmt.Sprintf("busy ×%d", busy))
	}
	p.printf("   %s: %s\n", label, strings.Join(parts, ", "))
	for _, s := range t.examples() {
		p.printf("     e.g. %s\n", s)
	}
}

func (p *printer) connected(n, wanted int, what string) {
	if n != wanted {
		p.printf("   only %d of %d %s connected\n", n, wanted, what)
	}
}

// latency prints one histogram's line.
func (p *printer) latency(label string, h quantiler) {
	p.printf("   %-13s %s\n", label, quantiles(h, ms, 0))
}

// cpuLine says how busy the machine was over a window, and with what: on
// a shared machine a latency means little without it.
func (p *printer) cpuLine(c cpuUse) {
	if c.ok {
		p.printf("   CPU over the window: this process %.2f (%.0f%% of %d CPUs), other processes %.2f%s\n",
			c.self, 100*c.self/float64(runtime.NumCPU()), runtime.NumCPU(), c.other, loadAverage("end"))
	}
}

// loadAverage is "; load average 0.12 at start" (when) where the system
// tells it: on a small machine another busy program moves every tail.
func loadAverage(when string) string {
	if la, err := procFS().LoadAvg(); err == nil {
		return fmt.Sprintf("; load average %.2f at %s", la.Load1, when)
	}
	return ""
}

// procFS is /proc; where there is none, every reading of it fails.
func procFS() procfs.FS {
	fs, _ := procfs.NewDefaultFS()
	return fs
}

func check(label string, ok bool) string { return label + " " + mark(ok) }

func mark(ok bool) string { return map[bool]string{true: "✓", false: "✗"}[ok] }

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

func perSec(n int64, d time.Duration) float64 { return ratio(float64(n), d.Seconds()) }

// ms prints a latency in milliseconds, to a precision that suits it.
func ms(d time.Duration) string {
	switch v := float64(d) / float64(time.Millisecond); {
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

// waitUntil polls done until it holds, ctx ends or limit passes; it
// reports whether done held.
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

// busyLabel starts the sample message of a busy error.
const busyLabel = "busy, "

// tally is the one error count of every bench: failures by code, busy
// answers apart (the lane asked to retry: reported, not a failure), and
// the first five distinct messages. Its fields travel as JSON from the
// soak's child.
type tally struct {
	mu      sync.Mutex
	Counts  map[string]int64 `json:"errors"`
	Busy    int64            `json:"busy"`
	Samples []string         `json:"samples"`
}

// add counts n failures of code (none when n ≤ 0); code "" is busy.
func (t *tally) add(code string, n int64, msg string) {
	if n <= 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if code == "" {
		t.Busy += n
		msg = busyLabel + msg
	} else {
		if t.Counts == nil {
			t.Counts = map[string]int64{}
		}
		t.Counts[code] += n
	}
	if len(t.Samples) < 5 && !slices.Contains(t.Samples, msg) {
		t.Samples = append(t.Samples, msg)
	}
}

// reply counts an error reply to what. A busy one (overloaded, or a lock
// held by another program) is no failure.
func (t *tally) reply(what string, e *protocol.Error) {
	code, msg := string(e.Code), strings.ToLower(e.Message)
	if e.Code == protocol.CodeUnavailable || strings.Contains(msg, "locked") || strings.Contains(msg, "busy") {
		code = ""
	}
	t.add(code, 1, fmt.Sprintf("%s: %s: %s", what, e.Code, e.Message))
}

// fail counts a failed request by its FD1 code, or a broken client as
// "connection".
func (t *tally) fail(what string, err error) {
	code := "connection"
	if pe := (*protocol.Error)(nil); errors.As(err, &pe) {
		code = string(pe.Code)
	}
	t.add(code, 1, what+": "+err.Error())
}

// total is the number of real (not busy) failures.
func (t *tally) total() (n int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, c := range t.Counts {
		n += c
	}
	return n
}

func (t *tally) busy() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.Busy
}

// codes is "conflict ×3, connection ×1": the real failures, most first.
func (t *tally) codes() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	codes := slices.Collect(maps.Keys(t.Counts))
	slices.SortFunc(codes, func(a, b string) int { return cmp.Or(cmp.Compare(t.Counts[b], t.Counts[a]), strings.Compare(a, b)) })
	for i, c := range codes {
		codes[i] = fmt.Sprintf("%s ×%d", c, t.Counts[c])
	}
	return strings.Join(codes, ", ")
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
			example = cmp.Or(example, t.errs.example())
		}
	}
	if total == 0 {
		return nil
	}
	return fmt.Errorf("%d requests failed%s: %s; e.g. %s", total, note, strings.Join(parts, "; "), example)
}

// cpuUse is how busy the CPUs were over a window: this process, and every
// other process with the kernel (a build beside the bench takes the same
// cores from the server and its clients).
type cpuUse struct {
	ok          bool // the figures could be read (Linux /proc)
	self, other float64
}

// cpuMark is a reading to take a window's difference from: the machine's
// non-idle CPU seconds and this process's.
type cpuMark struct {
	at         time.Time
	busy, self float64
	ok         bool
}

func readCPUMark() cpuMark {
	m := cpuMark{at: time.Now()}
	st, err := procFS().Stat()
	if err != nil {
		return m
	}
	if ps, err := selfStat(); err == nil {
		c := st.CPUTotal // guest time is in user time already
		m.busy, m.self, m.ok = c.User+c.Nice+c.System+c.IRQ+c.SoftIRQ+c.Steal, ps.CPUTime(), true
	}
	return m
}

func selfStat() (procfs.ProcStat, error) {
	self, err := procfs.Self()
	if err != nil {
		return procfs.ProcStat{}, err
	}
	return self.Stat()
}

func (m cpuMark) since() cpuUse {
	now := readCPUMark()
	wall := now.at.Sub(m.at).Seconds()
	if !m.ok || !now.ok || wall <= 0 {
		return cpuUse{}
	}
	busy, self := now.busy-m.busy, now.self-m.self
	return cpuUse{ok: true, self: self / wall, other: max(busy-self, 0) / wall}
}

// histogram records latencies: an HdrHistogram from 1 ns to an hour at two
// significant figures (a value is off by at most 1% of itself), in fixed
// memory however long the run. It is safe for concurrent use, so the
// tablets of a phase share one per request kind; its zero value is ready.
type histogram struct {
	mu  sync.Mutex
	h   *hdrhistogram.Histogram // nil until first used
	max time.Duration           // exact: h knows only its bucket
}

const histMax = int64(time.Hour)

func (h *histogram) hdr() *hdrhistogram.Histogram {
	if h.h == nil {
		h.h = hdrhistogram.New(1, histMax, 2)
	}
	return h.h
}

func (h *histogram) record(d time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	_ = h.hdr().RecordValue(min(max(int64(d), 0), histMax)) // in range: cannot fail
	h.max = max(h.max, d)
}

func (h *histogram) count() int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.hdr().TotalCount()
}

// quantile is the latency that a fraction q (0 < q ≤ 1) of requests did
// not exceed, to within 1%; 0 when nothing was recorded.
func (h *histogram) quantile(q float64) time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	return min(time.Duration(h.hdr().ValueAtQuantile(100*q)), h.max)
}

func (h *histogram) maxValue() time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.max
}

// histogramJSON is a histogram on the wire (a child's figures).
type histogramJSON struct {
	HDR *hdrhistogram.Snapshot `json:"hdr"`
	Max int64                  `json:"max"` // nanoseconds
}

func (h *histogram) MarshalJSON() ([]byte, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return json.Marshal(histogramJSON{HDR: h.hdr().Export(), Max: int64(h.max)})
}

// UnmarshalJSON adds the figures to h's.
func (h *histogram) UnmarshalJSON(b []byte) error {
	var j histogramJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	if j.HDR == nil {
		return errors.New("no histogram")
	}
	if err := j.HDR.Validate(); err != nil {
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if mine := h.hdr().Export(); j.HDR.LowestTrackableValue != mine.LowestTrackableValue || j.HDR.HighestTrackableValue != mine.HighestTrackableValue ||
		j.HDR.SignificantFigures != mine.SignificantFigures || len(j.HDR.Counts) > len(mine.Counts) {
		return fmt.Errorf("histogram of another shape (%d…%d ns, %d figures, %d counts)", j.HDR.LowestTrackableValue,
			j.HDR.HighestTrackableValue, j.HDR.SignificantFigures, len(j.HDR.Counts))
	}
	h.h.Merge(hdrhistogram.Import(j.HDR))
	h.max = max(h.max, time.Duration(j.Max))
	return nil
}

// signedHistogram records durations that may be negative: their sizes in
// one histogram, the rest in another, so its memory is fixed as well.
type signedHistogram struct {
	neg, pos histogram
}

func (h *signedHistogram) record(d time.Duration) {
	if d < 0 {
		h.neg.record(-d)
	} else {
		h.pos.record(d)
	}
}

func (h *signedHistogram) count() int64 { return h.neg.count() + h.pos.count() }

// negShare is the fraction of values below zero.
func (h *signedHistogram) negShare() float64 {
	return ratio(float64(h.neg.count()), float64(h.count()))
}

// quantile is the value that a fraction q of values did not exceed. The
// r-th smallest value overall is, among the negatives, the one whose size
// is the (negatives − r + 1)-th smallest.
func (h *signedHistogram) quantile(q float64) time.Duration {
	n, negN := h.count(), h.neg.count()
	if n == 0 {
		return 0
	}
	rank := min(max(int64(q*float64(n)+0.999999), 1), n) // ceil, without float noise turning 99.0 into 100
	if rank <= negN {
		return -h.neg.quantile(float64(negN-rank+1) / float64(negN))
	}
	return h.pos.quantile(float64(rank-negN) / float64(n-negN))
}

// maxValue is the largest value; negative when every value is.
func (h *signedHistogram) maxValue() time.Duration {
	if h.pos.count() > 0 {
		return h.pos.maxValue()
	}
	return -h.neg.quantile(1 / float64(max(h.neg.count(), 1)))
}

type quantiler interface {
	quantile(q float64) time.Duration
	maxValue() time.Duration
	count() int64
}

// quantiles is "p50 0.52ms  p99 1.20ms  p999 2.31ms  max 3.10ms  n 2000",
// each latency written by f, the count padded to nWidth.
func quantiles(h quantiler, f func(time.Duration) string, nWidth int) string {
	return fmt.Sprintf("p50 %-8s p99 %-8s p999 %-8s max %-8s n %-*d", f(h.quantile(0.50)), f(h.quantile(0.99)),
		f(h.quantile(0.999)), f(h.maxValue()), nWidth, h.count())
}
