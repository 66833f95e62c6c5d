// Package progress shows how far a long job (building a large lane DB) has
// got. On a terminal it is one line rewritten in place, at most ten times a
// second so that the display costs nothing next to the job; elsewhere (a
// log file, CI) it is a plain line at each tenth of the way, so the log
// stays readable.
package progress

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"time"
)

// Bar is one job's display.
type Bar struct {
	w       io.Writer // nil: show nothing
	tty     bool
	label   string // what is counted, e.g. "sales"
	total   int64
	start   time.Time
	shownAt time.Time
	decile  int64 // plain mode: the last tenth shown
}

// every is the terminal display's refresh limit.
const every = 100 * time.Millisecond

// New starts a display of total things named label on w (nil shows
// nothing); it rewrites one line when w is a terminal.
func New(w io.Writer, label string, total int64) *Bar {
	return &Bar{w: w, tty: IsTerminal(w), label: label, total: total, start: time.Now()}
}

// IsTerminal reports whether w is a terminal (a character device).
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// Update shows done of total, if it is time to.
func (p *Bar) Update(done int64) {
	if p.w == nil || p.total <= 0 {
		return
	}
	if p.tty {
		if now := time.Now(); now.Sub(p.shownAt) >= every {
			p.shownAt = now
			fmt.Fprintf(p.w, "\r%s\x1b[K", p.line(done))
		}
		return
	}
	if d := done * 10 / p.total; d > p.decile && done < p.total {
		p.decile = d
		fmt.Fprintln(p.w, p.line(done))
	}
}

// Finish ends the display with the elapsed time, and returns it.
func (p *Bar) Finish(done int64) time.Duration {
	took := time.Since(p.start)
	if p.w == nil {
		return took
	}
	prefix, clear := "", ""
	if p.tty {
		prefix, clear = "\r", "\x1b[K"
	}
	fmt.Fprintf(p.w, "%s%s %s in %s (%s %s/s)%s\n", prefix, Thousands(done), p.label,
		round(took), Thousands(int64(perSec(done, took))), p.label, clear)
	return took
}

// line is "123,456 / 1,000,000 sales (12.3%)  21,000 sales/s  ETA 42s".
func (p *Bar) line(done int64) string {
	rate := perSec(done, time.Since(p.start))
	eta := "?"
	if rate > 0 {
		eta = time.Duration(float64(p.total-done) / rate * float64(time.Second)).Round(time.Second).String()
	}
	return fmt.Sprintf("%s / %s %s (%.1f%%)  %s %s/s  ETA %s", Thousands(done), Thousands(p.total), p.label,
		100*float64(done)/float64(p.total), Thousands(int64(rate)), p.label, eta)
}

// Thousands prints n with comma separators: 1,000,000.
func Thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := ""
	if n < 0 {
		neg, s = "-", s[1:]
	}
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return neg + s
}

func perSec(n int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

// round keeps about three figures of a duration.
func round(d time.Duration) time.Duration {
	switch {
	case d >= 10*time.Second:
		return d.Round(100 * time.Millisecond)
	case d >= 10*time.Millisecond:
		return d.Round(time.Millisecond)
	}
	return d.Round(time.Microsecond)
}
