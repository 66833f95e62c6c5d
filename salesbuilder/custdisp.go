package salesbuilder

import (
	"context"
	"encoding/json"
	"time"

	"github.com/greenlane-pos/greenlane/lanedb"
	"github.com/greenlane-pos/greenlane/protocol"
)

// Customer displays follow sales through custdisp.sale.* events (SPEC
// §6.2). Each change writes one to the journal in its own transaction, with
// the whole current sale as the body, so a display that reconnects can
// replay what it missed from the lane DB.

// Custdisp event names (the sc is "custdisp." + name).
const (
	evSaleAdd      = "sale.add"
	EvSaleEdit     = "sale.edit"
	EvSaleStatus   = "sale.status"
	evLinesAdd     = "sale.lines.add"
	evLinesEdit    = "sale.lines.edit"
	evLinesDelete  = "sale.lines.delete"
	evPaymentsAdd  = "sale.payments.add"
	evPaymentsDel  = "sale.payments.delete"
	statusActive   = "active"
	statusParked   = "parked"
	statusComplete = "complete"
	statusVoid     = "void"
	statusIdle     = "idle"
)

// FamilyCustdisp is the journal family the sales core writes: custdisp.sale.*
// events (SPEC §6.2), the detail being the whole event body. The firehose
// hub is told of it when the lane is wired; nothing else names it.
const FamilyCustdisp = "custdisp"

// CustDisp is the body of a custdisp.sale.* event.
type CustDisp struct {
	SalePhyskey   string         `json:"salephyskey"`
	Source        CustDispSource `json:"source"`
	DatetimeLocal string         `json:"datetimelocal"`
	Status        string         `json:"status"`
	Phase         int            `json:"phase"`
	SaleTotal     protocol.Money `json:"saletotal"`
	Ticket        *int64         `json:"ticket,omitempty"`
	Customer      *string        `json:"customer,omitempty"`
	// CustomerDiscount is the customer's discount in percent, left out
	// when there is none: a display says "discount applied" only then.
	CustomerDiscount protocol.Money `json:"customer_discount,omitempty"`
	Lines            []CustDispLine `json:"lines"`
	Payments         []PaymentView  `json:"payments"`
}

// CustDispSource says where the sale is being worked on.
type CustDispSource struct {
	Lane   int64  `json:"lane"`
	Tablet string `json:"tablet,omitempty"` // the presell's tablet key name
	Holder string `json:"holder"`           // the device working on it now
}

// CustDispLine is a line as a display shows it.
type CustDispLine struct {
	Seqnce int64 `json:"seqnce"`
	PID    int64 `json:"pid"`
	Qty    int64 `json:"qty"`
	// Measurement is the product's unit, as in a sale's lines: 1 means qty
	// is grams (priced per kilogram), so a display shows "250 g", not
	// "250 ×". Left out for items counted one by one (0).
	Measurement int64          `json:"measurement,omitempty"`
	TotalPrice  protocol.Money `json:"totalprice"`
	Product     ProductRef     `json:"product"`
}

func statusOf(phase int) string {
	switch phase {
	case lanedb.PhaseParked:
		return statusParked
	case lanedb.PhaseCompleted:
		return statusComplete
	case lanedb.PhaseVoid:
		return statusVoid
	}
	return statusActive
}

// CustDispInProgress reports whether a custdisp journal row shows a sale
// still on its way (active, or parked for payment at a counter): what a
// display that opens now should show. A complete or void sale is over,
// and the idle that follows it is the display's default. The firehose hub
// asks it of the one row a firehose opened without since would start
// with (lane wires it), so the hub learns no sale rules and the journal
// no extra column: the status is already in every row's body.
func CustDispInProgress(r lanedb.JournalEntry) bool {
	var b struct {
		Status string `json:"status"`
	}
	if json.Unmarshal([]byte(r.Detail), &b) != nil {
		return false
	}
	return b.Status == statusActive || b.Status == statusParked
}

