package protocol

import (
	"bytes"
	"cmp"
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Op is a comparison operator of a q filter.
type Op string

// The operators a q key may carry in parentheses: "price(>=)".
const (
	OpEq Op = "="
	OpNe Op = "!="
	OpLt Op = "<"
	OpLe Op = "<="
	OpGt Op = ">"
	OpGe Op = ">="
)

// filterOps is the closed set of operators; anything else in parentheses is
// rejected rather than guessed at, so a typo never silently widens a filter.
var filterOps = map[string]Op{"=": OpEq, "!=": OpNe, "<": OpLt, "<=": OpLe, ">": OpGt, ">=": OpGe}

// filterOpList is filterOps in the order error messages list them.
const filterOpList = "=, !=, <, <=, >, >="

// Kind is the type a filterable field holds; it decides how a value is read.
type Kind int

// The kinds a field in Fields may have.
const (
	KindString Kind = iota + 1 // JSON string
	KindInt                    // JSON integer (no fraction, fits int64)
	KindMoney                  // JSON decimal number of currency units, held as int64 cents (12.5 -> 1250); more than 2 decimals is an error
	KindBool                   // JSON true/false, also 0/1
	// KindSeconds is a whole number of seconds from 0 to MaxFilterSeconds:
	// a span the endpoint turns into a time.Duration (age of a presell), so
	// it is bounded where time.Duration(n)*time.Second would overflow and
	// wrap round to a negative span that matches everything. Out of range
	// is bad_filter, not a silent empty or full list.
	KindSeconds
)

// MaxFilterSeconds is the largest KindSeconds value: ten years (of 365.25
// days), far beyond anything a lane keeps open and far below the ~292
// years a time.Duration holds.
const MaxFilterSeconds = 10 * 36525 * 24 * 60 * 60 / 100

// Fields names the fields an endpoint allows in q, with their kinds.
type Fields map[string]Kind

// Cond is one parsed condition. Value is string, int64 (KindInt and
// KindSeconds; KindMoney in cents) or bool. For ParseEventFilter (no
// Fields), Value is string, float64 or bool.
type Cond struct {
	Field string
	Op    Op
	Value any
}

// Limits on a q object. They bound the work one request can ask for and keep
// hostile input out of SQL builders and logs.
const (
	maxFilterKeys     = 32
	maxFilterFieldLen = 64
	maxFilterString   = 1024
	// filterMoneyPlaces is how many decimals KindMoney keeps: values are cents.
	filterMoneyPlaces = 2
	// filterClip is how much of a hostile key or value an error message repeats.
	filterClip = 80
)

// ParseFilter reads q against the allowed fields. Unknown fields are errors
// naming the allowed ones (sorted). KindBool and KindString allow only = and
// !=. Conds come back sorted by Field then Op so that results are
// deterministic.
func ParseFilter(q map[string]json.RawMessage, fields Fields) ([]Cond, error) {
	return parseFilterWith(len(q), sortedFilterKeys(q), func(key, field string, op Op) (any, error) {
		kind, err := filterFieldKind(key, field, op, fields)
		if err != nil {
			return nil, err
		}
		lit, err := readFilterJSON(key, q[key])
		if err != nil {
			return nil, err
		}
		return filterValueOfKind(key, kind, lit)
	})
}

// ParseQueryFilter is the HTTP-GET form: values arrive as strings and are
// converted by the field's kind ("5" -> int 5, "12.50" -> 1250 cents,
// "true"/"1" -> true).
func ParseQueryFilter(q map[string]string, fields Fields) ([]Cond, error) {
	return parseFilterWith(len(q), sortedFilterKeys(q), func(key, field string, op Op) (any, error) {
		kind, err := filterFieldKind(key, field, op, fields)
		if err != nil {
			return nil, err
		}
		return filterValueOfKind(key, kind, queryLiteral(kind, q[key]))
	})
}

// ParseEventFilter reads q for a firehose, where any field may be named;
// numbers are float64.
func ParseEventFilter(q map[string]json.RawMessage) ([]Cond, error) {
	return parseFilterWith(len(q), sortedFilterKeys(q), func(key, field string, op Op) (any, error) {
		lit, err := readFilterJSON(key, q[key])
		if err != nil {
			return nil, err
		}
		return eventFilterValue(key, op, lit)
	})
}

// parseFilterWith is the loop the three parsers share: limit the key count,
// split each key, let value() read the value, sort the result. Keys arrive
// sorted so that, of several bad keys, the same one is reported every time.
func parseFilterWith(n int, keys []string, value func(key, field string, op Op) (any, error)) ([]Cond, error) {
	if n > maxFilterKeys {
		return nil, Errorf(CodeBadFilter, "q has %d keys; at most %d are allowed", n, maxFilterKeys)
	}
	conds := make([]Cond, 0, n)
	for _, key := range keys {
		field, op, err := splitFilterKey(key)
		if err != nil {
			return nil, err
		}
		v, err := value(key, field, op)
		if err != nil {
			return nil, err
		}
		conds = append(conds, Cond{Field: field, Op: op, Value: v})
	}
	// Stable, so "price" and "price(=)" keep their key order as a tiebreak.
	slices.SortStableFunc(conds, func(a, b Cond) int {
		return cmp.Or(strings.Compare(a.Field, b.Field), strings.Compare(string(a.Op), string(b.Op)))
	})
	return conds, nil
}

func sortedFilterKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// splitFilterKey splits "price(>=)" into "price" and OpGe; a bare name is
// equality. Only the first "(" starts the operator, so "a(>=)(<)" reads as
// operator ">=)(<" and is rejected.
func splitFilterKey(key string) (string, Op, error) {
	field, rest, hasOp := strings.Cut(key, "(")
	if err := checkFilterField(key, field); err != nil {
		return "", "", err
	}
	if !hasOp {
		return field, OpEq, nil
	}
	opText, closed := strings.CutSuffix(rest, ")")
	if !closed {
		return "", "", Errorf(CodeBadFilter, "q[%s]: operator is not closed with \")\"", quoteClipped(key))
	}
	op, ok := filterOps[opText]
	if !ok {
		return "", "", Errorf(CodeBadFilter, "q[%s]: unknown operator %s; operators are %s",
			quoteClipped(key), quoteClipped(opText), filterOpList)
	}
	return field, op, nil
}

// checkFilterField enforces the field-name alphabet. Field names may reach
// SQL (as allow-listed column names) and logs, so the alphabet is ASCII only:
// no quotes, spaces, or look-alike characters get through.
func checkFilterField(key, field string) error {
	switch {
	case field == "":
		return Errorf(CodeBadFilter, "q[%s]: the field name is empty", quoteClipped(key))
	case len(field) > maxFilterFieldLen:
		return Errorf(CodeBadFilter, "q[%s]: the field name is %d bytes; at most %d are allowed",
			quoteClipped(key), len(field), maxFilterFieldLen)
	}
	for i := 0; i < len(field); i++ {
		if !isFilterFieldByte(field[i]) {
			return Errorf(CodeBadFilter, "q[%s]: a field name may hold only letters, digits, \"_\" and \".\"",
				quoteClipped(key))
		}
	}
	// Empty path segments ("a..b", ".a", "a.") can never name a nested value.
	if slices.Contains(strings.Split(field, "."), "") {
		return Errorf(CodeBadFilter, "q[%s]: field name %q has an empty part between dots", quoteClipped(key), field)
	}
	return nil
}

func isFilterFieldByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.'
}

