// Package salesbuilder builds sales in the lane DB: create, lines, customer,
// pricing, payments, park/unpark, complete and cancel, each change one
// committed transaction (through the group-commit writer) before its reply.
// It registers the FD1 SalesBuilder endpoints under both name generations.
package salesbuilder

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/greenlane-pos/greenlane/internal/setting"
	"github.com/greenlane-pos/greenlane/lanedb"
	"github.com/greenlane-pos/greenlane/protocol"
)

// Service is the SalesBuilder.
type Service struct {
	db     *lanedb.DB
	writer *lanedb.Writer
	now    func() time.Time
	loc    *time.Location
	laneNo int64
	locID  int64

	lease       time.Duration
	maxAge      time.Duration
	notify      func()
	sessionOpen func(session string) bool
	journalKeep int
	ikKeep      time.Duration
	maxLines    int
	maxPresells int
	ids         *ids
	claims      *claimSet

	stampMu   sync.Mutex
	lastStamp time.Time
}

// Options configure a Service. DefaultOptions holds every default.
type Options struct {
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Rand is where new sale keys get their randomness; deterministic mode
	// seeds it. Default nil: crypto/rand.
	Rand io.Reader
	// Lease is how long a counter's claim on a presell lasts without a
	// change or heartbeat: 1s to 24h. Default 120s.
	Lease time.Duration
	// PresellMaxAge: an open presell untouched for this long is voided by
	// the sweeper: 1s to 8760h (a year). Default 12h.
	PresellMaxAge time.Duration
	// JournalKeep is how many journal entries (events a firehose can replay)
	// the sweeper keeps: 1000 to 100000000. Default 100000.
	JournalKeep int
	// IdempotencyKeep is how long a request's ik is remembered (a retry
	// later than that is a new request): 1m to 8760h. Default 48h.
	IdempotencyKeep time.Duration
	// MaxSaleLines is the most lines one sale may hold; adding one more is
	// refused with limit_reached. It keeps a sale printable and its every
	// change cheap (each change rereads the lines). 1 to 100000. Default 500.
	MaxSaleLines int
	// MaxOpenPresells is the most open presells (being built or submitted,
	// not yet completed or voided) one key may have; creating one more is
	// refused with limit_reached, so one runaway tablet cannot take every
	// ticket. 1 to 9999 (the tickets there are). Default 200.
	MaxOpenPresells int
	// Notify is called (without blocking) after each commit that journalled
	// an event, so the firehose hub can publish it. Default nil.
	Notify func()
	// SessionOpen reports whether a session (a socket) is still connected,
	// so that a key whose earlier connection is gone takes its claims back
	// at once instead of waiting out the lease. Default nil: never.
	SessionOpen func(session string) bool
}

// Validate reports every field out of its range, each as a
// *setting.Error naming the field. (New still takes a zero field as its
// default, for one-off tools that pass Options{}.)
func (o Options) Validate() error {
	return errors.Join(
		setting.Range("Lease", o.Lease, time.Second, 24*time.Hour),
		setting.Range("PresellMaxAge", o.PresellMaxAge, time.Second, 8760*time.Hour),
		setting.Range("JournalKeep", o.JournalKeep, 1000, 100_000_000),
		setting.Range("IdempotencyKeep", o.IdempotencyKeep, time.Minute, 8760*time.Hour),
		setting.Range("MaxSaleLines", o.MaxSaleLines, 1, 100_000),
		setting.Range("MaxOpenPresells", o.MaxOpenPresells, 1, lanedb.MaxTicket),
	)
}

// DefaultOptions returns the defaults.
func DefaultOptions() Options {
	return Options{Now: time.Now, Lease: 120 * time.Second, PresellMaxAge: 12 * time.Hour, JournalKeep: 100000,
		IdempotencyKeep: 48 * time.Hour, MaxSaleLines: 500, MaxOpenPresells: 200}
}

