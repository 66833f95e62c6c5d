package bench

// The presell benchmark drives presell tablets against the lane server in
// this process, with group commit on and then off; runs the same sales
// without sockets as a bare one-transaction-per-sale loop (baseline-1tx),
// through the real sales core and writer (ceiling-core), and as the core's
// SQL alone (ceiling-sql); paces 200 and 1,000 tablets at a person's speed
// (the realistic phases); and measures the memory an idle presell socket
// costs the server.
//
// The ceilings run at the same concurrency as the socket phases, through
// the lane's own group-commit writer, with no socket and no JSON: what
// sockets and JSON cost is the gap from the socket phase to ceiling-core,
// what the domain costs the gap from ceiling-core to ceiling-sql. The
// writer line of each shows statements per change, so a core that changes
// its SQL shows here too.
//
// On a PostgreSQL store database (store.go) every phase runs as on SQLite,
// each on a database of its own; with Instances > 1 the group-commit-on
// phase runs that many lane instances on its one database, each with its
// own writer, and prints a line per instance beside the sum. No phase is
// skipped there: group commit off is one COMMIT (a WAL flush) per change,
// as it is one fsync per change on SQLite, and the SQLite-only figure,
// PRAGMA synchronous, becomes synchronous_commit and fsync.

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/greenlane-pos/greenlane/fd1client"
	"github.com/greenlane-pos/greenlane/lanedb"
	"github.com/greenlane-pos/greenlane/presell"
	"github.com/greenlane-pos/greenlane/protocol"
	"github.com/greenlane-pos/greenlane/salesbuilder"
)

// Config is one presell benchmark run. DefaultConfig holds every default.
type Config struct {
	// Tablets is how many presell tablets run at once. Default 200.
	Tablets int
	Common
	// GroupCommitWait is the writer's batching wait in the group-commit-on
	// phase. Default lanedb's default (2ms).
	GroupCommitWait time.Duration
	// PresellWorkers is the server's per-presell-socket worker limit.
	// Default 0: the server's default.
	PresellWorkers int
	// IdleSockets is how many idle presell sockets the memory figure opens.
	// Default 1000; 0 skips the figure.
	IdleSockets int
	// Runs is how many times each phase runs; the report shows the median
	// run and the spread. Default 1.
	Runs int
	// Realistic are the tablet counts of the realistic phases, each tablet
	// sending 1 request/s as a Poisson process. Default 200 and 1,000;
	// empty skips them.
	Realistic []int
	// Instances is how many lane instances share one store database in
	// the group-commit-on phase, the tablets spread over them round-robin;
	// more than 1 only when DB is a PostgreSQL URL (an SQLite file has one
	// writer). Default 1.
	Instances int
}

// Bounds that keep a mistyped flag from exhausting the machine, and issue
// 14's targets, for 200 tablets on a 2-core machine that runs both the
// tablets and the server.
const (
	maxTablets          = 5000
	maxIdleSockets      = 20000
	maxRuns             = 99
	maxInstances        = 16
	targetTablets       = 200
	targetBusyPerChange = 50 * time.Microsecond
	targetBaselineRatio = 2.0
	targetSalesPerSec   = 2500
	targetP99           = 50 * time.Millisecond
	targetIdleBytes     = 20 * 1024   // 20 KB, KB = 1024 bytes as printed
	realisticGap        = time.Second // a realistic tablet's mean time between requests
)

// targetRealisticP99 is the realistic phases' p99 target by tablet count.
var targetRealisticP99 = map[int]time.Duration{200: 5 * time.Millisecond, 1000: 10 * time.Millisecond}

func DefaultConfig() Config {
	return Config{Common: defaultCommon(), Tablets: 200, GroupCommitWait: defaultWait, IdleSockets: 1000,
		Runs: 1, Realistic: []int{200, 1000}, Instances: 1}
}

