package bench

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/google/uuid"

	"github.com/greenlane-pos/greenlane/lanedb"
	"github.com/greenlane-pos/greenlane/presell"
	"github.com/greenlane-pos/greenlane/salesbuilder"
)

// baseliner writes presell sales straight into lanedb: no sockets, no JSON,
// no group commit; one BEGIN IMMEDIATE … COMMIT (synchronous FULL) per sale.
// It is the floor the server is compared with: what the disk and SQLite
// allow when nothing else is paid for.
type baseliner struct {
	db     *lanedb.DB
	rng    *rand.Rand
	locID  sql.NullInt64
	laneNo int64
	loc    *time.Location
}

// baselineHolder stands in for the tablet key that holds the sales.
const baselineHolder = "bench-baseline"

func newBaseliner(ctx context.Context, db *lanedb.DB) (*baseliner, error) {
	lane, err := db.LaneInfo(ctx)
	if err != nil {
		return nil, err
	}
	loc, err := time.LoadLocation(lane.Timezone)
	if err != nil {
		return nil, fmt.Errorf("lane time zone %q: %w", lane.Timezone, err)
	}
	return &baseliner{
		db: db, rng: rand.New(rand.NewPCG(1, 2)), loc: loc, laneNo: lane.LaneNo,
		locID: sql.NullInt64{Int64: lane.Location.LocID, Valid: true},
	}, nil
}

// runBaseline runs the bare loop through a warm-up and the window.
//
// One goroutine, on purpose: lanedb has one writer connection, and each
// sale holds it from BEGIN to COMMIT (the fsync included), so more
// goroutines would only queue for that connection and add hand-offs. The
// loop also recycles tickets itself, between sales (see voidPresells).
func runBaseline(ctx context.Context, path string, cfg Config) (*loadResult, error) {
	db, err := openDemoDB(ctx, path)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	bl, err := newBaseliner(ctx, db)
	if err != nil {
		return nil, err
	}
	res := &loadResult{name: "baseline-1tx"}
	if _, err := bl.loop(ctx, cfg.WarmUp, cfg.RecycleEvery, res); err != nil {
		return nil, fmt.Errorf("baseline warm-up: %w", err)
	}
	mark := readCPUMark()
	sales, err := bl.loop(ctx, cfg.Duration, cfg.RecycleEvery, res)
	if err != nil {
		return nil, fmt.Errorf("baseline: %w", err)
	}
	res.window, res.cpu, res.sales = time.Since(mark.at), mark.since(), sales
	return res, nil
}

// loop writes sales for d and returns how many it wrote.
func (bl *baseliner) loop(ctx context.Context, d, recycleEvery time.Duration, res *loadResult) (int64, error) {
	var sales int64
	end := time.Now().Add(d)
	nextRecycle := time.Now().Add(recycleEvery)
	for now := time.Now(); now.Before(end); now = time.Now() {
		if err := ctx.Err(); err != nil {
			return sales, err
		}
		if recycleEvery > 0 && now.After(nextRecycle) {
			n, err := voidPresells(ctx, directWrite(bl.db), "bench recycler", "(5)")
			if err != nil {
				return sales, err
			}
			res.recycled += n
			nextRecycle = now.Add(recycleEvery)
		}
		if err := bl.sale(ctx); err != nil {
			return sales, err
		}
		sales++
	}
	return sales, nil
}

// sale writes one whole presell in one transaction: what the server does
// for create, 3 × add_product, set_customer and park — the sale row, three
// lines priced by the salesbuilder's own rules, the customer with
// repricing, the total and the ticket.
func (bl *baseliner) sale(ctx context.Context) error {
	lines := [linesPerSale]lineChoice{pickLine(bl.rng), pickLine(bl.rng), pickLine(bl.rng)}
	cid := pickCustomer(bl.rng)
	sale, err := bl.newSale()
	if err != nil {
		return err
	}
	return bl.db.WriteTx(ctx, func(tx *lanedb.Tx) error {
		if err := lanedb.InsertSale(ctx, tx, sale); err != nil {
			return err
		}
		priced, err := bl.insertLines(ctx, tx, sale, lines[:])
		if err != nil {
			return err
		}
		if err := bl.setCustomer(ctx, tx, sale, cid, priced); err != nil {
			return err
		}
		return bl.park(ctx, tx, sale)
	})
}

