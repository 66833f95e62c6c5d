package presell

import "time"

// steadyClock is the clock the sweeper judges presell ages by on a lane
// with no reference clock (a SQLite lane DB): the lane's clock, but never
// further ahead than the lane's clock at start plus the time the lane has
// run, measured by the monotonic clock. A wall clock stepped forward while
// the lane runs (a lane PC whose hardware clock keeps local time, read as
// UTC, then corrected; a person setting it) would otherwise age every open
// presell at once. A step back is taken as it is: it only makes presells
// look younger, which voids nothing early.
type steadyClock struct {
	now     func() time.Time     // the lane's clock
	start   time.Time            // now() when the lane started, wall reading only
	running func() time.Duration // how long the lane has run (monotonic)
}

func newSteadyClock(now func() time.Time) *steadyClock {
	began := time.Now() // its monotonic reading is what time.Since measures from
	return &steadyClock{now: now, start: now().Round(0), running: func() time.Duration { return time.Since(began) }}
}

// Now is the lane's clock held back to start + running. Round(0) drops
// the monotonic readings: with them, Go compares the readings of one
// process's monotonic clock and would not see a step of the wall clock.
func (c *steadyClock) Now() time.Time {
	t, limit := c.now().Round(0), c.start.Add(c.running())
	if t.After(limit) {
		return limit
	}
	return t
}
