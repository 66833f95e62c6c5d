package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/gorilla/websocket"

	"github.com/greenlane-pos/greenlane/lanedb"
	"github.com/greenlane-pos/greenlane/protocol"
)

// recallClient is one counter as the benchmark drives it: over a socket,
// or (the baseline) straight on lanedb. Each call returns the latency it
// measured. An error that is a *protocol.Error is a failed request (counted,
// the counter goes on); any other error means the client broke.
type recallClient interface {
	list(ctx context.Context, q listQuery) (rows int, took time.Duration, err error)
	recall(ctx context.Context, ticket int64) (physkey string, took time.Duration, err error)
	release(ctx context.Context, physkey string) (took time.Duration, err error)
}

// counter is a counter program on a WebSocket: it lists presells, recalls
// one by ticket and gives it back, one request at a time (a closed loop, as
// a person at the counter works).
type counter struct {
	ws    *websocket.Conn
	rq    int64
	keyID string
}

// counterRequest is an FD1 request packet with the fields a counter uses.
type counterRequest struct {
	A  string         `json:"a"`
	RQ int64          `json:"rq"`
	Q  map[string]any `json:"q,omitempty"`
	QK string         `json:"qk,omitempty"`
	K  string         `json:"k,omitempty"`
	V  any            `json:"v"`
}

// counterReply is what a counter reads of a reply: the list's rows are
// counted, not decoded; a recalled sale's body is skipped.
type counterReply struct {
	A     string          `json:"a"`
	RP    int64           `json:"rp"`
	K     json.RawMessage `json:"k"`
	Error *protocol.Error `json:"error"`
	Data  struct {
		Rows []json.RawMessage `json:"rows"`
	} `json:"data"`
}

// dialCounter opens a counter socket and logs in with key.
func dialCounter(ctx context.Context, url string, key benchKey) (*counter, error) {
	ws, err := dial(ctx, url)
	if err != nil {
		return nil, err
	}
	c := &counter{ws: ws, keyID: key.id}
	r, _, err := c.roundTrip(counterRequest{A: "fd1.session.login", V: map[string]string{"apikey": key.key}})
	if err == nil && r.Error != nil {
		err = fmt.Errorf("login refused: %w", r.Error)
	}
	if err != nil {
		ws.Close()
		return nil, err
	}
	return c, nil
}

