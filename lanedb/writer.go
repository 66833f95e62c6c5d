package lanedb

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/bits"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"modernc.org/sqlite"

	"github.com/greenlane-pos/greenlane/internal/faultlog"
	"github.com/greenlane-pos/greenlane/internal/setting"
)

// WriterOptions tune group commit.
type WriterOptions struct {
	// MaxWait is the longest the writer waits for more requests to join a
	// batch. It waits only while requests arrive faster than one per
	// MaxWait/8, and stops sooner when they stop coming (see collect); a
	// batch always takes every request already queued. 0 disables group
	// commit: one transaction per request. 0 to 1s. Default 2ms.
	MaxWait time.Duration
	// MaxBatch caps the requests in one transaction, keeping every write
	// transaction short for the counter process that shares the file.
	// 1 to 10000. Default 64.
	MaxBatch int
	// YieldEvery: while another process writes the lane DB, after this long
	// of back-to-back transactions the writer pauses for YieldFor so that the
	// other process can get in (see yieldPolicy). 0 never pauses; else up
	// to 1h. Default 250ms.
	YieldEvery time.Duration
	// YieldFor is that pause: 0 to 10s. Default 25ms.
	YieldFor time.Duration
}

// DefaultWriterOptions returns the defaults.
func DefaultWriterOptions() WriterOptions {
	return WriterOptions{MaxWait: 2 * time.Millisecond, MaxBatch: 64, YieldEvery: 250 * time.Millisecond, YieldFor: 25 * time.Millisecond}
}

// Validate reports every field out of its range, each as a *setting.Error
// naming the field. (NewWriter still takes a zero MaxBatch as the default,
// for one-off tools that pass WriterOptions{}.)
func (o WriterOptions) Validate() error {
	return errors.Join(
		setting.Range("MaxWait", o.MaxWait, 0, time.Second),
		setting.Range("MaxBatch", o.MaxBatch, 1, 10000),
		setting.Range("YieldEvery", o.YieldEvery, 0, time.Hour),
		setting.Range("YieldFor", o.YieldFor, 0, 10*time.Second),
	)
}

// Writer applies mutations through the single writer connection, several
// at a time in one transaction (group commit): a mutation that fails
// leaves none of its writes (on SQLite the batch starts over with a
// SAVEPOINT around each when one failed after writing; see runBare), and
// nobody hears of success before the batch's COMMIT. One fsync then
// serves the whole batch.
type Writer struct {
	db    *DB
	opts  WriterOptions
	jobs  chan *job
	stop  chan struct{}
	done  chan struct{}
	stats WriterStats

	// Seen only by the loop goroutine: another process's last commit, and
	// when the last batch was collected.
	lastDataVersion int64
	othersAt        time.Time
	collectedAt     time.Time
	faultLog        faultlog.Log // what has been told of a fault refusing changes (noteWrites)
	faultOver       string       // what to say when it is over
	walLog          faultlog.Log // … of a WAL that a read keeps from starting over (noteWAL)
	walMost         int64        // the WAL's largest size while walLog is on
	// suspects holds when each tag's mutation last failed after writing
	// (see guarded).
	suspects map[string]time.Time

	// lockMu guards what has been told of another program's write lock
	// (lockHeld): the writer goroutine tells a wait that ended, the
	// watcher (watchLock) one still going on.
	lockMu sync.Mutex
	// lockLog counts the BEGINs that waited past lockWaitTold.
	lockLog faultlog.Log
	// lockRefused and lockRefusedAll count the changes refused since the
	// last line and since the fault began; refusalTold: its first refusal
	// was told in full.
	lockRefused, lockRefusedAll int64
	refusalTold                 bool
	lockSince                   time.Time // when the first BEGIN told of began to wait
	// lockLast is when a BEGIN told of last stopped waiting or was last
	// seen waiting; lockGot: that BEGIN got the lock (the holder let go).
	lockLast  time.Time
	lockGot   bool
	lockOn    atomic.Bool   // lockLog is on: a BEGIN that got the lock at once may end it (lockFree)
	watchDone chan struct{} // closed once watchLock has returned (at once on PostgreSQL)

	log atomic.Pointer[slog.Logger] // where storage faults are told (LogTo)

	// mu makes Close wait for submissions in progress, so that no job is
	// queued after the loop has drained and stopped.
	mu     sync.RWMutex
	closed bool
}

// WriterStats are counters for diagnostics and benchmarks. Each is
// updated once per batch, so reading them costs the writer nothing; read
// them with Snapshot to compare two moments.
type WriterStats struct {
	Batches   atomic.Int64 // transactions that reached COMMIT (committed or not)
	Mutations atomic.Int64 // mutations run in them, failed ones included
	CommitNS  atomic.Int64 // total time spent in COMMIT
	Yields    atomic.Int64 // pauses left for other processes
	// BusyWaits counts batches whose BEGIN or COMMIT gave up on another
	// process's lock after the busy timeout: the lane DB is contended.
	BusyWaits atomic.Int64
	// LockWaitNS is the time batches spent in BEGIN waiting for another
	// process's write lock (waits shorter than lockWaitNoted are not
	// counted: taking a free lock takes microseconds). Waits that ended in
	// BusyWaits are in it too. A wait is added when it ends: LockWaiting
	// is the one going on.
	LockWaitNS atomic.Int64
	// beginAt is when the BEGIN under way started (Unix ns), 0 when none
	// is: LockWaiting reads it.
	beginAt atomic.Int64
	// refused counts the changes refused for what was no fault of their
	// own, by cause (refusedCauses' order): Refused reads them.
	refused [3]atomic.Int64
	// Statements counts the statements run through the writer's Tx:
	// every Exec, Query, Get and Select of the mutations, and the
	// SAVEPOINT, ROLLBACK TO and RELEASE around each when a batch runs
	// with savepoints (see runBare). BEGIN, COMMIT and
	// the write cache's check of data_version are not counted (one each
	// per batch).
	Statements atomic.Int64
	// SavepointStatements is the part of Statements that is savepoint
	// bookkeeping (two per mutation, three for one that fails), in
	// batches started over with savepoints (Reruns).
	SavepointStatements atomic.Int64
	// Reruns counts SQLite batches started over with a savepoint around
	// each job because a job that failed may have written (runBare). The
	// first try's statements and time are in Statements and BusyNS.
	Reruns atomic.Int64
	// BusyNS is the writer goroutine's working time: from BEGIN's return
	// through the mutations, COMMIT and the after-commit callbacks. Time
	// spent waiting (for jobs, for a batch to fill, yielding, or for
	// another process's lock in BEGIN) is not in it.
	BusyNS atomic.Int64
	// BatchSizes counts batches by the jobs collected into them: bucket i
	// holds sizes 2^i to 2^(i+1)-1 (1, 2–3, 4–7 …), the last one all
	// larger sizes too.
	BatchSizes [BatchBuckets]atomic.Int64
	// FullBatches counts batches that reached MaxBatch: the cap, not the
	// wait, ended them.
	FullBatches atomic.Int64
	// CommitTimes counts COMMITs by how long they took: bucket i holds
	// those that took at most CommitBound(i) (and more than the bucket
	// before's bound). COMMIT is mostly the fsync, so its tail is the
	// disk's: a request that waits behind a slow one waits that long.
	CommitTimes [CommitBuckets]atomic.Int64
	// Pages counts the pages the writer's transactions wrote to the WAL
	// (SQLite's DBSTATUS_CACHE_WRITE on its connection): what a COMMIT
	// costs grows with them. SQLite only; 0 on PostgreSQL.
	Pages atomic.Int64
}

