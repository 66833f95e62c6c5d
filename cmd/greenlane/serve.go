package main

import (
	"context"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/greenlane-pos/greenlane/fixtures"
	"github.com/greenlane-pos/greenlane/internal/setting"
	"github.com/greenlane-pos/greenlane/lane"
	"github.com/greenlane-pos/greenlane/lanedb"
	"github.com/greenlane-pos/greenlane/lanetls"
	"github.com/greenlane-pos/greenlane/metrics"
	"github.com/greenlane-pos/greenlane/protocol"
	"github.com/greenlane-pos/greenlane/server"
)

// defaultDB is where serve keeps its lane DB when --db is not given.
const defaultDB = "./greenlane-lane.db"

// serveSettings are everything serve's flags set.
type serveSettings struct {
	lane     lane.Config
	db       lanedb.Options
	dbPath   string
	create   bool
	logLevel string
	// logFormat is text or json. Default text.
	logFormat string
	// metricsAddr is where /metrics is served. Default "": on the lane's
	// own listener.
	metricsAddr string
	// metricsToken, when set, is the bearer token /metrics asks for.
	// Default "": none.
	metricsToken string
	clock        string
	seed         uint64
	// oldOrigins is --allow-origin, the first name of --allowed-origins.
	oldOrigins []string
	// useTLS is --tls: the certificate and key next to the DB (tls init).
	useTLS          bool
	tlsCert, tlsKey string
}

