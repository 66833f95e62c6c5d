package salesbuilder

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"reflect"
	"strconv"
	"strings"

	"github.com/google/uuid"
	"github.com/greenlane-pos/greenlane/lanedb"
	"github.com/greenlane-pos/greenlane/protocol"
)

// The FD1 adapter of the sales core: the SalesBuilder endpoints under both
// name generations (SPEC §7.1) and the fd1.sales aliases (SPEC §8.1). Each
// handler decodes v once, calls one core method, and shapes the reply.

// Register adds the SalesBuilder endpoints.
func (s *Service) Register(r *protocol.Router) {
	builders := protocol.Access{Scopes: []protocol.Scope{protocol.ScopePresell, protocol.ScopeCounter}}
	// Taking money and completing are the counter's: a tablet builds and
	// submits, the counter tenders.
	tenders := protocol.Access{Scopes: []protocol.Scope{protocol.ScopeCounter}}
	// Reads ignore v fields they do not know; every change refuses them
	// (StrictV), as a misspelled qty or amount would otherwise change the
	// sale by the default instead.
	add := func(access protocol.Access, name string, aliases []string, h protocol.Handler) {
		r.Handle(&protocol.Endpoint{Name: name, Aliases: aliases, Access: access, Handler: h, RouteKey: RouteKey})
	}
	change := func(access protocol.Access, name string, aliases []string, h protocol.Handler) {
		r.Handle(&protocol.Endpoint{Name: name, Aliases: aliases, Access: access, Handler: h, RouteKey: RouteKey, StrictV: true})
	}
	// A create is routed by the physkey in its v (RouteKey), so its v is
	// decoded as it arrives.
	r.Handle(&protocol.Endpoint{Name: "fd1.salesbuilder.sale_create", Aliases: []string{"fd1.salesbuilder.salesbuilder_create", "fd1.sales.create_activesale"},
		Access: builders, Handler: s.create, RouteKey: RouteKey, Args: func() any { return new(createArgs) }, StrictV: true})
	// get_sale reads qk "all" (SPEC §7.3); no other endpoint reads q or qk.
	r.Handle(&protocol.Endpoint{Name: "fd1.salesbuilder.get_sale", Aliases: []string{activeSaleList}, Access: builders,
		Handler: s.getSale, RouteKey: RouteKey, Keywords: []string{"all"}})
	add(builders, "fd1.salesbuilder.sale_fetch", nil, s.fetch)
	add(builders, "fd1.salesbuilder.sale_get_price", nil, s.getPrice)
	change(builders, "fd1.salesbuilder.sale_add_product", []string{"fd1.salesbuilder.salesbuilder_add_product"}, s.addProduct)
	change(builders, "fd1.salesbuilder.sale_set_customer", []string{"fd1.salesbuilder.salesbuilder_set_customer"}, s.setCustomer)
	change(builders, "fd1.salesbuilder.sale_remove_line", nil, s.removeLine)
	change(builders, "fd1.salesbuilder.sale_edit_line", nil, s.editLine)
	change(tenders, "fd1.salesbuilder.sale_add_payment", nil, s.addPayment)
	change(tenders, "fd1.salesbuilder.sale_remove_payment", nil, s.removePayment)
	change(builders, "fd1.salesbuilder.sale_park", nil, s.park)
	change(builders, "fd1.salesbuilder.sale_unpark", nil, s.unpark)
	change(tenders, "fd1.salesbuilder.salesbuilder_complete", []string{"fd1.salesbuilder.sale_complete"}, s.complete)
	change(builders, "fd1.salesbuilder.salesbuilder_cancel", []string{"fd1.salesbuilder.sale_cancel"}, s.cancel)
}

// activeSaleList is get_sale's fd1.sales alias, which always lists.
const activeSaleList = "fd1.sales.get_activesale_list"

// RouteKey is the sale a request is about, for per-sale ordering on a
// presell socket: k, or for a create the client's chosen physkey (args is
// the create's decoded v). Requests that name no sale share the key ""
// (the caller's top sale).
func RouteKey(req *protocol.Request, args any) string {
	if k := SaleRef(req); k != "" {
		return k
	}
	if a, ok := args.(*createArgs); ok {
		return a.Physkey
	}
	return ""
}

// SaleRef is the sale a request names, as the core's ref: k, or "" for
// the caller's top sale (k absent or "active").
func SaleRef(req *protocol.Request) string {
	k := req.Key()
	if k == "active" {
		return ""
	}
	return canonicalKey(k)
}

