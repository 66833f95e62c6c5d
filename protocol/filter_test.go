package protocol_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/greenlane-pos/greenlane/protocol"
)

// filterTestFields is the allow-list most filter tests (and the fuzz target)
// parse against: one field of each kind plus a dotted name.
var filterTestFields = protocol.Fields{
	"name":    protocol.KindString,
	"pid":     protocol.KindInt,
	"price":   protocol.KindMoney,
	"active":  protocol.KindBool,
	"v.total": protocol.KindMoney,
}

// expectProtoCode fails unless err is (or wraps) a *protocol.Error with code.
func expectProtoCode(t *testing.T, err error, code protocol.Code) *protocol.Error {
	t.Helper()
	var pe *protocol.Error
	if !errors.As(err, &pe) {
		t.Fatalf("error %v (%T) is not a *protocol.Error", err, err)
	}
	if pe.Code != code {
		t.Fatalf("error code = %q, want %q (message %q)", pe.Code, code, pe.Message)
	}
	return pe
}

// decodeFilterQ turns a JSON object into the q map the parsers take.
func decodeFilterQ(t *testing.T, src string) map[string]json.RawMessage {
	t.Helper()
	var q map[string]json.RawMessage
	if err := json.Unmarshal([]byte(src), &q); err != nil {
		t.Fatalf("test q %s: %v", src, err)
	}
	return q
}

func filterCond(field string, op protocol.Op, v any) protocol.Cond {
	return protocol.Cond{Field: field, Op: op, Value: v}
}

// filterCase is one ParseFilter input with either the conds or the error
// text expected. wantErr is a substring of the message.
type filterCase struct {
	name    string
	q       string
	want    []protocol.Cond
	wantErr string
}

func runFilterCases(t *testing.T, cases []filterCase, parse func(map[string]json.RawMessage) ([]protocol.Cond, error)) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parse(decodeFilterQ(t, tc.q))
			if tc.wantErr != "" {
				pe := expectProtoCode(t, err, protocol.CodeBadFilter)
				if !strings.Contains(pe.Message, tc.wantErr) {
					t.Fatalf("message %q does not contain %q", pe.Message, tc.wantErr)
				}
				if got != nil {
					t.Fatalf("conds = %v alongside an error", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("conds = %#v\nwant    %#v", got, tc.want)
			}
		})
	}
}

func parseWithTestFields(q map[string]json.RawMessage) ([]protocol.Cond, error) {
	return protocol.ParseFilter(q, filterTestFields)
}

func TestParseFilterOperators(t *testing.T) {
	ops := []struct {
		suffix string
		op     protocol.Op
	}{
		{"", protocol.OpEq}, {"(=)", protocol.OpEq}, {"(!=)", protocol.OpNe},
		{"(<)", protocol.OpLt}, {"(<=)", protocol.OpLe}, {"(>)", protocol.OpGt}, {"(>=)", protocol.OpGe},
	}
	var cases []filterCase
	for _, o := range ops {
		ordered := o.op != protocol.OpEq && o.op != protocol.OpNe
		cases = append(cases,
			filterCase{name: "int" + o.suffix, q: `{"pid` + o.suffix + `": 42}`, want: []protocol.Cond{filterCond("pid", o.op, int64(42))}},
			filterCase{name: "money" + o.suffix, q: `{"price` + o.suffix + `": 12.5}`, want: []protocol.Cond{filterCond("price", o.op, int64(1250))}},
			filterCase{name: "dotted" + o.suffix, q: `{"v.total` + o.suffix + `": 3}`, want: []protocol.Cond{filterCond("v.total", o.op, int64(300))}},
		)
		if ordered {
			cases = append(cases,
				filterCase{name: "string" + o.suffix, q: `{"name` + o.suffix + `": "x"}`, wantErr: `q["name` + o.suffix + `"]: operator ` + string(o.op) + ` does not apply to a text field`},
				filterCase{name: "bool" + o.suffix, q: `{"active` + o.suffix + `": true}`, wantErr: `does not apply to a boolean field`},
			)
			continue
		}
		cases = append(cases,
			filterCase{name: "string" + o.suffix, q: `{"name` + o.suffix + `": "Milk"}`, want: []protocol.Cond{filterCond("name", o.op, "Milk")}},
			filterCase{name: "bool" + o.suffix, q: `{"active` + o.suffix + `": false}`, want: []protocol.Cond{filterCond("active", o.op, false)}},
		)
	}
	runFilterCases(t, cases, parseWithTestFields)
}

