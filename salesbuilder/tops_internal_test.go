package salesbuilder

import (
	"fmt"
	"testing"
)

// TestTopsStayBounded: past maxTops sockets, those that have closed are
// forgotten; if every one is still open, all are (each falls back to its
// key's newest sale), so the map never outgrows the bound.
func TestTopsStayBounded(t *testing.T) {
	tests := []struct {
		name     string
		gone     func(string) bool
		wantKept int // entries besides the one just set
	}{
		{"closed sockets are dropped", func(s string) bool { return s != "s-0" }, 1},
		{"all open: start again", func(string) bool { return false }, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tp := newTops()
			for i := range maxTops {
				tp.set(fmt.Sprintf("s-%d", i), "pk", tt.gone)
			}
			if len(tp.m) != maxTops {
				t.Fatalf("%d remembered before the bound, want %d", len(tp.m), maxTops)
			}
			tp.set("new", "pk-new", tt.gone)
			if len(tp.m) != tt.wantKept+1 || tp.get("new") != "pk-new" {
				t.Fatalf("after the bound: %d remembered (new: %q), want %d", len(tp.m), tp.get("new"), tt.wantKept+1)
			}
		})
	}
}
