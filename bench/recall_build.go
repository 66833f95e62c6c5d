package bench

import (
	"context"
	"errors"
	"fmt"
	"github.com/greenlane-pos/greenlane/progress"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/greenlane-pos/greenlane/lanedb"
)

// The recall benchmark's lane DB is the demo fixture plus --sales historic
// sales: completed over the past year, as a lane that has traded for a while
// holds them. Three in ten were presells, so their ticket numbers (now free)
// are spread over every ticket many times; none of it may slow down finding
// the few presells that are open.

const (
	// historyMarker is the lane_counters row in which a finished build
	// records how many historic sales it wrote. It is written in the build's
	// last transaction, so its presence means the build completed, and it
	// tells a bench DB (which may be replaced) from anyone else's lane DB.
	historyMarker = "bench_recall_sales"
	// historyBatch is how many sales go in one build transaction: large
	// enough that COMMIT costs nothing per sale, small enough that the WAL
	// and the page cache stay bounded.
	historyBatch = 10_000
	// historyPresellPct of historic sales were presells.
	historyPresellPct = 30
	// historyCustomerPct of historic sales had a customer on them.
	historyCustomerPct = 30
	// historySpan is how far back the history goes.
	historySpan = 365 * 24 * time.Hour
	// buildCacheKB is the writer's page cache during the build (SQLite's
	// default is 2 MB): the random_key index takes inserts all over, and
	// every miss is a read from the OS.
	buildCacheKB = 64 << 10
	// progressStep is how often (in sales) the build reports progress.
	progressStep = 1000
)

// buildResult says where the lane DB came from.
type buildResult struct {
	reused   bool
	replaced int64 // historic sales in the file that was rebuilt; -1: no bench DB was there
	sales    int64
	took     time.Duration
}

// prepareRecallDB returns the lane DB to measure, opened with lanedb's
// defaults (synchronous FULL, as the lane runs). A file the caller named is
// reused when a finished build of the same size is in it; otherwise the
// history is built afresh.
func prepareRecallDB(ctx context.Context, path string, reuse bool, sales int64, prog io.Writer) (*lanedb.DB, *buildResult, error) {
	res := &buildResult{sales: sales, replaced: -1}
	if reuse {
		db, held, err := openBenchDB(ctx, path)
		if err != nil {
			return nil, nil, err
		}
		if db != nil && held == sales {
			res.reused = true
			return db, res, nil
		}
		res.replaced = held
	}
	took, err := buildHistory(ctx, path, sales, prog)
	if err != nil {
		return nil, nil, err
	}
	res.took = took
	db, err := lanedb.Open(ctx, path, lanedb.DefaultOptions())
	if err != nil {
		return nil, nil, err
	}
	return db, res, nil
}

// openBenchDB opens an earlier run's lane DB at path and reports how many
// historic sales its finished build holds. It returns a nil DB (and -1)
// when there is no file, or when the build is not the one wanted: the
// caller then rebuilds. A lane DB that bench recall did not build is
// refused rather than replaced.
func openBenchDB(ctx context.Context, path string) (*lanedb.DB, int64, error) {
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return nil, -1, nil
	}
	db, err := lanedb.Open(ctx, path, lanedb.DefaultOptions())
	if err != nil {
		return nil, -1, err
	}
	held, maxSID, err := historyHeld(ctx, db)
	if err != nil {
		db.Close()
		return nil, -1, err
	}
	if held < 0 {
		db.Close()
		return nil, -1, fmt.Errorf("%s is a lane DB that bench recall did not build: not replacing it (name another --db)", path)
	}
	// The history's sids run 1…N: a file whose count and sids disagree was
	// changed since, and is rebuilt.
	if maxSID != held {
		db.Close()
		return nil, held, nil
	}
	return db, held, nil
}

// historyHeld reads the build marker (-1 when absent) and the highest sid.
func historyHeld(ctx context.Context, db *lanedb.DB) (held, maxSID int64, err error) {
	held, ok, err := lanedb.CounterValue(ctx, db.Read, historyMarker)
	if err != nil || !ok {
		return -1, 0, err
	}
	maxSID, err = lanedb.MaxSID(ctx, db.Read)
	return held, maxSID, err
}

