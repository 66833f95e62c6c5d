package salesbuilder

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/jmoiron/sqlx"

	"github.com/greenlane-pos/greenlane/lanedb"
	"github.com/greenlane-pos/greenlane/protocol"
)

// maxOpenSales caps the rows of get_sale qk:"all".
const maxOpenSales = 500

// Register adds the SalesBuilder endpoints, each under both name
// generations (SPEC §7.1) and the fd1.sales aliases (SPEC §8.1).
func (s *Service) Register(r *protocol.Router) {
	builders := protocol.Access{Scopes: []protocol.Scope{protocol.ScopePresell, protocol.ScopeCounter}}
	// Taking money and completing are the counter's: a tablet builds and
	// submits, the counter tenders.
	tenders := protocol.Access{Scopes: []protocol.Scope{protocol.ScopeCounter}}
	add := func(name string, aliases []string, h protocol.Handler) {
		r.Handle(&protocol.Endpoint{Name: name, Aliases: aliases, Access: builders, Handler: h, RouteKey: RouteKey})
	}
	addTender := func(name string, aliases []string, h protocol.Handler) {
		r.Handle(&protocol.Endpoint{Name: name, Aliases: aliases, Access: tenders, Handler: h, RouteKey: RouteKey})
	}
	add("fd1.salesbuilder.sale_create", []string{"fd1.salesbuilder.salesbuilder_create", "fd1.sales.create_activesale"}, s.create)
	add("fd1.salesbuilder.get_sale", []string{"fd1.sales.get_activesale_list"}, s.getSale)
	add("fd1.salesbuilder.sale_fetch", nil, s.fetch)
	add("fd1.salesbuilder.sale_get_price", nil, s.getPrice)
	add("fd1.salesbuilder.sale_add_product", []string{"fd1.salesbuilder.salesbuilder_add_product"}, s.addProduct)
	add("fd1.salesbuilder.sale_set_customer", []string{"fd1.salesbuilder.salesbuilder_set_customer"}, s.setCustomer)
	add("fd1.salesbuilder.sale_remove_line", nil, s.removeLine)
	add("fd1.salesbuilder.sale_edit_line", nil, s.editLine)
	addTender("fd1.salesbuilder.sale_add_payment", nil, s.addPayment)
	addTender("fd1.salesbuilder.sale_remove_payment", nil, s.removePayment)
	add("fd1.salesbuilder.sale_park", nil, s.park)
	add("fd1.salesbuilder.sale_unpark", nil, s.unpark)
	addTender("fd1.salesbuilder.salesbuilder_complete", []string{"fd1.salesbuilder.sale_complete"}, s.complete)
	add("fd1.salesbuilder.salesbuilder_cancel", []string{"fd1.salesbuilder.sale_cancel"}, s.cancel)
}

// RouteKey is the sale a request is about, for per-sale ordering on a
// presell socket: k, or for a create the client's chosen physkey. Requests
// that name no sale share the key "" (the caller's top sale).
func RouteKey(req *protocol.Request) string {
	if k := saleKey(req); k != "" {
		return k
	}
	if len(req.V) > 0 && strings.Contains(string(req.V), `"physkey"`) {
		var v struct {
			Physkey string `json:"physkey"`
		}
		if json.Unmarshal(req.V, &v) == nil {
			return v.Physkey
		}
	}
	return ""
}

// --- create ---

type createArgs struct {
	Physkey string `json:"physkey" validate:"omitempty,uuid"`
}