// serveFlags declares serve's flags over a settings value holding the
// defaults. Every flag that sets a config field is listed in serveFlagOf.
func serveFlags(stderr io.Writer) (*flag.FlagSet, *serveSettings) {
	fs := newFlags("serve", "serve [flags]", stderr)
	st := &serveSettings{lane: lane.DefaultConfig(), db: lanedb.DefaultOptions()}
	lc := &st.lane
	cfg, wOpts, sbOpts, catCfg, dbOpts := &lc.Server, &lc.Writer, &lc.Sales, &lc.Catalog, &st.db
	fs.DurationVar(&lc.SweepEvery, "presell-sweep-every", lc.SweepEvery, "how often abandoned presells are looked for and voided")
	fs.DurationVar(&lc.MaxClockSkew, "max-clock-skew", lc.MaxClockSkew, "store mode: how far this machine's clock, and the lane's (--clock), may be from the store database's; past it the lane refuses to start, and once running refuses changes and voids nothing")
	fs.StringVar(&st.dbPath, "db", defaultDB, "lane DB file; at the default path a missing DB is created with the demo fixture and an admin key, elsewhere only with --create")
	fs.BoolVar(&st.create, "create", false, "create the lane DB named by --db if it does not exist (demo fixture and a new admin key in <db>.apikey); its folder must exist")
	fs.StringVar(&st.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.StringVar(&st.logFormat, "log-format", "text", "log format: text (key=value lines) or json (one JSON object a line)")
	fs.StringVar(&st.metricsAddr, "metrics-addr", "", "TCP address for GET /metrics (Prometheus); empty serves it on --addr")
	fs.StringVar(&st.metricsToken, "metrics-token", "", "bearer token GET /metrics asks for (Authorization: Bearer TOKEN); empty: none")
	fs.StringVar(&st.clock, "clock", "", "deterministic mode: an RFC 3339 time freezes the lane's clock there (2026-01-01T09:00:00Z); a duration offsets it (-48h)")
	fs.Uint64Var(&st.seed, "seed", 0, "deterministic mode: seed for new sale keys, so the same script gives the same keys (0: random)")
	fs.StringVar(&cfg.Addr, "addr", cfg.Addr, "TCP address to listen on (port 0 picks a free port)")
	fs.Int64Var(&cfg.ReadLimit, "read-limit", cfg.ReadLimit, "largest frame or HTTP body in bytes; a larger frame closes the socket with 1009")
	fs.IntVar(&cfg.SendQueue, "send-queue", cfg.SendQueue, "packets that may wait for one slow client before it is disconnected")
	fs.IntVar(&cfg.SendQueueBytes, "send-queue-bytes", cfg.SendQueueBytes, "bytes that may wait for one slow client before it is disconnected")
	fs.IntVar(&cfg.RequestQueue, "request-queue", cfg.RequestQueue, "requests one socket may have queued or running before it stops reading")
	fs.IntVar(&lc.Presell.Workers, "presell-workers", lc.Presell.Workers, "requests one presell socket may run at once (one sale's requests stay in order)")
	fs.DurationVar(&wOpts.MaxWait, "group-commit-wait", wOpts.MaxWait, "how long the DB writer waits to batch concurrent changes into one transaction (0 disables)")
	fs.IntVar(&wOpts.MaxBatch, "group-commit-max", wOpts.MaxBatch, "most changes in one batched transaction (1: no batching)")
	fs.DurationVar(&wOpts.YieldEvery, "writer-yield-every", wOpts.YieldEvery, "after this long of back-to-back writes, pause so other programs can write the lane DB (0: never)")
	fs.DurationVar(&wOpts.YieldFor, "writer-yield-for", wOpts.YieldFor, "length of that pause (0: none, the same as never)")
	fs.DurationVar(&sbOpts.Lease, "presell-lease", sbOpts.Lease, "how long a counter's claim on a presell lasts without a change or heartbeat")
	fs.DurationVar(&sbOpts.PresellMaxAge, "presell-max-age", sbOpts.PresellMaxAge, "open presells untouched this long are voided by the sweeper (on a SQLite lane, only once the lane has run this long)")
	fs.IntVar(&sbOpts.MaxSaleLines, "max-sale-lines", sbOpts.MaxSaleLines, "most lines one sale may hold; one more is refused with limit_reached")
	fs.IntVar(&sbOpts.MaxOpenPresells, "max-open-presells", sbOpts.MaxOpenPresells, "most open presells one key may have; one more is refused with limit_reached")
	fs.IntVar(&sbOpts.MaxOpenSales, "max-open-sales", sbOpts.MaxOpenSales, "most open ordinary sales (not presells) one key may hold; one more is refused with limit_reached (admin keys are not counted)")
	fs.Var((*moneyFlag)(&sbOpts.MaxCashChange), "max-cash-change", "most change one cash tender may leave, in currency units; a larger tender is refused as a likely keying slip")
	fs.DurationVar(&cfg.WriteWait, "write-wait", cfg.WriteWait, "limit on one write to a client")
	fs.DurationVar(&cfg.PongWait, "pong-wait", cfg.PongWait, "silence after which a client is taken for dead (pings go out at 9/10 of it)")
	fs.DurationVar(&cfg.HandshakeTimeout, "handshake-timeout", cfg.HandshakeTimeout, "limit on a WebSocket upgrade and on reading an HTTP request (headers and body)")
	fs.DurationVar(&cfg.IdleTimeout, "idle-timeout", cfg.IdleTimeout, "an HTTP-mode connection kept alive but idle this long is closed")
	fs.DurationVar(&cfg.RequestTimeout, "request-timeout", cfg.RequestTimeout, "limit on one request's work")
	fs.DurationVar(&cfg.ShutdownGrace, "shutdown-grace", cfg.ShutdownGrace, "time in-flight requests get to finish on SIGTERM")
	fs.IntVar(&cfg.MaxSockets, "max-sockets", cfg.MaxSockets, "most sockets open at once; more are refused with HTTP 503")
	fs.DurationVar(&cfg.LoginDeadline, "login-deadline", cfg.LoginDeadline, "a socket not logged in this long after it opened is closed with 1008 \"log in first\"")
	fs.IntVar(&cfg.MaxUnauthSockets, "max-unauth-sockets", cfg.MaxUnauthSockets, "most sockets not yet logged in, lane-wide; when full, the oldest of the address holding the most is closed (1008 \"log in first\") to let a new one in (keep it below --max-sockets)")
	fs.IntVar(&cfg.MaxUnauthPerAddress, "max-unauth-per-address", cfg.MaxUnauthPerAddress, "most sockets not yet logged in from one address; more are refused with HTTP 429")
	fs.IntVar(&cfg.MaxSocketsPerKey, "max-sockets-per-key", cfg.MaxSocketsPerKey, "most sockets logged in with one API key; a login past it gets limit_reached")
	fs.IntVar(&lc.Hub.MaxPerKey, "max-firehoses-per-key", lc.Hub.MaxPerKey, "most firehoses open with one API key over all its sockets; one more gets limit_reached")
	fs.IntVar(&cfg.MaxConns, "max-conns", cfg.MaxConns, "most TCP connections open at once (sockets and HTTP; never fewer than --max-sockets); one more is closed as it arrives")
	fs.IntVar(&cfg.MaxConnsPerAddress, "max-conns-per-address", cfg.MaxConnsPerAddress, "most TCP connections open at once from one address; one more is closed as it arrives")
	fs.Float64Var(&cfg.RequestRate, "request-rate", cfg.RequestRate, "requests per second one socket may send on average (more get rate_limited)")
	fs.IntVar(&cfg.RequestBurst, "request-burst", cfg.RequestBurst, "requests one socket may send at once above --request-rate")
	fs.Float64Var(&cfg.KeyRequestRate, "key-request-rate", cfg.KeyRequestRate, "requests per second one API key may send on average over all its sockets and HTTP calls (more get rate_limited; admin keys are not limited)")
	fs.IntVar(&cfg.KeyRequestBurst, "key-request-burst", cfg.KeyRequestBurst, "requests one API key may send at once above --key-request-rate")
	fs.IntVar(&cfg.LoginFailures, "login-failures", cfg.LoginFailures, "failed logins per minute one address may make; past that its failed logins get rate_limited (a correct key always logs in)")
	fs.DurationVar(&cfg.RevokeCheck, "revoke-check", cfg.RevokeCheck, "how often to look for revoked keys and close their sockets")
	fs.Var((*listFlag)(&cfg.AllowedOrigins), "allowed-origins", "browser Origins (scheme://host[:port]) allowed besides the lane's own listen addresses and names, comma-separated; * allows any")
	// The flag's first name, kept so existing scripts and unit files still
	// work; the new name wins when both are given (flag or environment).
	fs.Var((*listFlag)(&st.oldOrigins), "allow-origin", "old name of --allowed-origins")
	fs.BoolVar(&st.useTLS, "tls", false, "serve https and wss with the certificate `greenlane tls init` made next to --db")
	fs.StringVar(&st.tlsCert, "tls-cert", "", "serve https and wss with this PEM certificate (chain) file; needs --tls-key")
	fs.StringVar(&st.tlsKey, "tls-key", "", "PEM private key file of --tls-cert")
	fs.StringVar(&cfg.HTTPRedirect, "http-redirect", cfg.HTTPRedirect, "with TLS: also listen for plain http on this address (:3480) and redirect it to https")
	fs.IntVar(&catCfg.MaxRows, "max-rows", catCfg.MaxRows, "most rows in one list reply")
	fs.DurationVar(&dbOpts.BusyTimeout, "db-busy-timeout", dbOpts.BusyTimeout, "how long a write waits for another process's lock on the lane DB")
	fs.DurationVar(&dbOpts.IdleInTxTimeout, "db-idle-in-tx-timeout", dbOpts.IdleInTxTimeout, "store mode: how long a write transaction may idle before PostgreSQL ends its session, letting go of the store's write lock (a stopped or hung lane)")
	fs.StringVar(&dbOpts.Synchronous, "db-synchronous", dbOpts.Synchronous, "SQLite synchronous mode: FULL, NORMAL, OFF or EXTRA")
	return fs, st
}

// serveFlagOf is the flag that sets each validated field: lane.Config's
// fields by their path (lane.Config.Validate's names), the DB options under
// "DB.". A field missing here is reported by its path instead, which
// TestServeFlagValues catches for every flag.
var serveFlagOf = map[string]string{
	"SweepEvery":                 "presell-sweep-every",
	"MaxClockSkew":               "max-clock-skew",
	"Server.Addr":                "addr",
	"Server.ReadLimit":           "read-limit",
	"Server.SendQueue":           "send-queue",
	"Server.SendQueueBytes":      "send-queue-bytes",
	"Server.RequestQueue":        "request-queue",
	"Server.WriteWait":           "write-wait",
	"Server.PongWait":            "pong-wait",
	"Server.HandshakeTimeout":    "handshake-timeout",
	"Server.IdleTimeout":         "idle-timeout",
	"Server.RequestTimeout":      "request-timeout",
	"Server.ShutdownGrace":       "shutdown-grace",
	"Server.MaxSockets":          "max-sockets",
	"Server.LoginDeadline":       "login-deadline",
	"Server.MaxUnauthSockets":    "max-unauth-sockets",
	"Server.MaxUnauthPerAddress": "max-unauth-per-address",
	"Server.MaxSocketsPerKey":    "max-sockets-per-key",
	"Hub.MaxPerKey":              "max-firehoses-per-key",
	"Server.MaxConns":            "max-conns",
	"Server.MaxConnsPerAddress":  "max-conns-per-address",
	"Server.RequestRate":         "request-rate",
	"Server.RequestBurst":        "request-burst",
	"Server.KeyRequestRate":      "key-request-rate",
	"Server.KeyRequestBurst":     "key-request-burst",
	"Server.LoginFailures":       "login-failures",
	"Server.RevokeCheck":         "revoke-check",
	"Server.AllowedOrigins":      "allowed-origins",
	"Server.HTTPRedirect":        "http-redirect",
	"Writer.MaxWait":             "group-commit-wait",
	"Writer.MaxBatch":            "group-commit-max",
	"Writer.YieldEvery":          "writer-yield-every",
	"Writer.YieldFor":            "writer-yield-for",
	"Sales.Lease":                "presell-lease",
	"Sales.PresellMaxAge":        "presell-max-age",
	"Sales.MaxSaleLines":         "max-sale-lines",
	"Sales.MaxOpenPresells":      "max-open-presells",
	"Sales.MaxOpenSales":         "max-open-sales",
	"Sales.MaxCashChange":        "max-cash-change",
	"Presell.Workers":            "presell-workers",
	"Catalog.MaxRows":            "max-rows",
	"DB.BusyTimeout":             "db-busy-timeout",
	"DB.IdleInTxTimeout":         "db-idle-in-tx-timeout",
	"DB.Synchronous":             "db-synchronous",
}

// flagErrors turns validation errors into one usage error, a line per bad
// value, each naming its flag: "--pong-wait: must be at least 1s, got 0s".
func flagErrors(err error) error {
	if err == nil {
		return nil
	}
	var lines []string
	for _, e := range setting.Flatten(err) {
		var se *setting.Error
		if errors.As(e, &se) {
			if f, ok := serveFlagOf[se.Field]; ok {
				lines = append(lines, "--"+f+": "+se.Msg)
				continue
			}
		}
		lines = append(lines, e.Error())
	}
	return usageError{strings.Join(lines, "\n")}
}

func runServe(args []string, stdout, stderr io.Writer) error {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	return serve(context.Background(), args, stderr, nil, sigs)
}

// checkServe checks every serve setting that fs parsed into st and makes
// the lane's config, the logger and what serve keeps of its TLS setup (nil
// without TLS); it opens and creates nothing. serve runs it before it
// starts, and service install before it writes a unit, so that a unit
// serve would refuse is never written. dir is the folder serve will run in
// ("": this one): relative file names are taken from there.
func checkServe(fs *flag.FlagSet, st *serveSettings, dir string, stderr io.Writer) (lane.Config, *slog.Logger, *servedTLS, error) {
	fail := func(err error) (lane.Config, *slog.Logger, *servedTLS, error) { return lane.Config{}, nil, nil, err }
	if fs.NArg() > 0 {
		return fail(usagef("serve takes no arguments, got %q", fs.Args()))
	}
	if dir != "" {
		for _, p := range []*string{&st.dbPath, &st.tlsCert, &st.tlsKey} {
			if *p != "" && !filepath.IsAbs(*p) && !lanedb.IsPostgresURL(*p) {
				*p = filepath.Join(dir, *p)
			}
		}
	}
	if len(st.lane.Server.AllowedOrigins) == 0 {
		// Checked here so that the message names the flag that was given.
		for _, o := range st.oldOrigins {
			if _, err := server.CanonicalOrigin(o); err != nil && o != "*" {
				return fail(usagef("--allow-origin: %v", err))
			}
		}
		st.lane.Server.AllowedOrigins = st.oldOrigins
	}
	log, err := newLogger(stderr, st.logLevel, st.logFormat)
	if err != nil {
		return fail(err)
	}
	if st.metricsAddr != "" {
		if _, _, err := net.SplitHostPort(st.metricsAddr); err != nil {
			return fail(usagef("--metrics-addr %q: want host:port, e.g. 127.0.0.1:9490 (%v)", st.metricsAddr, err))
		}
	}
	lc := st.lane
	if lc.Now, err = lane.ParseClock(st.clock); err != nil {
		return fail(usagef("--clock: %v", err))
	}
	if st.seed != 0 {
		lc.Rand = lane.SeededRand(st.seed)
	}
	warnDeterministic(log, st.clock, st.seed)
	var served *servedTLS
	// The real clock, not --clock: it is the tablets' clocks that judge
	// the certificate.
	if lc.Server.TLS, served, err = serveTLS(st, time.Now(), log); err != nil {
		return fail(err)
	}
	if err := flagErrors(errors.Join(lc.Validate(), setting.Within("DB", st.db.Validate()))); err != nil {
		return fail(err)
	}
	if _, err := checkDBPath(st.dbPath, st.create); err != nil {
		return fail(err)
	}
	return lc, log, served, nil
}

// warnDeterministic says loudly that the lane runs in deterministic mode:
// left in a store's environment (GREENLANE_CLOCK, GREENLANE_SEED) it would
// stamp every sale with one time, or make new sale keys guessable.
func warnDeterministic(log *slog.Logger, clock string, seed uint64) {
	if clock = strings.TrimSpace(clock); clock != "" {
		log.Warn("deterministic mode: the lane's clock is set by --clock, and every sale's times come from it: for tests, never in a store", "clock", clock)
	}
	if seed != 0 {
		log.Warn("deterministic mode: new sale keys come from --seed and repeat from run to run: for tests, never in a store", "seed", seed)
	}
}

// serve is `greenlane serve` until ctx ends or sigs asks it to stop (see
// watchSignals; nil: no signals); ready, if not nil, is called with the
// bound address once the lane listens.
func serve(ctx context.Context, args []string, stderr io.Writer, ready func(net.Addr), sigs <-chan os.Signal) (err error) {
	fs, st := serveFlags(stderr)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	// Every value is checked before anything is opened or created.
	lc, log, served, err := checkServe(fs, st, "", stderr)
	if err != nil {
		return err
	}
	// The addresses are taken before anything is opened or created: a lane
	// refused for one must leave no new DB and admin key behind.
	ln, err := listenAddr("--addr", lc.Server.Addr)
	if err != nil {
		return err
	}
	defer ln.Close() // Serve closes it; this is for the returns before it
	var metricsLn net.Listener
	if st.metricsAddr != "" {
		if metricsLn, err = listenAddr("--metrics-addr", st.metricsAddr); err != nil {
			return err
		}
		defer metricsLn.Close() // the metrics server closes it; this is for the returns before it
	}
	var redirectLn net.Listener
	if lc.Server.TLS != nil && lc.Server.HTTPRedirect != "" {
		if redirectLn, err = listenAddr("--http-redirect", lc.Server.HTTPRedirect); err != nil {
			return err
		}
		defer redirectLn.Close() // the redirect server closes it; this is for the returns before it
	}
	if sigs != nil {
		var cancel context.CancelFunc
		ctx, cancel = context.WithCancel(ctx)
		defer cancel()
		done := make(chan struct{})
		defer close(done)
		go watchSignals(sigs, done, cancel, log, lc.Server.ShutdownGrace, os.Exit)
	}

	// The lock is held until the DB is closed (its release is deferred
	// before db.Close, so it runs after): a restore or fixture command must
	// not replace the file, or rewrite the store database, under a lane
	// that has it open. A DB made here is locked once it exists. A store
	// database's lock is PostgreSQL's, held shared with the store's other
	// lanes (lanedb.LockStoreServing).
	// A store rewritten while the lane had lost its store lock stops the
	// lane (shut down as on SIGTERM), and serve fails with why: a non-zero
	// exit, so that a service manager starts it again on the new store.
	ctx, stopServing := context.WithCancelCause(ctx)
	defer stopServing(nil)
	defer func() {
		if cause := context.Cause(ctx); errors.Is(cause, lanedb.ErrStoreRewritten) {
			err = cause
		}
	}()
	var unlock func()
	var storeGen string // the store's generation when the lane took its lock
	defer func() {
		if unlock != nil {
			unlock()
		}
	}()
	if lanedb.IsPostgresURL(st.dbPath) {
		if unlock, storeGen, err = lanedb.LockStoreServing(ctx, st.dbPath, st.db, log, stopServing); err != nil {
			return err
		}
	} else if unlock, err = lanedb.LockServing(st.dbPath); err != nil {
		return err
	}
	db, err := openLaneDB(ctx, st.dbPath, st.create, st.db, log)
	if err != nil {
		return err
	}
	defer db.Close()
	// Every change checks, in its own transaction, that the store is still
	// the one the lock was taken on: the lock's watch alone notices a
	// rewrite only after changes queued meanwhile were written into it.
	db.GuardGeneration(storeGen, func(err error) {
		log.Error("stopping: " + err.Error())
		stopServing(err)
	})
	if unlock == nil && !lanedb.IsPostgresURL(st.dbPath) {
		if unlock, err = lanedb.LockServing(st.dbPath); err != nil {
			return err
		}
	}

	l, err := lane.New(ctx, db, lc, log)
	if err != nil {
		return err
	}
	defer l.Close() // before db.Close: queued changes are written first
	if redirectLn != nil {
		l.Server.UseRedirectListener(redirectLn)
	}
	m := metrics.New(metrics.Parts{DB: db, Writer: l.Writer, Hub: l.Hub, Server: l.Server, Now: lc.Now, Version: buildVersion()})
	if served != nil {
		m.Registry().MustRegister(certExpiryGauge(served.certs))
		defer served.watchExpiry(log)()
		if served.caFile != "" {
			l.Server.Mount(caHandler(served.caFile), "GET /ca.pem")
		}
	}
	metricsHandler := m.Handler(st.metricsToken, log)
	if st.metricsAddr == "" {
		l.Server.Mount(metricsHandler, "GET /metrics")
	} else {
		defer serveMetrics(metricsLn, metricsHandler, l.Server.Listen, log)()
	}
	ws, web := "ws", "http"
	if lc.Server.TLS != nil {
		ws, web = "wss", "https"
	}
	err = l.ServeOn(ctx, ln, func(addr net.Addr) {
		if lc.Server.TLS != nil {
			// Before the listening line, so that whoever waits for that
			// line has seen this one.
			warnUncovered(log, st, addr)
		}
		// screens: where the person who just started the lane opens the
		// tablet, counter and display pages (its index links them). addr
		// stays the bound address; the URLs are ones this machine can open.
		local := localURLHost(addr)
		log.Info("listening", "addr", addr.String(), "websocket", ws+"://"+local+"/fd1/open_websocket",
			"screens", web+"://"+local+"/", "db", db.Path)
		if lan := lanURLs(addr, ws); len(lan) > 0 {
			// Bound to every interface ([::]): say where devices find it.
			log.Info("devices on the network connect to", "websocket", strings.Join(lan, " "))
		}
		if ready != nil {
			ready(addr)
		}
	})
	if err != nil {
		var opErr *net.OpError
		if errors.As(err, &opErr) && opErr.Op == "listen" {
			return fmt.Errorf("--addr %s: %w", lc.Server.Addr, err)
		}
		return err
	}
	// Closed here, not by the defers, so that what was left is logged
	// before saying the lane stopped (the defers are then no-ops).
	_ = l.Close() // the writer's queued changes are written first
	if err := db.Close(); err != nil {
		log.Warn("stopped; the lane DB did not close cleanly", "err", err)
		return nil
	}
	log.Info("stopped; lane DB closed cleanly")
	return nil
}

// listenAddr listens on addr, given by flag, saying in plain words when
// another program (most likely another lane) holds it.
func listenAddr(flag, addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if errors.Is(err, syscall.EADDRINUSE) {
		return nil, fmt.Errorf("%s %s: the address is in use: another lane may be running there; stop it or choose another %s", flag, addr, flag)
	}
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", flag, addr, err)
	}
	return ln, nil
}

