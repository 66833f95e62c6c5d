package presell

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/greenlane-pos/greenlane/lanedb"
	"github.com/greenlane-pos/greenlane/protocol"
	"github.com/greenlane-pos/greenlane/salesbuilder"
)

// Presells nobody finishes are voided: by the sweeper once untouched for
// the lane's PresellMaxAge, or by hand from the command line.

// System is the caller the sweeper and the command line act as.
func System(name string) *protocol.Caller {
	return &protocol.Caller{KeyID: "system:" + name, KeyName: name, Scopes: []protocol.Scope{protocol.ScopeAdmin}, Session: "system:" + name}
}

// ExpireAbandoned voids open presells untouched for longer than maxAge
// (the lane's PresellMaxAge when 0) and not under a live claim, each with
// a journal row saying why. It returns the voided sales' physkeys.
func (w *Workflow) ExpireAbandoned(ctx context.Context, maxAge time.Duration, actor string) ([]string, error) {
	return w.expire(ctx, maxAge, actor, w.sales.Now)
}

// expire is ExpireAbandoned judging ages by now.
func (w *Workflow) expire(ctx context.Context, maxAge time.Duration, actor string, now func() time.Time) ([]string, error) {
	if maxAge <= 0 {
		maxAge = w.sales.PresellMaxAge()
	}
	var voided []string
	for {
		batch, err := w.expireBatch(ctx, maxAge, actor, now)
		voided = append(voided, batch...)
		if err != nil || len(batch) < expireBatchSize {
			return voided, err
		}
	}
}

// HoldingMoney lists the open presells that ExpireAbandoned, given the
// same maxAge, leaves open only because they hold payments: voiding one
// would orphan its money, so a person must finish or refund it.
func (w *Workflow) HoldingMoney(ctx context.Context, maxAge time.Duration) ([]lanedb.MoneyHeld, error) {
	if maxAge <= 0 {
		maxAge = w.sales.PresellMaxAge()
	}
	now := w.sales.Now()
	return lanedb.AbandonedHoldingMoney(ctx, w.sales.DB().Read, now.Add(-maxAge), now)
}

// expireBatchSize keeps each sweep transaction short.
const expireBatchSize = 50

func (w *Workflow) expireBatch(ctx context.Context, maxAge time.Duration, actor string, clock func() time.Time) ([]string, error) {
	var voided []string
	c := System(actor)
	err := w.sales.Do(ctx, func(ctx context.Context, tx *lanedb.Tx) error {
		voided = voided[:0]
		now := clock()
		sales, err := lanedb.AbandonedPresells(ctx, tx, now.Add(-maxAge), now, expireBatchSize)
		if err != nil {
			return err
		}
		reason := "abandoned: unchanged for " + maxAge.String()
		for i := range sales {
			if err := w.void(ctx, tx, c, &sales[i], actor, reason, "expired"); err != nil {
				return err
			}
			voided = append(voided, sales[i].Physkey)
		}
		return nil
	})
	return voided, err
}

// void voids a presell and journals the display's status event.
func (w *Workflow) void(ctx context.Context, tx *lanedb.Tx, c *protocol.Caller, sale *lanedb.Sale, actor, reason, event string) error {
	if err := w.sales.Void(ctx, tx, c, sale, actor, reason, event); err != nil {
		return err
	}
	_, err := w.sales.EmitSale(ctx, tx, salesbuilder.EvSaleStatus, actor, sale)
	return err
}

// Reference is a clock the lane's clock is checked against (store mode:
// the store database server's).
type Reference struct {
	// InStep reports an error while the lane's clock is off the reference
	// by more than Skew.
	InStep func(context.Context) error
	// Skew is how far the lane's clock may be from the reference.
	Skew time.Duration
}

// Slack is how far apart two lanes' clocks may be while each is within
// Skew of the reference: one Skew ahead, the other Skew behind. A claim
// another lane stamped a moment ago lapses up to that much later than
// this lane's now plus its lease, and must be left whole (CapClaims).
func (r *Reference) Slack() time.Duration { return 2 * r.Skew }

