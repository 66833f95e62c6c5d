package lanedb

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

func insertStaff(tid int) Mutation {
	return func(ctx context.Context, tx *Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO staff (tid, physkey, name) VALUES (?, ?, ?)`, tid, fmt.Sprint("k", tid), "s")
		return err
	}
}

func staffCount(t *testing.T, db *DB) int {
	t.Helper()
	var n int
	if err := db.r.Get(&n, `SELECT COUNT(*) FROM staff`); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestWriterGroupCommit(t *testing.T) {
	for _, wait := range []time.Duration{0, 20 * time.Millisecond} {
		t.Run(fmt.Sprint("wait=", wait), func(t *testing.T) {
			db := openTemp(t)
			w := db.NewWriter(WriterOptions{MaxWait: wait, MaxBatch: 64})
			defer w.Close()
			ctx := context.Background()
			var wg sync.WaitGroup
			errs := make([]error, 40)
			for i := range errs {
				wg.Add(1)
				go func(i int) {
					defer wg.Done()
					fn := insertStaff(i + 1)
					if i%5 == 0 {
						// Writes, then fails: only its own row must vanish.
						inner := fn
						fn = func(ctx context.Context, tx *Tx) error {
							if err := inner(ctx, tx); err != nil {
								return err
							}
							return errors.New("refused")
						}
					}
					errs[i] = w.Do(ctx, fn)
				}(i)
			}
			wg.Wait()
			for i, err := range errs {
				if (i%5 == 0) != (err != nil) {
					t.Errorf("job %d: err = %v", i, err)
				}
			}
			if got := staffCount(t, db); got != 32 {
				t.Errorf("%d rows committed, want 32", got)
			}
			if wait > 0 && w.Stats().Batches.Load() >= w.Stats().Mutations.Load() {
				t.Errorf("no batching: %d batches for %d mutations", w.Stats().Batches.Load(), w.Stats().Mutations.Load())
			}
		})
	}
}

func TestWriterAnswersOnlyAfterCommit(t *testing.T) {
	db := openTemp(t)
	w := db.NewWriter(WriterOptions{MaxWait: 5 * time.Millisecond})
	defer w.Close()
	if err := w.Do(context.Background(), insertStaff(1)); err != nil {
		t.Fatal(err)
	}
	// Another connection sees the row as soon as Do returns.
	if got := staffCount(t, db); got != 1 {
		t.Fatalf("row not visible after Do returned: %d", got)
	}
}

func TestWriterSkipsCancelledAndPanics(t *testing.T) {
	db := openTemp(t)
	w := db.NewWriter(DefaultWriterOptions())
	defer w.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := w.Do(ctx, insertStaff(1)); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled job: %v", err)
	}
	err := w.Do(context.Background(), func(ctx context.Context, tx *Tx) error {
		if err := insertStaff(2)(ctx, tx); err != nil {
			return err
		}
		panic("boom")
	})
	if err == nil {
		t.Error("a panicking mutation reported success")
	}
	if err := w.Do(context.Background(), insertStaff(3)); err != nil {
		t.Fatal(err)
	}
	if got := staffCount(t, db); got != 1 {
		t.Errorf("%d rows, want only the healthy one", got)
	}
}

func TestWriterClose(t *testing.T) {
	db := openTemp(t)
	w := db.NewWriter(DefaultWriterOptions())
	if err := w.Do(context.Background(), insertStaff(1)); err != nil {
		t.Fatal(err)
	}
	w.Close()
	if err := w.Do(context.Background(), insertStaff(2)); !errors.Is(err, ErrWriterClosed) {
		t.Errorf("after Close: %v", err)
	}
}

func TestWriterNoticesOtherProcessesWriting(t *testing.T) {
	db := openTemp(t)
	w := db.NewWriter(DefaultWriterOptions())
	defer w.Close()
	if err := w.Do(context.Background(), insertStaff(1)); err != nil {
		t.Fatal(err)
	}
	// Called only from the loop goroutine in production; the loop is idle here.
	if w.othersWriting() {
		t.Fatal("others writing before anyone else wrote")
	}
	if err := w.Do(context.Background(), insertStaff(2)); err != nil {
		t.Fatal(err)
	}
	if w.othersWriting() {
		t.Fatal("the writer's own commits counted as someone else's")
	}
	other, err := Open(context.Background(), db.Path, Options{}) // a second connection, as the counter's
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if _, err := other.w.Exec(`INSERT INTO staff (tid, physkey, name) VALUES (3, 'k3', 'x')`); err != nil {
		t.Fatal(err)
	}
	if !w.othersWriting() {
		t.Fatal("a commit by another connection went unnoticed")
	}
	every, pause := w.yieldPolicy()
	if every != w.opts.YieldEvery || pause != w.opts.YieldFor {
		t.Fatalf("policy with others writing: every %v pause %v", every, pause)
	}
}
