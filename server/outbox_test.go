package server

import "testing"

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

func TestOutboxTakeEmptiesAndWakes(t *testing.T) {
	o := newOutbox(4, 100)
	o.push([]byte("a"))
	o.push([]byte("b"))
	select {
	case <-o.wake:
	default:
		t.Fatal("no wake-up after push")
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
