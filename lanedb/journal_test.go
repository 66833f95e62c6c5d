package lanedb

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestJournalQueriesSearchNotScan: the firehose reads the journal after
// every commit; none of its queries may walk the whole journal (100,000
// rows by default), only search its key.
func TestJournalQueriesSearchNotScan(t *testing.T) {
	db := openTemp(t)
	ctx := context.Background()
	tests := []struct {
		name  string
		query string
		args  []any
	}{
		{"bounds", qJournalBounds, nil},
		{"after", qJournalAfter, []any{10, 500}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			steps, err := db.ExplainQueryPlan(ctx, tt.query, tt.args...)
			if err != nil {
				t.Fatal(err)
			}
			var plan []string
			for _, s := range steps {
				plan = append(plan, s.Detail)
			}
			p := strings.Join(plan, "; ")
			if strings.Contains(p, "SCAN journal") || !strings.Contains(p, "SEARCH journal") {
				t.Fatalf("plan walks the journal: %s", p)
			}
		})
	}
	// And the bounds are still right.
	w := db.NewWriter(WriterOptions{})
	defer w.Close()
	err := w.Do(ctx, func(ctx context.Context, tx *Tx) error {
		for range 3 {
			if err := Journal(ctx, tx, time.Now(), "presell", "created", "pk", "t", nil); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	oldest, newest, err := JournalBounds(ctx, db.Read)
	if err != nil || oldest != 1 || newest != 3 {
		t.Fatalf("JournalBounds = %d, %d, %v; want 1, 3", oldest, newest, err)
	}
}