// LockWaiting is how long the writer's BEGIN under way has waited for the
// write lock at now: 0 when none is waiting, or has waited less than
// lockWaitNoted. A program holding the lock for long shows here as it
// goes, where LockWaitNS grows only when the wait ends.
func (s *WriterStats) LockWaiting(now time.Time) time.Duration {
	at := s.beginAt.Load()
	if at == 0 {
		return 0
	}
	if d := now.Sub(time.Unix(0, at)); d >= lockWaitNoted {
		return d
	}
	return 0
}

// Why the writer refused a change that was no fault of the change's own
// (WriterStats.Refused): the same words as the FD1 error's cause.
const (
	RefusedStorage     = "storage"        // the lane DB's disk (StorageFault)
	RefusedUnreachable = "db_unreachable" // the store database cannot be reached
	RefusedLocked      = "db_locked"      // another program's or lane's write lock, past the busy timeout
)

// refusedCauses are the causes in WriterStats.refused's order.
var refusedCauses = [...]string{RefusedStorage, RefusedUnreachable, RefusedLocked}

// Refused is the changes refused so far by cause, every cause present.
func (s *WriterStats) Refused() map[string]int64 {
	out := make(map[string]int64, len(refusedCauses))
	for i, cause := range refusedCauses {
		out[cause] = s.refused[i].Load()
	}
	return out
}

// refusedFor is why err refused a change, one of refusedCauses, or ""
// when err is the change's own (or nil). A COMMIT whose outcome is
// unknown is no refusal: the change may have been made.
func (w *Writer) refusedFor(err error) string {
	if err == nil || errors.Is(err, ErrOutcomeUnknown) {
		return ""
	}
	if _, ok := StorageFault(err); ok {
		return RefusedStorage
	}
	switch {
	case IsBusy(err):
		return RefusedLocked
	case w.db.unreachable(err):
		return RefusedUnreachable
	}
	return ""
}

// BatchBuckets is how many batch-size buckets WriterStats keeps.
const BatchBuckets = 8

// batchBucket is the bucket of a batch of n jobs (n ≥ 1).
func batchBucket(n int) int { return min(bits.Len(uint(n))-1, BatchBuckets-1) }

// CommitBuckets is how many COMMIT-duration buckets WriterStats keeps.
const CommitBuckets = 14

// CommitBound is the upper bound of COMMIT-duration bucket i: 125µs,
// doubling up to 512ms; the last bucket has none (the largest Duration).
func CommitBound(i int) time.Duration {
	if i >= CommitBuckets-1 {
		return math.MaxInt64
	}
	return 125 * time.Microsecond << i
}

// commitBucket is the bucket of a COMMIT that took d.
func commitBucket(d time.Duration) int {
	i := 0
	for i < CommitBuckets-1 && d > CommitBound(i) {
		i++
	}
	return i
}

// WriterSnapshot is WriterStats read at one moment. The difference of two
// (Sub) is what the writer did between them.
type WriterSnapshot struct {
	Batches, Mutations, Statements, SavepointStatements int64
	Yields, BusyWaits, FullBatches, Pages, Reruns       int64
	Busy, Commit                                        time.Duration
	BatchSizes                                          [BatchBuckets]int64
	CommitTimes                                         [CommitBuckets]int64
}

// Snapshot reads the counters. They are read one by one while the writer
// may be running, so a snapshot can straddle a batch: compare snapshots
// over many batches.
func (s *WriterStats) Snapshot() WriterSnapshot {
	out := WriterSnapshot{
		Batches: s.Batches.Load(), Mutations: s.Mutations.Load(),
		Statements: s.Statements.Load(), SavepointStatements: s.SavepointStatements.Load(),
		Yields: s.Yields.Load(), BusyWaits: s.BusyWaits.Load(), FullBatches: s.FullBatches.Load(), Pages: s.Pages.Load(),
		Reruns: s.Reruns.Load(), Busy: time.Duration(s.BusyNS.Load()), Commit: time.Duration(s.CommitNS.Load()),
	}
	for i := range s.BatchSizes {
		out.BatchSizes[i] = s.BatchSizes[i].Load()
	}
	for i := range s.CommitTimes {
		out.CommitTimes[i] = s.CommitTimes[i].Load()
	}
	return out
}

// Sub is what happened from earlier to s.
func (s WriterSnapshot) Sub(earlier WriterSnapshot) WriterSnapshot { return s.plus(earlier, -1) }

