package presell

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/greenlane-pos/greenlane/lanedb"
	"github.com/greenlane-pos/greenlane/protocol"
	"github.com/greenlane-pos/greenlane/salesbuilder"
)

// A claim is a lease on the sale row (lanedb.Claim): who holds the presell
// (session, key) and until when. It is taken by one conditional UPDATE that
// also checks the sale's version (fencing: a claim decided on a stale read
// fails), renewed by every change and heartbeat of its holder, and given
// back by release, park, completion or void. The sales core checks it on
// every write (salesbuilder.Service.CheckWriter).

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
func (w *Workflow) pruneClaims(ctx context.Context) error {
	for _, k := range w.claims.physkeys() {
		sale, err := lanedb.GetSale(ctx, w.sales.DB().Read, k)
		switch {
		case errors.Is(err, lanedb.ErrNoSale):
			w.claims.drop(k)
		case err != nil:
			return err
		case sale.Phase != lanedb.PhaseActive && sale.Phase != lanedb.PhaseParked:
			w.claims.drop(k)
		}
	}
	return nil
}

// CapClaims cuts every claim that lapses more than slack later than a
// whole lease from now (the claim's own lease, given by its holder's lane)
// down to now plus that lease (lanedb.CapClaims), so that a claim stamped
// while a clock read later than the lane's does now lasts no longer than
// its lease. slack is how far apart lanes sharing a store database may keep
// their clocks (Reference.Slack): a claim another lane made a moment ago,
// by a clock that far ahead, is left whole. The lane runs it at start and
// the sweeper on every sweep.
func (w *Workflow) CapClaims(ctx context.Context, slack time.Duration) (int, error) {
	var n int
	err := w.sales.Do(ctx, func(ctx context.Context, tx *lanedb.Tx) error {
		var err error
		n, err = lanedb.CapClaims(ctx, tx, w.sales.Now(), w.sales.Lease(), slack)
		return err
	})
	return n, err
}

// CappedClaims is what the lane logs when CapClaims cut claims: each was
// stamped by a clock that read later than this lane's does now, by more
// than the slack between lanes' clocks.
const CappedClaims = "claims cut to one lease from now: they lapsed later than that, stamped by a clock that read later " +
	"than this lane's does now (this lane's clock set back, or another lane's too far ahead)"

// Has reports whether session has claimed physkey (and not given it back).
func (c *claimSet) Has(session, physkey string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.bySale[physkey][session]
}

// HadClaim reports whether session claimed physkey and has not given it
// back.
func (w *Workflow) HadClaim(session, physkey string) bool { return w.claims.Has(session, physkey) }

// Claim takes a presell for c: one conditional UPDATE in the lane DB.
// force (admin) takes it over from a live holder.
func (w *Workflow) Claim(ctx context.Context, tx *lanedb.Tx, c *protocol.Caller, sale *lanedb.Sale, force bool) (*lanedb.Sale, error) {
	if err := salesbuilder.CheckPhase(sale, lanedb.PhaseParked, lanedb.PhaseActive); err != nil {
		return nil, err
	}
	if sale.Phase == lanedb.PhaseActive && !sale.ClaimState.Session.Valid {
		return nil, protocol.Errorf(protocol.CodeConflict, "presell %s is still being built on %q and has not been submitted", sale.Physkey, sale.HolderName)
	}
	if !salesbuilder.CanClaim(c) {
		return nil, protocol.Errorf(protocol.CodeUnsupported, "a claim is held by a socket: recall presells over a WebSocket, not in HTTP mode")
	}
	if force && !c.ActFor(protocol.ScopeAdmin) {
		return nil, protocol.Errorf(protocol.CodeForbidden, "v.force takes a presell over from its holder and needs a key with scope admin")
	}
	now, lease := w.sales.Now(), w.sales.Lease()
	// A counter whose page reloaded or whose link dropped recalls with the
	// key that holds the claim, from a new connection: once the old one is
	// gone, the claim moves over instead of waiting out the lease. While it
	// is still connected, and for any other key, the claim stands.
	resumed := !force && sale.ClaimState.Held(now) && sale.ClaimState.Key.String == c.KeyID &&
		sale.ClaimState.Session.String != c.Session && w.sales.SessionGone(sale.ClaimState.Session.String)
	// A claim of a revoked key waits on nobody: that key's sockets are
	// closed and it logs in nowhere again (a lost counter's device).
	var orphaned bool
	if !force && !resumed && sale.ClaimState.Held(now) && sale.ClaimState.Key.String != c.KeyID {
		var err error
		if orphaned, err = lanedb.KeyRevoked(ctx, tx, sale.ClaimState.Key.String); err != nil {
			return nil, err
		}
	}
	ok, err := lanedb.ClaimPresell(ctx, tx, lanedb.Claim{
		Physkey: sale.Physkey, Version: sale.Version, Session: c.Session, KeyID: c.KeyID, KeyName: c.KeyName,
		Now: now, Stamp: w.sales.Stamp(), Lease: lease, Force: force || resumed || orphaned,
	})
	if err != nil {
		return nil, err
	}
	if !ok {
		if sale.ClaimState.Held(now) {
			return nil, w.sales.ClaimedError(sale, c)
		}
		return nil, protocol.Errorf(protocol.CodeConflict, "presell %s changed while it was being claimed; try again", sale.Physkey)
	}
	detail := map[string]any{"ticket": sale.Ticket.Int64, "expires": now.Add(lease).UTC().Format(time.RFC3339)}
	if (force || orphaned) && sale.ClaimState.Held(now) {
		detail["took_over_from"] = sale.ClaimState.Name.String
	}
	if orphaned {
		detail["holder_revoked"] = true
	}
	if resumed {
		detail["resumed"] = true // from the same key's earlier connection
	}
	if err := w.journal(ctx, tx, "claimed", sale.Physkey, c.KeyName, detail); err != nil {
		return nil, err
	}
	w.claims.Add(tx, sale.Physkey, c.Session)
	return lanedb.GetSale(ctx, tx, sale.Physkey)
}

