package server

import (
	"context"
	"log"
	"log/slog"
	"strings"
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
	perAddr *AddrLimiter
	total   *rate.Limiter
	leftOut atomic.Int64
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
		perAddr: NewAddrLimiter(addrLineEvery, addrLineBurst),
		total:   rate.NewLimiter(laneLinesPerSecond, 20*laneLinesPerSecond),
	}
}

// take reports whether a line about remote may be written at now and, if
// so, how many of the address's lines were left out since its last one.
func (b *lineBudget) take(remote string, now time.Time) (ok bool, leftOut int64) {
	wait, leftOut := b.perAddr.take(remote, now, func(now time.Time) bool { return b.total.AllowN(now, 1) })
	if wait > 0 {
		b.leftOut.Add(1)
		return false, 0
	}
	return true, leftOut
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
