package server

import "sync"

// pool runs one socket's requests: at most max at once, and requests with
// the same key one after another in arrival order. A presell socket keys
// requests by sale, so a tablet may pipeline work on several sales while
// each sale's requests stay in order; an ordinary socket has max 1 and one
// key, which is plain in-order dispatch. Workers exist only while there is
// work, so an idle socket costs no goroutines.
type pool struct {
	max   int
	slots chan struct{} // bounds queued + running requests

	mu      sync.Mutex
	queues  map[string][]func()
	ready   []string // keys with queued work and no running request
	running map[string]bool
	workers int
	idle    sync.WaitGroup // one per submitted, unfinished request
}

func newPool(max, queue int) *pool {
	if max < 1 {
		max = 1
	}
	if queue < max {
		queue = max
	}
	return &pool{max: max, slots: make(chan struct{}, queue), queues: map[string][]func(){}, running: map[string]bool{}}
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
	p.queues[key] = append(p.queues[key], fn)
	if !p.running[key] && len(p.queues[key]) == 1 {
		p.ready = append(p.ready, key)
	}
	if p.workers < p.max && len(p.ready) > 0 {
		p.workers++
		go p.work()
	}
	p.mu.Unlock()
	return true
}

// work runs ready requests until none is left.
func (p *pool) work() {
	p.mu.Lock()
	for len(p.ready) > 0 {
		key := p.ready[0]
		p.ready = p.ready[1:]
		fn := p.queues[key][0]
		p.queues[key] = p.queues[key][1:]
		p.running[key] = true
		p.mu.Unlock()

		fn()
		<-p.slots
		p.idle.Done()

		p.mu.Lock()
		delete(p.running, key)
		if len(p.queues[key]) > 0 {
			p.ready = append(p.ready, key)
		} else {
			delete(p.queues, key)
		}
	}
	p.workers--
	p.mu.Unlock()
}

// wait returns when every submitted request has finished.
func (p *pool) wait() { p.idle.Wait() }
