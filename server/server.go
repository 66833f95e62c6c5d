// Package server is greenlane's front door: the FD1 WebSocket endpoint, HTTP
// mode, login and sessions, health and shutdown.
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/websocket"
	"golang.org/x/sync/singleflight"

	"github.com/greenlane-pos/greenlane/firehose"
	"github.com/greenlane-pos/greenlane/internal/faultlog"
	"github.com/greenlane-pos/greenlane/lanedb"
	"github.com/greenlane-pos/greenlane/protocol"
)

// Server serves FD1 over WebSocket and HTTP.
type Server struct {
	cfg      Config
	db       *lanedb.DB
	router   *protocol.Router
	log      *slog.Logger
	upgrader websocket.Upgrader
	started  time.Time
	hub      *firehose.Hub
	writer   *lanedb.Writer
	logins   *AddrLimiter // failed logins (a correct key is always let in)
	keyRate  *keyRate
	// strangerLines bounds the log lines of callers without a key.
	strangerLines *lineBudget
	// readyProbe shares one readiness probe among /readyz asking at once;
	// readyProbes counts the probes run.
	readyProbe  singleflight.Group
	readyProbes atomic.Int64
	// redirectLn is cfg.HTTPRedirect's listener, bound by the caller
	// (UseRedirectListener); nil: Serve binds it.
	redirectLn net.Listener
	// held says why the lane refuses every change for now (nil: it does
	// not), for /readyz; set once before serving (HoldsChanges).
	held func() error

	// origins is who may open sockets from a browser: set once the lane
	// knows its listen address (ListenAndServe).
	origins atomic.Pointer[originPolicy]
	// zone is the store's time zone, read from the lane row on first use
	// (laneZone).
	zone atomic.Pointer[time.Location]

	// tag begins every session id this Server makes (newSession), so that
	// it can tell its own sessions from other lanes' (OwnSession).
	tag string

	nextID  atomic.Uint64
	mu      sync.Mutex
	sockets map[uint64]*socket
	// bySession is the sockets by their session id (set when a socket is
	// made, never changed): SessionOpen is asked per session of a key.
	bySession map[string]*socket
	door      doorCount
	closing   bool
	sessions  sync.WaitGroup // one per socket, done when all its goroutines end
	handlers  sync.WaitGroup // one per socket or HTTP-mode handler running

	mounts []mount // other handlers served beside FD1 (the store's screens)

	// workers is how many requests one socket of a purpose may run at once
	// (1 when unset): the workflow that owns the purpose decides, and the
	// lane hands it over with SetWorkers before serving.
	workers map[protocol.Purpose]int

	conns *connCount // TCP connections open, of every listener
	// socketsRefused counts the sockets refused at their upgrade, by why
	// (refusalWhys); refusalLogs tells the lane-wide ones (tellFull),
	// under refuseMu, and refusalsOn says one is on.
	socketsRefused map[string]*atomic.Int64
	refuseMu       sync.Mutex
	refusalLogs    map[string]*faultlog.Log
	refusalsOn     atomic.Bool
	// readFaults tells requests failing because the lane DB cannot be
	// read (readFailed), under readMu; readsFailing says it is on.
	readMu       sync.Mutex
	readFaults   faultlog.Log
	readsFailing atomic.Bool
	observer     Observer     // nil: nothing counts requests and logins
	slowDropped  atomic.Int64 // sockets closed because they did not read
}

// mount is a handler served at some patterns.
type mount struct {
	h        http.Handler
	patterns []string
}

// New builds a server over db. Endpoints of other packages are registered on
// Router() before Serve.
func New(cfg Config, db *lanedb.DB, log *slog.Logger) *Server {
	s := &Server{
		cfg:            cfg,
		db:             db,
		router:         protocol.NewRouter(),
		log:            slog.New(redactKeys{log.Handler()}), // see redactKeys
		sockets:        map[uint64]*socket{},
		bySession:      map[string]*socket{},
		door:           doorCount{waiting: map[string][]*admission{}, byKey: map[string]int{}},
		started:        now(cfg),
		logins:         newLoginGuard(cfg.LoginFailures),
		strangerLines:  newLineBudget(),
		keyRate:        newKeyRate(cfg.KeyRequestRate, cfg.KeyRequestBurst),
		workers:        map[protocol.Purpose]int{},
		conns:          newConnCount(max(cfg.MaxConns, cfg.MaxSockets), cfg.MaxConnsPerAddress, log),
		refusalLogs:    newRefusalLogs(),
		readFaults:     faultlog.Log{Calm: faultlog.Every},
		socketsRefused: map[string]*atomic.Int64{},
		tag:            uuid.NewString()[:8],
	}
	s.upgrader = websocket.Upgrader{
		HandshakeTimeout: cfg.HandshakeTimeout,
		// Every socket holds its read buffer for as long as it is open,
		// idle or not, so it is small: FD1 requests are a few hundred
		// bytes, and gorilla reads a larger frame's payload straight into
		// the message, past the buffer. (Size 0 would keep the HTTP
		// server's 4 KiB one.)
		ReadBufferSize: readBufferSize,
		// Write buffers come from a pool only while a write is under
		// way: an idle socket holds none.
		WriteBufferPool: &sync.Pool{},
		CheckOrigin:     s.checkOrigin,
	}
	for _, why := range refusalWhys {
		s.socketsRefused[why] = new(atomic.Int64)
	}
	s.registerSession()
	s.registerDebug()
	return s
}

