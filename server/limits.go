package server

import (
	"context"
	"net"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/gorilla/websocket"
	"github.com/greenlane-pos/greenlane/lanedb"
	"github.com/greenlane-pos/greenlane/protocol"
)

// Limits keep one client, or a stranger on the store network, from taking
// the lane down: failed logins per address, requests per socket, sockets
// per lane, firehoses per socket. Token buckets come from x/time/rate.

// loginGuard counts failed logins per remote address.
type loginGuard struct {
	every time.Duration // one more attempt is allowed per every
	burst int

	mu      sync.Mutex
	byAddr  map[string]*guardEntry
	lastGC  time.Time
	maxAddr int
}

type guardEntry struct {
	lim  *rate.Limiter
	seen time.Time
}

func newLoginGuard(perMinute int) *loginGuard {
	if perMinute <= 0 {
		perMinute = 1
	}
	return &loginGuard{every: time.Minute / time.Duration(perMinute), burst: perMinute,
		byAddr: map[string]*guardEntry{}, maxAddr: 10000}
}

// host is the address part of a remote "host:port".
func host(remote string) string {
	if h, _, err := net.SplitHostPort(remote); err == nil {
		return h
	}
	return remote
}

// blocked reports whether addr has used up its failed logins. It is
// checked before the key, so a flood of guesses costs the lane nothing.
func (g *loginGuard) blocked(remote string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	e, ok := g.byAddr[host(remote)]
	return ok && e.lim.Tokens() < 1
}

// failed records a failed login from remote.
func (g *loginGuard) failed(remote string) {
	now := time.Now()
	g.mu.Lock()
	defer g.mu.Unlock()
	h := host(remote)
	e, ok := g.byAddr[h]
	if !ok {
		g.gcLocked(now)
		e = &guardEntry{lim: rate.NewLimiter(rate.Every(g.every), g.burst)}
		g.byAddr[h] = e
	}
	e.seen = now
	e.lim.AllowN(now, 1)
}

// gcLocked forgets addresses idle long enough to have their full
// allowance back, and caps the table's size.
func (g *loginGuard) gcLocked(now time.Time) {
	if len(g.byAddr) < g.maxAddr && now.Sub(g.lastGC) < time.Minute {
		return
	}
	g.lastGC = now
	full := g.every * time.Duration(g.burst)
	for h, e := range g.byAddr {
		if now.Sub(e.seen) > full || len(g.byAddr) >= g.maxAddr {
			delete(g.byAddr, h)
		}
	}
}

func rateLimitedLogin() error {
	return protocol.Errorf(protocol.CodeRateLimited, "too many failed logins from this address; wait a minute before trying again")
}

// watchRevocations closes, within about a second, every socket logged in
// with a key that has been revoked (by `greenlane apikey revoke`, which is
// another process: hence the poll).
func (s *Server) watchRevocations(ctx context.Context, every time.Duration) {
	since := time.Now().UTC().Add(-time.Second).Format(lanedb.DateTime)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		revoked, latest, err := s.db.RevokedSince(ctx, since)
		if err != nil {
			if ctx.Err() == nil {
				s.log.Warn("check for revoked keys", "err", err)
			}
			continue
		}
		if latest != "" {
			since = latest
		}
		if len(revoked) > 0 {
			s.closeSocketsOf(revoked)
		}
	}
}

func (s *Server) closeSocketsOf(keyIDs []string) {
	gone := map[string]bool{}
	for _, id := range keyIDs {
		gone[id] = true
	}
	s.mu.Lock()
	var victims []*socket
	for _, sk := range s.sockets {
		c := sk.currentCaller()
		for _, id := range c.KeyIDs() {
			if gone[id] {
				victims = append(victims, sk)
				break
			}
		}
	}
	s.mu.Unlock()
	for _, sk := range victims {
		s.log.Info("closing socket of a revoked key", "socket", sk.id, "remote", sk.remote)
		sk.kill(websocket.ClosePolicyViolation, "API key revoked")
	}
}
