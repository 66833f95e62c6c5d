package catalog

import (
	"context"

	"github.com/greenlane-pos/greenlane/lanedb"
	"github.com/greenlane-pos/greenlane/protocol"
)

// customerFilters are the q fields of get_customers. discount is a
// percentage (10 or 12.5), held as basis points.
var customerFilters = protocol.Fields{
	"cid":       protocol.KindInt,
	"physkey":   protocol.KindString,
	"name":      protocol.KindString,
	"firstname": protocol.KindString,
	"lastname":  protocol.KindString,
	"email":     protocol.KindString,
	"phone":     protocol.KindString,
	"city":      protocol.KindString,
	"discount":  protocol.KindMoney, // two decimals, ×100: the same arithmetic as basis points
}

var customerColumns = map[string]string{"discount": "discount_bps"}

var customerFields = []string{"cid", "physkey", "key", "name", "firstname", "lastname", "email", "phone",
	"address1", "address2", "address3", "city", "discount"}

func (s *Service) getCustomers(ctx context.Context, call *protocol.Call) (*protocol.Result, error) {
	req := call.Req
	conds, err := req.Filter(customerFilters)
	if err != nil {
		return nil, err
	}
	conds = append(conds, keyConds(req, "cid")...)
	limit, chunk, err := s.limit(req)
	if err != nil {
		return nil, err
	}
	customers, more, err := s.db.Customers(ctx, toLaneConds(conds, customerColumns), limit)
	if err != nil {
		return nil, err
	}
	rows := make([]map[string]any, len(customers))
	for i, c := range customers {
		rows[i] = customerRow(c)
	}
	shaped, err := shapeRows(req, customerFields, rows)
	if err != nil {
		return nil, err
	}
	return &protocol.Result{Data: protocol.Rows{Rows: shaped, More: more, Chunk: chunk}}, nil
}

// customerRow is the FD1 view of a customer (SPEC §9.5). key is the
// physkey under the name the Customers resource gives its primary key.
func customerRow(c lanedb.Customer) map[string]any {
	return map[string]any{
		"cid":       c.CID,
		"physkey":   c.Physkey,
		"key":       c.Physkey,
		"name":      c.Name,
		"firstname": c.Firstname,
		"lastname":  c.Lastname,
		"email":     c.Email,
		"phone":     c.Phone,
		"address1":  c.Address1,
		"address2":  c.Address2,
		"address3":  c.Address3,
		"city":      c.City,
		"discount":  protocol.Money(c.DiscountBPS), // basis points print as a percentage
	}
}