func (c Config) validate() error {
	errs := []error{inRange("tablets", c.Tablets, 1, maxTablets, ""), inRange("idle sockets", c.IdleSockets, 0, maxIdleSockets, ""),
		inRange("runs", c.Runs, 1, maxRuns, ""), inRange("instances", c.Instances, 1, maxInstances, "")}
	for _, n := range c.Realistic {
		errs = append(errs, inRange("realistic tablets", n, 1, maxTablets, ""))
	}
	switch {
	case c.GroupCommitWait <= 0:
		return fmt.Errorf("group commit wait %s: want more than 0 (the off phase is run anyway)", c.GroupCommitWait)
	case c.PresellWorkers < 0:
		return fmt.Errorf("presell workers %d: want 0 (the server's default) or more", c.PresellWorkers)
	case c.Instances > 1 && !lanedb.IsPostgresURL(c.DB):
		return fmt.Errorf("instances %d: more than 1 needs a PostgreSQL store database as DB (an SQLite lane DB has one writer)", c.Instances)
	}
	return errors.Join(errs...)
}

// Report is the outcome of a run: each phase's median run, in the order of
// the phase* constants, then the realistic phases.
type Report struct {
	cfg    Config
	phases []*loadResult
	idle   *idleResult // nil when skipped
}

const (
	phaseOn = iota
	phaseOff
	phaseBaseline
	phaseCore
	phaseSQL
	phaseRealistic // the first of them
)

// phaseSpec is one phase of the run.
type phaseSpec struct {
	name, file string
	wait       time.Duration // the writer's batching wait; 0: group commit off
	tablets    int
	instances  int         // lane instances on the phase's DB; 0 is 1
	local      localTablet // set: the tablets call in process (the ceilings)
	c          loadConfig
}

// Run runs the presell benchmark and prints the report to out as each
// phase finishes. An error means the benchmark itself could not run; failed
// requests are in the report (see Report.Err).
func Run(ctx context.Context, cfg Config, out io.Writer) (*Report, error) {
	prefix, cleanup, log, p, err := cfg.begin(out, cfg.validate)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	rep := &Report{cfg: cfg}
	db := "demo lane DB"
	if lanedb.IsPostgresURL(prefix) {
		db = "demo store database on PostgreSQL (a database per phase)"
		if cfg.Instances > 1 {
			db += fmt.Sprintf(", %d lane instances in the group-commit-on phase", cfg.Instances)
		}
	}
	p.printf("greenlane bench presell — %d tablets × %s (after %s warm-up), %d run(s) of each phase, %s\n",
		cfg.Tablets, cfg.Duration, cfg.WarmUp, cfg.Runs, db)
	p.machine("tablets and server share this process" + loadAverage("start"))
	timing := loadConfig{warmUp: cfg.WarmUp, duration: cfg.Duration, recycleEvery: cfg.RecycleEvery}
	paced := timing
	paced.pace = realisticGap
	gc := cfg.GroupCommitWait
	specs := []phaseSpec{{"group commit on", "gc-on", gc, cfg.Tablets, cfg.Instances, nil, timing},
		{"group commit off", "gc-off", 0, cfg.Tablets, 1, nil, timing},
		{name: "baseline-1tx", file: "baseline"}, {"ceiling-core", "core", gc, cfg.Tablets, 1, coreTablet, timing},
		{"ceiling-sql", "sql", gc, cfg.Tablets, 1, sqlTablet, timing}}
	for _, n := range cfg.Realistic {
		specs = append(specs, phaseSpec{fmt.Sprintf("realistic %d tablets × 1 req/s", n), fmt.Sprintf("realistic-%d", n), gc, n, 1, nil, paced})
	}
	for i, s := range specs {
		r, err := repeat(cfg.Runs, func(run int) (*loadResult, error) {
			if i == phaseBaseline {
				return runBaseline(ctx, prefix, s.file, cfg)
			}
			if i == phaseOn && run == 0 {
				s.c.profile = cfg.CPUProfile // the first run only
			} else {
				s.c.profile = nil
			}
			return runPhase(ctx, s, prefix, laneOptions{groupWait: s.wait, presellWorkers: cfg.PresellWorkers, log: log})
		})
		if err != nil {
			return nil, err
		}
		rep.phases = append(rep.phases, r)
		p.load(r)
	}
	on, core := rep.phases[phaseOn], rep.phases[phaseCore]
	p.printf("ratios: on/off %.2f×   on/baseline %.2f×\n", rep.ratio(phaseOn, phaseOff), rep.ratio(phaseOn, phaseBaseline))
	p.printf("ceilings: socket/ceiling-core %.2f×   core/ceiling-sql %.2f×   (sales/s: what sockets and JSON cost, what the domain costs)\n",
		ratio(on.salesPerSec(), core.salesPerSec()), rep.ratio(phaseCore, phaseSQL))
	if cfg.IdleSockets > 0 {
		if rep.idle, err = measureIdle(ctx, prefix, "idle", cfg, log); err != nil {
			return nil, err
		}
		p.idle(rep.idle)
	}
	p.targets(rep)
	return rep, p.err
}

