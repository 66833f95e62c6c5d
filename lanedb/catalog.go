package lanedb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/jmoiron/sqlx"
)

// Cond is one filter condition on a named column. Column must be one the
// query function lists (they are never taken from a client verbatim); Op is
// one of = != < <= > >=; Value is passed as a bound parameter.
type Cond struct {
	Column string
	Op     string
	Value  any
}

var sqlOps = map[string]string{"=": "=", "!=": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">="}

// where builds "WHERE …" from conds, mapping each column through exprs
// (column → SQL expression with one "?" per use of the value, or a format
// with %s for the operator).
func where(conds []Cond, exprs map[string]string) (string, []any, error) {
	if len(conds) == 0 {
		return "", nil, nil
	}
	parts := make([]string, 0, len(conds))
	args := make([]any, 0, len(conds))
	for _, c := range conds {
		expr, ok := exprs[c.Column]
		if !ok {
			return "", nil, fmt.Errorf("column %q cannot be filtered", c.Column)
		}
		op, ok := sqlOps[c.Op]
		if !ok {
			return "", nil, fmt.Errorf("operator %q is not supported", c.Op)
		}
		if strings.Contains(expr, "%s") {
			parts = append(parts, fmt.Sprintf(expr, op))
		} else {
			parts = append(parts, expr+" "+op+" ?")
		}
		args = append(args, c.Value)
	}
	return "WHERE " + strings.Join(parts, " AND "), args, nil
}

// Product is a product as the catalog endpoints show it.
type Product struct {
	PID         int64          `db:"pid"`
	Physkey     string         `db:"physkey"`
	Description string         `db:"description"`
	Shortname   string         `db:"shortname"`
	PLU         sql.NullString `db:"plu"`
	DepID       sql.NullInt64  `db:"depid"`
	Department  sql.NullString `db:"department"`
	PriceCents  int64          `db:"price_cents"`
	CostCents   int64          `db:"cost_cents"`
	Measurement int64          `db:"measurement"`
	Active      bool           `db:"active"`
	Barcodes    []string       `db:"-"`
}

// ProductColumns are the columns Products can filter on.
var productExprs = map[string]string{
	"pid":         "p.pid",
	"physkey":     "p.physkey",
	"description": "p.description",
	"shortname":   "p.shortname",
	"plu":         "p.plu",
	"depid":       "p.depid",
	"price_cents": "p.price_cents",
	"measurement": "p.measurement",
	"active":      "p.active",
	// A product matches a barcode condition when any of its barcodes does.
	"barcode": "EXISTS (SELECT 1 FROM product_barcodes b WHERE b.pid = p.pid AND b.barcode %s ?)",
}

// Products lists products matching conds in pid order, at most limit of
// them; more reports whether further rows matched.
func (db *DB) Products(ctx context.Context, conds []Cond, limit int) (rows []Product, more bool, err error) {
	clause, args, err := where(conds, productExprs)
	if err != nil {
		return nil, false, err
	}
	query := `SELECT p.pid, p.physkey, p.description, p.shortname, p.plu, p.depid, d.description AS department,
		p.price_cents, p.cost_cents, p.measurement, p.active
		FROM products p LEFT JOIN departments d ON d.depid = p.depid ` + clause + ` ORDER BY p.pid LIMIT ?`
	args = append(args, limit+1)
	if err := db.Read.SelectContext(ctx, &rows, query, args...); err != nil {
		return nil, false, fmt.Errorf("list products: %w", err)
	}
	if len(rows) > limit {
		rows, more = rows[:limit], true
	}
	if err := db.attachBarcodes(ctx, rows); err != nil {
		return nil, false, err
	}
	return rows, more, nil
}

func (db *DB) attachBarcodes(ctx context.Context, rows []Product) error {
	if len(rows) == 0 {
		return nil
	}
	index := make(map[int64]int, len(rows))
	pids := make([]any, len(rows))
	for i, p := range rows {
		index[p.PID] = i
		pids[i] = p.PID
	}
	query, args, err := sqlx.In(`SELECT pid, barcode FROM product_barcodes WHERE pid IN (?) ORDER BY pid, barcode`, pids)
	if err != nil {
		return fmt.Errorf("barcode query: %w", err)
	}
	var codes []struct {
		PID     int64  `db:"pid"`
		Barcode string `db:"barcode"`
	}
	if err := db.Read.SelectContext(ctx, &codes, query, args...); err != nil {
		return fmt.Errorf("list barcodes: %w", err)
	}
	for i := range rows {
		rows[i].Barcodes = []string{}
	}
	for _, c := range codes {
		i := index[c.PID]
		rows[i].Barcodes = append(rows[i].Barcodes, c.Barcode)
	}
	return nil
}

