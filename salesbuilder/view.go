package salesbuilder

import (
	"context"
	"errors"

	"github.com/jmoiron/sqlx"

	"github.com/greenlane-pos/greenlane/lanedb"
	"github.com/greenlane-pos/greenlane/protocol"
)

// SaleView is the whole sale as replies and displays show it: the Sale
// resource (SPEC §9.1) with its lines (§9.2), payments (§9.3) and customer.
type SaleView struct {
	Physkey       string         `json:"physkey"`
	RandomKey     string         `json:"random_key"`
	SID           *int64         `json:"sid"`
	Phase         int            `json:"phase"`
	StartDT       string         `json:"startdt"`
	CompletedDT   *string        `json:"completeddt"`
	SaleTotal     protocol.Money `json:"saletotal"`
	Paid          protocol.Money `json:"paid"`
	Balance       protocol.Money `json:"balance"` // still to pay (negative: change due)
	CID           *int64         `json:"cid"`
	PhyskeyCust   *string        `json:"physkeycust"`
	Customer      *CustomerView  `json:"customer"`
	Location      *int64         `json:"location"`
	RandomNo      int64          `json:"physkey_random_no"`
	RandomNoWord  string         `json:"physkey_random_no_word"`
	Presell       int            `json:"presell"`
	Tablet        string         `json:"tablet,omitempty"`
	Ticket        *int64         `json:"ticket,omitempty"`
	TicketWord    *string        `json:"ticket_word,omitempty"`
	TicketBarcode *string        `json:"ticket_barcode,omitempty"`
	Holder        string         `json:"holder"`
	Lines         []LineView     `json:"lines"`
	Payments      []PaymentView  `json:"payments"`
	Version       int64          `json:"version"`
}

// CustomerView is the customer on a sale.
type CustomerView struct {
	CID      int64          `json:"cid"`
	Physkey  string         `json:"physkey"`
	Name     string         `json:"name"`
	Discount protocol.Money `json:"discount"` // percent
}

// LineView is one sale line. price is the line total the customer pays.
type LineView struct {
	Seqnce           int64           `json:"seqnce"`
	PID              int64           `json:"pid"`
	Qty              int64           `json:"qty"`
	Measurement      int64           `json:"measurement"`
	Price            protocol.Money  `json:"price"`
	TotalPrice       protocol.Money  `json:"totalprice"`
	UnitPrice        protocol.Money  `json:"unitprice"`
	PrediscountPrice *protocol.Money `json:"prediscountprice,omitempty"`
	PriceCause       int64           `json:"pricecause"`
	LineSource       int64           `json:"linesource"`
	Product          ProductRef      `json:"product"`
}

// ProductRef names a line's product (custdisp shape, SPEC §6.2).
type ProductRef struct {
	Description string `json:"description"`
	SKU         string `json:"sku"`
}

// PaymentView is one payment: type is the global payment code.
type PaymentView struct {
	Sequence int64          `json:"sequence"`
	Type     int64          `json:"type"`
	TypeName string         `json:"typename"`
	Amount   protocol.Money `json:"amount"`
	DT       string         `json:"dt"`
}

// LoadView reads everything a SaleView shows.
func LoadView(ctx context.Context, q sqlx.QueryerContext, sale *lanedb.Sale) (*SaleView, error) {
	p, err := readParts(ctx, q, sale)
	if err != nil {
		return nil, err
	}
	return p.view(sale), nil
}

// parts is what a view shows besides the sale row. A change that writes
// only the row (park, unpark, complete, cancel) reads them before it
// writes: the writer's cache answers those reads, and would not answer
// them once the transaction has written the sale.
type parts struct {
	lines    []lanedb.Line
	payments []lanedb.Payment
	customer *lanedb.SaleCustomer
}

func readParts(ctx context.Context, q sqlx.QueryerContext, sale *lanedb.Sale) (parts, error) {
	var p parts
	var err error
	if p.lines, err = lanedb.SaleLines(ctx, q, sale.Physkey); err != nil {
		return parts{}, err
	}
	if p.payments, err = lanedb.SalePayments(ctx, q, sale.Physkey); err != nil {
		return parts{}, err
	}
	if sale.CID.Valid {
		p.customer, err = lanedb.CustomerByCID(ctx, q, sale.CID.Int64)
		if err != nil && !errors.Is(err, lanedb.ErrNoCustomer) {
			return parts{}, err
		}
	}
	return p, nil
}

func (p parts) view(sale *lanedb.Sale) *SaleView {
	return buildView(sale, p.lines, p.payments, p.customer)
}

