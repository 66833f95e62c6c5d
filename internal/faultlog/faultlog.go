// Package faultlog keeps a fault that lasts from writing a log line each
// time it is met. Under load every request meets the same fault (a full
// disk, a store database out of reach, a lane full of sockets), and a line
// each buries the log, or under an attack fills the disk. A Log says when
// to tell it instead: the first occurrence in full, then a count every
// Every while it lasts, then its end. The caller writes the lines, in its
// own words. It imports no package of ours, so every layer may use it.
package faultlog

import "time"

// Every is how often, while a fault lasts, one line counts the occurrences
// since the last line.
const Every = 5 * time.Second

// Log is what has been told of one fault. The zero value is ready to use
// and tells every fault at once, counts every Every, and ends a fault at
// the first Clear. A Log is not safe for concurrent use: its owner keeps
// its calls in order (one goroutine, or a mutex).
type Log struct {
	// After: a fault is told only once it has occurred this many times
	// without a Clear between, so that one that passes at once (a read
	// that stays a moment too long) goes untold, end included. 0 or 1
	// tells it at its first occurrence.
	After int64
	// Calm: a fault is over only when it has not occurred for this long.
	// A condition that comes and goes many times a second (a lane at its
	// cap, a socket let in whenever another leaves) would otherwise be
	// told over and over, a beginning and an end each time. 0 ends it at
	// the first Clear.
	Calm time.Duration
	// Every is how often a count is due while the fault lasts; 0 is the
	// package's Every.
	Every time.Duration

	kind     string
	on, told bool
	since    time.Time // the fault's first occurrence
	last     time.Time // its latest
	lastLine time.Time
	n, total int64 // occurrences since the last line, and in all
}

// Tell is what a Fail asks its caller to write.
type Tell int

const (
	// Quiet: nothing to write now.
	Quiet Tell = iota
	// First: the fault's first line, in full (its cause, what it does,
	// what to do).
	First
	// Count: a line counting the occurrences since the last line.
	Count
)

// Line is what to write after Fail.
type Line struct {
	Tell Tell
	// N is the occurrences since the last line (Count), or all of them
	// so far (First: more than one when After held the first line back).
	N int64
	// Since is when the fault began.
	Since time.Time
}

// Over is what to write when a fault told ends.
type Over struct {
	Kind   string        // the fault's, as Fail named it
	Total  int64         // occurrences in all
	Lasted time.Duration // from the first occurrence to the end
}

// Fail records n occurrences of the fault named kind at now and says what
// to write. A kind other than the one on is a fault of its own: it is
// told in full, and the one before ends untold (the new line says what is
// wrong now).
func (l *Log) Fail(now time.Time, kind string, n int64) Line {
	if !l.on || kind != l.kind {
		l.on, l.told, l.kind = true, false, kind
		l.since, l.n, l.total = now, 0, 0
	}
	l.last = now
	l.n += n
	l.total += n
	if !l.told {
		if l.total < l.After {
			return Line{Since: l.since}
		}
		l.told, l.lastLine = true, now
		line := Line{Tell: First, N: l.n, Since: l.since}
		l.n = 0
		return line
	}
	every := l.Every
	if every <= 0 {
		every = Every
	}
	if now.Sub(l.lastLine) < every {
		return Line{Since: l.since}
	}
	l.lastLine = now
	line := Line{Tell: Count, N: l.n, Since: l.since}
	l.n = 0
	return line
}

// Clear records at now that the fault did not occur (a write went
// through, a socket was let in). It reports the fault's end when one was
// told and it has not occurred for Calm; a fault never told ends
// quietly.
func (l *Log) Clear(now time.Time) (Over, bool) {
	if !l.on || now.Sub(l.last) < l.Calm {
		return Over{}, false
	}
	l.on = false
	if !l.told {
		return Over{}, false
	}
	return Over{Kind: l.kind, Total: l.total, Lasted: now.Sub(l.since)}, true
}

// On reports whether a fault is on (told or not yet), and since when.
func (l *Log) On() (since time.Time, on bool) { return l.since, l.on }