// close says goodbye with a normal close frame, then drops the connection.
func (c *counter) close() {
	_ = c.ws.WriteControl(websocket.CloseMessage,
		websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	c.ws.Close()
}

// list is fd1.presell.get_presells with q's filter.
func (c *counter) list(_ context.Context, q listQuery) (int, time.Duration, error) {
	req := counterRequest{A: "fd1.presell.get_presells", V: struct{}{}}
	switch q.variant {
	case listTicket:
		req.Q = map[string]any{"ticket": q.ticket}
	case listCustomer:
		req.Q = map[string]any{"customer": q.customer}
	case listAge:
		req.Q = map[string]any{"age(>=)": q.age}
	case listMine:
		req.QK = "mine"
	}
	r, took, err := c.call(req)
	if err != nil {
		return 0, took, err
	}
	return len(r.Data.Rows), took, nil
}

// recall is fd1.presell.recall by ticket: it claims the presell and answers
// with the whole sale; k is its physkey.
func (c *counter) recall(_ context.Context, ticket int64) (string, time.Duration, error) {
	r, took, err := c.call(counterRequest{A: "fd1.presell.recall", V: map[string]int64{"ticket": ticket}})
	if err != nil {
		return "", took, err
	}
	var physkey string
	if err := json.Unmarshal(r.K, &physkey); err != nil || physkey == "" {
		return "", took, protocol.Errorf("bad_reply", "recall answered k=%s, not a physkey", r.K)
	}
	return physkey, took, nil
}

// release is fd1.presell.release: the presell goes back to the queue.
func (c *counter) release(_ context.Context, physkey string) (time.Duration, error) {
	_, took, err := c.call(counterRequest{A: "fd1.presell.release", K: physkey, V: struct{}{}})
	return took, err
}

// call is roundTrip with an error reply returned as its *protocol.Error.
func (c *counter) call(req counterRequest) (*counterReply, time.Duration, error) {
	r, took, err := c.roundTrip(req)
	if err == nil && r.Error != nil {
		err = r.Error
	}
	return r, took, err
}

// roundTrip sends req with the next rq and reads until its reply. The
// latency runs from the send to the reply's arrival: encoding the request
// and decoding the reply are the client's work, not the lane's.
func (c *counter) roundTrip(req counterRequest) (*counterReply, time.Duration, error) {
	c.rq++
	req.RQ = c.rq
	b, err := json.Marshal(req)
	if err != nil {
		return nil, 0, fmt.Errorf("encode %s: %w", req.A, err)
	}
	start := time.Now()
	_ = c.ws.SetWriteDeadline(start.Add(replyWait))
	if err := c.ws.WriteMessage(websocket.TextMessage, b); err != nil {
		return nil, 0, fmt.Errorf("send %s: %w", req.A, err)
	}
	_ = c.ws.SetReadDeadline(start.Add(replyWait))
	for {
		_, msg, err := c.ws.ReadMessage()
		took := time.Since(start)
		if err != nil {
			return nil, 0, fmt.Errorf("wait for the reply to %s: %w", req.A, err)
		}
		var r counterReply
		if err := json.Unmarshal(msg, &r); err != nil {
			return nil, 0, fmt.Errorf("reply to %s: %w: %.200s", req.A, err, msg)
		}
		if r.A != "" {
			continue // a push, not a reply
		}
		if r.RP != req.RQ {
			return nil, 0, fmt.Errorf("reply to %s: rp %d, want %d", req.A, r.RP, req.RQ)
		}
		return &r, took, nil
	}
}

// directClient is the baseline: the same lookups as direct lanedb calls on
// the read pool, with no socket, no JSON and no claim.
type directClient struct {
	db       *lanedb.DB
	claimKey string // whose claims "qk mine" lists
}

// list is lanedb.OpenPresells with the filter get_presells would build.
func (d *directClient) list(ctx context.Context, q listQuery) (int, time.Duration, error) {
	f := presellFilter(q, d.claimKey)
	start := time.Now()
	rows, _, err := lanedb.OpenPresells(ctx, d.db.Read, f)
	return len(rows), time.Since(start), directErr(err)
}

// presellFilter is the lanedb filter get_presells builds for q, for a
// counter whose key id is claimKey.
func presellFilter(q listQuery, claimKey string) lanedb.PresellFilter {
	f := lanedb.PresellFilter{Limit: presellListLimit}
	switch q.variant {
	case listTicket:
		f.Conds = []lanedb.Cond{{Column: "ticket", Op: "=", Value: q.ticket}}
	case listCustomer:
		f.Customer = q.customer
	case listAge:
		// As the server does: age >= N seconds is submitted <= now - N.
		at := time.Now().Add(-time.Duration(q.age) * time.Second).UTC().Format(lanedb.DateTime)
		f.Conds = []lanedb.Cond{{Column: "submitted_utc", Op: "<=", Value: at}}
	case listMine:
		f.ClaimKey, f.Now = claimKey, time.Now()
	}
	return f
}

// recall is the lookup half of a recall: lanedb.OpenPresellBy by ticket.
func (d *directClient) recall(ctx context.Context, ticket int64) (string, time.Duration, error) {
	start := time.Now()
	physkey, err := lanedb.OpenPresellBy(ctx, d.db.Read, ticket, "")
	return physkey, time.Since(start), directErr(err)
}

// release has nothing to give back: the lookup claimed nothing.
func (d *directClient) release(context.Context, string) (time.Duration, error) { return 0, nil }

// directErr makes a lanedb error a failed request (code "db"), so that the
// baseline counts it like a socket's error reply and goes on.
func directErr(err error) error {
	if err == nil {
		return nil
	}
	var pe *protocol.Error
	if errors.As(err, &pe) {
		return err
	}
	return protocol.Errorf("db", "%v", err)
}
