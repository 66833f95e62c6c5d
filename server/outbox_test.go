package server

import (
	"context"
	"strconv"
	"testing"
	"time"
)

func TestOutboxBounds(t *testing.T) {
	tests := []struct {
		name       string
		count, max int
		sizes      []int
		wantOK     []bool
	}{
		{"count bound", 2, 100, []int{1, 1, 1}, []bool{true, true, false}},
		{"byte bound", 10, 10, []int{6, 5, 4}, []bool{true, false, true}},
		{"one packet over the byte bound", 10, 10, []int{11}, []bool{false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := newOutbox(tt.count, tt.max)
			for i, n := range tt.sizes {
				if got := o.push(make([]byte, n)); got != tt.wantOK[i] {
					t.Fatalf("push %d (%d bytes) = %v, want %v", i, n, got, tt.wantOK[i])
				}
			}
		})
	}
}

func TestOutboxCrowded(t *testing.T) {
	tests := []struct {
		name       string
		count, max int
		sizes      []int
		want       bool
	}{
		{"empty", 4, 100, nil, false},
		{"half the packets", 4, 100, []int{1, 1}, false},
		{"over half the packets", 4, 100, []int{1, 1, 1}, true},
		{"half the bytes", 10, 100, []int{50}, false},
		{"over half the bytes", 10, 100, []int{30, 21}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := newOutbox(tt.count, tt.max)
			for _, n := range tt.sizes {
				o.push(make([]byte, n))
			}
			if got := o.crowded(); got != tt.want {
				t.Fatalf("crowded = %v, want %v", got, tt.want)
			}
			if o.take(); o.crowded() {
				t.Fatal("crowded once emptied")
			}
		})
	}
}

// TestSocketCrowdedUntilKilled: a socket dropped as slow still holds its
// queue until its writer gives up, but the hub must not wait for it.
func TestSocketCrowdedUntilKilled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sk := &socket{out: newOutbox(4, 100), ctx: ctx, cancel: cancel}
	for range 3 {
		sk.out.push([]byte("x"))
	}
	if !sk.Crowded() {
		t.Fatal("a socket with 3 of 4 packets queued is not crowded")
	}
	sk.kill(1008, "send queue full")
	if sk.Crowded() {
		t.Fatal("a socket being torn down is still crowded")
	}
}

func TestOutboxTakeEmptiesAndWakes(t *testing.T) {
	o := newOutbox(4, 100)
	wakes := 0
	o.wake = func() { wakes++ }
	o.push([]byte("a"))
	o.push([]byte("b"))
	if wakes != 1 { // the writer woken by a takes b too
		t.Fatalf("%d wake-ups after two pushes, want 1", wakes)
	}
	got := o.take()
	if len(got) != 2 || string(got[0]) != "a" || string(got[1]) != "b" {
		t.Fatalf("take = %q", got)
	}
	if len(o.take()) != 0 {
		t.Fatal("take did not empty the queue")
	}
	// Freed space can be used again.
	for i := 0; i < 4; i++ {
		if !o.push([]byte("x")) {
			t.Fatalf("push %d after take refused", i)
		}
	}
}

// TestOutboxPushWait: a chunked reply waits for room instead of failing on
// a full queue, so a client that reads gets every packet, in order, through
// a queue far smaller than the reply.
func TestOutboxPushWait(t *testing.T) {
	o := newOutbox(2, 64)
	const n = 200
	got := make(chan []byte, n)
	o.wake = func() { // the socket's writer
		go func() {
			for {
				packets, more := o.next(nil)
				if !more {
					return
				}
				for _, b := range packets {
					got <- b
				}
			}
		}()
	}
	for i := 0; i < n; i++ {
		if !o.pushWait([]byte(strconv.Itoa(i)), time.Minute, nil) {
			t.Fatalf("pushWait %d refused while the queue is being drained", i)
		}
	}
	for i := 0; i < n; i++ {
		if b := <-got; string(b) != strconv.Itoa(i) {
			t.Fatalf("packet %d is %q: out of order", i, b)
		}
	}
}

func TestOutboxPushWaitGivesUp(t *testing.T) {
	t.Run("nobody reads", func(t *testing.T) {
		o := newOutbox(1, 64)
		o.push([]byte("a"))
		if o.pushWait([]byte("b"), 10*time.Millisecond, nil) {
			t.Fatal("pushWait queued past the count bound with nobody reading")
		}
	})
	t.Run("socket closed", func(t *testing.T) {
		o := newOutbox(1, 64)
		o.push([]byte("a"))
		done := make(chan struct{})
		close(done)
		if o.pushWait([]byte("b"), time.Minute, done) {
			t.Fatal("pushWait queued on a closed socket")
		}
	})
	t.Run("empty queue takes a packet over the byte bound", func(t *testing.T) {
		o := newOutbox(4, 8)
		if !o.pushWait(make([]byte, 100), time.Minute, nil) {
			t.Fatal("an empty queue refused one large packet")
		}
	})
}

// TestOutboxWriterStartsAndStops: a writer is woken only when none is at
// work, stops when the queue is empty, and is woken again by the next
// push; once the socket is closing (stop closed) the writer is never
// stopped, so no second one is woken beside the one closing the socket.
func TestOutboxWriterStartsAndStops(t *testing.T) {
	open := make(chan struct{})
	closing := make(chan struct{})
	close(closing)
	tests := []struct {
		name      string
		stop      chan struct{}
		wantMore  bool // what next answers on the empty queue
		wantWakes int  // after push, next, next, push
	}{
		{"open socket", open, false, 2},
		{"closing socket", closing, true, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := newOutbox(4, 100)
			wakes := 0
			o.wake = func() { wakes++ }
			o.push([]byte("a"))
			if got, more := o.next(tt.stop); !more || len(got) != 1 {
				t.Fatalf("next = %q, %v; want the queued packet", got, more)
			}
			if got, more := o.next(tt.stop); more != tt.wantMore || len(got) != 0 {
				t.Fatalf("next on an empty queue = %q, %v; want nothing, %v", got, more, tt.wantMore)
			}
			o.push([]byte("b"))
			if wakes != tt.wantWakes {
				t.Fatalf("%d wake-ups, want %d", wakes, tt.wantWakes)
			}
		})
	}
}
