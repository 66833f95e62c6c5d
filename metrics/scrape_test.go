package metrics

import (
	"context"
	"database/sql"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/greenlane-pos/greenlane/lanedb"
)

// TestScrapesAtOnceShareOneReading: /metrics needs no key by default, so
// scrapes that come at once share one reading of the lane DB. With every
// read connection taken, ten scrapes wait on one reading, not ten.
func TestScrapesAtOnceShareOneReading(t *testing.T) {
	ctx := context.Background()
	db, err := lanedb.Open(ctx, filepath.Join(t.TempDir(), "lane.db"), lanedb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	c := &scraped{p: Parts{DB: db, Now: time.Now}}
	var held []*sql.Tx
	for range db.Read.Stats().MaxOpenConnections {
		tx, err := db.Read.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, tx)
	}
	const scrapes = 10
	var wg sync.WaitGroup
	for range scrapes {
		wg.Go(func() {
			ch := make(chan prometheus.Metric, 100)
			c.Collect(ch)
		})
	}
	// Give them a moment to come at once: it only makes sharing likelier;
	// what is checked is how many readings were taken.
	time.Sleep(300 * time.Millisecond)
	for _, tx := range held {
		_ = tx.Rollback()
	}
	wg.Wait()
	if n := c.readings.Load(); n >= scrapes {
		t.Fatalf("%d scrapes at once took %d readings, want them to share", scrapes, n)
	}
}
