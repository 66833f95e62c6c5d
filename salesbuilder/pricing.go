package salesbuilder

import "github.com/greenlane-pos/greenlane/lanedb"

// Price causes used here (SPEC §9.2).
const (
	causeNone             = 0
	causeCustomerDiscount = 8
	causeUserPrice        = 12
)

// Measurements (products.measurement).
const (
	measureUnit  = 0 // qty counts items; price is per item
	measureGrams = 1 // qty in grams; price is per kilogram
)

// Limits on what one line may carry, so totals stay far inside int64 and
// a typo cannot ring up a truckload.
const (
	maxQty       = 1_000_000      // items, or grams (1 tonne)
	maxUnitPrice = 100_000_000    // $1,000,000.00 a unit or kilogram
	maxSaleTotal = 10_000_000_000 // $100,000,000.00
)

// extended is the price of qty at unit, before any discount. Weighed goods
// are priced per kilogram and sold in grams; the result is rounded to the
// nearest cent, halves up.
func extended(unit, qty, measurement int64) int64 {
	if measurement == measureGrams {
		return roundDiv(unit*qty, 1000)
	}
	return unit * qty
}

// percentOff is the discount of bps basis points on amount, to the nearest cent.
func percentOff(amount, bps int64) int64 {
	return roundDiv(amount*bps, 10000)
}

// roundDiv divides, rounding halves away from zero.
func roundDiv(a, b int64) int64 {
	if a < 0 {
		return -roundDiv(-a, b)
	}
	return (a + b/2) / b
}

// price sets a line's prices from its unit price, quantity and the sale's
// customer. A price the user set (cause 12) is kept and not discounted.
func price(l *lanedb.Line, customer *lanedb.SaleCustomer) {
	gross := extended(l.UnitPriceCents, l.Qty, l.Measurement)
	l.PrediscountPriceCents = gross
	l.TotalPriceCents = gross
	if l.PriceCause == causeUserPrice {
		return
	}
	l.PriceCause, l.PriceCauseData = causeNone, 0
	if customer != nil && customer.DiscountBPS > 0 {
		l.TotalPriceCents = gross - percentOff(gross, customer.DiscountBPS)
		l.PriceCause, l.PriceCauseData = causeCustomerDiscount, customer.CID
	}
}

// unitPriceFor is what one unit (or kilogram) costs this customer, for
// sale_get_price.
func unitPriceFor(p *lanedb.SaleProduct, customer *lanedb.SaleCustomer) int64 {
	if customer != nil && customer.DiscountBPS > 0 {
		return p.PriceCents - percentOff(p.PriceCents, customer.DiscountBPS)
	}
	return p.PriceCents
}