// Add is s and other together: two writers' counters as one.
func (s WriterSnapshot) Add(other WriterSnapshot) WriterSnapshot { return s.plus(other, 1) }

// plus is s + sign × o, field by field.
func (s WriterSnapshot) plus(o WriterSnapshot, sign int64) WriterSnapshot {
	out := WriterSnapshot{
		Batches: s.Batches + sign*o.Batches, Mutations: s.Mutations + sign*o.Mutations,
		Statements: s.Statements + sign*o.Statements, SavepointStatements: s.SavepointStatements + sign*o.SavepointStatements,
		Yields: s.Yields + sign*o.Yields, BusyWaits: s.BusyWaits + sign*o.BusyWaits, FullBatches: s.FullBatches + sign*o.FullBatches,
		Pages: s.Pages + sign*o.Pages, Reruns: s.Reruns + sign*o.Reruns, Busy: s.Busy + time.Duration(sign)*o.Busy, Commit: s.Commit + time.Duration(sign)*o.Commit,
	}
	for i := range s.BatchSizes {
		out.BatchSizes[i] = s.BatchSizes[i] + sign*o.BatchSizes[i]
	}
	for i := range s.CommitTimes {
		out.CommitTimes[i] = s.CommitTimes[i] + sign*o.CommitTimes[i]
	}
	return out
}

// CommitQuantile is the bound under which at least the fraction q (0 to
// 1) of the COMMITs fell: the upper bound of the bucket that holds the
// q-quantile. 0 with no COMMITs; the largest Duration when it fell in the
// last bucket.
func (s WriterSnapshot) CommitQuantile(q float64) time.Duration {
	var total int64
	for _, n := range s.CommitTimes {
		total += n
	}
	if total == 0 {
		return 0
	}
	want := int64(math.Ceil(q * float64(total)))
	var seen int64
	for i, n := range s.CommitTimes {
		if seen += n; seen >= want {
			return CommitBound(i)
		}
	}
	return CommitBound(CommitBuckets - 1)
}

// StatementsPerMutation is the statements each mutation cost on average,
// its savepoint's included; 0 with no mutations.
func (s WriterSnapshot) StatementsPerMutation() float64 {
	if s.Mutations == 0 {
		return 0
	}
	return float64(s.Statements) / float64(s.Mutations)
}

// BusyPerMutation is the writer's working time per mutation, its share of
// COMMIT included; 0 with no mutations.
func (s WriterSnapshot) BusyPerMutation() time.Duration {
	if s.Mutations == 0 {
		return 0
	}
	return s.Busy / time.Duration(s.Mutations)
}

// Mutation is one unit of work in a write transaction. Its writes are
// committed only if it returns nil. It may run more than once before its
// answer (the writer starts a batch over when another job in it failed
// after writing, or when it lost a race on PostgreSQL), so it leaves
// nothing behind but its writes and its OnCommit callbacks, and sets what
// it hands its caller rather than adding to it.
type Mutation func(ctx context.Context, tx *Tx) error

type job struct {
	ctx  context.Context
	fn   Mutation
	done chan error
	// tag names who the mutation is for (DoAs): an API key.
	tag string
	// retried: the job already lost one race on PostgreSQL (isConflict)
	// and was run again; a second loss is its answer (ErrRaceLost).
	retried bool
}

// ErrRaceLost is the answer to a mutation that lost a race on PostgreSQL
// twice: a concurrent transaction (most likely another instance's) took the
// same key or row first (a unique violation, a serialization failure or a
// deadlock), and so it did again when the mutation was run once more on
// fresh data. Nothing of the mutation was written.
var ErrRaceLost = errors.New("another instance changed the same data at the same moment")

// ErrWriterClosed is returned for mutations submitted after Close.
var ErrWriterClosed = errors.New("the lane db writer is closed")

// NewWriter starts the writer goroutine.
func (db *DB) NewWriter(opts WriterOptions) *Writer {
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = DefaultWriterOptions().MaxBatch
	}
	if opts.MaxWait < 0 {
		opts.MaxWait = 0
	}
	w := &Writer{db: db, opts: opts, jobs: make(chan *job, 1024), stop: make(chan struct{}), done: make(chan struct{}),
		walLog: faultlog.Log{After: walHeldTold}, lockLog: faultlog.Log{Calm: faultlog.Every}, watchDone: make(chan struct{})}
	go w.loop()
	if db.Postgres() {
		close(w.watchDone) // no other program's lock to wait for (see noteLockWait)
	} else {
		go w.watchLock()
	}
	return w
}

// Stats returns the writer's counters.
func (w *Writer) Stats() *WriterStats { return &w.stats }

// Do runs fn in a write transaction and returns once that transaction has
// committed (nil) or fn's error once its savepoint is rolled back. A
// mutation whose ctx is done before it starts is not run.
func (w *Writer) Do(ctx context.Context, fn Mutation) error {
	return w.DoAs(ctx, "", fn)
}

// DoAs is Do for a mutation made for tag (an API key; "" none): while the
// tag's mutations keep failing after they wrote, each runs inside a
// savepoint of its own (see guarded).
func (w *Writer) DoAs(ctx context.Context, tag string, fn Mutation) error {
	j := &job{ctx: ctx, fn: fn, done: make(chan error, 1), tag: tag}
	w.mu.RLock()
	if w.closed {
		w.mu.RUnlock()
		return ErrWriterClosed
	}
	select {
	case w.jobs <- j:
		w.mu.RUnlock()
	case <-ctx.Done():
		w.mu.RUnlock()
		return ctx.Err()
	}
	// Once queued the job always gets an answer: wait for it even if ctx
	// ends, so a caller never mistakes a committed write for a failed one.
	return <-j.done
}

// Close stops accepting mutations, finishes those queued, and returns.
func (w *Writer) Close() {
	w.mu.Lock()
	if !w.closed {
		w.closed = true
		close(w.stop)
	}
	w.mu.Unlock()
	<-w.done
	<-w.watchDone
}