// canonicalKey is k, a physkey in lower case as the lane's are (a client
// may write one in capitals); any other key as it is.
func canonicalKey(k string) string {
	if u, err := uuid.Parse(k); err == nil && len(k) == len(u.String()) {
		return u.String()
	}
	return k
}

// Shape says how a change is answered and remembered on the wire.
type Shape struct {
	// Rows wraps the sale in data.rows, as the newer name generation
	// answers (SPEC §7.3).
	Rows bool
	// Claims: success means "this device now holds the presell".
	Claims bool
}

// ShapeOf is the reply shape of the name a client called: the older
// generation (salesbuilder_*) and get_sale answer the sale itself.
func ShapeOf(call *protocol.Call) Shape {
	a := call.Req.A
	fn := a[strings.LastIndex(a, ".")+1:]
	return Shape{Rows: !strings.HasPrefix(fn, "salesbuilder_") && fn != "get_sale"}
}

// Mutate runs fn exactly once per ik (see Change) and answers its sale in
// the given shape, echoing the sale key.
func (s *Service) Mutate(ctx context.Context, call *protocol.Call, shape Shape, fn ChangeFunc) (*protocol.Result, error) {
	o := Once{IK: call.Req.IK, Caller: call.Caller, Op: call.Endpoint.Name, Claims: shape.Claims}
	if o.IK != "" {
		// HTTP mode sets ik from a header without protocol.Decode.
		if err := protocol.CheckIK(o.IK); err != nil {
			return nil, err
		}
		o.Hash, o.WrittenHash = requestHash(call), writtenHash(call)
	}
	c, err := s.Change(ctx, o, fn)
	if err != nil {
		return nil, err
	}
	return SaleResult(shape, c.Physkey, c.View), nil
}

// requestHash identifies what a request asks for: the endpoint and its
// arguments (not rq or rt, which change on a retry). v counts as the
// handler decoded it, and k as the sale key it names, so a retry that
// writes the same request another way (members in another order, numbers
// as text, escapes, a physkey in capitals, a GET's query for a socket's
// packet) is the same request.
func requestHash(call *protocol.Call) []byte {
	v := compactJSON(call.Req.V)
	if args, ok := call.Decoded(); ok {
		if b, err := json.Marshal(args); err == nil {
			v = b
		}
	}
	var q []byte // none, whether as null or {} (a GET's)
	if len(call.Req.Q) > 0 {
		q, _ = json.Marshal(call.Req.Q) // map keys marshal sorted
	}
	return hashParts(call, keyOf(call.Req.K), v, q)
}

// keyOf is k as the sale key it names: a string's value, canonicalKey.
func keyOf(k json.RawMessage) []byte {
	var s string
	if json.Unmarshal(k, &s) != nil {
		return compactJSON(k)
	}
	b, _ := json.Marshal(canonicalKey(s)) // a string always encodes
	return b
}

// writtenHash is requestHash with v and q as written: what a lane before
// requestHash decoded them stored, so that a retry across an upgrade
// still finds its first reply.
func writtenHash(call *protocol.Call) []byte {
	q, _ := json.Marshal(call.Req.Q)
	return hashParts(call, compactJSON(call.Req.K), compactJSON(call.Req.V), q)
}

