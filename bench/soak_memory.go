package bench

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"
)

// What "back to baseline" allows after the tablets have gone. Goroutines
// come and go by ones and twos on an idle server (a connection being
// reaped, a timer's goroutine), a leak grows with the tablets. RSS keeps
// some of what the load touched: the Go heap's free spans until the
// scavenger returns them (10 % or 8 MB, whichever is larger, covers that),
// and SQLite's page caches, now warm (allowed up to their fixed bound; see
// rssAllowance). A leak of a few KB per sale over a minute fits in neither.
const (
	goroutineSlack = 2
	rssSlackShare  = 0.10
	rssSlackBytes  = 8 << 20
)

// serverSample is a reading of this process, which holds the server.
type serverSample struct {
	rss        uint64 // resident set (VmRSS); 0 where the system does not say
	goroutines int
	heapInuse  uint64 // Go heap spans in use
	stackInuse uint64 // goroutine stacks
	goHeld     uint64 // what the Go runtime holds from the system: Sys less HeapReleased
}

// outsideGo is the resident memory the Go runtime does not account for:
// SQLite's page caches and C heap (modernc's libc allocates outside the Go
// heap), the program's text, and the lane DB's mapped -shm file. goHeld
// counts some address space never touched, so this is a lower bound and
// may even come out negative.
func (s serverSample) outsideGo() int64 { return int64(s.rss) - int64(s.goHeld) }

// readServerSample reads the process. With gc, two full collections run
// first (the second frees what the first's finalizers released), so that
// the heap holds only what is live.
func readServerSample(gc bool) serverSample {
	if gc {
		runtime.GC()
		runtime.GC()
	}
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return serverSample{rss: readRSS(), goroutines: runtime.NumGoroutine(), heapInuse: m.HeapInuse,
		stackInuse: m.StackInuse, goHeld: m.Sys - m.HeapReleased}
}

// readFreedSample reads the process after handing the Go heap's free
// pages back to the system. The scavenger does that by itself, slowly; the
// reading tells memory the Go runtime merely kept from memory still in use.
func readFreedSample() serverSample {
	debug.FreeOSMemory()
	return readServerSample(false)
}

// readRSS is VmRSS from /proc/self/status (Linux), in bytes; 0 elsewhere.
func readRSS() uint64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		v, ok := strings.CutPrefix(sc.Text(), "VmRSS:")
		if !ok {
			continue
		}
		fields := strings.Fields(v) // "123456 kB"
		if len(fields) != 2 || fields[1] != "kB" {
			return 0
		}
		kb, err := strconv.ParseUint(fields[0], 10, 64)
		if err != nil {
			return 0
		}
		return kb << 10
	}
	return 0
}

// peakSampler reads the process every interval during the load and keeps
// the largest of each figure (each on its own: the peaks need not fall in
// the same second). It does not collect garbage first: the peak is what
// the machine had to hold.
type peakSampler struct {
	stopc chan struct{}
	done  chan serverSample
}

func startPeakSampler(every time.Duration) *peakSampler {
	p := &peakSampler{stopc: make(chan struct{}), done: make(chan serverSample, 1)}
	go func() {
		t := time.NewTicker(every)
		defer t.Stop()
		peak := readServerSample(false)
		for {
			select {
			case <-p.stopc:
				p.done <- peak.max(readServerSample(false))
				return
			case <-t.C:
				peak = peak.max(readServerSample(false))
			}
		}
	}()
	return p
}

func (p *peakSampler) stop() serverSample {
	close(p.stopc)
	return <-p.done
}

func (s serverSample) max(o serverSample) serverSample {
	return serverSample{rss: max(s.rss, o.rss), goroutines: max(s.goroutines, o.goroutines),
		heapInuse: max(s.heapInuse, o.heapInuse), goHeld: max(s.goHeld, o.goHeld)}
}