// readBufferSize is the read buffer of every socket, in bytes.
const readBufferSize = 1024

// now is the configured clock.
func now(cfg Config) time.Time {
	if cfg.Now != nil {
		return cfg.Now()
	}
	return time.Now()
}

// Router is where endpoints are registered.
func (s *Server) Router() *protocol.Router { return s.router }

// HoldsChanges tells the server where to ask whether the lane refuses
// every change for now, and why (the sales core's hold while the lane's
// clock is off the store database's): /readyz then answers not ready with
// that reason. Call it before serving.
func (s *Server) HoldsChanges(held func() error) { s.held = held }

// SetWorkers lets each socket of purpose run up to n requests at once,
// those with the same route key (Endpoint.RouteKey) still in order. Call it
// before serving.
func (s *Server) SetWorkers(purpose protocol.Purpose, n int) { s.workers[purpose] = n }

// Handler is the HTTP handler: sockets, HTTP mode and health.
// MaxHeaderBytes bounds a request's headers (and its URL): Go's default
// is 1 MiB, which thousands of connections without a key, each sending
// most of one and never finishing, turned into gigabytes. An HTTP-mode GET
// carries its packet in the URL, so the bound is the body's default
// (ReadLimit), not less.
const MaxHeaderBytes = 64 << 10

// Listen wraps ln so that its connections count against the lane's
// connection caps (--max-conns, --max-conns-per-address) like the lane's
// own listeners': a listener of the same process (--metrics-addr) must not
// take the file descriptors the lane needs.
func (s *Server) Listen(ln net.Listener) net.Listener { return s.conns.listen(ln) }

func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", s.healthz)
	mux.HandleFunc("GET /readyz", s.readyz)
	mux.HandleFunc("GET /fd1/open_websocket", s.joined(s.openWebsocket))
	// The vendor's websocat example uses this path.
	mux.HandleFunc("GET /ws/open_websocket", s.joined(s.openWebsocket))
	mux.HandleFunc("/fd1/{area}/{function}", s.joined(s.httpMode))
	mux.HandleFunc("/fd1/", s.joined(s.httpOtherPath))
	for _, m := range s.mounts {
		for _, p := range m.patterns {
			mux.Handle(p, m.h)
		}
	}
	return mux
}

// newSession is a new session id: a UUID's text whose first group is this
// Server's tag, the rest random (96 bits: unique enough). Sessions are
// opaque to the lane DB (claim_session), so the shape is free.
func (s *Server) newSession() string { return s.tag + uuid.NewString()[8:] }

// OwnSession reports whether this Server made the session id, so that
// whether it is still open is known here (SessionOpen). In store mode a
// claim may be held by another lane's session: its closing is not seen
// here.
func (s *Server) OwnSession(session string) bool {
	return len(session) == 36 && strings.HasPrefix(session, s.tag)
}

// SessionOpen reports whether a socket with this session id is connected
// to this lane (a claim's holder that has gone can be taken over by its key).
func (s *Server) SessionOpen(session string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, open := s.bySession[session]
	return open
}

// Mount serves h at each pattern (http.ServeMux patterns) beside the FD1
// endpoints: the lane's web screens. Call it before ListenAndServe.
func (s *Server) Mount(h http.Handler, patterns ...string) {
	s.mounts = append(s.mounts, mount{h: h, patterns: patterns})
}

// shuttingDown reports whether the lane has begun to shut down.
func (s *Server) shuttingDown() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	if s.shuttingDown() {
		http.Error(w, "shutting down\n", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintln(w, "ok")
}

// checkOrigin lets in clients without an Origin (not browsers), browsers on
// one of the lane's own listen addresses or names, and the configured
// allowlist. The request's Host header is not trusted: under DNS
// rebinding a hostile page's own name points at the lane, and its Origin
// and Host then agree.
func (s *Server) checkOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	if originAllowed(origin, s.origins.Load(), s.cfg.AllowedOrigins) {
		return true
	}
	s.logStranger(r.RemoteAddr, slog.LevelInfo, "websocket refused: Origin not allowed", "remote", r.RemoteAddr, "origin", origin, "host", r.Host)
	return false
}

