package salesbuilder

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/jmoiron/sqlx"

	"github.com/greenlane-pos/greenlane/lanedb"
	"github.com/greenlane-pos/greenlane/protocol"
)

// FD1's "top sale" (a request that leaves k out works on it, SPEC §7.2) is
// what the device has in front of it. A socket is a device: each keeps the
// sale its last change touched, so two sockets of one key (two tabs, two
// tablets sharing a key) each work on their own sale. Once that sale is no
// longer the socket's to change (completed, cancelled, parked, taken over
// by another counter), a request without k is refused, saying what became
// of it: it never moves on to another sale of the key, because the pay key
// pressed once more after a completion would take money on whichever
// presell the counter recalled before. Only a socket that has touched no
// sale yet falls back to the key's most recently changed active sale
// (topSale): a client that reconnects carries on with the sale it was
// building; but not when that sale is another open socket's top sale.

// A socket's own top sale lives on the socket (protocol.Top), for as long
// as the socket: no number of other sockets can make the lane forget it.
// (Kept in a table of all sockets with a bound, it was pushed out by 12,000
// short sockets of another key, and the counter's next k-less payment fell
// back to another presell.) The table here only answers the fallback's
// question, which open sockets have a sale as their top: a caller built
// without a Top (the lane's own, tests) is remembered here alone.

// maxTopsPerKey bounds the sockets remembered for one key, in two
// generations: when the newer fills half of it, the older is dropped. Each
// key has its own, so that one key's sockets never push out another's; a
// set never scans, so it stays O(1) (it runs on the writer's goroutine,
// after COMMIT).
const maxTopsPerKey = 1024

// tops is the top sale of each socket session, by key.
type tops struct {
	mu    sync.Mutex
	byKey map[string]*topGens
}

// topGens is one key's sessions, in two generations.
type topGens struct {
	cur, old map[string]string // session -> physkey
}

func newTops() *tops { return &tops{byKey: map[string]*topGens{}} }

func (t *tops) get(key, session string) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	g := t.byKey[key]
	if g == nil {
		return ""
	}
	if pk, ok := g.cur[session]; ok {
		return pk
	}
	return g.old[session]
}

// set remembers physkey as session's top sale.
func (t *tops) set(key, session, physkey string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	g := t.byKey[key]
	if g == nil {
		g = &topGens{cur: map[string]string{}, old: map[string]string{}}
		t.byKey[key] = g
	}
	if _, ok := g.cur[session]; !ok && len(g.cur) >= maxTopsPerKey/2 {
		g.old, g.cur = g.cur, make(map[string]string, maxTopsPerKey/2)
	}
	g.cur[session] = physkey
	delete(g.old, session)
}

// holders is every session whose top sale is physkey. It scans, but only
// for a socket's k-less request before it has touched a sale: set, on
// every change, stays O(1).
// others is the top sales of key's sessions other than session, leaving
// out those gone says are closed.
func (t *tops) others(key, session string, gone func(session string) bool) map[string]bool {
	t.mu.Lock()
	g := t.byKey[key]
	var sessions map[string]string // session -> physkey, the newer generation winning
	if g != nil {
		sessions = make(map[string]string, len(g.cur)+len(g.old))
		for _, m := range []map[string]string{g.old, g.cur} {
			for s, pk := range m {
				sessions[s] = pk
			}
		}
	}
	t.mu.Unlock()
	out := map[string]bool{}
	for s, pk := range sessions {
		if s != session && !gone(s) { // gone looks at the sockets: not under t.mu
			out[pk] = true
		}
	}
	return out
}

func (t *tops) holders(physkey string) []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []string
	for _, g := range t.byKey {
		for _, m := range []map[string]string{g.cur, g.old} {
			for session, pk := range m {
				if pk == physkey {
					out = append(out, session)
				}
			}
		}
	}
	return out
}

// touched records, once tx commits, that c's socket worked on physkey.
// An HTTP-mode call is a session of one request: nothing to remember.
func (s *Service) touched(tx *lanedb.Tx, c *protocol.Caller, physkey string) {
	if physkey == "" || !CanClaim(c) {
		return
	}
	top, key, session := c.Top, c.KeyID, c.Session
	tx.OnCommit(func() {
		if top != nil {
			top.Set(physkey)
		}
		s.tops.set(key, session, physkey)
	})
}

// topOf is c's socket's top sale, "" before it touched one.
func (s *Service) topOf(c *protocol.Caller) string {
	if c.Top != nil {
		return c.Top.Get()
	}
	return s.tops.get(c.KeyID, c.Session)
}

