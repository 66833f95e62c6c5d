package lanedb

import (
	"bytes"
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
)

// TestWriterDiskFull: with the lane DB capped at its size (as a full disk
// is), every write is refused as a storage fault that says the disk is
// full, Ready says so too, and the log has one line for all of them;
// lifting the cap lets the next write through, and Ready is ready again.
func TestWriterDiskFull(t *testing.T) {
	ctx := context.Background()
	db, err := Open(ctx, filepath.Join(t.TempDir(), "lane.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var logBuf bytes.Buffer
	w := db.NewWriter(WriterOptions{})
	defer w.Close()
	w.LogTo(slog.New(slog.NewTextHandler(&logBuf, nil)))
	big := func(tid int) Mutation {
		return func(ctx context.Context, tx *Tx) error {
			_, err := tx.ExecContext(ctx, `INSERT INTO staff (tid, physkey, name) VALUES (?, ?, ?)`, tid, tid, strings.Repeat("x", 64<<10))
			return err
		}
	}
	if _, err := db.SetWriterMaxPages(ctx, 1); err != nil {
		t.Fatal(err)
	}
	const tries = 5
	for i := range tries {
		err := w.Do(ctx, big(100+i))
		reason, ok := StorageFault(err)
		if !ok || !strings.Contains(reason, "disk is full") {
			t.Fatalf("write %d on a full disk: %v (reason %q)", i, err, reason)
		}
	}
	if err := db.Ready(ctx); err == nil || !strings.Contains(err.Error(), "disk is full") {
		t.Fatalf("Ready on a full disk = %v, want it to say the disk is full", err)
	}
	if n := strings.Count(logBuf.String(), "refuses writes"); n != 1 {
		t.Fatalf("%d log lines about the full disk for %d refused writes, want 1:\n%s", n, tries, logBuf.String())
	}

	if _, err := db.SetWriterMaxPages(ctx, 1<<30); err != nil {
		t.Fatal(err)
	}
	if err := w.Do(ctx, big(200)); err != nil {
		t.Fatalf("write after space was freed: %v", err)
	}
	if err := db.Ready(ctx); err != nil {
		t.Fatalf("Ready after a write went through again: %v", err)
	}
	if !strings.Contains(logBuf.String(), "takes writes again") || !strings.Contains(logBuf.String(), "refused=5") {
		t.Fatalf("log does not tell the recovery and the count:\n%s", logBuf.String())
	}
}
