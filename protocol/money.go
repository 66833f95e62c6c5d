package protocol

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"strings"
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

// Dollars is the form for a person to read: 1150 → "$11.50", -5 → "-$0.05".
func (m Money) Dollars() string {
	sign, c := "", int64(m)
	if c < 0 {
		sign, c = "-", -c
	}
	return fmt.Sprintf("%s$%d.%02d", sign, c/100, c%100)
}

// UnmarshalJSON reads a decimal number of currency units exactly (no float
// rounding): 12.5 → 1250. FD1 clients and HTTP GET send numbers as text, so
// a string holding a plain decimal ("20.50") is read the same way; any other
// string ("1e3", " 5", "NaN") is refused. More than two decimals, or an
// amount that does not fit, is an error naming the field.
func (m *Money) UnmarshalJSON(b []byte) error {
	text, seen := string(b), "number "+string(b)
	if len(b) > 0 && b[0] == '"' {
		var s string
		if json.Unmarshal(b, &s) != nil || !isPlainDecimal(s) {
			return &json.UnmarshalTypeError{Value: describeJSON(b), Type: reflect.TypeFor[Money]()}
		}
		text, seen = s, describeJSON(b)
	}
	d, ok := parseFilterDecimal(text)
	if !ok {
		return &json.UnmarshalTypeError{Value: describeJSON(b), Type: reflect.TypeFor[Money]()}
	}
	cents, err := d.scaled(2)
	if err != nil {
		return &json.UnmarshalTypeError{Value: seen, Type: reflect.TypeFor[Money]()}
	}
	*m = Money(cents)
	return nil
}

// isPlainDecimal reports whether s is a decimal number as people write it:
// an optional minus, digits, and optionally a point and more digits. No
// sign "+", exponent, spaces, hex, NaN or Infinity: a number sent as text is
// read only when there is no doubt what it says.
func isPlainDecimal(s string) bool {
	s = strings.TrimPrefix(s, "-")
	intPart, rest := cutDecimalDigits(s)
	if intPart == "" {
		return false
	}
	if rest == "" {
		return true
	}
	rest, ok := strings.CutPrefix(rest, ".")
	if !ok {
		return false
	}
	frac, rest := cutDecimalDigits(rest)
	return frac != "" && rest == ""
}

// isPlainInteger is isPlainDecimal without the fraction.
func isPlainInteger(s string) bool {
	digits, rest := cutDecimalDigits(strings.TrimPrefix(s, "-"))
	return digits != "" && rest == ""
}

// describeJSON says what a client sent where a number was wanted: a
// string is quoted (clipped), so the message shows the bad text.
func describeJSON(b []byte) string {
	switch jsonKind(b) {
	case "a string":
		var s string
		if json.Unmarshal(b, &s) == nil {
			return "string " + quoteClipped(s)
		}
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