// ListenAndServe serves on cfg.Addr until ctx is done, then shuts down
// gracefully. ready, if not nil, gets the bound address once sockets are
// accepted.
func (s *Server) ListenAndServe(ctx context.Context, ready func(addr net.Addr)) error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", s.cfg.Addr, err)
	}
	return s.Serve(ctx, ln, ready)
}

// UseRedirectListener gives Serve the listener for cfg.HTTPRedirect,
// already bound: a caller that must know the address is free before it
// makes anything (serve creating a new lane DB) listens first. Serve
// closes it.
func (s *Server) UseRedirectListener(ln net.Listener) { s.redirectLn = ln }

// Serve is ListenAndServe on a listener already bound to cfg.Addr (which
// it closes): a caller that must know the address is free before it makes
// anything (serve creating a new lane DB) listens first.
func (s *Server) Serve(ctx context.Context, ln net.Listener, ready func(addr net.Addr)) error {
	var err error
	s.origins.Store(ownOrigins(s.cfg.Addr, ln.Addr(), s.log))
	ln = s.conns.listen(ln)
	var redirect *http.Server
	var redirectLn net.Listener
	if s.cfg.TLS != nil {
		tc := s.cfg.TLS.Clone()
		// HTTP/1.1 only: WebSockets upgrade over it, and a browser that
		// got h2 from the page would need RFC 8441 for its socket.
		tc.NextProtos = []string{"http/1.1"}
		port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
		ln = tls.NewListener(ln, tc)
		if s.cfg.HTTPRedirect != "" {
			if redirectLn = s.redirectLn; redirectLn == nil {
				if redirectLn, err = net.Listen("tcp", s.cfg.HTTPRedirect); err != nil {
					ln.Close()
					return fmt.Errorf("listen on %s: %w", s.cfg.HTTPRedirect, err)
				}
			}
			redirectLn = s.conns.listen(redirectLn)
			redirect = &http.Server{
				Handler:           redirectToHTTPS(port),
				ReadHeaderTimeout: s.cfg.HandshakeTimeout,
				ReadTimeout:       s.cfg.HandshakeTimeout,
				WriteTimeout:      s.cfg.WriteWait,
				IdleTimeout:       s.cfg.IdleTimeout,
				MaxHeaderBytes:    MaxHeaderBytes,
				ErrorLog:          s.httpErrorLog(),
			}
		}
	}
	// HTTP-mode calls run under callsCtx, so that shutdown can stop the
	// ones still running when the grace period ends.
	callsCtx, stopCalls := context.WithCancel(context.Background())
	defer stopCalls()
	hs := &http.Server{
		Handler:           s.accessLog(s.Handler()),
		ReadHeaderTimeout: s.cfg.HandshakeTimeout,
		// The whole request, body included: a client that sends its headers
		// and then trickles (or withholds) the body must not hold a
		// connection forever. WebSocket upgrades clear it (gorilla resets
		// the deadlines of the connection it takes over).
		ReadTimeout: s.cfg.HandshakeTimeout,
		// A client that asks and never reads the answer (400 pipelined
		// GETs, its window shut) must not hold its connection forever
		// either: an answer is written within the request's time and one
		// write's. WebSocket upgrades clear it too.
		WriteTimeout:   s.cfg.RequestTimeout + s.cfg.WriteWait,
		IdleTimeout:    s.cfg.IdleTimeout,
		MaxHeaderBytes: MaxHeaderBytes,
		ErrorLog:       s.httpErrorLog(),
		BaseContext:    func(net.Listener) context.Context { return callsCtx },
		// The connection, for markBusy: one serving a request is never
		// closed to make room for another.
		ConnContext: func(ctx context.Context, c net.Conn) context.Context { return context.WithValue(ctx, connKey{}, c) },
	}
	// Both goroutines are joined before ListenAndServe returns: a caller
	// that closes the DB next finds nothing of the lane still running.
	var bg sync.WaitGroup
	errc := make(chan error, 1)
	bg.Add(2)
	go func() { defer bg.Done(); errc <- hs.Serve(ln) }()
	watchCtx, stopWatch := context.WithCancel(context.Background())
	go func() { defer bg.Done(); s.watchRevocations(watchCtx, s.cfg.RevokeCheck) }()
	defer bg.Wait()
	defer stopWatch()
	if redirect != nil {
		bg.Add(1)
		go func() {
			defer bg.Done()
			if err := redirect.Serve(redirectLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.log.Error("http redirect listener stopped", "addr", s.cfg.HTTPRedirect, "err", err)
			}
		}()
		// Runs before bg.Wait (defers run last first): the redirect
		// listener stops with the lane.
		defer redirect.Close()
		s.log.Info("redirecting http to https", "addr", redirectLn.Addr().String())
	}
	if ready != nil {
		ready(ln.Addr())
	}
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	return s.shutdown(hs, stopCalls)
}

