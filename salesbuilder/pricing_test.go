package salesbuilder

import (
	"testing"

	"github.com/greenlane-pos/greenlane/lanedb"
)

func TestPrice(t *testing.T) {
	tenPercent := &lanedb.SaleCustomer{CID: 3, DiscountBPS: 1000}
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
		{"10% customer", 550, 2, measureUnit, 0, tenPercent, 1100, 990, causeCustomerDiscount},
		{"10% of an odd amount", 495, 1, measureUnit, 0, tenPercent, 495, 445, causeCustomerDiscount}, // 49.5 off rounds to 50
		{"weighed and discounted", 3990, 250, measureGrams, 0, tenPercent, 998, 898, causeCustomerDiscount},
		{"user price is not discounted", 400, 2, measureUnit, causeUserPrice, tenPercent, 800, 800, causeUserPrice},
		{"no discount customer", 550, 1, measureUnit, 0, &lanedb.SaleCustomer{CID: 1}, 550, 550, causeNone},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := &lanedb.Line{UnitPriceCents: tt.unit, Qty: tt.qty, Measurement: tt.measurement, PriceCause: tt.cause}
			price(l, tt.customer)
			if l.PrediscountPriceCents != tt.wantPre || l.TotalPriceCents != tt.wantTotal || l.PriceCause != tt.wantCause {
				t.Fatalf("pre %d total %d cause %d; want %d %d %d", l.PrediscountPriceCents, l.TotalPriceCents, l.PriceCause,
					tt.wantPre, tt.wantTotal, tt.wantCause)
			}
		})
	}
}

func TestRoundDiv(t *testing.T) {
	tests := []struct{ a, b, want int64 }{{5, 10, 1}, {4, 10, 0}, {15, 10, 2}, {-5, 10, -1}, {-4, 10, 0}, {0, 7, 0}}
	for _, tt := range tests {
		if got := roundDiv(tt.a, tt.b); got != tt.want {
			t.Errorf("roundDiv(%d, %d) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}
