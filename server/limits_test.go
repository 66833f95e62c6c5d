package server

import (
	"testing"
)

func TestLoginGuard(t *testing.T) {
	g := newLoginGuard(3)
	for i := 0; i < 3; i++ {
		if g.blocked("10.0.0.1:5000") {
			t.Fatalf("blocked after %d failures, allowance is 3", i)
		}
		g.failed("10.0.0.1:5000")
	}
	if !g.blocked("10.0.0.1:6000") { // another port, same host
		t.Fatal("not blocked after 3 failures")
	}
	if g.blocked("10.0.0.2:5000") {
		t.Fatal("another address is blocked too")
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