func (s *Service) create(ctx context.Context, call *protocol.Call) (*protocol.Result, error) {
	var args createArgs
	if err := protocol.DecodeV(call.Req.V, &args); err != nil {
		return nil, err
	}
	return s.mutate(ctx, call, func(ctx context.Context, tx *lanedb.Tx) (*changed, error) {
		physkey := strings.ToLower(args.Physkey)
		if physkey != "" {
			existing, err := lanedb.GetSale(ctx, tx, physkey)
			switch {
			case err == nil:
				// A retried create: the sale exists; answer with it.
				if !call.Caller.HasKeyName(existing.CreatedBy) && !call.Caller.HasKeyID(existing.HolderKey) {
					if !call.Caller.SeesLane() { // a tablet learns nothing of another's sale
						return nil, protocol.Errorf(protocol.CodeConflict, "a sale with physkey %s already exists; choose another physkey", physkey)
					}
					return nil, protocol.Errorf(protocol.CodeConflict, "a sale with physkey %s already exists and belongs to %q", physkey, existing.HolderName)
				}
				return loadChanged(ctx, tx, existing)
			case !errors.Is(err, lanedb.ErrNoSale):
				return nil, err
			}
		} else {
			var err error
			if physkey, err = s.ids.physkey(s.now()); err != nil {
				return nil, err
			}
		}
		randomKey, err := s.ids.randomKey()
		if err != nil {
			return nil, err
		}
		sale := &lanedb.Sale{
			Physkey:    physkey,
			RandomKey:  randomKey,
			Phase:      lanedb.PhaseActive,
			StartDT:    s.localNow(),
			CreatedBy:  call.Caller.KeyName,
			HolderKey:  call.Caller.KeyID,
			HolderName: call.Caller.KeyName,
			Presell:    call.Caller.Purpose == protocol.PurposePresell,
			NextSeqnce: 1,
			UpdatedUTC: s.stamp(),
		}
		if s.locID > 0 {
			sale.Location = sql.NullInt64{Int64: s.locID, Valid: true}
		}
		if sale.Presell {
			if err := s.checkOpenPresells(ctx, tx, sale.CreatedBy); err != nil {
				return nil, err
			}
		}
		if err := lanedb.InsertSale(ctx, tx, sale); err != nil {
			return nil, err
		}
		if sale.Presell {
			if err := s.journal(ctx, tx, "created", sale.Physkey, call.Caller.KeyName, nil); err != nil {
				return nil, err
			}
		}
		return withEvent(loadChanged(ctx, tx, sale))(evSaleAdd)
	})
}

// withEvent names the custdisp event of a change: withEvent(c, err)(ev).
func withEvent(c *changed, err error) func(event string) (*changed, error) {
	return func(event string) (*changed, error) {
		if c != nil {
			c.event = event
		}
		return c, err
	}
}

// loadChanged reads the whole sale a mutation changed.
func loadChanged(ctx context.Context, q sqlx.QueryerContext, sale *lanedb.Sale) (*changed, error) {
	view, err := loadView(ctx, q, sale)
	if err != nil {
		return nil, err
	}
	return &changed{physkey: sale.Physkey, view: view}, nil
}

// viewResult reads the whole sale and wraps it for the endpoint called.
func (s *Service) viewResult(ctx context.Context, q sqlx.QueryerContext, call *protocol.Call, sale *lanedb.Sale) (*protocol.Result, error) {
	view, err := loadView(ctx, q, sale)
	if err != nil {
		return nil, err
	}
	return saleResult(call, sale.Physkey, view), nil
}

// --- reads ---

func (s *Service) getSale(ctx context.Context, call *protocol.Call) (*protocol.Result, error) {
	req := call.Req
	all := req.QK.Has("all") || strings.HasSuffix(req.A, "get_activesale_list")
	if all && saleKey(req) == "" {
		sales, err := openSales(ctx, s.db.Read, call.Caller, maxOpenSales)
		if err != nil {
			return nil, err
		}
		now := s.localNow()
		rows := make([]ActiveView, len(sales))
		for i := range sales {
			rows[i] = activeView(&sales[i], now)
		}
		return &protocol.Result{SC: "salesbuilder.active", Data: protocol.Rows{Rows: rows}}, nil
	}
	sale, err := resolve(ctx, s.db.Read, call)
	if err != nil {
		return nil, err
	}
	if err := checkPhase(sale, lanedb.PhaseActive, lanedb.PhaseParked); err != nil {
		return nil, protocol.Errorf(protocol.CodeNotFound, "get_sale shows active sales only: %s (use sale_fetch)", protocol.AsError(err).Message)
	}
	k, _ := json.Marshal(sale.Physkey)
	view := activeView(sale, s.localNow())
	if all {
		return &protocol.Result{SC: "salesbuilder.active", K: k, Data: protocol.Rows{Rows: []ActiveView{view}}}, nil
	}
	return &protocol.Result{SC: "salesbuilder.active", K: k, Data: view}, nil
}

func (s *Service) fetch(ctx context.Context, call *protocol.Call) (*protocol.Result, error) {
	sale, err := resolve(ctx, s.db.Read, call)
	if err != nil {
		return nil, err
	}
	return s.viewResult(ctx, s.db.Read, call, sale)
}

type getPriceArgs struct {
	PIDs   pidList `json:"pid" validate:"required,min=1,max=200"`
	Format string  `json:"_format" validate:"omitempty,oneof=kv rows"`
}

