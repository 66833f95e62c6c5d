// Package catalog serves the lane's reference data over FD1: products,
// customers and the store facts a customer display shows.
package catalog

import (
	"context"
	"errors"
	"strconv"

	"github.com/greenlane-pos/greenlane/internal/setting"
	"github.com/greenlane-pos/greenlane/lanedb"
	"github.com/greenlane-pos/greenlane/protocol"
)

// Config tunes the catalog endpoints.
type Config struct {
	// MaxRows caps the rows of one list reply packet; a reply cut short says
	// "more":true. A request with mo:"chunk" gets up to maxChunks packets of
	// MaxRows rows each. 1 to 1000000. Default 1000.
	MaxRows int
}

// maxChunks bounds a chunked list reply (mo:"chunk") to this many packets
// of MaxRows rows, so that one request cannot make the lane hold an
// unbounded list in memory; past it the last packet says "more":true. Ten
// keeps the default (10,000 rows) well inside SQLite's 32,766 bound
// parameters, which the barcode lookup uses one per product.
const maxChunks = 10

// Validate reports a field out of its range as a *setting.Error naming it.
// (New still takes a zero MaxRows as the default.)
func (c Config) Validate() error {
	return setting.Range("MaxRows", c.MaxRows, 1, 1_000_000)
}

// DefaultConfig is the configuration used when nothing is set.
func DefaultConfig() Config { return Config{MaxRows: 1000} }

// Service answers the catalog endpoints from the lane DB.
type Service struct {
	db  *lanedb.DB
	cfg Config
}

// New returns a catalog service over db.
func New(db *lanedb.DB, cfg Config) *Service {
	if cfg.MaxRows <= 0 {
		cfg.MaxRows = DefaultConfig().MaxRows
	}
	return &Service{db: db, cfg: cfg}
}

// Register adds the catalog endpoints to r.
func (s *Service) Register(r *protocol.Router) {
	readers := protocol.Access{Scopes: []protocol.Scope{protocol.ScopePresell, protocol.ScopeCounter}}
	r.Handle(&protocol.Endpoint{Name: "fd1.products.get_products_list", Access: readers, Handler: s.getProducts, Filters: true})
	r.Handle(&protocol.Endpoint{Name: "fd1.customers.get_customers", Access: readers, Handler: s.getCustomers, Filters: true})
	r.Handle(&protocol.Endpoint{
		Name:    "fd1.customerdisplay.get_info",
		Access:  protocol.Access{AnyKey: true, Display: true},
		Handler: s.getDisplayInfo,
	})
}

// listArgs are the v arguments every list endpoint takes.
type listArgs struct {
	// Limit asks for fewer rows than the lane's cap.
	Limit int `json:"limit" validate:"gte=0"`
}

// limit is how many rows a list request may get, and how many go in one
// packet: MaxRows in one packet, or with mo:"chunk" up to maxChunks
// packets of MaxRows (chunk 0 means one packet).
func (s *Service) limit(req *protocol.Request) (limit, chunk int, err error) {
	var args listArgs
	if err := protocol.DecodeV(req.V, &args); err != nil {
		return 0, 0, err
	}
	limit = s.cfg.MaxRows
	if req.WantsChunks() {
		limit, chunk = maxChunks*s.cfg.MaxRows, s.cfg.MaxRows
	}
	if args.Limit > 0 && args.Limit < limit {
		limit = args.Limit
	}
	return limit, chunk, nil
}

// shapeRows applies the request's qo to every row.
func shapeRows(req *protocol.Request, fields []string, rows []map[string]any) ([]any, error) {
	shape, err := parseShape(req, fields)
	if err != nil {
		return nil, err
	}
	out := make([]any, len(rows))
	for i, r := range rows {
		out[i] = shape.Apply(r)
	}
	return out, nil
}

func parseShape(req *protocol.Request, fields []string) (*protocol.Shape, error) {
	if len(req.QO) > 0 && req.QO[0] == '"' {
		var list string
		if err := jsonString(req.QO, &list); err != nil {
			return nil, protocol.Errorf(protocol.CodeBadArgument, "qo: %v", err)
		}
		return protocol.ParseShapeList(list, fields)
	}
	return protocol.ParseShape(req.QO, fields)
}

// keyConds is what k (SPEC §2: the key of a single record) asks of a list
// read: the record whose number (idField: pid, cid) it is when it is a
// whole number, else the one whose physkey it is. A k no record has
// selects none: an unknown selection is an empty set, not an error
// (§3.1). Absent, it asks nothing.
func keyConds(req *protocol.Request, idField string) []protocol.Cond {
	key := req.Key() // a string or a number: protocol.Decode refuses any other k
	if key == "" {
		return nil
	}
	if n, err := strconv.ParseInt(key, 10, 64); err == nil {
		return []protocol.Cond{{Field: idField, Op: protocol.OpEq, Value: n}}
	}
	return []protocol.Cond{{Field: "physkey", Op: protocol.OpEq, Value: key}}
}

// toLaneConds maps parsed filters onto lane DB columns.
func toLaneConds(conds []protocol.Cond, column map[string]string) []lanedb.Cond {
	out := make([]lanedb.Cond, len(conds))
	for i, c := range conds {
		col, ok := column[c.Field]
		if !ok {
			col = c.Field
		}
		out[i] = lanedb.Cond{Column: col, Op: string(c.Op), Value: c.Value}
	}
	return out
}

func (s *Service) getDisplayInfo(ctx context.Context, call *protocol.Call) (*protocol.Result, error) {
	lane, err := s.db.LaneInfo(ctx)
	if errors.Is(err, lanedb.ErrNoLane) {
		return nil, protocol.Errorf(protocol.CodeNotFound, "this lane has no store set up yet (its db was loaded from the empty fixture)")
	}
	if err != nil {
		return nil, err
	}
	loc := lane.Location
	location := map[string]any{
		"locid": loc.LocID, "physkey": loc.Physkey, "name": loc.Name,
		"address1": loc.Address1, "address2": loc.Address2, "address3": loc.Address3,
		"address4": loc.Address4, "address5": loc.Address5, "address6": loc.Address6,
		"city": loc.City, "phone": loc.Phone,
	}
	return &protocol.Result{SC: "customerdisplay.info", Data: map[string]any{
		"storename": lane.Storename,
		"location":  location,
		"lane":      lane.LaneNo,
		"currency":  lane.Currency,
		"timezone":  lane.Timezone,
	}}, nil
}