// signalNames are the signals serve handles, by their usual names.
var signalNames = map[os.Signal]string{os.Interrupt: "SIGINT", syscall.SIGTERM: "SIGTERM", syscall.SIGHUP: "SIGHUP"}

// watchSignals turns signals into a stop, saying so: a shutdown can wait
// on a stalled client for up to the grace period, and a silent wait looks
// like a hang. The first SIGINT or SIGTERM stops the lane gracefully; a
// second one exits at once (exit(1)) for whoever cannot wait, without
// closing the lane DB (SQLite's journal keeps it whole: a transaction not
// committed is rolled back at the next open). SIGHUP reloads nothing, and
// says so rather than stopping the lane as Go's default would. It returns
// when done is closed.
func watchSignals(sigs <-chan os.Signal, done <-chan struct{}, stop func(), log *slog.Logger, grace time.Duration, exit func(int)) {
	stopping := false
	for {
		select {
		case <-done:
			return
		case sig := <-sigs:
			name := signalNames[sig]
			if name == "" {
				name = sig.String()
			}
			switch {
			case sig == syscall.SIGHUP:
				log.Info("SIGHUP ignored: the lane reloads nothing (restart it for new settings; a renewed TLS certificate is served without one)")
			case !stopping:
				stopping = true
				log.Info(fmt.Sprintf("stopping: %s; finishing requests (up to %s, --shutdown-grace); send it again to stop at once", name, grace))
				stop()
			default:
				log.Warn(fmt.Sprintf("stopping at once: a second %s; requests still running are cut off", name))
				exit(1)
				return
			}
		}
	}
}

