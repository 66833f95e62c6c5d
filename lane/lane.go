// Package lane assembles a whole lane server from its parts: the lane DB,
// its group-commit writer, the firehose hub, the catalog, the sales core
// with the presell workflow plugged into it, and the FD1 front door. The
// serve command, the benchmarks and the tests all build a lane here, so
// there is one wiring.
package lane

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/greenlane-pos/greenlane/catalog"
	"github.com/greenlane-pos/greenlane/firehose"
	"github.com/greenlane-pos/greenlane/internal/setting"
	"github.com/greenlane-pos/greenlane/lanedb"
	"github.com/greenlane-pos/greenlane/presell"
	"github.com/greenlane-pos/greenlane/protocol"
	"github.com/greenlane-pos/greenlane/salesbuilder"
	"github.com/greenlane-pos/greenlane/server"
	"github.com/greenlane-pos/greenlane/web"
)

// Config is every setting of a lane. DefaultConfig holds every default.
type Config struct {
	Server  server.Config
	Writer  lanedb.WriterOptions
	Sales   salesbuilder.Options
	Presell presell.Config
	Catalog catalog.Config
	Hub     firehose.HubConfig
	// SweepEvery is how often abandoned presells are voided and the journal
	// trimmed: 10ms to 24h. Default 1m.
	SweepEvery time.Duration
	// MaxClockSkew is, in store mode (a PostgreSQL lane DB), how far this
	// machine's clock may be from the store database's. Every lane judges
	// presell ages (the sweeper) and claim leases by its own clock: one
	// hours ahead would void every open presell of the store, one minutes
	// ahead would take claims other lanes still hold. Past it the lane
	// refuses to start (its own clock, Now, as well as the machine's), and
	// while the clock is off once it runs it refuses changes (unavailable)
	// and its sweeper voids nothing. 100ms to 1h. Default 2s.
	MaxClockSkew time.Duration
	// Now is the lane's clock (see ParseClock). Default time.Now.
	Now func() time.Time
	// Rand is where new sale keys get their randomness (see SeededRand).
	// Default nil: crypto/rand.
	Rand io.Reader
}

// Validate checks every part's settings and its own, and reports every bad
// value at once. Each is a *setting.Error whose field is a path from Config
// (Server.PongWait, Sales.Lease, SweepEvery), so that serve can name the
// flag that set it. New calls it before anything starts.
func (c Config) Validate() error {
	return errors.Join(
		setting.Within("Server", c.Server.Validate()),
		setting.Within("Writer", c.Writer.Validate()),
		setting.Within("Sales", c.Sales.Validate()),
		setting.Within("Presell", c.Presell.Validate()),
		setting.Within("Catalog", c.Catalog.Validate()),
		setting.Within("Hub", c.Hub.Validate()),
		setting.Range("SweepEvery", c.SweepEvery, 10*time.Millisecond, 24*time.Hour),
		setting.Range("MaxClockSkew", c.MaxClockSkew, 100*time.Millisecond, time.Hour),
	)
}

// DefaultConfig returns the defaults of every part.
func DefaultConfig() Config {
	return Config{
		Server:       server.DefaultConfig(),
		Writer:       lanedb.DefaultWriterOptions(),
		Sales:        salesbuilder.DefaultOptions(),
		Presell:      presell.DefaultConfig(),
		Catalog:      catalog.DefaultConfig(),
		Hub:          firehose.DefaultHubConfig(),
		SweepEvery:   time.Minute,
		MaxClockSkew: 2 * time.Second,
	}
}

// Lane is a running lane server over an open lane DB.
type Lane struct {
	DB      *lanedb.DB
	Writer  *lanedb.Writer
	Hub     *firehose.Hub
	Sales   *salesbuilder.Service
	Presell *presell.Workflow
	Server  *server.Server

	stop func()
	wg   sync.WaitGroup
}