func (rep *Report) ratio(a, b int) float64 {
	return ratio(rep.phases[a].salesPerSec(), rep.phases[b].salesPerSec())
}

// repeat runs a phase n times and returns its median run (by sales/s; by
// request p99 for a paced phase, whose rate the tablets set), with the
// spread of both figures over the runs.
func repeat(n int, run func(i int) (*loadResult, error)) (*loadResult, error) {
	runs := make([]*loadResult, n)
	for i := range runs {
		var err error
		if runs[i], err = run(i); err != nil {
			return nil, err
		}
	}
	key := func(r *loadResult) float64 { return r.salesPerSec() }
	if runs[0].paced {
		key = func(r *loadResult) float64 { return float64(r.p99()) }
	}
	slices.SortFunc(runs, func(a, b *loadResult) int { return cmp.Compare(key(a), key(b)) })
	med := runs[(n-1)/2]
	if n > 1 {
		sales, p99 := make([]float64, n), make([]time.Duration, n)
		for i, r := range runs {
			sales[i], p99[i] = r.salesPerSec(), r.p99()
		}
		slices.Sort(sales)
		slices.Sort(p99)
		med.spread = fmt.Sprintf("%d runs: sales/s median %.0f (%.0f…%.0f)", n, sales[(n-1)/2], sales[0], sales[n-1])
		if med.all != nil {
			med.spread += fmt.Sprintf("; request p99 median %s (%s…%s)", ms(p99[(n-1)/2]), ms(p99[0]), ms(p99[n-1]))
		}
	}
	return med, nil
}

// runPhase runs one load on a fresh demo DB under prefix: a key per
// tablet, the server (s.instances of them on one DB, the tablets spread
// over them), the tablets (warm-up, then the measured window), and the
// check that every acknowledged park is in the DB.
func runPhase(ctx context.Context, s phaseSpec, prefix string, opts laneOptions) (*loadResult, error) {
	stats := &loadStats{}
	var res *loadResult
	var insts []*instanceStats
	open := func() (*lanedb.DB, string, error) { return openPhaseDB(ctx, prefix, s.file) }
	err := withLanes(ctx, open, max(s.instances, 1), opts, s.tablets, protocol.ScopePresell, stats, func(ls []*lane, keys []string) error {
		tablets := localTablets(ctx, ls[0], keys, stats, s.local)
		if s.local == nil {
			urls := make([]string, len(ls))
			for i, l := range ls {
				urls[i] = l.presellURL()
			}
			if len(ls) > 1 {
				insts = make([]*instanceStats, len(ls))
				for i := range insts {
					insts[i] = &instanceStats{}
				}
			}
			tablets = connectSpread(ctx, urls, insts, keys, stats)
		}
		var err error
		res, err = drive(ctx, ls, tablets, len(keys), stats, presellSale, s.c)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.name, err)
	}
	res.name, res.groupWait, res.paced, res.instances = s.name, opts.groupWait, s.c.pace > 0, insts
	res.fill(stats)
	return res, nil
}

// Err is nil when no request failed, busy errors aside (the lane asked to
// retry: they are reported, not failures). Otherwise it summarises the
// failures by phase and code, with an example.
func (r *Report) Err() error {
	var ts []namedTally
	for _, res := range r.phases {
		if res != nil && res.errs != nil {
			ts = append(ts, namedTally{res.name, res.errs})
		}
	}
	return failures(" (busy errors not counted)", ts...)
}