func TestParseFilterValues(t *testing.T) {
	one := func(field string, v any) []protocol.Cond { return []protocol.Cond{filterCond(field, protocol.OpEq, v)} }
	runFilterCases(t, []filterCase{
		// Money is exact cents read from the decimal spelling.
		{name: "money whole", q: `{"price": 5}`, want: one("price", int64(500))},
		{name: "money one decimal", q: `{"price": 12.5}`, want: one("price", int64(1250))},
		{name: "money two decimals", q: `{"price": 12.50}`, want: one("price", int64(1250))},
		{name: "money cent", q: `{"price": 0.01}`, want: one("price", int64(1))},
		{name: "money not float-rounded", q: `{"price": 0.29}`, want: one("price", int64(29))},
		{name: "money negative", q: `{"price": -3.25}`, want: one("price", int64(-325))},
		{name: "money exponent", q: `{"price": 1e2}`, want: one("price", int64(10000))},
		{name: "money negative exponent", q: `{"price": 1.5E-1}`, want: one("price", int64(15))},
		{name: "money trailing zeros", q: `{"price": 1.2300000}`, want: one("price", int64(123))},
		{name: "money zero", q: `{"price": 0}`, want: one("price", int64(0))},
		{name: "money three decimals", q: `{"price": 0.001}`, wantErr: `q["price"]: want at most 2 decimals, got 0.001`},
		{name: "money tiny exponent", q: `{"price": 1e-3}`, wantErr: `want at most 2 decimals`},
		{name: "money too large", q: `{"price": 1e30}`, wantErr: `q["price"]: 1e30 is out of range`},
		{name: "money just too large", q: `{"price": 92233720368547758.08}`, wantErr: `out of range`},
		{name: "money largest", q: `{"price": 92233720368547758.07}`, want: one("price", int64(9223372036854775807))},
		// Integers: an integral spelling is fine, a fraction is not.
		{name: "int", q: `{"pid": 5}`, want: one("pid", int64(5))},
		{name: "int as 5.0", q: `{"pid": 5.0}`, want: one("pid", int64(5))},
		{name: "int exponent", q: `{"pid": 5e2}`, want: one("pid", int64(500))},
		{name: "int 1.5e1", q: `{"pid": 1.5e1}`, want: one("pid", int64(15))},
		{name: "int negative", q: `{"pid": -7}`, want: one("pid", int64(-7))},
		{name: "int max", q: `{"pid": 9223372036854775807}`, want: one("pid", int64(9223372036854775807))},
		{name: "int min", q: `{"pid": -9223372036854775808}`, want: one("pid", int64(-9223372036854775808))},
		{name: "int zero huge exponent", q: `{"pid": 0e999999999}`, want: one("pid", int64(0))},
		{name: "int fraction", q: `{"pid": 5.5}`, wantErr: `q["pid"]: want a whole number, got 5.5`},
		{name: "int tiny", q: `{"pid": 1e-400}`, wantErr: `want a whole number`},
		{name: "int overflow", q: `{"pid": 9223372036854775808}`, wantErr: `out of range`},
		{name: "int huge exponent", q: `{"pid": 1e999999999}`, wantErr: `out of range`},
		// Booleans take 0/1 as well.
		{name: "bool true", q: `{"active": true}`, want: one("active", true)},
		{name: "bool 1", q: `{"active": 1}`, want: one("active", true)},
		{name: "bool 0", q: `{"active": 0}`, want: one("active", false)},
		{name: "bool 1.0", q: `{"active": 1.0}`, want: one("active", true)},
		{name: "bool 2", q: `{"active": 2}`, wantErr: `q["active"]: want true, false, 1 or 0, got 2`},
		{name: "bool 0.5", q: `{"active": 0.5}`, wantErr: `want true, false, 1 or 0`},
		// Strings.
		{name: "string empty", q: `{"name": ""}`, want: one("name", "")},
		{name: "string quotes kept as data", q: `{"name": "O'Brien\"; --"}`, want: one("name", `O'Brien"; --`)},
		{name: "string at limit", q: `{"name": "` + strings.Repeat("x", 1024) + `"}`, want: one("name", strings.Repeat("x", 1024))},
		{name: "string over limit", q: `{"name": "` + strings.Repeat("x", 1025) + `"}`, wantErr: `q["name"]: the string is 1025 bytes; at most 1024`},
		// Wrong JSON types.
		{name: "word for int", q: `{"pid": "five"}`, wantErr: `q["pid"]: want a number, got string "five"`},
		{name: "word for money", q: `{"price(>=)": "five"}`, wantErr: `q["price(>=)"]: want a number, got string "five"`},
		{name: "bool for int", q: `{"pid": true}`, wantErr: `want a number, got a boolean`},
		{name: "number for string", q: `{"name": 5}`, wantErr: `q["name"]: want a string, got a number`},
		{name: "bool for string", q: `{"name": false}`, wantErr: `want a string, got a boolean`},
		{name: "string for bool", q: `{"active": "true"}`, wantErr: `q["active"]: want true, false, 1 or 0, got a string`},
		{name: "null", q: `{"pid": null}`, wantErr: `q["pid"]: want a string, number or boolean, got null`},
		{name: "array", q: `{"pid(<)": [1, 2]}`, wantErr: `q["pid(<)"]: want a string, number or boolean, got an array`},
		{name: "object", q: `{"name": {"$ne": 1}}`, wantErr: `q["name"]: want a string, number or boolean, got an object`},
		{name: "null string field", q: `{"name(!=)": null}`, wantErr: `got null`},
	}, parseWithTestFields)
}

