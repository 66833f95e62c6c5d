package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"time"

	"github.com/gorilla/websocket"

	"github.com/greenlane-pos/greenlane/protocol"
)

// kind is one of the four requests a presell tablet makes per sale.
type kind int

const (
	kindCreate kind = iota
	kindAddProduct
	kindSetCustomer
	kindPark
	numKinds
)

var kindNames = [numKinds]string{"create", "add_product", "set_customer", "park"}

var kindEndpoints = [numKinds]string{
	"fd1.salesbuilder.sale_create",
	"fd1.salesbuilder.sale_add_product",
	"fd1.salesbuilder.sale_set_customer",
	"fd1.salesbuilder.sale_park",
}

// linesPerSale is how many add_product requests a sale makes.
const linesPerSale = 3

// replyWait bounds the wait for one reply: past it the socket is taken for
// broken (the server's own request timeout is 30 s).
const replyWait = 35 * time.Second

// Products a tablet rings up: the demo's first ten (sold by the unit) and,
// now and then, a weighed product sold in grams.
var (
	unitPIDs    = []int64{1001, 1002, 1003, 1004, 1005, 1006, 1007, 1008, 1009, 1010}
	weighedPIDs = []int64{1024, 1025, 1026, 1027, 1028, 1030, 1031}
)

// demoCustomers is the cid range of the demo fixture (two have a discount,
// so set_customer reprices lines).
const demoCustomers = 10

// lineChoice is one product line of a sale.
type lineChoice struct {
	PID int64 `json:"pid"`
	Qty int64 `json:"qty"`
}

// pickLine chooses a product and quantity: 1–3 of a unit product, or one
// time in ten 100–1500 g of a weighed one.
func pickLine(rng *rand.Rand) lineChoice {
	if rng.IntN(10) == 0 {
		return lineChoice{PID: weighedPIDs[rng.IntN(len(weighedPIDs))], Qty: 100 + rng.Int64N(1401)}
	}
	return lineChoice{PID: unitPIDs[rng.IntN(len(unitPIDs))], Qty: 1 + rng.Int64N(3)}
}

// pickCustomer chooses a demo customer.
func pickCustomer(rng *rand.Rand) int64 { return 1 + rng.Int64N(demoCustomers) }

// tablet is one presell tablet: a real WebSocket client that sends one
// request and waits for its reply before the next (a closed loop, as a
// person at a tablet does).
type tablet struct {
	ws    *websocket.Conn
	rng   *rand.Rand
	rq    int64
	stats *loadStats
	// replyAt is when the last reply was read off the socket, before it
	// was decoded: bench firehose compares it with a display's receipt.
	replyAt time.Time
}

// request is an FD1 request packet as the tablet sends it.
type request struct {
	A  string `json:"a"`
	RQ int64  `json:"rq"`
	K  string `json:"k,omitempty"`
	V  any    `json:"v"`
}

// reply is what the tablet reads of a packet; data (the whole sale) is
// skipped. A is set only on a push (e.g. fn1.link.link_status).
type reply struct {
	A     string          `json:"a"`
	RP    int64           `json:"rp"`
	K     json.RawMessage `json:"k"`
	Error *protocol.Error `json:"error"`
}

// dialTablet opens a presell socket and logs in with key.
func dialTablet(ctx context.Context, url, key string, seed uint64, stats *loadStats) (*tablet, error) {
	ws, err := dial(ctx, url)
	if err != nil {
		return nil, err
	}
	// Seeded by tablet number, so every run rings up the same sales.
	t := &tablet{ws: ws, rng: rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15)), stats: stats}
	r, err := t.roundTrip(request{A: "fd1.session.login", V: map[string]string{"apikey": key}})
	if err == nil && r.Error != nil {
		err = fmt.Errorf("login refused: %s", r.Error)
	}
	if err != nil {
		ws.Close()
		return nil, err
	}
	return t, nil
}

