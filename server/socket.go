package server

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/greenlane-pos/greenlane/protocol"
)

// socket is one FD1 WebSocket. Three goroutines serve it, after gorilla's
// chat example: the read pump (the only reader) decodes frames and queues
// requests; the dispatcher runs them in order; the write pump (the only
// writer) drains the bounded send queue and sends pings.
type socket struct {
	srv    *Server
	ws     *websocket.Conn
	id     uint64
	remote string

	send     chan []byte
	requests chan queued
	ctx      context.Context // done when the socket is closing
	cancel   context.CancelFunc

	mu        sync.Mutex
	caller    protocol.Caller
	inflight  map[string]context.CancelFunc // rq → cancel, for cancel_request
	closeCode int
	closeText string
}

// queued is a decoded request waiting for the dispatcher.
type queued struct {
	req      *protocol.Request
	ctx      context.Context
	cancel   context.CancelFunc
	received time.Time
}

func (s *Server) openWebsocket(w http.ResponseWriter, r *http.Request) {
	var purpose protocol.Purpose
	switch p := r.URL.Query().Get("purpose"); p {
	case "":
	case string(protocol.PurposePresell):
		purpose = protocol.PurposePresell
	default:
		// Other purposes travel in the login packet (SPEC §1.1).
		http.Error(w, `unknown purpose "`+p+`" on the URL: only purpose=presell goes on the URL; customerdisplay and debugscope go in the login packet`, http.StatusBadRequest)
		return
	}
	ws, err := s.upgrader.Upgrade(w, r, nil)
	if err != nil {
		// The upgrader has already answered the client.
		s.log.Info("websocket upgrade refused", "remote", r.RemoteAddr, "err", err)
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	sk := &socket{
		srv:      s,
		ws:       ws,
		id:       s.nextID.Add(1),
		remote:   r.RemoteAddr,
		send:     make(chan []byte, s.cfg.SendQueue),
		requests: make(chan queued, s.cfg.RequestQueue),
		ctx:      ctx,
		cancel:   cancel,
		inflight: map[string]context.CancelFunc{},
	}
	sk.caller = protocol.Caller{Purpose: purpose, Transport: "ws", SocketID: sk.id, Remote: r.RemoteAddr}
	if !s.addSocket(sk) {
		_ = ws.WriteControl(websocket.CloseMessage,
			websocket.FormatCloseMessage(websocket.CloseGoingAway, "the lane is shutting down"), time.Now().Add(s.cfg.WriteWait))
		ws.Close()
		cancel()
		return
	}
	s.log.Debug("socket open", "socket", sk.id, "remote", sk.remote, "purpose", purpose)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); sk.writePump() }()
	go func() { defer wg.Done(); sk.dispatch() }()
	sk.readPump()
	wg.Wait()
	s.removeSocket(sk)
	s.log.Debug("socket closed", "socket", sk.id, "code", sk.closeCode, "reason", sk.closeText)
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
}

// goingAway tells the client why, then closes with 1001 once queued replies
// are written.
func (sk *socket) goingAway(message string) {
	if b, err := json.Marshal(protocol.Push{A: "fn1.link.link_status", V: map[string]any{"message": message, "servers": []any{}}}); err == nil {
		sk.enqueue(b)
	}
	sk.kill(websocket.CloseGoingAway, message)
}

// enqueue queues a packet for the write pump. A client too slow to drain
// its queue is disconnected: it must never hold up the lane.
func (sk *socket) enqueue(b []byte) {
	if sk.ctx.Err() != nil {
		return
	}
	select {
	case sk.send <- b:
	default:
		sk.srv.log.Warn("send queue full; disconnecting slow client", "socket", sk.id, "remote", sk.remote)
		sk.kill(websocket.ClosePolicyViolation, "send queue full: the client is not reading its replies")
	}
}