// filterFieldKind looks the field up in the allow-list and checks that its
// kind has an order: strings and booleans only support = and !=.
func filterFieldKind(key, field string, op Op, fields Fields) (Kind, error) {
	kind, ok := fields[field]
	if !ok {
		return 0, unknownFilterField(key, field, fields)
	}
	if (kind == KindString || kind == KindBool) && op != OpEq && op != OpNe {
		return 0, Errorf(CodeBadFilter, "q[%s]: operator %s does not apply to %s field; use = or !=",
			quoteClipped(key), op, filterKindName(kind))
	}
	return kind, nil
}

func unknownFilterField(key, field string, fields Fields) error {
	if len(fields) == 0 {
		return Errorf(CodeBadFilter, "q[%s]: unknown field %q; this endpoint takes no q filters", quoteClipped(key), field)
	}
	return Errorf(CodeBadFilter, "q[%s]: unknown field %q; fields are %s",
		quoteClipped(key), field, strings.Join(sortedFilterKeys(fields), ", "))
}

func filterKindName(k Kind) string {
	switch k {
	case KindString:
		return "a text"
	case KindInt:
		return "an integer"
	case KindMoney:
		return "a money"
	case KindSeconds:
		return "a seconds"
	case KindBool:
		return "a boolean"
	}
	return "an unknown"
}

