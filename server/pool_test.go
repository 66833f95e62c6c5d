package server

import (
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestPoolKeepsOrderPerKeyAndRunsKeysInParallel(t *testing.T) {
	p := newPool(4, 64)
	stop := make(chan struct{})
	var mu sync.Mutex
	seen := map[string][]int{}
	var running, peak atomic.Int32
	for i := 0; i < 40; i++ {
		key := []string{"a", "b", "c", "d"}[i%4]
		i := i
		if !p.submit(key, func() {
			n := running.Add(1)
			for {
				old := peak.Load()
				if n <= old || peak.CompareAndSwap(old, n) {
					break
				}
			}
			time.Sleep(2 * time.Millisecond)
			running.Add(-1)
			mu.Lock()
			seen[key] = append(seen[key], i)
			mu.Unlock()
		}, stop) {
			t.Fatal("submit refused")
		}
	}
	p.wait()
	for key, order := range seen {
		for j := 1; j < len(order); j++ {
			if order[j] < order[j-1] {
				t.Fatalf("key %s ran out of order: %v", key, order)
			}
		}
		if len(order) != 10 {
			t.Fatalf("key %s ran %d requests, want 10", key, len(order))
		}
	}
	if peak.Load() < 2 || peak.Load() > 4 {
		t.Errorf("peak concurrency %d, want 2…4", peak.Load())
	}
}

func TestPoolSingleWorkerIsInOrder(t *testing.T) {
	p := newPool(1, 8)
	stop := make(chan struct{})
	var got []int
	for i := 0; i < 20; i++ {
		i := i
		p.submit("", func() { got = append(got, i) }, stop)
	}
	p.wait()
	for i, v := range got {
		if v != i {
			t.Fatalf("order %v", got)
		}
	}
}

func TestPoolBackPressureAndStop(t *testing.T) {
	p := newPool(1, 2)
	stop := make(chan struct{})
	release := make(chan struct{})
	for i := 0; i < 2; i++ {
		p.submit("k", func() { <-release }, stop)
	}
	done := make(chan bool)
	go func() { done <- p.submit("k", func() {}, stop) }()
	select {
	case <-done:
		t.Fatal("submit did not block on a full queue")
	case <-time.After(50 * time.Millisecond):
	}
	close(stop)
	if <-done {
		t.Fatal("submit after stop reported success")
	}
	close(release)
	p.wait()
}

func TestPoolEmptyKeyIsABarrier(t *testing.T) {
	p := newPool(4, 64)
	stop := make(chan struct{})
	var mu sync.Mutex
	var log []string
	record := func(s string, d time.Duration) func() {
		return func() {
			time.Sleep(d)
			mu.Lock()
			log = append(log, s)
			mu.Unlock()
		}
	}
	// Two slow keyed requests, then a barrier, then a fast keyed one.
	p.submit("a", record("a1", 20*time.Millisecond), stop)
	p.submit("b", record("b1", 10*time.Millisecond), stop)
	p.submit("", record("barrier", 0), stop)
	p.submit("c", record("c1", 0), stop)
	p.wait()
	got := strings.Join(log, ",")
	if got != "b1,a1,barrier,c1" {
		t.Fatalf("order %s: the barrier must follow a1 and b1, and c1 must follow the barrier", got)
	}
}
