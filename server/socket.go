package server

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"golang.org/x/time/rate"

	"github.com/greenlane-pos/greenlane/protocol"
)

// socket is one FD1 WebSocket, served after gorilla's chat example: the
// read pump (the only reader) decodes frames, answers session requests
// itself and hands the rest to the socket's pool; the writer (the only
// writer of data frames) drains the bounded send queue. An idle socket
// holds one goroutine, its read pump: the pool's workers and the writer
// run only while there is work, and pings come from a timer.
type socket struct {
	srv    *Server
	ws     *websocket.Conn
	id     uint64
	remote string

	out    *outbox
	pool   *pool
	ctx    context.Context // done when the socket is being torn down
	cancel context.CancelFunc
	// reading is done once the read pump has stopped (the client went
	// away, or the lane winds the socket down): an open_firehose still
	// waiting then gives up, as nobody will read its events.
	reading     context.Context
	stopReading context.CancelFunc
	draining    chan struct{} // closed when the lane asks the socket to wind down
	closed      chan struct{} // closed when the writer has closed the connection
	drainOne    sync.Once
	limiter     *rate.Limiter // requests per second from this client
	door        *admission    // what the socket counts for in the caps (Server.mu)

	mu        sync.Mutex
	pinger    *time.Timer // sends the next ping; nil once the socket is torn down
	caller    protocol.Caller
	inflight  map[string][]*flight // rq → requests in flight, for cancel_request
	closeCode int
	closeText string

	// Counted for the session's closing log line.
	requests atomic.Int64 // frames read
	replies  atomic.Int64 // reply packets queued
}

