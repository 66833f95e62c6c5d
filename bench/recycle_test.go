package bench

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/greenlane-pos/greenlane/fixtures"
	"github.com/greenlane-pos/greenlane/lanedb"
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
