package presell

import "testing"

func TestTicketBarcode(t *testing.T) {
	got := TicketBarcode(1, 42, "a3f9c2d1-0000-4000-8000-000000000000")
	if got != "GL010042A3F9" {
		t.Errorf("barcode = %q", got)
	}
}