func (s *Server) openWebsocket(w http.ResponseWriter, r *http.Request) {
	var purpose protocol.Purpose
	if n := len(r.URL.Query()["purpose"]); n > 1 {
		http.Error(w, "purpose is given "+strconv.Itoa(n)+" times on the URL; give it once", http.StatusBadRequest)
		return
	}
	switch p := r.URL.Query().Get("purpose"); p {
	case "":
	case string(protocol.PurposePresell):
		purpose = protocol.PurposePresell
	default:
		// Other purposes travel in the login packet (SPEC §1.1).
		http.Error(w, `unknown purpose "`+p+`" on the URL: only purpose=presell goes on the URL; customerdisplay and debugscope go in the login packet`, http.StatusBadRequest)
		return
	}
	door, no := s.admit(r.RemoteAddr)
	if no != nil {
		// Refused before the upgrade: cheap, and the client sees why.
		s.noteRefused(r.RemoteAddr, no)
		http.Error(w, no.reason, no.status)
		return
	}
	s.noteAdmitted()
	ws, err := s.upgrader.Upgrade(w, r, nil)
	if err != nil {
		// The upgrader has already answered the client.
		s.forget(door)
		s.logStranger(r.RemoteAddr, slog.LevelInfo, "websocket upgrade refused", "remote", r.RemoteAddr, "err", err)
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	reading, stopReading := context.WithCancel(ctx)
	workers := max(s.workers[purpose], 1)
	sk := &socket{
		srv:     s,
		ws:      ws,
		id:      s.nextID.Add(1),
		remote:  r.RemoteAddr,
		out:     newOutbox(s.cfg.SendQueue, s.cfg.SendQueueBytes),
		pool:    newPool(workers, s.cfg.RequestQueue),
		ctx:     ctx,
		cancel:  cancel,
		reading: reading,
		// Cancelled by serve as the read pump returns.
		stopReading: stopReading,
		draining:    make(chan struct{}),
		closed:      make(chan struct{}),
		limiter:     rate.NewLimiter(rate.Limit(s.cfg.RequestRate), s.cfg.RequestBurst),
		inflight:    map[string][]*flight{},
		door:        door,
	}
	sk.caller = protocol.Caller{Purpose: purpose, Transport: "ws", SocketID: sk.id, Remote: r.RemoteAddr,
		Session: s.newSession(), Top: new(protocol.Top)}
	sk.out.wake = func() { go sk.write() }
	if !s.addSocket(sk) {
		s.forget(door)
		_ = ws.WriteControl(websocket.CloseMessage,
			websocket.FormatCloseMessage(websocket.CloseGoingAway, "the lane is shutting down"), time.Now().Add(s.cfg.WriteWait))
		ws.Close()
		cancel()
		return
	}
	// One line when a session opens and one when it closes (its login
	// logs the key's name between them): the access log of a socket. It
	// has no key yet, so the line is within its address's budget.
	s.logStranger(sk.remote, slog.LevelInfo, "websocket opened", "socket", sk.id, "remote", sk.remote, "purpose", purpose)
	// The socket lives on in a goroutine of its own and the handler
	// returns: net/http then lets go of what it still holds for the
	// upgrade request (the request and its headers, the response and its
	// write buffers, its goroutine's stack, grown by the handshake). The
	// socket stays counted in s.sessions until it is gone, and in
	// s.handlers until its goroutine ends, as the handler would have been
	// (this handler's own count keeps s.handlers above zero meanwhile).
	s.handlers.Add(1)
	go sk.serve()
}

// serve runs the socket until it closes, then gives back what it held.
func (sk *socket) serve() {
	s := sk.srv
	defer s.handlers.Done()
	if d := s.cfg.LoginDeadline; d > 0 {
		// A socket that never logs in holds room a device may need.
		fired := make(chan struct{})
		late := time.AfterFunc(d, func() {
			defer close(fired)
			if !s.loggedIn(sk.door) {
				s.logStranger(sk.remote, slog.LevelInfo, "closing a socket that did not log in in time", "socket", sk.id, "remote", sk.remote, "deadline", d)
				sk.kill(websocket.ClosePolicyViolation, "log in first")
			}
		})
		defer func() {
			if !late.Stop() {
				<-fired // it ran: wait until it is done
			}
		}()
	}
	sk.mu.Lock()
	if sk.ctx.Err() == nil { // not torn down already (a revoked key, a full lane)
		sk.pinger = time.AfterFunc(s.pingEvery(), sk.ping)
	}
	sk.mu.Unlock()
	sk.readPump()
	sk.stopReading()
	// Requests already taken finish and their replies are queued before the
	// socket closes: nothing the lane did goes unanswered.
	sk.pool.wait()
	select {
	case <-sk.draining:
		sk.notifyGoingAway()
	default:
		sk.kill(websocket.CloseNormalClosure, "")
	}
	<-sk.closed
	if s.hub != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, _ = s.hub.Unsubscribe(ctx, sk.id, "")
		cancel()
	}
	s.removeSocket(sk)
	// The close reason is not repeated: the line that decided it (a slow
	// client, a login deadline, a revoked key) has already said why.
	// A socket that never logged in says so within its address's budget.
	logClosed := s.log.Info
	if key := sk.currentCaller().KeyName; key == "" {
		logClosed = func(msg string, args ...any) { s.logStranger(sk.remote, slog.LevelInfo, msg, args...) }
	}
	logClosed("websocket closed", "socket", sk.id, "remote", sk.remote, "code", sk.closeCode,
		"key", sk.currentCaller().KeyName, "requests", sk.requests.Load(), "replies", sk.replies.Load())
}

// kill starts closing the socket with a close code and reason (the first
// caller's reason wins). It never blocks.
func (sk *socket) kill(code int, reason string) {
	sk.mu.Lock()
	if sk.closeCode == 0 {
		sk.closeCode, sk.closeText = code, reason
	}
	sk.mu.Unlock()
	sk.cancel()
	// The writer closes the connection (which also ends the read pump):
	// wake one if none is at work.
	sk.out.kick()
}

// goingAway asks the socket to wind down: it stops reading, lets the
// requests it has taken finish, sends fn1.link.link_status and closes 1001.
func (sk *socket) goingAway() {
	sk.drainOne.Do(func() {
		close(sk.draining)
		// Wake the read pump out of ReadMessage.
		_ = sk.ws.SetReadDeadline(time.Now())
	})
}

func (sk *socket) notifyGoingAway() {
	const message = "the lane is shutting down; reconnect in a moment"
	if b, err := json.Marshal(protocol.Push{A: "fn1.link.link_status", V: map[string]any{"message": message, "servers": []any{}}}); err == nil {
		sk.Enqueue(b)
	}
	sk.kill(websocket.CloseGoingAway, message)
}

