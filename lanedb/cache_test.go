package lanedb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
)

// cacheLane is a lane DB with what sales need: products, a customer, a
// payment type, and a few open sales.
type cacheLane struct {
	db    *DB
	w     *Writer
	sales []string
	other *sql.DB // another process's connection: the counter program
}

func newCacheLane(t *testing.T) *cacheLane {
	t.Helper()
	db := openTemp(t)
	ctx := context.Background()
	err := db.WriteTx(ctx, func(tx *Tx) error {
		for _, q := range []string{
			`INSERT INTO products (pid, physkey, description, plu, price_cents, measurement) VALUES (1, 'p1', 'Tea', '100', 250, 0), (2, 'p2', 'Ham', '200', 1200, 1), (3, 'p3', 'Bun', '300', 90, 0)`,
			`INSERT INTO customers (cid, physkey, name, discount_bps) VALUES (1, 'c1', 'Ann', 500), (2, 'c2', 'Bo', 0)`,
			`INSERT INTO payment_types (code, globalcode, typestr) VALUES (1, 1, 'Cash'), (3, 3, 'Eftpos')`,
		} {
			if _, err := tx.ExecContext(ctx, q); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	l := &cacheLane{db: db, w: db.NewWriter(WriterOptions{MaxWait: 2 * time.Millisecond, MaxBatch: 64})}
	t.Cleanup(l.w.Close)
	for i := range 4 {
		s := &Sale{Physkey: fmt.Sprintf("sale-%d", i), RandomKey: fmt.Sprintf("rk-%d", i), StartDT: "2026-12-06 10:00:00",
			CreatedBy: "tab", HolderKey: "k1", HolderName: "tab", NextSeqnce: 1, UpdatedUTC: "2026-12-06 10:00:00.000000",
			Presell: i == 3, Phase: map[bool]int{true: PhaseParked, false: PhaseActive}[i == 3]}
		if err := l.w.Do(ctx, func(ctx context.Context, tx *Tx) error { return InsertSale(ctx, tx, s) }); err != nil {
			t.Fatal(err)
		}
		l.sales = append(l.sales, s.Physkey)
	}
	l.other, err = sql.Open("sqlite", fileURI(db.Path)+"?"+url.Values{"_pragma": {"busy_timeout(10000)"}}.Encode())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.other.Close() })
	return l
}

// addLine is a change as the sales core makes one: read the sale, its
// lines and the product, write a line and the sale row.
func addLine(physkey string, pid int64) Mutation {
	return func(ctx context.Context, tx *Tx) error {
		s, err := GetSale(ctx, tx, physkey)
		if err != nil {
			return err
		}
		lines, err := SaleLines(ctx, tx, physkey)
		if err != nil {
			return err
		}
		p, err := ProductByPID(ctx, tx, pid)
		if err != nil {
			return err
		}
		l := &Line{SalePhyskey: physkey, Seqnce: s.NextSeqnce, PID: p.PID, Description: p.Description, Qty: 1,
			UnitPriceCents: p.PriceCents, PrediscountPriceCents: p.PriceCents, TotalPriceCents: p.PriceCents, Measurement: p.Measurement}
		if err := InsertLine(ctx, tx, l); err != nil {
			return err
		}
		s.NextSeqnce++
		s.SaleTotalCents = l.TotalPriceCents
		for _, old := range lines {
			s.SaleTotalCents += old.TotalPriceCents
		}
		return UpdateSale(ctx, tx, s)
	}
}

// step makes one random change to the lane: through the writer (ok,
// failing after its writes, writing what the cache cannot follow), or from
// the other connection.
func (l *cacheLane) step(t *testing.T, rng *rand.Rand) string {
	ctx := context.Background()
	physkey := l.sales[rng.IntN(len(l.sales))]
	do := func(fn Mutation) error { return l.w.Do(ctx, fn) }
	switch op := rng.IntN(13); op {
	case 12:
		// A change that clears the claim and then saves the sale as it
		// read it: the row in memory is no longer the row in the file.
		_ = do(func(ctx context.Context, tx *Tx) error {
			s, err := GetSale(ctx, tx, l.sales[3])
			if err != nil {
				return err
			}
			if err := ClearClaim(ctx, tx, s.Physkey); err != nil {
				return err
			}
			return UpdateSale(ctx, tx, s)
		})
		return "clear the claim, save the sale as read"
	case 11:
		// A counter claims the presell and gives it back: statements the
		// cache does not follow column by column.
		_ = do(func(ctx context.Context, tx *Tx) error {
			s, err := GetSale(ctx, tx, l.sales[3])
			if err != nil {
				return err
			}
			now := time.Now()
			ok, err := ClaimPresell(ctx, tx, Claim{Physkey: s.Physkey, Version: s.Version, Session: "counter-1",
				KeyID: "k2", KeyName: "till", Now: now, Stamp: "2026-12-06 10:00:01.000000", Lease: time.Minute})
			if err != nil || !ok || rng.IntN(2) == 0 {
				return err // claimed (or not claimable): the next step sees it
			}
			_, err = ReleaseClaim(ctx, tx, s.Physkey, "counter-1", now, "2026-12-06 10:00:02.000000")
			return err
		})
		return "claim, maybe release"
	case 0, 1:
		_ = do(addLine(physkey, int64(1+rng.IntN(3))))
		return "add line"
	case 2:
		_ = do(func(ctx context.Context, tx *Tx) error {
			lines, err := SaleLines(ctx, tx, physkey)
			if err != nil || len(lines) == 0 {
				return err
			}
			ln := lines[rng.IntN(len(lines))]
			ln.Qty++
			ln.TotalPriceCents = ln.Qty * ln.UnitPriceCents
			return UpdateLine(ctx, tx, &ln)
		})
		return "edit line"
	case 3:
		_ = do(func(ctx context.Context, tx *Tx) error {
			lines, err := SaleLines(ctx, tx, physkey)
			if err != nil || len(lines) == 0 {
				return err
			}
			return DeleteLine(ctx, tx, physkey, lines[rng.IntN(len(lines))].Seqnce)
		})
		return "delete line"
	case 4:
		_ = do(func(ctx context.Context, tx *Tx) error {
			if _, err := CustomerByCID(ctx, tx, 1); err != nil {
				return err
			}
			return InsertPayment(ctx, tx, &Payment{SalePhyskey: physkey, Type: 1, AmountCents: 100, DT: "2026-12-06 10:00:00"})
		})
		return "add payment"
	case 5:
		_ = do(func(ctx context.Context, tx *Tx) error {
			pays, err := SalePayments(ctx, tx, physkey)
			if err != nil || len(pays) == 0 {
				return err
			}
			_, err = ReversePayment(ctx, tx, physkey, pays[0].Sequence)
			return err
		})
		return "reverse payment"
	case 6:
		err := do(func(ctx context.Context, tx *Tx) error {
			if err := addLine(physkey, 2)(ctx, tx); err != nil {
				return err
			}
			return errors.New("refused after writing")
		})
		if err == nil {
			t.Fatal("a failing change succeeded")
		}
		return "add line, then fail"
	case 7:
		// Two changes to one sale in one change: the second must read the
		// first's lines, not the cache's.
		_ = do(func(ctx context.Context, tx *Tx) error {
			before, err := SaleLines(ctx, tx, physkey)
			if err != nil {
				return err
			}
			if err := addLine(physkey, 3)(ctx, tx); err != nil {
				return err
			}
			after, err := SaleLines(ctx, tx, physkey)
			if err != nil {
				return err
			}
			if len(after) != len(before)+1 {
				t.Errorf("inside the change: %d lines after adding one to %d", len(after), len(before))
			}
			return ClearClaim(ctx, tx, physkey)
		})
		return "add line, read it back, clear claim"
	case 8:
		_ = do(func(ctx context.Context, tx *Tx) error {
			_, err := tx.ExecContext(ctx, `UPDATE products SET price_cents = price_cents + 7 WHERE pid = 1`)
			return err
		})
		return "reprice through the writer"
	case 9:
		if _, err := l.other.ExecContext(ctx, `UPDATE sales SET saletotal_cents = saletotal_cents + 1, version = version + 1 WHERE physkey = ?`, physkey); err != nil {
			t.Fatal(err)
		}
		return "counter process changes the sale"
	default:
		if _, err := l.other.ExecContext(ctx, `UPDATE customers SET discount_bps = (discount_bps + 100) % 10000 WHERE cid = 1`); err != nil {
			t.Fatal(err)
		}
		if _, err := l.other.ExecContext(ctx, `DELETE FROM sale_lines WHERE sale_physkey = ? AND seqnce = (SELECT MIN(seqnce) FROM sale_lines WHERE sale_physkey = ?)`, physkey, physkey); err != nil {
			t.Fatal(err)
		}
		return "counter process drops a line, changes a discount"
	}
}

// seen is everything the cache may answer about one sale and the catalog.
type seen struct {
	Sale     *Sale
	Lines    []Line
	Payments []Payment
	Count    int
	Paid     int64
	Product  *SaleProduct
	Customer *SaleCustomer
}

func (v seen) String() string {
	return fmt.Sprintf("sale %+v\nlines %+v\npayments %+v\ncount %d paid %d\nproduct %+v\ncustomer %+v",
		*v.Sale, v.Lines, v.Payments, v.Count, v.Paid, *v.Product, *v.Customer)
}

func look(ctx context.Context, q sqlx.QueryerContext, physkey string) (seen, error) {
	var v seen
	var err error
	if v.Sale, err = GetSale(ctx, q, physkey); err != nil {
		return v, err
	}
	if v.Lines, err = SaleLines(ctx, q, physkey); err != nil {
		return v, err
	}
	if v.Payments, err = SalePayments(ctx, q, physkey); err != nil {
		return v, err
	}
	if v.Count, err = LineCount(ctx, q, physkey); err != nil {
		return v, err
	}
	if v.Paid, err = PaidCents(ctx, q, physkey); err != nil {
		return v, err
	}
	if v.Product, err = ProductByPID(ctx, q, 1); err != nil {
		return v, err
	}
	v.Customer, err = CustomerByCID(ctx, q, 1)
	return v, err
}

// TestWriteCacheAnswersWhatTheDatabaseHolds makes random changes through
// the writer (some failing after they wrote, some writing what the cache
// cannot follow) and from another connection, and after each compares
// what the writer reads (from its cache where it can) with what the read
// pool reads from the file.
func TestWriteCacheAnswersWhatTheDatabaseHolds(t *testing.T) {
	for seed := range uint64(3) {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) {
			l := newCacheLane(t)
			rng := rand.New(rand.NewPCG(seed, 7))
			ctx := context.Background()
			for i := range 200 {
				what := l.step(t, rng)
				for _, physkey := range l.sales {
					var cached seen
					err := l.w.Do(ctx, func(ctx context.Context, tx *Tx) error {
						var err error
						cached, err = look(ctx, tx, physkey)
						return err
					})
					if err != nil {
						t.Fatal(err)
					}
					file, err := look(ctx, l.db.Read, physkey)
					if err != nil {
						t.Fatal(err)
					}
					if !reflect.DeepEqual(cached, file) {
						t.Fatalf("step %d (%s), sale %s: the writer read\n%s\nthe file holds\n%s", i, what, physkey, cached, file)
					}
				}
			}
		})
	}
}