// buildHistory makes a fresh demo lane DB at path and writes n historic
// sales into it. The bulk load runs with synchronous OFF on a connection
// of its own: a crash mid-build loses only a bench DB, which has no marker
// yet and is rebuilt. The caller reopens the file with the lane's settings.
func buildHistory(ctx context.Context, path string, n int64, progressOut io.Writer) (time.Duration, error) {
	fresh, err := openDemoDB(ctx, path)
	if err != nil {
		return 0, err
	}
	if err := fresh.Close(); err != nil {
		return 0, fmt.Errorf("close %s: %w", path, err)
	}
	db, err := lanedb.Open(ctx, path, lanedb.Options{Synchronous: "OFF"})
	if err != nil {
		return 0, err
	}
	defer db.Close()
	if err := db.SetWriterCacheKB(ctx, buildCacheKB); err != nil {
		return 0, err
	}
	h, err := newHistory(ctx, db, n)
	if err != nil {
		return 0, err
	}
	prog := progress.New(progressOut, "sales", n)
	// One transaction per batch; the last (with n = 0, the only one) also
	// writes the marker.
	for from := int64(0); ; from += historyBatch {
		count := min(historyBatch, n-from)
		last := from+count >= n
		err := db.WriteTx(ctx, func(tx *lanedb.Tx) error { return h.writeBatch(ctx, tx, from, count, last, prog) })
		if err != nil {
			return 0, fmt.Errorf("build historic sales %d…%d: %w", from+1, from+count, err)
		}
		if last {
			break
		}
	}
	return prog.Finish(n), nil
}

// history generates the historic sales, deterministically (a fixed seed),
// one at a time: nothing but the current batch's statements is held.
type history struct {
	n         int64
	rng       *rand.Rand
	products  map[int64]*lanedb.SaleProduct
	customers []*lanedb.SaleCustomer
	loc       *time.Location
	locID     int64
	laneNo    int64
	first     time.Time     // the first sale's completion
	gap       time.Duration // between completions
	ticket    int64         // the last ticket a historic presell took
}

// Staff and tablets the history names: the demo's active tellers, and
// tablet and counter keys as a lane's would be named.
const (
	historyTellers = 4
	historyTablets = 6
)

func newHistory(ctx context.Context, db *lanedb.DB, n int64) (*history, error) {
	lane, err := db.LaneInfo(ctx)
	if err != nil {
		return nil, err
	}
	loc, err := time.LoadLocation(lane.Timezone)
	if err != nil {
		return nil, fmt.Errorf("lane time zone %q: %w", lane.Timezone, err)
	}
	h := &history{
		n: n, rng: rand.New(rand.NewPCG(4, 2)), products: map[int64]*lanedb.SaleProduct{},
		loc: loc, locID: lane.Location.LocID, laneNo: lane.LaneNo,
		first: time.Now().Add(-historySpan), gap: historySpan / time.Duration(max(n, 1)),
	}
	for _, pid := range append(append([]int64{}, unitPIDs...), weighedPIDs...) {
		if h.products[pid], err = lanedb.ProductByPID(ctx, db.Read, pid); err != nil {
			return nil, fmt.Errorf("demo product %d: %w", pid, err)
		}
	}
	for cid := int64(1); cid <= demoCustomers; cid++ {
		c, err := lanedb.CustomerByCID(ctx, db.Read, cid)
		if err != nil {
			return nil, fmt.Errorf("demo customer %d: %w", cid, err)
		}
		h.customers = append(h.customers, c)
	}
	return h, nil
}

// historyStmts are one transaction's prepared INSERTs.
type historyStmts struct {
	sale, line, payment *sqlx.Stmt
}

