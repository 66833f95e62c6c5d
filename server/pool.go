package server

import "sync"

// pool runs one socket's requests: at most max at once, and requests with
// the same key one after another in arrival order. A presell socket keys
// requests by sale, so a tablet may pipeline work on several sales while
// each sale's requests stay in order. The empty key is a barrier: a
// request that names no sale (the top sale, a lookup) waits for everything
// sent before it, and everything sent after it waits for it. An ordinary
// socket has max 1, which is plain in-order dispatch. Workers exist only
// while there is work, so an idle socket costs no goroutines.
type pool struct {
	max   int
	slots chan struct{} // bounds queued + running requests

	mu         sync.Mutex
	pending    []poolEntry // in arrival order, not started
	running    map[string]int
	nRunning   int
	barrierRun bool
	workers    int
	idle       sync.WaitGroup // one per submitted, unfinished request
	live       sync.WaitGroup // one per worker goroutine, so wait can join them
}

type poolEntry struct {
	key string
	fn  func()
}

func newPool(max, queue int) *pool {
	if max < 1 {
		max = 1
	}
	if queue < max {
		queue = max
	}
	return &pool{max: max, slots: make(chan struct{}, queue), running: map[string]int{}}
}

// submit queues fn under key. It blocks while the socket already has its
// full share of requests (the read pump then stops reading: back-pressure),
// and gives up when stop is closed.
func (p *pool) submit(key string, fn func(), stop <-chan struct{}) bool {
	select {
	case p.slots <- struct{}{}:
	case <-stop:
		return false
	}
	p.idle.Add(1)
	p.mu.Lock()
	p.pending = append(p.pending, poolEntry{key: key, fn: fn})
	p.spawnLocked()
	p.mu.Unlock()
	return true
}

// spawnLocked starts a worker if one could take work now.
func (p *pool) spawnLocked() {
	if p.workers < p.max && p.nextLocked() >= 0 {
		p.workers++
		p.live.Add(1)
		go func() { defer p.live.Done(); p.work() }()
	}
}

// nextLocked is the index of the first pending request that may start, or -1.
func (p *pool) nextLocked() int {
	if p.barrierRun {
		return -1
	}
	seen := map[string]bool{}
	for i, e := range p.pending {
		if e.key == "" {
			// A barrier starts alone, after everything before it.
			if i == 0 && p.nRunning == 0 {
				return 0
			}
			return -1
		}
		if p.running[e.key] == 0 && !seen[e.key] {
			return i
		}
		seen[e.key] = true
	}
	return -1
}

// work runs requests while any may start.
func (p *pool) work() {
	p.mu.Lock()
	for {
		i := p.nextLocked()
		if i < 0 {
			break
		}
		e := p.pending[i]
		p.pending = append(p.pending[:i], p.pending[i+1:]...)
		p.nRunning++
		p.running[e.key]++
		if e.key == "" {
			p.barrierRun = true
		}
		p.spawnLocked() // more may run beside this one
		p.mu.Unlock()

		e.fn()
		<-p.slots
		p.idle.Done()

		p.mu.Lock()
		p.nRunning--
		if p.running[e.key]--; p.running[e.key] == 0 {
			delete(p.running, e.key)
		}
		if e.key == "" {
			p.barrierRun = false
		}
	}
	p.workers--
	p.mu.Unlock()
}

// wait returns when every submitted request has finished and the workers
// that ran them are gone. Nothing may be submitted meanwhile.
func (p *pool) wait() {
	p.idle.Wait()
	p.live.Wait()
}

// depth is how many requests wait and how many run.
func (p *pool) depth() (pending, running int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.pending), p.nRunning
}