// pidList accepts one pid or a list of them.
type pidList []int64

func (p *pidList) UnmarshalJSON(b []byte) error {
	var one int64
	if json.Unmarshal(b, &one) == nil {
		*p = pidList{one}
		return nil
	}
	var many []int64
	if err := json.Unmarshal(b, &many); err != nil {
		return err
	}
	*p = many
	return nil
}

// getPrice prices products for the sale's customer (SPEC §7.3). Without a
// sale (no k and no top sale) it answers list prices.
func (s *Service) getPrice(ctx context.Context, call *protocol.Call) (*protocol.Result, error) {
	var args getPriceArgs
	if err := protocol.DecodeV(call.Req.V, &args); err != nil {
		return nil, err
	}
	var customer *lanedb.SaleCustomer
	var k json.RawMessage
	sale, err := resolve(ctx, s.db.Read, call)
	var pe *protocol.Error
	switch {
	case err == nil:
		k, _ = json.Marshal(sale.Physkey)
		if sale.CID.Valid {
			if customer, err = lanedb.CustomerByCID(ctx, s.db.Read, sale.CID.Int64); err != nil && !errors.Is(err, lanedb.ErrNoCustomer) {
				return nil, err
			}
		}
	case errors.As(err, &pe) && pe.Code == protocol.CodeNotFound && saleKey(call.Req) == "":
	default:
		return nil, err
	}
	products, err := lanedb.ProductsByPID(ctx, s.db.Read, args.PIDs)
	if err != nil {
		return nil, err
	}
	kv := map[string]protocol.Money{}
	rows := make([]map[string]any, 0, len(args.PIDs))
	for _, pid := range args.PIDs {
		p, ok := products[pid]
		if !ok {
			return nil, protocol.Errorf(protocol.CodeUnknownProduct, "no product with pid %d", pid)
		}
		price := protocol.Money(unitPriceFor(p, customer))
		kv[strconv.FormatInt(pid, 10)] = price
		rows = append(rows, map[string]any{"pid": pid, "price": price, "measurement": p.Measurement})
	}
	if args.Format == "kv" {
		return &protocol.Result{K: k, Data: map[string]any{"kv": kv}}, nil
	}
	return &protocol.Result{K: k, Data: protocol.Rows{Rows: rows}}, nil
}

// --- lines ---

type addProductArgs struct {
	PID        int64           `json:"pid" validate:"required_without_all=PLU Barcode,omitempty,gt=0"`
	PLU        string          `json:"plu" validate:"max=64"`
	Barcode    string          `json:"barcode" validate:"max=64"`
	Qty        *int64          `json:"qty" validate:"omitempty,gte=1,lte=1000000"`
	Price      *protocol.Money `json:"price" validate:"omitempty,gte=0,lte=100000000"`
	LineSource int64           `json:"linesource" validate:"gte=0,lte=100"`
}

func (s *Service) addProduct(ctx context.Context, call *protocol.Call) (*protocol.Result, error) {
	var args addProductArgs
	if err := protocol.DecodeV(call.Req.V, &args); err != nil {
		return nil, err
	}
	if err := s.checkPriceOverride(call, args.Price); err != nil {
		return nil, err
	}
	qty := int64(1)
	if args.Qty != nil {
		qty = *args.Qty
	}
	return s.mutate(ctx, call, func(ctx context.Context, tx *lanedb.Tx) (*changed, error) {
		sale, err := s.forChange(ctx, tx, call)
		if err != nil {
			return nil, err
		}
		if err := s.checkLineCount(ctx, tx, sale); err != nil {
			return nil, err
		}
		product, err := findProduct(ctx, tx, args)
		if err != nil {
			return nil, err
		}
		customer, err := saleCustomer(ctx, tx, sale)
		if err != nil {
			return nil, err
		}
		line := &lanedb.Line{
			SalePhyskey: sale.Physkey, Seqnce: sale.NextSeqnce, PID: product.PID,
			Description: product.Description, PLU: product.PLU.String, Qty: qty,
			UnitPriceCents: product.PriceCents, LineSource: args.LineSource, Measurement: product.Measurement,
		}
		if args.Price != nil {
			line.UnitPriceCents, line.PriceCause = int64(*args.Price), causeUserPrice
		}
		PriceLine(line, customer)
		if err := lanedb.InsertLine(ctx, tx, line); err != nil {
			return nil, err
		}
		sale.NextSeqnce++
		return s.finishLines(ctx, tx, call, sale, evLinesAdd)
	})
}

