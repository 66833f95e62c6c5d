package presell

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/greenlane-pos/greenlane/fixtures"
	"github.com/greenlane-pos/greenlane/lanedb"
	"github.com/greenlane-pos/greenlane/protocol"
	"github.com/greenlane-pos/greenlane/salesbuilder"
)

// The presell tests drive a whole lane's sales core, with this workflow
// plugged in, through the FD1 endpoints, as salesbuilder's tests do.
type (
	Options    = salesbuilder.Options
	SaleView   = salesbuilder.SaleView
	PresellRow = Row
)

const familyPresell = Family

// services is a lane's workflow, with the writer it commits through.
type services struct {
	*Workflow
	writer *lanedb.Writer
}

func (s services) claim(ctx context.Context, tx *lanedb.Tx, c *protocol.Caller, sale *lanedb.Sale, force bool) (*lanedb.Sale, error) {
	return s.Claim(ctx, tx, c, sale, force)
}

func (s services) release(ctx context.Context, tx *lanedb.Tx, c *protocol.Caller, sale *lanedb.Sale) (*lanedb.Sale, error) {
	return s.Release(ctx, tx, c, sale)
}

func (s services) TrimJournal(ctx context.Context) error { return s.sales.TrimJournal(ctx) }

func (s services) VoidPresell(ctx context.Context, ticketOrPhyskey, actor, reason string, force bool) (string, error) {
	return s.Void(ctx, ticketOrPhyskey, actor, reason, force)
}

// lane is a SalesBuilder on a real demo lane DB, with a clock the test
// moves by hand.
type lane struct {
	t      *testing.T
	db     *lanedb.DB
	svc    services
	router *protocol.Router

	mu    sync.Mutex
	clock time.Time
}

// advance moves the lane's clock forward.
func (l *lane) advance(d time.Duration) {
	l.mu.Lock()
	l.clock = l.clock.Add(d)
	l.mu.Unlock()
}

func (l *lane) now() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.clock
}

// newLane starts a lane; opts adjust its Options (limits) before it starts.
func newLane(t *testing.T, opts ...func(*Options)) *lane {
	t.Helper()
	ctx := context.Background()
	db, err := lanedb.Open(ctx, filepath.Join(t.TempDir(), "lane.db"), lanedb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	demo, err := fixtures.Find("demo")
	if err != nil {
		t.Fatal(err)
	}
	if err := demo.Load(ctx, db, false); err != nil {
		t.Fatal(err)
	}
	w := db.NewWriter(lanedb.WriterOptions{MaxWait: time.Millisecond, MaxBatch: 16})
	t.Cleanup(func() { w.Close(); db.Close() })
	l := &lane{t: t, db: db, clock: time.Date(2026, 11, 27, 9, 30, 0, 0, time.UTC)}
	o := Options{Now: l.now, Lease: 2 * time.Minute, PresellMaxAge: 12 * time.Hour}
	for _, f := range opts {
		f(&o)
	}
	s, err := salesbuilder.New(ctx, db, w, o)
	if err != nil {
		t.Fatal(err)
	}
	p := New(s)
	l.svc, l.router = services{p, w}, protocol.NewRouter()
	s.Register(l.router)
	p.Register(l.router)
	return l
}

func tablet(name string) *protocol.Caller {
	return &protocol.Caller{KeyID: "id-" + name, KeyName: name, Scopes: []protocol.Scope{protocol.ScopePresell},
		Purpose: protocol.PurposePresell, Session: "session-" + name}
}

func counter(name string) *protocol.Caller {
	return &protocol.Caller{KeyID: "id-" + name, KeyName: name, Scopes: []protocol.Scope{protocol.ScopeCounter},
		Session: "session-" + name}
}

// call runs endpoint a for caller with k and v (any JSON-able value).
func (l *lane) call(c *protocol.Caller, a, k string, v any, ik string) (*protocol.Result, error) {
	l.t.Helper()
	req := &protocol.Request{A: a, IK: ik}
	if k != "" {
		req.K, _ = json.Marshal(k)
	}
	if v != nil {
		req.V, _ = json.Marshal(v)
	}
	ep, err := l.router.Lookup(a)
	if err != nil {
		return nil, err
	}
	if err := ep.Allow(c); err != nil {
		return nil, err
	}
	return ep.Handler(context.Background(), &protocol.Call{Req: req, Caller: c, Endpoint: ep})
}

// sale runs a call that must succeed and returns the sale in its reply.
func (l *lane) sale(c *protocol.Caller, a, k string, v any) *SaleView {
	l.t.Helper()
	res, err := l.call(c, a, k, v, "")
	if err != nil {
		l.t.Fatalf("%s: %v", a, err)
	}
	return viewOf(l.t, res)
}

func viewOf(t *testing.T, res *protocol.Result) *SaleView {
	t.Helper()
	b, err := json.Marshal(res.Data)
	if err != nil {
		t.Fatal(err)
	}
	var rows struct {
		Rows []SaleView `json:"rows"`
	}
	if json.Unmarshal(b, &rows) == nil && len(rows.Rows) == 1 {
		return &rows.Rows[0]
	}
	var v SaleView
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("reply is not a sale: %s", b)
	}
	return &v
}

func wantCode(t *testing.T, err error, code protocol.Code) {
	t.Helper()
	var pe *protocol.Error
	if !errors.As(err, &pe) {
		t.Fatalf("err = %v, want code %s", err, code)
	}
	if pe.Code != code {
		t.Fatalf("code %s (%s), want %s", pe.Code, pe.Message, code)
	}
}

func admin(name string) *protocol.Caller {
	return &protocol.Caller{KeyID: "id-" + name, KeyName: name, Scopes: []protocol.Scope{protocol.ScopeAdmin},
		Session: "session-" + name}
}

// submitted builds and submits a presell on a tablet and returns it.
func (l *lane) submitted(tab *protocol.Caller, pids ...int) *SaleView {
	l.t.Helper()
	k := l.sale(tab, "salesbuilder.sale_create", "", nil).Physkey
	for _, pid := range pids {
		l.sale(tab, "salesbuilder.sale_add_product", k, map[string]any{"pid": pid})
	}
	return l.sale(tab, "salesbuilder.sale_park", k, nil)
}

func recallView(t *testing.T, res *protocol.Result) RecallView {
	t.Helper()
	b, _ := json.Marshal(res.Data)
	var rows struct {
		Rows []RecallView `json:"rows"`
	}
	if err := json.Unmarshal(b, &rows); err != nil || len(rows.Rows) != 1 {
		t.Fatalf("recall reply: %s", b)
	}
	return rows.Rows[0]
}
