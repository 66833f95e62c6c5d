package salesbuilder

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/google/uuid"
)

type pcgReader struct{ r *rand.PCG }

func (p pcgReader) Read(b []byte) (int, error) {
	for i := range b {
		b[i] = byte(p.r.Uint64())
	}
	return len(b), nil
}

func TestIDs(t *testing.T) {
	at := time.Date(2026, 11, 27, 9, 30, 0, 0, time.UTC)
	a, b := newIDs(pcgReader{rand.NewPCG(7, 7)}), newIDs(pcgReader{rand.NewPCG(7, 7)})
	for i := 0; i < 3; i++ {
		pa, _ := a.physkey(at)
		pb, _ := b.physkey(at)
		ra, _ := a.randomKey()
		rb, _ := b.randomKey()
		if pa != pb || ra != rb {
			t.Fatalf("the same seed gave different keys: %s/%s %s/%s", pa, pb, ra, rb)
		}
		u, err := uuid.Parse(pa)
		if err != nil || u.Version() != 7 || u.Variant() != uuid.RFC4122 {
			t.Fatalf("physkey %s is not a UUIDv7: %v", pa, err)
		}
		if sec, nsec := u.Time().UnixTime(); time.Unix(sec, nsec).UnixMilli() != at.UnixMilli() {
			t.Fatalf("physkey %s does not carry its time", pa)
		}
		if r, _ := uuid.Parse(ra); r.Version() != 4 {
			t.Fatalf("random key %s is not a UUIDv4", ra)
		}
	}
	// Without a seed, keys are random and still well formed.
	c := newIDs(nil)
	p1, _ := c.physkey(at)
	p2, _ := c.physkey(at)
	if p1 == p2 {
		t.Fatal("two random physkeys are equal")
	}
}