// filterType is the JSON type of a q value.
type filterType int

const (
	filterString filterType = iota + 1
	filterNumber
	filterBool
	filterNull
	filterArray
	filterObject
)

func (t filterType) String() string {
	return [...]string{"nothing", "a string", "a number", "a boolean", "null", "an array", "an object"}[t]
}

// filterLiteral is a q value before it is read by kind: the string's text,
// the number's literal spelling (kept exact, not rounded through float64), or
// the boolean.
type filterLiteral struct {
	typ  filterType
	text string
	b    bool
}

// readFilterJSON classifies a raw JSON value. The raw value normally comes
// from json.Unmarshal and is valid, but callers may build q by hand, so
// every branch still checks its syntax.
func readFilterJSON(key string, raw json.RawMessage) (filterLiteral, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return filterLiteral{}, Errorf(CodeBadFilter, "q[%s]: the value is missing", quoteClipped(key))
	}
	switch c := raw[0]; {
	case c == '"':
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return filterLiteral{}, invalidFilterJSON(key)
		}
		return filterLiteral{typ: filterString, text: s}, nil
	case c == 't' || c == 'f':
		var b bool
		if json.Unmarshal(raw, &b) != nil {
			return filterLiteral{}, invalidFilterJSON(key)
		}
		return filterLiteral{typ: filterBool, b: b}, nil
	case c == '-' || c >= '0' && c <= '9':
		if _, ok := parseFilterDecimal(string(raw)); !ok {
			return filterLiteral{}, invalidFilterJSON(key)
		}
		return filterLiteral{typ: filterNumber, text: string(raw)}, nil
	case c == 'n':
		return filterLiteral{}, Errorf(CodeBadFilter, "q[%s]: want a string, number or boolean, got null", quoteClipped(key))
	case c == '[':
		return filterLiteral{}, Errorf(CodeBadFilter, "q[%s]: want a string, number or boolean, got an array", quoteClipped(key))
	case c == '{':
		return filterLiteral{}, Errorf(CodeBadFilter, "q[%s]: want a string, number or boolean, got an object", quoteClipped(key))
	}
	return filterLiteral{}, invalidFilterJSON(key)
}

func invalidFilterJSON(key string) error {
	return Errorf(CodeBadFilter, "q[%s]: the value is not valid JSON", quoteClipped(key))
}

// queryLiteral types an HTTP query value by the field's kind, since a query
// string carries no JSON types. Booleans take true/false and 1/0; anything
// else is passed on as a string so the kind check reports it. Numbers stay
// strings too: a number sent as text is read by one rule, wherever it
// comes from (see filterScaledValue).
func queryLiteral(kind Kind, s string) filterLiteral {
	switch kind {
	case KindBool:
		switch s {
		case "true", "false":
			return filterLiteral{typ: filterBool, b: s == "true"}
		case "1", "0":
			return filterLiteral{typ: filterNumber, text: s}
		}
	}
	return filterLiteral{typ: filterString, text: s}
}

