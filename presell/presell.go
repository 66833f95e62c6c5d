// Package presell is the presell workflow: a tablet builds a sale on a
// presell socket and parks it, which submits it with a ticket (number,
// word and barcode); a counter finds it (get_presells) and recalls it by
// any of those, which claims it under a lease with fencing; the claim is
// kept by changes and heartbeats and given back by release, prices that
// drifted meanwhile are shown and accepted, and presells nobody finishes
// are voided by the sweeper. It builds on the sales core (package
// salesbuilder), which asks it for tickets and claims through the
// salesbuilder.Presells interface; fd1.go is its FD1 adapter.
package presell

import (
	"context"

	"github.com/greenlane-pos/greenlane/internal/setting"
	"github.com/greenlane-pos/greenlane/lanedb"
	"github.com/greenlane-pos/greenlane/protocol"
	"github.com/greenlane-pos/greenlane/salesbuilder"
)

// Family is the journal family of presell events (submitted, claimed,
// released, completed, voided, expired, payment_reversed…), which
// firehoses follow as presell.*: the detail says what is particular to the
// event; the row's physkey, actor and time say which presell, who and when.
const Family = "presell"

// Workflow is the presell workflow of one lane.
type Workflow struct {
	sales  *salesbuilder.Service
	claims *claimSet
}

// New returns the workflow over a sales core and plugs itself into it.
func New(sales *salesbuilder.Service) *Workflow {
	w := &Workflow{sales: sales, claims: newClaimSet()}
	sales.Attach(w)
	return w
}

// journal records a presell event in the lane DB's journal and rings the
// firehose once it commits.
func (w *Workflow) journal(ctx context.Context, tx *lanedb.Tx, event, physkey, actor string, detail map[string]any) error {
	var d any // a nil map would be journalled as null
	if detail != nil {
		d = detail
	}
	if err := lanedb.Journal(ctx, tx, w.sales.Now(), Family, event, physkey, actor, d); err != nil {
		return err
	}
	w.sales.NotifyOnCommit(tx)
	return nil
}

// Created journals a new presell.
func (w *Workflow) Created(ctx context.Context, tx *lanedb.Tx, c *protocol.Caller, sale *lanedb.Sale) error {
	return w.journal(ctx, tx, "created", sale.Physkey, c.KeyName, nil)
}

// Closed ends the claim on a sale leaving the open phases and, for a
// presell, journals why. Its ticket is free from here on (tickets are
// unique among open presells).
func (w *Workflow) Closed(ctx context.Context, tx *lanedb.Tx, c *protocol.Caller, sale *lanedb.Sale, event string, detail map[string]any) error {
	if sale.ClaimState.Session.Valid {
		if err := lanedb.ClearClaim(ctx, tx, sale.Physkey); err != nil {
			return err
		}
	}
	w.claims.Forget(tx, sale.Physkey)
	if !sale.Presell {
		return nil
	}
	return w.journal(ctx, tx, event, sale.Physkey, c.KeyName, detail)
}

// PaymentReversed journals a payment a counter gave back on a presell.
func (w *Workflow) PaymentReversed(ctx context.Context, tx *lanedb.Tx, c *protocol.Caller, sale *lanedb.Sale, p *lanedb.Payment) error {
	return w.journal(ctx, tx, "payment_reversed", sale.Physkey, c.KeyName, map[string]any{
		"ticket": sale.Ticket.Int64, "seq": p.Sequence, "type": p.GlobalCode, "amount": protocol.Money(p.AmountCents),
	})
}

// Config is the presell workflow's settings. DefaultConfig holds every
// default.
type Config struct {
	// Workers is how many requests one presell socket may run at once; a
	// tablet's requests on one sale still run in order (they share a route
	// key, the sale). 1 to 1024. Default 4.
	Workers int
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config { return Config{Workers: 4} }

// Validate reports every field out of its range, each as a
// *setting.Error naming the field.
func (c Config) Validate() error {
	return setting.Range("Workers", c.Workers, 1, 1024)
}
