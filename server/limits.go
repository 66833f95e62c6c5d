package server

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/gorilla/websocket"
	"github.com/greenlane-pos/greenlane/internal/faultlog"
	"github.com/greenlane-pos/greenlane/lanedb"
	"github.com/greenlane-pos/greenlane/protocol"
)

// Limits keep one client, or a stranger on the store network, from taking
// the lane down: failed logins per address, requests per socket, sockets
// per lane, firehoses per socket. Token buckets come from x/time/rate.

// AddrLimiter is a token bucket per remote address (its host, without the
// port): a burst, then one more every so often. Addresses idle long enough
// to have their whole burst back are forgotten, and at most 10,000 are
// kept. The lane counts failed logins with one and strangers' log lines
// with another (lineBudget); /metrics, which needs no key, bounds each
// address's scrapes with a third.
type AddrLimiter struct {
	every time.Duration // one more is allowed per every
	burst int

	mu      sync.Mutex
	byAddr  map[string]*limitEntry
	lastGC  time.Time
	maxAddr int
}

type limitEntry struct {
	lim     *rate.Limiter
	seen    time.Time
	refused int64 // since the last one taken
}

// NewAddrLimiter allows each address burst at once, then one per every.
func NewAddrLimiter(every time.Duration, burst int) *AddrLimiter {
	return &AddrLimiter{every: every, burst: max(burst, 1), byAddr: map[string]*limitEntry{}, maxAddr: 10000}
}

// newLoginGuard counts failed logins: perMinute an address, as a burst.
func newLoginGuard(perMinute int) *AddrLimiter {
	perMinute = max(perMinute, 1)
	return NewAddrLimiter(time.Minute/time.Duration(perMinute), perMinute)
}

// host is the address part of a remote "host:port".
func host(remote string) string {
	if h, _, err := net.SplitHostPort(remote); err == nil {
		return h
	}
	return remote
}

// Take takes one from remote's bucket. It answers 0 when there was one;
// otherwise how long until there will be, which a refusal tells the
// client (Retry-After).
func (l *AddrLimiter) Take(remote string) time.Duration {
	wait, _ := l.take(remote, time.Now(), nil)
	return wait
}

// take is Take at now that, when the address's bucket has one, also asks
// also (nil: nothing more), a refusal by either counting as one. Once one
// is taken, refused says how many the address was refused since its last.
func (l *AddrLimiter) take(remote string, now time.Time, also func(now time.Time) bool) (wait time.Duration, refused int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	h := host(remote)
	e, ok := l.byAddr[h]
	if !ok {
		l.gcLocked(now)
		e = &limitEntry{lim: rate.NewLimiter(rate.Every(l.every), l.burst)}
		l.byAddr[h] = e
	}
	e.seen = now
	if !e.lim.AllowN(now, 1) {
		e.refused++
		// The bucket refills one per every; what is missing of the next
		// whole token is the wait.
		missing := 1 - e.lim.TokensAt(now)
		return time.Duration(missing * float64(l.every)), 0
	}
	if also != nil && !also(now) {
		e.refused++
		return l.every, 0
	}
	refused, e.refused = e.refused, 0
	return 0, refused
}

// gcLocked forgets addresses idle long enough to have their full
// allowance back, and caps the table's size.
func (l *AddrLimiter) gcLocked(now time.Time) {
	if len(l.byAddr) < l.maxAddr && now.Sub(l.lastGC) < time.Minute {
		return
	}
	l.lastGC = now
	full := l.every * time.Duration(l.burst)
	for h, e := range l.byAddr {
		if now.Sub(e.seen) > full || len(l.byAddr) >= l.maxAddr {
			delete(l.byAddr, h)
		}
	}
}

// retryError is a refusal that tells the client when to come back: HTTP
// mode sends it as Retry-After, a socket reads it in the message.
type retryError struct {
	err   *protocol.Error
	after time.Duration
}

func (e *retryError) Error() string { return e.err.Error() }
func (e *retryError) Unwrap() error { return e.err }

// retrySeconds is a wait rounded up to whole seconds, at least 1, as
// Retry-After counts it.
func retrySeconds(d time.Duration) int {
	s := int((d + time.Second - 1) / time.Second)
	return max(s, 1)
}

