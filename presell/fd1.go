package presell

import (
	"context"
	"time"

	"github.com/greenlane-pos/greenlane/lanedb"
	"github.com/greenlane-pos/greenlane/protocol"
	"github.com/greenlane-pos/greenlane/salesbuilder"
)

// The FD1 adapter of the presell workflow: the fd1.presell endpoints, the
// counter's (a tablet may list its own presells). Every reply wraps its
// answer in data.rows.

// Register adds the fd1.presell endpoints.
func (w *Workflow) Register(r *protocol.Router) {
	counter := protocol.Access{Scopes: []protocol.Scope{protocol.ScopeCounter}}
	add := func(name string, h protocol.Handler) {
		// Each claims or changes a presell: an unknown v field is refused
		// (StrictV) rather than ignored.
		r.Handle(&protocol.Endpoint{Name: name, Access: counter, Handler: h, RouteKey: salesbuilder.RouteKey, StrictV: true})
	}
	// The list is the one presell endpoint that reads q and qk. A presell
	// key may read it too, its own presells only (see filter).
	lister := protocol.Access{Scopes: []protocol.Scope{protocol.ScopeCounter, protocol.ScopePresell}}
	r.Handle(&protocol.Endpoint{Name: "fd1.presell.get_presells", Access: lister, Handler: w.getPresells,
		RouteKey: salesbuilder.RouteKey, Filters: true, Keywords: []string{"all", "mine"}})
	add("fd1.presell.recall", w.recall)
	add("fd1.presell.heartbeat", w.heartbeat)
	add("fd1.presell.release", w.release)
	add("fd1.presell.accept_prices", w.acceptPrices)
}

// rows is how every fd1.presell change answers.
var rows = salesbuilder.Shape{Rows: true}

// filters are get_presells' q fields: ticket, tablet (key name), customer
// (part of the name, any case) and age in seconds since submitted
// (KindSeconds: bounded, because it becomes a time.Duration).
var filters = protocol.Fields{
	"ticket":   protocol.KindInt,
	"tablet":   protocol.KindString,
	"customer": protocol.KindString,
	"age":      protocol.KindSeconds,
}

type listArgs struct {
	Limit int `json:"limit" validate:"gte=0,lte=500"`
	// Paid asks for what each presell has been paid (a seek into its
	// payments per row), so that a counter sees which released presells
	// already hold money.
	Paid bool `json:"paid"`
	// Oldest lists the longest-waiting first, so that a cut list (more
	// than limit open) leaves out the newest, not the customers who have
	// waited longest: the counter's queue order.
	Oldest bool `json:"oldest"`
}

func (w *Workflow) getPresells(ctx context.Context, call *protocol.Call) (*protocol.Result, error) {
	a, err := protocol.ArgsOf[listArgs](call)
	if err != nil {
		return nil, err
	}
	f, err := w.filter(call)
	if err != nil {
		return nil, err
	}
	f.Limit, f.Paid, f.Oldest = MaxRows, a.Paid, a.Oldest
	if a.Limit > 0 {
		f.Limit = a.Limit
	}
	out, more, err := w.List(ctx, f)
	if err != nil {
		return nil, err
	}
	return &protocol.Result{SC: "presell.list", Data: protocol.Rows{Rows: out, More: more}}, nil
}

