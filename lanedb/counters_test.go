package lanedb

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// holdTickets inserts open presells holding the given tickets.
func holdTickets(t *testing.T, db *DB, tickets ...int64) {
	t.Helper()
	err := db.WriteTx(context.Background(), func(tx *Tx) error {
		for _, n := range tickets {
			pk := fmt.Sprintf("pk-%d", n)
			_, err := tx.ExecContext(context.Background(), `INSERT INTO sales (physkey, random_key, phase, startdt, updated_utc, presell, ticket)
				VALUES (?, ?, 5, '2026-01-01 00:00:00', '2026-01-01 00:00:00', 1, ?)`, pk, "r"+pk, n)
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func allocate(t *testing.T, db *DB) (int64, error) {
	t.Helper()
	var got int64
	err := db.WriteTx(context.Background(), func(tx *Tx) error {
		var err error
		got, err = AllocateTicket(context.Background(), tx)
		return err
	})
	return got, err
}

func TestAllocateTicket(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) { testAllocateTicket(t, be.open(t)) })
	}
}

func testAllocateTicket(t *testing.T, db *DB) {
	holdTickets(t, db, 1, 2, 3, 5)
	for _, want := range []int64{4, 6, 7} {
		if got, err := allocate(t, db); err != nil || got != want {
			t.Fatalf("allocate = %d, %v; want %d", got, err, want)
		}
	}
	// The counter goes round: near the top, free numbers above are used
	// first, then it wraps to the lowest free one.
	if _, err := db.Exec(context.Background(), `UPDATE lane_counters SET value = ? WHERE name = 'ticket_next'`, MaxTicket-1); err != nil {
		t.Fatal(err)
	}
	holdTickets(t, db, MaxTicket)
	if got, err := allocate(t, db); err != nil || got != MaxTicket-1 {
		t.Fatalf("near the top: %d, %v", got, err)
	}
	if got, err := allocate(t, db); err != nil || got != 4 {
		t.Fatalf("after wrapping: %d, %v (4 is free again: nothing holds it)", got, err)
	}
}

func TestAllocateTicketExhausted(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) { testAllocateTicketExhausted(t, be.open(t)) })
	}
}

func testAllocateTicketExhausted(t *testing.T, db *DB) {
	all := make([]int64, MaxTicket)
	for i := range all {
		all[i] = int64(i + 1)
	}
	holdTickets(t, db, all...)
	if _, err := allocate(t, db); !errors.Is(err, ErrNoFreeTicket) {
		t.Fatalf("allocate with every ticket held: %v", err)
	}
}

func TestHeldTicketsUsesThePartialIndex(t *testing.T) {
	db := openTemp(t)
	rows, err := db.r.Query("EXPLAIN QUERY PLAN "+qHeldTickets, 1, MaxTicket)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, notused int
		var detail string
		if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	if p := strings.Join(plan, "; "); !strings.Contains(p, "sales_open_ticket") {
		t.Fatalf("plan does not use the open-ticket index: %s", p)
	}
}

// TestAllocateTicketReportsAReadError: a ticket counter that cannot be
// read is an error, not a silent restart at ticket 1 (which would hand out
// numbers in a different order than the lane's history).
func TestAllocateTicketReportsAReadError(t *testing.T) {
	tests := []struct {
		name    string
		counter string // SQL setting the ticket_next row; "" leaves it absent
		want    int64
		wantErr string
	}{
		{"no counter yet", "", 1, ""},
		{"next in range", `INSERT INTO lane_counters (name, value) VALUES ('ticket_next', 42)`, 42, ""},
		{"past the last ticket wraps", `INSERT INTO lane_counters (name, value) VALUES ('ticket_next', 10000)`, 1, ""},
		{"unreadable counter", `INSERT INTO lane_counters (name, value) VALUES ('ticket_next', 'forty-two')`, 0, "read ticket counter"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := openTemp(t)
			if tt.counter != "" {
				if _, err := db.w.Exec(tt.counter); err != nil {
					t.Fatal(err)
				}
			}
			got, err := allocate(t, db)
			switch {
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("AllocateTicket = %d, %v; want an error containing %q", got, err, tt.wantErr)
			case tt.wantErr == "" && err != nil:
				t.Fatalf("AllocateTicket: %v", err)
			case got != tt.want:
				t.Fatalf("AllocateTicket = %d, want %d", got, tt.want)
			}
		})
	}
}

// TestTrimIdempotency: records are each key's own. The time trim deletes
// only what is past the retention, whichever key shares its ik; the per
// key trim keeps each key's newest and leaves the other keys' alone.
func TestTrimIdempotency(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) { testTrimIdempotency(t, be.open(t)) })
	}
}