// Enqueue queues a packet for the write pump. A client too slow to drain
// its queue is disconnected: it must never hold up the lane.
func (sk *socket) Enqueue(b []byte) { sk.EnqueueGroup([][]byte{b}) }

// EnqueueGroup queues packets sent as one burst (see outbox.pushGroup).
func (sk *socket) EnqueueGroup(group [][]byte) {
	if sk.ctx.Err() != nil {
		return
	}
	if !sk.out.pushGroup(group) {
		sk.srv.slowDropped.Add(1)
		sk.srv.log.Warn("send queue full; disconnecting slow client", "socket", sk.id, "remote", sk.remote)
		sk.kill(websocket.ClosePolicyViolation, "send queue full: the client is not reading its replies")
	}
}

// readPump reads frames until the connection fails, the socket is killed
// or the lane asks it to wind down.
func (sk *socket) readPump() {
	cfg := sk.srv.cfg
	sk.ws.SetReadLimit(cfg.ReadLimit)
	_ = sk.ws.SetReadDeadline(time.Now().Add(cfg.PongWait))
	sk.ws.SetPongHandler(func(string) error {
		return sk.extendReadDeadline()
	})
	for {
		kind, frame, err := sk.ws.ReadMessage()
		if err != nil {
			if errors.Is(err, websocket.ErrReadLimit) {
				// gorilla has already sent close 1009.
				sk.kill(websocket.CloseMessageTooBig, "frame larger than the read limit")
			}
			return
		}
		if sk.extendReadDeadline() != nil {
			return
		}
		sk.requests.Add(1)
		received := time.Now()
		if kind != websocket.TextMessage {
			sk.replyError(nil, protocol.Errorf(protocol.CodeBadPacket, "send FD1 packets as text frames, not binary"))
			continue
		}
		req, derr := protocol.Decode(frame)
		if derr != nil {
			sk.replyWait(protocol.ErrorReply(derr.A, derr.RQ, derr.RT, derr.Err))
			continue
		}
		if !sk.take(req, received) {
			return
		}
	}
}

// extendReadDeadline pushes the dead-peer deadline out, unless the socket
// is winding down (then the read pump must stop at once).
func (sk *socket) extendReadDeadline() error {
	select {
	case <-sk.draining:
		return errors.New("draining")
	default:
		return sk.ws.SetReadDeadline(time.Now().Add(sk.srv.cfg.PongWait))
	}
}

// take runs a session request (login, ignore, cancel) here, in arrival
// order, so that a pipelined request never overtakes the login before it;
// everything else goes to the pool, keyed by what it works on. Either way
// the request is judged by the session as it is now, at receive time: a
// request read before a login stays refused even if that login completes
// while the request waits in the queue.
func (sk *socket) take(req *protocol.Request, received time.Time) bool {
	if !sk.limiter.Allow() {
		sk.replyError(req, protocol.Errorf(protocol.CodeRateLimited,
			"this socket sends more than %g requests a second; slow down", sk.srv.cfg.RequestRate))
		return true
	}
	caller := sk.currentCaller()
	in := sk.srv.arrive(req, received)
	key := ""
	if ep := in.ep; ep != nil {
		if ep.Access.Public || ep.Name == cancelEndpoint {
			sk.replyWait(sk.srv.run(sk.ctx, sk, caller, in))
			return true
		}
		// Routing by what v says is for a logged-in caller's requests
		// only: nothing is decoded for one that will be refused.
		if sk.pool.max > 1 && caller.LoggedIn() {
			in.args = ep.DecodeArgs(req)
			key = ep.KeyOf(req, in.args)
		}
	}
	qctx, qcancel := context.WithCancel(sk.ctx)
	f := sk.track(req, qcancel)
	ok := sk.pool.submit(key, func() {
		defer qcancel()
		defer sk.untrack(req, f)
		if sk.ctx.Err() == nil {
			sk.reply(sk.srv.run(qctx, sk, caller, in))
		}
	}, sk.ctx.Done())
	if !ok {
		sk.untrack(req, f)
		qcancel()
	}
	return ok
}

