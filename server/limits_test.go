package server

import (
	"testing"
	"time"
)

func TestLoginGuard(t *testing.T) {
	g := newLoginGuard(3) // 3 a minute: one back every 20s
	for i := 0; i < 3; i++ {
		if wait := g.failed("10.0.0.1:5000"); wait != 0 {
			t.Fatalf("failure %d is slowed (%v), the budget is 3", i+1, wait)
		}
	}
	wait := g.failed("10.0.0.1:6000") // another port, same host
	if wait <= 0 || wait > 20*time.Second {
		t.Fatalf("the 4th failure: wait %v, want (0, 20s]", wait)
	}
	if w := g.failed("10.0.0.2:5000"); w != 0 {
		t.Fatalf("another address is slowed too (%v)", w)
	}
}

func TestRetrySeconds(t *testing.T) {
	tests := []struct {
		wait time.Duration
		want int
	}{
		{0, 1}, {time.Millisecond, 1}, {time.Second, 1}, {time.Second + 1, 2}, {59500 * time.Millisecond, 60},
	}
	for _, tt := range tests {
		if got := retrySeconds(tt.wait); got != tt.want {
			t.Errorf("retrySeconds(%v) = %d, want %d", tt.wait, got, tt.want)
		}
	}
}

func TestLoginGuardForgetsIdleAddresses(t *testing.T) {
	g := newLoginGuard(1)
	g.maxAddr = 4
	for i := 0; i < 20; i++ {
		g.failed("10.0.0." + string(rune('a'+i)) + ":1")
	}
	if len(g.byAddr) > 4 {
		t.Fatalf("the table grew to %d addresses, cap 4", len(g.byAddr))
	}
}
