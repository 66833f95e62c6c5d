package salesbuilder_test

import (
	"strings"
	"testing"
	"time"

	"github.com/greenlane-pos/greenlane/protocol"
)

// A line added through FD1 records how it came (SPEC §9.2 linesource): the
// client's own code when it gives a listed one, else 10, "API call".
func TestLineSourceDefaultsToAPICall(t *testing.T) {
	l := newLane(t)
	tab := tablet("tablet-1")
	k := l.sale(tab, "salesbuilder.sale_create", "", nil).Physkey
	tests := []struct {
		name string
		v    map[string]any
		want int64 // 0: refused with bad_argument
	}{
		{"none given", map[string]any{"pid": 1001}, 10},
		{"zero is none", map[string]any{"pid": 1001, "linesource": 0}, 10},
		{"scan", map[string]any{"pid": 1001, "linesource": 1}, 1},
		{"lookup", map[string]any{"pid": 1001, "linesource": 3}, 3},
		{"voice", map[string]any{"pid": 1001, "linesource": 14}, 14},
		{"not a listed code", map[string]any{"pid": 1001, "linesource": 5}, 0},
		{"too big", map[string]any{"pid": 1001, "linesource": 99}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := l.call(tab, "salesbuilder.sale_add_product", k, tt.v, "")
			if tt.want == 0 {
				wantCode(t, err, protocol.CodeBadArgument)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			lines := viewOf(t, res).Lines
			if got := lines[len(lines)-1].LineSource; got != tt.want {
				t.Fatalf("linesource %d, want %d", got, tt.want)
			}
		})
	}
}

// A claim's end reads as the staff's clock (SPEC §9: local store time):
// the demo lane is in Pacific/Auckland and the test clock is 09:30 UTC,
// 22:30 there, with a two-minute lease.
func TestClaimMessagesShowTheStoreClock(t *testing.T) {
	l := newLane(t)
	tab, till1, till2 := tablet("tablet-1"), counter("counter-1"), counter("counter-2")
	k := l.submitted(tab, 1001).Physkey
	l.sale(till1, "salesbuilder.sale_unpark", k, nil)

	_, err := l.call(till2, "salesbuilder.sale_unpark", k, nil, "")
	wantCode(t, err, protocol.CodeClaimed)
	if msg := err.Error(); !strings.Contains(msg, "until 22:32") || strings.Contains(msg, "Z") {
		t.Fatalf("claimed message %q, want the store's clock (until 22:32), no UTC stamp", msg)
	}

	l.advance(3 * time.Minute)
	_, err = l.call(till1, "salesbuilder.sale_add_product", k, map[string]any{"pid": 1001}, "")
	wantCode(t, err, protocol.CodeClaimLost)
	if msg := err.Error(); !strings.Contains(msg, "lapsed at 22:32") {
		t.Fatalf("claim_lost message %q, want lapsed at 22:32", msg)
	}
}
