package lanedb

import (
	"context"
	"fmt"
	"time"
)

// ClockSkew is how far now reads ahead of the database server's clock
// (negative: behind). On a store database every lane judges presell ages
// and claim leases by its own clock, so the lanes' clocks must agree; the
// server's is the one they share. It reads that clock three times and
// keeps the reading with the shortest round trip, taking the server's
// time as read halfway through it. A SQLite lane DB has no clock of its
// own: 0.
func (db *DB) ClockSkew(ctx context.Context, now func() time.Time) (time.Duration, error) {
	if !db.Postgres() {
		return 0, nil
	}
	var skew, best time.Duration
	for i := range 3 {
		var server time.Time
		before := now()
		if err := db.Read.QueryRowContext(ctx, "SELECT clock_timestamp()").Scan(&server); err != nil {
			return 0, fmt.Errorf("read the store database's clock: %w", err)
		}
		rtt := now().Sub(before)
		if i == 0 || rtt < best {
			best, skew = rtt, before.Add(rtt/2).Sub(server)
		}
	}
	return skew, nil
}
