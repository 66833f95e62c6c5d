package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/greenlane-pos/greenlane/bench"
)

// runBench runs a benchmark program. "child KIND" is not for people: it is
// a child process of bench presell (its idle sockets) and bench soak (its
// tablets, and a second process writing the lane DB as the counter program
// does), so that the parent's memory figures are the server's alone.
func runBench(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usagef("bench needs a benchmark: presell, recall, firehose or soak (see 'greenlane bench presell --help')")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	switch args[0] {
	case "presell":
		return runBenchPresell(ctx, args[1:], stdout, stderr)
	case "recall":
		return runBenchRecall(ctx, args[1:], stdout, stderr)
	case "firehose":
		return runBenchFirehose(ctx, args[1:], stdout, stderr)
	case "soak":
		return runBenchSoak(ctx, args[1:], stdout, stderr)
	case "child":
		if len(args) != 2 {
			return usagef("bench child needs one KIND (idle, tablets, counter)")
		}
		return bench.Child(ctx, args[1], os.Stdin, stdout)
	case "-h", "--help", "help":
		fmt.Fprintln(stdout, "Usage: greenlane bench presell [flags]   (see 'greenlane bench presell --help')")
		fmt.Fprintln(stdout, "       greenlane bench recall [flags]    (see 'greenlane bench recall --help')")
		fmt.Fprintln(stdout, "       greenlane bench firehose [flags]  (see 'greenlane bench firehose --help')")
		fmt.Fprintln(stdout, "       greenlane bench soak [flags]      (see 'greenlane bench soak --help')")
		return nil
	}
	return usagef("unknown benchmark %q (benchmarks: presell, recall, firehose, soak)", args[0])
}

// runBenchPresell is `greenlane bench presell`. The exit status is 0 even
// when a target is missed (it is a measurement), and 1 when a request
// failed with anything but a busy error.
func runBenchPresell(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("bench presell", "bench presell [flags]", stderr)
	cfg := bench.DefaultConfig()
	fs.IntVar(&cfg.Tablets, "tablets", cfg.Tablets, "presell tablets (WebSocket clients) running at once")
	fs.DurationVar(&cfg.Duration, "duration", cfg.Duration, "measured time of each phase (each also gets --warm-up first)")
	fs.DurationVar(&cfg.WarmUp, "warm-up", cfg.WarmUp, "unmeasured run before each phase's measurement")
	fs.StringVar(&cfg.DB, "db", cfg.DB, "folder or path prefix for the phases' lane DBs (PATH.gc-on.db …; replaced, then kept), or a postgres:// URL: each phase gets a database NAME_gc_on … on its server (replaced, then kept; NAME itself is not touched; the role needs CREATEDB); default a temp folder, removed")
	fs.IntVar(&cfg.Instances, "instances", cfg.Instances, "lane instances sharing the store database in the group-commit-on phase, tablets spread round-robin, a line per instance (more than 1 needs a postgres:// --db)")
	fs.DurationVar(&cfg.GroupCommitWait, "group-commit-wait", cfg.GroupCommitWait, "the DB writer's batching wait in the group-commit-on phase")
	fs.IntVar(&cfg.PresellWorkers, "presell-workers", cfg.PresellWorkers, "requests one presell socket may run at once (0: the server's default)")
	fs.IntVar(&cfg.IdleSockets, "idle-sockets", cfg.IdleSockets, "idle presell sockets opened for the memory figure (0 skips it)")
	fs.DurationVar(&cfg.RecycleEvery, "recycle-every", cfg.RecycleEvery, "how often submitted presells beyond the newest 2499 are voided to free their tickets, as a counter would take them (0: never; tickets run out after 9999 sales)")
	fs.IntVar(&cfg.Runs, "runs", cfg.Runs, "runs of each phase; the report shows the median run and the spread")
	fs.BoolVar(&cfg.IK, "ik", cfg.IK, "tablets send an ik (idempotency key) with each change, as the tablet page does; the lane stores each reply with its change (--ik=false: none)")
	realistic := fs.String("realistic", joinInts(cfg.Realistic), "tablet counts of the realistic phases (1 request/s each, Poisson, open loop), comma-separated; \"\" skips them")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the group-commit-on phase's measured window to this file")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("bench presell takes no arguments, got %q", fs.Args())
	}
	var err error
	if cfg.Realistic, err = parseInts(*realistic); err != nil {
		return usagef("bench presell --realistic: %v", err)
	}
	if cfg.Child, err = childCommand(); err != nil {
		return err
	}
	cfg.Log = stderr
	closeProfile, err := openProfile(*cpuProfile, &cfg.CPUProfile)
	if err != nil {
		return err
	}
	defer closeProfile()
	rep, err := bench.Run(ctx, cfg, stdout)
	if err != nil {
		return fmt.Errorf("bench presell: %w", err)
	}
	return rep.Err()
}