func (p *printer) targets(rep *Report) {
	on, onBase := rep.phases[phaseOn], rep.ratio(phaseOn, phaseBaseline)
	busy, us := on.writer.BusyPerMutation(), func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
	checks := []string{
		check(fmt.Sprintf("writer ≤%.0fµs/change (%.0fµs)", us(targetBusyPerChange), us(busy)), on.writer.Mutations > 0 && busy <= targetBusyPerChange),
		check(fmt.Sprintf("on/baseline ≥%.1f× (%.2f×)", targetBaselineRatio, onBase), onBase >= targetBaselineRatio),
		check(fmt.Sprintf("≥%d sales/s (%.0f)", targetSalesPerSec, on.salesPerSec()), on.salesPerSec() >= targetSalesPerSec),
		check(fmt.Sprintf("p99 ≤%s (%s)", ms(targetP99), ms(on.p99())), on.p99() <= targetP99),
	}
	for _, r := range rep.phases[phaseRealistic:] {
		if want, ok := targetRealisticP99[r.tabletsWanted]; ok {
			checks = append(checks, check(fmt.Sprintf("realistic %d p99 ≤%s (%s)", r.tabletsWanted, ms(want), ms(r.p99())), r.p99() <= want))
		}
	}
	if rep.idle != nil {
		checks = append(checks, check(fmt.Sprintf("≤%d KB RSS/idle socket (%.1f)", targetIdleBytes/1024, rep.idle.rssPerSocket/1024),
			rep.idle.rssPerSocket <= targetIdleBytes))
	}
	checks = append(checks, check(on.synchronous, on.durable), check("0 errors", rep.Err() == nil))
	note := ""
	if rep.cfg.Tablets != targetTablets {
		note = fmt.Sprintf(" (set for %d tablets)", targetTablets)
	}
	p.printf("targets%s: %s\n", note, strings.Join(checks, ", "))
}

// localTablet makes the changes of the tablet logged in as c in process.
type localTablet func(l *lane, c *protocol.Caller) localFunc

// localTablets makes a tablet of mk (none when nil) for each key: each is
// the caller a presell socket logged in with the key would be.
func localTablets(ctx context.Context, l *lane, keys []string, stats *loadStats, mk localTablet) []*tablet {
	var out []*tablet
	for i, key := range keys {
		if mk == nil {
			break
		}
		k, err := l.DB.Authenticate(ctx, key)
		if err != nil {
			stats.errs.add("connection", 1, fmt.Sprintf("tablet %d: %v", i+1, err))
			continue
		}
		caller := protocol.Caller{Purpose: protocol.PurposePresell, Transport: "ws", Session: uuid.NewString()}.
			WithLogin(protocol.Login{KeyID: k.KeyID, KeyName: k.Name, Scopes: []protocol.Scope{protocol.ScopePresell}})
		out = append(out, &tablet{local: mk(l, &caller), rng: tabletRand(i + 1), stats: stats})
	}
	return out
}

// coreTablet makes each change as the sales core's FD1 adapter does: one
// Change (no ik, as the bench's tablets send none) around the typed method.
func coreTablet(l *lane, c *protocol.Caller) localFunc {
	s := l.Sales
	return func(ctx context.Context, k kind, key string, v any) (string, error) {
		ch, err := s.Change(ctx, salesbuilder.Once{Caller: c}, func(ctx context.Context, tx *lanedb.Tx) (salesbuilder.Changed, error) {
			switch k {
			case kindCreate:
				return salesbuilder.ChangedOf(s.Create(ctx, tx, c, ""))
			case kindAddProduct:
				line := v.(lineChoice)
				return salesbuilder.ChangedOf(s.AddProduct(ctx, tx, c, key, salesbuilder.Item{PID: line.PID, Qty: line.Qty}))
			case kindSetCustomer:
				return salesbuilder.ChangedOf(s.SetCustomer(ctx, tx, c, key, salesbuilder.CustomerRef{CID: v.(customerChoice).CID}))
			}
			return salesbuilder.ChangedOf(s.Park(ctx, tx, c, key))
		})
		return ch.Physkey, err
	}
}

