package protocol_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/greenlane-pos/greenlane/protocol"
)

type argsTestInner struct {
	Inner int    `json:"inner" validate:"omitempty,gte=1"`
	Label string `json:"label,omitempty" validate:"omitempty,max=3"`
}

// argsTestV has one field per rule and JSON type the tests exercise. Go names
// differ from JSON names on purpose, so messages prove they use JSON names.
type argsTestV struct {
	Quantity int             `json:"qty" validate:"required,gte=1"`
	Name     string          `json:"name" validate:"max=5"`
	Mode     string          `json:"mode" validate:"oneof=a b"`
	SaleID   string          `json:"sale_id" validate:"uuid"`
	Price    float64         `json:"price"`
	Flag     bool            `json:"flag"`
	Tags     []string        `json:"tags" validate:"max=2"`
	Outer    argsTestInner   `json:"outer"`
	Items    []argsTestInner `json:"items" validate:"omitempty,dive"`
	Amount   protocol.Money  `json:"amount" validate:"lte=999950"`
	Tip      *protocol.Money `json:"tip" validate:"omitempty,gte=50"`
}

const argsTestUUID = "0f8fad5b-d9cb-469f-a165-70867728950e"

// argsV builds a v object: a valid base with the given fields replaced (raw
// JSON) or, for the value "-", removed.
func argsV(t *testing.T, override map[string]string) json.RawMessage {
	t.Helper()
	v := map[string]json.RawMessage{
		"qty":     json.RawMessage(`2`),
		"name":    json.RawMessage(`"milk"`),
		"mode":    json.RawMessage(`"a"`),
		"sale_id": json.RawMessage(`"` + argsTestUUID + `"`),
	}
	for k, raw := range override {
		if raw == "-" {
			delete(v, k)
			continue
		}
		v[k] = json.RawMessage(raw)
	}
	out, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("test v %v: %v", override, err)
	}
	return out
}

// argsExpectBadArgument checks err is a bad_argument *protocol.Error whose
// message starts with the field path and returns the message.
func argsExpectBadArgument(t *testing.T, err error, field string) string {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want bad_argument naming %s", field)
	}
	var pe *protocol.Error
	if !errors.As(err, &pe) {
		t.Fatalf("error %v (%T) is not a *protocol.Error", err, err)
	}
	if pe.Code != protocol.CodeBadArgument {
		t.Fatalf("code = %q, want bad_argument (message %q)", pe.Code, pe.Message)
	}
	if !strings.HasPrefix(pe.Message, field+": ") {
		t.Fatalf("message %q does not start with %q", pe.Message, field+": ")
	}
	return pe.Message
}

func TestDecodeVValid(t *testing.T) {
	cases := []struct {
		name     string
		override map[string]string
		check    func(t *testing.T, got argsTestV)
	}{
		{"base", nil, func(t *testing.T, got argsTestV) {
			want := argsTestV{Quantity: 2, Name: "milk", Mode: "a", SaleID: argsTestUUID}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("got %+v, want %+v", got, want)
			}
		}},
		{"every type", map[string]string{
			"qty": `5`, "name": `"ééééé"`, "mode": `"b"`, "price": `1.25`, "flag": `true`,
			"tags": `["x","y"]`, "outer": `{"inner":3,"label":"abc"}`, "items": `[{"inner":1},{"inner":2}]`,
		}, func(t *testing.T, got argsTestV) {
			want := argsTestV{
				Quantity: 5, Name: "ééééé", Mode: "b", SaleID: argsTestUUID, Price: 1.25, Flag: true,
				Tags: []string{"x", "y"}, Outer: argsTestInner{Inner: 3, Label: "abc"},
				Items: []argsTestInner{{Inner: 1}, {Inner: 2}},
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("got %+v, want %+v", got, want)
			}
		}},
		{"unknown fields ignored", map[string]string{"tz": `"Europe/Oslo"`, "geo": `{"lat":59.9}`, "Extra": `[1]`}, func(t *testing.T, got argsTestV) {
			if got.Quantity != 2 || got.Name != "milk" {
				t.Fatalf("got %+v", got)
			}
		}},
		{"integral float spelling into float", map[string]string{"price": `3`}, func(t *testing.T, got argsTestV) {
			if got.Price != 3 {
				t.Fatalf("price = %v", got.Price)
			}
		}},
		{"null leaves the zero value", map[string]string{"tags": `null`, "outer": `null`}, func(t *testing.T, got argsTestV) {
			if got.Tags != nil || got.Outer != (argsTestInner{}) {
				t.Fatalf("got %+v", got)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var got argsTestV
			if err := protocol.DecodeV(argsV(t, tc.override), &got); err != nil {
				t.Fatalf("DecodeV: %v", err)
			}
			tc.check(t, got)
		})
	}
}

