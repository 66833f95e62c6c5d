package salesbuilder

import (
	"fmt"
	"testing"
)

// TestTopsStayBounded: the sockets remembered never exceed maxTops; the
// ones that changed something most recently are kept, and a socket whose
// entry aged out reads as "" (it falls back to its key's newest sale).
func TestTopsStayBounded(t *testing.T) {
	tp := newTops()
	for i := range 3 * maxTops {
		tp.set(fmt.Sprintf("s-%d", i), fmt.Sprintf("pk-%d", i))
		if n := len(tp.cur) + len(tp.old); n > maxTops {
			t.Fatalf("after %d sockets, %d remembered: more than %d", i+1, n, maxTops)
		}
	}
	last := 3*maxTops - 1
	tests := []struct {
		session, want string
	}{
		{fmt.Sprintf("s-%d", last), fmt.Sprintf("pk-%d", last)},
		{fmt.Sprintf("s-%d", last-maxTops/2), fmt.Sprintf("pk-%d", last-maxTops/2)}, // in the older generation
		{"s-0", ""}, // aged out
	}
	for _, tt := range tests {
		if got := tp.get(tt.session); got != tt.want {
			t.Errorf("get(%s) = %q, want %q", tt.session, got, tt.want)
		}
	}
	// A socket that changes again moves to the newer generation, once.
	tp.set("s-0", "pk-again")
	tp.set("s-0", "pk-again-2")
	if got := tp.get("s-0"); got != "pk-again-2" {
		t.Fatalf("get(s-0) = %q after setting it again", got)
	}
}