// ParkedShownFor is how long after a presell was parked (submitted, or let
// go by a counter) a display that opens still starts with it: a display
// switched on later must not greet the next customer with an order left
// waiting at the counter. The display page gives way to idle after as long.
const ParkedShownFor = time.Minute

// CustDispCurrent is the rule a firehose opened without since starts by
// (firehose.Family.Current): a row in progress (CustDispInProgress), and,
// for a parked sale, written no longer than ParkedShownFor ago by now, the
// lane's clock.
func CustDispCurrent(now func() time.Time) func(lanedb.JournalEntry) bool {
	return func(r lanedb.JournalEntry) bool {
		if !CustDispInProgress(r) {
			return false
		}
		var b struct {
			Status string `json:"status"`
		}
		if json.Unmarshal([]byte(r.Detail), &b) != nil || b.Status != statusParked {
			return true
		}
		at, err := time.ParseInLocation(lanedb.DateTime, r.AtUTC, time.UTC)
		return err == nil && now().Sub(at) <= ParkedShownFor
	}
}

// custDisp builds an event body from a sale view. The display's clock
// freezes at completion (SPEC §6.2).
func (s *Service) custDisp(v *SaleView) CustDisp {
	at := s.localNow()
	if v.CompletedDT != nil {
		at = *v.CompletedDT
	}
	d := CustDisp{
		SalePhyskey: v.Physkey, DatetimeLocal: at, Status: statusOf(v.Phase), Phase: v.Phase,
		Source:    CustDispSource{Lane: s.laneNo, Tablet: v.Tablet, Holder: v.Holder},
		SaleTotal: v.SaleTotal, Ticket: v.Ticket, Lines: make([]CustDispLine, len(v.Lines)), Payments: v.Payments,
	}
	if v.Customer != nil {
		d.Customer, d.CustomerDiscount = &v.Customer.Name, v.Customer.Discount
	}
	for i, l := range v.Lines {
		d.Lines[i] = CustDispLine{Seqnce: l.Seqnce, PID: l.PID, Qty: l.Qty, Measurement: l.Measurement,
			TotalPrice: l.TotalPrice, Product: l.Product}
	}
	return d
}

// custDispIdle is the body of the idle status that follows a finished
// sale: the display shows nothing of it any more (a status with no lines
// and total 0).
type custDispIdle struct {
	SalePhyskey   string         `json:"salephyskey"`
	Source        CustDispSource `json:"source"`
	DatetimeLocal string         `json:"datetimelocal"`
	Status        string         `json:"status"`
	SaleTotal     protocol.Money `json:"saletotal"`
	Lines         []CustDispLine `json:"lines"`
	Payments      []PaymentView  `json:"payments"`
}

// emit journals a custdisp event for a changed sale. A sale that is
// finished (complete or void) leaves the display: the idle status that
// says so is journaled right after it, in the same transaction, so a
// display that replays the journal ends where a live one did.
func (s *Service) emit(ctx context.Context, tx *lanedb.Tx, event, actor string, v *SaleView) error {
	if v == nil {
		return nil
	}
	at, d := s.now(), s.custDisp(v)
	if err := lanedb.Journal(ctx, tx, at, FamilyCustdisp, event, v.Physkey, actor, d); err != nil {
		return err
	}
	if event == EvSaleStatus && (d.Status == statusComplete || d.Status == statusVoid) {
		idle := custDispIdle{SalePhyskey: d.SalePhyskey, Source: d.Source, DatetimeLocal: d.DatetimeLocal,
			Status: statusIdle, Lines: []CustDispLine{}, Payments: []PaymentView{}}
		if err := lanedb.Journal(ctx, tx, at, FamilyCustdisp, EvSaleStatus, v.Physkey, actor, idle); err != nil {
			return err
		}
	}
	s.NotifyOnCommit(tx)
	return nil
}

// NotifyOnCommit tells the firehose hub, once the transaction commits,
// that the journal has grown.
func (s *Service) NotifyOnCommit(tx *lanedb.Tx) {
	if s.notify != nil {
		tx.OnCommit(s.notify)
	}
}