// New returns a SalesBuilder writing through w. It reads the lane's number
// and time zone once; a lane DB without a store (the empty fixture) runs as
// lane 1 in UTC.
func New(ctx context.Context, db *lanedb.DB, w *lanedb.Writer, opts Options) (*Service, error) {
	d := DefaultOptions()
	if opts.Now == nil {
		opts.Now = d.Now
	}
	if opts.Lease <= 0 {
		opts.Lease = d.Lease
	}
	if opts.PresellMaxAge <= 0 {
		opts.PresellMaxAge = d.PresellMaxAge
	}
	if opts.JournalKeep <= 0 {
		opts.JournalKeep = d.JournalKeep
	}
	if opts.IdempotencyKeep <= 0 {
		opts.IdempotencyKeep = d.IdempotencyKeep
	}
	if opts.MaxSaleLines <= 0 {
		opts.MaxSaleLines = d.MaxSaleLines
	}
	if opts.MaxOpenPresells <= 0 {
		opts.MaxOpenPresells = d.MaxOpenPresells
	}
	s := &Service{db: db, writer: w, now: opts.Now, lease: opts.Lease, maxAge: opts.PresellMaxAge, notify: opts.Notify, sessionOpen: opts.SessionOpen, journalKeep: opts.JournalKeep, ikKeep: opts.IdempotencyKeep, maxLines: opts.MaxSaleLines, maxPresells: opts.MaxOpenPresells, ids: newIDs(opts.Rand), claims: newClaimSet(), loc: time.UTC, laneNo: 1}
	lane, err := db.LaneInfo(ctx)
	switch {
	case errors.Is(err, lanedb.ErrNoLane):
	case err != nil:
		return nil, err
	default:
		s.laneNo, s.locID = lane.LaneNo, lane.Location.LocID
		loc, err := time.LoadLocation(lane.Timezone)
		if err != nil {
			return nil, fmt.Errorf("lane time zone %q: %w", lane.Timezone, err)
		}
		s.loc = loc
	}
	return s, nil
}

// localNow is the store's local time as a date-time column holds it.
func (s *Service) localNow() string { return s.now().In(s.loc).Format(lanedb.DateTime) }

func (s *Service) utcNow() string { return s.now().UTC().Format(lanedb.DateTime) }

// stamp is updated_utc for a change: UTC to the microsecond and strictly
// increasing, so "the sale changed last" is well defined even for changes
// within the same second (the top sale depends on it).
func (s *Service) stamp() string {
	s.stampMu.Lock()
	defer s.stampMu.Unlock()
	t := s.now().UTC().Truncate(time.Microsecond)
	if !t.After(s.lastStamp) {
		t = s.lastStamp.Add(time.Microsecond)
	}
	s.lastStamp = t
	return t.Format(lanedb.StampLayout)
}

// changed is what a mutation answers: the sale it changed and that sale's
// view. mutate wraps it for the endpoint name the client used.
type changed struct {
	physkey string
	view    any
	event   string // the custdisp event this change makes, if any
}

// txFunc is the body of one mutating request.
type txFunc func(ctx context.Context, tx *lanedb.Tx) (*changed, error)

// mutate runs fn as one write (inside the group-commit batch) and returns
// its result once committed. With an ik, the reply is stored in the same
// transaction and a retry returns it without running fn again.
func (s *Service) mutate(ctx context.Context, call *protocol.Call, fn txFunc) (*protocol.Result, error) {
	ik := call.Req.IK
	var hash []byte
	if ik != "" {
		// HTTP mode sets ik from a header without protocol.Decode.
		if err := protocol.CheckIK(ik); err != nil {
			return nil, err
		}
		hash = requestHash(call)
	}
	var result *changed
	err := s.writer.Do(ctx, func(ctx context.Context, tx *lanedb.Tx) error {
		if ik != "" {
			stored, err := s.replayed(ctx, tx, ik, call, hash)
			if err != nil || stored != nil {
				result = stored
				return err
			}
		}
		c, err := fn(ctx, tx)
		if err != nil {
			return err
		}
		if c.event != "" {
			if err := s.emit(ctx, tx, c.event, call.Caller.KeyName, saleViewOf(c.view)); err != nil {
				return err
			}
		}
		if ik != "" {
			if c, err = storeReply(ctx, tx, ik, call, hash, c, s.now()); err != nil {
				return err
			}
		}
		result = c
		return nil
	})
	if err != nil {
		return nil, mapDBError(err)
	}
	return saleResult(call, result.physkey, result.view), nil
}

