package presell

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/greenlane-pos/greenlane/protocol"
)

// TestClaimCappedAtALeaseAfterAClockStepBack: a claim taken while the
// lane's clock read 45 minutes later than it does now has at most one
// lease (2m here) left: the list says so, the sweeper cuts it to that, and
// another counter recalls the presell once that lease is up. The list
// never shows a negative age.
func TestClaimCappedAtALeaseAfterAClockStepBack(t *testing.T) {
	l := newLane(t) // Lease 2m
	c1, c2 := counter("counter-1"), counter("counter-2")
	l.advance(45 * time.Minute)
	p := l.submitted(tablet("tablet-1"), 1001)
	if _, err := l.call(c1, "presell.recall", p.Physkey, nil, ""); err != nil {
		t.Fatal(err)
	}
	l.advance(-45 * time.Minute)

	ep, _ := l.router.Lookup("fd1.presell.get_presells")
	res, err := ep.Handler(context.Background(), &protocol.Call{Req: &protocol.Request{A: ep.Name}, Caller: c2, Endpoint: ep})
	if err != nil {
		t.Fatal(err)
	}
	rows := res.Data.(protocol.Rows).Rows.([]PresellRow)
	want := l.now().Add(2 * time.Minute).UTC().Format(time.RFC3339)
	if len(rows) != 1 || rows[0].Age != 0 || rows[0].ClaimExpires == nil || *rows[0].ClaimExpires != want {
		t.Fatalf("get_presells after the clock went back 45m: %+v; want age 0, claim_expires %s", rows, want)
	}

	var logs bytes.Buffer
	l.svc.sweepOnce(context.Background(), slog.New(slog.NewTextHandler(&logs, nil)), nil, newSteadyClock(l.now))
	if !strings.Contains(logs.String(), "claims cut to one lease") || !strings.Contains(logs.String(), "count=1") {
		t.Fatalf("the sweeper did not cut the claim:\n%s", logs.String())
	}
	l.advance(2*time.Minute - time.Second)
	_, err = l.call(c2, "presell.recall", p.Physkey, nil, "")
	wantCode(t, err, protocol.CodeClaimed)
	l.advance(time.Second)
	if _, err := l.call(c2, "presell.recall", p.Physkey, nil, ""); err != nil {
		t.Fatalf("recall once the capped lease is up: %v", err)
	}
}
