package bench

// The presell benchmark drives presell tablets against the lane in this
// process with group commit on and then off; makes the same sales as a
// bare one-transaction-per-sale loop (baseline-1tx), through the sales
// core and writer with no socket and no JSON (ceiling-core), and as the
// core's SQL alone (ceiling-sql); paces tablets at a person's speed (the
// realistic phases); and measures what an idle presell socket costs the
// server. The ceilings run at the socket phases' concurrency through the
// lane's writer: the gap from the socket phase to ceiling-core is what
// sockets and JSON cost, the gap from there to ceiling-sql what the
// domain costs.
//
// On a PostgreSQL store database every phase runs as on SQLite, each on a
// database of its own (group commit off is then a WAL flush per change,
// as it is an fsync per change on SQLite); with Instances > 1 the
// group-commit-on phase runs that many lanes on its database, a line per
// instance beside the sum.

import (
	"cmp"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/json"
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

// Config is one presell benchmark run.
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
	// IK makes every change a tablet sends carry an ik (idempotency key),
	// as the tablet page's do: the lane then looks each up and stores its
	// reply with the change. The ceilings make the same lookup and store.
	// Default true; false measures the lane's cost without it.
	IK bool
	// Instances is how many lane instances share the store database in the
	// group-commit-on phase, the tablets spread over them round-robin;
	// more than 1 needs a PostgreSQL URL as DB (an SQLite file has one
	// writer). Default 1.
	Instances int
}

// Bounds that keep a mistyped flag from exhausting the machine, and issue
// 14's targets, for 200 tablets on a 2-core machine that runs both the
// tablets and the server.
const (
	maxTablets          = 5000
	maxInstances        = 16
	targetTablets       = 200
	targetBusyPerChange = 50 * time.Microsecond
	targetBaselineRatio = 2.0
	targetSalesPerSec   = 2500
	targetP99           = 50 * time.Millisecond
	targetIdleBytes     = 20 * 1024 // 20 KB, KB = 1024 bytes as printed
)

// targetRealisticP99 is the realistic phases' p99 target by tablet count.
var targetRealisticP99 = map[int]time.Duration{200: 5 * time.Millisecond, 1000: 10 * time.Millisecond}

func DefaultConfig() Config {
	return Config{Common: defaultCommon(), Tablets: 200, GroupCommitWait: defaultWait, IdleSockets: 1000,
		Runs: 1, Realistic: []int{200, 1000}, Instances: 1, IK: true}
}

func (c Config) validate() error {
	errs := []error{inRange("tablets", c.Tablets, 1, maxTablets, ""), inRange("idle sockets", c.IdleSockets, 0, 20000, ""),
		inRange("runs", c.Runs, 1, 99, ""), inRange("instances", c.Instances, 1, maxInstances, ""),
		atLeast("group commit wait", c.GroupCommitWait, 1, "more than 0 (the off phase is run anyway)")}
	for _, n := range c.Realistic {
		errs = append(errs, inRange("realistic tablets", n, 1, maxTablets, ""))
	}
	if c.PresellWorkers < 0 {
		errs = append(errs, fmt.Errorf("presell workers %d: want 0 (the server's default) or more", c.PresellWorkers))
	}
	if c.Instances > 1 && !lanedb.IsPostgresURL(c.DB) {
		errs = append(errs, fmt.Errorf("instances %d: more than 1 needs a PostgreSQL store database as DB (an SQLite lane DB has one writer)", c.Instances))
	}
	return errors.Join(errs...)
}

// Report is the outcome of a run: each phase's median run, in the order
// of the phase* constants, then the realistic phases.
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
	instances  int
	local      localTablet // set: the tablets call in process (the ceilings)
	pace       time.Duration
}