// lanURLs are the socket URLs on this machine's own network addresses
// when addr listens on every interface, else none.
func lanURLs(addr net.Addr, scheme string) []string {
	tcp, ok := addr.(*net.TCPAddr)
	if !ok {
		return nil
	}
	var urls []string
	for _, ip := range lanIPs(addr) {
		urls = append(urls, scheme+"://"+net.JoinHostPort(ip, strconv.Itoa(tcp.Port))+"/fd1/open_websocket")
	}
	return urls
}

// lanIPs are this machine's own IPv4 network addresses when addr listens
// on every interface, else none.
func lanIPs(addr net.Addr) []string {
	tcp, ok := addr.(*net.TCPAddr)
	if !ok || !tcp.IP.IsUnspecified() {
		return nil
	}
	ifaddrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	var ips []string
	for _, a := range ifaddrs {
		ipnet, ok := a.(*net.IPNet)
		if !ok || ipnet.IP.IsLoopback() || ipnet.IP.To4() == nil {
			continue
		}
		ips = append(ips, ipnet.IP.String())
	}
	return ips
}

// localURLHost is addr as a URL host this machine can open: a lane bound
// to every interface (0.0.0.0, [::]) takes connections to 127.0.0.1, but
// no browser opens http://[::]:3490/.
func localURLHost(addr net.Addr) string {
	tcp, ok := addr.(*net.TCPAddr)
	if !ok || !tcp.IP.IsUnspecified() {
		return addr.String()
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(tcp.Port))
}

