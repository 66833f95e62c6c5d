package lanedb

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// follower reads the journal as the firehose hub does: every row with seq
// above the last one it saw, in seq order.
type follower struct {
	db   *DB
	head int64
	seen []int64
}

func (f *follower) step(t *testing.T) {
	t.Helper()
	for {
		rows, err := JournalAfter(context.Background(), f.db.Read, f.head, 500)
		if err != nil {
			t.Error(err)
			return
		}
		for _, r := range rows {
			f.seen = append(f.seen, r.Seq)
			f.head = r.Seq
		}
		if len(rows) < 500 {
			return
		}
	}
}

func appendEvent(physkey string) Mutation {
	return func(ctx context.Context, tx *Tx) error {
		err := Journal(ctx, tx, time.Now(), "custdisp", "sale.test", physkey, "t", nil)
		return err
	}
}

// lockWaiters counts the backends of the database at u waiting for a lock.
func lockWaiters(t *testing.T, c *pgx.Conn) int {
	t.Helper()
	var n int
	if err := c.QueryRow(context.Background(), `SELECT count(*) FROM pg_locks WHERE NOT granted`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// Two instances append to one journal at once, and a follower reading
// "seq > last" must see every row once, in one order, with no gap. The
// first part forces what breaks a follower without the journal lock: A
// takes a seq and stays uncommitted while B appends after it and commits,
// and the follower reads in between. With the lock B waits for A; without
// it the follower moves past A's seq before A commits and never sees A's
// row. The second part is both instances appending under load while the
// follower polls.
func TestPostgresJournalFollowerMissesNothingAcrossInstances(t *testing.T) {
	a, b, u := openTwoInstances(t)
	// Its inserts do not return their seq: a follower reads every row.
	if a.OnJournal(func([]JournalEntry) { t.Error("a store database handed a journal row over") }) {
		t.Fatal("OnJournal took a follower on a store database")
	}
	wa, wb := a.NewWriter(WriterOptions{}), b.NewWriter(WriterOptions{})
	defer wa.Close()
	defer wb.Close()
	ctx := context.Background()
	f := &follower{db: b}
	watch, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	defer watch.Close(ctx)

	inserted, release := make(chan struct{}), make(chan struct{})
	errA := make(chan error, 1)
	go func() {
		errA <- wa.Do(ctx, func(ctx context.Context, tx *Tx) error {
			if err := appendEvent("A")(ctx, tx); err != nil {
				return err
			}
			close(inserted)
			<-release
			return nil
		})
	}()
	<-inserted
	errB := make(chan error, 1)
	go func() { errB <- wb.Do(ctx, appendEvent("B")) }()
	// B either waits for the journal lock or (without it) commits.
	bDone := false
	for deadline := time.Now().Add(30 * time.Second); !bDone && lockWaiters(t, watch) == 0; {
		select {
		case err := <-errB:
			if err != nil {
				t.Fatal(err)
			}
			bDone = true
		case <-time.After(5 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("B neither committed nor waited for a lock in 30s")
		}
	}
	f.step(t) // reads while A is still uncommitted
	close(release)
	if err := <-errA; err != nil {
		t.Fatal(err)
	}
	if !bDone {
		if err := <-errB; err != nil {
			t.Fatal(err)
		}
	}

	const perWriter = 300
	var wg sync.WaitGroup
	for i, w := range []*Writer{wa, wb} {
		for j := range perWriter {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := w.Do(ctx, appendEvent(fmt.Sprint(i, "-", j))); err != nil {
					t.Error(err)
				}
			}()
		}
	}
	stop := make(chan struct{})
	polled := make(chan struct{})
	go func() {
		defer close(polled)
		for {
			select {
			case <-stop:
				return
			default:
				f.step(t)
			}
		}
	}()
	wg.Wait()
	close(stop)
	<-polled
	f.step(t)

	var all []int64
	if err := a.Read.SelectContext(ctx, &all, `SELECT seq FROM journal ORDER BY seq`); err != nil {
		t.Fatal(err)
	}
	if len(all) != 2+2*perWriter {
		t.Fatalf("journal holds %d rows, want %d", len(all), 2+2*perWriter)
	}
	if len(f.seen) != len(all) {
		missing := map[int64]bool{}
		for _, s := range all {
			missing[s] = true
		}
		for _, s := range f.seen {
			delete(missing, s)
		}
		t.Fatalf("the follower saw %d rows of %d; missed %v", len(f.seen), len(all), keys(missing))
	}
	for i := range all {
		if f.seen[i] != all[i] {
			t.Fatalf("row %d: the follower saw seq %d, the journal holds %d", i, f.seen[i], all[i])
		}
	}
}

func keys(m map[int64]bool) []int64 {
	out := make([]int64, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
