package protocol

import (
	"encoding/json"
	"reflect"
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

// UnmarshalJSON reads a decimal number of currency units exactly (no float
// rounding): 12.5 → 1250. More than two decimals, or an amount that does not
// fit, is an error naming the field.
func (m *Money) UnmarshalJSON(b []byte) error {
	d, ok := parseFilterDecimal(string(b))
	if !ok {
		return &json.UnmarshalTypeError{Value: describeJSON(b), Type: reflect.TypeFor[Money]()}
	}
	cents, err := d.scaled(2)
	if err != nil {
		return &json.UnmarshalTypeError{Value: "number " + string(b), Type: reflect.TypeFor[Money]()}
	}
	*m = Money(cents)
	return nil
}

func describeJSON(b []byte) string {
	switch jsonKind(b) {
	case "a string":
		return "string"
	case "a boolean":
		return "bool"
	case "an object":
		return "object"
	case "an array":
		return "array"
	}
	return string(b)
}