func prepareHistory(ctx context.Context, tx *lanedb.Tx) (*historyStmts, error) {
	var st historyStmts
	for _, p := range []struct {
		dst   **sqlx.Stmt
		query string
	}{
		{&st.sale, `INSERT INTO sales (physkey, random_key, sid, phase, startdt, completeddt, completeddtutc,
			saletotal_cents, teller, cid, location, created_by, holder_key, holder_name, presell, ticket,
			ticket_word, ticket_barcode, submitted_utc, next_seqnce, updated_utc, version)
			VALUES (?, ?, ?, 1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`},
		{&st.line, `INSERT INTO sale_lines (sale_physkey, seqnce, pid, description, plu, qty,
			unitprice_cents, prediscountprice_cents, totalprice_cents, pricecause, pricecausedata)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`},
		{&st.payment, `INSERT INTO payments (sale_physkey, sequence, type, amount_cents, dt) VALUES (?, 1, ?, ?, ?)`},
	} {
		s, err := tx.PreparexContext(ctx, p.query)
		if err != nil {
			st.close()
			return nil, fmt.Errorf("prepare the history INSERTs: %w", err)
		}
		*p.dst = s
	}
	return &st, nil
}

func (st *historyStmts) close() {
	for _, s := range []*sqlx.Stmt{st.sale, st.line, st.payment} {
		if s != nil {
			s.Close()
		}
	}
}

// writeBatch writes sales from+1 … from+count (their sids) in tx; the last
// batch also writes the marker and the ticket counter.
func (h *history) writeBatch(ctx context.Context, tx *lanedb.Tx, from, count int64, last bool, prog *progress.Bar) error {
	st, err := prepareHistory(ctx, tx)
	if err != nil {
		return err
	}
	defer st.close()
	for sid := from + 1; sid <= from+count; sid++ {
		if err := h.writeSale(ctx, st, sid); err != nil {
			return err
		}
		if sid%progressStep == 0 {
			prog.Update(sid)
		}
	}
	if !last {
		return nil
	}
	return h.finishBuild(ctx, tx)
}

// finishBuild records the marker, and points the ticket counter past the
// history's last ticket, as the lane's own counter would be.
func (h *history) finishBuild(ctx context.Context, tx *lanedb.Tx) error {
	const upsert = `INSERT INTO lane_counters (name, value) VALUES (?, ?)
		ON CONFLICT (name) DO UPDATE SET value = excluded.value`
	if _, err := tx.ExecContext(ctx, upsert, "ticket_next", h.ticket%lanedb.MaxTicket+1); err != nil {
		return fmt.Errorf("set the ticket counter: %w", err)
	}
	if _, err := tx.ExecContext(ctx, upsert, historyMarker, h.n); err != nil {
		return fmt.Errorf("write the bench build marker: %w", err)
	}
	return nil
}

// writeSale writes one completed sale: 1–3 priced lines of demo products,
// a customer three times in ten, one payment of the total; three in ten
// were presells (tablet, ticket, submitted time).
func (h *history) writeSale(ctx context.Context, st *historyStmts, sid int64) error {
	done := h.first.Add(time.Duration(sid-1) * h.gap)
	started := done.Add(-time.Duration(120+h.rng.IntN(780)) * time.Second)
	physkey := uuidV7At(done, h.rng)
	var customer *lanedb.SaleCustomer
	if h.rng.IntN(100) < historyCustomerPct {
		customer = h.customers[h.rng.IntN(len(h.customers))]
	}
	lines := h.lines(physkey, customer)
	var total int64
	for i := range lines {
		total += lines[i].TotalPriceCents
	}
	if err := h.insertSale(ctx, st, sid, physkey, started, done, total, customer, len(lines)); err != nil {
		return err
	}
	for i := range lines {
		l := &lines[i]
		if _, err := st.line.ExecContext(ctx, l.SalePhyskey, l.Seqnce, l.PID, l.Description, l.PLU, l.Qty,
			l.UnitPriceCents, l.PrediscountPriceCents, l.TotalPriceCents, l.PriceCause, l.PriceCauseData); err != nil {
			return fmt.Errorf("insert line %d of sale %d: %w", l.Seqnce, sid, err)
		}
	}
	payType := 1 + h.rng.IntN(2) // the demo's cash (1) or eftpos (2)
	if _, err := st.payment.ExecContext(ctx, physkey, payType, total, done.In(h.loc).Format(lanedb.DateTime)); err != nil {
		return fmt.Errorf("insert payment of sale %d: %w", sid, err)
	}
	return nil
}