// filterValueOfKind turns a literal into the Go value the field's kind holds.
func filterValueOfKind(key string, kind Kind, lit filterLiteral) (any, error) {
	switch kind {
	case KindString:
		return filterStringValue(key, lit)
	case KindInt:
		return filterScaledValue(key, lit, 0)
	case KindMoney:
		return filterScaledValue(key, lit, filterMoneyPlaces)
	case KindBool:
		return filterBoolValue(key, lit)
	case KindSeconds:
		return filterSecondsValue(key, lit)
	}
	// A Fields entry with no valid kind is a bug in the endpoint, not the client.
	return nil, Errorf(CodeInternal, "q[%s]: the field is declared with unknown kind %d", quoteClipped(key), kind)
}

func filterStringValue(key string, lit filterLiteral) (any, error) {
	if lit.typ != filterString {
		return nil, filterWantErr(key, "a string", lit)
	}
	if len(lit.text) > maxFilterString {
		return nil, Errorf(CodeBadFilter, "q[%s]: the string is %d bytes; at most %d are allowed",
			quoteClipped(key), len(lit.text), maxFilterString)
	}
	return lit.text, nil
}

// filterScaledValue reads an integer (places 0) or cents (places 2) exactly
// from the number's decimal spelling, so 0.29 is 29 cents and not 28.999….
// A string holding a plain decimal ("17", "20.50") is read as that number,
// since FD1 clients and HTTP GET send numbers as text; any other string
// ("1e3", " 17", "0x10", "NaN") is refused.
func filterScaledValue(key string, lit filterLiteral, places int) (any, error) {
	if lit.typ == filterString {
		if !isPlainDecimal(lit.text) {
			return nil, Errorf(CodeBadFilter, "q[%s]: want a number, got string %s", quoteClipped(key), quoteClipped(lit.text))
		}
		lit.typ = filterNumber
	}
	if lit.typ != filterNumber {
		return nil, filterWantErr(key, "a number", lit)
	}
	d, ok := parseFilterDecimal(lit.text)
	if !ok {
		return nil, Errorf(CodeBadFilter, "q[%s]: want a number, got %s", quoteClipped(key), quoteClipped(lit.text))
	}
	n, err := d.scaled(places)
	switch err {
	case errDecimalFraction:
		if places == 0 {
			return nil, Errorf(CodeBadFilter, "q[%s]: want a whole number, got %s", quoteClipped(key), clipClientText(lit.text))
		}
		return nil, Errorf(CodeBadFilter, "q[%s]: want at most %d decimals, got %s", quoteClipped(key), places, clipClientText(lit.text))
	case errDecimalRange:
		return nil, Errorf(CodeBadFilter, "q[%s]: %s is out of range", quoteClipped(key), clipClientText(lit.text))
	}
	return n, nil
}

// filterSecondsValue reads a KindSeconds value: an integer in
// [0, MaxFilterSeconds].
func filterSecondsValue(key string, lit filterLiteral) (any, error) {
	v, err := filterScaledValue(key, lit, 0)
	if err != nil {
		return nil, err
	}
	if n := v.(int64); n < 0 || n > MaxFilterSeconds {
		return nil, Errorf(CodeBadFilter, "q[%s]: want seconds from 0 to %d (10 years), got %s",
			quoteClipped(key), MaxFilterSeconds, clipClientText(lit.text))
	}
	return v, nil
}

// filterBoolValue accepts true/false and, for clients that send flags as
// numbers, 0/1.
func filterBoolValue(key string, lit filterLiteral) (any, error) {
	switch lit.typ {
	case filterBool:
		return lit.b, nil
	case filterNumber:
		if d, ok := parseFilterDecimal(lit.text); ok {
			if n, err := d.scaled(0); err == nil && (n == 0 || n == 1) {
				return n == 1, nil
			}
		}
		return nil, Errorf(CodeBadFilter, "q[%s]: want true, false, 1 or 0, got %s", quoteClipped(key), clipClientText(lit.text))
	}
	return nil, filterWantErr(key, "true, false, 1 or 0", lit)
}