// filter turns q and qk into a lane DB filter.
func (w *Workflow) filter(call *protocol.Call) (lanedb.PresellFilter, error) {
	var f lanedb.PresellFilter
	conds, err := call.Req.Filter(filters)
	if err != nil {
		return f, err
	}
	for _, c := range conds {
		switch c.Field {
		case "customer":
			if c.Op != protocol.OpEq {
				return f, protocol.Errorf(protocol.CodeBadFilter, "q.customer matches part of the name; use it without an operator")
			}
			f.Customer = c.Value.(string)
		case "age":
			// age >= N seconds is submitted <= now-N: the comparison flips.
			at := w.sales.Now().Add(-time.Duration(c.Value.(int64)) * time.Second).UTC().Format(lanedb.StampLayout)
			f.Conds = append(f.Conds, lanedb.Cond{Column: "submitted_utc", Op: flip(c.Op), Value: at})
		default:
			f.Conds = append(f.Conds, lanedb.Cond{Column: c.Field, Op: string(c.Op), Value: c.Value})
		}
	}
	// A tablet sees the presells it submitted, wherever they are now (held
	// by a counter, or released back to the queue): with only the sales it
	// holds, an order taken over at the counter vanished from its list,
	// and staff rang it up again. Other tablets' presells are not its
	// business.
	if !call.Caller.ActFor(protocol.ScopeCounter) {
		f.Conds = append(f.Conds, lanedb.Cond{Column: "tablet", Op: "=", Value: call.Caller.KeyName})
	}
	switch {
	case call.Req.QK.Has("mine"):
		f.ClaimKey, f.Now = call.Caller.KeyID, w.sales.Now()
	case len(call.Req.QK) > 0 && !call.Req.QK.Has("all"):
		return f, protocol.Errorf(protocol.CodeBadArgument, `qk: get_presells takes "all" (the default) or "mine"`)
	}
	return f, nil
}

func flip(op protocol.Op) string {
	switch op {
	case protocol.OpLt:
		return ">"
	case protocol.OpLe:
		return ">="
	case protocol.OpGt:
		return "<"
	case protocol.OpGe:
		return "<="
	}
	return string(op)
}

// recall finds an open presell by ticket, barcode, word or k and claims it
// for this socket.
func (w *Workflow) recall(ctx context.Context, call *protocol.Call) (*protocol.Result, error) {
	a, err := protocol.ArgsOf[salesbuilder.UnparkArgs](call)
	if err != nil {
		return nil, err
	}
	ref := Ref{Ticket: a.Ticket, Barcode: a.Barcode, Word: a.Word, Physkey: salesbuilder.SaleRef(call.Req)}
	claims := rows
	claims.Claims = true
	return w.sales.Mutate(ctx, call, claims, func(ctx context.Context, tx *lanedb.Tx) (salesbuilder.Changed, error) {
		return salesbuilder.ChangedOf(w.Recall(ctx, tx, call.Caller, ref, a.Force))
	})
}

func (w *Workflow) heartbeat(ctx context.Context, call *protocol.Call) (*protocol.Result, error) {
	if _, err := protocol.ArgsOf[protocol.NoArgs](call); err != nil {
		return nil, err
	}
	ref := salesbuilder.SaleRef(call.Req)
	return w.sales.Mutate(ctx, call, rows, func(ctx context.Context, tx *lanedb.Tx) (salesbuilder.Changed, error) {
		return salesbuilder.ChangedOf(w.Heartbeat(ctx, tx, call.Caller, ref))
	})
}

func (w *Workflow) release(ctx context.Context, call *protocol.Call) (*protocol.Result, error) {
	if _, err := protocol.ArgsOf[protocol.NoArgs](call); err != nil {
		return nil, err
	}
	ref := salesbuilder.SaleRef(call.Req)
	return w.sales.Mutate(ctx, call, rows, func(ctx context.Context, tx *lanedb.Tx) (salesbuilder.Changed, error) {
		return salesbuilder.ChangedOf(w.ReleaseSale(ctx, tx, call.Caller, ref))
	})
}

func (w *Workflow) acceptPrices(ctx context.Context, call *protocol.Call) (*protocol.Result, error) {
	if _, err := protocol.ArgsOf[protocol.NoArgs](call); err != nil {
		return nil, err
	}
	ref := salesbuilder.SaleRef(call.Req)
	return w.sales.Mutate(ctx, call, rows, func(ctx context.Context, tx *lanedb.Tx) (salesbuilder.Changed, error) {
		return salesbuilder.ChangedOf(w.AcceptPrices(ctx, tx, call.Caller, ref))
	})
}
