package server

import (
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