// TestWriteCacheSavesReads: a second change to a sale reads nothing the
// first one wrote or read.
func TestWriteCacheSavesReads(t *testing.T) {
	l := newCacheLane(t)
	ctx := context.Background()
	physkey := l.sales[0]
	statements := func(fn Mutation) int64 {
		before := l.w.Stats().Snapshot()
		if err := l.w.Do(ctx, fn); err != nil {
			t.Fatal(err)
		}
		return l.w.Stats().Snapshot().Sub(before).Statements
	}
	forget := func() { // another process writes: the writer trusts nothing it kept
		t.Helper()
		if _, err := l.other.ExecContext(ctx, `UPDATE products SET shortname = shortname || 'x' WHERE pid = 2`); err != nil {
			t.Fatal(err)
		}
	}
	forget()
	first := statements(addLine(physkey, 1))
	second := statements(addLine(physkey, 1))
	// The first reads the sale, its lines and the product (3) and writes a
	// line and the sale (2); the second only writes.
	if first != 5 || second != 2 {
		t.Errorf("statements: first change %d, second %d; want 5 and 2", first, second)
	}
	forget()
	if third := statements(addLine(physkey, 1)); third != 5 {
		t.Errorf("after another process wrote, a change made %d statements; want 5 (everything read again)", third)
	}
}