func (w *Writer) loop() {
	defer close(w.done)
	var busySince time.Time // start of the current run of back-to-back batches
	for {
		var first *job
		select {
		case first = <-w.jobs:
		default:
			busySince = time.Time{} // idle: other processes had their chance
			select {
			case first = <-w.jobs:
			case <-w.stop:
				w.drain()
				return
			}
		}
		if busySince.IsZero() {
			busySince = time.Now()
		} else if every, pause := w.yieldPolicy(); time.Since(busySince) >= every {
			w.stats.Yields.Add(1)
			time.Sleep(pause)
			busySince = time.Now()
		}
		w.runBatch(w.collect(first))
		w.noteWAL(w.db.boundWAL())
	}
}

// yieldPolicy says how often and how long a busy writer leaves the write
// lock free. Under sustained load the writer would otherwise start its next
// transaction microseconds after each commit, and another process (the
// counter) waiting in SQLite's busy handler, which polls every few tens of
// milliseconds, might never get in. While another process has written
// recently the writer yields YieldFor every YieldEvery; otherwise a tenth
// as long, four times as rarely, so a program's first write still gets in.
func (w *Writer) yieldPolicy() (every, pause time.Duration) {
	// PostgreSQL's writers do not take turns at one lock: nobody waits
	// for this one to pause.
	if w.opts.YieldEvery <= 0 || w.db.Postgres() {
		return time.Duration(math.MaxInt64), 0
	}
	if w.othersWriting() {
		return w.opts.YieldEvery, w.opts.YieldFor
	}
	return 4 * w.opts.YieldEvery, w.opts.YieldFor / 10
}

// othersWriting reports whether another connection committed to the lane
// DB in the last ten seconds. PRAGMA data_version changes on this (the
// writer's only) connection exactly when someone else commits.
func (w *Writer) othersWriting() bool {
	var v int64
	if err := w.db.wp.plain[qDataVersion].QueryRowContext(context.Background()).Scan(&v); err != nil {
		return true // cannot tell: be fair
	}
	now := time.Now()
	if w.lastDataVersion != 0 && v != w.lastDataVersion {
		w.othersAt = now
	}
	w.lastDataVersion = v
	return now.Sub(w.othersAt) < 10*time.Second
}

// drain runs what was queued before Close.
func (w *Writer) drain() {
	for {
		select {
		case j := <-w.jobs:
			w.runBatch(w.collect(j))
		default:
			return
		}
	}
}

// collect gathers the jobs already waiting, then, if requests are
// arriving fast enough for it to pay (see lingerPays), lingers for more
// while they keep coming: each new arrival may extend the wait by a short
// gap, and the whole wait never exceeds MaxWait. Under full load the queue
// is full and nobody waits; under a moderate load the batch is what queued
// while the last one ran, with no wait added.
func (w *Writer) collect(first *job) (batch []*job) {
	since := time.Since(w.collectedAt)
	defer func() { w.collectedAt = time.Now() }()
	batch = []*job{first}
	if w.opts.MaxWait == 0 {
		return batch
	}
	for len(batch) < w.opts.MaxBatch {
		select {
		case j := <-w.jobs:
			batch = append(batch, j)
			continue
		default:
		}
		break
	}
	gap := w.opts.MaxWait / 8
	if len(batch) >= w.opts.MaxBatch || !lingerPays(len(batch), since, gap) {
		return batch
	}
	deadline := time.Now().Add(w.opts.MaxWait)
	timer := time.NewTimer(gap)
	defer timer.Stop()
	for len(batch) < w.opts.MaxBatch {
		select {
		case j := <-w.jobs:
			batch = append(batch, j)
			next := min(gap, time.Until(deadline))
			if next <= 0 {
				return batch
			}
			timer.Reset(next)
		case <-timer.C:
			return batch
		}
	}
	return batch
}

// lingerPays says whether waiting a gap for more jobs is worth it, given
// that waiting jobs queued in the time since the last batch was collected
// (the time that batch took to run, plus any idle time). Only when they
// arrive faster than one per gap does a wait gather anyone: slower than
// that, it adds its length to every request in the batch for nothing, and
// the next batch takes whoever queued meanwhile anyway. (Go's timers also
// round short waits up to a millisecond on an idle process.) A lone job
// after an idle spell never waits.
func lingerPays(waiting int, since, gap time.Duration) bool {
	return time.Duration(waiting)*gap >= since
}

// runBatch runs the jobs in one transaction and answers each after COMMIT.
// The counters are updated before anyone is answered: a caller that reads
// them after Do returns sees its own mutation counted.
func (w *Writer) runBatch(batch []*job) {
	w.stats.BatchSizes[batchBucket(len(batch))].Add(1)
	if len(batch) >= w.opts.MaxBatch {
		w.stats.FullBatches.Add(1)
	}
	// On SQLite jobs run bare first (see runBare); PostgreSQL fails the
	// whole transaction at any statement's error, so there every job has
	// its savepoint.
	w.transact(batch, w.db.d != dialectPostgres)
}

