// Package bench holds greenlane's benchmark programs. They print figures
// and ratios against a baseline run in the same process; nothing here
// asserts wall-clock speed.
//
// The presell benchmark drives real presell tablets (WebSocket clients)
// against the lane server running in this process, with group commit on
// and then off, runs a bare lanedb loop as the baseline, and measures the
// memory an idle presell socket costs the server.
package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/greenlane-pos/greenlane/lanedb"
)

// Config is one presell benchmark run. DefaultConfig holds every default.
type Config struct {
	// Tablets is how many presell tablets run at once. Default 200.
	Tablets int
	// Duration is how long each phase is measured. Default 10s.
	Duration time.Duration
	// WarmUp runs before each measurement and is not counted. Default 1s.
	WarmUp time.Duration
	// DB is where the phases' lane DBs go: a folder, or a path prefix
	// (PREFIX.gc-on.db, PREFIX.gc-off.db, PREFIX.baseline.db, PREFIX.idle.db).
	// Files of those names are replaced; the DBs are kept after the run.
	// Default "": a temporary folder, removed at the end.
	DB string
	// GroupCommitWait is the writer's batching wait in the group-commit-on
	// phase. Default lanedb's default (2ms).
	GroupCommitWait time.Duration
	// PresellWorkers is the server's per-presell-socket worker limit.
	// Default 0: the server's default.
	PresellWorkers int
	// IdleSockets is how many idle presell sockets the memory figure opens.
	// Default 1000; 0 skips the figure.
	IdleSockets int
	// RecycleEvery is how often submitted presells are voided so their
	// ticket numbers come free again (see recycleTickets). Default 250ms;
	// 0 never (the lane then runs out of tickets after 9,999 sales).
	RecycleEvery time.Duration
	// IdleClients makes the command of the child process that holds the
	// idle sockets (`greenlane bench idle-clients`), so that this process's
	// memory is the server's alone. Default nil: the sockets are held in
	// this process and their client side is counted too.
	IdleClients func(ctx context.Context) *exec.Cmd
	// CPUProfile, when set, receives a CPU profile of the measured window
	// of the group-commit-on phase. Default nil.
	CPUProfile io.Writer
	// Log receives the server's warnings and errors. Default nil: dropped.
	Log io.Writer
}

// Bounds that keep a mistyped flag from exhausting the machine.
const (
	maxTablets     = 5000
	maxIdleSockets = 20000
)

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		Tablets:         200,
		Duration:        10 * time.Second,
		WarmUp:          time.Second,
		GroupCommitWait: lanedb.DefaultWriterOptions().MaxWait,
		IdleSockets:     1000,
		RecycleEvery:    250 * time.Millisecond,
	}
}

func (c Config) validate() error {
	switch {
	case c.Tablets < 1 || c.Tablets > maxTablets:
		return fmt.Errorf("tablets %d: want 1…%d", c.Tablets, maxTablets)
	case c.Duration <= 0:
		return fmt.Errorf("duration %s: want more than 0", c.Duration)
	case c.WarmUp < 0:
		return fmt.Errorf("warm-up %s: want 0 or more", c.WarmUp)
	case c.GroupCommitWait <= 0:
		return fmt.Errorf("group commit wait %s: want more than 0 (the off phase is run anyway)", c.GroupCommitWait)
	case c.PresellWorkers < 0:
		return fmt.Errorf("presell workers %d: want 0 (the server's default) or more", c.PresellWorkers)
	case c.IdleSockets < 0 || c.IdleSockets > maxIdleSockets:
		return fmt.Errorf("idle sockets %d: want 0…%d", c.IdleSockets, maxIdleSockets)
	case c.RecycleEvery < 0:
		return fmt.Errorf("recycle interval %s: want 0 (never) or more", c.RecycleEvery)
	}
	return nil
}

// benchmark is one run in progress.
type benchmark struct {
	cfg Config
	log *slog.Logger // the in-process server's logger: warnings and errors only
}

// Report is the outcome of a run.
type Report struct {
	cfg      Config
	on, off  *loadResult
	baseline *baselineResult
	idle     *idleResult // nil when skipped
}

// Run runs the presell benchmark and prints the report to out as each
// phase finishes. An error means the benchmark itself could not run; failed
// requests are in the report (see Report.Err).
func Run(ctx context.Context, cfg Config, out io.Writer) (*Report, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	prefix, cleanup, err := workPrefix(cfg.DB)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	b := &benchmark{cfg: cfg, log: serverLog(cfg.Log)}
	rep := &Report{cfg: cfg}
	p := &printer{w: out}
	p.header(cfg)
	if err := b.runPhases(ctx, prefix, rep, p); err != nil {
		return nil, err
	}
	p.targets(rep)
	return rep, p.err
}

// runPhases runs the phases in order, printing each as it ends.
func (b *benchmark) runPhases(ctx context.Context, prefix string, rep *Report, p *printer) error {
	var err error
	if rep.on, err = b.runLoad(ctx, loadSpec{name: "group commit on", dbPath: prefix + ".gc-on.db",
		groupWait: b.cfg.GroupCommitWait, cpuProfile: true}); err != nil {
		return err
	}
	p.load(rep.on)
	if rep.off, err = b.runLoad(ctx, loadSpec{name: "group commit off", dbPath: prefix + ".gc-off.db"}); err != nil {
		return err
	}
	p.load(rep.off)
	if rep.baseline, err = b.runBaseline(ctx, prefix+".baseline.db"); err != nil {
		return err
	}
	p.baseline(rep.baseline)
	p.ratios(rep)
	if b.cfg.IdleSockets > 0 {
		if rep.idle, err = b.measureIdle(ctx, prefix+".idle.db"); err != nil {
			return err
		}
		p.idle(rep.idle)
	}
	return nil
}

// workPrefix turns Config.DB into the phases' path prefix. An empty DB
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

// Err is nil when no request failed, busy errors aside (the lane asked to
// retry: they are reported, not failures). Otherwise it summarises the
// failures by phase and code, with an example.
func (r *Report) Err() error {
	var parts []string
	var total int64
	var example string
	for _, res := range []*loadResult{r.on, r.off} {
		if res == nil || res.errorCount() == 0 {
			continue
		}
		total += res.errorCount()
		parts = append(parts, res.name+": "+codeSummary(res.errors))
		for _, s := range res.samples {
			if example == "" && !strings.HasPrefix(s, busyLabel) {
				example = s
			}
		}
	}
	if total == 0 {
		return nil
	}
	return fmt.Errorf("%d requests failed (busy errors not counted): %s; e.g. %s",
		total, strings.Join(parts, "; "), example)
}

// codeSummary is "conflict ×3, connection ×1".
func codeSummary(m map[string]int64) string {
	codes := sortedCodes(m)
	parts := make([]string, len(codes))
	for i, c := range codes {
		parts[i] = fmt.Sprintf("%s ×%d", c, m[c])
	}
	return strings.Join(parts, ", ")
}
