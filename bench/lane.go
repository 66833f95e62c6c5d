package bench

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/greenlane-pos/greenlane/fixtures"
	lanesrv "github.com/greenlane-pos/greenlane/lane"
	"github.com/greenlane-pos/greenlane/lanedb"
	"github.com/greenlane-pos/greenlane/protocol"
)

// openDemoDB creates a fresh demo lane DB at path, replacing any earlier
// file of that name (and its WAL), so that every phase starts from the same
// state. It uses lanedb's default options: synchronous FULL.
func openDemoDB(ctx context.Context, path string) (*lanedb.DB, error) {
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("replace bench DB %s: %w", p, err)
		}
	}
	db, err := lanedb.Open(ctx, path, lanedb.DefaultOptions())
	if err != nil {
		return nil, err
	}
	demo, err := fixtures.Find("demo")
	if err == nil {
		err = demo.Load(ctx, db, false)
	}
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("load the demo fixture into %s: %w", path, err)
	}
	return db, nil
}

type benchKey struct {
	key, id string
}

// freshKey creates an API key named name. A reused lane DB still has the
// live key of that name from an earlier run: it is revoked and made anew,
// as staff would replace a device's key.
func freshKey(ctx context.Context, db *lanedb.DB, name string, scope protocol.Scope) (benchKey, error) {
	key, err := db.CreateAPIKey(ctx, name, []string{string(scope)})
	if errors.Is(err, lanedb.ErrKeyNameTaken) {
		if _, err = db.RevokeAPIKey(ctx, name); err == nil {
			key, err = db.CreateAPIKey(ctx, name, []string{string(scope)})
		}
	}
	if err != nil {
		return benchKey{}, fmt.Errorf("API key %s: %w", name, err)
	}
	k, err := db.Authenticate(ctx, key)
	if err != nil {
		return benchKey{}, fmt.Errorf("API key %s: %w", name, err)
	}
	return benchKey{key: key, id: k.KeyID}, nil
}

// createKeys makes n keys of scope named prefix-001… in a fresh DB, one
// per device, as a lane's staff would.
func createKeys(ctx context.Context, db *lanedb.DB, prefix string, n int, scope protocol.Scope) ([]string, error) {
	keys := make([]string, n)
	for i := range keys {
		var err error
		if keys[i], err = db.CreateAPIKey(ctx, fmt.Sprintf("%s-%03d", prefix, i+1), []string{string(scope)}); err != nil {
			return nil, fmt.Errorf("create API key for device %d: %w", i+1, err)
		}
	}
	return keys, nil
}

// lane is the lane server running in this process, wired as `greenlane
// serve` wires it (package lane), so that what a bench measures is what a
// lane runs.
type lane struct {
	*lanesrv.Lane
	addr   string
	cancel context.CancelFunc // stops the server
	served chan error
}

// defaultWait is the writer's batching wait as the lane runs.
var defaultWait = lanedb.DefaultWriterOptions().MaxWait

// laneOptions are what a phase varies.
type laneOptions struct {
	groupWait      time.Duration // the writer's batching wait; 0: group commit off
	presellWorkers int           // 0: the server's default
	lease          time.Duration // 0: the default claim lease
	log            *slog.Logger
}

// startLane starts the server on db and returns once it accepts sockets.
func startLane(ctx context.Context, db *lanedb.DB, opts laneOptions) (*lane, error) {
	if opts.log == nil {
		opts.log = serverLog(nil)
	}
	cfg := lanesrv.DefaultConfig()
	cfg.Writer.MaxWait = opts.groupWait
	cfg.Server.Addr = "127.0.0.1:0"
	// A bench tablet asks as fast as the lane answers, far above what the
	// per-socket limit allows a misbehaving client; the limit is not what
	// is measured here.
	cfg.Server.RequestRate, cfg.Server.RequestBurst = 1e6, 1e6
	// Likewise a bench tablet may hold many open presells (the recall
	// benchmark's setup makes thousands on four keys): no per-key cap.
	cfg.Sales.MaxOpenPresells = lanedb.MaxTicket
	// Bench clients are thousands of sockets from one address on one key,
	// all dialled at once: the flood caps would refuse most of them.
	cfg.Server.MaxUnauthSockets = cfg.Server.MaxSockets
	cfg.Server.MaxUnauthPerAddress = cfg.Server.MaxSockets
	cfg.Server.MaxSocketsPerKey = cfg.Server.MaxSockets
	if opts.presellWorkers > 0 {
		cfg.Presell.Workers = opts.presellWorkers
	}
	if opts.lease > 0 {
		cfg.Sales.Lease = opts.lease
	}
	ln, err := lanesrv.New(ctx, db, cfg, opts.log)
	if err != nil {
		return nil, fmt.Errorf("start the lane: %w", err)
	}
	sctx, cancel := context.WithCancel(ctx)
	l := &lane{Lane: ln, cancel: cancel, served: make(chan error, 1)}
	ready := make(chan string, 1)
	go func() { l.served <- ln.Serve(sctx, func(a net.Addr) { ready <- a.String() }) }()
	select {
	case l.addr = <-ready:
		return l, nil
	case err := <-l.served:
		cancel()
		ln.Close()
		return nil, fmt.Errorf("start the lane server: %w", err)
	}
}

// laneURL is the socket of an ordinary FD1 client (a counter, a customer
// display, a debugscope: their purpose travels in the login packet).
func (l *lane) laneURL() string { return "ws://" + l.addr + "/fd1/open_websocket" }