func testTrimIdempotency(t *testing.T, db *DB) {
	ctx := context.Background()
	put := func(key, ik, at string) {
		t.Helper()
		err := db.WriteTx(ctx, func(tx *Tx) error {
			_, err := tx.ExecContext(ctx, `INSERT INTO idempotency (key_id, ik, endpoint, request_hash, reply, created_utc, session)
				VALUES (?, ?, 'e', ?, ?, ?, '')`, key, ik, []byte("h"), []byte("{}"), at)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	// The same ik, old for key a and new for key b.
	put("a", "shared", "2026-01-01 00:00:00")
	put("b", "shared", "2026-06-01 00:00:00")
	for i := range 5 {
		put("a", fmt.Sprintf("a-%d", i), fmt.Sprintf("2026-06-01 00:00:0%d", i))
	}
	trim := func(f func(tx *Tx) (int64, error)) int64 {
		t.Helper()
		var n int64
		if err := db.WriteTx(ctx, func(tx *Tx) (err error) { n, err = f(tx); return err }); err != nil {
			t.Fatal(err)
		}
		return n
	}
	cutoff, _ := time.Parse(DateTime, "2026-03-01 00:00:00")
	if n := trim(func(tx *Tx) (int64, error) { return TrimIdempotency(ctx, tx, cutoff, 100) }); n != 1 {
		t.Fatalf("the time trim deleted %d, want 1 (key a's old record only)", n)
	}
	if rec, err := GetIdempotent(ctx, db.Read, "b", "shared"); err != nil || rec == nil {
		t.Fatalf("key b's record of the shared ik after the time trim: %v %v", rec, err)
	}
	if n := trim(func(tx *Tx) (int64, error) { return TrimIdempotencyPerKey(ctx, tx, 2, 100) }); n != 3 {
		t.Fatalf("the per key trim deleted %d, want 3 (key a keeps its 2 newest)", n)
	}
	for key, iks := range map[string][]string{"a": {"a-3", "a-4"}, "b": {"shared"}} {
		for _, ik := range iks {
			if rec, err := GetIdempotent(ctx, db.Read, key, ik); err != nil || rec == nil {
				t.Errorf("key %s's %s after the per key trim: %v %v", key, ik, rec, err)
			}
		}
	}
}

// TestIdempotencyRecordsSharePages: a stored reply (a sale's view, about
// 1 KB) does not take a page of its own: a page holds several records.
// TestPutIdempotentStoresOnce: a second record for a key's ik stores
// nothing and says so; the first stays as it was. Another key's record for
// the same ik is its own.
func TestPutIdempotentStoresOnce(t *testing.T) {
	ctx := context.Background()
	db := openTemp(t)
	for _, tc := range []struct {
		key, reply string
		stored     bool
	}{
		{"key-1", "first", true},
		{"key-1", "second", false},
		{"key-2", "other key", true},
	} {
		var stored bool
		err := db.WriteTx(ctx, func(tx *Tx) (err error) {
			rec := &Idempotent{IK: "ik-1", KeyID: tc.key, Endpoint: "sale_park", RequestHash: []byte{1}, Reply: []byte(tc.reply)}
			stored, err = PutIdempotent(ctx, tx, rec, time.Now())
			return err
		})
		if err != nil || stored != tc.stored {
			t.Fatalf("%s's record %q: stored %v, %v; want %v", tc.key, tc.reply, stored, err, tc.stored)
		}
	}
	for key, want := range map[string]string{"key-1": "first", "key-2": "other key"} {
		if rec, err := GetIdempotent(ctx, db.r, key, "ik-1"); err != nil || rec == nil || string(rec.Reply) != want {
			t.Fatalf("%s's record: %+v, %v; want reply %q", key, rec, err, want)
		}
	}
}

func TestIdempotencyRecordsSharePages(t *testing.T) {
	ctx := context.Background()
	db := openTemp(t)
	pages := func() int {
		var n int
		if err := db.w.GetContext(ctx, &n, `PRAGMA page_count`); err != nil {
			t.Fatal(err)
		}
		return n
	}
	const records = 300
	before := pages()
	reply := []byte(strings.Repeat("x", 1100))
	err := db.WriteTx(ctx, func(tx *Tx) error {
		for i := range records {
			rec := &Idempotent{IK: fmt.Sprintf("ik-%04d", i), KeyID: "key-1", Endpoint: "sale_add_product",
				RequestHash: make([]byte, 32), Reply: reply}
			if _, err := PutIdempotent(ctx, tx, rec, time.Now()); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if grew := pages() - before; grew > records/2 {
		t.Errorf("%d records of a 1.1 KB reply took %d pages; want them at least two to a page", records, grew)
	}
	if rec, err := GetIdempotent(ctx, db.r, "key-1", "ik-0150"); err != nil || rec == nil || len(rec.Reply) != len(reply) {
		t.Fatalf("GetIdempotent: %+v, %v", rec, err)
	}
}

// TestIdempotencyKeysOfManyTabletsShareIndexPages: a group-commit batch
// holds one change from each of many tablets, each with its own API key
// and a time-ordered ik (as the tablet page makes them). Keyed ik first,
// their index entries sit side by side at the index's end: the commit
// writes a few pages, not one per change (keyed by API key first, each
// change went to its key's own run of the index, a page each).
func TestIdempotencyKeysOfManyTabletsShareIndexPages(t *testing.T) {
	ctx := context.Background()
	db := openTemp(t)
	w := db.NewWriter(WriterOptions{})
	defer w.Close()
	const tablets, rounds = 64, 40
	seq := 0
	round := func() error {
		return w.Do(ctx, func(ctx context.Context, tx *Tx) error {
			for k := range tablets {
				seq++ // an ik's leading digits order it as a UUIDv7's time does
				rec := &Idempotent{IK: fmt.Sprintf("%012x-7%03x-8000-000000000000", seq, k), KeyID: fmt.Sprintf("key-%02d", k),
					Endpoint: "sale_add_product", RequestHash: make([]byte, 32), Reply: []byte(`{"k":"x","view":{}}`)}
				if _, err := PutIdempotent(ctx, tx, rec, time.Now()); err != nil {
					return err
				}
			}
			return nil
		})
	}
	for range rounds {
		if err := round(); err != nil {
			t.Fatal(err)
		}
	}
	before := w.Stats().Snapshot()
	if err := round(); err != nil {
		t.Fatal(err)
	}
	written := w.Stats().Snapshot().Sub(before).Pages
	// The rows, the two indexes' ends and their parents: 14 pages here;
	// keyed by API key first, 46.
	if written > 24 {
		t.Errorf("a batch of %d changes with ordered iks wrote %d pages; want the iks' index entries on a page or two", tablets, written)
	}
}