func rateLimitedLogin(wait time.Duration) error {
	secs := retrySeconds(wait)
	return &retryError{after: time.Duration(secs) * time.Second, err: protocol.Errorf(protocol.CodeRateLimited,
		"too many failed logins from this address; try again in %ds (a correct key is always let in)", secs)}
}

// keyRate is one token bucket per API key, shared by all of the key's
// sockets and HTTP-mode calls (KeyRequestRate, KeyRequestBurst): without it
// a key could send a socket's allowance on each of its sockets, and HTTP
// mode, which has no socket, would have no bound at all. Admin keys, the
// operator's own, are not counted. Only keys that logged in have a
// bucket, and a full bucket idle for a minute is forgotten.
type keyRate struct {
	limit rate.Limit
	burst int

	mu     sync.Mutex
	byKey  map[string]*limitEntry
	lastGC time.Time
}

func newKeyRate(perSecond float64, burst int) *keyRate {
	return &keyRate{limit: rate.Limit(perSecond), burst: burst, byKey: map[string]*limitEntry{}}
}

// allow takes one request from the bucket of the key c acts as, and says
// whether there was one to take.
func (k *keyRate) allow(c *protocol.Caller) bool {
	if !c.LoggedIn() || c.ActsAsAdmin() {
		return true
	}
	now := time.Now()
	k.mu.Lock()
	defer k.mu.Unlock()
	e, ok := k.byKey[c.KeyID]
	if !ok {
		k.gcLocked(now)
		e = &limitEntry{lim: rate.NewLimiter(k.limit, k.burst)}
		k.byKey[c.KeyID] = e
	}
	e.seen = now
	return e.lim.AllowN(now, 1)
}

// gcLocked forgets, at most once a minute, the buckets that are full again
// and were not used for a minute: they would allow the next request anyway.
func (k *keyRate) gcLocked(now time.Time) {
	if now.Sub(k.lastGC) < time.Minute {
		return
	}
	k.lastGC = now
	for id, e := range k.byKey {
		if now.Sub(e.seen) >= time.Minute && e.lim.TokensAt(now) >= float64(k.burst) {
			delete(k.byKey, id)
		}
	}
}

// revokeWarnEvery is how often watchRevocations logs again while the
// lane DB stays unreadable.
const revokeWarnEvery = 10 * time.Second

