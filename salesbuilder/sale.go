package salesbuilder

import (
	"context"
	"database/sql"
	"errors"
	"sort"

	"github.com/jmoiron/sqlx"

	"github.com/greenlane-pos/greenlane/lanedb"
	"github.com/greenlane-pos/greenlane/protocol"
)

// Which sale a change means, and whether its caller may make it. A sale is
// named by its physkey; "" names the caller's top sale (the one it changed
// last), as FD1's absent k or k "active" does.

// maxOpenSales caps the caller's list of open sales.
const maxOpenSales = 500

// Resolve finds the sale ref names: its physkey, or "" for the most
// recently changed active sale of the caller's keys, which only a socket
// that has touched no sale may take (Service.Find decides). A caller that does not see the whole lane (a presell
// tablet) finds only its own sales: another's is not_found, told apart
// from a sale that does not exist by nothing.
func Resolve(ctx context.Context, q sqlx.QueryerContext, c *protocol.Caller, ref string) (*lanedb.Sale, error) {
	physkey := ref
	if physkey == "" {
		top, err := topSale(ctx, q, c)
		if err != nil {
			return nil, err
		}
		if top == "" {
			return nil, protocol.Errorf(protocol.CodeNotFound, "no active sale for key %q: create one with sale_create, or name one in k", c.KeyName)
		}
		physkey = top
	}
	sale, err := lanedb.GetSale(ctx, q, physkey)
	if errors.Is(err, lanedb.ErrNoSale) || (err == nil && !visible(sale, c)) {
		return nil, protocol.Errorf(protocol.CodeNotFound, "no sale with physkey %q", Clip(physkey))
	}
	return sale, err
}

// resolveParked is Resolve, except that ref "" takes the caller's most
// recently parked sale (the top sale is by definition not parked).
func resolveParked(ctx context.Context, tx *lanedb.Tx, c *protocol.Caller, ref string) (*lanedb.Sale, error) {
	if ref != "" {
		return Resolve(ctx, tx, c, ref)
	}
	sales, err := openSales(ctx, tx, c, maxOpenSales)
	if err != nil {
		return nil, err
	}
	for i := range sales {
		if sales[i].Phase == lanedb.PhaseParked {
			return &sales[i], nil
		}
	}
	return nil, protocol.Errorf(protocol.CodeNotFound, "key %q has no parked sale; name one in k", c.KeyName)
}

// visible reports whether c may see sale: counters, displays and admin see
// every sale; any other key only those its session's keys created or hold.
func visible(sale *lanedb.Sale, c *protocol.Caller) bool {
	return c.SeesLane() || c.HasKeyName(sale.CreatedBy) || c.HasKeyID(sale.HolderKey)
}

// topSale is the most recently changed active sale held by any key logged
// in on the session ("" if none): several logins share their sales.
func topSale(ctx context.Context, q sqlx.QueryerContext, c *protocol.Caller) (string, error) {
	var best *lanedb.Sale
	for _, id := range c.KeyIDs() {
		physkey, err := lanedb.TopSale(ctx, q, id)
		if err != nil || physkey == "" {
			if err != nil {
				return "", err
			}
			continue
		}
		sale, err := lanedb.GetSale(ctx, q, physkey)
		if err != nil {
			return "", err
		}
		if best == nil || newerSale(sale, best) {
			best = sale
		}
	}
	if best == nil {
		return "", nil
	}
	return best.Physkey, nil
}