// transact runs the jobs in one transaction, each inside its own
// savepoint unless bare.
func (w *Writer) transact(batch []*job, bare bool) {
	results := make([]error, len(batch))
	ctx := context.Background() // one job's cancellation must not abort the others
	// On PostgreSQL the whole batch has a deadline (Options.BusyTimeout):
	// a server that stops answering, or a lock another program never lets
	// go, fails the batch with ErrUnavailable instead of holding the writer.
	// (SQLite's busy timeout does this there; interrupting an SQLite
	// statement would roll back the whole batch anyway.)
	var deadline time.Time
	if w.db.batchTimeout > 0 {
		deadline = time.Now().Add(w.db.batchTimeout)
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, deadline)
		defer cancel()
	}
	began := time.Now()
	w.stats.beginAt.Store(began.UnixNano())
	tx, err := w.db.begin(ctx)
	w.stats.beginAt.Store(0)
	waited := time.Since(began)
	if err != nil && IsBusy(err) {
		// The lock stayed taken for the whole busy timeout. Those queued
		// meanwhile have waited through the same lock: answer them now,
		// or each would wait another whole timeout in the next batch.
		batch = w.takeQueued(batch)
		results = make([]error, len(batch))
		w.stats.BusyWaits.Add(1)
	}
	w.noteLockWait(waited, len(batch), err)
	if err != nil {
		w.answer(batch, results, w.unavailable(err))
		return
	}
	// On PostgreSQL the batch takes the store-wide journal lock first (see
	// lockJournal), not at its first journal insert: nearly every batch
	// journals anyway, and a batch that holds it from BEGIN never waits
	// for it while holding a row lock, so two instances cannot deadlock on
	// it. Batches then run one at a time store-wide, as on SQLite's single
	// writer, and every read-then-write (a ticket, a sale number, an ik)
	// sees the other instances' committed writes.
	if err := tx.lockJournal(ctx); err != nil {
		_ = tx.Rollback()
		if ctx.Err() != nil {
			// The batch's whole deadline went by waiting for the lock: as
			// with SQLite's busy timeout above, those queued meanwhile
			// waited behind the same lock, and are answered now.
			err = fmt.Errorf("%w: %w: %w", ErrUnavailable, ErrStoreLocked, err)
			batch = w.takeQueued(batch)
			results = make([]error, len(batch))
			w.stats.BusyWaits.Add(1)
		}
		w.answer(batch, results, w.unavailable(err))
		return
	}
	// A store rewritten under the lane (DB.GuardGeneration) gets none of
	// the batch: it was queued for the store the lane started on.
	if err := w.db.checkGeneration(ctx, tx); err != nil {
		_ = tx.Rollback()
		w.answer(batch, results, w.unavailable(err))
		return
	}
	// Jobs that lost a race on PostgreSQL run once more, in a batch of
	// their own right after this one: by then the winner has committed
	// (its locks are why this one lost), and they see its writes.
	var again []*job
	defer func() {
		if len(again) > 0 {
			w.runBatch(again)
		}
	}()
	busy := time.Now()
	ran := 0
	for i, j := range batch {
		if err := j.ctx.Err(); err != nil {
			results[i] = err
			continue
		}
		if bare && !w.guarded(j.tag) {
			jobErr, clean := runBare(ctx, tx, j, deadline)
			if !clean {
				// The job may have written before it failed, and only a
				// savepoint could take that back alone: start the batch
				// over with one around every job.
				w.suspect(j.tag)
				_ = tx.Rollback()
				w.account(tx, busy, 0)
				w.stats.Reruns.Add(1)
				w.transact(batch, false)
				return
			}
			results[i] = jobErr
			ran++
			continue
		}
		jobErr, fatal := runSavepoint(ctx, tx, j, deadline)
		if fatal != nil {
			// The transaction itself is in doubt (SQLite may have rolled it
			// back, PostgreSQL's connection may be gone): commit nothing,
			// fail everyone, the jobs set aside for a second run too.
			_ = tx.Rollback()
			w.account(tx, busy, 0) // Mutations counts those of transactions that reached COMMIT
			fatal = w.unavailable(fatal)
			w.answer(batch, make([]error, len(batch)), fatal)
			w.answer(again, make([]error, len(again)), fatal)
			again = nil
			return
		}
		if jobErr != nil && isConflict(jobErr) {
			if !j.retried {
				j.retried = true
				again = append(again, j)
				batch[i] = nil // answered by its second run
				continue
			}
			jobErr = fmt.Errorf("%w: %w", ErrRaceLost, jobErr)
		}
		results[i] = jobErr
		ran++
	}
	if ran == 0 {
		_ = tx.Rollback()
		w.account(tx, busy, 0)
		w.answer(batch, results, nil)
		return
	}
	start := time.Now()
	err = tx.Commit()
	took := time.Since(start)
	w.stats.CommitNS.Add(int64(took))
	w.stats.CommitTimes[commitBucket(took)].Add(1)
	w.stats.Batches.Add(1)
	if err != nil {
		if IsBusy(err) {
			w.stats.BusyWaits.Add(1)
		}
		err = w.commitFailed(err)
	} else {
		tx.runAfterCommit()
	}
	w.countPages()
	w.account(tx, busy, ran)
	w.answer(batch, results, err)
}

// takeQueued appends every job queued now to batch.
func (w *Writer) takeQueued(batch []*job) []*job {
	for {
		select {
		case j := <-w.jobs:
			batch = append(batch, j)
		default:
			return batch
		}
	}
}

// lockWaitNoted is the shortest BEGIN that counts as a wait for another
// process's lock (LockWaitNS), lockWaitTold the shortest that is logged
// once it ends, and lockWaitWarn how long a BEGIN waits before it is
// logged while it still waits: a counter's transaction holds the lock for
// milliseconds; a second means a program is holding it far longer than it
// should, and one left open in sqlite3 held it 12 s with nothing in the
// log until the wait was over.
const (
	lockWaitNoted = 50 * time.Millisecond
	lockWaitTold  = time.Second
	lockWaitWarn  = 2 * time.Second
)

// lockWatchEvery is how often watchLock looks at the BEGIN under way.
const lockWatchEvery = 500 * time.Millisecond

// watchLock tells a BEGIN that has waited lockWaitWarn for another
// program's lock while it still waits, and again every faultlog.Every
// while it goes on: the writer goroutine itself is stuck in it. It runs
// until Close.
func (w *Writer) watchLock() {
	defer close(w.watchDone)
	t := time.NewTicker(lockWatchEvery)
	defer t.Stop()
	for {
		select {
		case <-w.stop:
			return
		case now := <-t.C:
			switch waiting := w.stats.LockWaiting(now); {
			case waiting >= lockWaitWarn:
				w.lockHeld(now, waiting, false, 0)
			case waiting == 0 && w.lockOn.Load():
				// The end is told once the lock has been let go for the
				// Log's Calm, not at some later change that happens to come.
				w.lockFree(now, true)
			}
		}
	}
}

