package integration

import (
	"os"
	"strings"
	"testing"
	"time"
)

// The lane's clock stepped while presells are open (serve --clock stands
// in for a lane PC whose clock is wrong).

// TestSweeperIgnoresAClockAhead: a lane restarted with its clock 13h ahead
// (a PC in New Zealand whose hardware clock keeps local time, read as UTC)
// voids no presell that is seconds old, however often it sweeps: with no
// reference clock it voids nothing until it has run for --presell-max-age,
// and says so at start. `greenlane presell expire` still voids at once.
func TestSweeperIgnoresAClockAhead(t *testing.T) {
	alongside(t)
	if os.Getenv("GREENLANE_IT_STORE") != "" {
		t.Skip("a SQLite lane's sweeper: a store lane refuses --clock off the database's clock (TestStoreServeRefusesAClockOffTheStore)")
	}
	l := startLane(t)
	tab := dialMux(t, l, "tablet-1", presellQuery, l.newKeys("tablet", "presell", 1)[0], "")
	pk := presellOn(t, tab, 0, soldLine{1001, 1})["physkey"].(string)
	l.stop()

	l = startLaneAt(t, l.db, "--clock", "13h", "--presell-sweep-every", "100ms")
	// Ten sweeps' worth: today's sweeper voided it at the first.
	time.Sleep(time.Second)
	if row := dbSale(t, l, pk); row["phase"] != 5.0 || row["voided_by"] != nil {
		t.Fatalf("a presell seconds old, after the lane came back 13h ahead: %v", row)
	}
	if strings.Contains(l.log(), "voided abandoned presells") {
		t.Fatalf("the sweeper voided presells:\n%s", l.log())
	}
	if !strings.Contains(l.log(), "voids no abandoned presell until it has run for --presell-max-age") ||
		!strings.Contains(l.log(), "greenlane presell expire") || !strings.Contains(l.log(), "first_void_after=12h0m0s") {
		t.Fatalf("the lane did not say when its sweeper first voids:\n%s", l.log())
	}

	out, err := cli(t, "presell", "expire", "--db", l.db, "--older-than", "1s")
	if err != nil || !strings.Contains(out, "expired presell "+pk) {
		t.Fatalf("presell expire: %v\n%s", err, out)
	}
}

// TestClaimOutlivesNoLeaseAfterAClockStepBack: a claim taken while the
// lane's clock read 45 minutes later than it does after a restart lasts
// one lease (--presell-lease) from the restart, not 45 minutes more: the
// list shows it lapsing within a lease, and another counter recalls the
// presell once that lease is up. The presell's age is never negative.
func TestClaimOutlivesNoLeaseAfterAClockStepBack(t *testing.T) {
	alongside(t)
	l := startLane(t, "--clock", "45m")
	keys := l.newKeys("counter", "counter", 2)
	tab := dialMux(t, l, "tablet-1", presellQuery, l.newKeys("tablet", "presell", 1)[0], "")
	pk := presellOn(t, tab, 0, soldLine{1001, 1})["physkey"].(string)
	c1 := dialMux(t, l, "counter-1", "", keys[0], "")
	c1.sale(t, presellA+"recall", pk, nil)
	l.stop()

	const lease = 3 * time.Second
	l = startLaneAt(t, l.db, "--presell-lease", lease.String())
	c2 := dialMux(t, l, "counter-2", "", keys[1], "")
	rows, _ := presellList(t, c2, nil, nil, nil)
	if len(rows) != 1 || num(rows[0]["age"]) < 0 {
		t.Fatalf("get_presells after the clock went back 45m: %v", rows)
	}
	if exp, ok := rows[0]["claim_expires"].(string); ok {
		at, err := time.Parse(time.RFC3339, exp)
		if err != nil || at.After(time.Now().Add(time.Minute)) {
			t.Fatalf("claim_expires %s, after the clock went back 45m with a lease of %s", exp, lease)
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		r := c2.do(t, presellA+"recall", pk, nil)
		if r.Error == nil {
			break
		}
		if r.Error.Code != "claimed" || time.Now().After(deadline) {
			t.Fatalf("counter-2's recall, a lease of %s after the restart: %s", lease, r.raw)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