// hostileKeyCases are keys no parser may accept, whatever the value. They are
// shared by the JSON, query and event parsers.
var hostileKeyCases = []struct {
	name, key, wantErr string
}{
	{"sql injection", `name' OR 1=1 --`, `a field name may hold only letters, digits`},
	{"semicolon", `pid;DROP TABLE products`, `a field name may hold only`},
	{"space", `pid `, `a field name may hold only`},
	{"quote", `"pid"`, `a field name may hold only`},
	{"two operators", `pid(>=)(<)`, `unknown operator ">=)(<"`},
	{"operator only", `(=)`, `the field name is empty`},
	{"empty key", ``, `q[""]: the field name is empty`},
	{"65 chars", strings.Repeat("a", 65), `the field name is 65 bytes; at most 64`},
	{"unicode look-alike", `pid(＞=)`, `unknown operator "＞="`},
	{"unicode field", `pıd`, `a field name may hold only`},
	{"unclosed", `pid(>=`, `operator is not closed`},
	{"close only", `pid)`, `a field name may hold only`},
	{"unknown op tilde", `name(~)`, `q["name(~)"]: unknown operator "~"; operators are =, !=, <, <=, >, >=`},
	{"unknown op like", `name(like)`, `unknown operator "like"`},
	{"double equals", `pid(==)`, `unknown operator "=="`},
	{"reversed", `pid(=>)`, `unknown operator "=>"`},
	{"empty op", `pid()`, `unknown operator ""`},
	{"spaced op", `pid( >= )`, `unknown operator " >= "`},
	{"trailing after op", `pid(>=)x`, `operator is not closed`},
	{"double dot", `v..total`, `empty part between dots`},
	{"leading dot", `.pid`, `empty part between dots`},
	{"trailing dot", `pid.`, `empty part between dots`},
	{"nul byte", "pid\x00", `a field name may hold only`},
	{"newline", "pid\n(=)", `a field name may hold only`},
}

func TestParseFilterHostileKeys(t *testing.T) {
	for _, tc := range hostileKeyCases {
		t.Run(tc.name, func(t *testing.T) {
			q := map[string]json.RawMessage{tc.key: json.RawMessage(`1`)}
			_, err := protocol.ParseFilter(q, filterTestFields)
			pe := expectProtoCode(t, err, protocol.CodeBadFilter)
			if !strings.Contains(pe.Message, tc.wantErr) {
				t.Fatalf("message %q does not contain %q", pe.Message, tc.wantErr)
			}
			if !strings.HasPrefix(pe.Message, "q["+strconv.Quote(tc.key)+"]: ") {
				t.Fatalf("message %q does not name the key %q", pe.Message, tc.key)
			}
		})
	}
}

func TestParseFilterLongKeyIsClipped(t *testing.T) {
	key := strings.Repeat("é", 5000) // far past the field limit and the clip
	_, err := protocol.ParseFilter(map[string]json.RawMessage{key: json.RawMessage(`1`)}, filterTestFields)
	pe := expectProtoCode(t, err, protocol.CodeBadFilter)
	if len(pe.Message) > 300 {
		t.Fatalf("message is %d bytes; a hostile key should be clipped", len(pe.Message))
	}
	if !strings.Contains(pe.Message, "…") {
		t.Fatalf("message %q does not show the clip", pe.Message)
	}
}

func TestParseFilterUnknownField(t *testing.T) {
	runFilterCases(t, []filterCase{
		{name: "unknown", q: `{"nope": 1}`, wantErr: `q["nope"]: unknown field "nope"; fields are active, name, pid, price, v.total`},
		{name: "unknown with op", q: `{"cost(>=)": 1}`, wantErr: `q["cost(>=)"]: unknown field "cost"`},
		{name: "case matters", q: `{"PID": 1}`, wantErr: `unknown field "PID"`},
		{name: "_sc is ordinary", q: `{"_sc": "sale"}`, wantErr: `unknown field "_sc"`},
		{name: "nested prefix", q: `{"v": 1}`, wantErr: `unknown field "v"`},
	}, parseWithTestFields)

	_, err := protocol.ParseFilter(decodeFilterQ(t, `{"pid": 1}`), nil)
	pe := expectProtoCode(t, err, protocol.CodeBadFilter)
	if !strings.Contains(pe.Message, "takes no q filters") {
		t.Fatalf("message %q should say no fields are allowed", pe.Message)
	}
}

