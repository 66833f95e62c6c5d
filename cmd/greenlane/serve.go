package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/greenlane-pos/greenlane/fixtures"
	"github.com/greenlane-pos/greenlane/lane"
	"github.com/greenlane-pos/greenlane/lanedb"
	"github.com/greenlane-pos/greenlane/protocol"
)

// defaultDB is where serve keeps its lane DB when --db is not given.
const defaultDB = "./greenlane-lane.db"

func runServe(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("serve", "serve [flags]", stderr)
	lc := lane.DefaultConfig()
	cfg, wOpts, sbOpts, catCfg := &lc.Server, &lc.Writer, &lc.Sales, &lc.Catalog
	dbOpts := lanedb.DefaultOptions()
	fs.DurationVar(&lc.SweepEvery, "presell-sweep-every", lc.SweepEvery, "how often abandoned presells are looked for and voided")
	dbPath := fs.String("db", defaultDB, "lane DB file; created with the demo fixture and an admin key if missing")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn or error")
	clock := fs.String("clock", "", "deterministic mode: an RFC 3339 time freezes the lane's clock there (2026-01-01T09:00:00Z); a duration offsets it (-48h)")
	seed := fs.Uint64("seed", 0, "deterministic mode: seed for new sale keys, so the same script gives the same keys (0: random)")
	fs.StringVar(&cfg.Addr, "addr", cfg.Addr, "TCP address to listen on (port 0 picks a free port)")
	fs.Int64Var(&cfg.ReadLimit, "read-limit", cfg.ReadLimit, "largest frame or HTTP body in bytes; a larger frame closes the socket with 1009")
	fs.IntVar(&cfg.SendQueue, "send-queue", cfg.SendQueue, "packets that may wait for one slow client before it is disconnected")
	fs.IntVar(&cfg.SendQueueBytes, "send-queue-bytes", cfg.SendQueueBytes, "bytes that may wait for one slow client before it is disconnected")
	fs.IntVar(&cfg.RequestQueue, "request-queue", cfg.RequestQueue, "requests one socket may have queued or running before it stops reading")
	fs.IntVar(&cfg.PresellWorkers, "presell-workers", cfg.PresellWorkers, "requests one presell socket may run at once (one sale's requests stay in order)")
	fs.DurationVar(&wOpts.MaxWait, "group-commit-wait", wOpts.MaxWait, "how long the DB writer waits to batch concurrent changes into one transaction (0 disables)")
	fs.IntVar(&wOpts.MaxBatch, "group-commit-max", wOpts.MaxBatch, "most changes in one batched transaction")
	fs.DurationVar(&wOpts.YieldEvery, "writer-yield-every", wOpts.YieldEvery, "after this long of back-to-back writes, pause so other programs can write the lane DB (0: never)")
	fs.DurationVar(&wOpts.YieldFor, "writer-yield-for", wOpts.YieldFor, "length of that pause")
	fs.DurationVar(&sbOpts.Lease, "presell-lease", sbOpts.Lease, "how long a counter's claim on a presell lasts without a change or heartbeat")
	fs.DurationVar(&sbOpts.PresellMaxAge, "presell-max-age", sbOpts.PresellMaxAge, "open presells untouched this long are voided by the sweeper")
	fs.IntVar(&sbOpts.MaxSaleLines, "max-sale-lines", sbOpts.MaxSaleLines, "most lines one sale may hold; one more is refused with limit_reached")
	fs.IntVar(&sbOpts.MaxOpenPresells, "max-open-presells", sbOpts.MaxOpenPresells, "most open presells one key may have; one more is refused with limit_reached")
	fs.DurationVar(&cfg.WriteWait, "write-wait", cfg.WriteWait, "limit on one write to a client")
	fs.DurationVar(&cfg.PongWait, "pong-wait", cfg.PongWait, "silence after which a client is taken for dead (pings go out at 9/10 of it)")
	fs.DurationVar(&cfg.HandshakeTimeout, "handshake-timeout", cfg.HandshakeTimeout, "limit on a WebSocket upgrade and on reading an HTTP request's headers")
	fs.DurationVar(&cfg.IdleTimeout, "idle-timeout", cfg.IdleTimeout, "an HTTP-mode connection kept alive but idle this long is closed")
	fs.DurationVar(&cfg.RequestTimeout, "request-timeout", cfg.RequestTimeout, "limit on one request's work")
	fs.DurationVar(&cfg.ShutdownGrace, "shutdown-grace", cfg.ShutdownGrace, "time in-flight requests get to finish on SIGTERM")
	fs.IntVar(&cfg.MaxSockets, "max-sockets", cfg.MaxSockets, "most sockets open at once; more are refused with HTTP 503")
	fs.DurationVar(&cfg.LoginDeadline, "login-deadline", cfg.LoginDeadline, "a socket not logged in this long after it opened is closed with 1008 \"log in first\"")
	fs.IntVar(&cfg.MaxUnauthSockets, "max-unauth-sockets", cfg.MaxUnauthSockets, "most sockets not yet logged in, lane-wide; more are refused with HTTP 503 (keep it below --max-sockets)")
	fs.IntVar(&cfg.MaxUnauthPerAddress, "max-unauth-per-address", cfg.MaxUnauthPerAddress, "most sockets not yet logged in from one address; more are refused with HTTP 429")
	fs.IntVar(&cfg.MaxSocketsPerKey, "max-sockets-per-key", cfg.MaxSocketsPerKey, "most sockets logged in with one API key; a login past it gets limit_reached")
	fs.Float64Var(&cfg.RequestRate, "request-rate", cfg.RequestRate, "requests per second one socket may send on average (more get rate_limited)")
	fs.IntVar(&cfg.RequestBurst, "request-burst", cfg.RequestBurst, "requests one socket may send at once above --request-rate")
	fs.IntVar(&cfg.LoginFailures, "login-failures", cfg.LoginFailures, "failed logins per minute one address may make; past that its failed logins get rate_limited (a correct key always logs in)")
	fs.DurationVar(&cfg.RevokeCheck, "revoke-check", cfg.RevokeCheck, "how often to look for revoked keys and close their sockets")
	fs.Var((*listFlag)(&cfg.AllowedOrigins), "allowed-origins", "browser Origins (scheme://host[:port]) allowed besides the lane's own listen addresses and names, comma-separated; * allows any")
	// The flag's first name, kept so existing scripts and unit files still
	// work; the new name wins when both are given (flag or environment).
	var oldOrigins []string
	fs.Var((*listFlag)(&oldOrigins), "allow-origin", "old name of --allowed-origins")
	fs.IntVar(&catCfg.MaxRows, "max-rows", catCfg.MaxRows, "most rows in one list reply")
	fs.DurationVar(&dbOpts.BusyTimeout, "db-busy-timeout", dbOpts.BusyTimeout, "how long a write waits for another process's lock on the lane DB")
	fs.StringVar(&dbOpts.Synchronous, "db-synchronous", dbOpts.Synchronous, "SQLite synchronous mode: FULL, NORMAL or OFF")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("serve takes no arguments, got %q", fs.Args())
	}
	if len(cfg.AllowedOrigins) == 0 {
		cfg.AllowedOrigins = oldOrigins
	}
	log, err := newLogger(stderr, *logLevel)
	if err != nil {
		return err
	}
	if lc.Now, err = lane.ParseClock(*clock); err != nil {
		return usagef("--clock: %v", err)
	}
	if *seed != 0 {
		lc.Rand = lane.SeededRand(*seed)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	db, err := openOrCreate(ctx, *dbPath, dbOpts, log)
	if err != nil {
		return err
	}
	defer db.Close()

	l, err := lane.New(ctx, db, lc, log)
	if err != nil {
		return err
	}
	defer l.Close() // before db.Close: queued changes are written first
	err = l.Serve(ctx, func(addr net.Addr) {
		log.Info("listening", "addr", addr.String(), "websocket", "ws://"+addr.String()+"/fd1/open_websocket", "db", db.Path)
	})
	if err != nil {
		return err
	}
	log.Info("stopped; lane DB closed cleanly")
	return nil
}

