package bench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/greenlane-pos/greenlane/lanedb"
	"github.com/greenlane-pos/greenlane/protocol"
)

// startCounterLane starts the lane server for the recall benchmark: the
// default wiring, but for the group-commit wait and the claim lease (see
// benchLease).
func startCounterLane(ctx context.Context, db *lanedb.DB, groupWait time.Duration, log *slog.Logger) (*lane, error) {
	wopts := lanedb.DefaultWriterOptions()
	wopts.MaxWait = groupWait
	return startLane(ctx, db, laneOptions{writer: wopts, lease: benchLease, log: log})
}

// benchLease is the counters' claim lease. Each counter holds a claim
// through every get_presells figure ("qk mine" lists live claims), and a
// long run must not see it lapse; heartbeats would be extra requests on the
// measured sockets. The lease's length costs the lane nothing.
const benchLease = 24 * time.Hour

// counterURL is the socket a counter opens (no purpose: a plain FD1 socket).
func (l *lane) counterURL() string { return "ws://" + l.addr + "/fd1/open_websocket" }

// benchKey is an API key made for this run.
type benchKey struct {
	key, id string
}

// freshKey creates an API key named name. A reused lane DB still has the
// live key of that name from an earlier run: it is revoked and made anew,
// as staff would replace a device's key.
func freshKey(ctx context.Context, db *lanedb.DB, name string, scope protocol.Scope) (benchKey, error) {
	key, err := db.CreateAPIKey(ctx, name, []string{string(scope)})
	if errors.Is(err, lanedb.ErrKeyNameTaken) {
		if _, err = db.RevokeAPIKey(ctx, name); err == nil {
			key, err = db.CreateAPIKey(ctx, name, []string{string(scope)})
		}
	}
	if err != nil {
		return benchKey{}, fmt.Errorf("API key %s: %w", name, err)
	}
	k, err := db.Authenticate(ctx, key)
	if err != nil {
		return benchKey{}, fmt.Errorf("API key %s: %w", name, err)
	}
	return benchKey{key: key, id: k.KeyID}, nil
}

// voidOpenPresells voids every open presell left by an earlier run on a
// reused DB (claimed ones too), so each run measures exactly the presells
// it made. It returns how many it voided.
func voidOpenPresells(ctx context.Context, db *lanedb.DB) (int64, error) {
	var n int64
	err := db.WriteTx(ctx, func(tx *lanedb.Tx) error {
		now := lanedb.FormatDateTime(time.Now().UTC())
		res, err := tx.ExecContext(ctx, `UPDATE sales SET phase = ?, voided_utc = ?, voided_by = 'bench recall',
			claim_session = NULL, claim_key = NULL, claim_name = NULL, claim_expires_ms = NULL,
			updated_utc = ?, version = version + 1 WHERE presell = 1 AND phase IN (0, 5)`,
			lanedb.PhaseVoid, now, now)
		if err != nil {
			return fmt.Errorf("void the earlier run's open presells: %w", err)
		}
		n, err = res.RowsAffected()
		return err
	})
	return n, err
}

// setupTablets is how many tablets make the open presells at once.
const setupTablets = 4

// makeOpenPresells has tablets make n presells over their sockets, as a
// shop's tablets do (create, two products, a customer, park), so that the
// lane allocates the tickets.
func makeOpenPresells(ctx context.Context, db *lanedb.DB, l *lane, n int) error {
	stats := newLoadStats() // its window stays closed: only failures are kept
	var wg sync.WaitGroup
	errs := make([]error, setupTablets)
	for i := range setupTablets {
		share := n/setupTablets + btoi(i < n%setupTablets)
		if share == 0 {
			continue
		}
		key, err := freshKey(ctx, db, fmt.Sprintf("bench-recall-tablet-%d", i+1), protocol.ScopePresell)
		if err != nil {
			return err
		}
		wg.Go(func() { errs[i] = tabletPresells(ctx, l.presellURL(), key.key, uint64(i+1), share, stats) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("make open presells: %w", err)
	}
	if len(stats.errors) > 0 {
		return fmt.Errorf("make open presells: %s; e.g. %s", codeSummary(stats.errors), firstSample(stats))
	}
	return nil
}

// tabletPresells makes n presells on one tablet socket.
func tabletPresells(ctx context.Context, url, key string, seed uint64, n int, stats *loadStats) error {
	t, err := dialTablet(ctx, url, key, seed, stats)
	if err != nil {
		return err
	}
	defer t.close()
	for range n {
		physkey, ok, err := t.do(kindCreate, "", struct{}{})
		for range 2 {
			if ok && err == nil {
				_, ok, err = t.do(kindAddProduct, physkey, pickLine(t.rng))
			}
		}
		if ok && err == nil {
			_, ok, err = t.do(kindSetCustomer, physkey, map[string]int64{"cid": pickCustomer(t.rng)})
		}
		if ok && err == nil {
			_, ok, err = t.do(kindPark, physkey, struct{}{})
		}
		if err != nil || !ok {
			return err // an error reply is in stats
		}
	}
	return nil
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// openPresell is an open presell the counters recall.
type openPresell struct {
	ticket    int64
	physkey   string
	submitted time.Time
}

// listOpenPresells reads the open presells straight from the lane DB.
func listOpenPresells(ctx context.Context, db *lanedb.DB) ([]openPresell, error) {
	rows, _, err := lanedb.OpenPresells(ctx, db.Read, lanedb.PresellFilter{Limit: lanedb.MaxTicket})
	if err != nil {
		return nil, err
	}
	out := make([]openPresell, 0, len(rows))
	for _, r := range rows {
		submitted, err := time.Parse(lanedb.DateTime, r.SubmittedUTC)
		if err != nil || !r.Ticket.Valid {
			return nil, fmt.Errorf("open presell %s: ticket %v, submitted %q", r.Physkey, r.Ticket, r.SubmittedUTC)
		}
		out = append(out, openPresell{ticket: r.Ticket.Int64, physkey: r.Physkey, submitted: submitted})
	}
	return out, nil
}
