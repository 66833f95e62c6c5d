package salesbuilder_test

import (
	"context"
	"testing"

	"github.com/greenlane-pos/greenlane/lanedb"
)

// TestTrimJournalBoundsItsBytes: a sale of many lines journals each change
// whole; past JournalKeepBytes the sweep keeps only the newest entries
// whose details fit, the newest always among them.
func TestTrimJournalBoundsItsBytes(t *testing.T) {
	const max = 1 << 20
	l := newLane(t, func(o *Options) { o.JournalKeepBytes = max })
	till := counter("counter-1")
	k := l.sale(till, "salesbuilder.sale_create", "", nil).Physkey
	for range 200 { // about 2.5 MB of details: each holds every line so far
		l.sale(till, "salesbuilder.sale_add_product", k, map[string]any{"pid": 1001, "qty": 1})
	}
	ctx := context.Background()
	size := func() (n int, bytes int64, newest int64) {
		t.Helper()
		if err := l.db.Read.QueryRow(`SELECT COUNT(*), COALESCE(SUM(octet_length(detail)), 0), COALESCE(MAX(seq), 0) FROM journal`).Scan(&n, &bytes, &newest); err != nil {
			t.Fatal(err)
		}
		return n, bytes, newest
	}
	n0, bytes0, newest0 := size()
	if bytes0 <= max {
		t.Fatalf("the journal holds %d bytes of details: the test needs more than %d", bytes0, max)
	}
	if err := l.svc.TrimJournal(ctx); err != nil {
		t.Fatal(err)
	}
	n, bytes, newest := size()
	if bytes > max || n >= n0 || newest != newest0 {
		t.Fatalf("after the sweep: %d entries, %d bytes, newest %d; before: %d, %d, %d; want at most %d bytes and the newest kept",
			n, bytes, newest, n0, bytes0, newest0, max)
	}
	if cut, err := lanedb.JournalByteCutoff(ctx, l.db.Read, max); err != nil || cut != 0 {
		t.Fatalf("after the sweep the journal is still past its bound (cutoff %d, %v)", cut, err)
	}
}
