package lanedb

import (
	"context"
	"testing"
)

// backends are the two lane DB backends, for tests that run on each.
var backends = []struct {
	name string
	open func(t *testing.T) *DB
}{
	{"sqlite", openTemp},
	{"postgres", func(t *testing.T) *DB { db, _ := openPostgresTest(t); return db }},
}

// openPostgresTest opens a fresh PostgreSQL lane DB for one test.
func openPostgresTest(t *testing.T) (*DB, string) {
	t.Helper()
	u := freshPostgresDB(t)
	db, err := Open(context.Background(), u, Options{})
	if err != nil {
		t.Fatalf("Open(%s): %v", redactURL(u), err)
	}
	t.Cleanup(func() { db.Close() })
	return db, u
}

// Open on PostgreSQL migrates and prepares every registered statement in
// its PostgreSQL form (a statement PostgreSQL cannot parse or type fails
// here), and opening it again finds the schema current.
func TestPostgresOpenPreparesEveryStatement(t *testing.T) {
	db, u := openPostgresTest(t)
	if !db.Postgres() {
		t.Fatal("Postgres() = false for a postgres:// lane DB")
	}
	if err := db.Ready(context.Background()); err != nil {
		t.Fatalf("Ready: %v", err)
	}
	want := 0
	for _, q := range registry.plain {
		if _, ok := dialectPostgres.rewrite(q); ok {
			want++
		}
	}
	if got := len(db.wp.plain) + len(db.wp.named); got != want+len(registry.named) {
		t.Errorf("prepared %d statements on the writer, want %d", got, want+len(registry.named))
	}
	again, err := Open(context.Background(), u, Options{})
	if err != nil {
		t.Fatalf("Open again: %v", err)
	}
	again.Close()
}

// A Go bool goes into a BIGINT 0/1 column as it does on SQLite.
func TestPostgresTakesBoolsAsIntegers(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			db := be.open(t)
			ctx := context.Background()
			err := db.WriteTx(ctx, func(tx *Tx) error {
				_, err := tx.ExecContext(ctx, `INSERT INTO staff (tid, physkey, name, active) VALUES (1, 'a', 'a', ?), (2, 'b', 'b', ?)`, true, false)
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			var got []int64
			if err := db.Read.SelectContext(ctx, &got, `SELECT active FROM staff ORDER BY tid`); err != nil {
				t.Fatal(err)
			}
			if len(got) != 2 || got[0] != 1 || got[1] != 0 {
				t.Errorf("active = %v, want [1 0]", got)
			}
		})
	}
}
