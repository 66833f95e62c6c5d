package server

import (
	"context"
	"errors"
	"time"

	"github.com/greenlane-pos/greenlane/internal/faultlog"
	"github.com/greenlane-pos/greenlane/lanedb"
	"github.com/greenlane-pos/greenlane/protocol"
)

// session is what a request runs on: a WebSocket, or one HTTP-mode call.
type session interface {
	currentCaller() protocol.Caller
	setCaller(protocol.Caller)
	cancelRequest(rq string) bool
}

// sessionOf is the session a call runs on, as run put it on the call; nil
// when it runs on none. The one place that looks inside a
// protocol.Session.
func sessionOf(call *protocol.Call) session {
	s, _ := call.Session.(session)
	return s
}

// incoming is a request as it arrived: its endpoint looked up (once, where
// it arrived) and, when routing needed them, its arguments decoded.
type incoming struct {
	req      *protocol.Request
	ep       *protocol.Endpoint // nil: unknown, and lookupErr says so
	args     *protocol.Args
	received time.Time

	lookupErr error
}

// arrive looks a request's endpoint up.
func (s *Server) arrive(req *protocol.Request, received time.Time) incoming {
	ep, err := s.router.Lookup(req.A)
	return incoming{req: req, ep: ep, received: received, lookupErr: err}
}

// run takes one decoded request through the gate (endpoint known, caller
// allowed) to its handler and builds the reply. caller is the session as it
// was when the request was received: a login that completes while the
// request waits in the socket's queue does not let it in (DESIGN §2). It
// returns nil for an endpoint that answers nothing.
func (s *Server) run(ctx context.Context, sess session, caller protocol.Caller, in incoming) (reply *protocol.Reply) {
	req, received := in.req, in.received
	// Every request, refused ones included, leaves a debugscope trace.
	var ep *protocol.Endpoint
	var call *protocol.Call
	defer func() {
		acting := caller
		if call != nil { // admitted: the trace names the key the request acted as
			acting = *call.Caller
		}
		took := time.Since(received)
		s.trace(ep, reply, took, acting)
		s.observeRequest(ep, reply, took)
	}()
	// A client that asked for chunks waits for "last": every answer to it
	// says it is the last, and a list split into packets (Reply.Chunks)
	// numbers its own.
	defer func() {
		if reply != nil && req.WantsChunks() {
			reply.Ch, reply.Last = 1, true
		}
	}()
	if !caller.LoggedIn() && (in.ep == nil || !in.ep.Access.Public) {
		// Before login nothing but login (and the other public session
		// endpoints) is answered, the same for every name: an
		// unauthenticated client must not learn which names exist (DESIGN
		// §4, before login).
		return protocol.ErrorReply(req.A, req.RQ, req.RT, protocol.Errorf(protocol.CodeLoginRequired,
			"log in with fd1.session.login first"))
	}
	if req.PT != "" {
		return protocol.ErrorReply(req.A, req.RQ, req.RT, protocol.Errorf(protocol.CodeUnsupported,
			"packet type pt=%q is not served here; send FD1 packets with pt absent", req.PT))
	}
	if in.lookupErr != nil {
		return protocol.ErrorReply(req.A, req.RQ, req.RT, in.lookupErr)
	}
	ep = in.ep
	var err error
	if call, err = ep.Admit(req, caller); err != nil {
		return protocol.ErrorReply(req.A, req.RQ, req.RT, err)
	}
	call.Session, call.Args = sess, in.args
	if !ep.Access.Public && !s.keyRate.allow(call.Caller) {
		return protocol.ErrorReply(req.A, req.RQ, req.RT, protocol.Errorf(protocol.CodeRateLimited,
			"the API key %s sends more than %g requests a second over all its sockets and HTTP calls; slow down and retry in a second",
			call.Caller.KeyName, s.cfg.KeyRequestRate))
	}
	if ctx.Err() != nil {
		return protocol.ErrorReply(req.A, req.RQ, req.RT, protocol.Errorf(protocol.CodeCancelled, "the request was cancelled before it ran"))
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
	defer cancel()

	started := time.Now()
	res, err := ep.Handler(ctx, call)
	if err != nil {
		return protocol.ErrorReply(req.A, req.RQ, req.RT, s.clientError(ctx, ep, err))
	}
	s.readsGoThrough()
	if ep.NoReply {
		return nil
	}
	reply = protocol.ReplyTo(req)
	if res != nil {
		reply.SC, reply.K, reply.Data = res.SC, res.K, res.Data
	}
	if req.WantsTiming() {
		reply.DebugRD = map[string]any{"time": map[string]float64{
			"dispatch": started.Sub(received).Seconds(),
			"total":    time.Since(received).Seconds(),
		}}
	}
	return reply
}

// clientError maps a handler error to what the client sees, logging the
// internal ones (their text never leaves the lane).
func (s *Server) clientError(ctx context.Context, ep *protocol.Endpoint, err error) error {
	var pe *protocol.Error
	switch {
	case errors.As(err, &pe):
		return pe
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return protocol.Errorf(protocol.CodeUnavailable, "the request took longer than %s; retry", s.cfg.RequestTimeout)
	case errors.Is(ctx.Err(), context.Canceled), errors.Is(err, context.Canceled):
		// Also a handler's own giving up (an open_firehose whose socket
		// stopped reading): a client gone, not a fault of the lane's.
		return protocol.Errorf(protocol.CodeCancelled, "the request was cancelled")
	case lanedb.IsUnavailable(err):
		// A read that met a store database restarting or out of reach.
		return s.unreadable(ep.Name, err)
	}
	s.log.Error("request failed", "endpoint", ep.Name, "err", err)
	return protocol.AsError(err)
}

// unreadable is the answer to a request of endpoint that failed with err
// because the lane DB could not be read (a store database restarting or
// out of reach), told in the log (readFailed).
func (s *Server) unreadable(endpoint string, err error) error {
	s.readFailed(endpoint, err)
	return protocol.Errorf(protocol.CodeUnavailable, "the lane DB cannot be reached; retry").Because(protocol.CauseDBUnreachable)
}

// readFailed tells a request that failed because the lane DB could not be
// read. Every request fails alike meanwhile, so it is told once in full,
// then counted every faultlog.Every, then its end (readsGoThrough).
func (s *Server) readFailed(endpoint string, err error) {
	s.readMu.Lock()
	defer s.readMu.Unlock()
	s.readsFailing.Store(true)
	line := s.readFaults.Fail(time.Now(), "unavailable", 1)
	switch line.Tell {
	case faultlog.First:
		s.log.Warn("request failed: the lane DB is unavailable", "endpoint", endpoint, "err", s.db.Unreachable(err))
	case faultlog.Count:
		s.log.Warn("requests still fail: the lane DB is unavailable", "failed", line.N, "since", line.Since.Format(time.TimeOnly))
	}
}

// readsGoThrough ends what readFailed told once a request has succeeded
// and none has failed so for faultlog.Every (a request that needs no DB,
// a ping, may succeed meanwhile).
func (s *Server) readsGoThrough() {
	if !s.readsFailing.Load() {
		return
	}
	s.readMu.Lock()
	defer s.readMu.Unlock()
	over, ok := s.readFaults.Clear(time.Now())
	if _, on := s.readFaults.On(); !on {
		s.readsFailing.Store(false)
	}
	if ok {
		s.log.Info("requests read the lane DB again", "failed", over.Total, "lasted", over.Lasted.Round(time.Millisecond))
	}
}