// openOrCreate opens the lane DB. A missing file becomes a demo lane: the
// demo fixture plus an admin key written to <db>.apikey (mode 0600).
func openOrCreate(ctx context.Context, path string, opts lanedb.Options, log *slog.Logger) (*lanedb.DB, error) {
	_, statErr := os.Stat(path)
	fresh := errors.Is(statErr, fs.ErrNotExist)
	db, err := lanedb.Open(ctx, path, opts)
	if err != nil {
		return nil, err
	}
	if !fresh {
		log.Info("lane DB opened", "db", db.Path, "schema", lanedb.SchemaVersion())
		return db, nil
	}
	if err := seedDemo(ctx, db, log); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

func seedDemo(ctx context.Context, db *lanedb.DB, log *slog.Logger) error {
	demo, err := fixtures.Find("demo")
	if err != nil {
		return err
	}
	if err := demo.Load(ctx, db, false); err != nil {
		return fmt.Errorf("load demo fixture: %w", err)
	}
	key, err := db.CreateAPIKey(ctx, "demo-admin", []string{string(protocol.ScopeAdmin)})
	if err != nil {
		return err
	}
	keyFile := db.Path + ".apikey"
	if err := os.WriteFile(keyFile, []byte(key+"\n"), 0o600); err != nil {
		return fmt.Errorf("write admin key file: %w", err)
	}
	if err := os.Chmod(keyFile, 0o600); err != nil { // an existing file keeps its old mode otherwise
		return fmt.Errorf("protect admin key file: %w", err)
	}
	log.Info("created a demo lane DB with the demo fixture", "db", db.Path)
	log.Info("admin API key written (keep it private)", "file", keyFile)
	return nil
}

func newLogger(w io.Writer, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, usagef("--log-level %q: want debug, info, warn or error", level)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l})), nil
}