// eventFilterValue reads a firehose value. Events are free-form JSON, so
// numbers stay float64 like the decoded events they are compared with.
func eventFilterValue(key string, op Op, lit filterLiteral) (any, error) {
	switch lit.typ {
	case filterString:
		return filterStringValue(key, lit)
	case filterNumber:
		f, err := strconv.ParseFloat(lit.text, 64)
		if err != nil || math.IsInf(f, 0) {
			return nil, Errorf(CodeBadFilter, "q[%s]: %s is out of range", quoteClipped(key), clipClientText(lit.text))
		}
		return f, nil
	case filterBool:
		if op != OpEq && op != OpNe {
			return nil, Errorf(CodeBadFilter, "q[%s]: operator %s does not apply to a boolean; use = or !=", quoteClipped(key), op)
		}
		return lit.b, nil
	}
	return nil, filterWantErr(key, "a string, number or boolean", lit)
}

func filterWantErr(key, want string, lit filterLiteral) error {
	return Errorf(CodeBadFilter, "q[%s]: want %s, got %s", quoteClipped(key), want, lit.typ)
}

// quoteClipped quotes s for an error message, cut to filterClip bytes: keys
// and values are client input, and a megabyte key should not become a
// megabyte log line. %q also escapes control and invalid bytes.
func quoteClipped(s string) string {
	return strconv.Quote(clipClientText(s))
}