// sqlTablet makes each change as the lanedb statements the core runs for
// it (salesbuilder/build.go, presell/tickets.go), one writer mutation per
// change: read the sale, write the change, re-read its lines, save the
// sale row, journal it (the whole sale as JSON, as the display's event
// carries). No rule is checked and no price is computed: a line keeps its
// list price, and set_customer rewrites every line (the core rewrites
// only the repriced ones).
func sqlTablet(l *lane, c *protocol.Caller) localFunc {
	return func(ctx context.Context, k kind, key string, v any) (string, error) {
		err := l.Writer.Do(ctx, func(ctx context.Context, tx *lanedb.Tx) error {
			now := time.Now()
			stamp := now.UTC().Format(lanedb.StampLayout)
			var sale *lanedb.Sale
			var err error
			if k == kindCreate {
				key = uuid.NewString()
				sale = &lanedb.Sale{Physkey: key, RandomKey: uuid.NewString(), Phase: lanedb.PhaseActive,
					StartDT: now.Format(lanedb.DateTime), CreatedBy: c.KeyName, HolderKey: c.KeyID, HolderName: c.KeyName,
					Presell: true, NextSeqnce: 1, UpdatedUTC: stamp}
				if err := lanedb.InsertSale(ctx, tx, sale); err != nil {
					return err
				}
				return sqlJournal(ctx, tx, now, presell.Family, "created", sale, c, nil)
			}
			if sale, err = lanedb.GetSale(ctx, tx, key); err != nil {
				return err
			}
			switch k {
			case kindAddProduct:
				choice := v.(lineChoice)
				p, err := lanedb.ProductByPID(ctx, tx, choice.PID)
				if err != nil {
					return err
				}
				line := lanedb.Line{SalePhyskey: key, Seqnce: sale.NextSeqnce, PID: p.PID, Description: p.Description,
					PLU: p.PLU.String, Qty: choice.Qty, UnitPriceCents: p.PriceCents, TotalPriceCents: p.PriceCents * choice.Qty,
					Measurement: p.Measurement}
				if err := lanedb.InsertLine(ctx, tx, &line); err != nil {
					return err
				}
				sale.NextSeqnce++
			case kindSetCustomer:
				cust, err := lanedb.CustomerByCID(ctx, tx, v.(customerChoice).CID)
				if err != nil {
					return err
				}
				sale.CID = sql.NullInt64{Int64: cust.CID, Valid: true}
				lines, err := lanedb.SaleLines(ctx, tx, key)
				if err != nil {
					return err
				}
				for i := range lines {
					if err := lanedb.UpdateLine(ctx, tx, &lines[i]); err != nil {
						return err
					}
				}
			case kindPark:
				ticket, err := lanedb.AllocateTicket(ctx, tx)
				if err != nil {
					return err
				}
				sale.Ticket = sql.NullInt64{Int64: ticket, Valid: true}
				sale.SubmittedUTC = sql.NullString{String: stamp, Valid: true}
				sale.Phase = lanedb.PhaseParked
				if err := sqlJournal(ctx, tx, now, presell.Family, "submitted", sale, c, map[string]any{"ticket": ticket}); err != nil {
					return err
				}
			}
			lines, err := lanedb.SaleLines(ctx, tx, key)
			if err != nil {
				return err
			}
			sale.SaleTotalCents = 0
			for _, line := range lines {
				sale.SaleTotalCents += line.TotalPriceCents
			}
			sale.UpdatedUTC = stamp
			if err := lanedb.UpdateSale(ctx, tx, sale); err != nil {
				return err
			}
			return sqlJournal(ctx, tx, now, salesbuilder.FamilyCustdisp, kindNames[k], sale, c, map[string]any{"sale": sale, "lines": lines})
		})
		return key, err
	}
}

func sqlJournal(ctx context.Context, tx *lanedb.Tx, now time.Time, family, event string, sale *lanedb.Sale, c *protocol.Caller, detail any) error {
	err := lanedb.Journal(ctx, tx, now, family, event, sale.Physkey, c.KeyName, detail)
	return err
}

// runBaseline writes presell sales straight into lanedb through a warm-up
// and the window: no sockets, no JSON, no group commit; one BEGIN
// IMMEDIATE … COMMIT (synchronous FULL) per sale. It is the floor the
// server is compared with: what the disk and SQLite allow when nothing
// else is paid for. On a PostgreSQL store database it is the same loop
// through pgx and sqlx, BEGIN … COMMIT on lanedb's one writer connection.
//
// One goroutine, on purpose: lanedb has one writer connection, and each
// sale holds it from BEGIN to COMMIT (the fsync included), so more
// goroutines would only queue for that connection and add hand-offs. The
// loop also recycles tickets itself, between sales (see voidPresells).
func runBaseline(ctx context.Context, prefix, file string, cfg Config) (*loadResult, error) {
	db, _, err := openPhaseDB(ctx, prefix, file)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	info, err := db.LaneInfo(ctx)
	if err != nil {
		return nil, err
	}
	loc, err := time.LoadLocation(info.Timezone)
	if err != nil {
		return nil, fmt.Errorf("lane time zone %q: %w", info.Timezone, err)
	}
	rng, res := rand.New(rand.NewPCG(1, 2)), &loadResult{name: "baseline-1tx"}
	loop := func(d time.Duration) error {
		end, nextRecycle := time.Now().Add(d), time.Now().Add(cfg.RecycleEvery)
		for now := time.Now(); now.Before(end); now = time.Now() {
			if err := ctx.Err(); err != nil {
				return err
			}
			if cfg.RecycleEvery > 0 && now.After(nextRecycle) {
				n, err := voidPresells(ctx, directWrite(db), "bench recycler", "(5)", recycleKeep)
				if err != nil {
					return err
				}
				res.recycled += n
				nextRecycle = now.Add(cfg.RecycleEvery)
			}
			if err := baselineSale(ctx, db, rng, loc, info); err != nil {
				return err
			}
			res.sales++
		}
		return nil
	}
	if err := loop(cfg.WarmUp); err != nil {
		return nil, fmt.Errorf("baseline warm-up: %w", err)
	}
	mark := readCPUMark()
	res.sales = 0
	if err := loop(cfg.Duration); err != nil {
		return nil, fmt.Errorf("baseline: %w", err)
	}
	res.window, res.cpu = time.Since(mark.at), mark.since()
	return res, nil
}

