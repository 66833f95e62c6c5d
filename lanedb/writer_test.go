package lanedb

import (
	"context"
	"errors"
	"fmt"
	"slices"
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
	for _, be := range backends {
		for _, wait := range []time.Duration{0, 20 * time.Millisecond} {
			t.Run(fmt.Sprint(be.name, "/wait=", wait), func(t *testing.T) {
				testWriterGroupCommit(t, be.open(t), wait)
			})
		}
	}
}

func testWriterGroupCommit(t *testing.T, db *DB, wait time.Duration) {
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

// TestWriterBareJobsInOneBatch: jobs run without savepoints until one
// fails that may have written; then the batch starts over with a savepoint
// around each, and every job's answer, rows and after-commit callbacks are
// as if each had had one from the start.
func TestWriterBareJobsInOneBatch(t *testing.T) {
	refused := errors.New("refused")
	type kind int
	const (
		writes          kind = iota // inserts its row
		refusesClean                // reads, then refuses: nothing to undo
		failsDirty                  // inserts its row, then refuses
		failsInDatabase             // a statement of its fails (no such table)
	)
	tests := []struct {
		name   string
		jobs   []kind
		reruns int64
	}{
		{"all succeed", []kind{writes, writes, writes}, 0},
		{"a clean refusal", []kind{writes, refusesClean, writes}, 0},
		{"a failure after a write", []kind{writes, refusesClean, failsDirty, writes}, 1},
		{"a database error", []kind{writes, failsInDatabase, writes}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := openTemp(t)
			w := db.NewWriter(WriterOptions{MaxWait: time.Millisecond, MaxBatch: 64})
			defer w.Close()
			ctx := context.Background()
			// A job holds the writer while the others queue, so that they
			// make one batch, in order.
			gate, held := make(chan struct{}), make(chan struct{})
			go w.Do(ctx, func(context.Context, *Tx) error { close(held); <-gate; return nil })
			<-held
			runs := make([]int, len(tt.jobs))
			committed := make([]int, len(tt.jobs))
			errs := make([]error, len(tt.jobs))
			var wg sync.WaitGroup
			for i, k := range tt.jobs {
				fn := func(ctx context.Context, tx *Tx) error {
					runs[i]++
					tx.OnCommit(func() { committed[i]++ })
					switch k {
					case refusesClean:
						var n int
						if err := tx.GetContext(ctx, &n, `SELECT COUNT(*) FROM staff`); err != nil {
							return err
						}
						return refused
					case failsInDatabase:
						var n int
						return tx.GetContext(ctx, &n, `SELECT COUNT(*) FROM no_such_table`)
					}
					if err := insertStaff(i+1)(ctx, tx); err != nil {
						return err
					}
					if k == failsDirty {
						return refused
					}
					return nil
				}
				wg.Add(1)
				go func() { defer wg.Done(); errs[i] = w.Do(ctx, fn) }()
				for len(w.jobs) < i+1 {
					time.Sleep(time.Millisecond)
				}
			}
			before := w.Stats().Snapshot()
			close(gate)
			wg.Wait()
			d := w.Stats().Snapshot().Sub(before)
			var want []string
			restart := -1 // jobs up to the one that may have written run twice
			if tt.reruns > 0 {
				restart = slices.IndexFunc(tt.jobs, func(k kind) bool { return k == failsDirty || k == failsInDatabase })
			}
			for i, k := range tt.jobs {
				ok := k == writes
				if ok != (errs[i] == nil) {
					t.Errorf("job %d: err %v", i, errs[i])
				}
				if ok != (committed[i] == 1) || committed[i] > 1 {
					t.Errorf("job %d: after-commit callback ran %d times", i, committed[i])
				}
				if ok {
					want = append(want, fmt.Sprint("k", i+1))
				}
				if wantRuns := 1 + btoi(i <= restart); runs[i] != wantRuns {
					t.Errorf("job %d ran %d times, want %d", i, runs[i], wantRuns)
				}
			}
			var got []string
			if err := db.r.Select(&got, `SELECT physkey FROM staff ORDER BY tid`); err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("rows %v, want %v", got, want)
			}
			// The gate's batch is counted too.
			if d.Reruns != tt.reruns || d.Batches != 2 || d.Mutations != int64(len(tt.jobs)+1) {
				t.Errorf("Reruns +%d, Batches +%d, Mutations +%d; want %d, 2, %d", d.Reruns, d.Batches, d.Mutations, tt.reruns, len(tt.jobs)+1)
			}
			if (d.SavepointStatements > 0) != (tt.reruns > 0) {
				t.Errorf("%d savepoint statements with %d reruns", d.SavepointStatements, tt.reruns)
			}
		})
	}
}