// readPump reads frames until the connection fails or the socket is killed.
func (sk *socket) readPump() {
	defer func() {
		close(sk.requests)
		sk.kill(websocket.CloseNormalClosure, "")
	}()
	cfg := sk.srv.cfg
	sk.ws.SetReadLimit(cfg.ReadLimit)
	_ = sk.ws.SetReadDeadline(time.Now().Add(cfg.PongWait))
	sk.ws.SetPongHandler(func(string) error {
		return sk.ws.SetReadDeadline(time.Now().Add(cfg.PongWait))
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
		_ = sk.ws.SetReadDeadline(time.Now().Add(cfg.PongWait))
		received := time.Now()
		if kind != websocket.TextMessage {
			sk.replyError(nil, protocol.Errorf(protocol.CodeBadPacket, "send FD1 packets as text frames, not binary"))
			continue
		}
		req, derr := protocol.Decode(frame)
		if derr != nil {
			sk.reply(protocol.ErrorReply(derr.A, derr.RQ, derr.RT, derr.Err))
			continue
		}
		if protocol.Normalize(req.A) == cancelEndpoint {
			// Handled here, not queued, so it can reach a request that is
			// still waiting or running.
			sk.reply(sk.srv.run(sk.ctx, sk, req, received))
			continue
		}
		qctx, qcancel := context.WithCancel(sk.ctx)
		sk.track(req, qcancel)
		select {
		case sk.requests <- queued{req: req, ctx: qctx, cancel: qcancel, received: received}:
		case <-sk.ctx.Done():
			qcancel()
			return
		}
	}
}

// dispatch runs queued requests one at a time, in arrival order.
func (sk *socket) dispatch() {
	for q := range sk.requests {
		if sk.ctx.Err() == nil {
			sk.reply(sk.srv.run(q.ctx, sk, q.req, q.received))
		}
		sk.untrack(q.req)
		q.cancel()
	}
}

// writePump is the only writer on the connection.
func (sk *socket) writePump() {
	cfg := sk.srv.cfg
	ticker := time.NewTicker(cfg.PongWait * 9 / 10)
	defer func() {
		ticker.Stop()
		sk.ws.Close()
	}()
	for {
		select {
		case b := <-sk.send:
			_ = sk.ws.SetWriteDeadline(time.Now().Add(cfg.WriteWait))
			if err := sk.ws.WriteMessage(websocket.TextMessage, b); err != nil {
				sk.kill(websocket.CloseAbnormalClosure, "write failed")
				return
			}
		case <-ticker.C:
			if err := sk.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(cfg.WriteWait)); err != nil {
				sk.kill(websocket.CloseAbnormalClosure, "ping failed")
				return
			}
		case <-sk.ctx.Done():
			sk.flushAndClose()
			return
		}
	}
}

// flushAndClose writes what is already queued (a going-away notice, the
// last replies), then the close frame.
func (sk *socket) flushAndClose() {
	cfg := sk.srv.cfg
	sk.mu.Lock()
	code, text := sk.closeCode, sk.closeText
	sk.mu.Unlock()
	if code == websocket.CloseMessageTooBig || code == websocket.CloseAbnormalClosure {
		return // the close frame is already out, or the link is gone
	}
	deadline := time.Now().Add(cfg.WriteWait)
	_ = sk.ws.SetWriteDeadline(deadline)
	if code != websocket.ClosePolicyViolation { // a slow client gets no more data
		for drained := false; !drained; {
			select {
			case b := <-sk.send:
				if sk.ws.WriteMessage(websocket.TextMessage, b) != nil {
					return
				}
			default:
				drained = true
			}
		}
	}
	_ = sk.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, text), deadline)
}

func (sk *socket) track(req *protocol.Request, cancel context.CancelFunc) {
	if rq := req.RQString(); rq != "" {
		sk.mu.Lock()
		sk.inflight[rq] = cancel
		sk.mu.Unlock()
	}
}

func (sk *socket) untrack(req *protocol.Request) {
	if rq := req.RQString(); rq != "" {
		sk.mu.Lock()
		delete(sk.inflight, rq)
		sk.mu.Unlock()
	}
}

// cancelRequest cancels a waiting or running request by its rq.
func (sk *socket) cancelRequest(rq string) bool {
	sk.mu.Lock()
	cancel, ok := sk.inflight[rq]
	sk.mu.Unlock()
	if ok {
		cancel()
	}
	return ok
}

func (sk *socket) currentCaller() protocol.Caller {
	sk.mu.Lock()
	defer sk.mu.Unlock()
	c := sk.caller
	c.Scopes = append([]protocol.Scope(nil), c.Scopes...)
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
	b, err := r.Marshal()
	if err != nil {
		sk.srv.log.Error("encode reply", "endpoint", r.R, "err", err)
		b, _ = protocol.ErrorReply(r.R, r.RP, r.RT, err).Marshal()
	}
	sk.enqueue(b)
}

func (sk *socket) replyError(req *protocol.Request, err error) {
	if req == nil {
		sk.reply(protocol.ErrorReply("", nil, nil, err))
		return
	}
	sk.reply(protocol.ErrorReply(req.A, req.RQ, req.RT, err))
}
