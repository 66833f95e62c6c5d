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
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/bits"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/greenlane-pos/greenlane/lanedb"
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
	// kept. Or a PostgreSQL URL: each phase gets a database beside the one
	// it names (see store.go).
	// Default "": a temporary folder, removed at the end.
	DB string
	// RecycleEvery is how often submitted presells beyond the newest 2,499
	// are voided so that their tickets come free again (see voidPresells).
	// Default 250ms; 0 never (the lane then runs out of tickets after 9,999
	// sales).
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
// its server log and its printer. On a PostgreSQL store database the
// prefix is the URL itself (see phaseDB).
func (c Common) begin(out io.Writer, validate func() error) (prefix string, cleanup func(), log *slog.Logger, p *printer, err error) {
	if err = errors.Join(validate(), c.validate()); err != nil {
		return "", nil, nil, nil, err
	}
	if lanedb.IsPostgresURL(c.DB) {
		if _, _, err := pgDatabase(c.DB); err != nil {
			return "", nil, nil, nil, err
		}
		return c.DB, func() {}, serverLog(c.Log), &printer{w: out}, nil
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

// examples prints the errors by code with the first messages; with
// failedOnly, only when something failed (not busy alone).
func (p *printer) examples(label string, t *tally, failedOnly bool) {
	if failedOnly && t.total() == 0 {
		return
	}
	var parts []string
	if t.total() > 0 {
		parts = append(parts, t.codes())
	}
	if b := t.busy(); b > 0 {
		parts = append(parts, fmt.Sprintf("busy ×%d", b))
	}
	p.printf("   %s: %s\n", label, strings.Join(parts, ", "))
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

// tally is the one error count of every bench: failures by code, busy
// answers apart (the lane asked to retry: reported, not a failure), and
// the first five distinct messages. Safe for concurrent use; the fields
// are exported for the soak's child, which sends its tally as JSON.
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

// reply counts an error reply to what. A busy error (the lane asks to
// retry later: overloaded or a lock held by another program) is no
// failure.
func (t *tally) reply(what string, e *protocol.Error) {
	code, msg := string(e.Code), strings.ToLower(e.Message)
	if e.Code == protocol.CodeUnavailable || strings.Contains(msg, "locked") || strings.Contains(msg, "busy") {
		code = ""
	}
	t.add(code, 1, fmt.Sprintf("%s: %s: %s", what, e.Code, e.Message))
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

// total is the number of real (non-busy) failures.
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

// cpuUse is how busy the machine's CPUs were over a window, split into
// this process and everything else. Latency on a shared machine means
// little without it: another program's build or test run takes the same
// cores from the server and its clients.
type cpuUse struct {
	ok    bool    // the figures could be read (Linux /proc)
	self  float64 // CPUs' worth used by this process
	other float64 // CPUs' worth used by every other process and the kernel
}

// cpuMark is a reading to take a window's difference from.
type cpuMark struct {
	at        time.Time
	busyTicks int64 // the machine's non-idle clock ticks
	selfNS    int64 // this process's user + system time
	ok        bool
}

// cpuLine says how busy the machine was over the window, and with what:
// this process's share is its getrusage time ÷ wall time ÷ CPUs.
func (p *printer) cpuLine(c cpuUse) {
	if !c.ok {
		return
	}
	p.printf("   CPU over the window: this process %.2f (%.0f%% of %d CPUs), other processes %.2f%s\n",
		c.self, 100*c.self/float64(runtime.NumCPU()), runtime.NumCPU(), c.other, loadAverage("end"))
}

// userHZ is the unit of /proc/stat; 100 on every Linux this runs on.
const userHZ = 100

func readCPUMark() cpuMark {
	m := cpuMark{at: time.Now()}
	busy, ok := machineBusyTicks()
	var ru syscall.Rusage
	if !ok || syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return m
	}
	m.busyTicks, m.ok = busy, true
	m.selfNS = ru.Utime.Nano() + ru.Stime.Nano()
	return m
}

func (m cpuMark) since() cpuUse {
	now := readCPUMark()
	wall := now.at.Sub(m.at).Seconds()
	if !m.ok || !now.ok || wall <= 0 {
		return cpuUse{}
	}
	busy := float64(now.busyTicks-m.busyTicks) / userHZ
	self := float64(now.selfNS-m.selfNS) / 1e9
	return cpuUse{ok: true, self: self / wall, other: max(busy-self, 0) / wall}
}

// machineBusyTicks sums the first line of /proc/stat less idle and iowait
// (and less guest time, which user time already holds).
func machineBusyTicks() (int64, bool) {
	b, err := os.ReadFile("/proc/stat")
	line, _, _ := strings.Cut(string(b), "\n")
	fields := strings.Fields(line)
	if err != nil || len(fields) < 8 || fields[0] != "cpu" {
		return 0, false
	}
	var busy int64
	for i, f := range fields[1:min(len(fields), 9)] { // user nice system idle iowait irq softirq steal
		v, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return 0, false
		}
		if i != 3 && i != 4 {
			busy += v
		}
	}
	return busy, true
}

// Log-linear buckets in the manner of HdrHistogram: values below 2^subBits
// nanoseconds have a bucket each; every power of two above is split into
// 2^subBits equal buckets. A recorded value is thus off by at most 1/64
// (1.6 %) of itself at any scale, in fixed memory (octaves × 64 counters,
// about 21 KB) however many requests a run makes.
const (
	subBits     = 6
	subBuckets  = 1 << subBits
	octaves     = 41 // up to 2^46 ns, about 19 hours: nothing real is cut off
	bucketCount = octaves * subBuckets
)

// histogram records request latencies. It is safe for concurrent use: all
// tablets of a phase share one per request kind, so memory does not grow
// with the number of tablets, and an atomic add costs far less than the
// request it measures.
type histogram struct {
	counts [bucketCount]atomic.Int64
	total  atomic.Int64
	max    atomic.Int64
}

func (h *histogram) record(d time.Duration) {
	v := max(int64(d), 0)
	h.counts[bucketOf(v)].Add(1)
	h.total.Add(1)
	for cur := h.max.Load(); v > cur && !h.max.CompareAndSwap(cur, v); cur = h.max.Load() {
	}
}

func bucketOf(v int64) int {
	if v < subBuckets {
		return int(v)
	}
	shift := bits.Len64(uint64(v)) - 1 - subBits
	i := (shift+1)*subBuckets + int(v>>shift) - subBuckets
	return min(i, bucketCount-1)
}

// bucketMid is a representative value of bucket i: its midpoint.
func bucketMid(i int) int64 {
	group, m := i/subBuckets, int64(i%subBuckets)
	if group == 0 {
		return m
	}
	return (subBuckets+m)<<(group-1) + int64(1)<<(group-1)/2 // low end + half the width
}

func (h *histogram) count() int64 { return h.total.Load() }

// quantile is the latency that a fraction q (0 < q ≤ 1) of requests did
// not exceed, to within the bucket width. 0 when nothing was recorded.
func (h *histogram) quantile(q float64) time.Duration {
	n := h.total.Load()
	if n == 0 {
		return 0
	}
	return h.atRank(quantileRank(q, n))
}

// quantileRank is the rank (1…n) of quantile q among n values.
func quantileRank(q float64, n int64) int64 {
	rank := int64(q*float64(n) + 0.999999) // ceil, without float noise turning 99.0 into 100
	return min(max(rank, 1), n)
}

// atRank is the rank-th smallest latency recorded (1-based), to within
// the bucket width.
func (h *histogram) atRank(rank int64) time.Duration {
	var seen int64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen >= rank {
			return min(time.Duration(bucketMid(i)), h.maxValue())
		}
	}
	return h.maxValue()
}

func (h *histogram) maxValue() time.Duration { return time.Duration(h.max.Load()) }

// histogramJSON is a histogram on the wire (a child's figures): its
// non-empty buckets only.
type histogramJSON struct {
	Buckets [][2]int64 `json:"buckets"` // [bucket index, count]
	Max     int64      `json:"max"`     // nanoseconds
}

func (h *histogram) MarshalJSON() ([]byte, error) {
	j := histogramJSON{Max: h.max.Load()}
	for i := range h.counts {
		if n := h.counts[i].Load(); n > 0 {
			j.Buckets = append(j.Buckets, [2]int64{int64(i), n})
		}
	}
	return json.Marshal(j)
}

// UnmarshalJSON adds the buckets to h's.
func (h *histogram) UnmarshalJSON(b []byte) error {
	var j histogramJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	for _, b := range j.Buckets {
		if b[0] < 0 || b[0] >= bucketCount || b[1] < 0 {
			return fmt.Errorf("bucket %d count %d out of range", b[0], b[1])
		}
		h.counts[b[0]].Add(b[1])
		h.total.Add(b[1])
	}
	h.max.Store(max(j.Max, 0))
	return nil
}

// signedHistogram records durations that may be negative: the negative
// ones by their size in one histogram, the rest in another. Its memory is
// fixed, as a histogram's.
type signedHistogram struct {
	neg, pos histogram
}

func (h *signedHistogram) record(d time.Duration) {
	if d < 0 {
		h.neg.record(-d)
		return
	}
	h.pos.record(d)
}

func (h *signedHistogram) count() int64 { return h.neg.count() + h.pos.count() }

// negShare is the fraction of values below zero.
func (h *signedHistogram) negShare() float64 {
	if n := h.count(); n > 0 {
		return float64(h.neg.count()) / float64(n)
	}
	return 0
}

// quantile is the value that a fraction q of values did not exceed. The
// r-th smallest value overall is, among the negatives, the one whose size
// is the (negatives − r + 1)-th smallest.
func (h *signedHistogram) quantile(q float64) time.Duration {
	n := h.count()
	if n == 0 {
		return 0
	}
	rank, negN := quantileRank(q, n), h.neg.count()
	if rank <= negN {
		return -h.neg.atRank(negN - rank + 1)
	}
	return h.pos.atRank(rank - negN)
}

// maxValue is the largest value; negative when every value is.
func (h *signedHistogram) maxValue() time.Duration {
	if h.pos.count() > 0 {
		return h.pos.maxValue()
	}
	return -h.neg.atRank(1)
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

func (p *printer) latency(label string, h quantiler) {
	p.printf("   %-13s %s\n", label, quantiles(h, ms, 0))
}
