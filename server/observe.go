package server

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/greenlane-pos/greenlane/lanedb"
	"github.com/greenlane-pos/greenlane/protocol"
)

// Observer is told of every request and login, for metrics. Its methods
// must be quick and safe for concurrent use. Every value it gets is from a
// bounded set: an endpoint family, an FD1 error code, a refusal reason.
type Observer interface {
	// Request is one answered request: family is the part of the endpoint
	// name after "fd1." ("salesbuilder", "presell"), "other" for a name no
	// endpoint has; code is "ok" or the FD1 error code of the reply.
	Request(family, code string, took time.Duration)
	// Login is one login: "ok", or why it was refused (see refusalReason).
	Login(outcome string)
}

// SetObserver installs o; call it before ListenAndServe.
func (s *Server) SetObserver(o Observer) { s.observer = o }

func (s *Server) observeRequest(ep *protocol.Endpoint, reply *protocol.Reply, took time.Duration) {
	if s.observer == nil {
		return
	}
	family := "other"
	if ep != nil {
		// A registered endpoint's name: the set of families is the router's.
		name := strings.TrimPrefix(ep.Name, "fd1.")
		family, _, _ = strings.Cut(name, ".")
	}
	code := "ok"
	if reply != nil && reply.Error != nil {
		code = string(reply.Error.Code)
	}
	s.observer.Request(family, code, took)
}

// refusalReason names why a login was refused, from a bounded set: the
// error's FD1 code, or bad_key / revoked_key / no_key.
func refusalReason(why error) string {
	var pe *protocol.Error
	switch {
	case errors.Is(why, lanedb.ErrBadKey):
		return "bad_key"
	case errors.Is(why, lanedb.ErrRevokedKey):
		return "revoked_key"
	case errors.As(why, &pe):
		return string(pe.Code)
	}
	return "no_key"
}

// Stats are the front door's figures for metrics.
type Stats struct {
	// SocketsByPurpose counts open sockets by purpose; "fd1" is a socket
	// with none (an ordinary client).
	SocketsByPurpose map[string]int
	// SlowDropped counts sockets closed because their client did not read
	// its replies fast enough.
	SlowDropped int64
	// Conns is the TCP connections open now (sockets, HTTP); ConnsRefused
	// counts those closed at accept for being over MaxConns or
	// MaxConnsPerAddress.
	Conns        int
	ConnsRefused int64
	// SocketsRefused counts the WebSockets refused at their upgrade, by
	// why: max_sockets, unauth_sockets, unauth_per_address, shutting_down.
	SocketsRefused map[string]int64
	// LogLinesLeftOut counts log lines left out for being over a line
	// budget (callers without a key; see lineBudget).
	LogLinesLeftOut int64
}

// Stats reads the front door's figures.
func (s *Server) Stats() Stats {
	byPurpose, _ := s.socketStats()["by_purpose"].(map[string]int)
	refused := make(map[string]int64, len(s.socketsRefused))
	for why, n := range s.socketsRefused {
		refused[why] = n.Load()
	}
	return Stats{SocketsByPurpose: byPurpose, SlowDropped: s.slowDropped.Load(),
		Conns: s.conns.openNow(), ConnsRefused: s.conns.refused.Load(), SocketsRefused: refused, LogLinesLeftOut: s.strangerLines.leftOut.Load()}
}

// readyz answers 200 when the lane can take changes: it does not refuse
// them all for now (HoldsChanges), its DB schema is the one this build
// knows and a write transaction starts. Otherwise 503 with the reason.
// /healthz only says the process is alive.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	if s.shuttingDown() {
		http.Error(w, "not ready: shutting down", http.StatusServiceUnavailable)
		return
	}
	if s.held != nil {
		if err := s.held(); err != nil {
			http.Error(w, "not ready: "+protocol.AsError(err).Message, http.StatusServiceUnavailable)
			return
		}
	}
	if err := s.probeReady(); err != nil {
		http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintln(w, "ready")
}

// accessLog writes one line per HTTP request: method, path (never the
// query, which may hold _k, nor any header, which may hold x-api-key),
// status, bytes, duration and remote. A WebSocket upgrade is logged by its
// session instead (opened, login, closed). A request that no key logged
// in (a page, a refusal) is logged within its address's line budget.
func (s *Server) accessLog(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &recorder{ResponseWriter: w}
		done := markBusy(r)
		next.ServeHTTP(rec, r.WithContext(context.WithValue(r.Context(), recorderKey{}, rec)))
		done(rec.hijacked)
		if rec.hijacked {
			return
		}
		status := rec.status
		if status == 0 {
			status = http.StatusOK
		}
		args := []any{"method", r.Method, "path", r.URL.Path, "status", status, "bytes", rec.bytes,
			"duration", time.Since(start), "remote", r.RemoteAddr}
		if !rec.keyed {
			s.logStranger(r.RemoteAddr, slog.LevelInfo, "http", args...)
			return
		}
		s.log.Info("http", args...)
	})
}

// probeReady is db.Ready, once for every /readyz asking at the same
// time: it takes the lane DB's one write connection, which the writer
// needs, and /readyz needs no key, so a stranger asking it in a loop from
// many connections would otherwise hold that connection over and over.
func (s *Server) probeReady() error {
	_, err, _ := s.readyProbe.Do("ready", func() (any, error) {
		s.readyProbes.Add(1)
		// The writer may be mid-batch on the one write connection: wait a
		// little for it, not for as long as a client would. Not the
		// request's context: its client may leave, others share the answer.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		return nil, s.db.Ready(ctx)
	})
	return err
}

// recorderKey finds a request's recorder in its context (markKeyed).
type recorderKey struct{}

// markKeyed notes that a key logged r in: its access log line is the
// key's, not a stranger's.
func markKeyed(r *http.Request) {
	if rec, ok := r.Context().Value(recorderKey{}).(*recorder); ok {
		rec.keyed = true
	}
}

// recorder notes a response's status and size; it hijacks for WebSockets.
type recorder struct {
	http.ResponseWriter
	status   int
	bytes    int64
	hijacked bool
	keyed    bool // markKeyed
}

func (rec *recorder) WriteHeader(code int) {
	if rec.status == 0 {
		rec.status = code
	}
	rec.ResponseWriter.WriteHeader(code)
}

func (rec *recorder) Write(b []byte) (int, error) {
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	n, err := rec.ResponseWriter.Write(b)
	rec.bytes += int64(n)
	return n, err
}

func (rec *recorder) Flush() {
	if f, ok := rec.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (rec *recorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	h, ok := rec.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("the connection cannot be taken over")
	}
	rec.hijacked = true
	return h.Hijack()
}

// Unwrap lets http.ResponseController reach the connection's own writer.
func (rec *recorder) Unwrap() http.ResponseWriter { return rec.ResponseWriter }