// dial opens a WebSocket, with the server's answer in the error when the
// upgrade is refused.
func dial(ctx context.Context, url string) (*websocket.Conn, error) {
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second}
	ws, resp, err := d.DialContext(ctx, url, nil)
	if err != nil {
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
			return nil, fmt.Errorf("open %s: %s", url, resp.Status)
		}
		return nil, fmt.Errorf("open %s: %w", url, err)
	}
	return ws, nil
}

// run makes sales until ctx ends. A started sale is always finished, so
// every sale the bench counts is whole. It returns only on a broken socket.
func (t *tablet) run(ctx context.Context) error {
	for ctx.Err() == nil {
		if err := t.sale(); err != nil {
			return err
		}
	}
	return nil
}

// close says goodbye with a normal close frame, then drops the connection.
func (t *tablet) close() {
	_ = t.ws.WriteControl(websocket.CloseMessage,
		websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	t.ws.Close()
}

// sale is create → 3 × add_product → set_customer → park. An error reply
// abandons the sale (it is counted); a broken socket is returned.
func (t *tablet) sale() error {
	physkey, ok, err := t.do(kindCreate, "", struct{}{})
	if !ok || err != nil {
		return err
	}
	for range linesPerSale {
		if _, ok, err := t.do(kindAddProduct, physkey, pickLine(t.rng)); !ok || err != nil {
			return err
		}
	}
	if _, ok, err := t.do(kindSetCustomer, physkey, map[string]int64{"cid": pickCustomer(t.rng)}); !ok || err != nil {
		return err
	}
	if _, ok, err := t.do(kindPark, physkey, struct{}{}); !ok || err != nil {
		return err
	}
	t.stats.saleDone()
	return nil
}

// do sends one request of kind k about sale key and waits for its reply.
// It returns the reply's k (the sale's physkey) and whether the reply was a
// success; err is set only when the socket broke.
func (t *tablet) do(k kind, key string, v any) (string, bool, error) {
	start := time.Now()
	r, err := t.roundTrip(request{A: kindEndpoints[k], K: key, V: v})
	if err != nil {
		return "", false, err
	}
	if r.Error != nil {
		t.stats.failed(k, r.Error)
		return "", false, nil
	}
	t.stats.succeeded(k, time.Since(start))
	var physkey string
	if k == kindCreate {
		if err := json.Unmarshal(r.K, &physkey); err != nil || physkey == "" {
			t.stats.failed(k, protocol.Errorf("bad_reply", "create answered k=%s, not a physkey", r.K))
			return "", false, nil
		}
	}
	return physkey, true, nil
}

// roundTrip sends req with the next rq and reads until its reply.
func (t *tablet) roundTrip(req request) (*reply, error) {
	t.rq++
	req.RQ = t.rq
	b, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", req.A, err)
	}
	_ = t.ws.SetWriteDeadline(time.Now().Add(replyWait))
	if err := t.ws.WriteMessage(websocket.TextMessage, b); err != nil {
		return nil, fmt.Errorf("send %s: %w", req.A, err)
	}
	_ = t.ws.SetReadDeadline(time.Now().Add(replyWait))
	for {
		_, msg, err := t.ws.ReadMessage()
		if err != nil {
			return nil, fmt.Errorf("wait for the reply to %s: %w", req.A, err)
		}
		t.replyAt = time.Now()
		var r reply
		if err := json.Unmarshal(msg, &r); err != nil {
			return nil, fmt.Errorf("reply to %s: %w: %.200s", req.A, err, msg)
		}
		if r.A != "" {
			continue // a push, not a reply
		}
		if r.RP == req.RQ {
			return &r, nil
		}
		return nil, fmt.Errorf("reply to %s: rp %d, want %d", req.A, r.RP, req.RQ)
	}
}

// isBusy tells a busy error (the lane asks to retry later: overloaded or a
// lock held by another program) from a real failure.
func isBusy(e *protocol.Error) bool {
	msg := strings.ToLower(e.Message)
	return e.Code == protocol.CodeUnavailable || strings.Contains(msg, "locked") || strings.Contains(msg, "busy")
}