// checkPriceOverride: only a counter may set a price by hand.
func (s *Service) checkPriceOverride(call *protocol.Call, p *protocol.Money) error {
	if p != nil && !call.Caller.ActFor(protocol.ScopeCounter) {
		return protocol.Errorf(protocol.CodeForbidden, "v.price overrides the price and needs a key with scope counter")
	}
	return nil
}

func findProduct(ctx context.Context, tx *lanedb.Tx, args addProductArgs) (*lanedb.SaleProduct, error) {
	var p *lanedb.SaleProduct
	var err error
	var what string
	switch {
	case args.PID != 0:
		what = fmt.Sprintf("pid %d", args.PID)
		p, err = lanedb.ProductByPID(ctx, tx, args.PID)
	case args.PLU != "":
		what = fmt.Sprintf("PLU %q", clip(args.PLU))
		p, err = lanedb.ProductByPLU(ctx, tx, args.PLU)
	default:
		what = fmt.Sprintf("barcode %q", clip(args.Barcode))
		p, err = lanedb.ProductByBarcode(ctx, tx, args.Barcode)
	}
	if errors.Is(err, lanedb.ErrNoProduct) {
		return nil, protocol.Errorf(protocol.CodeUnknownProduct, "no product with %s", what)
	}
	if err != nil {
		return nil, err
	}
	if !p.Active {
		return nil, protocol.Errorf(protocol.CodeUnknownProduct, "product %d (%s) is not for sale", p.PID, p.Description)
	}
	return p, nil
}

func saleCustomer(ctx context.Context, q sqlx.QueryerContext, sale *lanedb.Sale) (*lanedb.SaleCustomer, error) {
	if !sale.CID.Valid {
		return nil, nil
	}
	c, err := lanedb.CustomerByCID(ctx, q, sale.CID.Int64)
	if errors.Is(err, lanedb.ErrNoCustomer) {
		return nil, nil
	}
	return c, err
}

// finishLines recomputes the sale total from its lines, saves the sale and
// answers with the whole sale.
func (s *Service) finishLines(ctx context.Context, tx *lanedb.Tx, call *protocol.Call, sale *lanedb.Sale, event string) (*changed, error) {
	lines, err := lanedb.SaleLines(ctx, tx, sale.Physkey)
	if err != nil {
		return nil, err
	}
	var total int64
	for _, l := range lines {
		total += l.TotalPriceCents
	}
	if total > maxSaleTotal {
		return nil, protocol.Errorf(protocol.CodeBadArgument, "the sale total would be %s, over the lane's limit of %s",
			protocol.Money(total), protocol.Money(maxSaleTotal))
	}
	payments, err := lanedb.SalePayments(ctx, tx, sale.Physkey)
	if err != nil {
		return nil, err
	}
	// A change that lowers the total may not leave less to pay than was
	// paid: that money would belong to no line. (Cash tendered above the
	// total is change, and adding lines to such a sale is fine.)
	var paid int64
	for _, p := range payments {
		paid += p.AmountCents
	}
	if total < sale.SaleTotalCents && total < paid {
		return nil, hasPaymentsError(paid)
	}
	sale.SaleTotalCents = total
	if err := s.save(ctx, tx, call.Caller, sale); err != nil {
		return nil, err
	}
	customer, err := saleCustomer(ctx, tx, sale)
	if err != nil {
		return nil, err
	}
	return &changed{physkey: sale.Physkey, view: buildView(sale, lines, payments, customer), event: event}, nil
}

type lineArgs struct {
	Seqnce int64           `json:"seqnce" validate:"required,gt=0"`
	Qty    *int64          `json:"qty" validate:"omitempty,gte=1,lte=1000000"`
	Price  *protocol.Money `json:"price" validate:"omitempty,gte=0,lte=100000000"`
}

// findLine returns the line with seqnce, or not_found.
func findLine(lines []lanedb.Line, sale *lanedb.Sale, seqnce int64) (*lanedb.Line, error) {
	for i := range lines {
		if lines[i].Seqnce == seqnce {
			return &lines[i], nil
		}
	}
	return nil, protocol.Errorf(protocol.CodeNotFound, "sale %s has no line with seqnce %d", sale.Physkey, seqnce)
}