// runBenchRecall is `greenlane bench recall`. As with bench presell, the
// exit status is 0 even when the target is missed, and 1 when a request
// failed.
func runBenchRecall(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("bench recall", "bench recall [flags]", stderr)
	cfg := bench.DefaultRecallConfig()
	fs.Int64Var(&cfg.Sales, "sales", cfg.Sales, "historic (completed) sales in the lane DB")
	fs.IntVar(&cfg.Open, "open", cfg.Open, "open presells, made by tablets over sockets before the counters start")
	fs.IntVar(&cfg.Requests, "requests", cfg.Requests, "measured requests of each kind (get_presells, recall) per figure")
	fs.IntVar(&cfg.WarmUp, "warm-up", cfg.WarmUp, "unmeasured requests of each kind before each figure")
	fs.IntVar(&cfg.Counters, "counters", cfg.Counters, "counter sockets of the concurrent figure (0 or 1 skips it)")
	fs.DurationVar(&cfg.GroupCommitWait, "group-commit-wait", cfg.GroupCommitWait, "the lane DB writer's batching wait (0: group commit off)")
	fs.StringVar(&cfg.DB, "db", cfg.DB, "lane DB file, kept; reused when it holds a finished build of --sales sales, else rebuilt (only a bench recall DB is replaced); or a postgres:// URL: the history goes in a database NAME_recall on its server, kept and reused alike (NAME itself is not touched; the role needs CREATEDB); default a temp folder, removed")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the measuring (not the build) to this file")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("bench recall takes no arguments, got %q", fs.Args())
	}
	cfg.Progress, cfg.Log = stderr, stderr
	closeProfile, err := openProfile(*cpuProfile, &cfg.CPUProfile)
	if err != nil {
		return err
	}
	defer closeProfile()
	rep, err := bench.RunRecall(ctx, cfg, stdout)
	if err != nil {
		return fmt.Errorf("bench recall: %w", err)
	}
	return rep.Err()
}

// runBenchFirehose is `greenlane bench firehose`. As with bench presell,
// the exit status is 0 even when a target is missed, and 1 when a request
// failed (busy errors aside) or an event never arrived.
func runBenchFirehose(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("bench firehose", "bench firehose [flags]", stderr)
	cfg := bench.DefaultFirehoseConfig()
	fs.IntVar(&cfg.Subscribers, "subscribers", cfg.Subscribers, "sockets following device.event in the fan-out phase (0 skips the phase)")
	fs.IntVar(&cfg.Rate, "rate", cfg.Rate, "events per second the injector sends in the fan-out phase")
	fs.IntVar(&cfg.Tablets, "tablets", cfg.Tablets, "presell tablets building sales in the display-lag phase (0 skips the phase)")
	fs.DurationVar(&cfg.Duration, "duration", cfg.Duration, "measured time of each phase (each also gets --warm-up first)")
	fs.DurationVar(&cfg.WarmUp, "warm-up", cfg.WarmUp, "unmeasured run before each phase's measurement")
	fs.DurationVar(&cfg.Drain, "drain", cfg.Drain, "how long events may still arrive after the last was sent; later ones count as missing")
	fs.StringVar(&cfg.DB, "db", cfg.DB, "folder or path prefix for the phases' lane DBs (PATH.fanout.db, PATH.display.db; replaced, then kept), or a postgres:// URL: each phase gets a database NAME_fanout, NAME_display on its server (replaced, then kept; NAME itself is not touched; the role needs CREATEDB); default a temp folder, removed")
	fs.DurationVar(&cfg.RecycleEvery, "recycle-every", cfg.RecycleEvery, "how often submitted presells beyond the newest 2499 are voided to free their tickets in the display-lag phase (0: never)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the fan-out phase's measured window to this file")
	displayProfile := fs.String("cpuprofile-display", "", "write a CPU profile of the display-lag phase's measured window to this file")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("bench firehose takes no arguments, got %q", fs.Args())
	}
	cfg.Log = stderr
	for _, prof := range []struct {
		path string
		w    *io.Writer
	}{{*cpuProfile, &cfg.CPUProfile}, {*displayProfile, &cfg.DisplayCPUProfile}} {
		closeProfile, err := openProfile(prof.path, prof.w)
		if err != nil {
			return err
		}
		defer closeProfile()
	}
	rep, err := bench.RunFirehose(ctx, cfg, stdout)
	if err != nil {
		return fmt.Errorf("bench firehose: %w", err)
	}
	return rep.Err()
}