// redirectToHTTPS sends every request to the same host and path on the
// https port.
func redirectToHTTPS(port string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := r.Host
		if h, _, err := net.SplitHostPort(r.Host); err == nil {
			host = h
		}
		u := url.URL{Scheme: "https", Host: net.JoinHostPort(strings.Trim(host, "[]"), port), Path: r.URL.Path, RawQuery: r.URL.RawQuery}
		if carriesSecrets(r) {
			// Redirecting an API call would teach its client that plain
			// http works, while its key crosses the network in clear text
			// on every call; refused, it gets fixed at once.
			http.Error(w, "this port only sends browsers to https; API calls and anything carrying a key must use "+
				(&url.URL{Scheme: "https", Host: u.Host, Path: "/"}).String(), http.StatusForbidden)
			return
		}
		http.Redirect(w, r, u.String(), http.StatusPermanentRedirect)
	})
}

// carriesSecrets reports whether a plain-http request is an API call or
// carries credentials: FD1 (HTTP mode and the socket upgrade), /metrics,
// an API key or an Authorization header.
func carriesSecrets(r *http.Request) bool {
	p := r.URL.Path
	return strings.HasPrefix(p, "/fd1/") || p == "/fd1" || p == "/metrics" ||
		r.Header.Get("x-api-key") != "" || r.Header.Get("x-apikey") != "" || r.Header.Get("Authorization") != "" ||
		r.URL.Query().Has("key")
}

// shutdown stops accepting, tells every socket the lane is going away,
// lets in-flight requests (socket and HTTP mode) finish within
// ShutdownGrace, then stops what still runs and waits for it to end.
func (s *Server) shutdown(hs *http.Server, stopCalls context.CancelFunc) error {
	s.mu.Lock()
	s.closing = true
	socks := make([]*socket, 0, len(s.sockets))
	for _, sk := range s.sockets {
		socks = append(socks, sk)
	}
	s.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownGrace)
	defer cancel()
	for _, sk := range socks {
		sk.goingAway()
	}
	// Stops the listener and waits for HTTP-mode calls; sockets are
	// hijacked, so not its to wait for.
	err := hs.Shutdown(ctx)
	if errors.Is(err, context.DeadlineExceeded) {
		s.log.Warn("HTTP-mode calls still running after the shutdown grace period; stopping them")
		stopCalls()
		_ = hs.Close()
	}
	done := make(chan struct{})
	go func() { s.sessions.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		s.log.Warn("sockets still open after the shutdown grace period; closing them")
		for _, sk := range socks {
			sk.kill(websocket.CloseGoingAway, "the lane is shutting down")
		}
		<-done
	}
	s.handlers.Wait()
	if errors.Is(err, context.DeadlineExceeded) {
		return nil
	}
	return err
}

// joined counts a handler for shutdown to wait for, from before it starts
// until it has returned; once the lane is shutting down it refuses.
func (s *Server) joined(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		closing := s.closing
		if !closing {
			s.handlers.Add(1)
		}
		s.mu.Unlock()
		if closing {
			const why = "the lane is shutting down; retry in a moment"
			if r.PathValue("function") != "" { // HTTP mode: an FD1 reply
				writeError(w, protocol.ErrorReply("fd1."+r.PathValue("area")+"."+r.PathValue("function"), nil, nil,
					protocol.Errorf(protocol.CodeUnavailable, why)))
				return
			}
			http.Error(w, why, http.StatusServiceUnavailable)
			return
		}
		defer s.handlers.Done()
		h(w, r)
	}
}

func (s *Server) addSocket(sk *socket) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	s.sockets[sk.id] = sk
	s.bySession[sk.currentCaller().Session] = sk
	sk.door.sk = sk
	s.sessions.Add(1)
	return true
}

func (s *Server) removeSocket(sk *socket) {
	session := sk.currentCaller().Session
	s.mu.Lock()
	delete(s.sockets, sk.id)
	delete(s.bySession, session)
	s.mu.Unlock()
	s.forget(sk.door)
	s.sessions.Done()
}
