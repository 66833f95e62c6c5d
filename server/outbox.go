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
	units int // what counts against maxCount: a packet, or a whole group
	bytes int
	wake  chan struct{} // signalled when items go from none to some
}

func newOutbox(maxCount, maxBytes int) *outbox {
	return &outbox{maxCount: maxCount, maxBytes: maxBytes, wake: make(chan struct{}, 1)}
}

// push queues b. It reports false, queueing nothing, when b would exceed
// either bound: the caller then drops the slow client.
func (o *outbox) push(b []byte) bool { return o.pushGroup([][]byte{b}) }

// pushGroup queues packets that the lane sends as one burst (a firehose's
// replay): they count once against the packet bound, and in full against
// the byte bound, so a client that reads is not mistaken for a slow one.
func (o *outbox) pushGroup(group [][]byte) bool {
	n := 0
	for _, b := range group {
		n += len(b)
	}
	o.mu.Lock()
	if o.units >= o.maxCount || o.bytes+n > o.maxBytes {
		o.mu.Unlock()
		return false
	}
	o.items = append(o.items, group...)
	o.units++
	o.bytes += n
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
	o.items, o.units, o.bytes = nil, 0, 0
	o.mu.Unlock()
	return items
}

// depth is how many packets wait.
func (o *outbox) depth() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.items)
}