func hashParts(call *protocol.Call, k, v, q []byte) []byte {
	h := sha256.New()
	req := call.Req
	for _, part := range [][]byte{[]byte(call.Endpoint.Name), k, v, []byte(strings.Join(req.QK, ","))} {
		h.Write(part)
		h.Write([]byte{0})
	}
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

// SaleResult wraps a sale's view in shape, echoing the sale key.
func SaleResult(shape Shape, physkey string, view any) *protocol.Result {
	k, _ := json.Marshal(physkey)
	if shape.Rows {
		return &protocol.Result{K: k, Data: protocol.Rows{Rows: []any{view}}}
	}
	return &protocol.Result{K: k, Data: view}
}

// change is the usual handler body: v decoded into args, then one core
// change on the sale the request names.
func (s *Service) change(ctx context.Context, call *protocol.Call, fn func(ctx context.Context, tx *lanedb.Tx, c *protocol.Caller, ref string) (*SaleView, error)) (*protocol.Result, error) {
	ref := SaleRef(call.Req)
	return s.Mutate(ctx, call, ShapeOf(call), func(ctx context.Context, tx *lanedb.Tx) (Changed, error) {
		return ChangedOf(fn(ctx, tx, call.Caller, ref))
	})
}

// cents turns an optional money argument into cents.
func cents(m *protocol.Money) *int64 {
	if m == nil {
		return nil
	}
	c := int64(*m)
	return &c
}

// --- create, reads ---

type createArgs struct {
	Physkey string `json:"physkey" validate:"omitempty,uuid"`
}

func (s *Service) create(ctx context.Context, call *protocol.Call) (*protocol.Result, error) {
	a, err := protocol.ArgsOf[createArgs](call)
	if err != nil {
		return nil, err
	}
	// As the sale will have it, and as a retry's hash counts it (requestHash).
	a.Physkey = strings.ToLower(a.Physkey)
	return s.Mutate(ctx, call, ShapeOf(call), func(ctx context.Context, tx *lanedb.Tx) (Changed, error) {
		return ChangedOf(s.Create(ctx, tx, call.Caller, a.Physkey))
	})
}

func (s *Service) getSale(ctx context.Context, call *protocol.Call) (*protocol.Result, error) {
	req := call.Req
	list := req.QK.Has("all") || protocol.Normalize(req.A) == activeSaleList
	ref := SaleRef(req)
	if list && ref == "" {
		views, err := s.OpenSales(ctx, call.Caller)
		if err != nil {
			return nil, err
		}
		rows, err := shapeEach(req.QO, views)
		if err != nil {
			return nil, err
		}
		return &protocol.Result{SC: "salesbuilder.active", Data: protocol.Rows{Rows: rows}}, nil
	}
	view, err := s.ActiveSale(ctx, call.Caller, ref)
	if err != nil {
		return nil, err
	}
	k, _ := json.Marshal(view.Physkey)
	if list {
		rows, err := shapeEach(req.QO, []ActiveView{*view})
		if err != nil {
			return nil, err
		}
		return &protocol.Result{SC: "salesbuilder.active", K: k, Data: protocol.Rows{Rows: rows}}, nil
	}
	shaped, err := protocol.ShapeValue(req.QO, *view)
	if err != nil {
		return nil, err
	}
	return &protocol.Result{SC: "salesbuilder.active", K: k, Data: shaped}, nil
}

// shapeEach applies qo (SPEC §3.5) to each of views; without one it is
// views as they are.
func shapeEach[T any](qo json.RawMessage, views []T) (any, error) {
	var zero T
	shape, err := protocol.ShapeFor(qo, zero)
	if err != nil || shape == nil {
		return views, err
	}
	rows := make([]any, len(views))
	for i, v := range views {
		if rows[i], err = shape.ApplyTo(v); err != nil {
			return nil, err
		}
	}
	return rows, nil
}

func (s *Service) fetch(ctx context.Context, call *protocol.Call) (*protocol.Result, error) {
	view, err := s.Fetch(ctx, call.Caller, SaleRef(call.Req))
	if err != nil {
		return nil, err
	}
	shaped, err := protocol.ShapeValue(call.Req.QO, view)
	if err != nil {
		return nil, err
	}
	return SaleResult(ShapeOf(call), view.Physkey, shaped), nil
}

type getPriceArgs struct {
	PIDs   pidList `json:"pid" validate:"required,min=1,max=200"`
	Format string  `json:"_format" validate:"omitempty,oneof=kv rows"`
}

// pidList accepts one pid or a list of them.
type pidList []int64

func (p *pidList) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil // as if absent: "required" says so
	}
	var one int64
	if json.Unmarshal(b, &one) == nil {
		*p = pidList{one}
		return nil
	}
	// *int64, so that a null in the list is refused rather than read as
	// pid 0 ("no product with pid 0").
	var many []*int64
	if err := json.Unmarshal(b, &many); err != nil {
		return err
	}
	*p = make(pidList, len(many))
	for i, pid := range many {
		if pid == nil {
			return &json.UnmarshalTypeError{Value: "null", Type: reflect.TypeFor[int64]()}
		}
		(*p)[i] = *pid
	}
	return nil
}

