package lane

import (
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"time"
)

// Deterministic mode: QA runs the same script against the same fixture
// twice and diffs the replies byte for byte. Everything a reply shows that
// would otherwise differ comes from the clock (dates, UUIDv7 times, lease
// expiries) or from randomness (the rest of the keys); both are fixed here.

// ParseClock reads serve's --clock: an RFC 3339 time ("2026-01-01T09:00:00Z")
// freezes the lane's clock there; a duration ("-48h", "3h30m") runs it that
// far from the real time. "" is the real clock.
func ParseClock(s string) (func() time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Now, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return func() time.Time { return t }, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		return func() time.Time { return time.Now().Add(d) }, nil
	}
	return nil, fmt.Errorf("clock %q: want an RFC 3339 time (2026-01-01T09:00:00Z) to freeze the clock, or a duration (-48h) to offset it", s)
}

// SeededRand is a reproducible stream of random bytes for seed (not for
// secrets: API keys never use it).
func SeededRand(seed uint64) io.Reader {
	return &seeded{r: rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)}
}

type seeded struct{ r *rand.PCG }

func (s *seeded) Read(b []byte) (int, error) {
	for i := 0; i < len(b); i += 8 {
		v := s.r.Uint64()
		for j := i; j < len(b) && j < i+8; j++ {
			b[j] = byte(v)
			v >>= 8
		}
	}
	return len(b), nil
}
