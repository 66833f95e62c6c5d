package lanedb

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestJournalQueriesSearchNotScan: the firehose reads the journal after
// every commit; none of its queries may walk the whole journal (100,000
// rows by default), only search its key.
func TestJournalQueriesSearchNotScan(t *testing.T) {
	db := openTemp(t)
	ctx := context.Background()
	tests := []struct {
		name  string
		query string
		args  []any
	}{
		{"bounds", qJournalBounds, nil},
		{"after", qJournalAfter, []any{10, 500}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			steps, err := db.ExplainQueryPlan(ctx, tt.query, tt.args...)
			if err != nil {
				t.Fatal(err)
			}
			var plan []string
			for _, s := range steps {
				plan = append(plan, s.Detail)
			}
			p := strings.Join(plan, "; ")
			if strings.Contains(p, "SCAN journal") || !strings.Contains(p, "SEARCH journal") {
				t.Fatalf("plan walks the journal: %s", p)
			}
		})
	}
	// And the bounds are still right.
	w := db.NewWriter(WriterOptions{})
	defer w.Close()
	err := w.Do(ctx, func(ctx context.Context, tx *Tx) error {
		for range 3 {
			if err := Journal(ctx, tx, time.Now(), "presell", "created", "pk", "t", nil); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	oldest, newest, err := JournalBounds(ctx, db.Read)
	if err != nil || oldest != 1 || newest != 3 {
		t.Fatalf("JournalBounds = %d, %d, %v; want 1, 3", oldest, newest, err)
	}
}

// TestJournalByteCutoff: the byte bound keeps the newest entries whose
// details fit, and trimming through the cutoff deletes the rest, oldest
// first, in batches.
func TestJournalByteCutoff(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) { testJournalByteCutoff(t, be.open(t)) })
	}
}

func testJournalByteCutoff(t *testing.T, db *DB) {
	ctx := context.Background()
	// Ten entries of about 10 KB each (the last two are small); random
	// text, so that PostgreSQL cannot compress it below its length.
	err := db.WriteTx(ctx, func(tx *Tx) error {
		for i := range 10 {
			detail := map[string]string{"pad": randomText(10_000)}
			if i >= 8 {
				detail = map[string]string{"pad": "small"}
			}
			if err := Journal(ctx, tx, time.Now(), "sale", "lines.add", "pk", "t", detail); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		max  int64
		want int64 // the cutoff seq
	}{
		{1 << 20, 0}, // all fit
		{100_000, 0}, // all fit: 8 × ~10 KB and two small
		{35_000, 5},  // entries 6 to 10 fit (three big, two small)
		{20_000, 7},  // 8, 9 and 10 fit
		{100, 8},     // only the two small ones fit
		{1, 10},      // nothing fits
	}
	for _, tt := range tests {
		got, err := JournalByteCutoff(ctx, db.Read, tt.max)
		if err != nil || got != tt.want {
			t.Errorf("JournalByteCutoff(%d) = %d, %v; want %d", tt.max, got, err, tt.want)
		}
	}
	trim := func(through int64) int64 {
		t.Helper()
		var n int64
		if err := db.WriteTx(ctx, func(tx *Tx) (err error) { n, err = TrimJournalThrough(ctx, tx, through, 3); return err }); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := trim(7); n != 3 {
		t.Fatalf("the first batch deleted %d, want 3 (the batch)", n)
	}
	if n := trim(7); n != 3 {
		t.Fatalf("the second batch deleted %d, want 3", n)
	}
	if n := trim(7); n != 1 {
		t.Fatalf("the last batch deleted %d, want 1", n)
	}
	if oldest, newest, err := JournalBounds(ctx, db.Read); err != nil || oldest != 8 || newest != 10 {
		t.Fatalf("journal after the trim: %d to %d (%v), want 8 to 10", oldest, newest, err)
	}
}

// randomText is n characters of random base64: text that neither SQLite
// nor PostgreSQL's TOAST compression stores in fewer bytes.
func randomText(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)[:n]
}

// TestOnJournalTellsWhatCommitted: the rows told after COMMIT are the rows
// a read of the journal returns, field for field and in order; those of a
// change that failed after writing (its batch starts over with savepoints)
// and of a transaction rolled back are not told.
func TestOnJournalTellsWhatCommitted(t *testing.T) {
	db := openTemp(t)
	ctx := context.Background()
	var mu sync.Mutex
	var told []JournalEntry
	if !db.OnJournal(func(rows []JournalEntry) {
		mu.Lock()
		told = append(told, rows...)
		mu.Unlock()
	}) {
		t.Fatal("OnJournal refused an SQLite lane DB")
	}
	w := db.NewWriter(WriterOptions{MaxWait: 50 * time.Millisecond, MaxBatch: 64})
	defer w.Close()
	errFailed := errors.New("refused after writing")
	var wg sync.WaitGroup
	for i := range 24 {
		wg.Go(func() {
			err := w.Do(ctx, func(ctx context.Context, tx *Tx) error {
				for n := range 1 + i%3 {
					if err := Journal(ctx, tx, time.Now(), "custdisp", "sale.status", fmt.Sprintf("pk-%d", i), "t", map[string]int{"n": n}); err != nil {
						return err
					}
				}
				if i%4 == 1 {
					return errFailed
				}
				return nil
			})
			if (err != nil) != (i%4 == 1) {
				t.Errorf("change %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	rolledBack := db.WriteTx(ctx, func(tx *Tx) error {
		if err := Journal(ctx, tx, time.Now(), "presell", "created", "pk-gone", "t", nil); err != nil {
			return err
		}
		return errFailed
	})
	if !errors.Is(rolledBack, errFailed) {
		t.Fatalf("WriteTx = %v", rolledBack)
	}
	if err := db.WriteTx(ctx, func(tx *Tx) error {
		return Journal(ctx, tx, time.Now(), "presell", "created", "pk-last", "t", nil)
	}); err != nil {
		t.Fatal(err)
	}
	read, err := JournalAfter(ctx, db.Read, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(read) != 36+1 || !slices.Equal(told, read) { // 48 rows in 24 changes, 12 of them in the 6 failed
		t.Fatalf("told %d rows, the journal holds %d:\ntold %+v\nread %+v", len(told), len(read), told, read)
	}
	if w.Stats().Reruns.Load() == 0 {
		t.Fatal("no batch started over: the failed changes were not batched with others")
	}
	db.OnJournal(nil)
	if err := db.WriteTx(ctx, func(tx *Tx) error {
		return Journal(ctx, tx, time.Now(), "presell", "created", "pk-untold", "t", nil)
	}); err != nil {
		t.Fatal(err)
	}
	if len(told) != len(read) {
		t.Fatalf("%d rows told after OnJournal(nil)", len(told)-len(read))
	}
}