// baselineHolder stands in for the tablet key that holds the sales.
const baselineHolder = "bench-baseline"

// baselineSale writes one whole presell in one transaction: what the server
// does for create, 3 × add_product, set_customer and park — the sale row,
// three lines priced by the salesbuilder's own rules, the customer with
// repricing, the total and the ticket.
func baselineSale(ctx context.Context, db *lanedb.DB, rng *rand.Rand, loc *time.Location, info *lanedb.Lane) error {
	choices := [linesPerSale]lineChoice{pickLine(rng), pickLine(rng), pickLine(rng)}
	cid := pickCustomer(rng)
	id, err := uuid.NewV7()
	if err != nil {
		return fmt.Errorf("new physkey: %w", err)
	}
	now := time.Now()
	sale := &lanedb.Sale{
		Physkey: id.String(), RandomKey: uuid.NewString(), Phase: lanedb.PhaseActive,
		StartDT: now.In(loc).Format(lanedb.DateTime), CreatedBy: baselineHolder,
		HolderKey: baselineHolder, HolderName: baselineHolder, Presell: true, NextSeqnce: 1,
		UpdatedUTC: lanedb.FormatDateTime(now.UTC()), Location: sql.NullInt64{Int64: info.Location.LocID, Valid: true},
	}
	return db.WriteTx(ctx, func(tx *lanedb.Tx) error {
		if err := lanedb.InsertSale(ctx, tx, sale); err != nil {
			return err
		}
		// Each line at list price, then the customer's discount.
		lines := make([]lanedb.Line, 0, len(choices))
		for _, c := range choices {
			p, err := lanedb.ProductByPID(ctx, tx, c.PID)
			if err != nil {
				return err
			}
			l := lanedb.Line{
				SalePhyskey: sale.Physkey, Seqnce: sale.NextSeqnce, PID: p.PID, Description: p.Description,
				PLU: p.PLU.String, Qty: c.Qty, UnitPriceCents: p.PriceCents, Measurement: p.Measurement,
			}
			salesbuilder.PriceLine(&l, nil)
			if err := lanedb.InsertLine(ctx, tx, &l); err != nil {
				return err
			}
			sale.NextSeqnce++
			lines = append(lines, l)
		}
		cust, err := lanedb.CustomerByCID(ctx, tx, cid)
		if err != nil {
			return err
		}
		sale.CID = sql.NullInt64{Int64: cust.CID, Valid: true}
		for i := range lines {
			before := lines[i]
			if salesbuilder.PriceLine(&lines[i], cust); lines[i] != before {
				if err := lanedb.UpdateLine(ctx, tx, &lines[i]); err != nil {
					return err
				}
			}
			sale.SaleTotalCents += lines[i].TotalPriceCents
		}
		// Park: a ticket, then phase 5 in one sale update.
		ticket, err := lanedb.AllocateTicket(ctx, tx)
		if err != nil {
			return err
		}
		stamp := lanedb.FormatDateTime(time.Now().UTC())
		sale.Ticket = sql.NullInt64{Int64: ticket, Valid: true}
		sale.TicketWord = sql.NullString{String: salesbuilder.NumberWord(ticket), Valid: true}
		sale.TicketBarcode = sql.NullString{String: presell.TicketBarcode(info.LaneNo, ticket, sale.RandomKey), Valid: true}
		sale.SubmittedUTC = sql.NullString{String: stamp, Valid: true}
		sale.Phase, sale.UpdatedUTC = lanedb.PhaseParked, stamp
		return lanedb.UpdateSale(ctx, tx, sale)
	})
}

