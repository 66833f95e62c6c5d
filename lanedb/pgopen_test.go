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