// openSales lists the active and parked sales held by any key of the
// session, newest change first, at most limit.
func openSales(ctx context.Context, q sqlx.QueryerContext, c *protocol.Caller, limit int) ([]lanedb.Sale, error) {
	var out []lanedb.Sale
	for _, id := range c.KeyIDs() {
		sales, err := lanedb.OpenSales(ctx, q, id, limit)
		if err != nil {
			return nil, err
		}
		out = append(out, sales...)
	}
	sort.SliceStable(out, func(i, j int) bool { return newerSale(&out[i], &out[j]) })
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// newerSale orders sales as the lane DB's holder index does: latest change
// first, then physkey descending.
func newerSale(a, b *lanedb.Sale) bool {
	if a.UpdatedUTC != b.UpdatedUTC {
		return a.UpdatedUTC > b.UpdatedUTC
	}
	return a.Physkey > b.Physkey
}

// ForChange resolves the sale and checks that c can change it: it must be
// active and held by c's key (or c's claim), and once it holds a payment c
// needs the counter scope.
func (s *Service) ForChange(ctx context.Context, tx *lanedb.Tx, c *protocol.Caller, ref string) (*lanedb.Sale, error) {
	sale, _, err := s.forChange(ctx, tx, c, ref)
	return sale, err
}

// forChange is ForChange, answering too what it read of the sale.
func (s *Service) forChange(ctx context.Context, tx *lanedb.Tx, c *protocol.Caller, ref string) (*lanedb.Sale, read, error) {
	if err := namesSale(c, ref, "a change to a sale"); err != nil {
		return nil, read{}, err
	}
	sale, err := s.resolve(ctx, tx, c, ref)
	if err != nil {
		return nil, read{}, err
	}
	r, err := checkPaidFor(ctx, tx, sale, c)
	if err != nil {
		return nil, read{}, err
	}
	if err := CheckPhase(sale, lanedb.PhaseActive); err != nil {
		return nil, read{}, err
	}
	if err := s.CheckWriter(sale, c); err != nil {
		return nil, read{}, err
	}
	return sale, r, nil
}

// CheckPhase explains why a sale is not in one of the wanted phases.
func CheckPhase(sale *lanedb.Sale, want ...int) error {
	for _, p := range want {
		if sale.Phase == p {
			return nil
		}
	}
	switch sale.Phase {
	case lanedb.PhaseCompleted:
		return protocol.Errorf(protocol.CodeConflict, "sale %s is completed (sid %d) and cannot change", sale.Physkey, sale.SID.Int64)
	case lanedb.PhaseVoid:
		return protocol.Errorf(protocol.CodeConflict, "sale %s was cancelled", sale.Physkey)
	case lanedb.PhaseParked:
		if sale.Presell && sale.Ticket.Valid {
			// sale_unpark is not how a presell comes back, and a tablet
			// that resubmits should hear that it already has its ticket.
			return protocol.Errorf(protocol.CodeConflict, "sale %s is parked: it was submitted as presell ticket %d, and changes again only once a counter recalls it (fd1.presell.recall)", sale.Physkey, sale.Ticket.Int64)
		}
		return protocol.Errorf(protocol.CodeConflict, "sale %s is parked; sale_unpark it first", sale.Physkey)
	case lanedb.PhaseActive:
		return protocol.Errorf(protocol.CodeConflict, "sale %s is active, not parked", sale.Physkey)
	}
	return protocol.Errorf(protocol.CodeConflict, "sale %s is in phase %d", sale.Physkey, sale.Phase)
}

// save stamps a changed sale and writes it. A change by the holder of the
// sale's claim renews the claim's lease.
func (s *Service) save(ctx context.Context, tx *lanedb.Tx, c *protocol.Caller, sale *lanedb.Sale) error {
	sale.UpdatedUTC = s.Stamp()
	if sale.ClaimState.Session.Valid && sale.ClaimState.Session.String == c.Session {
		sale.ClaimState.ExpiresMS = sql.NullInt64{Int64: s.now().Add(s.lease).UnixMilli(), Valid: true}
		sale.ClaimState.LeaseMS = sql.NullInt64{Int64: s.lease.Milliseconds(), Valid: true}
	}
	return lanedb.UpdateSale(ctx, tx, sale)
}

// SaleCustomer is the customer on a sale, nil if none (or gone).
func SaleCustomer(ctx context.Context, q sqlx.QueryerContext, sale *lanedb.Sale) (*lanedb.SaleCustomer, error) {
	if !sale.CID.Valid {
		return nil, nil
	}
	c, err := lanedb.CustomerByCID(ctx, q, sale.CID.Int64)
	if errors.Is(err, lanedb.ErrNoCustomer) {
		return nil, nil
	}
	return c, err
}

// Clip shortens a client's string for an error message.
func Clip(s string) string {
	if len(s) > 60 {
		return s[:60] + "…"
	}
	return s
}
