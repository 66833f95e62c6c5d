package salesbuilder

import (
	"fmt"
	"testing"

	"github.com/greenlane-pos/greenlane/protocol"
)

// TestTopsStayBounded: the sockets remembered for one key never exceed
// maxTopsPerKey; the ones that changed something most recently are kept;
// and another key's sockets, however many, push out none of them.
func TestTopsStayBounded(t *testing.T) {
	tp := newTops()
	for i := range 3 * maxTopsPerKey {
		tp.set("key-a", fmt.Sprintf("s-%d", i), fmt.Sprintf("pk-%d", i))
		g := tp.byKey["key-a"]
		if n := len(g.cur) + len(g.old); n > maxTopsPerKey {
			t.Fatalf("after %d sockets, %d remembered: more than %d", i+1, n, maxTopsPerKey)
		}
	}
	tp.set("key-b", "b-first", "pk-b")
	for i := range 20 * maxTopsPerKey {
		tp.set("key-a", fmt.Sprintf("churn-%d", i), "pk-churn")
	}
	last := 3*maxTopsPerKey - 1
	tests := []struct {
		key, session, want string
	}{
		{"key-b", "b-first", "pk-b"}, // another key's churn left it alone
		{"key-a", fmt.Sprintf("s-%d", last), ""},
		{"key-a", fmt.Sprintf("churn-%d", 20*maxTopsPerKey-1), "pk-churn"},
	}
	for _, tt := range tests {
		if got := tp.get(tt.key, tt.session); got != tt.want {
			t.Errorf("get(%s, %s) = %q, want %q", tt.key, tt.session, got, tt.want)
		}
	}
	// A socket that changes again moves to the newer generation, once.
	tp.set("key-a", "s-0", "pk-again")
	tp.set("key-a", "s-0", "pk-again-2")
	if got := tp.get("key-a", "s-0"); got != "pk-again-2" {
		t.Fatalf("get(s-0) = %q after setting it again", got)
	}
}

// TestTopLivesOnTheSocket: a socket's top sale is kept on the socket
// (protocol.Top), so no churn of the table, by its own key's sockets or
// another's, makes the lane forget it and fall back to another sale.
func TestTopLivesOnTheSocket(t *testing.T) {
	s := &Service{tops: newTops()}
	counter := &protocol.Caller{KeyID: "key-counter", Session: "counter-socket", Transport: "ws", Top: new(protocol.Top)}
	counter.Top.Set("pk-a")
	s.tops.set(counter.KeyID, counter.Session, "pk-a")
	for i := range 40 * maxTopsPerKey {
		s.tops.set("key-counter", fmt.Sprintf("own-%d", i), "pk-other")
		s.tops.set("key-tablet", fmt.Sprintf("tablet-%d", i), "pk-other")
	}
	if got := s.topOf(counter); got != "pk-a" {
		t.Fatalf("after churn the socket's top sale is %q, want pk-a", got)
	}
}