// resolve is Resolve, with ref "" naming c's socket's own top sale. Reads
// (get_sale, sale_fetch, sale_get_price) resolve as changes do: a read
// without k shows the sale a change without k would work on, so a screen
// never shows another sale's balance as the one in front of the cashier.
func (s *Service) resolve(ctx context.Context, q sqlx.QueryerContext, c *protocol.Caller, ref string) (*lanedb.Sale, error) {
	if ref != "" || !CanClaim(c) {
		return Resolve(ctx, q, c, ref)
	}
	pk := s.topOf(c)
	if pk == "" {
		return s.fallback(ctx, q, c)
	}
	sale, err := lanedb.GetSale(ctx, q, pk)
	if errors.Is(err, lanedb.ErrNoSale) {
		return nil, protocol.Errorf(protocol.CodeNotFound, "this socket's sale %s no longer exists%s", Clip(pk), orNameOne)
	}
	if err != nil {
		return nil, fmt.Errorf("read this socket's top sale %s: %w", pk, err)
	}
	if err := s.stillTop(sale, c); err != nil {
		return nil, err
	}
	return sale, nil
}

// fallback is the key's most recently changed active sale, for a socket
// that has touched no sale (a client that reconnected), unless that sale is
// another open socket's top sale: a second tab or tablet of the key is
// ringing it up, and a fresh socket's k-less payment would take money on
// it. A socket known to be closed (the one the client reconnects in place
// of) does not keep it; one whose state is unknown (no SessionOpen, or
// another lane's in store mode) counts as open.
func (s *Service) fallback(ctx context.Context, q sqlx.QueryerContext, c *protocol.Caller) (*lanedb.Sale, error) {
	sale, err := Resolve(ctx, q, c, "")
	if err != nil {
		return nil, err
	}
	for _, other := range s.tops.holders(sale.Physkey) {
		if other != c.Session && !s.SessionGone(other) {
			return nil, protocol.Errorf(protocol.CodeNotFound,
				"the latest sale of key %q (%s) is in use on another connection: name it in k, or create one with sale_create", c.KeyName, sale.Physkey)
		}
	}
	return sale, nil
}

// Find is Resolve for a request on c's socket: ref "" names the socket's
// own top sale, as for every salesbuilder change, so the presell workflow's
// k-less heartbeat and release never move on to another presell either.
func (s *Service) Find(ctx context.Context, q sqlx.QueryerContext, c *protocol.Caller, ref string) (*lanedb.Sale, error) {
	return s.resolve(ctx, q, c, ref)
}

// orNameOne ends every refusal of a socket's top sale: what to do instead.
const orNameOne = ": a request without k works only on the sale this socket last changed; name the sale in k, or recall or create one"

// stillTop refuses a socket's top sale that is no longer the socket's to
// work on, saying what happened to it. A sale under this socket's own
// claim passes even once the lease lapsed: the change's writer check then
// says "recall it again", which is the truth.
func (s *Service) stillTop(sale *lanedb.Sale, c *protocol.Caller) error {
	name := topName(sale)
	claim := sale.ClaimState
	switch {
	case sale.Phase == lanedb.PhaseCompleted:
		return protocol.Errorf(protocol.CodeNotFound, "%s was completed (sid %d)%s", name, sale.SID.Int64, orNameOne)
	case sale.Phase == lanedb.PhaseVoid:
		return protocol.Errorf(protocol.CodeNotFound, "%s was cancelled%s", name, orNameOne)
	case sale.Phase == lanedb.PhaseParked:
		return protocol.Errorf(protocol.CodeNotFound, "%s is parked%s", name, orNameOne)
	case sale.Phase != lanedb.PhaseActive:
		return protocol.Errorf(protocol.CodeNotFound, "%s is in phase %d%s", name, sale.Phase, orNameOne)
	case claim.Session.Valid && claim.Session.String != c.Session && s.presells.HadClaim(c.Session, sale.Physkey):
		return protocol.Errorf(protocol.CodeClaimLost, "%s was taken over by %q%s", name, claim.Name.String, orNameOne)
	case claim.Session.Valid && claim.Session.String != c.Session:
		return protocol.Errorf(protocol.CodeNotFound, "%s is now with %q%s", name, claim.Name.String, orNameOne)
	case !claim.Session.Valid && !c.HasKeyID(sale.HolderKey):
		return protocol.Errorf(protocol.CodeNotFound, "%s is now held by %q%s", name, sale.HolderName, orNameOne)
	}
	return nil
}

// topName names a socket's top sale for staff: by its ticket when it has
// one (what the counter reads off the customer's slip), and by physkey.
func topName(sale *lanedb.Sale) string {
	if sale.Ticket.Valid {
		return fmt.Sprintf("this socket's sale, ticket #%d (%s),", sale.Ticket.Int64, sale.Physkey)
	}
	return fmt.Sprintf("this socket's sale %s", sale.Physkey)
}
