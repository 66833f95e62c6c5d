package salesbuilder

import (
	"testing"

	"github.com/greenlane-pos/greenlane/lanedb"
)

func TestPrice(t *testing.T) {
	tenPercent := &lanedb.SaleCustomer{CID: 3, DiscountBPS: 1000}
	fivePercent := &lanedb.SaleCustomer{CID: 7, DiscountBPS: 500}
	halfOff := &lanedb.SaleCustomer{CID: 9, DiscountBPS: 5000}
	tests := []struct {
		name                   string
		unit, qty, measurement int64
		cause                  int64
		customer               *lanedb.SaleCustomer
		wantPre, wantTotal     int64
		wantCause              int64
	}{
		{"one flat white", 550, 1, measureUnit, 0, nil, 550, 550, causeNone},
		{"three muffins", 495, 3, measureUnit, 0, nil, 1485, 1485, causeNone},
		{"ham 250 g at 39.90/kg", 3990, 250, measureGrams, 0, nil, 998, 998, causeNone},      // 997.5 rounds up
		{"salmon 333 g at 89.90/kg", 8990, 333, measureGrams, 0, nil, 2994, 2994, causeNone}, // 2993.67
		{"10% customer", 550, 2, measureUnit, 0, tenPercent, 1100, 990, CauseCustomerDiscount},
		{"10% of an odd amount", 495, 1, measureUnit, 0, tenPercent, 495, 446, CauseCustomerDiscount}, // 445.5 rounds up
		{"5% off 5.50", 550, 1, measureUnit, 0, fivePercent, 550, 523, CauseCustomerDiscount},         // 522.5, not 550 - 28
		{"1 g of olives at 44.90/kg", 4490, 1, measureGrams, 0, nil, 4, 4, causeNone},                 // 4.49
		{"100 g of olives at 44.90/kg", 4490, 100, measureGrams, 0, nil, 449, 449, causeNone},
		{"1 g at 45.00/kg", 4500, 1, measureGrams, 0, nil, 5, 5, causeNone},                           // 4.5 rounds away from zero
		{"9 g at 10.00/kg, half off", 1000, 9, measureGrams, 0, halfOff, 9, 5, CauseCustomerDiscount}, // 4.5, rounded once
		{"1 tonne at the price limit", maxUnitPrice, maxQty, measureGrams, 0, tenPercent, 100_000_000_000, 90_000_000_000, CauseCustomerDiscount},
		{"a whole discount", 550, 1, measureUnit, 0, &lanedb.SaleCustomer{CID: 4, DiscountBPS: 10000}, 550, 0, CauseCustomerDiscount},
		{"weighed and discounted", 3990, 250, measureGrams, 0, tenPercent, 998, 898, CauseCustomerDiscount},
		{"user price is not discounted", 400, 2, measureUnit, CauseUserPrice, tenPercent, 800, 800, CauseUserPrice},
		{"no discount customer", 550, 1, measureUnit, 0, &lanedb.SaleCustomer{CID: 1}, 550, 550, causeNone},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := &lanedb.Line{UnitPriceCents: tt.unit, Qty: tt.qty, Measurement: tt.measurement, PriceCause: tt.cause}
			PriceLine(l, tt.customer)
			if l.PrediscountPriceCents != tt.wantPre || l.TotalPriceCents != tt.wantTotal || l.PriceCause != tt.wantCause {
				t.Fatalf("pre %d total %d cause %d; want %d %d %d", l.PrediscountPriceCents, l.TotalPriceCents, l.PriceCause,
					tt.wantPre, tt.wantTotal, tt.wantCause)
			}
		})
	}
}

func TestRoundDiv(t *testing.T) {
	tests := []struct{ a, b, want int64 }{{5, 10, 1}, {4, 10, 0}, {15, 10, 2}, {-5, 10, -1}, {-4, 10, 0}, {0, 7, 0},
		{4490, 1000, 4}, {4500, 1000, 5}, {4499, 1000, 4}, {-4500, 1000, -5}, {-4499, 1000, -4}}
	for _, tt := range tests {
		if got := roundDiv(tt.a, tt.b); got != tt.want {
			t.Errorf("roundDiv(%d, %d) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}
