package salesbuilder

import (
	"fmt"
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
		return protocol.Errorf(protocol.CodeClaimLost, "your claim on presell %s lapsed %s; recall it again",
			sale.Physkey, s.claimAgo(claim))
	case s.presells.HadClaim(c.Session, sale.Physkey):
		return protocol.Errorf(protocol.CodeClaimLost, "presell %s was taken over by %q; this device no longer holds it",
			sale.Physkey, claim.Name.String)
	case live:
		return s.ClaimedError(sale, c)
	}
	return protocol.Errorf(protocol.CodeConflict, "presell %s is not claimed by this device; recall it with fd1.presell.recall", sale.Physkey)
}

// ClaimedError tells c, a would-be claimer, who holds a presell, and for
// how long. When that is c's own key on another connection (a second tab of
// the counter page, or the connection c replaces before the lane has seen
// it close), it says so: "claimed by counter-1" would read as a riddle;
// and once that connection is known to be closed, it says that too.
func (s *Service) ClaimedError(sale *lanedb.Sale, c *protocol.Caller) error {
	if c.HasKeyID(sale.ClaimState.Key.String) && s.SessionGone(sale.ClaimState.Session.String) {
		// The claim waits on nothing but this device's recall: saying
		// "once that connection has closed" would send staff waiting.
		return protocol.Errorf(protocol.CodeClaimed,
			"presell %s is claimed by a connection of this key (%q) that has closed; %s to take it back",
			sale.Physkey, sale.ClaimState.Name.String, recallHow(c))
	}
	if c.HasKeyID(sale.ClaimState.Key.String) && s.SessionElsewhere(sale.ClaimState.Session.String) {
		// Another lane's connection (or this lane's before a restart):
		// its closing is not seen here, so only the lease frees it.
		return protocol.Errorf(protocol.CodeClaimed,
			"presell %s is held by another connection of this key (%q) for %s; that connection is not on this lane (another lane's, or from before a restart), so its closing is not seen here: release it there, or %s once that time is up",
			sale.Physkey, sale.ClaimState.Name.String, s.claimLeft(sale.ClaimState), recallHow(c))
	}
	if c.HasKeyID(sale.ClaimState.Key.String) {
		return protocol.Errorf(protocol.CodeClaimed,
			"presell %s is held by another connection of this key (%q) for %s; once that connection has closed (a lane restart closes them all), %s to take it back at once",
			sale.Physkey, sale.ClaimState.Name.String, s.claimLeft(sale.ClaimState), recallHow(c))
	}
	return protocol.Errorf(protocol.CodeClaimed, "presell %s is held by %q for %s",
		sale.Physkey, sale.ClaimState.Name.String, s.claimLeft(sale.ClaimState))
}

// recallHow says how c takes a presell back: over HTTP fd1.presell.recall
// answers 501, so "recall it here" would send the client round in circles.
func recallHow(c *protocol.Caller) string {
	if !CanClaim(c) {
		return "recall it over a WebSocket (fd1.presell.recall: HTTP cannot recall)"
	}
	return "recall it here (scan its ticket again)"
}

// adminHint is what an admin can do about another connection's live claim
// that refuses its change: nothing else overrides a live claim.
const adminHint = "as an admin, take it over with fd1.presell.recall and v.force true (over a WebSocket), or void it with `greenlane presell void --force` on the lane PC"

// claimLeft is how long a live claim still holds, then its end on the
// store's clock: "2 more min (until 02:01)". The clock time alone misleads
// in the hour repeated when daylight saving ends: at 02:59 NZDT a claim
// "until 02:01" (NZST, an hour later) reads as long lapsed. A count cannot
// be misread so; the clock time stays for who plans by it.
func (s *Service) claimLeft(c lanedb.ClaimState) string {
	now := s.now()
	n, unit := span(c.Until(now, s.lease).Sub(now))
	return fmt.Sprintf("%d more %s (until %s)", n, unit, s.ClaimClock(c))
}

// claimAgo is how long ago a claim lapsed, then when on the store's
// clock, for the same reason: "3 min ago (at 02:01)".
func (s *Service) claimAgo(c lanedb.ClaimState) string {
	n, unit := span(s.now().Sub(c.Expires()))
	return fmt.Sprintf("%d %s ago (at %s)", n, unit, s.ClaimClock(c))
}

// span is a duration as staff read it: seconds under a minute (at least 1:
// a live claim never has "0 s" left), else minutes to the nearest one.
func span(d time.Duration) (int64, string) {
	if d < time.Minute-time.Second/2 {
		return max(1, int64(d.Round(time.Second)/time.Second)), "s"
	}
	return max(1, int64(d.Round(time.Minute)/time.Minute)), "min"
}

// ClaimTime is when a claim lapses, as replies show it (machine-read:
// RFC 3339 with its offset), never later than a whole lease from now
// (lanedb.ClaimState.Until).
func (s *Service) ClaimTime(c lanedb.ClaimState) string {
	return c.Until(s.now(), s.lease).Format(time.RFC3339)
}

// ClaimClock is when a claim lapses as staff read it in a message: HH:MM
// on the store's clock (SPEC §9: local store time), not a UTC stamp;
// never later than a whole lease from now.
func (s *Service) ClaimClock(c lanedb.ClaimState) string {
	return c.Until(s.now(), s.lease).In(s.loc).Format("15:04")
}
