package firehose

import (
	"context"
	"slices"
	"sync"
)

// replayGate hands out the lane-wide replay reads (HubConfig.Replays) in
// turn by API key: each key has at most one replay reading at a time,
// and a key waiting gets the next free read before a key that already
// had one gets another. One key's hundreds of pipelined opens with since
// thus wait behind each other, not in front of another key's display
// reconnecting.
type replayGate struct {
	mu      sync.Mutex
	free    int                        // reads that may start
	reading map[string]bool            // keys with a replay reading
	turns   []string                   // keys waiting, in the order their turn comes
	waiting map[string][]chan struct{} // per key, its opens waiting, first come first
	granted func(key string)           // tests: called as a key is let in, under mu
}

func newReplayGate(reads int) *replayGate {
	return &replayGate{free: reads, reading: map[string]bool{}, waiting: map[string][]chan struct{}{}}
}

// enter waits for key's turn to read a replay; leave must follow a nil
// return.
func (g *replayGate) enter(ctx context.Context, key string) error {
	ready := make(chan struct{})
	g.mu.Lock()
	if len(g.waiting[key]) == 0 {
		g.turns = append(g.turns, key)
	}
	g.waiting[key] = append(g.waiting[key], ready)
	g.dispatchLocked()
	g.mu.Unlock()
	select {
	case <-ready:
		return nil
	case <-ctx.Done():
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-ready: // let in meanwhile: give the read back
		g.leaveLocked(key)
		return ctx.Err()
	default:
	}
	g.waiting[key] = slices.DeleteFunc(g.waiting[key], func(c chan struct{}) bool { return c == ready })
	if len(g.waiting[key]) == 0 {
		delete(g.waiting, key)
		g.turns = slices.DeleteFunc(g.turns, func(k string) bool { return k == key })
	}
	return ctx.Err()
}

// leave gives back key's read and lets the next key in.
func (g *replayGate) leave(key string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.leaveLocked(key)
}

func (g *replayGate) leaveLocked(key string) {
	g.free++
	delete(g.reading, key)
	g.dispatchLocked()
}

// dispatchLocked lets in, while reads are free, the first key in turn
// that is not reading already; a key with more opens waiting goes to the
// back of the turns.
func (g *replayGate) dispatchLocked() {
	for g.free > 0 {
		i := slices.IndexFunc(g.turns, func(k string) bool { return !g.reading[k] })
		if i < 0 {
			return
		}
		key := g.turns[i]
		g.turns = slices.Delete(g.turns, i, i+1)
		queue := g.waiting[key]
		close(queue[0])
		if g.waiting[key] = queue[1:]; len(g.waiting[key]) > 0 {
			g.turns = append(g.turns, key)
		} else {
			delete(g.waiting, key)
		}
		g.free--
		g.reading[key] = true
		if g.granted != nil {
			g.granted(key)
		}
	}
}

// queued is how many opens wait, for tests.
func (g *replayGate) queued() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	n := 0
	for _, q := range g.waiting {
		n += len(q)
	}
	return n
}