// pingEvery is how often a socket pings its client: often enough that a
// live client's pong always lands within PongWait.
func (s *Server) pingEvery() time.Duration { return s.cfg.PongWait * 9 / 10 }

// ping sends a ping (gorilla lets WriteControl run beside the writer) and
// arms the next one.
func (sk *socket) ping() {
	if err := sk.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(sk.srv.cfg.WriteWait)); err != nil {
		sk.kill(websocket.CloseAbnormalClosure, "ping failed")
		return
	}
	sk.mu.Lock()
	if sk.pinger != nil {
		sk.pinger.Reset(sk.srv.pingEvery())
	}
	sk.mu.Unlock()
}

// write is a writer: the outbox starts one when packets are queued and none
// is at work, and kill starts one to close the socket. It writes until the
// queue is empty, then ends. Once the socket is being torn down it flushes
// what is queued, sends the close frame and closes the connection; no
// writer is started after that one.
func (sk *socket) write() {
	for {
		packets, more := sk.out.next(sk.ctx.Done())
		if !more {
			return
		}
		if sk.ctx.Err() != nil {
			sk.flushAndClose(packets)
			return
		}
		_ = sk.ws.SetWriteDeadline(time.Now().Add(sk.srv.cfg.WriteWait))
		if err := sk.writeAll(packets); err != nil {
			sk.kill(websocket.CloseAbnormalClosure, "write failed")
		}
	}
}

// flushAndClose writes what is already queued (taken, then the rest: a
// going-away notice, the last replies), then the close frame, and closes
// the connection.
func (sk *socket) flushAndClose(taken [][]byte) {
	cfg := sk.srv.cfg
	sk.mu.Lock()
	code, text := sk.closeCode, sk.closeText
	if sk.pinger != nil {
		sk.pinger.Stop()
		sk.pinger = nil
	}
	sk.mu.Unlock()
	defer func() {
		sk.ws.Close()
		close(sk.closed)
	}()
	if code == websocket.CloseMessageTooBig {
		lingerAfterTooBig(sk.ws.NetConn()) // gorilla has sent the close frame
		return
	}
	if code == websocket.CloseAbnormalClosure {
		return // the link is gone
	}
	deadline := time.Now().Add(cfg.WriteWait)
	_ = sk.ws.SetWriteDeadline(deadline)
	if code != websocket.ClosePolicyViolation { // a slow client gets no more data
		if sk.writeAll(append(taken, sk.out.take()...)) != nil {
			return
		}
	}
	_ = sk.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, text), deadline)
}

// A socket closed for an oversized frame reads and drops what its client is
// still sending for up to lingerWait and lingerBytes before it closes.
const (
	lingerWait  = time.Second
	lingerBytes = 1 << 20
)

// lingerAfterTooBig ends our side of the connection and drops the rest of an
// oversized frame still on its way in. Closing a TCP connection with unread
// data resets it, and the reset can reach the client before it has read the
// close frame (1009) that says why.
func lingerAfterTooBig(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
	_ = c.SetReadDeadline(time.Now().Add(lingerWait))
	_, _ = io.CopyN(io.Discard, c, lingerBytes)
}

// writeAll writes packets in order, one text frame each.
func (sk *socket) writeAll(packets [][]byte) error {
	for _, b := range packets {
		if err := sk.ws.WriteMessage(websocket.TextMessage, b); err != nil {
			return err
		}
	}
	return nil
}

// flight is one tracked request: its cancel function, told apart from
// other requests that carry the same rq.
type flight struct{ cancel context.CancelFunc }

// track remembers a queued request under its rq so that cancel_request can
// stop it. Clients may reuse an rq while an earlier request with it is
// still in flight, so each rq keeps every such request, not the latest.
func (sk *socket) track(req *protocol.Request, cancel context.CancelFunc) *flight {
	rq := req.RQString()
	if rq == "" {
		return nil
	}
	f := &flight{cancel: cancel}
	sk.mu.Lock()
	sk.inflight[rq] = append(sk.inflight[rq], f)
	sk.mu.Unlock()
	return f
}