// noteLockWait counts and tells a BEGIN that waited for another process's
// lock: err is BEGIN's own error (nil if it got the lock), n the changes
// that waited (refused, if it gave up). A BEGIN that got the lock at once
// may end the fault (lockFree).
func (w *Writer) noteLockWait(waited time.Duration, n int, err error) {
	if w.db.Postgres() {
		return
	}
	now := time.Now()
	if waited < lockWaitNoted {
		if err == nil && w.lockOn.Load() {
			w.lockFree(now, false)
		}
		return
	}
	w.stats.LockWaitNS.Add(int64(waited))
	refused := 0
	if err != nil && IsBusy(err) {
		refused = n
	}
	if waited >= lockWaitTold || refused > 0 {
		w.lockHeld(now, waited, true, refused)
	}
}

// lockHeld records and tells that another program held the lane DB's
// write lock: a BEGIN that waited (ended: it is over, refusing refused
// changes if it gave up) or is still waiting. The first of a run is told
// in full, and so is its first refusal (changes were lost to it); then
// one line every faultlog.Every counts them while it goes on.
func (w *Writer) lockHeld(now time.Time, waited time.Duration, ended bool, refused int) {
	w.lockMu.Lock()
	defer w.lockMu.Unlock()
	waits := int64(0)
	if ended {
		waits = 1
	}
	line := w.lockLog.Fail(now, "locked", waits)
	if line.Tell == faultlog.First {
		w.lockRefused, w.lockRefusedAll, w.refusalTold = 0, 0, false
		w.lockSince = now.Add(-waited)
	}
	w.lockOn.Store(true)
	w.lockLast, w.lockGot = now, ended && refused == 0
	w.lockRefused += int64(refused)
	w.lockRefusedAll += int64(refused)
	log := w.log.Load()
	if log == nil {
		return
	}
	waitedFor := waited.Round(time.Millisecond)
	switch {
	case refused > 0 && !w.refusalTold:
		w.refusalTold = true
		log.Error("the lane DB stayed locked by another program: changes refused as unavailable (retry); see --db-busy-timeout",
			"waited", waitedFor, "refused", refused)
		w.lockRefused = 0
	case line.Tell == faultlog.First && !ended:
		log.Warn(fmt.Sprintf("the lane DB is locked by another program: a change has waited %s for its write lock and still waits; "+
			"changes are refused once one has waited %s (--db-busy-timeout): end the transaction holding it (in sqlite3, a counter program)",
			waited.Round(time.Second), w.db.busyTimeout), "waiting", waitedFor)
	case line.Tell == faultlog.First:
		log.Warn("the lane DB was locked by another program: changes waited", "waited", waitedFor)
	case line.Tell == faultlog.Count:
		args := []any{"waits", line.N, "refused", w.lockRefused, "since", line.Since.Format(time.TimeOnly)}
		if !ended {
			args = append(args, "waiting", waitedFor)
		}
		log.Warn("another program keeps holding the lane DB's write lock: changes wait for it", args...)
		w.lockRefused = 0
	}
}

// lockFree ends a run of lock waits once none has waited for
// faultlog.Every (the Log's Calm): a program that takes the lock again and
// again is one fault, not one a time. It is seen either by a BEGIN that
// got the lock at once or, with no change coming (idle), by the last
// waiting BEGIN having got it. How long it lasted runs to the last wait
// told, not to whenever the end is noticed.
func (w *Writer) lockFree(now time.Time, idle bool) {
	w.lockMu.Lock()
	defer w.lockMu.Unlock()
	if idle && !w.lockGot {
		return // the last BEGIN gave up: the lock may still be held
	}
	over, ok := w.lockLog.Clear(now)
	if _, on := w.lockLog.On(); on {
		return
	}
	w.lockOn.Store(false)
	if log := w.log.Load(); ok && log != nil {
		log.Info("the lane DB's write lock is free again: changes go through", "waits", over.Total, "refused", w.lockRefusedAll,
			"lasted", w.lockLast.Sub(w.lockSince).Round(time.Millisecond))
	}
}

// walHeldTold is how many RESTART checkpoints in a row a read must block
// before the writer tells it. One is now and then a read of the lane's own
// that ran long (a reader descheduled on a loaded machine); three in a
// row, the WAL past three times its limit (24 MiB), is a read held open,
// and the WAL grows with every change until it ends.
const walHeldTold = 3

// noteWAL tells the log when a read keeps the WAL from starting over
// (boundWAL found it readersStayed), in full once it has blocked
// walHeldTold restarts in a row, then with its size every faultlog.Every
// while it lasts, and when the WAL is back within its limit. The reader is
// most likely another program: the lane's own reads last milliseconds, and
// a read transaction left open in sqlite3 or a counter program grew the
// WAL from 106 to 366 MB in 20 seconds, with nothing in the log.
func (w *Writer) noteWAL(size int64, outcome restartOutcome) {
	log := w.log.Load()
	now := time.Now()
	switch outcome {
	case readersStayed:
		w.walMost = max(w.walMost, size)
		line := w.walLog.Fail(now, "held", 1)
		if log == nil {
			return
		}
		switch line.Tell {
		case faultlog.First:
			log.Warn(fmt.Sprintf("the lane DB's WAL has grown to %s: another program's open read keeps it from starting over, and it grows with every change until that read ends; "+
				"end the transaction left open (in sqlite3, a counter program, a backup) on %s", megabytes(size), w.db.Path),
				"wal_bytes", size, "held", now.Sub(line.Since).Round(time.Millisecond), "restarts_blocked", line.N)
		case faultlog.Count:
			log.Warn(fmt.Sprintf("the lane DB's WAL is %s and still kept from starting over by another program's open read", megabytes(size)),
				"wal_bytes", size, "held", now.Sub(line.Since).Round(time.Millisecond), "restarts_blocked", line.N)
		}
	case restarted, withinLimit:
		most := w.walMost
		w.walMost = 0
		if over, ok := w.walLog.Clear(now); ok && log != nil {
			log.Info("the lane DB's WAL starts over again: the read that kept it has ended", "grew_to_bytes", most, "lasted", over.Lasted.Round(time.Millisecond))
		}
	}
}

