package presell

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/greenlane-pos/greenlane/lanedb"
	"github.com/greenlane-pos/greenlane/protocol"
	"github.com/greenlane-pos/greenlane/salesbuilder"
)

// sibling is another lane of the same store: the same lane DB and writer,
// its own clock (off this lane's by skew) and its own options.
func (l *lane) sibling(skew time.Duration, opts ...func(*Options)) *lane {
	l.t.Helper()
	ctx := context.Background()
	s := &lane{t: l.t, db: l.db, clock: l.now().Add(skew)}
	o := Options{Now: s.now, Lease: 2 * time.Minute, PresellMaxAge: 12 * time.Hour}
	for _, f := range opts {
		f(&o)
	}
	sales, err := salesbuilder.New(ctx, l.db, l.svc.writer, o)
	if err != nil {
		l.t.Fatal(err)
	}
	p := New(sales)
	s.svc, s.router = services{p, l.svc.writer}, protocol.NewRouter()
	sales.Register(s.router)
	p.Register(s.router)
	return s
}

// inStep is a reference clock that vouches for the lane's clock, allowing
// skew.
func inStep(skew time.Duration) *Reference {
	return &Reference{Skew: skew, InStep: func(context.Context) error { return nil }}
}

// A claim lasts the lease its holder's lane promised, whatever lease the
// other lanes of the store run with, and however far apart (within the
// allowed skew) their clocks are: another lane's sweeper cuts none of it,
// and no other counter recalls the presell before that lease is up.
func TestClaimKeepsItsHoldersLease(t *testing.T) {
	tests := []struct {
		name                   string
		holderLease, sweeperLs time.Duration
		holderSkew, sweepSkew  time.Duration // each lane's clock off the store database's
		maxSkew                time.Duration
	}{
		{"a lane with a shorter lease", 15 * time.Second, 5 * time.Second, 0, 0, 2 * time.Second},
		{"clocks apart within the skew", 2 * time.Minute, 2 * time.Minute, 1900 * time.Millisecond, -1900 * time.Millisecond, 2 * time.Second},
		{"both at once", 15 * time.Second, 5 * time.Second, 1900 * time.Millisecond, -1900 * time.Millisecond, 2 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := newLane(t) // the store database's clock
			holder := db.sibling(tt.holderSkew, func(o *Options) { o.Lease = tt.holderLease })
			sweeper := db.sibling(tt.sweepSkew, func(o *Options) { o.Lease = tt.sweeperLs })
			p := holder.submitted(tablet("tablet-1"), 1001)
			if _, err := holder.call(counter("counter-1"), "presell.recall", p.Physkey, nil, ""); err != nil {
				t.Fatal(err)
			}
			before, err := lanedb.ReadClaim(context.Background(), db.db.Read, p.Physkey)
			if err != nil {
				t.Fatal(err)
			}
			var logs bytes.Buffer
			sweeper.svc.sweepOnce(context.Background(), slog.New(slog.NewTextHandler(&logs, nil)), inStep(tt.maxSkew), newSteadyClock(sweeper.now))
			if strings.Contains(logs.String(), "claims cut") {
				t.Errorf("the other lane's sweeper cut a live claim:\n%s", logs.String())
			}
			after, err := lanedb.ReadClaim(context.Background(), db.db.Read, p.Physkey)
			if err != nil {
				t.Fatal(err)
			}
			if after.ExpiresMS != before.ExpiresMS {
				t.Errorf("claim_expires_ms went from %d to %d", before.ExpiresMS.Int64, after.ExpiresMS.Int64)
			}
			// Just short of the holder's lease by the holder's clock.
			for _, l := range []*lane{db, holder, sweeper} {
				l.advance(tt.holderLease - 100*time.Millisecond)
			}
			_, err = sweeper.call(counter("counter-2"), "presell.recall", p.Physkey, nil, "")
			wantCode(t, err, protocol.CodeClaimed)
		})
	}
}