// storedReply is what the idempotency table keeps of a reply: the sale and
// its view, unwrapped, so a retry under the other generation's name gets
// its own shape.
type storedReply struct {
	Physkey string          `json:"k"`
	View    json.RawMessage `json:"view"`
}

// replayed returns the stored result for ik, nil if ik is new, or
// ik_reused if ik belongs to another request or another key. A retry from a
// new connection takes over the claim the first connection won with it.
func (s *Service) replayed(ctx context.Context, tx *lanedb.Tx, ik string, call *protocol.Call, hash []byte) (*changed, error) {
	rec, err := lanedb.GetIdempotent(ctx, tx, ik)
	if err != nil || rec == nil {
		return nil, err
	}
	if !call.Caller.HasKeyID(rec.KeyID) || rec.Endpoint != call.Endpoint.Name || !bytes.Equal(rec.RequestHash, hash) {
		return nil, protocol.Errorf(protocol.CodeIKReused,
			"ik %s was already used for a different request; use a new ik for a new request", ik)
	}
	var sr storedReply
	if err := json.Unmarshal(rec.Reply, &sr); err != nil {
		return nil, fmt.Errorf("stored reply for ik %s: %w", ik, err)
	}
	if err := s.resumeClaim(ctx, tx, rec, sr.Physkey, call); err != nil {
		return nil, err
	}
	return &changed{physkey: sr.Physkey, view: sr.View}, nil
}

// resumeClaim moves to this session a claim that the same key's earlier
// session holds on the sale a retried request named. A retried claim
// (recall, unpark) whose claim is gone is refused: its stored "you have it"
// is no longer true.
func (s *Service) resumeClaim(ctx context.Context, tx *lanedb.Tx, rec *lanedb.Idempotent, physkey string, call *protocol.Call) error {
	c := call.Caller
	if rec.Session == "" || rec.Session == c.Session || physkey == "" || !canClaim(c) {
		return nil
	}
	moved, err := lanedb.MoveClaim(ctx, tx, physkey, rec.Session, c.Session, s.now())
	if err != nil {
		return err
	}
	if moved {
		s.claims.Add(tx, physkey, c.Session)
		return lanedb.MoveSession(ctx, tx, rec.KeyID, rec.Session, c.Session)
	}
	if claiming[call.Endpoint.Name] {
		return protocol.Errorf(protocol.CodeClaimLost, "presell %s was claimed by this device's earlier connection, but that claim has lapsed or been taken over; recall it again with a new ik", physkey)
	}
	return nil
}

// claiming are the endpoints whose success means "this device now holds
// the presell".
var claiming = map[string]bool{"fd1.presell.recall": true, "fd1.salesbuilder.sale_unpark": true}

// storeReply keeps c for ik. The view is returned as the very bytes stored,
// so the first answer and every retry are identical.
func storeReply(ctx context.Context, tx *lanedb.Tx, ik string, call *protocol.Call, hash []byte, c *changed, now time.Time) (*changed, error) {
	view, err := json.Marshal(c.view)
	if err != nil {
		return nil, fmt.Errorf("encode reply for ik: %w", err)
	}
	body, err := json.Marshal(storedReply{Physkey: c.physkey, View: view})
	if err != nil {
		return nil, fmt.Errorf("encode reply for ik: %w", err)
	}
	rec := &lanedb.Idempotent{IK: ik, KeyID: call.Caller.KeyID, Endpoint: call.Endpoint.Name, RequestHash: hash, Reply: body, Session: call.Caller.Session}
	if err := lanedb.PutIdempotent(ctx, tx, rec, now); err != nil {
		return nil, err
	}
	return &changed{physkey: c.physkey, view: json.RawMessage(view)}, nil
}