// TestWriterGuardsAKeyThatFailsAfterWriting: a job that fails after
// writing starts its batch over, every job in it running twice. A client
// can make that happen at will, so for a while after it did, that key's
// jobs run inside savepoints of their own, and the next such failure undoes
// only its own writes. Other keys' and untagged jobs run bare as before.
func TestWriterGuardsAKeyThatFailsAfterWriting(t *testing.T) {
	refused := errors.New("refused")
	db := openTemp(t)
	w := db.NewWriter(WriterOptions{MaxWait: time.Millisecond, MaxBatch: 64})
	defer w.Close()
	ctx := context.Background()
	tid := 0
	type job struct {
		tag   string
		fails bool // after its insert
	}
	// batch runs the jobs as one batch, behind a job holding the writer,
	// and answers how many times each ran, their errors and the stats.
	batch := func(jobs ...job) ([]int, []error, WriterSnapshot) {
		gate, held := make(chan struct{}), make(chan struct{})
		go w.Do(ctx, func(context.Context, *Tx) error { close(held); <-gate; return nil })
		<-held
		runs, errs := make([]int, len(jobs)), make([]error, len(jobs))
		var wg sync.WaitGroup
		for i, j := range jobs {
			tid++
			insert := insertStaff(tid)
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i] = w.DoAs(ctx, j.tag, func(ctx context.Context, tx *Tx) error {
					runs[i]++
					if err := insert(ctx, tx); err != nil || !j.fails {
						return err
					}
					return refused
				})
			}()
			for len(w.jobs) < i+1 {
				time.Sleep(time.Millisecond)
			}
		}
		before := w.Stats().Snapshot()
		close(gate)
		wg.Wait()
		return runs, errs, w.Stats().Snapshot().Sub(before)
	}
	for _, tt := range []struct {
		name   string
		jobs   []job
		reruns int64
	}{
		{"key-a's first failure", []job{{"key-b", false}, {"key-a", true}, {"key-b", false}}, 1},
		{"key-a's next", []job{{"key-b", false}, {"key-a", true}, {"key-b", false}}, 0},
		{"key-a's next, beside its own", []job{{"key-a", false}, {"key-a", true}, {"key-b", false}}, 0},
		{"another key's", []job{{"key-b", false}, {"key-c", true}}, 1},
		{"no key's", []job{{"key-b", false}, {"", true}}, 1},
		{"no key's again", []job{{"key-b", false}, {"", true}}, 1},
	} {
		before := staffCount(t, db)
		runs, errs, d := batch(tt.jobs...)
		wantRows := before
		for i, j := range tt.jobs {
			if j.fails != errors.Is(errs[i], refused) || !j.fails && errs[i] != nil {
				t.Errorf("%s: job %d: err %v", tt.name, i, errs[i])
			}
			if !j.fails {
				wantRows++
			}
			// Before the failure, jobs run twice when the batch starts over.
			if want := 1 + int(tt.reruns)*btoi(i <= 1); runs[i] != want {
				t.Errorf("%s: job %d ran %d times, want %d", tt.name, i, runs[i], want)
			}
		}
		if d.Reruns != tt.reruns {
			t.Errorf("%s: Reruns +%d, want %d", tt.name, d.Reruns, tt.reruns)
		}
		if got := staffCount(t, db); got != wantRows {
			t.Errorf("%s: %d rows, want %d (the failed job's undone, the others' kept)", tt.name, got, wantRows)
		}
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
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

// TestWriterCountsStatements: every statement a mutation runs through its
// Tx is counted, whichever method ran it, and so is the savepoint of a
// batch started over because a job failed after it wrote (SAVEPOINT and
// RELEASE, plus ROLLBACK TO for the job that fails).
func TestWriterCountsStatements(t *testing.T) {
	var names []string
	var n int
	tests := []struct {
		name           string
		fn             Mutation
		own, savepoint int64 // savepoint: in the batch's second run
		fails          bool
		reruns         int64
	}{
		{"none", func(context.Context, *Tx) error { return nil }, 0, 0, false, 0},
		{"exec, get, select", func(ctx context.Context, tx *Tx) error {
			if err := insertStaff(1)(ctx, tx); err != nil {
				return err
			}
			if err := tx.GetContext(ctx, &n, `SELECT COUNT(*) FROM staff`); err != nil {
				return err
			}
			return tx.SelectContext(ctx, &names, `SELECT name FROM staff`)
		}, 3, 0, false, 0},
		{"named exec, row, rows", func(ctx context.Context, tx *Tx) error {
			if _, err := tx.NamedExecContext(ctx, `INSERT INTO staff (tid, physkey, name) VALUES (:tid, :physkey, 'n')`,
				map[string]any{"tid": 2, "physkey": "k2"}); err != nil {
				return err
			}
			if err := tx.QueryRowxContext(ctx, `SELECT COUNT(*) FROM staff`).Scan(&n); err != nil {
				return err
			}
			rows, err := tx.QueryxContext(ctx, `SELECT name FROM staff`)
			if err != nil {
				return err
			}
			return rows.Close()
		}, 3, 0, false, 0},
		{"without a context", func(ctx context.Context, tx *Tx) error {
			if _, err := tx.Exec(`INSERT INTO staff (tid, physkey, name) VALUES (3, 'k3', 'n')`); err != nil {
				return err
			}
			if err := tx.Get(&n, `SELECT COUNT(*) FROM staff`); err != nil {
				return err
			}
			return tx.QueryRow(`SELECT COUNT(*) FROM staff`).Scan(&n)
		}, 3, 0, false, 0},
		{"refuses after reading", func(ctx context.Context, tx *Tx) error {
			if err := tx.GetContext(ctx, &n, `SELECT COUNT(*) FROM staff`); err != nil {
				return err
			}
			return errors.New("refused")
		}, 1, 0, true, 0},
		// A job that wrote, then failed, runs again inside a savepoint:
		// its statements twice, SAVEPOINT, ROLLBACK TO and RELEASE once.
		{"fails after one", func(ctx context.Context, tx *Tx) error {
			if err := insertStaff(4)(ctx, tx); err != nil {
				return err
			}
			return errors.New("refused")
		}, 2, 3, true, 1},
		{"panics after two", func(ctx context.Context, tx *Tx) error {
			if err := insertStaff(5)(ctx, tx); err != nil {
				return err
			}
			if err := tx.GetContext(ctx, &n, `SELECT COUNT(*) FROM staff`); err != nil {
				return err
			}
			panic("boom")
		}, 4, 3, true, 1},
	}
	db := openTemp(t)
	w := db.NewWriter(WriterOptions{MaxWait: 0, MaxBatch: 64}) // one batch per Do
	defer w.Close()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := w.Stats().Snapshot()
			if err := w.Do(context.Background(), tt.fn); (err != nil) != tt.fails {
				t.Fatalf("Do: %v, want failure %v", err, tt.fails)
			}
			d := w.Stats().Snapshot().Sub(before)
			if got, want := d.Statements, tt.own+tt.savepoint; got != want {
				t.Errorf("Statements +%d, want %d (%d of its own, %d for a savepoint)", got, want, tt.own, tt.savepoint)
			}
			if d.SavepointStatements != tt.savepoint || d.Reruns != tt.reruns {
				t.Errorf("SavepointStatements +%d, Reruns +%d; want %d and %d", d.SavepointStatements, d.Reruns, tt.savepoint, tt.reruns)
			}
			if d.Mutations != 1 || d.Batches != 1 || d.BatchSizes[0] != 1 {
				t.Errorf("Mutations +%d, Batches +%d, batches of one +%d; want 1 each", d.Mutations, d.Batches, d.BatchSizes[0])
			}
			if got, want := d.StatementsPerMutation(), float64(tt.own+tt.savepoint); got != want {
				t.Errorf("StatementsPerMutation = %g, want %g", got, want)
			}
			if d.Busy < d.Commit { // COMMIT is part of the writer's working time
				t.Errorf("Busy %s shorter than its Commit %s", d.Busy, d.Commit)
			}
			// The batch's COMMIT is in the bucket of the time it took.
			var timed int64
			for _, n := range d.CommitTimes {
				timed += n
			}
			if timed != d.Batches || d.CommitQuantile(1) < d.Commit {
				t.Errorf("COMMIT times %v for %d batch taking %s: want it counted once, in a bucket at least that long", d.CommitTimes, d.Batches, d.Commit)
			}
		})
	}
}