// New builds a lane over db (which the caller opened and still owns) and
// starts its background work: the hub and the presell sweeper. A cfg that
// does not Validate is refused before anything starts.
func New(ctx context.Context, db *lanedb.DB, cfg Config, log *slog.Logger) (*Lane, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("lane config: %w", err)
	}
	if err := clockInStep(ctx, db, wallClock, cfg.MaxClockSkew); err != nil {
		return nil, err
	}
	// The lane stamps shared rows (presell ages, claim leases) with its
	// own clock, so a deterministic clock set apart (Config.Now, serve
	// --clock) on a store database is refused as the machine's is: other
	// lanes would void its presells, or take its claims, at once.
	laneClock := wallClock
	if cfg.Now != nil {
		laneClock = cfg.Now
		if err := clockInStep(ctx, db, laneClock, cfg.MaxClockSkew); err != nil {
			return nil, err
		}
	}
	// Only a store database has a clock to check the lane's against; with
	// none (nil) the sweeper guards itself (presell.Workflow.Sweep).
	var ref *presell.Reference
	if db.Postgres() {
		ref = &presell.Reference{Skew: cfg.MaxClockSkew,
			InStep: func(ctx context.Context) error { return clockInStep(ctx, db, laneClock, cfg.MaxClockSkew) }}
	}
	l := &Lane{DB: db, Writer: db.NewWriter(cfg.Writer)}
	l.Writer.LogTo(log)
	l.Hub = firehose.NewHub(db, cfg.Hub, log, append(salesFamilies(laneClock), server.MemoryFamilies()...)...)
	sales := cfg.Sales
	// The hub takes this lane's journal rows as they commit; where the
	// DB cannot hand them over (PostgreSQL) it is told to read them.
	if !db.OnJournal(l.Hub.Written) {
		sales.Notify = l.Hub.Notify
	}
	// The server is built below, before any request can reach the sales.
	sales.SessionOpen = func(session string) bool { return l.Server.SessionOpen(session) }
	if db.Postgres() {
		// Other lanes of the store hold claims too: only this process's
		// sessions are known to have closed (SQLite: one lane per file).
		sales.SessionHere = func(session string) bool { return l.Server.OwnSession(session) }
	}
	if cfg.Now != nil {
		sales.Now = cfg.Now
		cfg.Server.Now = cfg.Now
	}
	if cfg.Rand != nil {
		sales.Rand = cfg.Rand
	}
	var err error
	if l.Sales, err = salesbuilder.New(ctx, db, l.Writer, sales); err != nil {
		l.Writer.Close()
		return nil, err
	}
	l.Presell = presell.New(l.Sales)
	// Claims stamped before a restart by a clock that read later than this
	// one are cut to one lease before anyone can ask about them (the
	// lane's clock is in step with the store database's, checked above).
	var slack time.Duration
	if ref != nil {
		slack = ref.Slack()
	}
	if n, err := l.Presell.CapClaims(ctx, slack); err != nil {
		l.Writer.Close()
		return nil, fmt.Errorf("cap claims to their lease: %w", err)
	} else if n > 0 {
		log.Info(presell.CappedClaims, "count", n, "slack", slack)
	}
	l.Server = server.New(cfg.Server, db, log)
	// How a presell socket runs its requests is the presell workflow's
	// setting; the server only runs the pool.
	l.Server.SetWorkers(protocol.PurposePresell, cfg.Presell.Workers)
	r := l.Server.Router()
	catalog.New(db, cfg.Catalog).Register(r)
	l.Sales.Register(r)
	l.Presell.Register(r)
	l.Server.AttachHub(l.Hub, l.Writer)
	l.Server.HoldsChanges(l.Sales.Held)
	site, err := web.New(web.Config{OtherLanes: cfg.Server.AllowedOrigins})
	if err != nil {
		l.Writer.Close()
		return nil, err
	}
	l.Server.Mount(site, site.Routes()...)

	// Background work outlives request contexts and ends in Close, after
	// the server has stopped (sockets unsubscribe through the hub).
	bg, stop := context.WithCancel(context.Background())
	l.stop = stop
	l.wg.Add(2)
	go func() { defer l.wg.Done(); l.Hub.Run(bg) }()
	go func() { defer l.wg.Done(); l.Presell.Sweep(bg, cfg.SweepEvery, log, ref) }()
	if db.Postgres() {
		l.wg.Add(1)
		go func() { defer l.wg.Done(); l.watchClock(bg, laneClock, cfg.MaxClockSkew, log) }()
	}
	return l, nil
}

// clockWatchEvery is how often a store-mode lane compares its clock with
// the store database's while it runs (watchClock).
const clockWatchEvery = time.Second