func TestDecodeVWrongTypes(t *testing.T) {
	cases := []struct {
		name     string
		override map[string]string
		field    string
		hint     string // a word the message must hold (the JSON type wanted)
	}{
		{"word into int", map[string]string{"qty": `"three"`}, "v.qty", "integer"},
		{"float into int", map[string]string{"qty": `1.5`}, "v.qty", "integer"},
		{"exponent into int", map[string]string{"qty": `1e2`}, "v.qty", "integer"},
		{"int overflow", map[string]string{"qty": `99999999999999999999`}, "v.qty", "integer"},
		{"bool into int", map[string]string{"qty": `true`}, "v.qty", "integer"},
		{"number into string", map[string]string{"name": `5`}, "v.name", "string"},
		{"object into string", map[string]string{"sale_id": `{}`}, "v.sale_id", "string"},
		{"string into float", map[string]string{"price": `"1.25"`}, "v.price", "number"},
		{"string into bool", map[string]string{"flag": `"true"`}, "v.flag", "boolean"},
		{"number into bool", map[string]string{"flag": `1`}, "v.flag", "boolean"},
		{"string into slice", map[string]string{"tags": `"a,b"`}, "v.tags", "array"},
		{"number into slice item", map[string]string{"tags": `["a",2]`}, "v.tags", "string"},
		{"string into struct", map[string]string{"outer": `"x"`}, "v.outer", "object"},
		{"array into struct", map[string]string{"outer": `[1]`}, "v.outer", "object"},
		{"nested wrong type", map[string]string{"outer": `{"inner":"x"}`}, "v.outer.inner", "integer"},
		{"nested float into int", map[string]string{"outer": `{"inner":2.5}`}, "v.outer.inner", "integer"},
		{"wrong type in slice of structs", map[string]string{"items": `[{"inner":"x"}]`}, "v.items.inner", "integer"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var got argsTestV
			msg := argsExpectBadArgument(t, protocol.DecodeV(argsV(t, tc.override), &got), tc.field)
			if !strings.Contains(msg, tc.hint) {
				t.Errorf("message %q does not say it wants %s", msg, tc.hint)
			}
		})
	}
}

func TestDecodeVNotAnObject(t *testing.T) {
	for _, raw := range []string{`[1]`, `"x"`, `5`, `true`} {
		t.Run(raw, func(t *testing.T) {
			var got argsTestV
			argsExpectBadArgument(t, protocol.DecodeV(json.RawMessage(raw), &got), "v")
		})
	}
	for _, raw := range []string{`{"qty":`, `{"qty":1,}`, `{qty:1}`} {
		t.Run("malformed "+raw, func(t *testing.T) {
			var got argsTestV
			argsExpectBadArgument(t, protocol.DecodeV(json.RawMessage(raw), &got), "v")
		})
	}
}

func TestDecodeVValidation(t *testing.T) {
	cases := []struct {
		name     string
		override map[string]string
		field    string
		hint     string // optional word in the rule text
	}{
		{"required missing", map[string]string{"qty": "-"}, "v.qty", "required"},
		{"required zero", map[string]string{"qty": `0`}, "v.qty", "required"},
		{"gte", map[string]string{"qty": `-1`}, "v.qty", "1"},
		{"max length", map[string]string{"name": `"abcdef"`}, "v.name", "5"},
		{"max length counts characters", map[string]string{"name": `"éééééé"`}, "v.name", "5"},
		{"oneof", map[string]string{"mode": `"c"`}, "v.mode", "a, b"},
		{"oneof is case-sensitive", map[string]string{"mode": `"A"`}, "v.mode", ""},
		{"oneof empty", map[string]string{"mode": "-"}, "v.mode", ""},
		{"uuid", map[string]string{"sale_id": `"not-a-uuid"`}, "v.sale_id", "UUID"},
		{"uuid empty", map[string]string{"sale_id": `""`}, "v.sale_id", "UUID"},
		{"nested", map[string]string{"outer": `{"inner":-5}`}, "v.outer.inner", "1"},
		{"nested second field", map[string]string{"outer": `{"inner":1,"label":"abcd"}`}, "v.outer.label", "3"},
		{"dive into slice", map[string]string{"items": `[{"inner":1},{"inner":-1}]`}, "v.items[1].inner", "1"},
		{"max items", map[string]string{"tags": `["a","b","c"]`}, "v.tags", "at most 2 items"},
		// Money rules hold cents; the client reads units, as it sends them.
		{"money bound in units", map[string]string{"amount": `10000`}, "v.amount", "must be at most 9999.5"},
		{"money pointer bound in units", map[string]string{"tip": `0.25`}, "v.tip", "must be at least 0.5"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var got argsTestV
			msg := argsExpectBadArgument(t, protocol.DecodeV(argsV(t, tc.override), &got), tc.field)
			if tc.hint != "" && !strings.Contains(msg, tc.hint) {
				t.Errorf("message %q does not mention %q", msg, tc.hint)
			}
			if strings.Contains(msg, "Quantity") || strings.Contains(msg, "SaleID") || strings.Contains(msg, "argsTestV") {
				t.Errorf("message %q uses Go names instead of JSON names", msg)
			}
		})
	}
}

