package salesbuilder

// Discounted lets the black-box tests compute the price a discount gives.
var Discounted = discounted

// Journal names the black-box tests look for.
const (
	EvLinesAdd    = evLinesAdd
	EvPaymentsAdd = evPaymentsAdd
)
