package lanedb

import (
	"cmp"
	"context"
	"slices"
	"sync"

	"github.com/jmoiron/sqlx"
)

// The write cache. Every change reads its sale, the sale's lines and
// payments, and the product and customer it prices with, then writes one
// line and the sale row: reads were half of the writer's statements. Between
// two changes to one sale nothing but the writer's own connection wrote
// those rows, unless another process (the counter program) committed, so
// the writer keeps what it committed and read, and answers those reads from
// memory while two things hold:
//
//   - PRAGMA data_version, read after each BEGIN IMMEDIATE, has not moved
//     since the last transaction (it moves exactly when another connection
//     commits, and nobody else can commit while the writer holds the lock);
//   - the transaction ran no write that the cache does not follow: any
//     statement not marked as followed (followed) turns the cache off for
//     the rest of the transaction and empties it.
//
// Inside a transaction, a sale the transaction already wrote is read from
// the database: its writes are not committed and may yet be rolled back
// with their savepoint. What a change wrote enters the cache through
// OnCommit, so a change that fails (its callbacks are dropped) or a batch
// that does not commit leaves none of it. The read pool never uses it.

// cacheMaxSales bounds the sales kept: far above the sales a lane's devices
// are building at once, and when reached the cache starts over rather than
// tracking recency on the hot path.
const cacheMaxSales = 4096

// cacheMaxCatalog bounds the product and customer lookups kept, the same way.
const cacheMaxCatalog = 8192

type writeCache struct {
	mu      sync.Mutex
	version int64 // PRAGMA data_version when last checked
	checked bool  // version holds a value
	sales   map[string]*cachedSale
	catalog map[lookupKey]any // *SaleProduct or *SaleCustomer, by the query that found it
}

// cachedSale is what the cache knows of one open sale, each part as
// committed. A part not known is read from the database.
type cachedSale struct {
	sale     Sale
	saleOK   bool
	lines    []Line
	linesOK  bool
	payments []Payment
	paysOK   bool
}

// lookupKey names a catalog lookup: its statement and its argument.
type lookupKey struct {
	query string
	arg   any
}

func newWriteCache() *writeCache {
	return &writeCache{sales: map[string]*cachedSale{}, catalog: map[lookupKey]any{}}
}

func (c *writeCache) clearLocked() {
	clear(c.sales)
	clear(c.catalog)
}

// check empties the cache if another connection committed since the last
// check. It runs inside the write transaction, after BEGIN IMMEDIATE: no
// other connection can commit before this transaction ends.
func (c *writeCache) check(ctx context.Context, tx *Tx) error {
	var v int64
	// Not through tx's counted methods: like BEGIN, once per transaction.
	if err := tx.Tx.StmtxContext(ctx, tx.p.plain[qDataVersion]).QueryRowxContext(ctx).Scan(&v); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.checked || v != c.version {
		c.clearLocked()
	}
	c.version, c.checked = v, true
	return nil
}

func (c *writeCache) clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.clearLocked()
}

// entry returns physkey's entry, making it (and making room) if asked.
func (c *writeCache) entryLocked(physkey string, make bool) *cachedSale {
	e := c.sales[physkey]
	if e == nil && make {
		if len(c.sales) >= cacheMaxSales {
			clear(c.sales)
		}
		e = &cachedSale{}
		c.sales[physkey] = e
	}
	return e
}

// followed lists the write statements the cache keeps up with: those whose
// functions tell it what they wrote (sales, sale_lines, payments), and
// those that write no table it keeps (journal, idempotency, counters, the
// savepoints). Filled by follow at package init.
var followed = map[string]bool{}

// follow marks a registered write statement as one the cache keeps up with.
func follow(query string) string {
	followed[query] = true
	return query
}

// caching returns q as a write transaction whose cache may answer, or nil.
func caching(q sqlx.QueryerContext) *Tx {
	t, ok := q.(*Tx)
	if !ok || t.cache == nil || t.uncached {
		return nil
	}
	return t
}

// readable reports whether the cache may answer for physkey in t: t has
// not written that sale.
func (t *Tx) readable(physkey string) bool { return !t.touched[physkey] }

// writes notes a statement run in t: one the cache does not follow turns it
// off for the rest of t and empties it.
func (t *Tx) writes(query string) {
	if t.cache != nil && !t.uncached && !followed[query] {
		t.bypass()
	}
}

// bypass turns the cache off for the rest of t and empties it: t wrote
// something the cache cannot follow. The callbacks t already registered
// see uncached and empty the cache again after commit rather than apply.
func (t *Tx) bypass() {
	if t.cache == nil {
		return
	}
	t.uncached = true
	t.cache.clear()
}