// Release gives a claimed presell back to the counter's queue.
func (w *Workflow) Release(ctx context.Context, tx *lanedb.Tx, c *protocol.Caller, sale *lanedb.Sale) (*lanedb.Sale, error) {
	if err := w.sales.CheckWriter(sale, c); err != nil {
		return nil, err
	}
	ok, err := lanedb.ReleaseClaim(ctx, tx, sale.Physkey, c.Session, w.sales.Now(), w.sales.Stamp())
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, protocol.Errorf(protocol.CodeClaimLost, "presell %s is no longer claimed by this device", sale.Physkey)
	}
	if err := w.journal(ctx, tx, "released", sale.Physkey, c.KeyName, map[string]any{"ticket": sale.Ticket.Int64}); err != nil {
		return nil, err
	}
	w.claims.Remove(tx, sale.Physkey, c.Session)
	return lanedb.GetSale(ctx, tx, sale.Physkey)
}

// Resume moves to c's session a claim that the same key's earlier session
// holds on the sale a retried request named (from the same session it
// only checks the claim is still held). A retried claim (recall, unpark)
// whose claim is gone is refused, on any connection: its stored "you have
// it" is no longer true. An ordinary sale has no claim: a retried unpark
// of one stands while the key still holds the sale.
func (w *Workflow) Resume(ctx context.Context, tx *lanedb.Tx, rec *lanedb.Idempotent, physkey string, c *protocol.Caller, claims bool) error {
	moved, err := lanedb.MoveClaim(ctx, tx, physkey, rec.Session, c.Session, w.sales.Now())
	if err != nil {
		return err
	}
	if moved {
		if rec.Session == c.Session {
			return nil
		}
		w.claims.Add(tx, physkey, c.Session)
		return lanedb.MoveSession(ctx, tx, rec.KeyID, rec.Session, c.Session)
	}
	if !claims {
		return nil
	}
	sale, err := lanedb.GetSale(ctx, tx, physkey)
	if err != nil {
		return err
	}
	if !sale.Presell {
		if c.HasKeyID(sale.HolderKey) {
			return nil
		}
		return protocol.Errorf(protocol.CodeClaimLost, "sale %s is no longer this key's since this ik's unpark: %q holds it now", physkey, sale.HolderName)
	}
	// A presell that has since closed cannot be recalled again: say what
	// became of it, not "recall it again".
	switch sale.Phase {
	case lanedb.PhaseCompleted:
		return protocol.Errorf(protocol.CodeClaimLost, "presell %s was completed (sid %d) since this ik's recall: its claim has ended, and a completed sale cannot be recalled", physkey, sale.SID.Int64)
	case lanedb.PhaseVoid:
		return protocol.Errorf(protocol.CodeClaimLost, "presell %s was cancelled since this ik's recall: its claim has ended, and a cancelled sale cannot be recalled", physkey)
	}
	return protocol.Errorf(protocol.CodeClaimLost, "presell %s was claimed by this device's earlier connection, but that claim has lapsed or been taken over; recall it again with a new ik", physkey)
}
