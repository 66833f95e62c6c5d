package protocol

import (
	"strconv"
)

// Money is an amount in integer cents. On the wire it is a decimal number of
// currency units with at most two decimals (1250 → 12.5), as FD1 shows money.
type Money int64

// MarshalJSON writes cents as a decimal number without trailing zeros.
func (m Money) MarshalJSON() ([]byte, error) { return []byte(m.String()), nil }

// String is the decimal form: 1250 → "12.5", 5 → "0.05", -120 → "-1.2".
func (m Money) String() string {
	neg := m < 0
	c := int64(m)
	if neg {
		c = -c
	}
	units, cents := c/100, c%100
	s := strconv.FormatInt(units, 10)
	switch {
	case cents == 0:
	case cents%10 == 0:
		s += "." + strconv.FormatInt(cents/10, 10)
	default:
		s += "." + string(rune('0'+cents/10)) + string(rune('0'+cents%10))
	}
	if neg {
		s = "-" + s
	}
	return s
}
