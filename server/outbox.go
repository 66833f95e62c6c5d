package server

import "sync"

// outbox is a socket's send queue, bounded in packets and in bytes. It
// holds no memory while empty (most tablet sockets are idle most of the
// time), and the write pump takes everything queued in one go.
type outbox struct {
	maxCount int
	maxBytes int

	mu    sync.Mutex
	items [][]byte
	bytes int
	wake  chan struct{} // signalled when items go from none to some
}

func newOutbox(maxCount, maxBytes int) *outbox {
	return &outbox{maxCount: maxCount, maxBytes: maxBytes, wake: make(chan struct{}, 1)}
}

// push queues b. It reports false, queueing nothing, when b would exceed
// either bound: the caller then drops the slow client.
func (o *outbox) push(b []byte) bool {
	o.mu.Lock()
	if len(o.items) >= o.maxCount || o.bytes+len(b) > o.maxBytes {
		o.mu.Unlock()
		return false
	}
	o.items = append(o.items, b)
	o.bytes += len(b)
	o.mu.Unlock()
	select {
	case o.wake <- struct{}{}:
	default:
	}
	return true
}

// take removes and returns everything queued, oldest first.
func (o *outbox) take() [][]byte {
	o.mu.Lock()
	items := o.items
	o.items, o.bytes = nil, 0
	o.mu.Unlock()
	return items
}

// depth is how many packets wait.
func (o *outbox) depth() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.items)
}
