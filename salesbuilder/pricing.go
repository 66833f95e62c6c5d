package salesbuilder

import "github.com/greenlane-pos/greenlane/lanedb"

// Price causes used here (SPEC §9.2). CauseUserPrice marks a price set by
// hand, which no customer discount or repricing touches.
const (
	causeNone             = 0
	CauseCustomerDiscount = 8
	CauseUserPrice        = 12
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

// A line's price is its exact value rounded once, to the nearest cent,
// halves away from zero: unit × qty (÷ 1000 for weighed goods, priced per
// kilogram and sold in grams) × (1 − discount). Rounding the gross and then
// the discount separately would round some halves down (5% off 5.50 is
// 5.225 → 5.23, not 5.50 − 0.28 = 5.22). Integer arithmetic throughout: the
// limits above keep unit × qty × 10000 under 2^63.

// divisor is what unit × qty is divided by to give cents.
func divisor(measurement int64) int64 {
	if measurement == measureGrams {
		return 1000
	}
	return 1
}

// extended is the price of qty at unit, before any discount.
func extended(unit, qty, measurement int64) int64 {
	return roundDiv(unit*qty, divisor(measurement))
}

// discounted is the price of qty at unit less bps basis points.
func discounted(unit, qty, measurement, bps int64) int64 {
	return roundDiv(unit*qty*(10000-bps), divisor(measurement)*10000)
}

// roundDiv divides, rounding halves away from zero.
func roundDiv(a, b int64) int64 {
	if a < 0 {
		return -roundDiv(-a, b)
	}
	return (a + b/2) / b
}

// PriceLine sets a line's prices from its unit price, quantity and the sale's
// customer. A price the user set (cause 12) is kept and not discounted.
func PriceLine(l *lanedb.Line, customer *lanedb.SaleCustomer) {
	gross := extended(l.UnitPriceCents, l.Qty, l.Measurement)
	l.PrediscountPriceCents = gross
	l.TotalPriceCents = gross
	if l.PriceCause == CauseUserPrice {
		return
	}
	l.PriceCause, l.PriceCauseData = causeNone, 0
	if customer != nil && customer.DiscountBPS > 0 {
		l.TotalPriceCents = discounted(l.UnitPriceCents, l.Qty, l.Measurement, min(customer.DiscountBPS, 10000))
		l.PriceCause, l.PriceCauseData = CauseCustomerDiscount, customer.CID
	}
}

// unitPriceFor is what one unit (or kilogram) costs this customer, for
// sale_get_price.
func unitPriceFor(p *lanedb.SaleProduct, customer *lanedb.SaleCustomer) int64 {
	if customer != nil && customer.DiscountBPS > 0 {
		return discounted(p.PriceCents, 1, measureUnit, min(customer.DiscountBPS, 10000))
	}
	return p.PriceCents
}