func (s *Service) removeLine(ctx context.Context, call *protocol.Call) (*protocol.Result, error) {
	var args lineArgs
	if err := protocol.DecodeV(call.Req.V, &args); err != nil {
		return nil, err
	}
	return s.mutate(ctx, call, func(ctx context.Context, tx *lanedb.Tx) (*changed, error) {
		sale, err := s.forChange(ctx, tx, call)
		if err != nil {
			return nil, err
		}
		lines, err := lanedb.SaleLines(ctx, tx, sale.Physkey)
		if err != nil {
			return nil, err
		}
		if _, err := findLine(lines, sale, args.Seqnce); err != nil {
			return nil, err
		}
		if err := lanedb.DeleteLine(ctx, tx, sale.Physkey, args.Seqnce); err != nil {
			return nil, err
		}
		return s.finishLines(ctx, tx, call, sale, evLinesDelete)
	})
}

func (s *Service) editLine(ctx context.Context, call *protocol.Call) (*protocol.Result, error) {
	var args lineArgs
	if err := protocol.DecodeV(call.Req.V, &args); err != nil {
		return nil, err
	}
	if args.Qty == nil && args.Price == nil {
		return nil, protocol.Errorf(protocol.CodeBadArgument, "v: give qty or price (or both) to change")
	}
	if err := s.checkPriceOverride(call, args.Price); err != nil {
		return nil, err
	}
	return s.mutate(ctx, call, func(ctx context.Context, tx *lanedb.Tx) (*changed, error) {
		sale, err := s.forChange(ctx, tx, call)
		if err != nil {
			return nil, err
		}
		lines, err := lanedb.SaleLines(ctx, tx, sale.Physkey)
		if err != nil {
			return nil, err
		}
		line, err := findLine(lines, sale, args.Seqnce)
		if err != nil {
			return nil, err
		}
		if args.Qty != nil {
			line.Qty = *args.Qty
		}
		if args.Price != nil {
			line.UnitPriceCents, line.PriceCause = int64(*args.Price), causeUserPrice
		}
		customer, err := saleCustomer(ctx, tx, sale)
		if err != nil {
			return nil, err
		}
		PriceLine(line, customer)
		if err := lanedb.UpdateLine(ctx, tx, line); err != nil {
			return nil, err
		}
		return s.finishLines(ctx, tx, call, sale, evLinesEdit)
	})
}

// --- customer ---

type customerArgs struct {
	CID         *int64 `json:"cid" validate:"required_without=PhyskeyCust"`
	PhyskeyCust string `json:"physkeycust" validate:"max=64"`
}

// setCustomer puts a customer on the sale (cid 0 takes it off) and
// reprices every line not priced by hand.
func (s *Service) setCustomer(ctx context.Context, call *protocol.Call) (*protocol.Result, error) {
	var args customerArgs
	if err := protocol.DecodeV(call.Req.V, &args); err != nil {
		return nil, err
	}
	removing := args.PhyskeyCust == "" && *args.CID == 0
	return s.mutate(ctx, call, func(ctx context.Context, tx *lanedb.Tx) (*changed, error) {
		sale, err := s.forChange(ctx, tx, call)
		if err != nil {
			return nil, err
		}
		var customer *lanedb.SaleCustomer
		if !removing {
			if args.PhyskeyCust != "" {
				customer, err = lanedb.CustomerByPhyskey(ctx, tx, args.PhyskeyCust)
			} else {
				customer, err = lanedb.CustomerByCID(ctx, tx, *args.CID)
			}
			if errors.Is(err, lanedb.ErrNoCustomer) {
				return nil, protocol.Errorf(protocol.CodeNotFound, "no customer with %s", customerWhat(args))
			}
			if err != nil {
				return nil, err
			}
			sale.CID = sql.NullInt64{Int64: customer.CID, Valid: true}
		} else {
			sale.CID = sql.NullInt64{}
		}
		lines, err := lanedb.SaleLines(ctx, tx, sale.Physkey)
		if err != nil {
			return nil, err
		}
		for i := range lines {
			before := lines[i]
			PriceLine(&lines[i], customer)
			if lines[i] != before {
				if err := lanedb.UpdateLine(ctx, tx, &lines[i]); err != nil {
					return nil, err
				}
			}
		}
		return s.finishLines(ctx, tx, call, sale, evSaleEdit)
	})
}

func customerWhat(a customerArgs) string {
	if a.PhyskeyCust != "" {
		return fmt.Sprintf("physkey %q", clip(a.PhyskeyCust))
	}
	return fmt.Sprintf("cid %d", *a.CID)
}

// --- payments ---