// memFigures are the server's four readings.
type memFigures struct {
	start serverSample // server up, no clients, after GC
	peak  serverSample // the largest 1 s sample during the load
	end   serverSample // as the window closed, tablets still connected
	after serverSample // tablets gone, settled, after GC
	freed serverSample // then after debug.FreeOSMemory: what is left once Go has returned its free pages
}

// rssAllowance is how far above the baseline RSS still counts as back:
// the slack, plus the SQLite page caches, which start empty and are filled
// by the load up to their fixed bound (a cache by design, not a leak).
func rssAllowance(base uint64, sqliteCache int64) uint64 {
	return max(uint64(float64(base)*rssSlackShare), rssSlackBytes) + uint64(max(sqliteCache, 0))
}

func (m memFigures) rssKnown() bool { return m.start.rss > 0 && m.after.rss > 0 }

func (m memFigures) rssBack(sqliteCache int64) bool {
	return m.rssKnown() && m.after.rss <= m.start.rss+rssAllowance(m.start.rss, sqliteCache)
}

func (m memFigures) goroutinesBack() bool {
	d := m.after.goroutines - m.start.goroutines
	return d >= -goroutineSlack && d <= goroutineSlack
}

// goroutineGroup is the goroutines that share one stack.
type goroutineGroup struct {
	count  int
	frames []string // "function file.go:line", innermost first
}

// goroutineGroups reads the goroutine profile grouped by stack (the
// debug=1 text form), keyed by the stack's program counters. The calling
// goroutine is left out: its stack differs from one call to the next.
func goroutineGroups() map[string]goroutineGroup {
	var buf bytes.Buffer
	if err := pprof.Lookup("goroutine").WriteTo(&buf, 1); err != nil {
		return nil
	}
	groups := map[string]goroutineGroup{}
	var key string
	for line := range strings.Lines(buf.String()) {
		line = strings.TrimRight(line, "\n")
		if n, pcs, ok := strings.Cut(line, " @ "); ok {
			count, err := strconv.Atoi(n)
			if err == nil {
				key = pcs
				groups[key] = goroutineGroup{count: count}
			}
			continue
		}
		if g, ok := groups[key]; ok && strings.HasPrefix(line, "#\t0x") {
			g.frames = append(g.frames, frameOf(line))
			groups[key] = g
		}
	}
	for key, g := range groups {
		if slices.ContainsFunc(g.frames, func(f string) bool { return strings.HasPrefix(f, selfFrame+" ") }) {
			delete(groups, key)
		}
	}
	return groups
}

// selfFrame is goroutineGroups as frameOf names it.
const selfFrame = "github.com/greenlane-pos/greenlane/bench.goroutineGroups"

// frameOf makes "#	0x4a1b2c	pkg.fn+0x2c	/path/file.go:12" into
// "pkg.fn file.go:12".
func frameOf(line string) string {
	f := strings.Fields(line)
	if len(f) < 4 {
		return strings.TrimSpace(line)
	}
	fn, _, _ := strings.Cut(f[2], "+0x")
	return fn + " " + filepath.Base(f[3])
}

// goroutineDelta is a stack whose goroutines grew (or shrank) in number.
type goroutineDelta struct {
	delta  int
	frames []string
}

// maxLeakGroups bounds the stacks the report shows.
const maxLeakGroups = 10

// diffGoroutines lists the stacks whose count changed between two
// readings, the largest change first.
func diffGoroutines(before, after map[string]goroutineGroup) []goroutineDelta {
	var out []goroutineDelta
	for key, g := range after {
		if d := g.count - before[key].count; d != 0 {
			out = append(out, goroutineDelta{delta: d, frames: g.frames})
		}
	}
	for key, g := range before {
		if _, ok := after[key]; !ok {
			out = append(out, goroutineDelta{delta: -g.count, frames: g.frames})
		}
	}
	slices.SortFunc(out, func(a, b goroutineDelta) int {
		if d := abs(b.delta) - abs(a.delta); d != 0 {
			return d
		}
		return strings.Compare(strings.Join(a.frames, ","), strings.Join(b.frames, ","))
	})
	return out[:min(len(out), maxLeakGroups)]
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}