// watchRevocations closes, within about a second, every socket logged in
// with a key that has been revoked (by `greenlane apikey revoke`, which is
// another process: hence the poll).
func (s *Server) watchRevocations(ctx context.Context, every time.Duration) {
	since := time.Now().UTC().Add(-time.Second).Format(lanedb.DateTime)
	t := time.NewTicker(every)
	defer t.Stop()
	// A lane DB that cannot be read (a store database whose PostgreSQL
	// restarts) fails every check: the first failure of a run is logged,
	// then one every revokeWarnEvery, and the recovery.
	failures := 0
	var warned time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		revoked, latest, err := s.db.RevokedSince(ctx, since)
		if err != nil {
			if ctx.Err() == nil {
				failures++
				if failures == 1 || time.Since(warned) >= revokeWarnEvery {
					warned = time.Now()
					s.log.Warn("check for revoked keys", "err", s.db.Unreachable(err), "failed_checks", failures)
				}
			}
			continue
		}
		if failures > 0 {
			s.log.Info("checking for revoked keys again", "failed_checks", failures)
			failures = 0
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

// Sockets are counted three ways under Server.mu, so that nobody without a
// key can lock a device out: all sockets (MaxSockets), sockets not logged in
// yet, lane-wide and per address (MaxUnauthSockets, MaxUnauthPerAddress),
// and logged-in sockets per key (MaxSocketsPerKey). A socket is counted from
// before its upgrade (admit) until it is gone (forget).

// doorCount is that bookkeeping.
type doorCount struct {
	open   int // sockets admitted, upgrading or open
	unauth int // of those, not logged in
	// waiting: remote host → its admissions not logged in, oldest first.
	waiting map[string][]*admission
	byKey   map[string]int // key id → sockets logged in with it
}

// admission is one socket's share of the counts, kept on the socket.
type admission struct {
	host   string
	unauth bool     // still counted as not logged in
	keys   []string // key ids this socket is counted under
	// sk is the socket, once it exists (addSocket); nil while upgrading.
	sk *socket
	// checking: a login of the socket's is being checked. It is not closed
	// to make room meanwhile: its device has done what a device does.
	checking bool
}

// refusal is why a socket is not let in: an HTTP status and a reason,
// and why in a word, the metric's label (one of refusalWhys).
type refusal struct {
	status int
	reason string
	why    string
}

// Why a socket is refused at its upgrade (greenlane_sockets_refused_total's
// reasons).
const (
	refusedClosing       = "shutting_down"
	refusedMaxSockets    = "max_sockets"        // MaxSockets, lane-wide
	refusedUnauthSockets = "unauth_sockets"     // MaxUnauthSockets, lane-wide, none could be closed
	refusedUnauthPerAddr = "unauth_per_address" // MaxUnauthPerAddress
)

// refusalWhys are every refusal's why, so that each count reads 0 until
// the first.
var refusalWhys = []string{refusedClosing, refusedMaxSockets, refusedUnauthSockets, refusedUnauthPerAddr}

// admit reserves room for one more socket from remote, before the upgrade
// so that a refusal costs next to nothing. The caller must forget the
// admission when the socket is gone or the upgrade fails.
func (s *Server) admit(remote string) (*admission, *refusal) {
	h := host(remote)
	s.mu.Lock()
	defer s.mu.Unlock()
	d := &s.door
	switch {
	case s.closing:
		return nil, &refusal{http.StatusServiceUnavailable, "the lane is shutting down; reconnect in a moment", refusedClosing}
	case d.open >= s.cfg.MaxSockets:
		return nil, &refusal{http.StatusServiceUnavailable, "the lane has its maximum of open sockets; try again shortly", refusedMaxSockets}
	case len(d.waiting[h]) >= s.cfg.MaxUnauthPerAddress:
		return nil, &refusal{http.StatusTooManyRequests, fmt.Sprintf(
			"this address already has %d sockets that have not logged in, its most; log in on them or close them", len(d.waiting[h])), refusedUnauthPerAddr}
	case d.unauth >= s.cfg.MaxUnauthSockets:
		// Full of sockets that have not logged in, from many addresses.
		// One makes room (see roomLocked): a device logs in the moment it
		// is let in, so a flood that keeps the lane full still cannot
		// keep a device out.
		victim := s.roomLocked()
		if victim == nil { // all still upgrading, or logging in
			return nil, &refusal{http.StatusServiceUnavailable, fmt.Sprintf(
				"the lane has %d sockets waiting to log in, its most; try again shortly", d.unauth), refusedUnauthSockets}
		}
		s.leaveUnauthLocked(victim.door)
		s.log.Debug("closing a socket not logged in to make room", "socket", victim.id, "remote", victim.remote)
		victim.kill(websocket.ClosePolicyViolation, "log in first")
	}
	a := &admission{host: h, unauth: true}
	d.open++
	d.unauth++
	d.waiting[h] = append(d.waiting[h], a)
	return a, nil
}

// laneWide are the refusals that refuse every new socket alike, whoever
// asks: told as a lasting fault (tellFull), not a line each.
var laneWide = []string{refusedMaxSockets, refusedUnauthSockets}

// newRefusalLogs is a Log for each lane-wide refusal. The end waits for
// faultlog.Every without one: at its cap the lane lets a socket in each
// time another leaves, and refuses the next, many times a second under
// load, which is one fault, not one a time.
func newRefusalLogs() map[string]*faultlog.Log {
	logs := map[string]*faultlog.Log{}
	for _, why := range laneWide {
		logs[why] = &faultlog.Log{Calm: faultlog.Every}
	}
	return logs
}

// noteRefused counts and tells a socket refused at its upgrade. A refusal
// costs next to nothing and may come thousands of times a second, so none
// is logged per socket: a lane-wide cap is told as a lasting fault
// (tellFull), an address over its own cap is a stranger's doing, logged
// within its line budget, and a lane shutting down is expected.
func (s *Server) noteRefused(remote string, no *refusal) {
	s.socketsRefused[no.why].Add(1)
	switch no.why {
	case refusedMaxSockets, refusedUnauthSockets:
		s.tellFull(time.Now(), no.why)
	case refusedUnauthPerAddr:
		s.logStranger(remote, slog.LevelWarn, "websocket refused", "remote", remote, "status", no.status, "reason", no.reason)
	default:
		s.log.Debug("websocket refused", "remote", remote, "status", no.status, "reason", no.reason)
	}
}

// tellFull tells a refusal for a lane-wide cap (why): in full at first,
// with the flag that sets the cap, then a count every faultlog.Every.
func (s *Server) tellFull(now time.Time, why string) {
	s.refuseMu.Lock()
	defer s.refuseMu.Unlock()
	s.refusalsOn.Store(true)
	line := s.refusalLogs[why].Fail(now, why, 1)
	what := "it has its maximum of open sockets"
	first := fmt.Sprintf("the lane has its maximum of open sockets (serve --max-sockets %d): new sockets are refused with 503 until some close; "+
		"if the store's devices need more, raise --max-sockets", s.cfg.MaxSockets)
	if why == refusedUnauthSockets {
		what = "it has its maximum of sockets waiting to log in"
		first = fmt.Sprintf("the lane has its maximum of sockets waiting to log in (serve --max-unauth-sockets %d), none of which may be closed for room: "+
			"new sockets are refused with 503 until some log in or close", s.cfg.MaxUnauthSockets)
	}
	switch line.Tell {
	case faultlog.First:
		s.log.Warn(first, "refused", line.N)
	case faultlog.Count:
		s.log.Warn("the lane still refuses sockets: "+what, "refused", line.N, "since", line.Since.Format(time.TimeOnly))
	}
}

// noteAdmitted ends a lane-wide refusal told (tellFull): a socket got in.
func (s *Server) noteAdmitted() {
	if !s.refusalsOn.Load() {
		return
	}
	now := time.Now()
	s.refuseMu.Lock()
	defer s.refuseMu.Unlock()
	on := false
	for _, why := range laneWide {
		l := s.refusalLogs[why]
		if over, ok := l.Clear(now); ok {
			s.log.Info("the lane takes sockets again", "refused", over.Total, "lasted", over.Lasted.Round(time.Millisecond), "cap", why)
		}
		if _, still := l.On(); still {
			on = true
		}
	}
	s.refusalsOn.Store(on)
}

// roomLocked is the socket to close for room: of the address with the
// most sockets waiting to log in, the one that has waited longest. Never
// one whose login is being checked: many addresses churning sockets that
// never log in, each closed as soon as it is the oldest, closed a device's
// socket while its login was on the way. And the address holding the most
// pays first: a device's one socket outlives a flood's many.
func (s *Server) roomLocked() *socket {
	var victim *socket
	most := 0
	for _, waiting := range s.door.waiting {
		if len(waiting) <= most {
			continue
		}
		for _, a := range waiting {
			if a.sk != nil && !a.checking {
				victim, most = a.sk, len(waiting)
				break
			}
		}
	}
	return victim
}

// checkingLogin marks a's socket as having a login checked (on true) or
// no longer (false), for roomLocked.
func (s *Server) checkingLogin(a *admission, on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a.checking = on
}

// forget gives back what an admission holds.
func (s *Server) forget(a *admission) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := &s.door
	d.open--
	s.leaveUnauthLocked(a)
	for _, k := range a.keys {
		if d.byKey[k]--; d.byKey[k] <= 0 {
			delete(d.byKey, k)
		}
	}
	a.keys = nil
}

func (s *Server) leaveUnauthLocked(a *admission) {
	if !a.unauth {
		return
	}
	a.unauth = false
	d := &s.door
	d.unauth--
	waiting := slices.DeleteFunc(d.waiting[a.host], func(w *admission) bool { return w == a })
	if len(waiting) == 0 {
		delete(d.waiting, a.host)
	} else {
		d.waiting[a.host] = waiting
	}
}

// admitKey counts a socket under the key it logs in with, refusing the
// login when that key already has its most sockets. A second login with
// the same key on one socket counts once.
func (s *Server) admitKey(a *admission, key *lanedb.APIKey) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := &s.door
	if !slices.Contains(a.keys, key.KeyID) {
		if n := d.byKey[key.KeyID]; n >= s.cfg.MaxSocketsPerKey {
			return protocol.Errorf(protocol.CodeLimitReached,
				"key %q already has %d sockets open, the most one key may have; close some, or give each device its own key", key.Name, n)
		}
		d.byKey[key.KeyID]++
		a.keys = append(a.keys, key.KeyID)
	}
	s.leaveUnauthLocked(a)
	return nil
}

// loggedIn reports whether the socket holding a has logged in (or no
// longer counts as waiting to: it is being closed).
func (s *Server) loggedIn(a *admission) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return !a.unauth
}