// runBenchSoak is `greenlane bench soak`. As with bench presell, the exit
// status is 0 even when a target is missed (busy errors and memory that did
// not come back included: see bench.SoakReport.Err), and 1 when a request
// failed.
func runBenchSoak(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("bench soak", "bench soak [flags]", stderr)
	cfg := bench.DefaultSoakConfig()
	fs.IntVar(&cfg.Tablets, "tablets", cfg.Tablets, "presell tablets running at once (in a child process), each as fast as the lane answers")
	fs.DurationVar(&cfg.Duration, "duration", cfg.Duration, "measured time of the load (after --warm-up)")
	fs.DurationVar(&cfg.WarmUp, "warm-up", cfg.WarmUp, "unmeasured load before the measurement")
	fs.StringVar(&cfg.DB, "db", cfg.DB, "folder or path prefix for the lane DB (PATH.soak.db; replaced, then kept), or a postgres:// URL: the soak gets a database NAME_soak on its server (replaced, then kept; NAME itself is not touched; the role needs CREATEDB), which the counter process writes too; default a temp folder, removed")
	fs.DurationVar(&cfg.RecycleEvery, "recycle-every", cfg.RecycleEvery, "how often submitted presells beyond the newest 2499 are voided to free their tickets (0: never)")
	fs.BoolVar(&cfg.Counter, "counter", cfg.Counter, "run a counter process that writes the lane DB beside the tablets, as the counter program does (on PostgreSQL taking the journal lock first, as docs/lanedb.md asks)")
	fs.DurationVar(&cfg.Settle, "settle", cfg.Settle, "how long the server is left alone after the tablets disconnect before its memory and goroutines are read again")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the measured window (the server's process) to this file")
	memProfile := fs.String("memprofile", "", "write a heap profile of the server's process, taken after the tablets have gone, to this file")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("bench soak takes no arguments, got %q", fs.Args())
	}
	var err error
	if cfg.Child, err = childCommand(); err != nil {
		return err
	}
	cfg.Log = stderr
	for _, prof := range []struct {
		path string
		w    *io.Writer
	}{{*cpuProfile, &cfg.CPUProfile}, {*memProfile, &cfg.MemProfile}} {
		closeProfile, err := openProfile(prof.path, prof.w)
		if err != nil {
			return err
		}
		defer closeProfile()
	}
	rep, err := bench.RunSoak(ctx, cfg, stdout)
	if err != nil {
		return fmt.Errorf("bench soak: %w", err)
	}
	return rep.Err()
}

// childCommand runs the bench's child processes as this program.
func childCommand() (bench.ChildCommand, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find this program for the bench's child processes: %w", err)
	}
	return func(ctx context.Context, kind string) *exec.Cmd {
		return exec.CommandContext(ctx, exe, "bench", "child", kind)
	}, nil
}

// openProfile creates the profile file at path (none when path is "") and
// points *dst at it; the returned func closes it.
func openProfile(path string, dst *io.Writer) (func(), error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("profile: %w", err)
	}
	*dst = f
	return func() { f.Close() }, nil
}

// joinInts is "200,1000".
func joinInts(ns []int) string {
	parts := make([]string, len(ns))
	for i, n := range ns {
		parts[i] = strconv.Itoa(n)
	}
	return strings.Join(parts, ",")
}

// parseInts reads "200,1000" ("" is none).
func parseInts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil {
			return nil, fmt.Errorf("%q is not a number", f)
		}
		out = append(out, n)
	}
	return out, nil
}
