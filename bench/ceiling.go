package bench

// The ceilings run bench presell's sales in this process, at the same
// concurrency, through the lane's own group-commit writer, with no socket
// and no JSON: ceiling-core through the real sales core (what sockets and
// JSON cost is the gap to the socket phase), ceiling-sql as the lanedb
// statements the core runs for each change, with no domain code (what the
// domain costs is the gap to ceiling-core). The writer line of each shows
// statements per change, so a core that changes its SQL shows here too.

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/google/uuid"

	"github.com/greenlane-pos/greenlane/lanedb"
	"github.com/greenlane-pos/greenlane/presell"
	"github.com/greenlane-pos/greenlane/protocol"
	"github.com/greenlane-pos/greenlane/salesbuilder"
)

// localTablet makes the changes of the tablet logged in as c in process.
type localTablet func(l *lane, c *protocol.Caller) localFunc

// runLocal is runLoad with in-process tablets: each is the caller a
// presell socket logged in with its key would be.
func runLocal(ctx context.Context, name, path string, opts laneOptions, n int, mk localTablet, c loadConfig) (*loadResult, error) {
	stats := &loadStats{}
	var res *loadResult
	err := withLane(ctx, path, opts, n, protocol.ScopePresell, stats, func(l *lane, keys []string) error {
		tablets := make([]*tablet, len(keys))
		for i, key := range keys {
			k, err := l.DB.Authenticate(ctx, key)
			if err != nil {
				return fmt.Errorf("tablet %d: %w", i+1, err)
			}
			caller := protocol.Caller{Purpose: protocol.PurposePresell, Transport: "ws", Session: uuid.NewString()}.
				WithLogin(protocol.Login{KeyID: k.KeyID, KeyName: k.Name, Scopes: []protocol.Scope{protocol.ScopePresell}})
			tablets[i] = &tablet{local: mk(l, &caller), rng: rand.New(rand.NewPCG(uint64(i+1), 0x9e3779b97f4a7c15)), stats: stats}
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
	_, err := lanedb.Journal(ctx, tx, now, family, event, sale.Physkey, c.KeyName, detail)
	return err
}
