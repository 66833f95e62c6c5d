package salesbuilder

import (
	"context"
	"errors"
	"slices"
	"sync"

	"github.com/jmoiron/sqlx"

	"github.com/greenlane-pos/greenlane/lanedb"
	"github.com/greenlane-pos/greenlane/protocol"
)

// FD1's "top sale" (a request that leaves k out works on it, SPEC §7.2) is
// what the device has in front of it. A socket is a device: each keeps the
// sale its last change touched, so two sockets of one key (two tabs, two
// tablets sharing a key) each work on their own sale. A socket that has
// touched none yet, or whose sale is no longer active, falls back to the
// key's most recently changed active sale (topSale): a client that
// reconnects carries on with the sale it was building.

// maxTops bounds the sockets remembered. It is kept in two generations:
// when the newer fills half of it, the older is dropped and the newer takes
// its place. A socket that has changed nothing for that long falls back as
// above; nothing is ever scanned, so a set stays O(1) (it runs on the
// writer's goroutine, after COMMIT).
const maxTops = 8192

// tops is the top sale of each socket session.
type tops struct {
	mu       sync.Mutex
	cur, old map[string]string // session -> physkey
}

func newTops() *tops { return &tops{cur: map[string]string{}, old: map[string]string{}} }

func (t *tops) get(session string) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if pk, ok := t.cur[session]; ok {
		return pk
	}
	return t.old[session]
}

// set remembers physkey as session's top sale.
func (t *tops) set(session, physkey string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.cur[session]; !ok && len(t.cur) >= maxTops/2 {
		t.old, t.cur = t.cur, make(map[string]string, maxTops/2)
	}
	t.cur[session] = physkey
	delete(t.old, session)
}

// touched records, once tx commits, that c's socket worked on physkey.
// An HTTP-mode call is a session of one request: nothing to remember.
func (s *Service) touched(tx *lanedb.Tx, c *protocol.Caller, physkey string) {
	if physkey == "" || !CanClaim(c) {
		return
	}
	session := c.Session
	tx.OnCommit(func() { s.tops.set(session, physkey) })
}

// resolve is Resolve, with ref "" naming c's socket's own top sale while
// it is still one of c's active sales.
func (s *Service) resolve(ctx context.Context, q sqlx.QueryerContext, c *protocol.Caller, ref string) (*lanedb.Sale, error) {
	if ref == "" && CanClaim(c) {
		if pk := s.tops.get(c.Session); pk != "" {
			sale, err := lanedb.GetSale(ctx, q, pk)
			switch {
			case errors.Is(err, lanedb.ErrNoSale):
			case err != nil:
				return nil, err
			case sale.Phase == lanedb.PhaseActive && slices.Contains(c.KeyIDs(), sale.HolderKey):
				return sale, nil
			}
		}
	}
	return Resolve(ctx, q, c, ref)
}
