package salesbuilder

import (
	"context"
	"errors"

	"github.com/greenlane-pos/greenlane/lanedb"
	"github.com/greenlane-pos/greenlane/protocol"
)

// Reads answer from the lane DB's read pool, outside the writer.

// OpenSales summarises the caller's active and parked sales, newest change
// first.
func (s *Service) OpenSales(ctx context.Context, c *protocol.Caller) ([]ActiveView, error) {
	sales, err := openSales(ctx, s.db.Read, c, maxOpenSales)
	if err != nil {
		return nil, err
	}
	now := s.localNow()
	elsewhere := s.tops.others(c.KeyID, c.Session, s.SessionGone)
	rows := make([]ActiveView, len(sales))
	for i := range sales {
		rows[i] = activeView(&sales[i], now)
		rows[i].InUseElsewhere = elsewhere[sales[i].Physkey]
	}
	return rows, nil
}

// ActiveSale summarises one active or parked sale.
func (s *Service) ActiveSale(ctx context.Context, c *protocol.Caller, ref string) (*ActiveView, error) {
	sale, err := s.resolve(ctx, s.db.Read, c, ref)
	if err != nil {
		return nil, err
	}
	if err := CheckPhase(sale, lanedb.PhaseActive, lanedb.PhaseParked); err != nil {
		return nil, protocol.Errorf(protocol.CodeNotFound, "get_sale shows active sales only: %s (use sale_fetch)", protocol.AsError(err).Message)
	}
	view := activeView(sale, s.localNow())
	return &view, nil
}

// Fetch reads a whole sale, in any phase.
func (s *Service) Fetch(ctx context.Context, c *protocol.Caller, ref string) (*SaleView, error) {
	sale, err := s.resolve(ctx, s.db.Read, c, ref)
	if err != nil {
		return nil, err
	}
	return LoadView(ctx, s.db.Read, sale)
}

// UnitPrice is what one unit (or kilogram) of a product costs.
type UnitPrice struct {
	PID         int64          `json:"pid"`
	Price       protocol.Money `json:"price"`
	Measurement int64          `json:"measurement"`
}

// Prices prices products for the customer of the sale ref names, in the
// order asked. Without a sale (ref "" and no top sale) they are list
// prices and physkey is "".
func (s *Service) Prices(ctx context.Context, c *protocol.Caller, ref string, pids []int64) (physkey string, prices []UnitPrice, err error) {
	var customer *lanedb.SaleCustomer
	sale, err := s.resolve(ctx, s.db.Read, c, ref)
	var pe *protocol.Error
	switch {
	case err == nil:
		physkey = sale.Physkey
		if customer, err = SaleCustomer(ctx, s.db.Read, sale); err != nil {
			return "", nil, err
		}
	case errors.As(err, &pe) && (pe.Code == protocol.CodeNotFound || pe.Code == protocol.CodeClaimLost) && ref == "":
		// No sale of its own (none yet, or its top sale has gone): list
		// prices, with physkey "" saying no customer's prices were used.
	default:
		return "", nil, err
	}
	products, err := lanedb.ProductsByPID(ctx, s.db.Read, pids)
	if err != nil {
		return "", nil, err
	}
	// A pid no product has is left out, as SPEC §3.3 has an unknown record
	// answered: the others' prices still come back.
	prices = make([]UnitPrice, 0, len(pids))
	for _, pid := range pids {
		if p, ok := products[pid]; ok {
			prices = append(prices, UnitPrice{PID: pid, Price: protocol.Money(unitPriceFor(p, customer)), Measurement: p.Measurement})
		}
	}
	return physkey, prices, nil
}