type paymentArgs struct {
	Type   int64          `json:"type" validate:"required"`
	Amount protocol.Money `json:"amount" validate:"gt=0,lte=10000000000"`
}

func (s *Service) addPayment(ctx context.Context, call *protocol.Call) (*protocol.Result, error) {
	var args paymentArgs
	if err := protocol.DecodeV(call.Req.V, &args); err != nil {
		return nil, err
	}
	return s.mutate(ctx, call, func(ctx context.Context, tx *lanedb.Tx) (*changed, error) {
		sale, err := s.forChange(ctx, tx, call)
		if err != nil {
			return nil, err
		}
		pt, err := lanedb.PaymentTypeByGlobal(ctx, tx, args.Type)
		if errors.Is(err, lanedb.ErrNoPaymentType) {
			return nil, s.unknownPaymentType(ctx, tx, args.Type)
		}
		if err != nil {
			return nil, err
		}
		paid, err := lanedb.PaidCents(ctx, tx, sale.Physkey)
		if err != nil {
			return nil, err
		}
		if err := checkTender(pt, int64(args.Amount), sale.SaleTotalCents, paid); err != nil {
			return nil, err
		}
		p := &lanedb.Payment{SalePhyskey: sale.Physkey, Type: pt.Code, AmountCents: int64(args.Amount), DT: s.localNow()}
		if err := lanedb.InsertPayment(ctx, tx, p); err != nil {
			return nil, err
		}
		return s.finishLines(ctx, tx, call, sale, evPaymentsAdd)
	})
}

func (s *Service) unknownPaymentType(ctx context.Context, q sqlx.QueryerContext, code int64) error {
	types, err := lanedb.PaymentTypes(ctx, q)
	if err != nil {
		return err
	}
	known := make([]string, len(types))
	for i, t := range types {
		known[i] = fmt.Sprintf("%d %s", t.GlobalCode, t.TypeStr)
	}
	return protocol.Errorf(protocol.CodeBadArgument, "v.type: this lane has no payment type with global code %d (it takes: %s)", code, strings.Join(known, ", "))
}

// --- park, unpark ---

// park puts an active sale in the background (phase 5). A presell being
// built is thereby submitted: it gets a ticket the counter recalls it by.
// A claimed presell parked by its holder goes back to the counter's queue.
func (s *Service) park(ctx context.Context, call *protocol.Call) (*protocol.Result, error) {
	return s.mutate(ctx, call, func(ctx context.Context, tx *lanedb.Tx) (*changed, error) {
		sale, err := s.forChange(ctx, tx, call)
		if err != nil {
			return nil, err
		}
		if sale.ClaimState.Session.Valid {
			if sale, err = s.release(ctx, tx, call.Caller, sale); err != nil {
				return nil, err
			}
			return withEvent(loadChanged(ctx, tx, sale))(evSaleStatus)
		}
		if sale.Presell {
			if err := s.submit(ctx, tx, call.Caller, sale); err != nil {
				return nil, err
			}
		}
		sale.Phase = lanedb.PhaseParked
		if err := s.save(ctx, tx, call.Caller, sale); err != nil {
			return nil, err
		}
		return withEvent(loadChanged(ctx, tx, sale))(evSaleStatus)
	})
}

// submit gives a presell its ticket (kept if it was submitted before).
func (s *Service) submit(ctx context.Context, tx *lanedb.Tx, c *protocol.Caller, sale *lanedb.Sale) error {
	lines, err := lanedb.LineCount(ctx, tx, sale.Physkey)
	if err != nil {
		return err
	}
	if lines == 0 {
		return protocol.Errorf(protocol.CodeConflict, "presell %s has no lines; add a product before submitting it", sale.Physkey)
	}
	// To the microsecond (like updated_utc), so the counter's list is newest
	// first even for presells submitted within one second.
	sale.SubmittedUTC = sql.NullString{String: s.stamp(), Valid: true}
	if !sale.Ticket.Valid {
		ticket, err := lanedb.AllocateTicket(ctx, tx)
		if errors.Is(err, lanedb.ErrNoFreeTicket) {
			return protocol.Errorf(protocol.CodeUnavailable, "all %d presell tickets are taken by open presells; complete or cancel some", lanedb.MaxTicket)
		}
		if err != nil {
			return err
		}
		sale.Ticket = sql.NullInt64{Int64: ticket, Valid: true}
		sale.TicketWord = sql.NullString{String: numberWord(ticket), Valid: true}
		sale.TicketBarcode = sql.NullString{String: ticketBarcode(s.laneNo, ticket, sale.RandomKey), Valid: true}
	}
	return s.journal(ctx, tx, "submitted", sale.Physkey, c.KeyName, map[string]any{
		"ticket": sale.Ticket.Int64, "total": protocol.Money(sale.SaleTotalCents), "lines": lines,
	})
}

