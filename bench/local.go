package bench

// The in-process phases of bench presell make its sales with no socket
// and no JSON, at the same concurrency as the tablets:
//
//   - baseline-1tx: the whole sale through the real sales core in one
//     BEGIN IMMEDIATE … COMMIT (synchronous FULL) per sale, without the
//     group-commit writer: the floor the server is compared with;
//   - ceiling-core: each change through the sales core and the lane's own
//     writer (what sockets and JSON cost is the gap to the socket phase);
//   - ceiling-sql: each change as the lanedb statements the core runs, with
//     no domain code (what the domain costs is the gap to ceiling-core).
//     Its writer line shows statements per change, so a core that changes
//     its SQL shows here too.

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/google/uuid"

	"github.com/greenlane-pos/greenlane/lanedb"
	"github.com/greenlane-pos/greenlane/presell"
	"github.com/greenlane-pos/greenlane/protocol"
	"github.com/greenlane-pos/greenlane/salesbuilder"
)

// localCaller is the caller a presell socket logged in with key would be.
func localCaller(ctx context.Context, l *lane, key string) (*protocol.Caller, error) {
	k, err := l.DB.Authenticate(ctx, key)
	if err != nil {
		return nil, err
	}
	c := protocol.Caller{Purpose: protocol.PurposePresell, Transport: "ws", Session: uuid.NewString()}.
		WithLogin(protocol.Login{KeyID: k.KeyID, KeyName: k.Name, Scopes: []protocol.Scope{protocol.ScopePresell}})
	return &c, nil
}

// coreChange makes change k of sale key (v is the line or customer)
// through the sales core in tx.
func coreChange(ctx context.Context, s *salesbuilder.Service, tx *lanedb.Tx, c *protocol.Caller, k kind, key string, v any) (salesbuilder.Changed, error) {
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
}

// runBaseline runs baseline-1tx through a warm-up and the window.
//
// One goroutine, on purpose: lanedb has one writer connection, and each
// sale holds it from BEGIN to COMMIT (the fsync included), so more
// goroutines would only queue for that connection and add hand-offs. The
// loop also recycles tickets itself, between sales (see voidPresells).
func runBaseline(ctx context.Context, path string, cfg Config, log *slog.Logger) (*loadResult, error) {
	res := &loadResult{name: "baseline-1tx"}
	err := withLane(ctx, path, laneOptions{log: log}, 1, protocol.ScopePresell, nil, func(l *lane, keys []string) error {
		c, err := localCaller(ctx, l, keys[0])
		if err != nil {
			return err
		}
		rng, write := rand.New(rand.NewPCG(1, 2)), directWrite(l.DB)
		sale := func(tx *lanedb.Tx) error {
			ch, err := coreChange(ctx, l.Sales, tx, c, kindCreate, "", nil)
			for range linesPerSale {
				if err == nil {
					_, err = coreChange(ctx, l.Sales, tx, c, kindAddProduct, ch.Physkey, pickLine(rng))
				}
			}
			if err == nil {
				_, err = coreChange(ctx, l.Sales, tx, c, kindSetCustomer, ch.Physkey, customerChoice{pickCustomer(rng)})
			}
			if err == nil {
				_, err = coreChange(ctx, l.Sales, tx, c, kindPark, ch.Physkey, nil)
			}
			return err
		}
		loop := func(d time.Duration) (sales int64, err error) {
			end, nextRecycle := time.Now().Add(d), time.Now().Add(cfg.RecycleEvery)
			for now := time.Now(); now.Before(end) && err == nil; now = time.Now() {
				if err = ctx.Err(); err == nil && cfg.RecycleEvery > 0 && now.After(nextRecycle) {
					var n int64
					n, err = voidPresells(ctx, write, "bench recycler", "(5)")
					res.recycled, nextRecycle = res.recycled+n, now.Add(cfg.RecycleEvery)
				}
				if err == nil {
					if err = l.DB.WriteTx(ctx, sale); err == nil {
						sales++
					}
				}
			}
			return sales, err
		}
		if _, err := loop(cfg.WarmUp); err != nil {
			return fmt.Errorf("warm-up: %w", err)
		}
		mark := readCPUMark()
		res.sales, err = loop(cfg.Duration)
		res.window, res.cpu = time.Since(mark.at), mark.since()
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("baseline: %w", err)
	}
	return res, nil
}

type localTablet func(l *lane, c *protocol.Caller) localFunc

// runLocal is runLoad with in-process tablets.
func runLocal(ctx context.Context, name, path string, opts laneOptions, n int, mk localTablet, c loadConfig) (*loadResult, error) {
	stats := &loadStats{}
	var res *loadResult
	err := withLane(ctx, path, opts, n, protocol.ScopePresell, stats, func(l *lane, keys []string) error {
		tablets := make([]*tablet, len(keys))
		for i, key := range keys {
			caller, err := localCaller(ctx, l, key)
			if err != nil {
				return fmt.Errorf("tablet %d: %w", i+1, err)
			}
			tablets[i] = &tablet{local: mk(l, caller), rng: rand.New(rand.NewPCG(uint64(i+1), 0x9e3779b97f4a7c15)), stats: stats}
		}
		var err error
		res, err = drive(ctx, l, tablets, len(keys), stats, presellSale, c)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	res.name, res.groupWait = name, opts.groupWait
	res.fill(stats)
	return res, nil
}

// coreTablet makes each change as the sales core's FD1 adapter does: one
// Change (no ik, as the bench's tablets send none) around the typed method.
func coreTablet(l *lane, c *protocol.Caller) localFunc {
	return func(ctx context.Context, k kind, key string, v any) (string, error) {
		ch, err := l.Sales.Change(ctx, salesbuilder.Once{Caller: c}, func(ctx context.Context, tx *lanedb.Tx) (salesbuilder.Changed, error) {
			return coreChange(ctx, l.Sales, tx, c, k, key, v)
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
			journal := func(family, event string, sale *lanedb.Sale, detail any) error {
				_, err := lanedb.Journal(ctx, tx, now, family, event, sale.Physkey, c.KeyName, detail)
				return err
			}
			if k == kindCreate {
				key = uuid.NewString()
				sale := &lanedb.Sale{Physkey: key, RandomKey: uuid.NewString(), Phase: lanedb.PhaseActive,
					StartDT: now.Format(lanedb.DateTime), CreatedBy: c.KeyName, HolderKey: c.KeyID, HolderName: c.KeyName,
					Presell: true, NextSeqnce: 1, UpdatedUTC: stamp}
				if err := lanedb.InsertSale(ctx, tx, sale); err != nil {
					return err
				}
				return journal(presell.Family, "created", sale, nil)
			}
			sale, err := lanedb.GetSale(ctx, tx, key)
			if err != nil {
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
				if err := journal(presell.Family, "submitted", sale, map[string]any{"ticket": ticket}); err != nil {
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
			return journal(salesbuilder.FamilyCustdisp, kindNames[k], sale, map[string]any{"sale": sale, "lines": lines})
		})
		return key, err
	}
}
