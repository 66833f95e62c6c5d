package salesbuilder

import "testing"

func TestNumberWordIsOneToOne(t *testing.T) {
	seen := map[string]int64{}
	for n := int64(0); n <= 9999; n++ {
		w := NumberWord(n)
		if prev, dup := seen[w]; dup {
			t.Fatalf("%d and %d both say %q", prev, n, w)
		}
		seen[w] = n
		back, ok := WordNumber(w)
		if !ok || back != n {
			t.Fatalf("WordNumber(%q) = %d, %v; want %d", w, back, ok, n)
		}
	}
	for _, bad := range []string{"", "amber", "amber-", "amber-nope", "x-y", "amber-apple-arrow"} {
		if _, ok := WordNumber(bad); ok {
			t.Errorf("WordNumber(%q) accepted", bad)
		}
	}
	if n, ok := WordNumber(" Amber Apple "); !ok || n != 1 {
		t.Errorf("spoken form: %d %v", n, ok)
	}
	if NumberWord(-1) != "" || NumberWord(10000) != "" {
		t.Error("out of range numbers got words")
	}
}
