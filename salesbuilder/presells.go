package salesbuilder

import (
	"context"

	"github.com/greenlane-pos/greenlane/lanedb"
	"github.com/greenlane-pos/greenlane/protocol"
)

// Presells is the presell workflow as the sales core needs it. Package
// presell owns tickets, claims and the presell journal; lane plugs it in
// with Service.Attach. Each method runs inside the transaction of the
// change that calls it, so a presell's ticket, claim and journal row
// commit with the sale or not at all.
type Presells interface {
	// Created journals a new presell.
	Created(ctx context.Context, tx *lanedb.Tx, c *protocol.Caller, sale *lanedb.Sale) error
	// Submit gives a presell its ticket as its tablet parks it.
	Submit(ctx context.Context, tx *lanedb.Tx, c *protocol.Caller, sale *lanedb.Sale) error
	// Claim takes a parked (or lapsed) presell for c; force takes it over
	// from a live holder. It answers the sale as it now is.
	Claim(ctx context.Context, tx *lanedb.Tx, c *protocol.Caller, sale *lanedb.Sale, force bool) (*lanedb.Sale, error)
	// Release gives c's claimed presell back to the counter's queue.
	Release(ctx context.Context, tx *lanedb.Tx, c *protocol.Caller, sale *lanedb.Sale) (*lanedb.Sale, error)
	// Closed ends any claim on a sale leaving the open phases and, for a
	// presell, journals event (completed, voided, expired) with detail.
	Closed(ctx context.Context, tx *lanedb.Tx, c *protocol.Caller, sale *lanedb.Sale, event string, detail map[string]any) error
	// PaymentReversed journals a payment given back on a presell.
	PaymentReversed(ctx context.Context, tx *lanedb.Tx, c *protocol.Caller, sale *lanedb.Sale, p *lanedb.Payment) error
	// HadClaim reports whether session claimed physkey and has not given
	// it back: a write it makes without the claim is then claim_lost.
	HadClaim(session, physkey string) bool
	// Resume moves to c's session the claim on physkey that the same key's
	// earlier session (rec.Session) holds: a request retried with its ik
	// from a new connection. claims says that request was itself a claim,
	// which cannot be answered from its stored reply once the claim is gone.
	Resume(ctx context.Context, tx *lanedb.Tx, rec *lanedb.Idempotent, physkey string, c *protocol.Caller, claims bool) error
}

// noPresells is a core without the presell workflow: presells are parked
// like any sale, without a ticket, and nothing can claim them.
type noPresells struct{}

func (noPresells) Created(context.Context, *lanedb.Tx, *protocol.Caller, *lanedb.Sale) error {
	return nil
}

func (noPresells) Submit(context.Context, *lanedb.Tx, *protocol.Caller, *lanedb.Sale) error {
	return nil
}

func (noPresells) Claim(context.Context, *lanedb.Tx, *protocol.Caller, *lanedb.Sale, bool) (*lanedb.Sale, error) {
	return nil, protocol.Errorf(protocol.CodeUnsupported, "this lane does not run the presell workflow")
}

func (noPresells) Release(context.Context, *lanedb.Tx, *protocol.Caller, *lanedb.Sale) (*lanedb.Sale, error) {
	return nil, protocol.Errorf(protocol.CodeUnsupported, "this lane does not run the presell workflow")
}

func (noPresells) Closed(context.Context, *lanedb.Tx, *protocol.Caller, *lanedb.Sale, string, map[string]any) error {
	return nil
}

func (noPresells) PaymentReversed(context.Context, *lanedb.Tx, *protocol.Caller, *lanedb.Sale, *lanedb.Payment) error {
	return nil
}

func (noPresells) HadClaim(string, string) bool { return false }

func (noPresells) Resume(context.Context, *lanedb.Tx, *lanedb.Idempotent, string, *protocol.Caller, bool) error {
	return nil
}