type idleResult struct {
	sockets             int
	bytesPerSocket      float64 // Go heap and stacks in use
	rssPerSocket        float64 // resident set (VmRSS); 0 where the system does not say
	goroutinesPerSocket float64
	inProcess           bool // the clients ran in this process: their memory is counted too
}

// idleSettle is how long the server gets, after the last login reply, for
// its goroutines to reach their idle state before memory is read.
const idleSettle = 300 * time.Millisecond

// measureIdle is memory per idle presell socket: this process's heap and
// stacks in use, its RSS and its goroutines, before and after opening
// cfg.IdleSockets presell sockets that log in and then send nothing. With
// cfg.Child set the client ends live in a child process, so the difference
// is the server's alone; without, the report says so.
func measureIdle(ctx context.Context, prefix, file string, cfg Config, log *slog.Logger) (*idleResult, error) {
	res := &idleResult{sockets: cfg.IdleSockets, inProcess: cfg.Child == nil}
	opts := laneOptions{groupWait: defaultWait, presellWorkers: cfg.PresellWorkers, log: log}
	open := func() (*lanedb.DB, string, error) { return openPhaseDB(ctx, prefix, file) }
	err := withLanes(ctx, open, 1, opts, 1, protocol.ScopePresell, nil, func(ls []*lane, keys []string) error {
		l := ls[0]
		// Freed pages go back to the system first, so that RSS holds what is
		// live, not what earlier phases left for the scavenger.
		before := readFreedSample()
		c, n, err := startChild(ctx, cfg.Child, "idle", childOrder{URL: l.presellURL(), Keys: keys, Sockets: cfg.IdleSockets})
		if err != nil {
			return err
		}
		if n != cfg.IdleSockets {
			return c.fail(fmt.Errorf("idle child opened %d sockets, want %d", n, cfg.IdleSockets))
		}
		err = sleep(ctx, idleSettle)
		after := readFreedSample()
		per := func(a, b uint64) float64 { return float64(int64(a)-int64(b)) / float64(n) }
		res.bytesPerSocket = per(after.heapInuse+after.stackInuse, before.heapInuse+before.stackInuse)
		if before.rss > 0 {
			res.rssPerSocket = per(after.rss, before.rss)
		}
		res.goroutinesPerSocket = float64(after.goroutines-before.goroutines) / float64(n)
		return errors.Join(err, c.finish(nil))
	})
	if err != nil {
		return nil, fmt.Errorf("idle sockets: %w", err)
	}
	return res, nil
}

func (p *printer) idle(r *idleResult) {
	where := "clients in a child process: server side only"
	if r.inProcess {
		where = "clients in this process: both ends counted"
	}
	p.printf("memory per idle presell socket: %.1f KB heap and stacks, %.1f KB RSS (%d sockets, %+.1f goroutines each; %s)\n",
		r.bytesPerSocket/1024, r.rssPerSocket/1024, r.sockets, r.goroutinesPerSocket, where)
}

// idleChild opens and logs in the sockets, says ready, and holds them
// until the orders end. Each socket gets a reader that discards what comes
// (and so answers the server's pings), as an idle tablet app would.
func idleChild(ctx context.Context, o childOrder, ready func(int) error, orders <-chan childOrder) (any, error) {
	if o.Sockets <= 0 || len(o.Keys) == 0 {
		return nil, fmt.Errorf("idle order for %d sockets with %d keys", o.Sockets, len(o.Keys))
	}
	conns := make([]*fd1client.Conn, o.Sockets)
	errs := make([]error, o.Sockets)
	parallel(o.Sockets, func(i int) {
		if conns[i], errs[i] = fd1client.Open(ctx, o.URL, o.Keys[0], protocol.PurposeNone, fd1client.Options{}); errs[i] != nil {
			errs[i] = fmt.Errorf("idle socket %d: %w", i+1, errs[i])
		} else {
			conns[i].Follow(nil)
		}
	})
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if err := ready(len(conns)); err != nil {
		return nil, err
	}
	for range orders {
	}
	return struct{}{}, nil
}
