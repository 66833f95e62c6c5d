package catalog

import (
	"context"
	"encoding/json"

	"github.com/greenlane-pos/greenlane/lanedb"
	"github.com/greenlane-pos/greenlane/protocol"
)

// productFilters are the q fields of get_products_list.
var productFilters = protocol.Fields{
	"pid":         protocol.KindInt,
	"physkey":     protocol.KindString,
	"description": protocol.KindString,
	"shortname":   protocol.KindString,
	"plu":         protocol.KindString,
	"depid":       protocol.KindInt,
	"price":       protocol.KindMoney,
	"measurement": protocol.KindInt,
	"active":      protocol.KindBool,
	"barcode":     protocol.KindString,
}

// productColumns maps a filter field to its lane DB column where the names differ.
var productColumns = map[string]string{"price": "price_cents"}

// productFields are the fields of a product row, for qo.
var productFields = []string{"pid", "physkey", "description", "shortname", "plu", "depid", "department",
	"price", "cost", "measurement", "active", "barcodes"}

func (s *Service) getProducts(ctx context.Context, call *protocol.Call) (*protocol.Result, error) {
	req := call.Req
	conds, err := req.Filter(productFilters)
	if err != nil {
		return nil, err
	}
	conds = append(conds, keyConds(req, "pid")...)
	limit, chunk, err := s.limit(req)
	if err != nil {
		return nil, err
	}
	products, more, err := s.db.Products(ctx, toLaneConds(conds, productColumns), limit)
	if err != nil {
		return nil, err
	}
	rows := make([]map[string]any, len(products))
	for i, p := range products {
		rows[i] = productRow(p)
	}
	shaped, err := shapeRows(req, productFields, rows)
	if err != nil {
		return nil, err
	}
	return &protocol.Result{Data: protocol.Rows{Rows: shaped, More: more, Chunk: chunk}}, nil
}

// productRow is the FD1 view of a product (SPEC §9.4); price is the list
// price (per kilogram for weighed products, measurement 1).
func productRow(p lanedb.Product) map[string]any {
	return map[string]any{
		"pid":         p.PID,
		"physkey":     p.Physkey,
		"description": p.Description,
		"shortname":   p.Shortname,
		"plu":         nullString(p.PLU.String, p.PLU.Valid),
		"depid":       nullInt(p.DepID.Int64, p.DepID.Valid),
		"department":  nullString(p.Department.String, p.Department.Valid),
		"price":       protocol.Money(p.PriceCents),
		"cost":        protocol.Money(p.CostCents),
		"measurement": p.Measurement,
		"active":      p.Active,
		"barcodes":    p.Barcodes,
	}
}

func nullString(s string, valid bool) any {
	if !valid {
		return nil
	}
	return s
}

func nullInt(i int64, valid bool) any {
	if !valid {
		return nil
	}
	return i
}

func jsonString(raw json.RawMessage, dst *string) error { return json.Unmarshal(raw, dst) }
