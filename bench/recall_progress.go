package bench

import (
	"fmt"
	"io"
	"strconv"
	"time"
)

// progress shows how far a long job has got. On a terminal it is one line
// rewritten in place (carriage return), at most ten times a second so that
// the display costs nothing next to the job; elsewhere (a log file, CI) it
// is a plain line at each tenth of the way, so the log stays readable.
type progress struct {
	w       io.Writer // nil: show nothing
	tty     bool
	label   string // what is counted, e.g. "sales"
	total   int64
	start   time.Time
	shownAt time.Time
	decile  int64 // plain mode: the last tenth shown
}

// progressEvery is the terminal display's refresh limit.
const progressEvery = 100 * time.Millisecond

func newProgress(w io.Writer, tty bool, label string, total int64) *progress {
	return &progress{w: w, tty: tty, label: label, total: total, start: time.Now()}
}

// update shows done of total, if it is time to.
func (p *progress) update(done int64) {
	if p.w == nil || p.total <= 0 {
		return
	}
	if p.tty {
		if now := time.Now(); now.Sub(p.shownAt) >= progressEvery {
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

// finish ends the display with the elapsed time, and returns it.
func (p *progress) finish(done int64) time.Duration {
	took := time.Since(p.start)
	if p.w == nil {
		return took
	}
	prefix := ""
	if p.tty {
		prefix = "\r"
	}
	fmt.Fprintf(p.w, "%s%s %s in %s (%s %s/s)", prefix, thousands(done), p.label,
		roundTook(took), thousands(int64(perSec(done, took))), p.label)
	if p.tty {
		fmt.Fprint(p.w, "\x1b[K")
	}
	fmt.Fprintln(p.w)
	return took
}

// line is "123,456 / 1,000,000 sales (12.3%)  21,000 sales/s  ETA 42s".
func (p *progress) line(done int64) string {
	elapsed := time.Since(p.start)
	rate := perSec(done, elapsed)
	eta := "?"
	if rate > 0 {
		eta = time.Duration(float64(p.total-done) / rate * float64(time.Second)).Round(time.Second).String()
	}
	return fmt.Sprintf("%s / %s %s (%.1f%%)  %s %s/s  ETA %s", thousands(done), thousands(p.total), p.label,
		100*float64(done)/float64(p.total), thousands(int64(rate)), p.label, eta)
}

// thousands prints n with comma separators: 1,000,000.
func thousands(n int64) string {
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