func TestParseFilterSortedAndAnd(t *testing.T) {
	runFilterCases(t, []filterCase{
		{name: "empty", q: `{}`, want: []protocol.Cond{}},
		{
			name: "several keys sort by field then op",
			q:    `{"price(>=)": 5, "price(<)": 10, "pid(!=)": 3, "name": "x", "active": 1}`,
			want: []protocol.Cond{
				filterCond("active", protocol.OpEq, true),
				filterCond("name", protocol.OpEq, "x"),
				filterCond("pid", protocol.OpNe, int64(3)),
				filterCond("price", protocol.OpLt, int64(1000)),
				filterCond("price", protocol.OpGe, int64(500)),
			},
		},
		{
			name: "bare and (=) both kept, in key order",
			q:    `{"pid(=)": 2, "pid": 1}`,
			want: []protocol.Cond{filterCond("pid", protocol.OpEq, int64(1)), filterCond("pid", protocol.OpEq, int64(2))},
		},
		{
			name:    "first bad key in sorted order is reported",
			q:       `{"zz": 1, "aa": 1, "mm": 1}`,
			wantErr: `q["aa"]`,
		},
	}, parseWithTestFields)

	// Maps iterate in random order; the result must not.
	q := decodeFilterQ(t, `{"price(>=)": 5, "price(<)": 10, "pid(!=)": 3, "name": "x", "pid(<=)": 9, "v.total(>)": 1}`)
	first, err := protocol.ParseFilter(q, filterTestFields)
	if err != nil {
		t.Fatal(err)
	}
	for range 50 {
		again, _ := protocol.ParseFilter(q, filterTestFields)
		if !reflect.DeepEqual(first, again) {
			t.Fatalf("results differ between runs: %v vs %v", first, again)
		}
	}
}

// filterManyFields allows f00..f39 so that key-count limits can be tested with
// valid keys.
func filterManyFields() protocol.Fields {
	fields := protocol.Fields{}
	for i := range 40 {
		fields[fmt.Sprintf("f%02d", i)] = protocol.KindInt
	}
	return fields
}

func filterManyKeys(n int) map[string]json.RawMessage {
	q := map[string]json.RawMessage{}
	for i := range n {
		q[fmt.Sprintf("f%02d", i)] = json.RawMessage(`1`)
	}
	return q
}

func TestFilterKeyLimit(t *testing.T) {
	fields := filterManyFields()
	if conds, err := protocol.ParseFilter(filterManyKeys(32), fields); err != nil || len(conds) != 32 {
		t.Fatalf("32 keys: %d conds, err %v", len(conds), err)
	}
	_, err := protocol.ParseFilter(filterManyKeys(33), fields)
	pe := expectProtoCode(t, err, protocol.CodeBadFilter)
	if !strings.Contains(pe.Message, "q has 33 keys; at most 32") {
		t.Fatalf("message %q", pe.Message)
	}
	_, err = protocol.ParseEventFilter(filterManyKeys(33))
	expectProtoCode(t, err, protocol.CodeBadFilter)

	query := map[string]string{}
	for k := range filterManyKeys(33) {
		query[k] = "1"
	}
	_, err = protocol.ParseQueryFilter(query, fields)
	expectProtoCode(t, err, protocol.CodeBadFilter)
}

// Hand-built q maps can hold raw values encoding/json never would.
func TestParseFilterHandBuiltRaw(t *testing.T) {
	for name, raw := range map[string]string{
		"empty":       ``,
		"spaces":      `   `,
		"bad number":  `1.`,
		"hex":         `0x10`,
		"word":        `yes`,
		"bad string":  `"abc`,
		"bad bool":    `tru`,
		"plus number": `+1`,
		"NaN":         `NaN`,
	} {
		t.Run(name, func(t *testing.T) {
			_, err := protocol.ParseFilter(map[string]json.RawMessage{"pid": json.RawMessage(raw)}, filterTestFields)
			expectProtoCode(t, err, protocol.CodeBadFilter)
			_, err = protocol.ParseEventFilter(map[string]json.RawMessage{"pid": json.RawMessage(raw)})
			expectProtoCode(t, err, protocol.CodeBadFilter)
		})
	}
	conds, err := protocol.ParseFilter(map[string]json.RawMessage{"pid": json.RawMessage(" 7 ")}, filterTestFields)
	if err != nil || !reflect.DeepEqual(conds, []protocol.Cond{filterCond("pid", protocol.OpEq, int64(7))}) {
		t.Fatalf("padded raw value: %v, %v", conds, err)
	}
}

func TestParseFilterUnknownKindIsInternal(t *testing.T) {
	_, err := protocol.ParseFilter(decodeFilterQ(t, `{"x": 1}`), protocol.Fields{"x": protocol.Kind(99)})
	expectProtoCode(t, err, protocol.CodeInternal)
}

