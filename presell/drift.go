package presell

import (
	"context"

	"github.com/greenlane-pos/greenlane/lanedb"
	"github.com/greenlane-pos/greenlane/protocol"
	"github.com/greenlane-pos/greenlane/salesbuilder"
)

// A presell waits at the counter while prices may change. A recall shows
// each line whose stored price differs from what it would cost now, and
// accept_prices takes the new prices.

// DriftLine is a line whose stored price differs from what the product (and
// the customer's discount) would cost now.
type DriftLine struct {
	Seqnce       int64          `json:"seqnce"`
	PID          int64          `json:"pid"`
	Description  string         `json:"description"`
	OldUnitPrice protocol.Money `json:"old_unitprice"`
	NewUnitPrice protocol.Money `json:"new_unitprice"`
	OldPrice     protocol.Money `json:"old_price"`
	NewPrice     protocol.Money `json:"new_price"`
}

// priceDrift compares each line (except prices set by hand) with today's
// price for the sale's customer.
func priceDrift(ctx context.Context, tx *lanedb.Tx, sale *lanedb.Sale) ([]DriftLine, error) {
	lines, repriced, err := reprice(ctx, tx, sale)
	if err != nil {
		return nil, err
	}
	drift := []DriftLine{}
	for i, l := range lines {
		n := repriced[i]
		if n.TotalPriceCents == l.TotalPriceCents && n.UnitPriceCents == l.UnitPriceCents {
			continue
		}
		drift = append(drift, DriftLine{
			Seqnce: l.Seqnce, PID: l.PID, Description: l.Description,
			OldUnitPrice: protocol.Money(l.UnitPriceCents), NewUnitPrice: protocol.Money(n.UnitPriceCents),
			OldPrice: protocol.Money(l.TotalPriceCents), NewPrice: protocol.Money(n.TotalPriceCents),
		})
	}
	return drift, nil
}

// reprice returns the sale's lines as stored and as they would be priced
// now (same order). Lines priced by hand, and lines whose product is gone,
// keep their price.
func reprice(ctx context.Context, tx *lanedb.Tx, sale *lanedb.Sale) (lines, now []lanedb.Line, err error) {
	if lines, err = lanedb.SaleLines(ctx, tx, sale.Physkey); err != nil {
		return nil, nil, err
	}
	pids := make([]int64, len(lines))
	for i, l := range lines {
		pids[i] = l.PID
	}
	products, err := lanedb.ProductsByPID(ctx, tx, pids)
	if err != nil {
		return nil, nil, err
	}
	customer, err := salesbuilder.SaleCustomer(ctx, tx, sale)
	if err != nil {
		return nil, nil, err
	}
	now = make([]lanedb.Line, len(lines))
	for i, l := range lines {
		n := l
		if p, ok := products[l.PID]; ok && l.PriceCause != salesbuilder.CauseUserPrice {
			n.UnitPriceCents = p.PriceCents
			salesbuilder.PriceLine(&n, customer)
		}
		now[i] = n
	}
	return lines, now, nil
}