// lines rings up 1–3 lines, priced as the lane prices them.
func (h *history) lines(physkey string, customer *lanedb.SaleCustomer) []lanedb.Line {
	lines := make([]lanedb.Line, 1+h.rng.IntN(3))
	for i := range lines {
		c := pickLine(h.rng)
		p := h.products[c.PID]
		lines[i] = lanedb.Line{
			SalePhyskey: physkey, Seqnce: int64(i + 1), PID: p.PID, Description: p.Description,
			PLU: p.PLU.String, Qty: c.Qty, UnitPriceCents: p.PriceCents, Measurement: p.Measurement,
		}
		priceLine(&lines[i], customer)
	}
	return lines
}

// insertSale writes the sale row.
func (h *history) insertSale(ctx context.Context, st *historyStmts, sid int64, physkey string, started, done time.Time,
	total int64, customer *lanedb.SaleCustomer, lines int) error {
	var cid any
	if customer != nil {
		cid = customer.CID
	}
	createdBy := fmt.Sprintf("counter-%d", 1+h.rng.IntN(2))
	presell := h.rng.IntN(100) < historyPresellPct
	var ticket, word, barcode, submitted any
	if presell {
		h.ticket = h.ticket%lanedb.MaxTicket + 1
		createdBy = fmt.Sprintf("tablet-%02d", 1+h.rng.IntN(historyTablets))
		ticket, word = h.ticket, fmt.Sprintf("ticket-%04d", h.ticket)
		barcode = fmt.Sprintf("GL%02d%04d%.4s", h.laneNo%100, h.ticket, physkey[len(physkey)-4:])
		submitted = started.Add(time.Minute).UTC().Format(lanedb.DateTime)
	}
	holder := fmt.Sprintf("counter-%d", 1+h.rng.IntN(2)) // who completed it
	_, err := st.sale.ExecContext(ctx, physkey, randomUUID(h.rng), sid,
		started.In(h.loc).Format(lanedb.DateTime), done.In(h.loc).Format(lanedb.DateTime), done.UTC().Format(lanedb.DateTime),
		total, 1+h.rng.IntN(historyTellers), cid, h.locID, createdBy, holder, holder, presell, ticket,
		word, barcode, submitted, lines+1, done.UTC().Format(lanedb.StampLayout), 4+h.rng.IntN(8))
	if err != nil {
		return fmt.Errorf("insert sale %d: %w", sid, err)
	}
	return nil
}

// uuidV7At is a version 7 UUID for time t, as the lane gives a sale's
// physkey, but for a time in the past: the history's physkeys then ascend
// with the sales, as the lane's own do, and go in at the end of the index.
func uuidV7At(t time.Time, rng *rand.Rand) string {
	var u uuid.UUID
	ms := uint64(t.UnixMilli())
	for i := range 6 {
		u[i] = byte(ms >> (40 - 8*i))
	}
	fillRandom(u[6:], rng)
	u[6] = 0x70 | u[6]&0x0f // version 7
	u[8] = 0x80 | u[8]&0x3f // RFC 4122 variant
	return u.String()
}

// randomUUID is a version 4 UUID from rng (the sale's random_key).
func randomUUID(rng *rand.Rand) string {
	var u uuid.UUID
	fillRandom(u[:], rng)
	u[6] = 0x40 | u[6]&0x0f
	u[8] = 0x80 | u[8]&0x3f
	return u.String()
}

func fillRandom(b []byte, rng *rand.Rand) {
	for i := 0; i < len(b); i += 8 {
		v := rng.Uint64()
		for j := i; j < min(i+8, len(b)); j++ {
			b[j] = byte(v)
			v >>= 8
		}
	}
}