// megabytes is n bytes in MB, for a log line's words.
func megabytes(n int64) string { return fmt.Sprintf("%.1f MB", float64(n)/1e6) }

// countPages adds the pages the writer's connection wrote since the last
// count to Pages. It runs after COMMIT, when the connection is back in its
// pool of one: taking it costs a few microseconds a batch. (A rolled-back
// transaction may have spilled pages too; they are counted with the next.)
func (w *Writer) countPages() {
	if w.db.Postgres() {
		return
	}
	conn, err := w.db.w.Conn(context.Background())
	if err != nil {
		return // a diagnostic: the batch's own outcome is what matters
	}
	defer conn.Close()
	_ = conn.Raw(func(dc any) error {
		if st, ok := dc.(sqlite.DBStatus); ok {
			if n, _, err := st.Status(sqlite.DBStatusCacheWrite, true); err == nil {
				w.stats.Pages.Add(int64(n))
			}
		}
		return nil
	})
}

// PagesPerMutation is the WAL pages written per mutation; 0 with no
// mutations (and on PostgreSQL).
func (s WriterSnapshot) PagesPerMutation() float64 {
	if s.Mutations == 0 {
		return 0
	}
	return float64(s.Pages) / float64(s.Mutations)
}

// account adds a transaction's statements, its mutations and the time
// since busy (when BEGIN returned) to the counters.
func (w *Writer) account(tx *Tx, busy time.Time, mutations int) {
	w.stats.Mutations.Add(int64(mutations))
	w.stats.Statements.Add(tx.statements)
	w.stats.SavepointStatements.Add(tx.savepoints)
	w.stats.BusyNS.Add(int64(time.Since(busy)))
}

// runBare runs one job with no savepoint of its own: two statements and
// a copy of every page it changes (SQLite's subjournal) fewer, a fifth of
// what a change costs the writer. That is safe while every job either
// succeeds or fails before writing anything; clean is false when a failed
// job may have written (a statement that may change anything ran) or when
// its error came from the database itself, after which SQLite may have
// rolled back the whole transaction. The caller must then start over with
// savepoints: this transaction holds writes that cannot be taken back
// alone.
func runBare(ctx context.Context, tx *Tx, j *job, deadline time.Time) (jobErr error, clean bool) {
	callbacks, changes := len(tx.afterCommit), tx.changes
	jctx, cancel := jobContext(j, deadline)
	defer cancel()
	jobErr = callMutation(jctx, tx, j.fn)
	if jobErr == nil {
		return nil, true
	}
	tx.afterCommit = tx.afterCommit[:callbacks]
	var se *sqlite.Error
	return jobErr, tx.changes == changes && !errors.As(jobErr, &se) && !errors.Is(jobErr, errPanicked)
}

// suspectFor is how long a tag whose mutation failed after writing has its
// mutations guarded, and suspectsMax how many tags are remembered at most
// (past it, all are forgotten at once).
const (
	suspectFor  = 10 * time.Second
	suspectsMax = 1024
)

// guarded says whether a job of tag runs inside its own savepoint even in
// a batch that runs bare: one of the tag's mutations failed after writing
// within suspectFor. Such a failure starts its whole batch over (every job
// in it runs twice), and a client can cause it at will (a retry whose ik
// is found taken only after its change ran, a line that takes its sale
// over the lane's limit), as often as its key may send: one key would
// halve every tablet's throughput. Guarded, the next such failure undoes
// its own writes alone, for the cost of two statements.
func (w *Writer) guarded(tag string) bool {
	at, ok := w.suspects[tag]
	return ok && time.Since(at) < suspectFor
}

// suspect notes that a job of tag failed after writing.
func (w *Writer) suspect(tag string) {
	if tag == "" {
		return
	}
	if w.suspects == nil || len(w.suspects) >= suspectsMax {
		w.suspects = map[string]time.Time{}
	}
	w.suspects[tag] = time.Now()
}

// jobContext is the context j's mutation runs in: one its caller cannot
// cancel, since interrupting a statement would make SQLite roll back the
// whole batch's transaction; on PostgreSQL it ends at the batch's deadline
// (runBatch; zero: none).
func jobContext(j *job, deadline time.Time) (context.Context, context.CancelFunc) {
	ctx := context.WithoutCancel(j.ctx)
	if deadline.IsZero() {
		return ctx, func() {}
	}
	return context.WithDeadline(ctx, deadline)
}

// errPanicked marks a mutation's panic turned into its error.
var errPanicked = errors.New("mutation panicked")

// runSavepoint runs one job inside SAVEPOINT m; on error only its own
// writes are undone. fatal is set when the savepoint machinery itself failed.
// The job runs in jobContext.
func runSavepoint(ctx context.Context, tx *Tx, j *job, deadline time.Time) (jobErr, fatal error) {
	tx.savepoints++
	if _, err := tx.ExecContext(ctx, qSavepoint); err != nil {
		return nil, fmt.Errorf("savepoint: %w", err)
	}
	callbacks, journalLocked := len(tx.afterCommit), tx.journalLocked
	jctx, cancel := jobContext(j, deadline)
	defer cancel()
	jobErr = callMutation(jctx, tx, j.fn)
	if jobErr != nil {
		tx.afterCommit = tx.afterCommit[:callbacks] // its writes are undone; so are its callbacks
		// A lock taken inside the savepoint is released by ROLLBACK TO: the
		// next journal insert must take it again.
		tx.journalLocked = journalLocked
		tx.savepoints++
		if _, err := tx.ExecContext(ctx, qRollbackTo); err != nil {
			if _, ok := StorageFault(jobErr); ok {
				// SQLite rolled the whole transaction back on a full or
				// failing disk: that is the news, not the lost savepoint.
				return nil, fmt.Errorf("the batch was rolled back: %w", jobErr)
			}
			return nil, fmt.Errorf("rollback to savepoint: %w (after %w)", err, jobErr)
		}
	}
	tx.savepoints++
	if _, err := tx.ExecContext(ctx, qRelease); err != nil {
		return nil, fmt.Errorf("release savepoint: %w", err)
	}
	return jobErr, nil
}

