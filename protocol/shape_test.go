package protocol_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/greenlane-pos/greenlane/protocol"
)

var shapeTestFields = []string{"qty", "pid", "description", "price", "dept", "pid"} // unsorted, with a repeat

func shapeTestRow() map[string]any {
	return map[string]any{"pid": 7, "description": "Milk", "price": 1.99, "dept": "Dairy", "qty": 2}
}

// marshalShaped applies s to the test row and returns the JSON text.
func marshalShaped(t *testing.T, s *protocol.Shape, row map[string]any) string {
	t.Helper()
	out, err := json.Marshal(s.Apply(row))
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	return string(out)
}

func TestParseShape(t *testing.T) {
	cases := []struct {
		name    string
		qo      string
		want    string // exact JSON, so key order is checked too
		wantErr string
	}{
		{name: "copy", qo: `{"pid": true, "description": true}`, want: `{"pid":7,"description":"Milk"}`},
		{name: "template order kept", qo: `{"price": true, "pid": true, "dept": true}`, want: `{"price":1.99,"pid":7,"dept":"Dairy"}`},
		{name: "rename", qo: `{"id": "pid", "name": "description"}`, want: `{"id":7,"name":"Milk"}`},
		{name: "rename order kept", qo: `{"z": "pid", "a": "price", "m": "dept"}`, want: `{"z":7,"a":1.99,"m":"Dairy"}`},
		{name: "same source twice", qo: `{"pid": true, "id": "pid"}`, want: `{"pid":7,"id":7}`},
		{name: "false omits", qo: `{"pid": true, "price": false}`, want: `{"pid":7}`},
		{name: "false needs no field", qo: `{"pid": true, "nope": false}`, want: `{"pid":7}`},
		{name: "nested", qo: `{"pid": true, "money": {"unit": "price", "qty": true}}`, want: `{"pid":7,"money":{"unit":1.99,"qty":2}}`},
		{name: "nested order kept", qo: `{"b": {"z": "qty", "a": "pid"}, "a": "dept"}`, want: `{"b":{"z":2,"a":7},"a":"Dairy"}`},
		{name: "depth 4", qo: `{"a": {"b": {"c": {"pid": true}}}}`, want: `{"a":{"b":{"c":{"pid":7}}}}`},
		{name: "empty object", qo: `{}`, want: `{}`},
		{name: "empty nested", qo: `{"x": {}}`, want: `{"x":{}}`},
		{name: "whitespace around", qo: " \n{\"pid\": true}\t", want: `{"pid":7}`},
		{name: "string is the list form", qo: `"description, pid"`, want: `{"description":"Milk","pid":7}`},
		{name: "html-ish key escaped", qo: `{"<b>": "pid"}`, want: `{"\u003cb\u003e":7}`},

		{name: "depth 5", qo: `{"a": {"b": {"c": {"d": {"pid": true}}}}}`, wantErr: `qo["a"]["b"]["c"]["d"]: qo nests deeper than 4 levels`},
		{name: "unknown copy", qo: `{"nope": true}`, wantErr: `qo["nope"]: no field "nope"; fields are dept, description, pid, price, qty`},
		{name: "unknown rename", qo: `{"x": "y"}`, wantErr: `qo["x"]: no field "y"; fields are dept, description, pid, price, qty`},
		{name: "unknown nested", qo: `{"m": {"x": "y"}}`, wantErr: `qo["m"]["x"]: no field "y"`},
		{name: "case matters", qo: `{"PID": true}`, wantErr: `qo["PID"]: no field "PID"`},
		{name: "number", qo: `{"pid": 1}`, wantErr: `qo["pid"]: want true, false, a field name or an object, got a number`},
		{name: "zero", qo: `{"pid": 0}`, wantErr: `got a number`},
		{name: "null", qo: `{"pid": null}`, wantErr: `qo["pid"]: want true, false, a field name or an object, got null`},
		{name: "array", qo: `{"pid": ["pid"]}`, wantErr: `got an array`},
		{name: "nested bad value", qo: `{"m": {"pid": null}}`, wantErr: `qo["m"]["pid"]: want true, false`},
		{name: "duplicate key", qo: `{"pid": true, "pid": "price"}`, wantErr: `qo["pid"]: the output name appears twice`},
		{name: "empty key", qo: `{"": "pid"}`, wantErr: `qo[""]: the output name is empty`},
		{name: "empty rename", qo: `{"x": ""}`, wantErr: `qo["x"]: no field ""`},
		{name: "top-level array", qo: `["pid"]`, wantErr: `qo: want an object or a comma-separated string, got an array`},
		{name: "top-level number", qo: `5`, wantErr: `got a number`},
		{name: "top-level true", qo: `true`, wantErr: `got a boolean`},
		{name: "invalid JSON", qo: `{"pid": tru}`, wantErr: `qo: not valid JSON`},
		{name: "truncated", qo: `{"pid": true`, wantErr: `qo: not valid JSON`},
		{name: "trailing data", qo: `{} {}`, wantErr: `qo: not valid JSON`},
		{name: "unknown in list string", qo: `"pid,nope"`, wantErr: `qo["nope"]: no field "nope"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, err := protocol.ParseShape(json.RawMessage(tc.qo), shapeTestFields)
			if tc.wantErr != "" {
				pe := expectProtoCode(t, err, protocol.CodeBadArgument)
				if !strings.Contains(pe.Message, tc.wantErr) {
					t.Fatalf("message %q does not contain %q", pe.Message, tc.wantErr)
				}
				if s != nil {
					t.Fatal("a shape came back alongside an error")
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if got := marshalShaped(t, s, shapeTestRow()); got != tc.want {
				t.Fatalf("shaped = %s\nwant     %s", got, tc.want)
			}
		})
	}
}

func TestParseShapeAbsent(t *testing.T) {
	for _, qo := range []string{"", "null", "  ", " null "} {
		s, err := protocol.ParseShape(json.RawMessage(qo), shapeTestFields)
		if s != nil || err != nil {
			t.Fatalf("ParseShape(%q) = %v, %v; want nil, nil", qo, s, err)
		}
	}
	s, err := protocol.ParseShape(nil, nil)
	if s != nil || err != nil {
		t.Fatalf("ParseShape(nil) = %v, %v; want nil, nil", s, err)
	}
}

func TestShapeApplyNil(t *testing.T) {
	var s *protocol.Shape
	row := shapeTestRow()
	got, ok := s.Apply(row).(map[string]any)
	if !ok || !reflect.DeepEqual(got, row) {
		t.Fatalf("nil shape changed the row: %#v", s.Apply(row))
	}
}

func TestShapeApplyRowGaps(t *testing.T) {
	s, err := protocol.ParseShape(json.RawMessage(`{"id": "pid", "d": {"price": true}}`), shapeTestFields)
	if err != nil {
		t.Fatal(err)
	}
	// A row without a listed field still gets the key, as null, so every
	// shaped row has the same keys.
	if got := marshalShaped(t, s, map[string]any{"description": "x"}); got != `{"id":null,"d":{"price":null}}` {
		t.Fatalf("shaped sparse row = %s", got)
	}
	if got := marshalShaped(t, s, nil); got != `{"id":null,"d":{"price":null}}` {
		t.Fatalf("shaped nil row = %s", got)
	}
}

func TestShapeMarshalStable(t *testing.T) {
	// Keys chosen so that sorted and template order differ.
	s, err := protocol.ParseShape(json.RawMessage(`{"qty": true, "dept": true, "pid": true, "description": true, "price": true}`), shapeTestFields)
	if err != nil {
		t.Fatal(err)
	}
	rows := []any{s.Apply(shapeTestRow()), s.Apply(shapeTestRow())}
	want := `{"rows":[` + strings.Repeat(`{"qty":2,"dept":"Dairy","pid":7,"description":"Milk","price":1.99},`, 2)
	want = strings.TrimSuffix(want, ",") + `]}`
	for range 20 {
		// Embedded in an ordinary map, as a reply's data would be.
		out, err := json.Marshal(map[string]any{"rows": rows})
		if err != nil {
			t.Fatal(err)
		}
		if string(out) != want {
			t.Fatalf("marshalled %s\nwant        %s", out, want)
		}
	}
}

func TestShapeMarshalError(t *testing.T) {
	s, err := protocol.ParseShape(json.RawMessage(`{"pid": true}`), shapeTestFields)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := json.Marshal(s.Apply(map[string]any{"pid": make(chan int)})); err == nil {
		t.Fatal("an unmarshallable value should fail the marshal, not vanish")
	}
}

func TestParseShapeList(t *testing.T) {
	cases := []struct {
		name    string
		list    string
		want    string // "" means a nil shape
		wantErr string
	}{
		{name: "two", list: "pid,description", want: `{"pid":7,"description":"Milk"}`},
		{name: "order kept", list: "description,pid", want: `{"description":"Milk","pid":7}`},
		{name: "spaces and empty parts", list: " pid , ,description, ", want: `{"pid":7,"description":"Milk"}`},
		{name: "one", list: "price", want: `{"price":1.99}`},
		{name: "empty", list: ""},
		{name: "only commas", list: " , ,, "},
		{name: "unknown", list: "pid,nope", wantErr: `qo["nope"]: no field "nope"; fields are dept, description, pid, price, qty`},
		{name: "repeat", list: "pid,pid", wantErr: `qo["pid"]: the output name appears twice`},
		{name: "inner space is part of the name", list: "p id", wantErr: `qo["p id"]: no field "p id"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, err := protocol.ParseShapeList(tc.list, shapeTestFields)
			if tc.wantErr != "" {
				pe := expectProtoCode(t, err, protocol.CodeBadArgument)
				if !strings.Contains(pe.Message, tc.wantErr) {
					t.Fatalf("message %q does not contain %q", pe.Message, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if tc.want == "" {
				if s != nil {
					t.Fatalf("want a nil shape, got %v", s)
				}
				return
			}
			if got := marshalShaped(t, s, shapeTestRow()); got != tc.want {
				t.Fatalf("shaped = %s, want %s", got, tc.want)
			}
		})
	}
}

func TestParseShapeNoFields(t *testing.T) {
	_, err := protocol.ParseShape(json.RawMessage(`{"pid": true}`), nil)
	pe := expectProtoCode(t, err, protocol.CodeBadArgument)
	if !strings.Contains(pe.Message, `qo["pid"]: no field "pid"; this reply has no fields`) {
		t.Fatalf("message %q", pe.Message)
	}
}

// TestShapeValue: a reply object is shaped by its JSON field names, an
// embedded struct's and an omitted-when-empty one's included; a field
// marked "-" or unexported is not there to name.
func TestShapeValue(t *testing.T) {
	type inner struct {
		Phase int `json:"phase"`
	}
	type view struct {
		inner
		Physkey string  `json:"physkey"`
		Ticket  *int64  `json:"ticket,omitempty"`
		Total   float64 `json:"saletotal"`
		Secret  string  `json:"-"`
		Plain   int
		hidden  int
	}
	v := &view{inner: inner{Phase: 5}, Physkey: "k1", Total: 12.5, Secret: "s", Plain: 7, hidden: 1}
	for _, c := range []struct {
		qo, want string
		code     protocol.Code
	}{
		{``, `{"phase":5,"physkey":"k1","saletotal":12.5,"Plain":7}`, ""},
		{`{"total":"saletotal","physkey":true,"ticket":true,"phase":true,"Plain":true}`, `{"total":12.5,"physkey":"k1","ticket":null,"phase":5,"Plain":7}`, ""},
		{`"physkey, saletotal"`, `{"physkey":"k1","saletotal":12.5}`, ""},
		{`{"s":"Secret"}`, "", protocol.CodeBadArgument},
		{`{"h":"hidden"}`, "", protocol.CodeBadArgument},
	} {
		got, err := protocol.ShapeValue(json.RawMessage(c.qo), v)
		if c.code != "" {
			var pe *protocol.Error
			if !errors.As(err, &pe) || pe.Code != c.code {
				t.Errorf("qo %s: %v, want %s", c.qo, err, c.code)
			}
			continue
		}
		b, _ := json.Marshal(got)
		if err != nil || string(b) != c.want {
			t.Errorf("qo %s: %s, %v; want %s", c.qo, b, err, c.want)
		}
	}
}
