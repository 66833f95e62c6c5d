package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/greenlane-pos/greenlane/fixtures"
	lanesrv "github.com/greenlane-pos/greenlane/lane"
	"github.com/greenlane-pos/greenlane/lanedb"
	"github.com/greenlane-pos/greenlane/protocol"
	"github.com/greenlane-pos/greenlane/server"
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

// createPresellKeys makes n presell-scope API keys named prefix-001…, one
// per tablet, as a lane's staff would.
func createPresellKeys(ctx context.Context, db *lanedb.DB, prefix string, n int) ([]string, error) {
	keys := make([]string, n)
	for i := range keys {
		key, err := db.CreateAPIKey(ctx, fmt.Sprintf("%s-%03d", prefix, i+1), []string{string(protocol.ScopePresell)})
		if err != nil {
			return nil, fmt.Errorf("create API key for tablet %d: %w", i+1, err)
		}
		keys[i] = key
	}
	return keys, nil
}

// lane is the lane server running in this process, wired as `greenlane
// serve` wires it (package lane), so that what a bench measures is what a
// lane runs; one bench run can restart it with different writer options.
type lane struct {
	*lanesrv.Lane
	writer *lanedb.Writer
	hub    *server.Hub
	addr   string
	cancel context.CancelFunc // stops the server
	served chan error
}

// laneOptions are what a phase varies.
type laneOptions struct {
	writer         lanedb.WriterOptions
	presellWorkers int           // 0: the server's default
	lease          time.Duration // 0: the default claim lease
	log            *slog.Logger
}

// startLane starts the server on db and returns once it accepts sockets.
func startLane(ctx context.Context, db *lanedb.DB, opts laneOptions) (*lane, error) {
	if opts.log == nil {
		opts.log = slog.New(slog.DiscardHandler)
	}
	cfg := lanesrv.DefaultConfig()
	cfg.Writer = opts.writer
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
		cfg.Server.PresellWorkers = opts.presellWorkers
	}
	if opts.lease > 0 {
		cfg.Sales.Lease = opts.lease
	}
	ln, err := lanesrv.New(ctx, db, cfg, opts.log)
	if err != nil {
		return nil, fmt.Errorf("start the lane: %w", err)
	}
	sctx, cancel := context.WithCancel(ctx)
	l := &lane{Lane: ln, writer: ln.Writer, hub: ln.Hub, cancel: cancel, served: make(chan error, 1)}
	ready := make(chan string, 1)
	go func() {
		l.served <- ln.Serve(sctx, func(a net.Addr) { ready <- a.String() })
	}()
	select {
	case l.addr = <-ready:
		return l, nil
	case err := <-l.served:
		cancel()
		ln.Close()
		return nil, fmt.Errorf("start the lane server: %w", err)
	}
}

// laneURL is the socket of an ordinary FD1 client, a customer display or a
// debugscope (their purpose travels in the login packet).
func (l *lane) laneURL() string {
	return "ws://" + l.addr + "/fd1/open_websocket"
}

// presellURL is the socket a tablet opens.
func (l *lane) presellURL() string {
	return "ws://" + l.addr + "/fd1/open_websocket?purpose=presell"
}

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

// writeFunc runs one mutation in a committed write transaction: through the
// server's group-commit writer, or straight on the DB for the baseline.
type writeFunc func(ctx context.Context, fn lanedb.Mutation) error

// directWrite is a writeFunc with one BEGIN IMMEDIATE … COMMIT per call.
func directWrite(db *lanedb.DB) writeFunc {
	return func(ctx context.Context, fn lanedb.Mutation) error {
		return db.WriteTx(ctx, func(tx *lanedb.Tx) error { return fn(ctx, tx) })
	}
}

// recycleTickets voids every submitted presell, freeing its ticket number.
//
// Why: a lane has 9,999 presell tickets and a ticket stays taken while its
// presell is open. In a shop the counter recalls and completes presells as
// fast as tablets submit them; the bench has no counter, so at 1,000 sales/s
// the tickets would run out after ten seconds and every park after that
// would fail. Voiding stands in for the counter's work at a fraction of its
// cost: one short UPDATE every RecycleEvery, written like any other change.
func recycleTickets(ctx context.Context, write writeFunc) (int64, error) {
	var n int64
	err := write(ctx, func(ctx context.Context, tx *lanedb.Tx) error {
		now := lanedb.FormatDateTime(time.Now().UTC())
		res, err := tx.ExecContext(ctx, `UPDATE sales SET phase = ?, voided_utc = ?, voided_by = 'bench recycler',
			updated_utc = ?, version = version + 1 WHERE phase = ? AND presell = 1`,
			lanedb.PhaseVoid, now, now, lanedb.PhaseParked)
		if err != nil {
			return fmt.Errorf("void submitted presells: %w", err)
		}
		n, err = res.RowsAffected()
		return err
	})
	return n, err
}

// recycleLoop runs recycleTickets every interval until ctx ends, and
// returns how many presells it voided.
func recycleLoop(ctx context.Context, every time.Duration, write writeFunc) (int64, error) {
	t := time.NewTicker(every)
	defer t.Stop()
	var total int64
	for {
		select {
		case <-ctx.Done():
			return total, nil
		case <-t.C:
		}
		n, err := recycleTickets(ctx, write)
		if err != nil {
			if ctx.Err() != nil {
				return total, nil
			}
			return total, err
		}
		total += n
	}
}

// countPresells counts presells that were given a ticket (submitted), open
// or since voided: every park a tablet saw succeed must be among them.
func countPresells(ctx context.Context, db *lanedb.DB) (int64, error) {
	return lanedb.SubmittedPresellCount(ctx, db.Read)
}

// serverLog is the in-process server's logger: its warnings and errors go
// to w (nowhere when w is nil), so they do not drown the report.
func serverLog(w io.Writer) *slog.Logger {
	if w == nil {
		w = io.Discard
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn}))
}
