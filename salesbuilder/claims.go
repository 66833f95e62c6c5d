package salesbuilder

import (
	"context"
	"time"

	"github.com/greenlane-pos/greenlane/lanedb"
	"github.com/greenlane-pos/greenlane/protocol"
)

// A presell that a counter (or its tablet) has taken back is worked on
// under a claim: a lease recorded on the sale row (lanedb.Claim). Every
// change checks it here, so a device whose lease lapsed or was taken over
// cannot write, and no admin "unlock" is ever needed.

// checkWriter says whether caller may change an active sale now.
func (s *Service) checkWriter(sale *lanedb.Sale, c *protocol.Caller) error {
	claim := sale.ClaimState
	if !claim.Session.Valid {
		// Not under a claim: a sale being built belongs to its holder.
		if c.HasKeyID(sale.HolderKey) {
			return nil
		}
		return protocol.Errorf(protocol.CodeClaimed, "sale %s is held by %q, not by this key", sale.Physkey, sale.HolderName)
	}
	now := s.now()
	live := claim.Held(now)
	switch {
	case claim.Session.String == c.Session && live:
		return nil
	case claim.Session.String == c.Session:
		return protocol.Errorf(protocol.CodeClaimLost, "your claim on presell %s lapsed at %s; recall it again",
			sale.Physkey, claimTime(claim))
	case c.Claims.Has(sale.Physkey):
		return protocol.Errorf(protocol.CodeClaimLost, "presell %s was taken over by %q; this device no longer holds it",
			sale.Physkey, claim.Name.String)
	case live:
		return claimedError(sale)
	}
	return protocol.Errorf(protocol.CodeConflict, "presell %s is not claimed by this device; recall it with fd1.presell.recall", sale.Physkey)
}

// claimedError tells a would-be claimer who holds a presell, and until when.
func claimedError(sale *lanedb.Sale) error {
	return protocol.Errorf(protocol.CodeClaimed, "presell %s is claimed by %q until %s",
		sale.Physkey, sale.ClaimState.Name.String, claimTime(sale.ClaimState))
}

func claimTime(c lanedb.ClaimState) string { return c.Expires().Format(time.RFC3339) }

// claim takes a presell for caller: one conditional UPDATE in the lane DB.
// force (admin) takes it over from a live holder.
func (s *Service) claim(ctx context.Context, tx *lanedb.Tx, c *protocol.Caller, sale *lanedb.Sale, force bool) (*lanedb.Sale, error) {
	if err := checkPhase(sale, lanedb.PhaseParked, lanedb.PhaseActive); err != nil {
		return nil, err
	}
	if sale.Phase == lanedb.PhaseActive && !sale.ClaimState.Session.Valid {
		return nil, protocol.Errorf(protocol.CodeConflict, "presell %s is still being built on %q and has not been submitted", sale.Physkey, sale.HolderName)
	}
	if c.Claims == nil {
		return nil, protocol.Errorf(protocol.CodeUnsupported, "a claim is held by a socket: recall presells over a WebSocket, not in HTTP mode")
	}
	if force && !c.ActFor(protocol.ScopeAdmin) {
		return nil, protocol.Errorf(protocol.CodeForbidden, "v.force takes a presell over from its holder and needs a key with scope admin")
	}
	now := s.now()
	ok, err := lanedb.ClaimPresell(ctx, tx, lanedb.Claim{
		Physkey: sale.Physkey, Version: sale.Version, Session: c.Session, KeyID: c.KeyID, KeyName: c.KeyName,
		Now: now, Stamp: s.stamp(), Lease: s.lease, Force: force,
	})
	if err != nil {
		return nil, err
	}
	if !ok {
		if sale.ClaimState.Held(now) {
			return nil, claimedError(sale)
		}
		return nil, protocol.Errorf(protocol.CodeConflict, "presell %s changed while it was being claimed; try again", sale.Physkey)
	}
	detail := map[string]any{"ticket": sale.Ticket.Int64, "expires": now.Add(s.lease).UTC().Format(time.RFC3339)}
	if force && sale.ClaimState.Held(now) {
		detail["took_over_from"] = sale.ClaimState.Name.String
	}
	if err := s.journal(ctx, tx, "claimed", sale.Physkey, c.KeyName, detail); err != nil {
		return nil, err
	}
	c.Claims.Add(sale.Physkey)
	return lanedb.GetSale(ctx, tx, sale.Physkey)
}

// release gives a claimed presell back to the counter's queue.
func (s *Service) release(ctx context.Context, tx *lanedb.Tx, c *protocol.Caller, sale *lanedb.Sale) (*lanedb.Sale, error) {
	if err := s.checkWriter(sale, c); err != nil {
		return nil, err
	}
	ok, err := lanedb.ReleaseClaim(ctx, tx, sale.Physkey, c.Session, s.now(), s.stamp())
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, protocol.Errorf(protocol.CodeClaimLost, "presell %s is no longer claimed by this device", sale.Physkey)
	}
	if err := s.journal(ctx, tx, "released", sale.Physkey, c.KeyName, map[string]any{"ticket": sale.Ticket.Int64}); err != nil {
		return nil, err
	}
	c.Claims.Remove(sale.Physkey)
	return lanedb.GetSale(ctx, tx, sale.Physkey)
}

// journal records a presell event in the lane DB's journal.
func (s *Service) journal(ctx context.Context, tx *lanedb.Tx, event, physkey, actor string, detail map[string]any) error {
	var d any // a nil map would be journalled as null
	if detail != nil {
		d = detail
	}
	if _, err := lanedb.Journal(ctx, tx, s.now(), familyPresell, event, physkey, actor, d); err != nil {
		return err
	}
	s.notifyOnCommit(tx)
	return nil
}
