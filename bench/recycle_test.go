package bench

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/greenlane-pos/greenlane/fixtures"
	"github.com/greenlane-pos/greenlane/lanedb"
	"github.com/greenlane-pos/greenlane/protocol"
)

// TestVoidPresellsKeepsTheNewest: the recycler voids the oldest submitted
// presells beyond the ones it keeps, and writes nothing at or below them.
func TestVoidPresellsKeepsTheNewest(t *testing.T) {
	ctx := context.Background()
	db, _, err := openPhaseDB(ctx, filepath.Join(t.TempDir(), "bench"), "void")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := fixtures.Generate(ctx, db, fixtures.GenerateOptions{Sales: 40, OntoStore: true, PresellPercent: 100, Seed: 7}); err != nil {
		t.Fatal(err)
	}
	// The generated presells were completed: submit them again, each a
	// second apart, so that "newest" is plain.
	get := func(dest any, query string, args ...any) error {
		return db.WriteTx(ctx, func(tx *lanedb.Tx) error { return tx.GetContext(ctx, dest, query, args...) })
	}
	if _, err := db.Exec(ctx, `UPDATE sales SET phase = 5,
		submitted_utc = datetime('2026-01-01', '+' || (SELECT COUNT(*) FROM sales s
			WHERE s.physkey <= sales.physkey) || ' seconds') WHERE presell = 1`); err != nil {
		t.Fatal(err)
	}
	open := func() (n int, oldest string) {
		t.Helper()
		if err := get(&n, `SELECT COUNT(*) FROM sales WHERE presell = 1 AND phase = 5`); err != nil {
			t.Fatal(err)
		}
		if err := get(&oldest, `SELECT COALESCE(MIN(submitted_utc), '') FROM sales WHERE presell = 1 AND phase = 5`); err != nil {
			t.Fatal(err)
		}
		return n, oldest
	}
	all, _ := open()
	if all != 40 {
		t.Fatalf("%d submitted presells, want 40", all)
	}
	var newest30 string
	if err := get(&newest30, `SELECT submitted_utc FROM sales WHERE presell = 1
		ORDER BY submitted_utc DESC LIMIT 1 OFFSET 29`); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		keep       int
		voided     int64
		left       int
		leftOldest string
	}{
		{keep: 50, voided: 0, left: 40},
		{keep: 40, voided: 0, left: 40},
		{keep: 30, voided: 10, left: 30, leftOldest: newest30},
		{keep: 0, voided: 30, left: 0, leftOldest: ""},
	} {
		n, err := voidPresells(ctx, directWrite(db), "test", "(5)", tt.keep)
		if err != nil {
			t.Fatalf("keep %d: %v", tt.keep, err)
		}
		left, oldest := open()
		if n != tt.voided || left != tt.left || (tt.leftOldest != "" || tt.left == 0) && oldest != tt.leftOldest {
			t.Errorf("keep %d: voided %d, %d left from %q; want %d voided, %d left from %q", tt.keep, n, left, oldest, tt.voided, tt.left, tt.leftOldest)
		}
	}
	var voided int
	if err := get(&voided, `SELECT COUNT(*) FROM sales WHERE phase = ? AND voided_by = 'test'`, lanedb.PhaseVoid); err != nil || voided != 40 {
		t.Errorf("%d sales voided by the test (%v), want 40", voided, err)
	}
}

// TestRecyclerKeepsTheWriterCache: beside a lane, the recycler voids the
// submitted presells beyond the newest it keeps, and leaves the writer's
// cache whole: a change to an open sale after it costs no more statements
// than before it. On a store database (no write cache) it voids alike.
func TestRecyclerKeepsTheWriterCache(t *testing.T) {
	for _, store := range []string{"sqlite", "postgres"} {
		t.Run(store, func(t *testing.T) {
			prefix := filepath.Join(t.TempDir(), "bench")
			if store == "postgres" {
				prefix = storeDB(t)
			}
			testRecycler(t, prefix)
		})
	}
}

func testRecycler(t *testing.T, prefix string) {
	ctx := context.Background()
	db, where, err := openPhaseDB(ctx, prefix, "recycle")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	key, err := freshKey(ctx, db, "bench-recycle-tablet", protocol.ScopePresell)
	if err != nil {
		t.Fatal(err)
	}
	l, err := startLane(ctx, db, where, laneOptions{groupWait: defaultWait, log: serverLog(nil)})
	if err != nil {
		t.Fatal(err)
	}
	defer l.stop()
	stats := &loadStats{}
	tablets := localTablets(ctx, l, []string{key.key}, stats, coreTablet)
	if len(tablets) != 1 {
		t.Fatalf("no tablet: %s", stats.Errs.example())
	}
	tab := tablets[0]
	for range 12 {
		if ok, err := tab.sale(saleShape{lines: 1}); !ok || err != nil {
			t.Fatalf("sale: %v %s", err, stats.Errs.example())
		}
	}
	open, ok, err := tab.do(kindCreate, "", struct{}{})
	if !ok || err != nil {
		t.Fatalf("create: %v %s", err, stats.Errs.example())
	}
	// statementsOfALine is what one add_product to the open sale costs
	// the writer, taken when it ran alone in its batch.
	statementsOfALine := func() int64 {
		t.Helper()
		for range 5 {
			w := l.Writer.Stats()
			before, mutations := w.Statements.Load(), w.Mutations.Load()
			if _, ok, err := tab.do(kindAddProduct, open, lineChoice{PID: 1001, Qty: 1}); !ok || err != nil {
				t.Fatalf("add_product: %v %s", err, stats.Errs.example())
			}
			if w.Mutations.Load() == mutations+1 {
				return w.Statements.Load() - before
			}
		}
		t.Fatal("another writer job ran beside every add_product")
		return 0
	}
	statementsOfALine() // the product and the lines are read once
	warm := statementsOfALine()
	r := &recycler{l: l, keep: 5}
	if err := r.once(ctx); err != nil {
		t.Fatal(err)
	}
	if n := r.n.Load(); n != 7 {
		t.Errorf("recycled %d presells, want 7 (12 submitted, 5 kept)", n)
	}
	if after := statementsOfALine(); after != warm {
		t.Errorf("an add_product after recycling made %d statements, before it %d: the recycler emptied the writer's cache", after, warm)
	}
	var parked, voided int
	if err := db.Read.GetContext(ctx, &parked, `SELECT COUNT(*) FROM sales WHERE presell = 1 AND phase = 5`); err != nil {
		t.Fatal(err)
	}
	if err := db.Read.GetContext(ctx, &voided, `SELECT COUNT(*) FROM sales WHERE phase = ? AND voided_by = ?
		AND voided_utc IS NOT NULL`, lanedb.PhaseVoid, recyclerName); err != nil {
		t.Fatal(err)
	}
	if parked != 5 || voided != 7 {
		t.Errorf("%d presells left submitted, %d voided by the recycler; want 5 and 7", parked, voided)
	}
	// The newest are kept: every voided one was submitted no later than
	// every kept one.
	var newestVoided, oldestKept string
	if err := db.Read.GetContext(ctx, &newestVoided, `SELECT MAX(submitted_utc) FROM sales WHERE phase = 10000`); err != nil {
		t.Fatal(err)
	}
	if err := db.Read.GetContext(ctx, &oldestKept, `SELECT MIN(submitted_utc) FROM sales WHERE presell = 1 AND phase = 5`); err != nil {
		t.Fatal(err)
	}
	if newestVoided > oldestKept {
		t.Errorf("a presell submitted at %s was voided while one submitted at %s was kept", newestVoided, oldestKept)
	}
}