// Run runs the presell benchmark and prints the report to out. An error
// means it could not run; failed requests are in Report.Err.
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
	ik := "each change with an ik, as the tablet page sends it"
	if !cfg.IK {
		ik = "no ik (--ik=false)"
	}
	p.printf("greenlane bench presell — %d tablets × %s (after %s warm-up), %d run(s) of each phase, %s; %s\n",
		cfg.Tablets, cfg.Duration, cfg.WarmUp, cfg.Runs, db, ik)
	p.machine("tablets and server share this process" + loadAverage("start"))
	gc, n := cfg.GroupCommitWait, cfg.Tablets
	specs := []phaseSpec{{"group commit on", "gc-on", gc, n, cfg.Instances, nil, 0}, {"group commit off", "gc-off", 0, n, 1, nil, 0},
		{name: "baseline-1tx", file: "baseline"}, {"ceiling-core", "core", gc, n, 1, coreTablet, 0}, {"ceiling-sql", "sql", gc, n, 1, sqlTablet, 0}}
	for _, n := range cfg.Realistic { // a realistic tablet sends 1 request/s
		specs = append(specs, phaseSpec{fmt.Sprintf("realistic %d tablets × 1 req/s", n), fmt.Sprintf("realistic-%d", n), gc, n, 1, nil, time.Second})
	}
	for i, s := range specs {
		r, err := repeat(cfg.Runs, func(run int) (*loadResult, error) {
			c := loadConfig{warmUp: cfg.WarmUp, duration: cfg.Duration, recycleEvery: cfg.RecycleEvery, pace: s.pace, ik: cfg.IK}
			switch {
			case i == phaseBaseline:
				return runBaseline(ctx, prefix, s.file, c)
			case i == phaseOn && run == 0:
				c.profile = cfg.CPUProfile
			}
			return runPhase(ctx, s, prefix, c, laneOptions{groupWait: s.wait, presellWorkers: cfg.PresellWorkers, log: log})
		})
		if err != nil {
			return nil, err
		}
		rep.phases = append(rep.phases, r)
		p.load(r)
	}
	p.printf("ratios: on/off %.2f×   on/baseline %.2f×\n", rep.ratio(phaseOn, phaseOff), rep.ratio(phaseOn, phaseBaseline))
	p.printf("ceilings: socket/ceiling-core %.2f×   core/ceiling-sql %.2f×   (sales/s: what sockets and JSON cost, what the domain costs)\n",
		rep.ratio(phaseOn, phaseCore), rep.ratio(phaseCore, phaseSQL))
	if cfg.IdleSockets > 0 {
		if rep.idle, err = measureIdle(ctx, prefix, cfg, log); err != nil {
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
		if !med.untimed {
			med.spread += fmt.Sprintf("; request p99 median %s (%s…%s)", ms(p99[(n-1)/2]), ms(p99[0]), ms(p99[n-1]))
		}
	}
	return med, nil
}

// runPhase runs one load on a fresh demo DB: a key per tablet, the lanes,
// the tablets through warm-up and window, the check of the parks.
func runPhase(ctx context.Context, s phaseSpec, prefix string, c loadConfig, opts laneOptions) (*loadResult, error) {
	stats := &loadStats{}
	var res *loadResult
	var insts []*instanceStats
	err := withLanes(ctx, prefix, s.file, s.instances, opts, s.tablets, protocol.ScopePresell, stats, func(ls []*lane, keys []string) error {
		tablets := localTablets(ctx, ls[0], keys, stats, s.local)
		if s.local == nil {
			urls := make([]string, len(ls))
			for i, l := range ls {
				urls[i] = l.presellURL()
				if len(ls) > 1 {
					insts = append(insts, &instanceStats{})
				}
			}
			tablets = connectTablets(ctx, urls, insts, keys, stats)
		}
		var err error
		shape := presellSale
		shape.ik = c.ik
		res, err = drive(ctx, ls, tablets, len(keys), stats, shape, c)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.name, err)
	}
	res.name, res.groupWait, res.paced, res.instances = s.name, opts.groupWait, c.pace > 0, insts
	return res, nil
}