// advertisedHosts are the hosts the listening lines name for addr: the
// one this machine opens, then the LAN addresses devices use.
func advertisedHosts(addr net.Addr) []string {
	host, _, err := net.SplitHostPort(localURLHost(addr))
	if err != nil {
		return lanIPs(addr)
	}
	return append([]string{host}, lanIPs(addr)...)
}

// uncoveredHosts are the hosts that cert does not name: a browser or a
// client reaching the lane under one of them refuses the certificate.
func uncoveredHosts(cert *x509.Certificate, hosts []string) []string {
	var out []string
	for _, h := range hosts {
		if cert.VerifyHostname(h) != nil {
			out = append(out, h)
		}
	}
	return out
}

// warnUncovered warns, once at start, when the lane advertises an address
// its certificate does not name, saying how to get one that does: tls init
// --names takes exactly the names given, and the lane then prints a URL no
// device can open without a certificate error.
func warnUncovered(log *slog.Logger, st *serveSettings, addr net.Addr) {
	certFile := st.tlsCert
	if st.useTLS {
		certFile = lanetls.FilesFor(st.dbPath).Cert
	}
	cert, err := lanetls.ReadCert(certFile)
	if err != nil {
		return // checked before the lane started; a file changed since is the next handshake's business
	}
	missing := uncoveredHosts(cert, advertisedHosts(addr))
	if len(missing) == 0 {
		return
	}
	names := append(certNames(cert.DNSNames, cert.IPAddresses), missing...)
	fix := "greenlane tls renew --db " + st.dbPath + " --names " + strings.Join(names, ",") + " (same CA: tablets need nothing new)"
	if !st.useTLS {
		fix = "reissue --tls-cert " + st.tlsCert + " where it was issued, for " + strings.Join(names, ",")
	}
	log.Warn("the TLS certificate does not name addresses this lane gives: devices that use them refuse it",
		"not_covered", strings.Join(missing, " "), "cert", certFile, "fix", fix)
}