// TestWriterCountsPages: the pages a batch writes to the WAL are counted
// (what its COMMIT costs), none for a batch that only reads, and two
// snapshots add up as their counters do.
func TestWriterCountsPages(t *testing.T) {
	var n int
	tests := []struct {
		name  string
		fn    Mutation
		pages bool
	}{
		{"a write", insertStaff(1), true},
		{"reads only", func(ctx context.Context, tx *Tx) error {
			return tx.GetContext(ctx, &n, `SELECT COUNT(*) FROM staff`)
		}, false},
		{"another write", insertStaff(2), true},
	}
	db := openTemp(t)
	w := db.NewWriter(WriterOptions{MaxWait: 0, MaxBatch: 64}) // one batch per Do
	defer w.Close()
	start := w.Stats().Snapshot()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := w.Stats().Snapshot()
			if err := w.Do(context.Background(), tt.fn); err != nil {
				t.Fatal(err)
			}
			d := w.Stats().Snapshot().Sub(before)
			if (d.Pages > 0) != tt.pages {
				t.Errorf("Pages +%d; want pages written: %v", d.Pages, tt.pages)
			}
			if got, want := d.PagesPerMutation(), float64(d.Pages); got != want {
				t.Errorf("PagesPerMutation = %g, want %g (one mutation)", got, want)
			}
		})
	}
	end := w.Stats().Snapshot()
	if got := start.Add(end.Sub(start)); got != end {
		t.Errorf("start + (end − start) = %+v, want %+v", got, end)
	}
}