// requestHash identifies what a request asks for: the endpoint and its
// arguments (not rq or rt, which change on a retry).
func requestHash(call *protocol.Call) []byte {
	h := sha256.New()
	req := call.Req
	for _, part := range [][]byte{[]byte(call.Endpoint.Name), compactJSON(req.K), compactJSON(req.V), []byte(strings.Join(req.QK, ","))} {
		h.Write(part)
		h.Write([]byte{0})
	}
	q, _ := json.Marshal(req.Q) // map keys marshal sorted
	h.Write(q)
	return h.Sum(nil)
}

func compactJSON(raw json.RawMessage) []byte {
	var buf bytes.Buffer
	if len(raw) == 0 || json.Compact(&buf, raw) != nil {
		return raw
	}
	return buf.Bytes()
}

// mapDBError turns lane DB errors that a client can act on into FD1 errors.
func mapDBError(err error) error {
	var pe *protocol.Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &pe):
		return pe
	case errors.Is(err, lanedb.ErrStaleSale):
		return protocol.Errorf(protocol.CodeConflict, "the sale was changed by another device at the same moment; fetch it and retry")
	case errors.Is(err, lanedb.ErrWriterClosed):
		return protocol.Errorf(protocol.CodeUnavailable, "the lane is shutting down; retry on the next connection")
	case lanedb.IsBusy(err):
		return protocol.Errorf(protocol.CodeUnavailable, "the lane DB stayed locked by another program; retry")
	}
	return err
}

func clip(s string) string {
	if len(s) > 60 {
		return s[:60] + "…"
	}
	return s
}

// --- which sale a request means, and may it change it ---

// saleKey is the physkey a request names: k, or "" for the top sale.
func saleKey(req *protocol.Request) string {
	k := req.Key()
	if k == "active" {
		return ""
	}
	return k
}

// resolve finds the sale a request names (k, or the caller's top active
// sale when k is absent or "active"). A caller that does not see the whole
// lane (a presell tablet) finds only its own sales: another's is not_found,
// told apart from a sale that does not exist by nothing.
func resolve(ctx context.Context, q sqlx.QueryerContext, call *protocol.Call) (*lanedb.Sale, error) {
	physkey := saleKey(call.Req)
	if physkey == "" {
		top, err := topSale(ctx, q, call.Caller)
		if err != nil {
			return nil, err
		}
		if top == "" {
			return nil, protocol.Errorf(protocol.CodeNotFound, "no active sale for key %q: create one with sale_create, or name one in k", call.Caller.KeyName)
		}
		physkey = top
	}
	sale, err := lanedb.GetSale(ctx, q, physkey)
	if errors.Is(err, lanedb.ErrNoSale) || (err == nil && !visible(sale, call.Caller)) {
		return nil, protocol.Errorf(protocol.CodeNotFound, "no sale with physkey %q", clip(physkey))
	}
	return sale, err
}

// visible reports whether c may see sale: counters, displays and admin see
// every sale; any other key only those its session's keys created or hold.
func visible(sale *lanedb.Sale, c *protocol.Caller) bool {
	return c.SeesLane() || c.HasKeyName(sale.CreatedBy) || c.HasKeyID(sale.HolderKey)
}

// topSale is the most recently changed active sale held by any key logged
// in on the session ("" if none): several logins share their sales.
func topSale(ctx context.Context, q sqlx.QueryerContext, c *protocol.Caller) (string, error) {
	var best *lanedb.Sale
	for _, id := range c.KeyIDs() {
		physkey, err := lanedb.TopSale(ctx, q, id)
		if err != nil || physkey == "" {
			if err != nil {
				return "", err
			}
			continue
		}
		sale, err := lanedb.GetSale(ctx, q, physkey)
		if err != nil {
			return "", err
		}
		if best == nil || newerSale(sale, best) {
			best = sale
		}
	}
	if best == nil {
		return "", nil
	}
	return best.Physkey, nil
}