// TestWriteCacheDropsSalesNotWorkedOn: a sale parked or closed leaves the
// cache, so that such sales take no room (nor memory) from those being
// built (a full cache starts over).
func TestWriteCacheDropsSalesNotWorkedOn(t *testing.T) {
	for _, phase := range []int{PhaseParked, PhaseVoid, PhaseCompleted} {
		t.Run(fmt.Sprint("phase ", phase), func(t *testing.T) {
			l := newCacheLane(t)
			ctx := context.Background()
			physkey := l.sales[0]
			cached := func() bool {
				l.db.cache.mu.Lock()
				defer l.db.cache.mu.Unlock()
				_, ok := l.db.cache.sales[physkey]
				return ok
			}
			if err := l.w.Do(ctx, addLine(physkey, 1)); err != nil {
				t.Fatal(err)
			}
			if !cached() {
				t.Fatal("a sale just changed is not in the cache")
			}
			err := l.w.Do(ctx, func(ctx context.Context, tx *Tx) error {
				s, err := GetSale(ctx, tx, physkey)
				if err != nil {
					return err
				}
				s.Phase = phase
				return UpdateSale(ctx, tx, s)
			})
			if err != nil {
				t.Fatal(err)
			}
			if cached() {
				t.Errorf("a sale in phase %d still has an entry in the writer's cache", phase)
			}
			// Read again in a later transaction, it is not kept either.
			if err := l.w.Do(ctx, func(ctx context.Context, tx *Tx) error { _, err := GetSale(ctx, tx, physkey); return err }); err != nil {
				t.Fatal(err)
			}
			if cached() {
				t.Errorf("a sale in phase %d read by the writer was put in its cache", phase)
			}
		})
	}
}