func TestDecodeVEmpty(t *testing.T) {
	// No v at all still runs validation: qty is required.
	var got argsTestV
	argsExpectBadArgument(t, protocol.DecodeV(nil, &got), "v.qty")

	// A struct without rules accepts a missing v.
	var loose struct {
		Note string `json:"note"`
	}
	if err := protocol.DecodeV(nil, &loose); err != nil {
		t.Fatalf("DecodeV(nil) on a struct without rules: %v", err)
	}
	if err := protocol.DecodeV(json.RawMessage(`{}`), &loose); err != nil {
		t.Fatalf("DecodeV({}) on a struct without rules: %v", err)
	}
}

func TestValidatePrefix(t *testing.T) {
	type qArgs struct {
		From  string `json:"from" validate:"required"`
		Skip  string `json:"-" validate:"omitempty,max=1"`
		NoTag int    `validate:"omitempty,gte=10"`
	}
	cases := []struct {
		name  string
		v     qArgs
		field string
	}{
		{"json name", qArgs{}, "q.from"},
		{"field without json tag uses the Go name", qArgs{From: "x", NoTag: 3}, "q.NoTag"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v := tc.v
			argsExpectBadArgument(t, protocol.Validate("q", &v), tc.field)
		})
	}
	ok := qArgs{From: "x"}
	if err := protocol.Validate("q", &ok); err != nil {
		t.Fatalf("valid struct: %v", err)
	}
}

// Validate on something that is not a struct is a programming error: it must
// not panic and must not reach the client as anything but internal.
func TestValidateNotAStruct(t *testing.T) {
	n := 5
	for _, dst := range []any{nil, 5, &n, "x"} {
		err := protocol.Validate("v", dst)
		if err == nil {
			t.Errorf("Validate(%v) = nil, want an error", dst)
			continue
		}
		if got := protocol.AsError(err).Code; got != protocol.CodeInternal {
			t.Errorf("Validate(%v) became code %q, want internal", dst, got)
		}
	}
}

// argsTestNumbers has every integer shape a v struct uses: plain, pointer,
// unsigned, nested, in a slice, and a list type with its own UnmarshalJSON
// (salesbuilder's pid list), plus money and a float (which stays a number).
type argsTestNumbers struct {
	Ticket int64           `json:"ticket"`
	Qty    *int64          `json:"qty"`
	Count  uint16          `json:"count"`
	Amount protocol.Money  `json:"amount"`
	Price  *protocol.Money `json:"price"`
	Ratio  float64         `json:"ratio"`
	Outer  argsTestInner   `json:"outer"`
	Items  []argsTestInner `json:"items"`
	PIDs   argsTestPIDList `json:"pid"`
	Codes  []int           `json:"codes"`
	Name   string          `json:"name"`
	argsTestEmbedded
}

type argsTestEmbedded struct {
	Seq int `json:"seq"`
}

// argsTestPIDList reads one integer or a list, like salesbuilder's pidList.
type argsTestPIDList []int64

func (p *argsTestPIDList) UnmarshalJSON(b []byte) error {
	var one int64
	if json.Unmarshal(b, &one) == nil {
		*p = argsTestPIDList{one}
		return nil
	}
	var many []int64
	if err := json.Unmarshal(b, &many); err != nil {
		return err
	}
	*p = many
	return nil
}

