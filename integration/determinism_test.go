package integration

import (
	"bytes"
	"testing"
)

// TestDeterministicMode: two fresh lanes with the same --clock and --seed,
// driven by the same script, answer byte for byte the same.
func TestDeterministicMode(t *testing.T) {
	alongside(t)
	script := []map[string]any{
		{"a": "fd1.salesbuilder.sale_create", "rq": 1},
		{"a": "fd1.salesbuilder.sale_add_product", "rq": 2, "v": map[string]any{"plu": "FW", "qty": 2}},
		{"a": "fd1.salesbuilder.sale_add_product", "rq": 3, "v": map[string]any{"pid": 1024, "qty": 250}},
		{"a": "fd1.salesbuilder.sale_set_customer", "rq": 4, "v": map[string]any{"cid": 3}},
		{"a": "fd1.salesbuilder.sale_park", "rq": 5},
		{"a": "fd1.salesbuilder.get_sale", "rq": 6, "qk": "all"},
		{"a": "fd1.debug.ping", "rq": 7},
	}
	run := func() [][]byte {
		l := startLane(t, "--clock", "2026-01-01T09:00:00Z", "--seed", "7")
		c := l.login("?purpose=presell", l.newKey("tablet-1", "presell"), "")
		var out [][]byte
		for _, pkt := range script {
			r := c.call(pkt)
			if r.Error != nil {
				t.Fatalf("%v: %s", pkt["a"], r.raw)
			}
			out = append(out, r.raw)
		}
		return out
	}
	a, b := run(), run()
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			t.Fatalf("reply %d differs between two runs:\n%s\n%s", i+1, a[i], b[i])
		}
	}
	if !bytes.Contains(a[0], []byte(`"startdt":"2026-01-01 22:00:00"`)) {
		t.Fatalf("the frozen clock (09:00 UTC, 22:00 in Wellington) does not show: %s", a[0])
	}
}