// getPrice prices products for the sale's customer (SPEC §7.3), as kv or
// rows.
func (s *Service) getPrice(ctx context.Context, call *protocol.Call) (*protocol.Result, error) {
	a, err := protocol.ArgsOf[getPriceArgs](call)
	if err != nil {
		return nil, err
	}
	physkey, prices, err := s.Prices(ctx, call.Caller, SaleRef(call.Req), a.PIDs)
	if err != nil {
		return nil, err
	}
	var k json.RawMessage
	if physkey != "" {
		k, _ = json.Marshal(physkey)
	}
	if a.Format == "kv" {
		kv := map[string]protocol.Money{}
		for _, p := range prices {
			kv[strconv.FormatInt(p.PID, 10)] = p.Price
		}
		return &protocol.Result{K: k, Data: map[string]any{"kv": kv}}, nil
	}
	rows := make([]map[string]any, len(prices))
	for i, p := range prices {
		rows[i] = map[string]any{"pid": p.PID, "price": p.Price, "measurement": p.Measurement}
	}
	return &protocol.Result{K: k, Data: protocol.Rows{Rows: rows}}, nil
}

// --- lines, customer, payments ---

type addProductArgs struct {
	PID int64 `json:"pid" validate:"required_without_all=PLU Barcode,omitempty,gt=0"`
	// One way of naming the product: {"pid":1002,"plu":"FW"} must not
	// quietly ring up whichever one wins.
	PLU     string          `json:"plu" validate:"excluded_with=PID Barcode,max=64"`
	Barcode string          `json:"barcode" validate:"excluded_with=PID,max=64"`
	Qty     *int64          `json:"qty" validate:"omitempty,gte=1,lte=1000000"`
	Price   *protocol.Money `json:"price" validate:"omitempty,gte=0,lte=100000000"`
	// LineSource is how the line was entered, one of the codes of SPEC
	// §9.2; none given (or null) is 10, "API call": that is how it
	// reached the lane. A pointer, so that a 0 given is refused as the
	// code it is not rather than read as none.
	LineSource *int64 `json:"linesource" validate:"omitempty,oneof=1 2 3 4 6 10 11 12 13 14"`
}

// lineSourceAPI is linesource 10, "API call" (SPEC §9.2).
const lineSourceAPI = 10

func (s *Service) addProduct(ctx context.Context, call *protocol.Call) (*protocol.Result, error) {
	a, err := protocol.ArgsOf[addProductArgs](call)
	if err != nil {
		return nil, err
	}
	item := Item{PID: a.PID, PLU: a.PLU, Barcode: a.Barcode, Qty: 1, Price: cents(a.Price), LineSource: lineSourceAPI}
	if a.LineSource != nil {
		item.LineSource = *a.LineSource
	}
	if a.Qty != nil {
		item.Qty = *a.Qty
	}
	if err := checkPriceOverride(call.Caller, item.Price); err != nil {
		return nil, err // before the write: a refused override costs no transaction
	}
	return s.change(ctx, call, func(ctx context.Context, tx *lanedb.Tx, c *protocol.Caller, ref string) (*SaleView, error) {
		return s.AddProduct(ctx, tx, c, ref, item)
	})
}

type lineArgs struct {
	// A pointer, so that a missing seqnce "is required" and seqnce 0 is
	// told the bound: lines are numbered from 1.
	Seqnce *int64          `json:"seqnce" validate:"required,gte=1"`
	Qty    *int64          `json:"qty" validate:"omitempty,gte=1,lte=1000000"`
	Price  *protocol.Money `json:"price" validate:"omitempty,gte=0,lte=100000000"`
}

func (s *Service) removeLine(ctx context.Context, call *protocol.Call) (*protocol.Result, error) {
	a, err := protocol.ArgsOf[lineArgs](call)
	if err != nil {
		return nil, err
	}
	return s.change(ctx, call, func(ctx context.Context, tx *lanedb.Tx, c *protocol.Caller, ref string) (*SaleView, error) {
		return s.RemoveLine(ctx, tx, c, ref, *a.Seqnce)
	})
}

func (s *Service) editLine(ctx context.Context, call *protocol.Call) (*protocol.Result, error) {
	a, err := protocol.ArgsOf[lineArgs](call)
	if err != nil {
		return nil, err
	}
	price := cents(a.Price)
	if a.Qty == nil && price == nil {
		return nil, protocol.Errorf(protocol.CodeBadArgument, "v: give qty or price (or both) to change")
	}
	if err := checkPriceOverride(call.Caller, price); err != nil {
		return nil, err
	}
	return s.change(ctx, call, func(ctx context.Context, tx *lanedb.Tx, c *protocol.Caller, ref string) (*SaleView, error) {
		return s.EditLine(ctx, tx, c, ref, *a.Seqnce, a.Qty, price)
	})
}