// watchClock compares the lane's clock (now) with the store database's
// every clockWatchEvery until ctx ends. While it is more than max off,
// changes are refused (Sales.HoldChanges) with unavailable saying by how
// much and to set it right; reads go on. A database that does not answer
// changes nothing here: its own errors say so.
func (l *Lane) watchClock(ctx context.Context, now func() time.Time, max time.Duration, log *slog.Logger) {
	t := time.NewTicker(clockWatchEvery)
	defer t.Stop()
	off := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		skew, err := l.DB.ClockSkew(ctx, now)
		switch {
		case err != nil:
			continue
		case skew.Abs() <= max:
			if off {
				off = false
				l.Sales.HoldChanges(nil)
				log.Info("the lane's clock is in step with the store database's again: changes accepted")
			}
			continue
		}
		why := skewError(skew, max)
		l.Sales.HoldChanges(protocol.Errorf(protocol.CodeUnavailable, "%s. Until its clock is in step again this lane refuses changes; reads go on", why).Because(protocol.CauseClock))
		if !off {
			off = true
			log.Error("refusing changes: "+why.Error()+"; reads go on", "skew", skew)
		}
	}
}

// wallClock is this machine's clock, which clockInStep compares with the
// store database's (the lane's own clock may be set apart on purpose:
// Config.Now).
var wallClock = time.Now

// clockInStep refuses a clock (now) more than max away from the store
// database's (see Config.MaxClockSkew).
func clockInStep(ctx context.Context, db *lanedb.DB, now func() time.Time, max time.Duration) error {
	skew, err := db.ClockSkew(ctx, now)
	if err != nil || skew.Abs() <= max {
		return err
	}
	return skewError(skew, max)
}

// skewError says the lane's clock is skew off the store database's, more
// than max, and to set it right.
func skewError(skew, max time.Duration) error {
	way := "ahead of"
	if skew < 0 {
		way = "behind"
	}
	return fmt.Errorf("the lane's clock is %s %s the store database's, more than %s (serve --max-clock-skew): "+
		"set it right (NTP); every lane judges presell ages and claim leases by its own clock", skew.Abs().Round(100*time.Millisecond), way, max)
}

// Serve serves until ctx ends, then shuts the front door down gracefully.
// ready, if not nil, gets the bound address.
func (l *Lane) Serve(ctx context.Context, ready func(net.Addr)) error {
	return l.Server.ListenAndServe(ctx, ready)
}

// ServeOn is Serve on a listener already bound to the server's address.
func (l *Lane) ServeOn(ctx context.Context, ln net.Listener, ready func(net.Addr)) error {
	return l.Server.Serve(ctx, ln, ready)
}

// Close stops the background work and the writer (queued changes are
// written first). The DB stays open: it belongs to the caller.
func (l *Lane) Close() error {
	if l.stop == nil {
		return errors.New("lane already closed")
	}
	l.stop()
	l.wg.Wait()
	l.Writer.Close()
	l.DB.OnJournal(nil) // the DB outlives the lane; its hub stopped
	l.stop = nil
	return nil
}

// salesFamilies are the firehose families of the sales core's and the
// presell workflow's journal rows, as FD1 names them: custdisp.sale.*
// events for customer displays (SPEC §6.2), which a customer display
// follows whatever it asks for and which opens with the sale in progress,
// and presell.* events for counters and tablets.
func salesFamilies(now func() time.Time) []firehose.Family {
	return []firehose.Family{
		{Name: "custdisp.sale", Journal: salesbuilder.FamilyCustdisp, Names: []string{"custdisp"}, Prefixes: []string{"custdisp.sale"},
			Body: firehose.Detail, Display: true, Current: salesbuilder.CustDispCurrent(now),
			// A debug key sees no sale: it is refused, rather than opened on
			// nothing (a key without these scopes has no sale of its own).
			Scopes: []protocol.Scope{protocol.ScopeDisplay, protocol.ScopeCounter, protocol.ScopePresell}},
		{Name: "presell", Journal: presell.Family, Names: []string{"presell"}, Prefixes: []string{"presell."},
			Body: firehose.DetailWithEnvelope, Scopes: []protocol.Scope{protocol.ScopeCounter, protocol.ScopePresell}},
	}
}