// Err is nil when no request failed, busy errors aside (the lane asked to
// retry: they are reported, not failures). Otherwise it summarises the
// failures by phase and code, with an example.
func (r *Report) Err() error {
	var ts []namedTally
	for _, res := range r.phases {
		ts = append(ts, namedTally{res.name, &res.Errs})
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

// localTablets makes a tablet of mk (none when nil) per key, calling as a
// presell socket logged in with it would.
func localTablets(ctx context.Context, l *lane, keys []string, stats *loadStats, mk localTablet) []*tablet {
	var out []*tablet
	for i, key := range keys {
		if mk == nil {
			break
		}
		k, err := l.DB.Authenticate(ctx, key)
		if err != nil {
			stats.Errs.add("connection", 1, fmt.Sprintf("tablet %d: %v", i+1, err))
			continue
		}
		caller := protocol.Caller{Purpose: protocol.PurposePresell, Transport: "ws", Session: uuid.NewString()}.
			WithLogin(protocol.Login{KeyID: k.KeyID, KeyName: k.Name, Scopes: []protocol.Scope{protocol.ScopePresell}})
		out = append(out, &tablet{local: mk(l, &caller), rng: tabletRand(i + 1), stats: stats})
	}
	return out
}

// coreTablet makes each change as the sales core's FD1 adapter does: one
// Change around the typed method, with the tablet's ik when it sends one.
func coreTablet(l *lane, c *protocol.Caller) localFunc {
	s := l.Sales
	return func(ctx context.Context, k kind, key string, v any, ik string) (string, error) {
		once := salesbuilder.Once{Caller: c, IK: ik, Op: "fd1.salesbuilder.sale_" + kindNames[k]}
		if ik != "" {
			sum := sha256.Sum256([]byte(ik)) // no retries come: any hash of the request will do
			once.Hash = sum[:]
		}
		ch, err := s.Change(ctx, once, func(ctx context.Context, tx *lanedb.Tx) (salesbuilder.Changed, error) {
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
// sale row, journal it (the whole sale, as the display's event carries).
// No rule is checked. With an ik the journalled body is stored last as the
// reply (the INSERT finds a taken ik; none is, as no tablet retries).
func sqlTablet(l *lane, c *protocol.Caller) localFunc {
	return func(ctx context.Context, k kind, key string, v any, ik string) (string, error) {
		err := l.Writer.Do(ctx, func(ctx context.Context, tx *lanedb.Tx) error {
			now := time.Now()
			if k == kindCreate {
				sale := newSale(uuid.NewString(), c.KeyID, c.KeyName, now, time.Local)
				key = sale.Physkey
				if err := lanedb.InsertSale(ctx, tx, sale); err != nil {
					return err
				}
				return lanedb.Journal(ctx, tx, now, presell.Family, "created", key, c.KeyName, nil)
			}
			sale, err := lanedb.GetSale(ctx, tx, key)
			if err != nil {
				return err
			}
			switch k {
			case kindAddProduct:
				_, err = addLine(ctx, tx, sale, v.(lineChoice))
			case kindSetCustomer:
				var lines []lanedb.Line
				if lines, err = lanedb.SaleLines(ctx, tx, key); err == nil {
					err = setCustomer(ctx, tx, sale, lines, v.(customerChoice).CID)
				}
			case kindPark:
				var ticket int64
				if ticket, err = park(ctx, tx, sale, l.Sales.LaneNo()); err == nil {
					err = lanedb.Journal(ctx, tx, now, presell.Family, "submitted", key, c.KeyName, map[string]any{"ticket": ticket})
				}
			}
			if err != nil {
				return err
			}
			lines, err := lanedb.SaleLines(ctx, tx, key)
			if err != nil {
				return err
			}
			sale.SaleTotalCents = 0
			for _, line := range lines {
				sale.SaleTotalCents += line.TotalPriceCents
			}
			sale.UpdatedUTC = now.UTC().Format(lanedb.StampLayout)
			if err := lanedb.UpdateSale(ctx, tx, sale); err != nil {
				return err
			}
			body := map[string]any{"sale": sale, "lines": lines}
			if err := lanedb.Journal(ctx, tx, now, salesbuilder.FamilyCustdisp, kindNames[k], key, c.KeyName, body); err != nil {
				return err
			}
			return storeIK(ctx, tx, c, ik, kindNames[k], body, now)
		})
		return key, err
	}
}

// storeIK stores reply for ik (none: nothing), as the core stores a
// change's reply.
func storeIK(ctx context.Context, tx *lanedb.Tx, c *protocol.Caller, ik, op string, reply any, now time.Time) error {
	if ik == "" {
		return nil
	}
	b, err := json.Marshal(reply)
	if err != nil {
		return fmt.Errorf("encode the reply for ik %s: %w", ik, err)
	}
	sum := sha256.Sum256([]byte(ik))
	stored, err := lanedb.PutIdempotent(ctx, tx, &lanedb.Idempotent{IK: ik, KeyID: c.KeyID, Endpoint: op, RequestHash: sum[:], Reply: b, Session: c.Session}, now)
	if err == nil && !stored {
		err = fmt.Errorf("ik %s was taken", ik)
	}
	return err
}

// newSale is the row of a new presell held by keyID, started at now in loc.
func newSale(physkey, keyID, keyName string, now time.Time, loc *time.Location) *lanedb.Sale {
	return &lanedb.Sale{Physkey: physkey, RandomKey: uuid.NewString(), Phase: lanedb.PhaseActive, StartDT: now.In(loc).Format(lanedb.DateTime),
		CreatedBy: keyName, HolderKey: keyID, HolderName: keyName, Presell: true, NextSeqnce: 1, UpdatedUTC: lanedb.FormatDateTime(now.UTC())}
}

// addLine adds the chosen product at its list price.
func addLine(ctx context.Context, tx *lanedb.Tx, sale *lanedb.Sale, c lineChoice) (lanedb.Line, error) {
	p, err := lanedb.ProductByPID(ctx, tx, c.PID)
	if err != nil {
		return lanedb.Line{}, err
	}
	l := lanedb.Line{SalePhyskey: sale.Physkey, Seqnce: sale.NextSeqnce, PID: p.PID, Description: p.Description,
		PLU: p.PLU.String, Qty: c.Qty, UnitPriceCents: p.PriceCents, Measurement: p.Measurement}
	salesbuilder.PriceLine(&l, nil)
	sale.NextSeqnce++
	return l, lanedb.InsertLine(ctx, tx, &l)
}

// setCustomer gives the sale customer cid and reprices its lines by the
// salesbuilder's rules, rewriting those whose price changed.
func setCustomer(ctx context.Context, tx *lanedb.Tx, sale *lanedb.Sale, lines []lanedb.Line, cid int64) error {
	cust, err := lanedb.CustomerByCID(ctx, tx, cid)
	if err != nil {
		return err
	}
	sale.CID, sale.SaleTotalCents = sql.NullInt64{Int64: cust.CID, Valid: true}, 0
	for i := range lines {
		before := lines[i]
		if salesbuilder.PriceLine(&lines[i], cust); lines[i] != before {
			if err := lanedb.UpdateLine(ctx, tx, &lines[i]); err != nil {
				return err
			}
		}
		sale.SaleTotalCents += lines[i].TotalPriceCents
	}
	return nil
}

// park gives the sale a ticket (number, word, barcode) and phase 5.
func park(ctx context.Context, tx *lanedb.Tx, sale *lanedb.Sale, laneNo int64) (int64, error) {
	ticket, err := lanedb.AllocateTicket(ctx, tx)
	if err != nil {
		return 0, err
	}
	stamp := lanedb.FormatDateTime(time.Now().UTC())
	sale.Ticket = sql.NullInt64{Int64: ticket, Valid: true}
	sale.TicketWord = sql.NullString{String: salesbuilder.NumberWord(ticket), Valid: true}
	sale.TicketBarcode = sql.NullString{String: presell.TicketBarcode(laneNo, ticket, sale.RandomKey), Valid: true}
	sale.SubmittedUTC = sql.NullString{String: stamp, Valid: true}
	sale.Phase, sale.UpdatedUTC = lanedb.PhaseParked, stamp
	return ticket, nil
}

// baselineHolder stands in for the tablet key that holds the sales.
const baselineHolder = "bench-baseline"

// runBaseline writes presell sales straight into lanedb through a warm-up
// and the window: no sockets, no JSON, no group commit; the whole sale
// (create, 3 × add_product, set_customer, park) in one transaction. It is
// the floor the lane is compared with: what the disk and the database
// allow when nothing else is paid for. One goroutine, on purpose: lanedb
// has one writer connection, held by each sale from BEGIN to COMMIT, so
// more would only queue for it. The loop recycles tickets itself.
func runBaseline(ctx context.Context, prefix, file string, c loadConfig) (*loadResult, error) {
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
	rng, res := rand.New(rand.NewPCG(1, 2)), &loadResult{loadStats: &loadStats{}, name: "baseline-1tx", untimed: true}
	sale := func() error {
		id, err := uuid.NewV7()
		if err != nil {
			return fmt.Errorf("new physkey: %w", err)
		}
		choices, cid := [linesPerSale]lineChoice{pickLine(rng), pickLine(rng), pickLine(rng)}, pickCustomer(rng)
		return db.WriteTx(ctx, func(tx *lanedb.Tx) error {
			sale := newSale(id.String(), baselineHolder, baselineHolder, time.Now(), loc)
			sale.Location = sql.NullInt64{Int64: info.Location.LocID, Valid: true}
			err := lanedb.InsertSale(ctx, tx, sale)
			lines := make([]lanedb.Line, len(choices))
			for i := 0; i < len(choices) && err == nil; i++ {
				lines[i], err = addLine(ctx, tx, sale, choices[i])
			}
			if err == nil {
				err = setCustomer(ctx, tx, sale, lines, cid)
			}
			if err == nil {
				_, err = park(ctx, tx, sale, info.LaneNo)
			}
			if err != nil {
				return err
			}
			return lanedb.UpdateSale(ctx, tx, sale)
		})
	}
	loop := func(d time.Duration) error {
		end, nextRecycle := time.Now().Add(d), time.Now().Add(c.recycleEvery)
		for now := time.Now(); now.Before(end); now = time.Now() {
			if err := ctx.Err(); err != nil {
				return err
			}
			if c.recycleEvery > 0 && now.After(nextRecycle) {
				n, err := voidPresells(ctx, directWrite(db), "bench recycler", "(5)", recycleKeep)
				if err != nil {
					return err
				}
				res.recycled += n
				nextRecycle = now.Add(c.recycleEvery)
			}
			if err := sale(); err != nil {
				return err
			}
			res.Sales++
		}
		return nil
	}
	if err := loop(c.warmUp); err != nil {
		return nil, fmt.Errorf("baseline warm-up: %w", err)
	}
	mark := readCPUMark()
	res.Sales = 0
	if err := loop(c.duration); err != nil {
		return nil, fmt.Errorf("baseline: %w", err)
	}
	res.window, res.cpu = time.Since(mark.at), mark.since()
	return res, nil
}

type idleResult struct {
	sockets             int
	bytesPerSocket      float64 // Go heap and stacks in use
	rssPerSocket        float64 // resident set (VmRSS); 0 where the system does not say
	goroutinesPerSocket float64
	inProcess           bool // the clients ran in this process: their memory is counted too
}

// measureIdle is what an idle presell socket costs this process (heap
// and stacks, RSS, goroutines), before and after IdleSockets sockets log
// in and send nothing; with a Child command the clients are in another
// process, so that the difference is the server's alone.
func measureIdle(ctx context.Context, prefix string, cfg Config, log *slog.Logger) (*idleResult, error) {
	res := &idleResult{sockets: cfg.IdleSockets, inProcess: cfg.Child == nil}
	opts := laneOptions{groupWait: defaultWait, presellWorkers: cfg.PresellWorkers, log: log}
	err := withLanes(ctx, prefix, "idle", 1, opts, 1, protocol.ScopePresell, nil, func(ls []*lane, keys []string) error {
		// Freed pages go back to the system first, so that RSS holds what
		// is live, not what earlier phases left for the scavenger; and
		// the server gets a moment to settle its goroutines after the last
		// login.
		before := readFreedSample()
		c, n, err := startChild(ctx, cfg.Child, "idle", childOrder{URL: ls[0].presellURL(), Keys: keys, Sockets: cfg.IdleSockets})
		if err != nil {
			return err
		}
		if n != cfg.IdleSockets {
			return c.fail(fmt.Errorf("idle child opened %d sockets, want %d", n, cfg.IdleSockets))
		}
		err = sleep(ctx, 300*time.Millisecond)
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
// until the orders end. Each gets a reader that discards what comes (and
// so answers the server's pings), as an idle tablet app would.
func idleChild(ctx context.Context, o childOrder, ready func(int) error, orders <-chan childOrder) (any, error) {
	if o.Sockets <= 0 || len(o.Keys) == 0 {
		return nil, fmt.Errorf("idle order for %d sockets with %d keys", o.Sockets, len(o.Keys))
	}
	conns, errs := make([]*fd1client.Conn, o.Sockets), make([]error, o.Sockets)
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
