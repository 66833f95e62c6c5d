package presell

import (
	"context"

	"github.com/greenlane-pos/greenlane/lanedb"
	"github.com/greenlane-pos/greenlane/protocol"
	"github.com/greenlane-pos/greenlane/salesbuilder"
)

// The counter's side of a presell once it is found: recall (claim it),
// heartbeat (keep the claim), release (give it back) and accept_prices
// (take today's prices for the lines that drifted).

// RecallView is a recalled presell: the sale, its claim, and price drift.
type RecallView struct {
	*salesbuilder.SaleView
	Claim      ClaimView   `json:"claim"`
	PriceDrift []DriftLine `json:"price_drift"`
}

// ClaimView is who holds a presell and until when.
type ClaimView struct {
	Holder  string `json:"holder"`
	Expires string `json:"expires"`
	physkey string
}

// Key is the presell the claim is on.
func (v ClaimView) Key() string { return v.physkey }

func (w *Workflow) claimView(sale *lanedb.Sale) ClaimView {
	return ClaimView{Holder: sale.ClaimState.Name.String, Expires: w.sales.ClaimTime(sale.ClaimState), physkey: sale.Physkey}
}

// Recall finds an open presell and claims it for c's socket. The answer is
// the whole sale, with the lines whose price has drifted since the tablet
// rang them up. force (admin) takes it over from a live holder.
func (w *Workflow) Recall(ctx context.Context, tx *lanedb.Tx, c *protocol.Caller, r Ref, force bool) (*RecallView, error) {
	sale, err := w.find(ctx, tx, c, r)
	if err != nil {
		return nil, err
	}
	if sale, err = w.Claim(ctx, tx, c, sale, force); err != nil {
		return nil, err
	}
	return w.recallView(ctx, tx, c, sale, salesbuilder.EvSaleStatus)
}

// recallView reads a claimed presell with its drift and journals event.
func (w *Workflow) recallView(ctx context.Context, tx *lanedb.Tx, c *protocol.Caller, sale *lanedb.Sale, event string) (*RecallView, error) {
	view, err := salesbuilder.LoadView(ctx, tx, sale)
	if err != nil {
		return nil, err
	}
	drift, err := priceDrift(ctx, tx, sale)
	if err != nil {
		return nil, err
	}
	if err := w.sales.Emit(ctx, tx, event, c.KeyName, view); err != nil {
		return nil, err
	}
	return &RecallView{SaleView: view, Claim: w.claimView(sale), PriceDrift: drift}, nil
}

// Heartbeat renews c's claim on a presell.
func (w *Workflow) Heartbeat(ctx context.Context, tx *lanedb.Tx, c *protocol.Caller, physkey string) (ClaimView, error) {
	sale, err := w.sales.Find(ctx, tx, c, physkey)
	if err != nil {
		return ClaimView{}, err
	}
	if !sale.ClaimState.Session.Valid || sale.ClaimState.Session.String != c.Session {
		if w.claims.Has(c.Session, sale.Physkey) {
			return ClaimView{}, protocol.Errorf(protocol.CodeClaimLost, "presell %s is no longer claimed by this device", sale.Physkey)
		}
		return ClaimView{}, protocol.Errorf(protocol.CodeConflict, "this device holds no claim on sale %s", sale.Physkey)
	}
	ok, err := lanedb.RenewClaim(ctx, tx, sale.Physkey, c.Session, w.sales.Now(), w.sales.Lease())
	if err != nil {
		return ClaimView{}, err
	}
	if !ok {
		return ClaimView{}, w.sales.CheckWriter(sale, c)
	}
	if sale, err = lanedb.GetSale(ctx, tx, sale.Physkey); err != nil {
		return ClaimView{}, err
	}
	return w.claimView(sale), nil
}

// ReleaseSale gives a claimed presell back (phase 5 again).
func (w *Workflow) ReleaseSale(ctx context.Context, tx *lanedb.Tx, c *protocol.Caller, physkey string) (*salesbuilder.SaleView, error) {
	sale, err := w.sales.Find(ctx, tx, c, physkey)
	if err != nil {
		return nil, err
	}
	// A closed sale has no claim either; "not claimed" would read as if
	// it were waiting in the queue.
	switch sale.Phase {
	case lanedb.PhaseCompleted:
		return nil, protocol.Errorf(protocol.CodeConflict, "sale %s was completed (sid %d): there is no claim left to release", sale.Physkey, sale.SID.Int64)
	case lanedb.PhaseVoid:
		return nil, protocol.Errorf(protocol.CodeConflict, "sale %s was voided: there is no claim left to release", sale.Physkey)
	}
	if !sale.ClaimState.Session.Valid {
		return nil, protocol.Errorf(protocol.CodeConflict, "sale %s is not claimed", sale.Physkey)
	}
	if sale, err = w.Release(ctx, tx, c, sale); err != nil {
		return nil, err
	}
	return w.sales.EmitSale(ctx, tx, salesbuilder.EvSaleStatus, c.KeyName, sale)
}

// AcceptPrices reprices a claimed presell at today's prices.
func (w *Workflow) AcceptPrices(ctx context.Context, tx *lanedb.Tx, c *protocol.Caller, physkey string) (*RecallView, error) {
	sale, err := w.sales.ForChange(ctx, tx, c, physkey)
	if err != nil {
		return nil, err
	}
	lines, now, err := reprice(ctx, tx, sale)
	if err != nil {
		return nil, err
	}
	for i := range lines {
		if now[i] != lines[i] {
			if err := lanedb.UpdateLine(ctx, tx, &now[i]); err != nil {
				return nil, err
			}
		}
	}
	if _, err := w.sales.FinishLines(ctx, tx, c, sale, ""); err != nil {
		return nil, err
	}
	return w.recallView(ctx, tx, c, sale, salesbuilder.EvSaleEdit)
}