func clipClientText(s string) string {
	if len(s) <= filterClip {
		return s
	}
	cut := filterClip
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// filterDecimal is a JSON number as digits × 10^exp, held as text so that no
// value is rounded. digits has no leading or trailing zeros; "" is zero.
type filterDecimal struct {
	neg    bool
	digits string
	exp    int
}

type decimalError int

const (
	errDecimalFraction decimalError = iota + 1 // more decimals than asked for
	errDecimalRange                            // does not fit int64
)

func (e decimalError) Error() string {
	if e == errDecimalFraction {
		return "too many decimals"
	}
	return "out of range"
}

// maxDecimalExp caps exponents. Any exponent beyond it is already far outside
// int64 (or, negative, far below a cent), and capping keeps 1e999999999 from
// costing memory or overflowing int arithmetic.
const maxDecimalExp = 10000

// parseFilterDecimal reads a number in JSON syntax (leading zeros allowed,
// for query strings like "05").
func parseFilterDecimal(s string) (filterDecimal, bool) {
	var d filterDecimal
	s, d.neg = strings.CutPrefix(s, "-")
	intPart, s := cutDecimalDigits(s)
	if intPart == "" {
		return d, false
	}
	var frac string
	if rest, ok := strings.CutPrefix(s, "."); ok {
		if frac, s = cutDecimalDigits(rest); frac == "" {
			return d, false
		}
	}
	exp := 0
	if len(s) > 0 && (s[0] == 'e' || s[0] == 'E') {
		var ok bool
		if exp, ok = parseDecimalExp(s[1:]); !ok {
			return d, false
		}
		s = ""
	}
	if s != "" {
		return d, false
	}
	d.digits = strings.TrimLeft(intPart+frac, "0")
	d.exp = exp - len(frac)
	for strings.HasSuffix(d.digits, "0") {
		d.digits = d.digits[:len(d.digits)-1]
		d.exp++
	}
	return d, true
}

// parseDecimalExp reads an exponent ("+5", "-12", "7"), capped at
// ±maxDecimalExp.
func parseDecimalExp(s string) (int, bool) {
	neg := false
	if len(s) > 0 && (s[0] == '+' || s[0] == '-') {
		neg, s = s[0] == '-', s[1:]
	}
	digits, rest := cutDecimalDigits(s)
	if digits == "" || rest != "" {
		return 0, false
	}
	exp := maxDecimalExp
	if t := strings.TrimLeft(digits, "0"); len(t) <= 5 {
		exp, _ = strconv.Atoi("0" + t)
		exp = min(exp, maxDecimalExp)
	}
	if neg {
		exp = -exp
	}
	return exp, true
}

func cutDecimalDigits(s string) (digits, rest string) {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	return s[:i], s[i:]
}

// scaled returns d × 10^places as an exact int64.
func (d filterDecimal) scaled(places int) (int64, error) {
	if d.digits == "" {
		return 0, nil
	}
	shift := d.exp + places
	if shift < 0 {
		return 0, errDecimalFraction
	}
	// int64 holds at most 19 digits; checking first avoids building huge strings.
	if len(d.digits)+shift > 19 {
		return 0, errDecimalRange
	}
	text := d.digits + strings.Repeat("0", shift)
	if d.neg {
		text = "-" + text
	}
	n, err := strconv.ParseInt(text, 10, 64)
	if err != nil {
		return 0, errDecimalRange
	}
	return n, nil
}

// Match reports whether an event (decoded JSON object: map[string]any with
// float64 numbers, or json.Number) satisfies every cond. Field "a.b" looks
// into nested objects. A field missing from the event never matches (not even
// !=). Comparing values of different types never matches, for != too: a type
// mismatch is "no match". Strings compare bytewise for < > etc.
func Match(conds []Cond, event map[string]any) bool {
	for _, c := range conds {
		v, ok := matchEventField(event, c.Field)
		if !ok || !matchCond(c, v) {
			return false
		}
	}
	return true
}

// matchEventField walks a dotted path through nested objects.
func matchEventField(event map[string]any, path string) (any, bool) {
	var cur any = event
	for part := range strings.SplitSeq(path, ".") {
		obj, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = obj[part]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// matchCond compares one event value with one condition. Numbers of any Go
// numeric type compare as float64; other pairs must have the same type,
// except that a string holding a plain decimal compares with a number as
// that number: an event's fields have no declared types to read the filter
// by, and FD1 clients and HTTP GET send numbers as text.
func matchCond(c Cond, v any) bool {
	switch want := c.Value.(type) {
	case string:
		if got, ok := v.(string); ok {
			return opHolds(c.Op, strings.Compare(got, want))
		}
		got, ok := eventNumber(v)
		if !ok || !isPlainDecimal(want) {
			return false
		}
		n, err := strconv.ParseFloat(want, 64)
		return err == nil && opHolds(c.Op, cmp.Compare(got, n))
	case bool:
		got, ok := v.(bool)
		switch {
		case !ok:
			return false
		case c.Op == OpEq:
			return got == want
		case c.Op == OpNe:
			return got != want
		}
		return false // booleans have no order
	}
	want, ok := eventNumber(c.Value)
	if !ok {
		return false
	}
	got, ok := eventNumber(v)
	return ok && opHolds(c.Op, cmp.Compare(got, want))
}

// eventNumber reads the numeric types a decoded event can hold; the Go
// integer types cover events built in code rather than decoded.
func eventNumber(v any) (float64, bool) {
	switch n := v.(type) {
	case float64:
		return n, !math.IsNaN(n)
	case json.Number:
		f, err := n.Float64()
		return f, err == nil && !math.IsNaN(f)
	case int64:
		return float64(n), true
	case int:
		return float64(n), true
	case float32:
		return float64(n), !math.IsNaN(float64(n))
	case int32:
		return float64(n), true
	}
	return 0, false
}

// opHolds applies an operator to a comparison result (-1, 0, +1).
func opHolds(op Op, c int) bool {
	switch op {
	case OpEq:
		return c == 0
	case OpNe:
		return c != 0
	case OpLt:
		return c < 0
	case OpLe:
		return c <= 0
	case OpGt:
		return c > 0
	case OpGe:
		return c >= 0
	}
	return false
}