func TestParseQueryFilter(t *testing.T) {
	one := func(field string, op protocol.Op, v any) []protocol.Cond {
		return []protocol.Cond{filterCond(field, op, v)}
	}
	cases := []struct {
		name    string
		q       map[string]string
		want    []protocol.Cond
		wantErr string
	}{
		{name: "int", q: map[string]string{"pid": "5"}, want: one("pid", protocol.OpEq, int64(5))},
		{name: "int op", q: map[string]string{"pid(<)": "2000"}, want: one("pid", protocol.OpLt, int64(2000))},
		{name: "int leading zero", q: map[string]string{"pid": "05"}, want: one("pid", protocol.OpEq, int64(5))},
		{name: "int 5.0", q: map[string]string{"pid": "5.0"}, want: one("pid", protocol.OpEq, int64(5))},
		{name: "money", q: map[string]string{"price(>=)": "12.50"}, want: one("price", protocol.OpGe, int64(1250))},
		{name: "money whole", q: map[string]string{"price": "5"}, want: one("price", protocol.OpEq, int64(500))},
		{name: "money exponent", q: map[string]string{"price": "1e2"}, wantErr: `q["price"]: want a number, got string "1e2"`},
		{name: "bool true", q: map[string]string{"active": "true"}, want: one("active", protocol.OpEq, true)},
		{name: "bool 1", q: map[string]string{"active": "1"}, want: one("active", protocol.OpEq, true)},
		{name: "bool false", q: map[string]string{"active(!=)": "false"}, want: one("active", protocol.OpNe, false)},
		{name: "bool 0", q: map[string]string{"active": "0"}, want: one("active", protocol.OpEq, false)},
		{name: "string", q: map[string]string{"name": "5"}, want: one("name", protocol.OpEq, "5")},
		{name: "string empty", q: map[string]string{"name(!=)": ""}, want: one("name", protocol.OpNe, "")},
		{name: "int word", q: map[string]string{"pid": "abc"}, wantErr: `q["pid"]: want a number, got string "abc"`},
		{name: "int empty", q: map[string]string{"pid": ""}, wantErr: `q["pid"]: want a number, got string ""`},
		{name: "int padded", q: map[string]string{"pid": " 5"}, wantErr: `want a number`},
		{name: "int plus", q: map[string]string{"pid": "+5"}, wantErr: `want a number`},
		{name: "int hex", q: map[string]string{"pid": "0x10"}, wantErr: `want a number`},
		{name: "int underscore", q: map[string]string{"pid": "1_000"}, wantErr: `want a number`},
		{name: "int Inf", q: map[string]string{"pid": "Inf"}, wantErr: `want a number`},
		{name: "int fraction", q: map[string]string{"pid": "5.5"}, wantErr: `q["pid"]: want a whole number, got 5.5`},
		{name: "money three decimals", q: map[string]string{"price": "0.001"}, wantErr: `want at most 2 decimals`},
		{name: "money comma", q: map[string]string{"price": "12,50"}, wantErr: `want a number`},
		{name: "money overflow", q: map[string]string{"price": "99999999999999999999"}, wantErr: `out of range`},
		{name: "bool yes", q: map[string]string{"active": "yes"}, wantErr: `q["active"]: want true, false, 1 or 0, got a string`},
		{name: "bool TRUE", q: map[string]string{"active": "TRUE"}, wantErr: `want true, false, 1 or 0`},
		{name: "string order op", q: map[string]string{"name(>)": "a"}, wantErr: `does not apply to a text field`},
		{name: "string too long", q: map[string]string{"name": strings.Repeat("y", 1025)}, wantErr: `at most 1024`},
		{name: "unknown field", q: map[string]string{"cost": "1"}, wantErr: `unknown field "cost"; fields are active, name, pid, price, v.total`},
		{name: "hostile key", q: map[string]string{"name' OR 1=1 --": "x"}, wantErr: `a field name may hold only`},
		{name: "unknown op", q: map[string]string{"pid(like)": "1"}, wantErr: `unknown operator "like"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := protocol.ParseQueryFilter(tc.q, filterTestFields)
			if tc.wantErr != "" {
				pe := expectProtoCode(t, err, protocol.CodeBadFilter)
				if !strings.Contains(pe.Message, tc.wantErr) {
					t.Fatalf("message %q does not contain %q", pe.Message, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("conds = %#v, want %#v", got, tc.want)
			}
		})
	}
}

func TestParseQueryFilterHostileKeys(t *testing.T) {
	for _, tc := range hostileKeyCases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := protocol.ParseQueryFilter(map[string]string{tc.key: "1"}, filterTestFields)
			pe := expectProtoCode(t, err, protocol.CodeBadFilter)
			if !strings.Contains(pe.Message, tc.wantErr) {
				t.Fatalf("message %q does not contain %q", pe.Message, tc.wantErr)
			}
		})
	}
}

func TestParseEventFilter(t *testing.T) {
	runFilterCases(t, []filterCase{
		{name: "schema", q: `{"_sc": "sale.closed"}`, want: []protocol.Cond{filterCond("_sc", protocol.OpEq, "sale.closed")}},
		{name: "any field, float numbers", q: `{"v.total(>=)": 12.5, "lane": 3}`, want: []protocol.Cond{
			filterCond("lane", protocol.OpEq, float64(3)),
			filterCond("v.total", protocol.OpGe, 12.5),
		}},
		{name: "more decimals than cents are fine", q: `{"w(<)": 0.001}`, want: []protocol.Cond{filterCond("w", protocol.OpLt, 0.001)}},
		{name: "string order", q: `{"name(<)": "M"}`, want: []protocol.Cond{filterCond("name", protocol.OpLt, "M")}},
		{name: "bool", q: `{"v.paid(!=)": true}`, want: []protocol.Cond{filterCond("v.paid", protocol.OpNe, true)}},
		{name: "bool order", q: `{"v.paid(<)": true}`, wantErr: `q["v.paid(<)"]: operator < does not apply to a boolean`},
		{name: "null", q: `{"_sc": null}`, wantErr: `q["_sc"]: want a string, number or boolean, got null`},
		{name: "array", q: `{"_sc": ["a"]}`, wantErr: `got an array`},
		{name: "object", q: `{"v": {"total": 1}}`, wantErr: `got an object`},
		{name: "number out of range", q: `{"n": 1e400}`, wantErr: `q["n"]: 1e400 is out of range`},
		{name: "string too long", q: `{"s": "` + strings.Repeat("z", 1025) + `"}`, wantErr: `at most 1024`},
		{name: "unknown op", q: `{"_sc(~)": "x"}`, wantErr: `unknown operator "~"`},
	}, protocol.ParseEventFilter)

	for _, tc := range hostileKeyCases {
		t.Run("hostile "+tc.name, func(t *testing.T) {
			_, err := protocol.ParseEventFilter(map[string]json.RawMessage{tc.key: json.RawMessage(`1`)})
			pe := expectProtoCode(t, err, protocol.CodeBadFilter)
			if !strings.Contains(pe.Message, tc.wantErr) {
				t.Fatalf("message %q does not contain %q", pe.Message, tc.wantErr)
			}
		})
	}
}

const matchTestEvent = `{
	"_sc": "sale.closed",
	"store": "A1",
	"gone": null,
	"v": {"total": 12.5, "lines": 3, "paid": true, "customer": {"tier": "gold"}, "tags": ["x"]}
}`

// decodeMatchEvent decodes the test event the two ways firehose code may.
func decodeMatchEvent(t *testing.T, useNumber bool) map[string]any {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(matchTestEvent))
	if useNumber {
		dec.UseNumber()
	}
	var ev map[string]any
	if err := dec.Decode(&ev); err != nil {
		t.Fatal(err)
	}
	return ev
}

func TestMatch(t *testing.T) {
	cases := []struct {
		name string
		q    string
		want bool
	}{
		{"no conds", `{}`, true},
		{"schema eq", `{"_sc": "sale.closed"}`, true},
		{"schema eq other", `{"_sc": "sale.voided"}`, false},
		{"schema ne", `{"_sc(!=)": "sale.voided"}`, true},
		{"nested =", `{"v.total": 12.5}`, true},
		{"nested = other", `{"v.total": 12}`, false},
		{"nested !=", `{"v.total(!=)": 12}`, true},
		{"nested != same", `{"v.total(!=)": 12.5}`, false},
		{"nested < no", `{"v.total(<)": 12.5}`, false},
		{"nested < yes", `{"v.total(<)": 13}`, true},
		{"nested <=", `{"v.total(<=)": 12.5}`, true},
		{"nested > no", `{"v.total(>)": 12.5}`, false},
		{"nested > yes", `{"v.total(>)": 12}`, true},
		{"nested >=", `{"v.total(>=)": 12.5}`, true},
		{"nested >= no", `{"v.total(>=)": 12.51}`, false},
		{"two levels deep", `{"v.customer.tier": "gold"}`, true},
		{"AND all hold", `{"_sc": "sale.closed", "v.lines(>=)": 2, "v.paid": true}`, true},
		{"AND one fails", `{"_sc": "sale.closed", "v.lines(>=)": 4}`, false},
		{"missing field !=", `{"v.nope(!=)": 1}`, false},
		{"missing top field !=", `{"zzz(!=)": "x"}`, false},
		{"missing field =", `{"nope": "x"}`, false},
		{"path through a string", `{"store.x(!=)": "y"}`, false},
		{"path through an array", `{"v.tags.0": "x"}`, false},
		{"null value =", `{"gone": "x"}`, false},
		{"null value !=", `{"gone(!=)": "x"}`, false},
		{"number as text", `{"v.total": "12.5"}`, true},
		{"number as text, trailing zero", `{"v.total": "12.50"}`, true},
		{"number as text >=", `{"v.total(>=)": "12"}`, true},
		{"number as text > no", `{"v.total(>)": "12.5"}`, false},
		{"number as text, not plain", `{"v.total(<)": "1e3"}`, false},
		{"number vs string !=", `{"v.total(!=)": "x"}`, false},
		{"string vs number !=", `{"store(!=)": 1}`, false},
		{"bool vs number", `{"v.paid": 1}`, false},
		{"bool vs number !=", `{"v.paid(!=)": 0}`, false},
		{"object vs string !=", `{"v(!=)": "x"}`, false},
		{"bool =", `{"v.paid": true}`, true},
		{"bool !=", `{"v.paid(!=)": false}`, true},
		{"bool != same", `{"v.paid(!=)": true}`, false},
		{"string bytewise <", `{"store(<)": "B"}`, true},
		{"string bytewise upper < lower", `{"store(>)": "a"}`, false},
		{"string <=", `{"store(<=)": "A1"}`, true},
		{"string >=", `{"store(>=)": "A10"}`, false},
		{"string prefix >", `{"store(>)": "A"}`, true},
	}
	for _, useNumber := range []bool{false, true} {
		event := decodeMatchEvent(t, useNumber)
		for _, tc := range cases {
			t.Run(fmt.Sprintf("%s/useNumber=%v", tc.name, useNumber), func(t *testing.T) {
				conds, err := protocol.ParseEventFilter(decodeFilterQ(t, tc.q))
				if err != nil {
					t.Fatal(err)
				}
				if got := protocol.Match(conds, event); got != tc.want {
					t.Fatalf("Match(%s) = %v, want %v", tc.q, got, tc.want)
				}
			})
		}
	}
}

func TestMatchGoValues(t *testing.T) {
	event := map[string]any{"n": 3, "i": int64(4), "bad": json.Number("x"), "nested": map[string]any{"f": float32(1.5)}}
	cases := []struct {
		conds []protocol.Cond
		want  bool
	}{
		{[]protocol.Cond{filterCond("n", protocol.OpEq, 3.0)}, true},
		{[]protocol.Cond{filterCond("i", protocol.OpGt, 3.5)}, true},
		{[]protocol.Cond{filterCond("nested.f", protocol.OpEq, 1.5)}, true},
		{[]protocol.Cond{filterCond("bad", protocol.OpNe, 1.0)}, false},
		{[]protocol.Cond{filterCond("n", protocol.OpEq, []int{3})}, false},
		{[]protocol.Cond{filterCond("n", protocol.Op("~"), 3.0)}, false},
		{[]protocol.Cond{filterCond("n", protocol.OpEq, 3.0)}, true},
	}
	for i, tc := range cases {
		if got := protocol.Match(tc.conds, event); got != tc.want {
			t.Errorf("case %d: Match(%v) = %v, want %v", i, tc.conds, got, tc.want)
		}
	}
	if !protocol.Match(nil, nil) {
		t.Error("no conds should match even a nil event")
	}
	if protocol.Match([]protocol.Cond{filterCond("a", protocol.OpNe, "x")}, nil) {
		t.Error("a nil event has no fields, so nothing matches")
	}
}

// FuzzParseFilter feeds arbitrary q objects to the JSON parsers (and, with
// each raw value as text, to the query parser). None may panic; every error
// must be bad_filter; every success must hold only the promised types.
func FuzzParseFilter(f *testing.F) {
	f.Add([]byte(`{"price(>=)": 12.5, "name": "x"}`))
	var event map[string]any
	if err := json.Unmarshal([]byte(matchTestEvent), &event); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var q map[string]json.RawMessage
		if json.Unmarshal(data, &q) != nil {
			t.Skip("not a JSON object; decoding the packet is not this parser's job")
		}
		conds, err := protocol.ParseFilter(q, filterTestFields)
		checkFuzzConds(t, q, conds, err, func(c protocol.Cond) bool {
			return fuzzValueFitsKind(filterTestFields[c.Field], c.Value)
		})

		conds, err = protocol.ParseEventFilter(q)
		checkFuzzConds(t, q, conds, err, func(c protocol.Cond) bool {
			switch c.Value.(type) {
			case string, float64, bool:
				return true
			}
			return false
		})
		protocol.Match(conds, event)

		query := make(map[string]string, len(q))
		for k, raw := range q {
			query[k] = string(bytes.Trim(raw, `"`))
		}
		conds, err = protocol.ParseQueryFilter(query, filterTestFields)
		checkFuzzConds(t, q, conds, err, func(c protocol.Cond) bool {
			return fuzzValueFitsKind(filterTestFields[c.Field], c.Value)
		})
	})
}