// Sweep voids abandoned presells every interval until ctx ends, cuts claims
// to their lease (CapClaims), and keeps the journal, the idempotency
// records and the claim bookkeeping trimmed.
//
// A clock that reads hours ahead would void presells that are not old at
// all, so the sweeper voids only what a trusted clock calls old. With a
// reference clock (ref), the sweeper asks it before each sweep whether the
// lane's clock may judge presell ages. With none (ref nil: a SQLite lane)
// the sweeper judges ages by a steadyClock, which cannot jump forward while
// the lane runs, and voids nothing until the lane has run for
// PresellMaxAge: the lane's clock at start may itself be wrong (hours
// ahead), and a presell that has waited through that whole run really is
// abandoned. The command line (ExpireAbandoned) is an operator's explicit
// act and is not held back.
func (w *Workflow) Sweep(ctx context.Context, interval time.Duration, log *slog.Logger, ref *Reference) {
	clock := newSteadyClock(w.sales.Now)
	if ref == nil {
		maxAge := w.sales.PresellMaxAge()
		log.Info("presell sweeper: this lane has no reference clock, so it voids no abandoned presell until it has run for --presell-max-age; `greenlane presell expire` voids older ones at once",
			"first_void_after", maxAge, "first_void_at", clock.start.Add(maxAge).UTC().Format(time.RFC3339))
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			w.sweepOnce(ctx, log, ref, clock)
		}
	}
}

func (w *Workflow) sweepOnce(ctx context.Context, log *slog.Logger, ref *Reference, clock *steadyClock) {
	var slack time.Duration
	if ref != nil {
		if err := ref.InStep(ctx); err != nil {
			if ctx.Err() == nil {
				log.Warn("presell sweeper: voiding nothing", "err", err)
			}
			return
		}
		slack = ref.Slack()
	}
	if n, err := w.CapClaims(ctx, slack); err != nil && ctx.Err() == nil {
		log.Warn("presell sweeper: cut claims to their lease", "err", err)
	} else if n > 0 {
		log.Info(CappedClaims, "count", n, "slack", slack)
	}
	var voided []string
	var err error
	switch {
	case ref != nil:
		// The reference clock vouched for the lane's clock just now.
		voided, err = w.expire(ctx, 0, "sweeper", w.sales.Now)
	case clock.running() >= w.sales.PresellMaxAge():
		voided, err = w.expire(ctx, 0, "sweeper", clock.Now)
	}
	if err != nil && ctx.Err() == nil {
		log.Warn("presell sweeper", "err", err)
	}
	if len(voided) > 0 {
		log.Info("voided abandoned presells", "count", len(voided), "older_than", w.sales.PresellMaxAge())
	}
	if err := w.sales.TrimJournal(ctx); err != nil && ctx.Err() == nil {
		log.Warn("journal trim", "err", err)
	}
	if err := w.pruneClaims(ctx); err != nil && ctx.Err() == nil {
		log.Warn("claim bookkeeping", "err", err)
	}
}

// Void voids one open presell named by ticket number or physkey, for the
// command line. A live claim is respected unless force.
func (w *Workflow) Void(ctx context.Context, ticketOrPhyskey, actor, reason string, force bool) (string, error) {
	var physkey string
	err := w.sales.Do(ctx, func(ctx context.Context, tx *lanedb.Tx) error {
		key := ticketOrPhyskey
		if n, err := strconv.ParseInt(ticketOrPhyskey, 10, 64); err == nil {
			pk, err := lanedb.OpenPresellBy(ctx, tx, n, "")
			if errors.Is(err, lanedb.ErrNoPresell) {
				return fmt.Errorf("no open presell has ticket %d", n)
			}
			if err != nil {
				return err
			}
			key = pk
		}
		sale, err := lanedb.GetSale(ctx, tx, strings.TrimSpace(key))
		if errors.Is(err, lanedb.ErrNoSale) {
			return fmt.Errorf("no sale with physkey %q", key)
		}
		if err != nil {
			return err
		}
		if !sale.Presell || (sale.Phase != lanedb.PhaseActive && sale.Phase != lanedb.PhaseParked) {
			return fmt.Errorf("sale %s is not an open presell (phase %d)", sale.Physkey, sale.Phase)
		}
		if sale.ClaimState.Held(w.sales.Now()) && !force {
			return fmt.Errorf("presell %s is claimed by %q until %s; use --force to void it anyway",
				sale.Physkey, sale.ClaimState.Name.String, w.sales.ClaimTime(sale.ClaimState))
		}
		physkey = sale.Physkey
		return w.void(ctx, tx, System(actor), sale, actor, reason, "voided")
	})
	return physkey, err
}