// untrack forgets the request f, and the rq once none of its requests is
// left in flight.
func (sk *socket) untrack(req *protocol.Request, f *flight) {
	rq := req.RQString()
	if rq == "" || f == nil {
		return
	}
	sk.mu.Lock()
	defer sk.mu.Unlock()
	left := slices.DeleteFunc(sk.inflight[rq], func(g *flight) bool { return g == f })
	if len(left) == 0 {
		delete(sk.inflight, rq)
		return
	}
	sk.inflight[rq] = left
}

// cancelRequest cancels every waiting or running request with this rq: the
// client cannot tell requests that share an rq apart, so it gets them all
// stopped rather than an arbitrary one.
func (sk *socket) cancelRequest(rq string) bool {
	sk.mu.Lock()
	flights := slices.Clone(sk.inflight[rq])
	sk.mu.Unlock()
	for _, f := range flights {
		f.cancel()
	}
	return len(flights) > 0
}

func (sk *socket) currentCaller() protocol.Caller {
	sk.mu.Lock()
	defer sk.mu.Unlock()
	c := sk.caller
	c.Scopes = slices.Clone(c.Scopes)
	c.Logins = slices.Clone(c.Logins)
	return c
}

func (sk *socket) setCaller(c protocol.Caller) {
	sk.mu.Lock()
	sk.caller = c
	sk.mu.Unlock()
}

func (sk *socket) reply(r *protocol.Reply) {
	if r == nil {
		return
	}
	chunks := r.Chunks()
	sk.replies.Add(int64(len(chunks)))
	if len(chunks) == 1 {
		sk.Enqueue(sk.encode(chunks[0]))
		return
	}
	// A chunked reply goes out one packet at a time, each encoded only when
	// there is room for it: the lane chose to send many packets, so a client
	// that reads them is waited for (up to WriteWait a packet), not taken
	// for a slow one, and no more than one queue of them is held encoded.
	sk.pushEach(chunks, sk.out.maxCount)
}

// replyWait is reply for an answer the read pump makes itself (a frame
// refused before it reaches the pool: not JSON, binary, rate limited; or a
// session request). It waits, up to WriteWait, until the send queue is
// less than half full (the rest is room for the replies of requests in the
// pool, at most RequestQueue, and for pushes), rather than failing at
// once: a flood of such frames, cheap to answer, then stops the reading
// (the client's frames back up in TCP) instead of outrunning the write
// pump and being taken for a client that does not read its replies.
func (sk *socket) replyWait(r *protocol.Reply) {
	if r == nil {
		return
	}
	chunks := r.Chunks()
	sk.replies.Add(int64(len(chunks)))
	sk.pushEach(chunks, max(1, sk.out.maxCount/2))
}

// pushEach queues packets one at a time, each once fewer than below wait;
// a client that takes none for WriteWait is disconnected.
func (sk *socket) pushEach(chunks []*protocol.Reply, below int) {
	for _, c := range chunks {
		if sk.ctx.Err() != nil {
			return // closing: the rest would never be written
		}
		if !sk.out.pushWaitBelow(sk.encode(c), below, sk.srv.cfg.WriteWait, sk.ctx.Done()) {
			if sk.ctx.Err() == nil {
				sk.srv.slowDropped.Add(1)
				sk.srv.log.Warn("client stopped reading its replies; disconnecting", "socket", sk.id, "remote", sk.remote)
				sk.kill(websocket.ClosePolicyViolation, "send queue full: the client is not reading its replies")
			}
			return
		}
	}
}

// encode marshals a reply; a reply that cannot be encoded becomes an error
// reply to the same request.
func (sk *socket) encode(r *protocol.Reply) []byte {
	b, err := r.Marshal()
	if err != nil {
		sk.srv.log.Error("encode reply", "endpoint", r.R, "err", err)
		b, _ = protocol.ErrorReply(r.R, r.RP, r.RT, err).Marshal()
	}
	return b
}

func (sk *socket) replyError(req *protocol.Request, err error) {
	if req == nil {
		sk.replyWait(protocol.ErrorReply("", nil, nil, err))
		return
	}
	r := protocol.ErrorReply(req.A, req.RQ, req.RT, err)
	if req.WantsChunks() { // as run marks it: the client waits for last
		r.Ch, r.Last = 1, true
	}
	sk.replyWait(r)
}
