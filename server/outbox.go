package server

import (
	"sync"
	"time"
)

// outbox is a socket's send queue, bounded in packets and in bytes. It
// holds no memory while empty (most tablet sockets are idle most of the
// time), and a writer takes everything queued in one go. No writer waits
// on an empty queue: a push that finds none at work calls wake, which
// starts one, and the writer stops when next finds the queue empty. An
// idle socket so costs no writer goroutine.
type outbox struct {
	maxCount int
	maxBytes int
	// wake starts a writer (the socket's, which calls next until it
	// reports nothing). It is called outside the lock, once per start;
	// nil starts nothing.
	wake func()

	mu      sync.Mutex
	items   [][]byte
	units   int // what counts against maxCount: a packet, or a whole group
	bytes   int
	writing bool          // a writer is at work; the next push need not wake one
	room    chan struct{} // closed by take when pushWait callers wait; nil when none do
}

func newOutbox(maxCount, maxBytes int) *outbox {
	return &outbox{maxCount: maxCount, maxBytes: maxBytes}
}

// wakeLocked marks a writer at work and reports whether one must be
// started for that (none was).
func (o *outbox) wakeLocked() bool {
	if o.writing {
		return false
	}
	o.writing = true
	return true
}

// start calls wake when start is set.
func (o *outbox) start(start bool) {
	if start && o.wake != nil {
		o.wake()
	}
}

// kick starts a writer even with nothing queued (to close the socket).
func (o *outbox) kick() {
	o.mu.Lock()
	start := o.wakeLocked()
	o.mu.Unlock()
	o.start(start)
}

// next is take for the writer: it returns what is queued, or, when
// nothing is and stop is still open, nil with the writer marked stopped
// (the next push wakes a new one). With stop closed it never stops the
// writer: the writer then goes on to close the socket, and no other
// writer is woken after it.
func (o *outbox) next(stop <-chan struct{}) (items [][]byte, more bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.items) == 0 {
		select {
		case <-stop:
		default:
			o.writing = false
			return nil, false
		}
	}
	return o.takeLocked(), true
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
	start := o.wakeLocked()
	o.mu.Unlock()
	o.start(start)
	return true
}

// pushWait queues b like push, but when the queue is full it waits for the
// write pump to take what is queued, up to wait or until done closes. It
// reports false when no room came. An empty queue always takes b, so one
// packet larger than the byte bound still goes out.
func (o *outbox) pushWait(b []byte, wait time.Duration, done <-chan struct{}) bool {
	return o.pushWaitBelow(b, o.maxCount, wait, done)
}

// pushWaitBelow is pushWait that takes b only while fewer than count
// packets wait: the read pump leaves the rest of the queue to the replies
// of requests already in the pool and to pushes, which do not wait.
func (o *outbox) pushWaitBelow(b []byte, count int, wait time.Duration, done <-chan struct{}) bool {
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		o.mu.Lock()
		if o.units == 0 || (o.units < count && o.bytes+len(b) <= o.maxBytes) {
			o.items = append(o.items, b)
			o.units++
			o.bytes += len(b)
			start := o.wakeLocked()
			o.mu.Unlock()
			o.start(start)
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

// crowded reports whether the queue holds over half of either bound.
func (o *outbox) crowded() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return 2*o.units > o.maxCount || 2*o.bytes > o.maxBytes
}

// take removes and returns everything queued, oldest first, and wakes
// every pushWait caller.
func (o *outbox) take() [][]byte {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.takeLocked()
}

func (o *outbox) takeLocked() [][]byte {
	items := o.items
	o.items, o.units, o.bytes = nil, 0, 0
	if o.room != nil {
		close(o.room)
		o.room = nil
	}
	return items
}

// depth is how many packets wait.
func (o *outbox) depth() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.items)
}
