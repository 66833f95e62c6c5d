package salesbuilder

import (
	"crypto/rand"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/google/uuid"
)

// ids makes the keys of new sales: physkey, a UUIDv7 (time-ordered, so the
// rows of a lane cluster) and random_key, a UUIDv4. Both draw from one
// source of randomness, which deterministic mode seeds so that the same
// script gives the same keys.
type ids struct {
	mu  sync.Mutex
	src io.Reader
}

func newIDs(src io.Reader) *ids {
	if src == nil {
		src = rand.Reader
	}
	return &ids{src: src}
}

// physkey is a UUIDv7 for the given time.
func (g *ids) physkey(at time.Time) (string, error) {
	var u uuid.UUID
	g.mu.Lock()
	_, err := io.ReadFull(g.src, u[6:])
	g.mu.Unlock()
	if err != nil {
		return "", fmt.Errorf("new physkey: %w", err)
	}
	ms := uint64(at.UnixMilli())
	for i := 5; i >= 0; i-- {
		u[i] = byte(ms)
		ms >>= 8
	}
	u[6] = u[6]&0x0f | 0x70 // version 7
	u[8] = u[8]&0x3f | 0x80 // RFC 4122 variant
	return u.String(), nil
}

// randomKey is a UUIDv4.
func (g *ids) randomKey() (string, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	u, err := uuid.NewRandomFromReader(g.src)
	if err != nil {
		return "", fmt.Errorf("new random key: %w", err)
	}
	return u.String(), nil
}
