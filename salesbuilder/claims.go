package salesbuilder

import (
	"time"

	"github.com/greenlane-pos/greenlane/lanedb"
	"github.com/greenlane-pos/greenlane/protocol"
)

// A presell that a counter (or its tablet) has taken back is worked on
// under a claim: a lease recorded on the sale row (lanedb.Claim), which the
// presell workflow makes, renews and gives back. Every change checks it
// here, in its own transaction, so a device whose lease lapsed or was
// taken over cannot write, and no admin "unlock" is ever needed.

// CanClaim reports whether a caller's session can hold a claim: a claim
// lives as long as a socket, and an HTTP-mode session lasts one call.
func CanClaim(c *protocol.Caller) bool { return c.Transport != "http" && c.Session != "" }

// CheckWriter says whether c may change an active sale now.
func (s *Service) CheckWriter(sale *lanedb.Sale, c *protocol.Caller) error {
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
			sale.Physkey, s.ClaimClock(claim))
	case s.presells.HadClaim(c.Session, sale.Physkey):
		return protocol.Errorf(protocol.CodeClaimLost, "presell %s was taken over by %q; this device no longer holds it",
			sale.Physkey, claim.Name.String)
	case live:
		return s.ClaimedError(sale, c)
	}
	return protocol.Errorf(protocol.CodeConflict, "presell %s is not claimed by this device; recall it with fd1.presell.recall", sale.Physkey)
}

// ClaimedError tells c, a would-be claimer, who holds a presell, and until
// when. When that is c's own key on another connection (a second tab of
// the counter page, or the connection c replaces before the lane has seen
// it close), it says so: "claimed by counter-1" would read as a riddle;
// and once that connection is known to be closed, it says that too.
func (s *Service) ClaimedError(sale *lanedb.Sale, c *protocol.Caller) error {
	if c.HasKeyID(sale.ClaimState.Key.String) && s.SessionGone(sale.ClaimState.Session.String) {
		// The claim waits on nothing but this device's recall: saying
		// "once that connection has closed" would send staff waiting.
		return protocol.Errorf(protocol.CodeClaimed,
			"presell %s is claimed by a connection of this key (%q) that has closed; recall it here (scan its ticket again) to take it back",
			sale.Physkey, sale.ClaimState.Name.String)
	}
	if c.HasKeyID(sale.ClaimState.Key.String) {
		return protocol.Errorf(protocol.CodeClaimed,
			"presell %s is claimed by another connection of this key (%q) until %s; once that connection has closed (a lane restart closes them all), recall it here (scan its ticket again) to take it back at once",
			sale.Physkey, sale.ClaimState.Name.String, s.ClaimClock(sale.ClaimState))
	}
	return protocol.Errorf(protocol.CodeClaimed, "presell %s is claimed by %q until %s",
		sale.Physkey, sale.ClaimState.Name.String, s.ClaimClock(sale.ClaimState))
}

// ClaimTime is when a claim lapses, as replies show it (machine-read:
// RFC 3339 with its offset).
func ClaimTime(c lanedb.ClaimState) string { return c.Expires().Format(time.RFC3339) }

// ClaimClock is when a claim lapses as staff read it in a message: HH:MM
// on the store's clock (SPEC §9: local store time), not a UTC stamp.
func (s *Service) ClaimClock(c lanedb.ClaimState) string {
	return c.Expires().In(s.loc).Format("15:04")
}