func checkFuzzConds(t *testing.T, q map[string]json.RawMessage, conds []protocol.Cond, err error, valueOK func(protocol.Cond) bool) {
	t.Helper()
	if err != nil {
		var pe *protocol.Error
		if !errors.As(err, &pe) || pe.Code != protocol.CodeBadFilter {
			t.Fatalf("error %v (%T) is not a bad_filter *protocol.Error", err, err)
		}
		return
	}
	if len(conds) != len(q) {
		t.Fatalf("%d keys gave %d conds", len(q), len(conds))
	}
	for _, c := range conds {
		if !valueOK(c) {
			t.Fatalf("cond %#v holds an unexpected value type", c)
		}
	}
}

func fuzzValueFitsKind(kind protocol.Kind, v any) bool {
	switch v.(type) {
	case string:
		return kind == protocol.KindString
	case int64:
		return kind == protocol.KindInt || kind == protocol.KindMoney || kind == protocol.KindSeconds
	case bool:
		return kind == protocol.KindBool
	}
	return false
}

// TestParseFilterNumbersAsText: FD1 clients and HTTP GET send numbers as
// strings. An integer or money field takes a string holding a plain decimal
// and nothing else, in a JSON q and in a query string alike.
func TestParseFilterNumbersAsText(t *testing.T) {
	cases := []struct {
		name, key, text string
		want            any    // the Cond value when accepted
		wantErr         string // part of the bad_filter message otherwise
	}{
		{name: "int", key: "pid", text: "17", want: int64(17)},
		{name: "int negative", key: "pid(>)", text: "-3", want: int64(-3)},
		{name: "int leading zeros", key: "pid", text: "007", want: int64(7)},
		{name: "int point zero", key: "pid", text: "17.0", want: int64(17)},
		{name: "money", key: "price", text: "20.50", want: int64(2050)},
		{name: "money op", key: "price(>=)", text: "20", want: int64(2000)},
		{name: "money cent", key: "price", text: "0.01", want: int64(1)},
		{name: "int trailing letters", key: "pid", text: "17abc", wantErr: `q["pid"]: want a number, got string "17abc"`},
		{name: "int exponent", key: "pid", text: "1e3", wantErr: `got string "1e3"`},
		{name: "int leading space", key: "pid", text: " 17", wantErr: `got string " 17"`},
		{name: "int trailing space", key: "pid", text: "17 ", wantErr: `got string "17 "`},
		{name: "int empty", key: "pid", text: "", wantErr: `got string ""`},
		{name: "int hex", key: "pid", text: "0x10", wantErr: `got string "0x10"`},
		{name: "int NaN", key: "pid", text: "NaN", wantErr: `got string "NaN"`},
		{name: "int Infinity", key: "pid", text: "Infinity", wantErr: `got string "Infinity"`},
		{name: "int plus", key: "pid", text: "+5", wantErr: `got string "+5"`},
		{name: "int bare point", key: "pid", text: "5.", wantErr: `got string "5."`},
		{name: "int point first", key: "pid", text: ".5", wantErr: `got string ".5"`},
		{name: "int minus only", key: "pid", text: "-", wantErr: `got string "-"`},
		{name: "int fraction", key: "pid", text: "17.5", wantErr: `want a whole number`},
		{name: "int overflow", key: "pid", text: "99999999999999999999", wantErr: `out of range`},
		{name: "money three decimals", key: "price", text: "20.505", wantErr: `want at most 2 decimals`},
		{name: "money comma", key: "price", text: "20,50", wantErr: `got string "20,50"`},
		{name: "money exponent", key: "price", text: "2e1", wantErr: `got string "2e1"`},
	}
	for _, tc := range cases {
		quoted, _ := json.Marshal(tc.text)
		for _, via := range []struct {
			name  string
			parse func() ([]protocol.Cond, error)
		}{
			{"json", func() ([]protocol.Cond, error) {
				return protocol.ParseFilter(map[string]json.RawMessage{tc.key: quoted}, filterTestFields)
			}},
			{"query", func() ([]protocol.Cond, error) {
				return protocol.ParseQueryFilter(map[string]string{tc.key: tc.text}, filterTestFields)
			}},
		} {
			t.Run(tc.name+"/"+via.name, func(t *testing.T) {
				got, err := via.parse()
				if tc.wantErr != "" {
					pe := expectProtoCode(t, err, protocol.CodeBadFilter)
					if !strings.Contains(pe.Message, tc.wantErr) {
						t.Fatalf("message %q does not contain %q", pe.Message, tc.wantErr)
					}
					return
				}
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				if len(got) != 1 || got[0].Value != tc.want {
					t.Fatalf("got %+v, want value %v", got, tc.want)
				}
			})
		}
	}
}