// TestWriteCacheIsSafeForConcurrentBatches runs many changes at once (the
// race detector watches the cache) and checks the totals.
func TestWriteCacheIsSafeForConcurrentBatches(t *testing.T) {
	l := newCacheLane(t)
	ctx := context.Background()
	w := l.w
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := w.Do(ctx, addLine(l.sales[i%len(l.sales)], 3)); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	for _, physkey := range l.sales {
		var n int
		if err := l.db.Read.GetContext(ctx, &n, `SELECT COUNT(*) FROM sale_lines WHERE sale_physkey = ?`, physkey); err != nil {
			t.Fatal(err)
		}
		if n != 10 {
			t.Errorf("sale %s has %d lines, want 10", physkey, n)
		}
	}
}

// TestUpdateSaleWritesWhatChanged: whichever columns a change sets, the
// row in the file is the sale as the caller left it, whether UpdateSale
// wrote only the totals or named in SET just the indexed columns that
// changed.
func TestUpdateSaleWritesWhatChanged(t *testing.T) {
	l := newCacheLane(t)
	ctx := context.Background()
	for i, c := range []struct {
		name    string
		change  func(s *Sale)
		narrow  bool
		indexed []string // the saleIndexed columns its UPDATE names
	}{
		{"total and seqnce", func(s *Sale) { s.SaleTotalCents += 250; s.NextSeqnce++ }, true, nil},
		{"lease", func(s *Sale) { s.ClaimState.ExpiresMS = sql.NullInt64{Int64: 99, Valid: true} }, true, nil},
		{"customer", func(s *Sale) { s.CID = sql.NullInt64{Int64: 1, Valid: true}; s.SaleTotalCents++ }, false, []string{"cid"}},
		{"phase", func(s *Sale) { s.Phase = PhaseParked }, false, []string{"phase"}},
		{"holder", func(s *Sale) { s.HolderKey, s.HolderName = "k9", "till" }, false, []string{"holder_key"}},
		{"ticket", func(s *Sale) { s.Ticket = sql.NullInt64{Int64: 42, Valid: true} }, false, []string{"ticket"}},
		{"ticket and phase", func(s *Sale) { // sales[0] is parked by "phase"
			s.Phase = PhaseActive
			s.Ticket, s.TicketWord = sql.NullInt64{Int64: 43, Valid: true}, sql.NullString{String: "OAK", Valid: true}
			s.TicketBarcode = sql.NullString{String: "GL0043", Valid: true}
			s.SubmittedUTC = sql.NullString{String: "2026-12-06 11:00:00.000000", Valid: true}
		}, false, []string{"phase", "ticket", "ticket_barcode", "submitted_utc"}},
		{"unindexed only", func(s *Sale) {
			s.SID, s.TicketWord = sql.NullInt64{Int64: 7, Valid: true}, sql.NullString{String: "ELM", Valid: true}
			s.VoidedBy = sql.NullString{String: "nobody", Valid: true}
		}, false, nil},
		{"not read", func(s *Sale) { s.read = nil; s.SaleTotalCents++ }, false,
			[]string{"phase", "cid", "holder_key", "ticket", "ticket_barcode", "submitted_utc"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			physkey := l.sales[i%3]
			var want Sale
			err := l.w.Do(ctx, func(ctx context.Context, tx *Tx) error {
				s, err := GetSale(ctx, tx, physkey)
				if err != nil {
					return err
				}
				c.change(s)
				s.UpdatedUTC = fmt.Sprintf("2026-12-06 11:00:%02d.000000", i)
				if got := s.totalsOnly(); got != c.narrow {
					t.Errorf("totalsOnly = %v, want %v", got, c.narrow)
				}
				if !c.narrow {
					query, _ := s.updateStatement()
					var named []string
					for _, ix := range saleIndexed {
						if strings.Contains(query, " "+ix.column+" = ?") {
							named = append(named, ix.column)
						}
					}
					if !slices.Equal(named, c.indexed) {
						t.Errorf("the UPDATE names the indexed columns %v, want %v", named, c.indexed)
					}
				}
				if err := UpdateSale(ctx, tx, s); err != nil {
					return err
				}
				want = *s
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			got, err := GetSale(ctx, l.db.Read, physkey)
			if err != nil {
				t.Fatal(err)
			}
			got.read, want.read = nil, nil
			if *got != want {
				t.Errorf("the file holds\n%+v\nwant\n%+v", *got, want)
			}
		})
	}
}