// unpark brings a parked sale back (phase 0) for the caller. A presell is
// claimed (see claim): by a counter, or by the tablet that made it. Any
// other parked sale goes to its own holder, or to a counter.
func (s *Service) unpark(ctx context.Context, call *protocol.Call) (*protocol.Result, error) {
	var args recallArgs
	if err := protocol.DecodeV(call.Req.V, &args); err != nil {
		return nil, err
	}
	return s.mutate(ctx, call, func(ctx context.Context, tx *lanedb.Tx) (*changed, error) {
		sale, err := resolveParked(ctx, tx, call)
		if err != nil {
			return nil, err
		}
		c := call.Caller
		if err := checkPaidFor(ctx, tx, sale, c); err != nil {
			return nil, err
		}
		if sale.Presell {
			if !c.HasKeyName(sale.CreatedBy) && !c.ActFor(protocol.ScopeCounter) {
				if sale.ClaimState.Held(s.now()) {
					return nil, claimedError(sale)
				}
				return nil, protocol.Errorf(protocol.CodeClaimed, "presell %s belongs to %q; only it or a counter may take it", sale.Physkey, sale.CreatedBy)
			}
			if sale, err = s.claim(ctx, tx, c, sale, args.Force); err != nil {
				return nil, err
			}
			return withEvent(loadChanged(ctx, tx, sale))(evSaleStatus)
		}
		if err := checkPhase(sale, lanedb.PhaseParked); err != nil {
			return nil, err
		}
		if !c.HasKeyID(sale.HolderKey) && !c.ActFor(protocol.ScopeCounter) {
			return nil, s.checkWriter(sale, c)
		}
		sale.Phase = lanedb.PhaseActive
		sale.HolderKey, sale.HolderName = c.KeyID, c.KeyName
		if err := s.save(ctx, tx, c, sale); err != nil {
			return nil, err
		}
		return withEvent(loadChanged(ctx, tx, sale))(evSaleStatus)
	})
}

// resolveParked is resolve, except that without k it takes the caller's
// most recently parked sale (the top sale is by definition not parked).
func resolveParked(ctx context.Context, tx *lanedb.Tx, call *protocol.Call) (*lanedb.Sale, error) {
	if saleKey(call.Req) != "" {
		return resolve(ctx, tx, call)
	}
	sales, err := openSales(ctx, tx, call.Caller, maxOpenSales)
	if err != nil {
		return nil, err
	}
	for i := range sales {
		if sales[i].Phase == lanedb.PhaseParked {
			return &sales[i], nil
		}
	}
	return nil, protocol.Errorf(protocol.CodeNotFound, "key %q has no parked sale; name one in k", call.Caller.KeyName)
}

// --- complete, cancel ---

func (s *Service) complete(ctx context.Context, call *protocol.Call) (*protocol.Result, error) {
	return s.mutate(ctx, call, func(ctx context.Context, tx *lanedb.Tx) (*changed, error) {
		sale, err := s.forChange(ctx, tx, call)
		if err != nil {
			return nil, err
		}
		lines, err := lanedb.LineCount(ctx, tx, sale.Physkey)
		if err != nil {
			return nil, err
		}
		if lines == 0 {
			return nil, protocol.Errorf(protocol.CodeConflict, "sale %s has no lines to complete; cancel it instead", sale.Physkey)
		}
		paid, err := lanedb.PaidCents(ctx, tx, sale.Physkey)
		if err != nil {
			return nil, err
		}
		if paid < sale.SaleTotalCents {
			return nil, protocol.Errorf(protocol.CodeUnderpaid, "sale %s totals %s but %s is paid; add %s more",
				sale.Physkey, protocol.Money(sale.SaleTotalCents), protocol.Money(paid), protocol.Money(sale.SaleTotalCents-paid))
		}
		sid, err := lanedb.NextSID(ctx, tx)
		if err != nil {
			return nil, err
		}
		now := s.now()
		sale.SID = sql.NullInt64{Int64: sid, Valid: true}
		sale.Phase = lanedb.PhaseCompleted
		sale.CompletedDT = sql.NullString{String: now.In(s.loc).Format(lanedb.DateTime), Valid: true}
		sale.CompletedDTUTC = sql.NullString{String: now.UTC().Format(lanedb.DateTime), Valid: true}
		if err := s.closeSale(ctx, tx, call.Caller, sale, "completed", map[string]any{"sid": sid, "ticket": sale.Ticket.Int64}); err != nil {
			return nil, err
		}
		view, err := loadView(ctx, tx, sale)
		if err != nil {
			return nil, err
		}
		return &changed{physkey: sale.Physkey, view: completedView{SaleView: view, Change: protocol.Money(paid - sale.SaleTotalCents)}, event: evSaleStatus}, nil
	})
}

