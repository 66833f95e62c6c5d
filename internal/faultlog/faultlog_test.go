package faultlog

import (
	"fmt"
	"testing"
	"time"
)

// TestLog plays a fault's occurrences and clears on a made-up clock and
// checks what each asks to be written: the first in full, a count at most
// every Every, the end once; After keeps a passing fault untold, Calm
// keeps one that comes and goes from being told each time.
func TestLog(t *testing.T) {
	type step struct {
		at    time.Duration // since the start
		fail  string        // the kind that occurred; "" clears
		n     int64
		wants string // "", "first 3", "count 7", "over 10 in 4s"
	}
	for _, tt := range []struct {
		name  string
		log   Log
		steps []step
	}{
		{"first in full, counts every 5s, the end", Log{}, []step{
			{0, "disk", 3, "first 3"},
			{time.Second, "disk", 2, ""},
			{4 * time.Second, "disk", 2, ""},
			{5 * time.Second, "disk", 1, "count 5"},
			{6 * time.Second, "disk", 1, ""},
			{7 * time.Second, "", 0, "over 9 in 7s"},
			{8 * time.Second, "", 0, ""},
		}},
		{"a fault after the end is told anew", Log{}, []step{
			{0, "disk", 1, "first 1"},
			{time.Second, "", 0, "over 1 in 1s"},
			{2 * time.Second, "disk", 4, "first 4"},
			{3 * time.Second, "", 0, "over 4 in 1s"},
		}},
		{"another kind is a fault of its own", Log{}, []step{
			{0, "disk full", 1, "first 1"},
			{time.Second, "disk failing", 1, "first 1"},
			{2 * time.Second, "disk failing", 1, ""},
			{3 * time.Second, "", 0, "over 2 in 2s"}, // the failing disk's, from 1s
		}},
		{"a clear with nothing on says nothing", Log{}, []step{
			{0, "", 0, ""},
		}},
		{"After: a fault that passes goes untold", Log{After: 3}, []step{
			{0, "wal", 1, ""},
			{3 * time.Second, "wal", 1, ""},
			{4 * time.Second, "", 0, ""},
			{20 * time.Second, "wal", 1, ""}, // counted anew from here
			{21 * time.Second, "wal", 1, ""},
		}},
		{"After: a fault that goes on is told with what came before", Log{After: 3}, []step{
			{0, "wal", 1, ""},
			{6 * time.Second, "wal", 1, ""},
			{12 * time.Second, "wal", 1, "first 3"},
			{13 * time.Second, "wal", 1, ""},
			{14 * time.Second, "", 0, "over 4 in 14s"},
		}},
		{"Calm: the end waits for a quiet spell", Log{Calm: 5 * time.Second}, []step{
			{0, "full", 1, "first 1"},
			{time.Second, "", 0, ""},
			{2 * time.Second, "full", 1, ""},
			{3 * time.Second, "", 0, ""},
			{6 * time.Second, "full", 1, "count 2"},
			{10 * time.Second, "", 0, ""},
			{11 * time.Second, "", 0, "over 3 in 11s"},
		}},
		{"Every set shorter", Log{Every: time.Second}, []step{
			{0, "x", 1, "first 1"},
			{time.Second, "x", 1, "count 1"},
			{1500 * time.Millisecond, "x", 1, ""},
			{2 * time.Second, "x", 0, "count 1"},
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Date(2026, 12, 7, 15, 0, 0, 0, time.UTC)
			l := tt.log
			last := "" // the kind that occurred last
			for i, s := range tt.steps {
				now := start.Add(s.at)
				var got string
				if s.fail == "" {
					if over, ok := l.Clear(now); ok {
						got = fmt.Sprintf("over %d in %s", over.Total, over.Lasted)
						if over.Kind != last {
							t.Fatalf("step %d: the end of %q, want the end of %q", i, over.Kind, last)
						}
					}
				} else {
					last = s.fail
					switch line := l.Fail(now, s.fail, s.n); line.Tell {
					case First:
						got = fmt.Sprintf("first %d", line.N)
					case Count:
						got = fmt.Sprintf("count %d", line.N)
					}
				}
				if got != s.wants {
					what := s.fail
					if what == "" {
						what = "clear"
					}
					t.Fatalf("step %d (%s at %s): %q, want %q", i, what, s.at, got, s.wants)
				}
			}
		})
	}
}

// TestLogSince: On says when the fault began, told or not yet.
func TestLogSince(t *testing.T) {
	start := time.Date(2026, 12, 7, 15, 0, 0, 0, time.UTC)
	l := Log{After: 3}
	if _, on := l.On(); on {
		t.Fatal("a new Log is on")
	}
	l.Fail(start, "wal", 1)
	l.Fail(start.Add(time.Second), "wal", 1)
	if since, on := l.On(); !on || !since.Equal(start) {
		t.Fatalf("On = %v, %v; want on since %v", since, on, start)
	}
}