// TestBatchBuckets: a batch's size lands in the power-of-two bucket that
// WriterStats documents, the largest sizes in the last one.
func TestBatchBuckets(t *testing.T) {
	tests := []struct{ size, bucket int }{
		{1, 0}, {2, 1}, {3, 1}, {4, 2}, {63, 5}, {64, 6}, {127, 6}, {128, 7}, {10000, BatchBuckets - 1},
	}
	for _, tt := range tests {
		if got := batchBucket(tt.size); got != tt.bucket {
			t.Errorf("batchBucket(%d) = %d, want %d", tt.size, got, tt.bucket)
		}
	}
}

func TestLingerPays(t *testing.T) {
	const gap = 250 * time.Microsecond
	for _, c := range []struct {
		name    string
		waiting int
		since   time.Duration
		want    bool
	}{
		{"a lone job after an idle spell", 1, time.Second, false},
		{"two jobs queued over a millisecond commit", 2, time.Millisecond, false},
		{"four jobs queued over a millisecond", 4, time.Millisecond, true},
		{"a full queue after a long batch", 62, 8 * time.Millisecond, true},
		{"a lone job right after a batch", 1, 100 * time.Microsecond, true},
	} {
		if got := lingerPays(c.waiting, c.since, gap); got != c.want {
			t.Errorf("%s: lingerPays(%d, %s) = %v, want %v", c.name, c.waiting, c.since, got, c.want)
		}
	}
}

func TestCommitBuckets(t *testing.T) {
	for _, tt := range []struct {
		took   time.Duration
		bucket int
	}{
		{0, 0}, {125 * time.Microsecond, 0}, {126 * time.Microsecond, 1}, {time.Millisecond, 3},
		{1500 * time.Microsecond, 4}, {512 * time.Millisecond, CommitBuckets - 2}, {time.Minute, CommitBuckets - 1},
	} {
		if got := commitBucket(tt.took); got != tt.bucket {
			t.Errorf("commitBucket(%s) = %d, want %d", tt.took, got, tt.bucket)
		}
	}
}

func TestCommitQuantile(t *testing.T) {
	var s WriterSnapshot
	if got := s.CommitQuantile(0.99); got != 0 {
		t.Errorf("no COMMITs: CommitQuantile = %s, want 0", got)
	}
	s.CommitTimes[2] = 98 // up to 500µs
	s.CommitTimes[5] = 1  // up to 4ms
	s.CommitTimes[9] = 1  // up to 64ms
	for _, tt := range []struct {
		q    float64
		want time.Duration
	}{
		{0.5, 500 * time.Microsecond}, {0.98, 500 * time.Microsecond}, {0.99, 4 * time.Millisecond}, {1, 64 * time.Millisecond},
	} {
		if got := s.CommitQuantile(tt.q); got != tt.want {
			t.Errorf("CommitQuantile(%g) = %s, want %s", tt.q, got, tt.want)
		}
	}
}