type customerArgs struct {
	CID         *int64 `json:"cid" validate:"required_without=PhyskeyCust"`
	PhyskeyCust string `json:"physkeycust" validate:"max=64"`
}

// setCustomer: cid 0 (and no physkeycust) takes the customer off.
func (s *Service) setCustomer(ctx context.Context, call *protocol.Call) (*protocol.Result, error) {
	a, err := protocol.ArgsOf[customerArgs](call)
	if err != nil {
		return nil, err
	}
	who := CustomerRef{Physkey: a.PhyskeyCust}
	if who.Physkey == "" {
		who.CID = *a.CID
	}
	return s.change(ctx, call, func(ctx context.Context, tx *lanedb.Tx, c *protocol.Caller, ref string) (*SaleView, error) {
		return s.SetCustomer(ctx, tx, c, ref, who)
	})
}

type paymentArgs struct {
	Type   int64          `json:"type" validate:"required"`
	Amount protocol.Money `json:"amount" validate:"gt=0,lte=10000000000"`
}

func (s *Service) addPayment(ctx context.Context, call *protocol.Call) (*protocol.Result, error) {
	a, err := protocol.ArgsOf[paymentArgs](call)
	if err != nil {
		return nil, err
	}
	return s.change(ctx, call, func(ctx context.Context, tx *lanedb.Tx, c *protocol.Caller, ref string) (*SaleView, error) {
		return s.AddPayment(ctx, tx, c, ref, a.Type, int64(a.Amount))
	})
}

type removePaymentArgs struct {
	// A pointer, so that a missing seq "is required" and seq 0 is told
	// the bound: sequences start at 1.
	Seq *int64 `json:"seq" validate:"required,gte=1"`
}

func (s *Service) removePayment(ctx context.Context, call *protocol.Call) (*protocol.Result, error) {
	a, err := protocol.ArgsOf[removePaymentArgs](call)
	if err != nil {
		return nil, err
	}
	return s.change(ctx, call, func(ctx context.Context, tx *lanedb.Tx, c *protocol.Caller, ref string) (*SaleView, error) {
		return s.RemovePayment(ctx, tx, c, ref, *a.Seq)
	})
}

// --- park, unpark, complete, cancel ---

func (s *Service) park(ctx context.Context, call *protocol.Call) (*protocol.Result, error) {
	if _, err := protocol.ArgsOf[protocol.NoArgs](call); err != nil {
		return nil, err
	}
	return s.change(ctx, call, s.Park)
}

// UnparkArgs are sale_unpark's (and fd1.presell.recall's) v.
type UnparkArgs struct {
	Ticket  int64  `json:"ticket" validate:"gte=0,lte=9999"`
	Barcode string `json:"barcode" validate:"max=64"`
	Word    string `json:"word" validate:"max=64"`
	Force   bool   `json:"force"`
}

func (s *Service) unpark(ctx context.Context, call *protocol.Call) (*protocol.Result, error) {
	a, err := protocol.ArgsOf[UnparkArgs](call)
	if err != nil {
		return nil, err
	}
	shape := ShapeOf(call)
	shape.Claims = true
	ref := SaleRef(call.Req)
	return s.Mutate(ctx, call, shape, func(ctx context.Context, tx *lanedb.Tx) (Changed, error) {
		return ChangedOf(s.Unpark(ctx, tx, call.Caller, ref, a.Force))
	})
}

func (s *Service) complete(ctx context.Context, call *protocol.Call) (*protocol.Result, error) {
	if _, err := protocol.ArgsOf[protocol.NoArgs](call); err != nil {
		return nil, err
	}
	ref := SaleRef(call.Req)
	return s.Mutate(ctx, call, ShapeOf(call), func(ctx context.Context, tx *lanedb.Tx) (Changed, error) {
		return ChangedOf(s.Complete(ctx, tx, call.Caller, ref))
	})
}

type cancelArgs struct {
	Reason string `json:"reason" validate:"max=200,printable"`
}

func (s *Service) cancel(ctx context.Context, call *protocol.Call) (*protocol.Result, error) {
	a, err := protocol.ArgsOf[cancelArgs](call)
	if err != nil {
		return nil, err
	}
	return s.change(ctx, call, func(ctx context.Context, tx *lanedb.Tx, c *protocol.Caller, ref string) (*SaleView, error) {
		return s.Cancel(ctx, tx, c, ref, a.Reason)
	})
}
