package lanedb

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"
)

// TestCheckpointerCopiesTheWALBack: what the writer commits reaches the
// database file without the writer checkpointing (its autocheckpoint is
// off, and 2 MB is below SQLite's default threshold anyway).
func TestCheckpointerCopiesTheWALBack(t *testing.T) {
	db := openTemp(t)
	ctx := context.Background()
	size := func() int64 {
		t.Helper()
		st, err := os.Stat(db.Path)
		if err != nil {
			t.Fatal(err)
		}
		return st.Size()
	}
	before := size()
	err := db.WriteTx(ctx, func(tx *Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO lane_meta (key, value) VALUES ('bulk', ?)`, strings.Repeat("x", 2<<20))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for size() < before+2<<20 {
		if time.Now().After(deadline) {
			t.Fatalf("the database file is %d bytes, %d before a 2 MB commit: the WAL was not checkpointed", size(), before)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
