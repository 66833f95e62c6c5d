package salesbuilder

import "testing"

func TestNumberWordIsOneToOne(t *testing.T) {
	seen := map[string]int64{}
	for n := int64(0); n <= 9999; n++ {
		w := numberWord(n)
		if prev, dup := seen[w]; dup {
			t.Fatalf("%d and %d both say %q", prev, n, w)
		}
		seen[w] = n
		back, ok := wordNumber(w)
		if !ok || back != n {
			t.Fatalf("wordNumber(%q) = %d, %v; want %d", w, back, ok, n)
		}
	}
	for _, bad := range []string{"", "amber", "amber-", "amber-nope", "x-y", "amber-apple-arrow"} {
		if _, ok := wordNumber(bad); ok {
			t.Errorf("wordNumber(%q) accepted", bad)
		}
	}
	if n, ok := wordNumber(" Amber Apple "); !ok || n != 1 {
		t.Errorf("spoken form: %d %v", n, ok)
	}
	if numberWord(-1) != "" || numberWord(10000) != "" {
		t.Error("out of range numbers got words")
	}
}

func TestTicketBarcode(t *testing.T) {
	got := ticketBarcode(1, 42, "a3f9c2d1-0000-4000-8000-000000000000")
	if got != "GL010042A3F9" {
		t.Errorf("barcode = %q", got)
	}
}