// openSales lists the active and parked sales held by any key of the
// session, newest change first, at most limit.
func openSales(ctx context.Context, q sqlx.QueryerContext, c *protocol.Caller, limit int) ([]lanedb.Sale, error) {
	var out []lanedb.Sale
	for _, id := range c.KeyIDs() {
		sales, err := lanedb.OpenSales(ctx, q, id, limit)
		if err != nil {
			return nil, err
		}
		out = append(out, sales...)
	}
	sort.SliceStable(out, func(i, j int) bool { return newerSale(&out[i], &out[j]) })
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// newerSale orders sales as the lane DB's holder index does: latest change
// first, then physkey descending.
func newerSale(a, b *lanedb.Sale) bool {
	if a.UpdatedUTC != b.UpdatedUTC {
		return a.UpdatedUTC > b.UpdatedUTC
	}
	return a.Physkey > b.Physkey
}

// forChange resolves the sale and checks it can be changed by this caller:
// it must be active and held by the caller's key, and once it holds a
// payment the caller needs the counter scope.
func (s *Service) forChange(ctx context.Context, tx *lanedb.Tx, call *protocol.Call) (*lanedb.Sale, error) {
	sale, err := resolve(ctx, tx, call)
	if err != nil {
		return nil, err
	}
	if err := checkPaidFor(ctx, tx, sale, call.Caller); err != nil {
		return nil, err
	}
	if err := checkPhase(sale, lanedb.PhaseActive); err != nil {
		return nil, err
	}
	if err := s.checkWriter(sale, call.Caller); err != nil {
		return nil, err
	}
	return sale, nil
}

// checkPhase explains why a sale is not in one of the wanted phases.
func checkPhase(sale *lanedb.Sale, want ...int) error {
	for _, p := range want {
		if sale.Phase == p {
			return nil
		}
	}
	switch sale.Phase {
	case lanedb.PhaseCompleted:
		return protocol.Errorf(protocol.CodeConflict, "sale %s is completed (sid %d) and cannot change", sale.Physkey, sale.SID.Int64)
	case lanedb.PhaseVoid:
		return protocol.Errorf(protocol.CodeConflict, "sale %s was cancelled", sale.Physkey)
	case lanedb.PhaseParked:
		return protocol.Errorf(protocol.CodeConflict, "sale %s is parked; sale_unpark it first", sale.Physkey)
	case lanedb.PhaseActive:
		return protocol.Errorf(protocol.CodeConflict, "sale %s is active, not parked", sale.Physkey)
	}
	return protocol.Errorf(protocol.CodeConflict, "sale %s is in phase %d", sale.Physkey, sale.Phase)
}

func checkHolder(sale *lanedb.Sale, c *protocol.Caller) error {
	if c.HasKeyID(sale.HolderKey) {
		return nil
	}
	return protocol.Errorf(protocol.CodeClaimed, "sale %s is held by %q, not by this key", sale.Physkey, sale.HolderName)
}

// save stamps a changed sale and writes it. A change by the holder of the
// sale's claim renews the claim's lease.
func (s *Service) save(ctx context.Context, tx *lanedb.Tx, c *protocol.Caller, sale *lanedb.Sale) error {
	sale.UpdatedUTC = s.stamp()
	if sale.ClaimState.Session.Valid && sale.ClaimState.Session.String == c.Session {
		sale.ClaimState.ExpiresMS = sql.NullInt64{Int64: s.now().Add(s.lease).UnixMilli(), Valid: true}
	}
	return lanedb.UpdateSale(ctx, tx, sale)
}

// --- reply shapes ---

// usesRows reports whether an endpoint name is of the newer generation,
// whose replies wrap the sale in data.rows (SPEC §7.3).
func usesRows(a string) bool {
	fn := a[strings.LastIndex(a, ".")+1:]
	return !strings.HasPrefix(fn, "salesbuilder_") && fn != "get_sale"
}

// saleResult wraps a sale view for the endpoint that was called, echoing
// the sale key.
func saleResult(call *protocol.Call, physkey string, view any) *protocol.Result {
	k, _ := json.Marshal(physkey)
	if usesRows(call.Req.A) {
		return &protocol.Result{K: k, Data: protocol.Rows{Rows: []any{view}}}
	}
	return &protocol.Result{K: k, Data: view}
}