// TestParseFilterSeconds: a field that becomes a time.Duration is bounded,
// so a huge value is a bad_filter instead of overflowing into a negative
// span (which made {"age(>=)":9300000000} list every open presell).
func TestParseFilterSeconds(t *testing.T) {
	fields := protocol.Fields{"age": protocol.KindSeconds}
	cases := []struct {
		name, q string
		want    any
		wantErr string
	}{
		{name: "zero", q: `{"age(>=)": 0}`, want: int64(0)},
		{name: "an hour", q: `{"age(>=)": 3600}`, want: int64(3600)},
		{name: "as text", q: `{"age(<)": "3600"}`, want: int64(3600)},
		{name: "at the bound", q: `{"age": 315576000}`, want: int64(protocol.MaxFilterSeconds)},
		{name: "past the bound", q: `{"age": 315576001}`, wantErr: `q["age"]: want seconds from 0 to 315576000 (10 years), got 315576001`},
		{name: "overflows a Duration", q: `{"age(>=)": 9300000000}`, wantErr: `q["age(>=)"]: want seconds from 0 to 315576000`},
		{name: "overflows as text", q: `{"age(>=)": "9300000000"}`, wantErr: `want seconds from 0 to 315576000`},
		{name: "negative", q: `{"age(<=)": -1}`, wantErr: `want seconds from 0 to 315576000 (10 years), got -1`},
		{name: "beyond int64", q: `{"age": 1e30}`, wantErr: `out of range`},
		{name: "fraction", q: `{"age": 1.5}`, wantErr: `want a whole number`},
		{name: "word", q: `{"age": "old"}`, wantErr: `want a number, got string "old"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := protocol.ParseFilter(decodeFilterQ(t, tc.q), fields)
			if tc.wantErr != "" {
				pe := expectProtoCode(t, err, protocol.CodeBadFilter)
				if !strings.Contains(pe.Message, tc.wantErr) {
					t.Fatalf("message %q does not contain %q", pe.Message, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if len(got) != 1 || got[0].Value != tc.want {
				t.Fatalf("got %+v, want value %v", got, tc.want)
			}
		})
	}
	// The query-string form takes the same bound.
	_, err := protocol.ParseQueryFilter(map[string]string{"age(>=)": "9300000000"}, fields)
	expectProtoCode(t, err, protocol.CodeBadFilter)
}