func buildView(sale *lanedb.Sale, lines []lanedb.Line, payments []lanedb.Payment, customer *lanedb.SaleCustomer) *SaleView {
	v := &SaleView{
		Physkey:     sale.Physkey,
		RandomKey:   sale.RandomKey,
		SID:         Nullable(sale.SID.Int64, sale.SID.Valid),
		Phase:       sale.Phase,
		StartDT:     sale.StartDT,
		CompletedDT: Nullable(sale.CompletedDT.String, sale.CompletedDT.Valid),
		SaleTotal:   protocol.Money(sale.SaleTotalCents),
		CID:         Nullable(sale.CID.Int64, sale.CID.Valid),
		Location:    Nullable(sale.Location.Int64, sale.Location.Valid),
		RandomNo:    randomNo(sale.Physkey),
		Holder:      sale.HolderName,
		Lines:       make([]LineView, len(lines)),
		Payments:    make([]PaymentView, len(payments)),
		Version:     sale.Version,
	}
	v.RandomNoWord = NumberWord(v.RandomNo)
	if sale.Presell {
		v.Presell, v.Tablet = 1, sale.CreatedBy
		v.Ticket = Nullable(sale.Ticket.Int64, sale.Ticket.Valid)
		v.TicketWord = Nullable(sale.TicketWord.String, sale.TicketWord.Valid)
		v.TicketBarcode = Nullable(sale.TicketBarcode.String, sale.TicketBarcode.Valid)
	}
	if customer != nil {
		v.PhyskeyCust = &customer.Physkey
		v.Customer = &CustomerView{CID: customer.CID, Physkey: customer.Physkey, Name: customer.Name, Discount: protocol.Money(customer.DiscountBPS)}
	}
	for i, l := range lines {
		lv := LineView{
			Seqnce: l.Seqnce, PID: l.PID, Qty: l.Qty, Measurement: l.Measurement,
			Price: protocol.Money(l.TotalPriceCents), TotalPrice: protocol.Money(l.TotalPriceCents),
			UnitPrice: protocol.Money(l.UnitPriceCents), PriceCause: l.PriceCause, LineSource: l.LineSource,
			Product: ProductRef{Description: l.Description, SKU: l.PLU},
		}
		if l.PriceCause != causeNone {
			pre := protocol.Money(l.PrediscountPriceCents)
			lv.PrediscountPrice = &pre
		}
		v.Lines[i] = lv
	}
	var paid int64
	for i, p := range payments {
		v.Payments[i] = PaymentView{Sequence: p.Sequence, Type: p.GlobalCode, TypeName: p.TypeName, Amount: protocol.Money(p.AmountCents), DT: p.DT}
		paid += p.AmountCents
	}
	v.Paid = protocol.Money(paid)
	v.Balance = protocol.Money(sale.SaleTotalCents - paid)
	return v
}

// ActiveView is the salesbuilder.active summary (SPEC §7.3).
type ActiveView struct {
	Physkey       string         `json:"physkey"`
	RandomKey     string         `json:"random_key"`
	DatetimeLocal string         `json:"datetime_local"`
	SaleTotal     protocol.Money `json:"saletotal"`
	RandomNo      int64          `json:"physkey_random_no"`
	RandomNoWord  string         `json:"physkey_random_no_word"`
	Phase         int            `json:"phase"`
	Ticket        *int64         `json:"ticket,omitempty"`
	// TicketWord is the submitted presell's word, the one its slip and the
	// counter use (physkey_random_no_word is the sale's own, not the
	// ticket's).
	TicketWord *string `json:"ticket_word,omitempty"`
	// InUseElsewhere: another open connection of the same key has this sale
	// as the one it works on (a second tablet paired with the key, or a
	// second tab): opening it here as well would have two devices ring up
	// one order. Only in the key's list of its open sales.
	InUseElsewhere bool `json:"in_use_elsewhere,omitempty"`
}

func activeView(sale *lanedb.Sale, localNow string) ActiveView {
	n := randomNo(sale.Physkey)
	return ActiveView{
		Physkey: sale.Physkey, RandomKey: sale.RandomKey, DatetimeLocal: localNow,
		SaleTotal: protocol.Money(sale.SaleTotalCents), RandomNo: n, RandomNoWord: NumberWord(n),
		Phase: sale.Phase, Ticket: Nullable(sale.Ticket.Int64, sale.Ticket.Valid),
		TicketWord: Nullable(sale.TicketWord.String, sale.TicketWord.Valid),
	}
}

// Nullable is v, or nil when !ok: a NULL column as JSON null.
func Nullable[T any](v T, ok bool) *T {
	if !ok {
		return nil
	}
	return &v
}