func (l *lane) presellURL() string { return l.laneURL() + "?purpose=presell" }

// stop shuts the server down gracefully, then the lane's background work
// and its writer (which finishes what is queued). The DB stays open for the
// caller to check and close.
func (l *lane) stop() error {
	l.cancel()
	err := <-l.served
	l.Lane.Close()
	if err != nil {
		return fmt.Errorf("stop the lane server: %w", err)
	}
	return nil
}

func (l *lane) write(ctx context.Context, fn lanedb.Mutation) error { return l.Writer.Do(ctx, fn) }

// withLane runs fn against a lane server on a fresh demo DB at path with
// keys for n devices of scope, then stops the server and checks that every
// park a tablet saw succeed is in the DB (stats nil: nothing to check).
func withLane(ctx context.Context, path string, opts laneOptions, n int, scope protocol.Scope, stats *loadStats,
	fn func(l *lane, keys []string) error) error {
	db, err := openDemoDB(ctx, path)
	if err != nil {
		return err
	}
	defer db.Close()
	keys, err := createKeys(ctx, db, "bench-"+string(scope), n, scope)
	if err != nil {
		return err
	}
	l, err := startLane(ctx, db, opts)
	if err != nil {
		return err
	}
	runErr := fn(l, keys)
	if err := l.stop(); err != nil && runErr == nil {
		runErr = err
	}
	if runErr != nil || stats == nil {
		return runErr
	}
	// A reply promises a commit: a difference is a lost or an
	// unacknowledged sale.
	inDB, err := lanedb.SubmittedPresellCount(ctx, db.Read)
	if err != nil {
		return err
	}
	if acked := stats.parked.Load(); inDB != acked {
		stats.errs.add("verify", 1, fmt.Sprintf("verify: tablets saw %d parks succeed, the DB holds %d submitted presells", acked, inDB))
	}
	return nil
}

// writeFunc runs one mutation in a committed write transaction: through the
// server's group-commit writer, or straight on the DB for the baseline.
type writeFunc func(ctx context.Context, fn lanedb.Mutation) error

// directWrite runs a mutation in a transaction of its own (one BEGIN
// IMMEDIATE … COMMIT), beside no lane.
func directWrite(db *lanedb.DB) writeFunc {
	return func(ctx context.Context, fn lanedb.Mutation) error {
		return db.WriteTx(ctx, func(tx *lanedb.Tx) error { return fn(ctx, tx) })
	}
}

// voidPresells voids the presells in phases (a SQL list), open claims and
// all, and returns how many.
//
// Why the benches do: a lane has 9,999 presell tickets and a ticket stays
// taken while its presell is open. In a shop the counter recalls and
// completes presells as fast as tablets submit them; a bench has no
// counter, so at 1,000 sales/s the tickets would run out after ten seconds.
// Voiding stands in for the counter's work at a fraction of its cost: one
// short UPDATE every RecycleEvery, written like any other change. Bench
// recall voids an earlier run's presells the same way.
func voidPresells(ctx context.Context, write writeFunc, by, phases string) (int64, error) {
	var n int64
	err := write(ctx, func(ctx context.Context, tx *lanedb.Tx) error {
		now := lanedb.FormatDateTime(time.Now().UTC())
		res, err := tx.ExecContext(ctx, `UPDATE sales SET phase = ?, voided_utc = ?, voided_by = ?,
			claim_session = NULL, claim_key = NULL, claim_name = NULL, claim_expires_ms = NULL,
			updated_utc = ?, version = version + 1 WHERE presell = 1 AND phase IN `+phases,
			lanedb.PhaseVoid, now, by, now)
		if err != nil {
			return fmt.Errorf("void presells: %w", err)
		}
		n, err = res.RowsAffected()
		return err
	})
	return n, err
}

// recycler voids submitted presells every interval beside a load.
type recycler struct {
	n   atomic.Int64
	err error // why it stopped early; read once wg is done
}

// recycle starts a recycler (none when every ≤ 0) that runs until ctx
// ends, on wg.
func recycle(ctx context.Context, wg *sync.WaitGroup, every time.Duration, write writeFunc) *recycler {
	r := &recycler{}
	if every <= 0 {
		return r
	}
	wg.Go(func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			n, err := voidPresells(ctx, write, "bench recycler", "(5)")
			if err != nil {
				if ctx.Err() == nil {
					r.err = fmt.Errorf("ticket recycler: %w", err)
				}
				return
			}
			r.n.Add(n)
		}
	})
	return r
}

// synchronous is the writer connection's PRAGMA synchronous, by name: a
// figure is only worth comparing at FULL.
func (l *lane) synchronous(ctx context.Context) (string, error) {
	var n int
	err := l.Writer.Do(ctx, func(ctx context.Context, tx *lanedb.Tx) error {
		return tx.GetContext(ctx, &n, "PRAGMA synchronous")
	})
	if err != nil {
		return "", fmt.Errorf("read PRAGMA synchronous: %w", err)
	}
	if names := []string{"OFF", "NORMAL", "FULL", "EXTRA"}; n >= 0 && n < len(names) {
		return names[n], nil
	}
	return fmt.Sprint(n), nil
}

// dialParallel bounds the sockets opened at once: a burst of a thousand
// handshakes is no part of what is measured.
const dialParallel = 32

// parallel runs fn(0…n-1), dialParallel at a time.
func parallel(n int, fn func(i int)) {
	sem := make(chan struct{}, dialParallel)
	var wg sync.WaitGroup
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			fn(i)
		})
	}
	wg.Wait()
}