// TestDecodeVNumbersAsText: integer and money fields of v take a string
// holding a plain decimal, wherever they sit, and refuse any other string
// with the usual bad_argument naming the field.
func TestDecodeVNumbersAsText(t *testing.T) {
	i64 := func(n int64) *int64 { return &n }
	money := func(m protocol.Money) *protocol.Money { return &m }
	accepted := []struct {
		name, v string
		want    argsTestNumbers
	}{
		{"int", `{"ticket":"17"}`, argsTestNumbers{Ticket: 17}},
		{"int negative", `{"ticket":"-17"}`, argsTestNumbers{Ticket: -17}},
		{"int leading zeros", `{"ticket":"0017"}`, argsTestNumbers{Ticket: 17}},
		{"int zero", `{"ticket":"000"}`, argsTestNumbers{}},
		{"pointer int", `{"qty":"2"}`, argsTestNumbers{Qty: i64(2)}},
		{"unsigned", `{"count":"65535"}`, argsTestNumbers{Count: 65535}},
		{"money", `{"amount":"20.50"}`, argsTestNumbers{Amount: 2050}},
		{"pointer money", `{"price":"3"}`, argsTestNumbers{Price: money(300)}},
		{"nested", `{"outer":{"inner":"3"}}`, argsTestNumbers{Outer: argsTestInner{Inner: 3}}},
		{"in a slice of structs", `{"items":[{"inner":"1"},{"inner":2}]}`, argsTestNumbers{Items: []argsTestInner{{Inner: 1}, {Inner: 2}}}},
		{"list type, one", `{"pid":"5"}`, argsTestNumbers{PIDs: argsTestPIDList{5}}},
		{"list type, many", `{"pid":["5",6]}`, argsTestNumbers{PIDs: argsTestPIDList{5, 6}}},
		{"slice of ints", `{"codes":["1","2"]}`, argsTestNumbers{Codes: []int{1, 2}}},
		{"embedded", `{"seq":"9"}`, argsTestNumbers{argsTestEmbedded: argsTestEmbedded{Seq: 9}}},
		{"any case, as encoding/json", `{"Ticket":"4"}`, argsTestNumbers{Ticket: 4}},
		{"numbers still numbers", `{"ticket":17,"amount":20.5}`, argsTestNumbers{Ticket: 17, Amount: 2050}},
		{"strings stay strings", `{"name":"17"}`, argsTestNumbers{Name: "17"}},
	}
	for _, tc := range accepted {
		t.Run(tc.name, func(t *testing.T) {
			var got argsTestNumbers
			if err := protocol.DecodeV(json.RawMessage(tc.v), &got); err != nil {
				t.Fatalf("DecodeV(%s): %v", tc.v, err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("DecodeV(%s) = %+v, want %+v", tc.v, got, tc.want)
			}
		})
	}
	refused := []struct {
		name, v, field, text string
	}{
		{"trailing letters", `{"ticket":"17abc"}`, "v.ticket", `"17abc"`},
		{"exponent", `{"ticket":"1e3"}`, "v.ticket", `"1e3"`},
		{"leading space", `{"ticket":" 17"}`, "v.ticket", `" 17"`},
		{"empty", `{"ticket":""}`, "v.ticket", `""`},
		{"hex", `{"ticket":"0x10"}`, "v.ticket", `"0x10"`},
		{"NaN", `{"ticket":"NaN"}`, "v.ticket", `"NaN"`},
		{"Infinity", `{"ticket":"Infinity"}`, "v.ticket", `"Infinity"`},
		{"plus", `{"ticket":"+17"}`, "v.ticket", `"+17"`},
		{"fraction", `{"ticket":"17.0"}`, "v.ticket", `"17.0"`},
		{"overflow", `{"ticket":"99999999999999999999"}`, "v.ticket", "99999999999999999999"},
		{"negative unsigned", `{"count":"-1"}`, "v.count", "-1"},
		{"nested", `{"outer":{"inner":"x"}}`, "v.outer.inner", `"x"`},
		{"in a list", `{"pid":["5","x"]}`, "v.pid", `"x"`},
		{"money exponent", `{"amount":"1e3"}`, "v.amount", `"1e3"`},
		{"money three decimals", `{"amount":"20.505"}`, "v.amount", `"20.505"`},
		{"money NaN", `{"amount":"NaN"}`, "v.amount", `"NaN"`},
		{"money comma", `{"amount":"20,50"}`, "v.amount", `"20,50"`},
		{"float stays a number", `{"ratio":"1.5"}`, "v.ratio", "number"},
	}
	for _, tc := range refused {
		t.Run("refuse "+tc.name, func(t *testing.T) {
			var got argsTestNumbers
			msg := argsExpectBadArgument(t, protocol.DecodeV(json.RawMessage(tc.v), &got), tc.field)
			if !strings.Contains(msg, tc.text) {
				t.Errorf("message %q does not show %s", msg, tc.text)
			}
		})
	}
}

// TestDecodeStrictV: a strict endpoint refuses a member of v that names no
// field exactly (another case of a field's name too: encoding/json would
// read it as that field, and {"qty":1,"QTY":7} would mean two things) or
// names one twice, and says which fields it takes; DecodeV ignores the
// same member.
func TestDecodeStrictV(t *testing.T) {
	tests := []struct {
		v    string
		bad  string // "" when accepted
		dst  any
		hint string
	}{
		{`{"qty":2,"mode":"a","sale_id":"` + argsTestUUID + `"}`, "", &argsTestV{}, ""},
		{`{"QTY":2,"mode":"a","sale_id":"` + argsTestUUID + `"}`, "v.QTY", &argsTestV{}, "its v fields are amount, flag, items"},
		{`{"qty":1,"QTY":7}`, "v.QTY", &argsTestV{}, "names are exact"},
		{`{"qty":1,"qty":7}`, "v.qty", &argsTestV{}, "given twice"},
		{`{"qty":2,"qyt":3,"zz":1}`, "v.qyt", &argsTestV{}, "its v fields are amount, flag, items"},
		{`{"tip":5}`, "v.tip", &protocol.NoArgs{}, "takes no v fields"},
		{`{}`, "", &protocol.NoArgs{}, ""},
		{`null`, "", &protocol.NoArgs{}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.v, func(t *testing.T) {
			err := protocol.DecodeStrictV(json.RawMessage(tt.v), tt.dst, "fd1.x.y")
			if tt.bad == "" {
				if err != nil && strings.Contains(err.Error(), "field") {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			msg := argsExpectBadArgument(t, err, tt.bad)
			if !strings.Contains(msg, tt.hint) || !strings.Contains(msg, "fd1.x.y") {
				t.Fatalf("message %q does not name the endpoint and say %q", msg, tt.hint)
			}
			if err := protocol.DecodeV(json.RawMessage(`{"qty":2,"mode":"a","sale_id":"`+argsTestUUID+`","qyt":3}`), &argsTestV{}); err != nil {
				t.Fatalf("lenient DecodeV refused an unknown field: %v", err)
			}
		})
	}
}

// TestDecodeVOnePassAgreesWithTheLongRoad: for every kind of v, decodeV
// (which tries one plain pass first) ends with the same value and the same
// error as the long road alone (after the exact-names check when strict),
// strict or not.
func TestDecodeVOnePassAgreesWithTheLongRoad(t *testing.T) {
	for _, v := range []string{
		`{"ticket":12,"price":"3.50","name":"x"}`,
		`{"ticket":"12"}`,
		`{"TICKET":12}`,
		`{"ticket":12,"extra":1}`,
		`{"outer":{"inner":2,"extra":1}}`,
		`{"outer":{"inner":"2"}}`,
		`{"items":[{"inner":1},{"inner":"2"}]}`,
		`{"pid":3}`, `{"pid":[3,4]}`, `{"pid":"3"}`,
		`{"ticket":1,"ticket":2}`, `{"ticket":1,"ticket":"2"}`, `{"ticket":"1","ticket":2}`,
		`{"ticket":"twelve"}`, `{"ticket":1.5}`, `{"qty":null}`, `{"name":5}`, `{"seq":"4"}`,
		`null`, `[]`, `"x"`, `{`, `{"ticket":12} trailing`,
	} {
		for _, strict := range []string{"", "fd1.test"} {
			t.Run(fmt.Sprintf("%s/%q", v, strict), func(t *testing.T) {
				var got, want argsTestNumbers
				gotErr := protocol.DecodeVRoads(json.RawMessage(v), &got, strict)
				var wantErr error
				if strict != "" {
					wantErr = protocol.ExactMembers(json.RawMessage(v), reflect.TypeOf(&want), strict)
				}
				if wantErr == nil {
					wantErr = protocol.DecodeLongRoad(json.RawMessage(v), &want)
				}
				if wantErr == nil {
					wantErr = protocol.Validate("v", &want)
				}
				if fmt.Sprint(gotErr) != fmt.Sprint(wantErr) {
					t.Fatalf("error %v, the long road says %v", gotErr, wantErr)
				}
				if wantErr == nil && !reflect.DeepEqual(got, want) {
					t.Fatalf("decoded %+v, the long road %+v", got, want)
				}
			})
		}
	}
}
