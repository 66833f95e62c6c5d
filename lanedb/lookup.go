package lanedb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/jmoiron/sqlx"
)

// SaleProduct is what a sale line needs of a product.
type SaleProduct struct {
	PID         int64          `db:"pid"`
	Description string         `db:"description"`
	PLU         sql.NullString `db:"plu"`
	PriceCents  int64          `db:"price_cents"`
	Measurement int64          `db:"measurement"`
	Active      bool           `db:"active"`
}

// ErrNoProduct is returned when no product matches.
var ErrNoProduct = errors.New("no such product")

const saleProductSelect = `SELECT p.pid, p.description, p.plu, p.price_cents, p.measurement, p.active FROM products p `

const customerSelect = `SELECT cid, physkey, name, discount_bps FROM customers WHERE `

// Statements, prepared once when the DB opens.
var (
	qProductByPID     = stmt(saleProductSelect + `WHERE p.pid = ?`)
	qProductByPLU     = stmt(saleProductSelect + `WHERE p.plu = ?`)
	qProductByBarcode = stmt(saleProductSelect + `JOIN product_barcodes b ON b.pid = p.pid WHERE b.barcode = ?`)
	qCustomerByCID    = stmt(customerSelect + `cid = ?`)
	qCustomerByPhys   = stmt(customerSelect + `physkey = ?`)
)

// ProductByPID, ProductByPLU and ProductByBarcode find a product to sell.
func ProductByPID(ctx context.Context, q sqlx.QueryerContext, pid int64) (*SaleProduct, error) {
	return oneProduct(ctx, q, qProductByPID, pid)
}

// ProductByPLU finds a product by its PLU.
func ProductByPLU(ctx context.Context, q sqlx.QueryerContext, plu string) (*SaleProduct, error) {
	return oneProduct(ctx, q, qProductByPLU, plu)
}

// ProductByBarcode finds a product by any of its barcodes.
func ProductByBarcode(ctx context.Context, q sqlx.QueryerContext, barcode string) (*SaleProduct, error) {
	return oneProduct(ctx, q, qProductByBarcode, barcode)
}

func oneProduct(ctx context.Context, q sqlx.QueryerContext, query string, arg any) (*SaleProduct, error) {
	t := caching(q)
	if t != nil {
		if v, ok := t.cachedLookup(query, arg); ok {
			p := *v.(*SaleProduct)
			return &p, nil
		}
	}
	var p SaleProduct
	err := sqlx.GetContext(ctx, q, &p, query, arg)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNoProduct
	}
	if err != nil {
		return nil, fmt.Errorf("read product: %w", err)
	}
	if t != nil {
		kept := p
		t.fillLookup(query, arg, &kept)
	}
	return &p, nil
}

// ProductsByPID reads several products (for repricing). One prepared
// lookup per distinct pid: a sale has few lines, and an IN (…) list would be
// new SQL, parsed afresh, for every sale.
func ProductsByPID(ctx context.Context, q sqlx.QueryerContext, pids []int64) (map[int64]*SaleProduct, error) {
	out := make(map[int64]*SaleProduct, len(pids))
	for _, pid := range pids {
		if _, done := out[pid]; done {
			continue
		}
		p, err := ProductByPID(ctx, q, pid)
		if errors.Is(err, ErrNoProduct) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out[pid] = p
	}
	return out, nil
}

// SaleCustomer is what a sale needs of a customer.
type SaleCustomer struct {
	CID         int64  `db:"cid"`
	Physkey     string `db:"physkey"`
	Name        string `db:"name"`
	DiscountBPS int64  `db:"discount_bps"`
}

// ErrNoCustomer is returned when no customer matches.
var ErrNoCustomer = errors.New("no such customer")

// CustomerByCID finds a customer by number.
func CustomerByCID(ctx context.Context, q sqlx.QueryerContext, cid int64) (*SaleCustomer, error) {
	return oneCustomer(ctx, q, qCustomerByCID, cid)
}

// CustomerByPhyskey finds a customer by physkey.
func CustomerByPhyskey(ctx context.Context, q sqlx.QueryerContext, physkey string) (*SaleCustomer, error) {
	return oneCustomer(ctx, q, qCustomerByPhys, physkey)
}

func oneCustomer(ctx context.Context, q sqlx.QueryerContext, query string, arg any) (*SaleCustomer, error) {
	t := caching(q)
	if t != nil {
		if v, ok := t.cachedLookup(query, arg); ok {
			c := *v.(*SaleCustomer)
			return &c, nil
		}
	}
	var c SaleCustomer
	err := sqlx.GetContext(ctx, q, &c, query, arg)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNoCustomer
	}
	if err != nil {
		return nil, fmt.Errorf("read customer: %w", err)
	}
	if t != nil {
		kept := c
		t.fillLookup(query, arg, &kept)
	}
	return &c, nil
}