// completedView adds the change due to a completed sale.
type completedView struct {
	*SaleView
	Change protocol.Money `json:"change"`
}

// closeSale writes a sale that is leaving the open phases (completed or
// void): its claim ends and, for a presell, the journal says so. The
// ticket is free from here on (tickets are unique among open presells).
func (s *Service) closeSale(ctx context.Context, tx *lanedb.Tx, c *protocol.Caller, sale *lanedb.Sale, event string, detail map[string]any) error {
	if err := s.save(ctx, tx, c, sale); err != nil {
		return err
	}
	if sale.ClaimState.Session.Valid {
		if err := lanedb.ClearClaim(ctx, tx, sale.Physkey); err != nil {
			return err
		}
	}
	s.claims.Forget(tx, sale.Physkey)
	if !sale.Presell {
		return nil
	}
	return s.journal(ctx, tx, event, sale.Physkey, c.KeyName, detail)
}

type cancelArgs struct {
	Reason string `json:"reason" validate:"max=200"`
}

// cancel voids an active or parked sale (phase 10000), keeping it for
// audit with who and when. Its holder may cancel it, and a counter may
// cancel any that no other device holds a live claim on.
func (s *Service) cancel(ctx context.Context, call *protocol.Call) (*protocol.Result, error) {
	var args cancelArgs
	if err := protocol.DecodeV(call.Req.V, &args); err != nil {
		return nil, err
	}
	return s.mutate(ctx, call, func(ctx context.Context, tx *lanedb.Tx) (*changed, error) {
		sale, err := resolve(ctx, tx, call)
		if err != nil {
			return nil, err
		}
		if err := checkPhase(sale, lanedb.PhaseActive, lanedb.PhaseParked); err != nil {
			return nil, err
		}
		if err := s.checkCanceller(sale, call.Caller); err != nil {
			return nil, err
		}
		if err := checkPaidFor(ctx, tx, sale, call.Caller); err != nil {
			return nil, err
		}
		if err := s.void(ctx, tx, call.Caller, sale, call.Caller.KeyName, args.Reason, "voided"); err != nil {
			return nil, err
		}
		return withEvent(loadChanged(ctx, tx, sale))(evSaleStatus)
	})
}

func (s *Service) checkCanceller(sale *lanedb.Sale, c *protocol.Caller) error {
	claim := sale.ClaimState
	if claim.Held(s.now()) && claim.Session.String != c.Session {
		return claimedError(sale)
	}
	if claim.Session.Valid && claim.Session.String == c.Session {
		return s.checkWriter(sale, c)
	}
	// The tablet that made a presell may withdraw it while no counter holds it.
	if c.HasKeyID(sale.HolderKey) || (sale.Presell && c.HasKeyName(sale.CreatedBy)) || c.ActFor(protocol.ScopeCounter) {
		return nil
	}
	return protocol.Errorf(protocol.CodeClaimed, "sale %s is held by %q, not by this key", sale.Physkey, sale.HolderName)
}

// void sets phase 10000 with who, when and why.
// A sale holding a payment is never voided, by anyone: the money would
// be orphaned.
func (s *Service) void(ctx context.Context, tx *lanedb.Tx, c *protocol.Caller, sale *lanedb.Sale, by, reason, event string) error {
	if err := refuseIfPaid(ctx, tx, sale); err != nil {
		return err
	}
	sale.Phase = lanedb.PhaseVoid
	sale.VoidedUTC = sql.NullString{String: s.utcNow(), Valid: true}
	sale.VoidedBy = sql.NullString{String: by, Valid: true}
	detail := map[string]any{"ticket": sale.Ticket.Int64}
	if reason != "" {
		detail["reason"] = reason
	}
	return s.closeSale(ctx, tx, c, sale, event, detail)
}
