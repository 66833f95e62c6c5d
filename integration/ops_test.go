package integration

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/greenlane-pos/greenlane/lanedb"
)

// TestOpsBackupDuringLoad: backups taken while tablets presell and a
// counter completes over real sockets each pass `greenlane check` and open
// as a lane DB; `check` on a lane DB with a completed sale paid short exits
// 1 naming that sale (issue 12, item 7).
func TestOpsBackupDuringLoad(t *testing.T) {
	alongside(t)
	l := startLane(t)
	if isStoreURL(l.db) {
		t.Skip("greenlane backup copies an SQLite lane file; a store database is backed up with pg_dump (README, Store mode)")
	}
	tabletKeys := l.newKeys("tablet", "presell", 3)
	till := l.login("", l.newKey("till-1", "counter"), "")

	const perTablet = 25
	parked := make(chan string, len(tabletKeys)*perTablet)
	var tablets sync.WaitGroup
	for _, key := range tabletKeys {
		tab := l.login(presellQuery, key, "")
		tablets.Add(1)
		go func() {
			defer tablets.Done()
			for range perTablet {
				k := sale(t, tab, sbA+"sale_create", nil, nil)["physkey"].(string)
				sale(t, tab, sbA+"sale_add_product", k, map[string]any{"pid": 1001, "qty": 2}) // 11.00
				sale(t, tab, sbA+"sale_park", k, nil)
				parked <- k
			}
		}()
	}
	go func() { tablets.Wait(); close(parked) }()
	var counter sync.WaitGroup
	var completed []string
	counter.Add(1)
	go func() {
		defer counter.Done()
		for k := range parked {
			s := sale(t, till, sbA+"sale_unpark", k, nil)
			sale(t, till, sbA+"sale_add_payment", k, map[string]any{"type": 1, "amount": num(s["saletotal"])})
			if d := sale(t, till, sbA+"salesbuilder_complete", k, nil); num(d["phase"]) != 1 {
				t.Errorf("complete %s: %v", k, d)
				return
			}
			completed = append(completed, k)
		}
	}()

	loadDone := make(chan struct{})
	go func() { counter.Wait(); close(loadDone) }()

	// Backups one after another for as long as the load runs (at least
	// three; at most 40, to bound the disk used).
	dir := t.TempDir()
	var backups []string
	during := 0
backup:
	for len(backups) < 40 {
		select {
		case <-loadDone:
			if len(backups) >= 3 {
				break backup
			}
		default:
			during++
		}
		out := filepath.Join(dir, fmt.Sprintf("backup-%d.db", len(backups)))
		got, err := cli(t, "backup", "--db", l.db, "--out", out)
		if err != nil {
			t.Fatalf("backup during load: %v", err)
		}
		if !strings.Contains(got, "backup: wrote "+out) || !strings.Contains(got, ": ok\n") {
			t.Errorf("backup printed %q, want its size and the copy's check ok", got)
		}
		backups = append(backups, out)
	}
	<-loadDone
	t.Logf("%d backups, %d of them started while the load ran", len(backups), during)
	if t.Failed() {
		t.FailNow()
	}
	if len(completed) != len(tabletKeys)*perTablet {
		t.Fatalf("the counter completed %d of %d presells", len(completed), len(tabletKeys)*perTablet)
	}
	// One more after the load, which must hold every completed sale.
	last := filepath.Join(dir, "backup-last.db")
	if _, err := cli(t, "backup", "--db", l.db, "--out", last); err != nil {
		t.Fatal(err)
	}
	backups = append(backups, last)
	if _, err := cli(t, "backup", "--db", l.db, "--out", last); err == nil {
		t.Errorf("backup over an existing file was not refused")
	}

	for _, b := range backups {
		if got, err := cli(t, "check", "--db", b); err != nil || !strings.HasSuffix(got, ": ok\n") {
			t.Errorf("check %s: %q, %v", b, got, err)
		}
		db, err := lanedb.Open(context.Background(), b, lanedb.Options{})
		if err != nil {
			t.Fatalf("open backup %s: %v", b, err)
		}
		var n int
		err = db.Read.Get(&n, `SELECT COUNT(*) FROM sales WHERE phase = 1`)
		db.Close()
		if err != nil {
			t.Fatalf("read backup %s: %v", b, err)
		}
		if b == last && n != len(completed) {
			t.Errorf("the last backup holds %d completed sales, want %d", n, len(completed))
		}
	}
	if got, err := cli(t, "check", "--db", l.db); err != nil {
		t.Fatalf("check of the serving lane: %q, %v", got, err)
	}

	// A completed sale whose payment falls short is named, exit status 1.
	short := completed[len(completed)/2]
	sqliteExec(t, l.db, `UPDATE payments SET amount_cents = amount_cents - 1 WHERE sale_physkey = %s`, sqlQuote(short))
	got, err := cli(t, "check", "--db", l.db)
	if err == nil || !strings.Contains(err.Error(), "exit status 1") {
		t.Fatalf("check of a short-paid sale: err = %v, want exit status 1", err)
	}
	if want := "check: sale " + short + ": completed but paid 1099 of 1100 cents\n"; got != want {
		t.Errorf("check printed %q, want %q", got, want)
	}
	if tr := l.troubles(); tr != "" {
		t.Errorf("lane logged trouble:\n%s", tr)
	}
}