// openLaneDB opens the lane DB at path, which checkDBPath allows. A missing
// (or 0-byte) file becomes a demo lane: the demo fixture plus an admin key
// written to <db>.apikey, mode 0600.
func openLaneDB(ctx context.Context, path string, create bool, opts lanedb.Options, log *slog.Logger) (*lanedb.DB, error) {
	fresh, err := checkDBPath(path, create)
	if err != nil {
		return nil, err
	}
	if lanedb.IsPostgresURL(path) {
		return openStoreDB(ctx, path, opts, log)
	}
	// Opening waits up to the busy timeout for another program's write
	// lock (a counter program, sqlite3): say so, rather than sit silent.
	slow := time.AfterFunc(openSlowAfter, func() {
		log.Warn("opening the lane DB is taking long: another program may hold its write lock; waiting for it",
			"db", path, "gives_up_after", opts.BusyTimeout)
	})
	db, err := lanedb.Open(ctx, path, opts)
	slow.Stop()
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

// openSlowAfter is how long opening a lane DB may take before serve says
// what it is waiting for: opening takes milliseconds unless it waits.
// (A variable for the test.)
var openSlowAfter = 2 * time.Second

// checkDBPath says whether serve may open the lane DB at path, and whether
// it would make a new one there, without opening anything; dir is the
// folder serve runs in ("": this one). A missing file is made only at the
// default path or with --create: a mistyped --db must not quietly start an
// empty store with a fresh admin key. A 0-byte file counts as missing (a
// `touch`ed name holds no lane), unless a -wal file beside it holds pages
// not yet copied back. A missing folder is always refused.
func checkDBPath(path string, create bool) (fresh bool, err error) {
	if lanedb.IsPostgresURL(path) {
		// A store database is created by its administrator (README, "Store
		// mode"), never seeded with the demo: --create is refused, saying
		// so, rather than ignored.
		if create {
			return false, usagef("--create makes a demo SQLite lane DB file; a PostgreSQL store database is loaded with 'greenlane fixture load NAME --db URL' and given keys with 'greenlane apikey create --db URL'")
		}
		return false, nil
	}
	st, statErr := os.Stat(path)
	switch {
	case statErr == nil && st.IsDir():
		return false, usagef("--db %s is a folder; name the lane DB file (e.g. %s)", path, filepath.Join(path, "greenlane-lane.db"))
	case statErr == nil && (st.Size() > 0 || walHoldsPages(path)):
		return false, nil
	case statErr != nil && !errors.Is(statErr, fs.ErrNotExist):
		return false, usagef("--db %s: %v", path, statErr)
	}
	if err := missingFolder(path); err != nil {
		return false, err
	}
	if !create && !isDefaultDB(path) {
		what := "no lane DB there"
		if statErr == nil {
			what = "the file is empty (0 bytes), not a lane DB"
		}
		return false, usagef("--db %s: %s; add --create to make a new demo lane DB (demo fixture and a new admin key), or check the path", path, what)
	}
	return true, nil
}

// walHoldsPages reports whether the lane DB at path has a non-empty -wal
// file: its pages are the DB even while the main file is still 0 bytes.
func walHoldsPages(path string) bool {
	st, err := os.Stat(path + "-wal")
	return err == nil && st.Size() > 0
}

// openStoreDB opens a PostgreSQL store database, which its administrator
// created (README, "Store mode"); Open migrates it. It is never seeded with
// the demo: several instances share it, and a store is loaded once with
// 'greenlane fixture load', keys made with 'greenlane apikey create'
// (checkDBPath refuses --create).
func openStoreDB(ctx context.Context, url string, opts lanedb.Options, log *slog.Logger) (*lanedb.DB, error) {
	db, err := lanedb.Open(ctx, url, opts)
	if err != nil {
		return nil, err
	}
	log.Info("store DB opened", "db", db.Path, "schema", lanedb.SchemaVersion())
	return db, nil
}

// isDefaultDB reports whether path is the default --db, relative to the
// folder serve runs in: only that path is made when missing. An absolute
// path never is, even to the same file: service install writes the DB's
// absolute path into its unit, so that serve there refuses a lost DB
// instead of making a new demo store with a new admin key.
func isDefaultDB(path string) bool {
	return !filepath.IsAbs(path) && filepath.Clean(path) == filepath.Clean(defaultDB)
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
	// Loud on purpose: a new lane where an existing one was expected is a
	// mistake someone must notice.
	log.Warn("NEW LANE DB CREATED with the demo fixture (a demo café, not your store)", "db", db.Path)
	log.Warn("NEW ADMIN API KEY written (keep it private)", "file", keyFile)
	return nil
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, usagef("--log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: l}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		opts.ReplaceAttr = durationText
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, usagef("--log-format %q: want text or json", format)
}

// durationText writes a duration as the text log does ("542.996µs",
// "12h0m0s"): slog's JSON handler would write its nanoseconds, a number a
// reader has to know the unit of.
func durationText(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		a.Value = slog.StringValue(a.Value.Duration().String())
	}
	return a
}

// serveMetrics serves /metrics alone on ln (bound to --metrics-addr), e.g.
// on an address only the monitoring host reaches. Its connections count
// against the lane's caps (counted), and one that idles, trickles or does
// not read is closed: thousands of kept-alive scrapes otherwise held every
// file descriptor of the process, and the lane's own port stopped
// accepting. stop shuts it down.
func serveMetrics(ln net.Listener, h http.Handler, counted func(net.Listener) net.Listener, log *slog.Logger) (stop func()) {
	ln = counted(ln)
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", h)
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 10 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: 30 * time.Second, MaxHeaderBytes: server.MaxHeaderBytes,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	done := make(chan struct{})
	go func() { defer close(done); _ = hs.Serve(ln) }()
	log.Info("metrics listening", "url", "http://"+ln.Addr().String()+"/metrics")
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = hs.Shutdown(ctx)
		<-done
	}
}
