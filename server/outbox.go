package server

import (
	"sync"
	"time"
)

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
	room  chan struct{} // closed by take when pushWait callers wait; nil when none do
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

// pushWait queues b like push, but when the queue is full it waits for the
// write pump to take what is queued, up to wait or until done closes. It
// reports false when no room came. An empty queue always takes b, so one
// packet larger than the byte bound still goes out.
func (o *outbox) pushWait(b []byte, wait time.Duration, done <-chan struct{}) bool {
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		o.mu.Lock()
		if o.units == 0 || (o.units < o.maxCount && o.bytes+len(b) <= o.maxBytes) {
			o.items = append(o.items, b)
			o.units++
			o.bytes += len(b)
			o.mu.Unlock()
			select {
			case o.wake <- struct{}{}:
			default:
			}
			return true
		}
		if o.room == nil {
			o.room = make(chan struct{})
		}
		room := o.room
		o.mu.Unlock()
		select {
		case <-room:
		case <-timer.C:
			return false
		case <-done:
			return false
		}
	}
}

// take removes and returns everything queued, oldest first, and wakes
// every pushWait caller.
func (o *outbox) take() [][]byte {
	o.mu.Lock()
	items := o.items
	o.items, o.units, o.bytes = nil, 0, 0
	if o.room != nil {
		close(o.room)
		o.room = nil
	}
	o.mu.Unlock()
	return items
}

// depth is how many packets wait.
func (o *outbox) depth() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.items)
}