// wrote records that t changed physkey's sale; apply updates its entry
// once t commits (nil forgets the entry). A sale whose claim columns a
// statement changed (forget) is forgotten whatever else t wrote to it: its
// row in memory may no longer be the row in the database.
func (t *Tx) wrote(physkey string, apply func(e *cachedSale)) {
	if t.cache == nil {
		return
	}
	if t.touched == nil {
		t.touched = map[string]bool{}
	}
	t.touched[physkey] = true
	t.OnCommit(func() {
		c := t.cache
		c.mu.Lock()
		defer c.mu.Unlock()
		if t.uncached {
			c.clearLocked()
			return
		}
		if apply == nil || t.forgotten[physkey] {
			delete(c.sales, physkey)
			return
		}
		apply(c.entryLocked(physkey, true))
	})
}

// forget records that t changed physkey's sale in a way the cache does
// not follow (a claim statement): its entry is dropped once t commits.
func (t *Tx) forget(physkey string) {
	if t.cache == nil {
		return
	}
	if t.forgotten == nil {
		t.forgotten = map[string]bool{}
	}
	t.forgotten[physkey] = true
	t.wrote(physkey, nil)
}

// cachedSale answers a sale from the cache.
func (t *Tx) cachedSale(physkey string) (*Sale, bool) {
	if !t.readable(physkey) {
		return nil, false
	}
	c := t.cache
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.sales[physkey]; e != nil && e.saleOK {
		s := e.sale
		return &s, true
	}
	return nil, false
}

// kept says whether the cache keeps a sale in phase: only one being
// worked on. A parked sale's next write is a counter's claim, which the
// cache forgets (forget), or a void; a closed one has none. Keeping them
// would fill the cache with sales nobody changes (on a busy lane, the
// queue of submitted presells), which it would then start over for,
// dropping the sales being built, and hold their memory meanwhile.
func kept(phase int) bool { return phase == PhaseActive }

// fillSale keeps a sale read from the database, while it is kept.
func (t *Tx) fillSale(s *Sale) {
	if !t.readable(s.Physkey) {
		return
	}
	c := t.cache
	c.mu.Lock()
	defer c.mu.Unlock()
	if !kept(s.Phase) {
		delete(c.sales, s.Physkey)
		return
	}
	e := c.entryLocked(s.Physkey, true)
	e.sale, e.saleOK = *s, true
}

// The lines and the payments of a cached sale are each a part, known or
// not; lineRows and paymentRows name them for readPart and keepPart.
func (e *cachedSale) lineRows() (*[]Line, *bool)       { return &e.lines, &e.linesOK }
func (e *cachedSale) paymentRows() (*[]Payment, *bool) { return &e.payments, &e.paysOK }

// readPart answers one part of a sale from the cache.
func readPart[T any](t *Tx, physkey string, part func(*cachedSale) (*[]T, *bool)) ([]T, bool) {
	if !t.readable(physkey) {
		return nil, false
	}
	c := t.cache
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.sales[physkey]; e != nil {
		if rows, known := part(e); *known {
			return cloneRows(*rows), true
		}
	}
	return nil, false
}

// keepPart keeps one part of a sale read from the database, for a sale
// the cache holds (rows alone do not say whether the sale is open).
func keepPart[T any](t *Tx, physkey string, rows []T, part func(*cachedSale) (*[]T, *bool)) {
	if !t.readable(physkey) {
		return
	}
	c := t.cache
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.sales[physkey]; e != nil {
		kept, known := part(e)
		*kept, *known = cloneRows(rows), true
	}
}

// cachedLookup answers a product or customer lookup from the cache. These
// tables change only by statements the cache does not follow, or by
// another process: either empties it.
func (t *Tx) cachedLookup(query string, arg any) (any, bool) {
	c := t.cache
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.catalog[lookupKey{query, arg}]
	return v, ok
}

func (t *Tx) fillLookup(query string, arg, v any) {
	c := t.cache
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.catalog) >= cacheMaxCatalog {
		clear(c.catalog)
	}
	c.catalog[lookupKey{query, arg}] = v
}

// wroteLine records that t inserted or changed line l of its sale.
func (t *Tx) wroteLine(l Line) {
	t.wrote(l.SalePhyskey, func(e *cachedSale) {
		if e.linesOK {
			e.lines = putLine(e.lines, l)
		}
	})
}

// cloneRows copies rows kept in the cache, nil for none, as a read of no
// rows answers.
func cloneRows[T any](rows []T) []T {
	if len(rows) == 0 {
		return nil
	}
	return slices.Clone(rows)
}

// putLine inserts or replaces line l in lines, kept in seqnce order.
func putLine(lines []Line, l Line) []Line {
	i, found := slices.BinarySearchFunc(lines, l.Seqnce, func(a Line, seq int64) int { return cmp.Compare(a.Seqnce, seq) })
	if found {
		lines[i] = l
		return lines
	}
	return slices.Insert(lines, i, l)
}
