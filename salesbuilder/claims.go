package salesbuilder

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/greenlane-pos/greenlane/lanedb"
	"github.com/greenlane-pos/greenlane/protocol"
)

// A presell that a counter (or its tablet) has taken back is worked on
// under a claim: a lease recorded on the sale row (lanedb.Claim). Every
// change checks it here, so a device whose lease lapsed or was taken over
// cannot write, and no admin "unlock" is ever needed.

// claimSet remembers which sessions have held a claim on which open sale,
// so that a write from a device whose claim lapsed or was taken over can
// say so (claim_lost) rather than "held by someone else". It is kept by
// sale: a sale that closes is forgotten whole, so the set never outgrows
// the open presells, and no session needs to tell it that it has ended.
// It changes only after the transaction that made the claim commits
// (tx.OnCommit): a claim rolled back is never remembered.
type claimSet struct {
	mu     sync.Mutex
	bySale map[string]map[string]bool // physkey -> sessions that claimed it
}

func newClaimSet() *claimSet { return &claimSet{bySale: map[string]map[string]bool{}} }

// Add records, once tx commits, that session claimed physkey.
func (c *claimSet) Add(tx *lanedb.Tx, physkey, session string) {
	tx.OnCommit(func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.bySale[physkey] == nil {
			c.bySale[physkey] = map[string]bool{}
		}
		c.bySale[physkey][session] = true
	})
}

// Remove forgets, once tx commits, that session claimed physkey (it gave
// the presell back itself).
func (c *claimSet) Remove(tx *lanedb.Tx, physkey, session string) {
	tx.OnCommit(func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		delete(c.bySale[physkey], session)
		if len(c.bySale[physkey]) == 0 {
			delete(c.bySale, physkey)
		}
	})
}

// Forget drops every session's record of physkey once tx commits: the
// sale has closed and can never be claimed or written again.
func (c *claimSet) Forget(tx *lanedb.Tx, physkey string) {
	tx.OnCommit(func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		delete(c.bySale, physkey)
	})
}

// physkeys lists the sales the set remembers.
func (c *claimSet) physkeys() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]string, 0, len(c.bySale))
	for k := range c.bySale {
		out = append(out, k)
	}
	return out
}

// drop forgets physkey now (for sales already closed in the lane DB).
func (c *claimSet) drop(physkey string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.bySale, physkey)
}

// pruneClaims forgets sales that were closed without the lane (a counter
// program completing a presell in the lane DB directly): only a closed
// sale is forgotten, and a closed sale never opens again, so this cannot
// race with a new claim.
func (s *Service) pruneClaims(ctx context.Context) error {
	for _, k := range s.claims.physkeys() {
		sale, err := lanedb.GetSale(ctx, s.db.Read, k)
		switch {
		case errors.Is(err, lanedb.ErrNoSale):
			s.claims.drop(k)
		case err != nil:
			return err
		case sale.Phase != lanedb.PhaseActive && sale.Phase != lanedb.PhaseParked:
			s.claims.drop(k)
		}
	}
	return nil
}

// Has reports whether session has claimed physkey (and not given it back).
func (c *claimSet) Has(session, physkey string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.bySale[physkey][session]
}

// canClaim reports whether a caller's session can hold a claim: a claim
// lives as long as a socket, and an HTTP-mode session lasts one call.
func canClaim(c *protocol.Caller) bool { return c.Transport != "http" && c.Session != "" }

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
	case s.claims.Has(c.Session, sale.Physkey):
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
	if !canClaim(c) {
		return nil, protocol.Errorf(protocol.CodeUnsupported, "a claim is held by a socket: recall presells over a WebSocket, not in HTTP mode")
	}
	if force && !c.ActFor(protocol.ScopeAdmin) {
		return nil, protocol.Errorf(protocol.CodeForbidden, "v.force takes a presell over from its holder and needs a key with scope admin")
	}
	now := s.now()
	// A counter whose page reloaded or whose link dropped recalls with the
	// key that holds the claim, from a new connection: once the old one is
	// gone, the claim moves over instead of waiting out the lease. While it
	// is still connected, and for any other key, the claim stands.
	resumed := !force && sale.ClaimState.Held(now) && sale.ClaimState.Key.String == c.KeyID &&
		sale.ClaimState.Session.String != c.Session && s.sessionGone(sale.ClaimState.Session.String)
	ok, err := lanedb.ClaimPresell(ctx, tx, lanedb.Claim{
		Physkey: sale.Physkey, Version: sale.Version, Session: c.Session, KeyID: c.KeyID, KeyName: c.KeyName,
		Now: now, Stamp: s.stamp(), Lease: s.lease, Force: force || resumed,
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
	if resumed {
		detail["resumed"] = true // from the same key's earlier connection
	}
	if err := s.journal(ctx, tx, "claimed", sale.Physkey, c.KeyName, detail); err != nil {
		return nil, err
	}
	s.claims.Add(tx, sale.Physkey, c.Session)
	return lanedb.GetSale(ctx, tx, sale.Physkey)
}

// sessionGone reports whether a claim's session is known to be closed.
func (s *Service) sessionGone(session string) bool {
	return s.sessionOpen != nil && !s.sessionOpen(session)
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
	s.claims.Remove(tx, sale.Physkey, c.Session)
	return lanedb.GetSale(ctx, tx, sale.Physkey)
}

// journal records a presell event in the lane DB's journal.
func (s *Service) journal(ctx context.Context, tx *lanedb.Tx, event, physkey, actor string, detail map[string]any) error {
	var d any // a nil map would be journalled as null
	if detail != nil {
		d = detail
	}
	if _, err := lanedb.Journal(ctx, tx, s.now(), FamilyPresell, event, physkey, actor, d); err != nil {
		return err
	}
	s.notifyOnCommit(tx)
	return nil
}
