package lane

import (
	"bytes"
	"io"
	"testing"
	"time"
)

func TestParseClock(t *testing.T) {
	fixed, err := ParseClock("2026-01-01T09:00:00Z")
	if err != nil || !fixed().Equal(time.Date(2026, 1, 1, 9, 0, 0, 0, time.UTC)) || !fixed().Equal(fixed()) {
		t.Fatalf("fixed clock: %v %v", fixed(), err)
	}
	off, err := ParseClock("-48h")
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(off()); d < 47*time.Hour || d > 49*time.Hour {
		t.Fatalf("offset clock is %v behind", d)
	}
	if real, err := ParseClock(""); err != nil || time.Since(real()) > time.Second {
		t.Fatalf("real clock: %v", err)
	}
	for _, bad := range []string{"tomorrow", "2026-13-01", "12"} {
		if _, err := ParseClock(bad); err == nil {
			t.Errorf("ParseClock(%q) accepted", bad)
		}
	}
}

func TestSeededRand(t *testing.T) {
	a, b, c := make([]byte, 37), make([]byte, 37), make([]byte, 37)
	io.ReadFull(SeededRand(42), a)
	io.ReadFull(SeededRand(42), b)
	io.ReadFull(SeededRand(43), c)
	if !bytes.Equal(a, b) || bytes.Equal(a, c) {
		t.Fatalf("seeded streams: same seed equal %v, other seed different %v", bytes.Equal(a, b), !bytes.Equal(a, c))
	}
}
