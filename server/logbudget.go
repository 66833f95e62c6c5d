package server

import (
	"context"
	"log"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// lineBudget bounds the log lines that callers without a key can make the
// lane write. Each such request, refused login or socket that never logs
// in would otherwise write its own line: one address sending bad keys as
// fast as the lane refuses them wrote 33,000 lines (6 MB) a second, which
// fills a disk within a day, and journald, past its own limit, drops the
// lane's other lines with them. An address gets a burst of lines, then one
// every addrLineEvery; the whole lane at most laneLinesPerSecond over every
// address. Sustained, that is about 2 MB a day from one address and 90 MB
// from many. A line over budget is left out and counted: the address's
// next line says how many were (left_out), and the total is a metric.
type lineBudget struct {
	total   *rate.Limiter
	leftOut atomic.Int64

	mu      sync.Mutex
	byAddr  map[string]*budgetEntry
	lastGC  time.Time
	maxAddr int
}

type budgetEntry struct {
	lim     *rate.Limiter
	leftOut int64
	seen    time.Time
}

const (
	// addrLineBurst lines an address may cause at once: a tablet loading
	// its page and opening its socket fits, every line logged.
	addrLineBurst = 30
	// addrLineEvery is how often an address gets a line after the burst.
	addrLineEvery = 10 * time.Second
	// laneLinesPerSecond bounds all addresses together (burst 20×: the
	// store's devices reconnecting at once after a restart).
	laneLinesPerSecond = 5
)

func newLineBudget() *lineBudget {
	return &lineBudget{
		total:   rate.NewLimiter(laneLinesPerSecond, 20*laneLinesPerSecond),
		byAddr:  map[string]*budgetEntry{},
		maxAddr: 10000,
	}
}

// take reports whether a line about remote may be written at now and, if
// so, how many of the address's lines were left out since its last one.
func (b *lineBudget) take(remote string, now time.Time) (ok bool, leftOut int64) {
	h := host(remote)
	b.mu.Lock()
	defer b.mu.Unlock()
	e, known := b.byAddr[h]
	if !known {
		b.gcLocked(now)
		if len(b.byAddr) >= b.maxAddr {
			b.leftOut.Add(1) // too many addresses at once: none of them is remembered
			return false, 0
		}
		e = &budgetEntry{lim: rate.NewLimiter(rate.Every(addrLineEvery), addrLineBurst)}
		b.byAddr[h] = e
	}
	e.seen = now
	if !e.lim.AllowN(now, 1) || !b.total.AllowN(now, 1) {
		e.leftOut++
		b.leftOut.Add(1)
		return false, 0
	}
	leftOut, e.leftOut = e.leftOut, 0
	return true, leftOut
}

// gcLocked forgets addresses quiet long enough to have their whole burst
// back and nothing left out to tell, at most once a minute unless the
// table is full. One with lines left out is kept for their count for ten
// minutes, less when the table is full (the total still counts them).
func (b *lineBudget) gcLocked(now time.Time) {
	full := len(b.byAddr) >= b.maxAddr
	if !full && now.Sub(b.lastGC) < time.Minute {
		return
	}
	b.lastGC = now
	refill := addrLineBurst * addrLineEvery
	for h, e := range b.byAddr {
		quiet := now.Sub(e.seen)
		if quiet > 10*time.Minute || quiet > refill && (e.leftOut == 0 || full) {
			delete(b.byAddr, h)
		}
	}
}

// logStranger writes a line about something a caller without a key did
// from remote, within remote's line budget (see lineBudget).
func (s *Server) logStranger(remote string, level slog.Level, msg string, args ...any) {
	if !s.log.Enabled(context.Background(), level) {
		return // not written anyway: it costs no budget
	}
	ok, leftOut := s.strangerLines.take(remote, time.Now())
	if !ok {
		return
	}
	if leftOut > 0 {
		args = append(args, "left_out", leftOut)
	}
	s.log.Log(context.Background(), level, msg, args...)
}

// httpErrorLog is net/http's error log for the lane's servers. Its lines
// go to the lane's log as warnings, except the one line a stranger can
// cause at will: a failed TLS handshake (garbage, a scanner, a client
// that does not trust the lane's CA), written within the address's
// budget.
func (s *Server) httpErrorLog() *log.Logger {
	return log.New(httpErrors{s}, "", 0)
}

type httpErrors struct{ s *Server }

// handshakeFrom begins net/http's line for a failed TLS handshake; the
// remote address follows, up to ": ".
const handshakeFrom = "http: TLS handshake error from "

func (h httpErrors) Write(p []byte) (int, error) {
	line := strings.TrimSuffix(string(p), "\n")
	if rest, ok := strings.CutPrefix(line, handshakeFrom); ok {
		// The address is an IP and port: IPv6 ones hold colons but no ": ".
		if remote, why, ok := strings.Cut(rest, ": "); ok {
			h.s.logStranger(remote, slog.LevelWarn, "TLS handshake error", "remote", remote, "err", why)
			return len(p), nil
		}
	}
	h.s.log.Warn(line)
	return len(p), nil
}