func (bl *baseliner) newSale() (*lanedb.Sale, error) {
	id, err := uuid.NewV7()
	if err != nil {
		return nil, fmt.Errorf("new physkey: %w", err)
	}
	now := time.Now()
	return &lanedb.Sale{
		Physkey: id.String(), RandomKey: uuid.NewString(), Phase: lanedb.PhaseActive,
		StartDT: now.In(bl.loc).Format(lanedb.DateTime), CreatedBy: baselineHolder,
		HolderKey: baselineHolder, HolderName: baselineHolder, Presell: true, NextSeqnce: 1,
		UpdatedUTC: lanedb.FormatDateTime(now.UTC()), Location: bl.locID,
	}, nil
}

// insertLines looks up each product and inserts its line at list price.
func (bl *baseliner) insertLines(ctx context.Context, tx *lanedb.Tx, sale *lanedb.Sale, choices []lineChoice) ([]lanedb.Line, error) {
	lines := make([]lanedb.Line, 0, len(choices))
	for _, c := range choices {
		p, err := lanedb.ProductByPID(ctx, tx, c.PID)
		if err != nil {
			return nil, err
		}
		l := lanedb.Line{
			SalePhyskey: sale.Physkey, Seqnce: sale.NextSeqnce, PID: p.PID, Description: p.Description,
			PLU: p.PLU.String, Qty: c.Qty, UnitPriceCents: p.PriceCents, Measurement: p.Measurement,
		}
		salesbuilder.PriceLine(&l, nil)
		if err := lanedb.InsertLine(ctx, tx, &l); err != nil {
			return nil, err
		}
		sale.NextSeqnce++
		lines = append(lines, l)
	}
	return lines, nil
}

// setCustomer puts the customer on the sale and reprices the lines their
// discount changes.
func (bl *baseliner) setCustomer(ctx context.Context, tx *lanedb.Tx, sale *lanedb.Sale, cid int64, lines []lanedb.Line) error {
	c, err := lanedb.CustomerByCID(ctx, tx, cid)
	if err != nil {
		return err
	}
	sale.CID = sql.NullInt64{Int64: c.CID, Valid: true}
	sale.SaleTotalCents = 0
	for i := range lines {
		before := lines[i]
		salesbuilder.PriceLine(&lines[i], c)
		if lines[i] != before {
			if err := lanedb.UpdateLine(ctx, tx, &lines[i]); err != nil {
				return err
			}
		}
		sale.SaleTotalCents += lines[i].TotalPriceCents
	}
	return nil
}

// park submits the presell: a ticket, then phase 5 in one sale update.
func (bl *baseliner) park(ctx context.Context, tx *lanedb.Tx, sale *lanedb.Sale) error {
	ticket, err := lanedb.AllocateTicket(ctx, tx)
	if err != nil {
		return err
	}
	now := lanedb.FormatDateTime(time.Now().UTC())
	sale.Ticket = sql.NullInt64{Int64: ticket, Valid: true}
	sale.TicketWord = sql.NullString{String: salesbuilder.NumberWord(ticket), Valid: true}
	sale.TicketBarcode = sql.NullString{String: presell.TicketBarcode(bl.laneNo, ticket, sale.RandomKey), Valid: true}
	sale.SubmittedUTC = sql.NullString{String: now, Valid: true}
	sale.Phase, sale.UpdatedUTC = lanedb.PhaseParked, now
	return lanedb.UpdateSale(ctx, tx, sale)
}
