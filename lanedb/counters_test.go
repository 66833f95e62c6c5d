package lanedb

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
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