func callMutation(ctx context.Context, tx *Tx, fn Mutation) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%w: %v", errPanicked, p)
		}
	}()
	return fn(ctx, tx)
}

// unavailable marks err, a batch's failure, as ErrUnavailable when it is
// the store database's connection failing (IsUnavailable): the writer
// answers "retry later" rather than an internal error, and database/sql
// opens a new connection for the next batch, so it reconnects by itself.
func (w *Writer) unavailable(err error) error {
	if err == nil || IsBusy(err) || errors.Is(err, ErrUnavailable) || !IsUnavailable(err) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}

// commitFailed is a batch's answer when its COMMIT returned err. On
// PostgreSQL a COMMIT cut off by the connection's loss may have been
// carried out by the server before the connection went: its outcome is
// unknown, and the answer says so (ErrOutcomeUnknown), so that the change is
// retried with its ik rather than made again as new. An SQLite COMMIT
// that fails did not commit.
func (w *Writer) commitFailed(err error) error {
	err = fmt.Errorf("commit: %w", err)
	if w.db.Postgres() && !IsBusy(err) && IsUnavailable(err) {
		return fmt.Errorf("%w: %w: %w", ErrUnavailable, ErrOutcomeUnknown, err)
	}
	return w.unavailable(err)
}

// answer tells each job how it went. A failed COMMIT fails every job that
// had succeeded: none of their writes are in the DB. A nil job was set
// aside for a second run and is answered by that run. The lane DB's write
// health (DB.Ready) is updated first, so that a caller refused for a full
// disk finds /readyz saying so.
func (w *Writer) answer(batch []*job, results []error, commitErr error) {
	var fault error
	var written, refused int
	for i, j := range batch {
		if j == nil {
			continue
		}
		err := results[i]
		if err == nil && commitErr != nil {
			err = commitErr
		}
		results[i] = err
		if err == nil {
			written++
			continue
		}
		cause := w.refusedFor(err)
		if cause == "" {
			continue
		}
		w.stats.refused[slices.Index(refusedCauses[:], cause)].Add(1)
		// SQLite's lock is told as it is waited for (noteLockWait).
		if cause != RefusedLocked || w.db.Postgres() {
			fault = err
			refused++
		}
	}
	w.noteWrites(fault, written, refused)
	for i, j := range batch {
		if j != nil {
			j.done <- results[i]
		}
	}
}

// LogTo makes the writer tell log when changes start and stop being
// refused for a fault of the lane DB's (see noteWrites). Without it they
// go untold (the callers still get the errors).
func (w *Writer) LogTo(log *slog.Logger) { w.log.Store(log) }

// writeFaultWords are what the log says of a fault that refuses every
// change: when it begins (what is wrong; err follows), while it lasts, and
// when changes go through again.
type writeFaultWords struct{ first, still, over string }

// faultWords are the words for the fault that refused a change with err:
// its kind (faultlog's) and what to say.
func (w *Writer) faultWords(err error) (kind string, words writeFaultWords) {
	if reason, ok := StorageFault(err); ok {
		return reason, writeFaultWords{
			first: "the lane DB refuses writes: " + reason + "; every change is refused until then",
			still: "the lane DB still refuses writes: " + reason,
			over:  "the lane DB takes writes again",
		}
	}
	if IsBusy(err) {
		return "store locked", writeFaultWords{
			first: "another lane holds the store database's write lock past --db-busy-timeout: changes are refused as unavailable until it lets go " +
				"(a lane stopped or hung loses it within --db-idle-in-tx-timeout)",
			still: "another lane still holds the store database's write lock",
			over:  "the store database's write lock is free again: changes go through",
		}
	}
	return "unreachable", writeFaultWords{
		first: "the store database cannot be reached: every change is refused as unavailable until it can; the lane reconnects by itself",
		still: "the store database still cannot be reached",
		over:  "the store database is reachable again: changes go through",
	}
}

// noteWrites records a batch's outcome in the DB's write health and the
// log: fault is what refused some of its changes for no fault of their own
// (a storage fault, a store database out of reach or locked; nil if none
// was), written the changes that committed. Under load every request fails
// the same way, and a line each would bury the log: the first failure is
// told in full, then a count every faultlog.Every while it lasts, then the
// recovery (faultLog).
func (w *Writer) noteWrites(fault error, written, refused int) {
	log := w.log.Load()
	fl := &w.faultLog
	now := time.Now()
	switch {
	case fault != nil:
		kind, words := w.faultWords(fault)
		line := fl.Fail(now, kind, int64(refused))
		if line.Tell == faultlog.First {
			w.faultOver = words.over
			if reason, ok := StorageFault(fault); ok {
				w.db.fault.Store(&writeFault{reason: reason, err: fault, since: now})
			}
		}
		if log == nil {
			return
		}
		switch line.Tell {
		case faultlog.First:
			log.Error(words.first, "err", fault)
		case faultlog.Count:
			log.Warn(words.still, "refused", line.N, "since", line.Since.Format(time.TimeOnly))
		}
	case written > 0:
		w.db.fault.Store(nil)
		if over, ok := fl.Clear(now); ok && log != nil {
			log.Info(w.faultOver, "refused", over.Total, "lasted", over.Lasted.Round(time.Millisecond))
		}
	}
}

// The savepoint statements run twice per mutation: prepared once.
var (
	qSavepoint   = follow(stmt(`SAVEPOINT m`))
	qRollbackTo  = follow(stmt(`ROLLBACK TO m`))
	qRelease     = follow(stmt(`RELEASE m`))
	qDataVersion = stmt(`PRAGMA data_version`)
)