// Customer is a customer as the catalog endpoints show it.
type Customer struct {
	CID         int64  `db:"cid"`
	Physkey     string `db:"physkey"`
	Name        string `db:"name"`
	Firstname   string `db:"firstname"`
	Lastname    string `db:"lastname"`
	Email       string `db:"email"`
	Phone       string `db:"phone"`
	Address1    string `db:"address1"`
	Address2    string `db:"address2"`
	Address3    string `db:"address3"`
	City        string `db:"city"`
	DiscountBPS int64  `db:"discount_bps"`
}

var customerExprs = exprsFor("cid", "physkey", "name", "firstname", "lastname", "email", "phone", "city", "discount_bps")

func exprsFor(cols ...string) map[string]string {
	m := make(map[string]string, len(cols))
	for _, c := range cols {
		m[c] = c
	}
	return m
}

// FilterColumns lists the columns a list query accepts, sorted (for messages).
func FilterColumns(kind string) []string {
	var m map[string]string
	switch kind {
	case "products":
		m = productExprs
	case "customers":
		m = customerExprs
	}
	out := make([]string, 0, len(m))
	for c := range m {
		out = append(out, c)
	}
	sort.Strings(out)
	return out
}

// Customers lists customers matching conds in cid order (see Products).
func (db *DB) Customers(ctx context.Context, conds []Cond, limit int) (rows []Customer, more bool, err error) {
	clause, args, err := where(conds, customerExprs)
	if err != nil {
		return nil, false, err
	}
	query := `SELECT cid, physkey, name, firstname, lastname, email, phone, address1, address2, address3, city, discount_bps
		FROM customers ` + clause + ` ORDER BY cid LIMIT ?`
	args = append(args, limit+1)
	if err := db.Read.SelectContext(ctx, &rows, query, args...); err != nil {
		return nil, false, fmt.Errorf("list customers: %w", err)
	}
	if len(rows) > limit {
		rows, more = rows[:limit], true
	}
	return rows, more, nil
}

// Lane is who this lane is: its store, location and currency.
type Lane struct {
	LaneNo    int64  `db:"lane_no"`
	Storename string `db:"storename"`
	Currency  string `db:"currency"`
	Timezone  string `db:"timezone"`
	Location  Location
}

// Location is a store location.
type Location struct {
	LocID    int64           `db:"locid"`
	Physkey  string          `db:"physkey"`
	Name     string          `db:"name"`
	Address1 string          `db:"address1"`
	Address2 string          `db:"address2"`
	Address3 string          `db:"address3"`
	Address4 string          `db:"address4"`
	Address5 string          `db:"address5"`
	Address6 string          `db:"address6"`
	City     string          `db:"city"`
	Phone    string          `db:"phone"`
	GeoLat   sql.NullFloat64 `db:"geolat"`
	GeoLong  sql.NullFloat64 `db:"geolong"`
}

// ErrNoLane is returned by LaneInfo when the DB holds no store (the empty
// fixture).
var ErrNoLane = errors.New("this lane db has no store set up (load a fixture with a lane row)")

// LaneInfo reads the lane row and its location.
func (db *DB) LaneInfo(ctx context.Context) (*Lane, error) {
	var lane Lane
	var locid int64
	err := db.Read.QueryRowxContext(ctx, `SELECT lane_no, storename, currency, timezone, locid FROM lane WHERE id = 1`).
		Scan(&lane.LaneNo, &lane.Storename, &lane.Currency, &lane.Timezone, &locid)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNoLane
	}
	if err != nil {
		return nil, fmt.Errorf("read lane: %w", err)
	}
	err = db.Read.GetContext(ctx, &lane.Location, `SELECT locid, physkey, name, address1, address2, address3,
		address4, address5, address6, city, phone, geolat, geolong FROM locations WHERE locid = ?`, locid)
	if err != nil {
		return nil, fmt.Errorf("read location %d: %w", locid, err)
	}
	return &lane, nil
}
