package protocol_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/greenlane-pos/greenlane/protocol"
)

// pktDecodeOK decodes frame and fails the test on any error.
func pktDecodeOK(t *testing.T, frame string) *protocol.Request {
	t.Helper()
	req, de := protocol.Decode([]byte(frame))
	if de != nil {
		t.Fatalf("Decode(%.120q): unexpected error %v", frame, de)
	}
	if req == nil {
		t.Fatalf("Decode(%.120q): nil request and nil error", frame)
	}
	return req
}

// pktDecodeFail decodes frame, expects a bad_packet *DecodeError and returns it.
func pktDecodeFail(t *testing.T, frame []byte) *protocol.DecodeError {
	t.Helper()
	req, de := protocol.Decode(frame)
	if req != nil {
		t.Fatalf("Decode(%.120q): got request %+v, want an error", frame, req)
	}
	if de == nil {
		t.Fatalf("Decode(%.120q): nil request and nil error", frame)
	}
	if de.Err == nil {
		t.Fatalf("Decode(%.120q): DecodeError with nil Err", frame)
	}
	if de.Err.Code != protocol.CodeBadPacket {
		t.Fatalf("Decode(%.120q): code %q, want %q (message %q)", frame, de.Err.Code, protocol.CodeBadPacket, de.Err.Message)
	}
	if de.Err.Message == "" {
		t.Fatalf("Decode(%.120q): empty error message", frame)
	}
	if got, want := de.Error(), "bad_packet: "+de.Err.Message; got != want {
		t.Fatalf("DecodeError.Error() = %q, want %q", got, want)
	}
	return de
}

// pktRaw is a json.RawMessage from text; "" is nil (absent).
func pktRaw(s string) json.RawMessage {
	if s == "" {
		return nil
	}
	return json.RawMessage(s)
}

func pktRawEqual(t *testing.T, what string, got json.RawMessage, want string) {
	t.Helper()
	if !bytes.Equal(got, pktRaw(want)) {
		t.Errorf("%s = %q, want %q", what, got, want)
	}
}

const pktFullFrame = `{
	"a": "fd1.sales.add_item",
	"q": {"pid": 7, "name(~)": "milk"},
	"qk": "chunked, totals",
	"k": "S-0001",
	"v": {"qty": 2, "tz": "UTC"},
	"rq": "req-1",
	"rt": {"tab": 3},
	"pt": "fd1",
	"mo": ["chunk"],
	"qo": "pid,name",
	"rd": {"time": true},
	"ik": "0f8fad5b-d9cb-469f-a165-70867728950e",
	"extra": [1, 2, 3]
}`

func TestDecodeEveryField(t *testing.T) {
	req := pktDecodeOK(t, pktFullFrame)

	if req.A != "fd1.sales.add_item" {
		t.Errorf("A = %q", req.A)
	}
	wantQ := map[string]json.RawMessage{"pid": json.RawMessage(`7`), "name(~)": json.RawMessage(`"milk"`)}
	if !reflect.DeepEqual(req.Q, wantQ) {
		t.Errorf("Q = %q, want %q", req.Q, wantQ)
	}
	if want := (protocol.Keywords{"chunked", "totals"}); !reflect.DeepEqual(req.QK, want) {
		t.Errorf("QK = %q, want %q", req.QK, want)
	}
	pktRawEqual(t, "K", req.K, `"S-0001"`)
	if req.Key() != "S-0001" {
		t.Errorf("Key() = %q", req.Key())
	}
	pktRawEqual(t, "V", req.V, `{"qty": 2, "tz": "UTC"}`)
	pktRawEqual(t, "RQ", req.RQ, `"req-1"`)
	if req.RQString() != "req-1" {
		t.Errorf("RQString() = %q", req.RQString())
	}
	pktRawEqual(t, "RT", req.RT, `{"tab": 3}`)
	if req.PT != "fd1" {
		t.Errorf("PT = %q", req.PT)
	}
	if want := (protocol.Keywords{"chunk"}); !reflect.DeepEqual(req.MO, want) {
		t.Errorf("MO = %q, want %q", req.MO, want)
	}
	pktRawEqual(t, "QO", req.QO, `"pid,name"`)
	pktRawEqual(t, "RD", req.RD, `{"time": true}`)
	if !req.WantsTiming() {
		t.Error("WantsTiming() = false for rd {\"time\": true}")
	}
	if req.IK != "0f8fad5b-d9cb-469f-a165-70867728950e" {
		t.Errorf("IK = %q", req.IK)
	}
	if req.FromQuery {
		t.Error("FromQuery set on a decoded frame")
	}
}

func TestDecodeMinimal(t *testing.T) {
	req := pktDecodeOK(t, `{"a":"session.ping"}`)
	want := &protocol.Request{A: "session.ping"}
	if !reflect.DeepEqual(req, want) {
		t.Fatalf("got %+v, want %+v", req, want)
	}
	if req.Key() != "" || req.RQString() != "" || req.WantsTiming() {
		t.Fatalf("accessors on an empty request: Key %q RQString %q WantsTiming %v", req.Key(), req.RQString(), req.WantsTiming())
	}
}

func TestDecodeSurroundingWhitespace(t *testing.T) {
	req := pktDecodeOK(t, " \r\n\t{\"a\":\"x\",\"rq\":1}\n\n ")
	if req.A != "x" || string(req.RQ) != "1" {
		t.Fatalf("got A %q RQ %q", req.A, req.RQ)
	}
}

func TestDecodeKeywordForms(t *testing.T) {
	cases := []struct {
		name string
		raw  string
		want protocol.Keywords
	}{
		{"comma string", `"a,b"`, protocol.Keywords{"a", "b"}},
		{"comma string with spaces and empties", `" a , ,b ,"`, protocol.Keywords{"a", "b"}},
		{"single word", `"chunk"`, protocol.Keywords{"chunk"}},
		{"array", `["a","b"]`, protocol.Keywords{"a", "b"}},
		{"array with comma items", `["a,b"," c "]`, protocol.Keywords{"a", "b", "c"}},
		{"empty string", `""`, protocol.Keywords{}},
		{"empty array", `[]`, protocol.Keywords{}},
	}
	for _, tc := range cases {
		for _, field := range []string{"qk", "mo"} {
			t.Run(field+"/"+tc.name, func(t *testing.T) {
				req := pktDecodeOK(t, fmt.Sprintf(`{"a":"x",%q:%s}`, field, tc.raw))
				got := req.QK
				if field == "mo" {
					got = req.MO
				}
				if len(got) != len(tc.want) || (len(got) > 0 && !reflect.DeepEqual(got, tc.want)) {
					t.Fatalf("%s = %q, want %q", field, got, tc.want)
				}
				for _, w := range tc.want {
					if !got.Has(w) {
						t.Errorf("Has(%q) = false", w)
					}
				}
			})
		}
	}
}

func TestDecodeKey(t *testing.T) {
	cases := []struct {
		name    string
		k       string // raw JSON; "" = field absent
		wantRaw string
		wantKey string
	}{
		{"string", `"S-1"`, `"S-1"`, "S-1"},
		{"string with escapes", `"caf\u00e9 \"x\""`, `"caf\u00e9 \"x\""`, `café "x"`},
		{"empty string", `""`, `""`, ""},
		{"integer", `42`, `42`, "42"},
		{"negative", `-7`, `-7`, "-7"},
		{"fraction and exponent kept as spelled", `1.50e3`, `1.50e3`, "1.50e3"},
		{"big integer not rounded", `123456789012345678901234567890`, `123456789012345678901234567890`, "123456789012345678901234567890"},
		{"absent", ``, ``, ""},
		{"null is absent", `null`, ``, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			frame := `{"a":"x"}`
			if tc.k != "" {
				frame = `{"a":"x","k":` + tc.k + `}`
			}
			req := pktDecodeOK(t, frame)
			pktRawEqual(t, "K", req.K, tc.wantRaw)
			if got := req.Key(); got != tc.wantKey {
				t.Errorf("Key() = %q, want %q", got, tc.wantKey)
			}
		})
	}
}

func TestDecodeRQ(t *testing.T) {
	cases := []struct {
		name     string
		rq       string // raw JSON; "" = absent
		wantRaw  string
		wantText string
	}{
		{"string", `"7"`, `"7"`, "7"},
		{"string with unicode", `"tab-é-🙂"`, `"tab-é-🙂"`, "tab-é-🙂"},
		{"escaped string", `"a\nb"`, `"a\nb"`, "a\nb"},
		{"empty string", `""`, `""`, ""},
		{"number", `12345`, `12345`, "12345"},
		{"negative fraction", `-1.5`, `-1.5`, "-1.5"},
		{"exponent", `1e3`, `1e3`, "1e3"},
		{"huge integer not rounded", `98765432109876543210987654321`, `98765432109876543210987654321`, "98765432109876543210987654321"},
		{"absent", ``, ``, ""},
		{"null is absent", `null`, ``, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			frame := `{"a":"x"}`
			if tc.rq != "" {
				frame = `{"a":"x","rq":` + tc.rq + `}`
			}
			req := pktDecodeOK(t, frame)
			pktRawEqual(t, "RQ", req.RQ, tc.wantRaw)
			if got := req.RQString(); got != tc.wantText {
				t.Errorf("RQString() = %q, want %q", got, tc.wantText)
			}
		})
	}
}

func TestDecodeRQLength(t *testing.T) {
	quote := func(s string) string { b, _ := json.Marshal(s); return string(b) }
	cases := []struct {
		name  string
		rq    string // raw JSON
		valid bool
	}{
		{"199 ascii", quote(strings.Repeat("r", 199)), true},
		{"200 ascii", quote(strings.Repeat("r", 200)), false},
		{"199 two-byte characters", quote(strings.Repeat("é", 199)), true},
		{"200 two-byte characters", quote(strings.Repeat("é", 200)), false},
		{"199 four-byte characters", quote(strings.Repeat("🙂", 199)), true},
		{"200 four-byte characters", quote(strings.Repeat("🙂", 200)), false},
		{"199 characters spelled as escapes", `"` + strings.Repeat(`\u00e9`, 199) + `"`, true},
		{"200 characters spelled as escapes", `"` + strings.Repeat(`\u00e9`, 200) + `"`, false},
		{"199 digits", strings.Repeat("9", 199), true},
		{"200 digits", strings.Repeat("9", 200), false},
		{"5000 characters", quote(strings.Repeat("x", 5000)), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			frame := `{"a":"x","rt":"tab","rq":` + tc.rq + `}`
			if tc.valid {
				req := pktDecodeOK(t, frame)
				pktRawEqual(t, "RQ", req.RQ, tc.rq)
				if n := utf8.RuneCountInString(req.RQString()); n != 199 {
					t.Errorf("RQString() has %d characters, want 199", n)
				}
				return
			}
			de := pktDecodeFail(t, []byte(frame))
			if !strings.Contains(de.Err.Message, `"rq"`) || !strings.Contains(de.Err.Message, "200") {
				t.Errorf("message %q should name rq and the 200 limit", de.Err.Message)
			}
		})
	}
}

// rt may be any JSON value and is kept byte for byte as sent.
func TestDecodeRTAnyTypeByteExact(t *testing.T) {
	for _, rt := range []string{
		`"tab-1"`,
		`""`,
		`12`,
		`-0.50`,
		`1E+2`,
		`true`,
		`false`,
		`[]`,
		`[1, "x" ,{"y": null}]`,
		`{ "a" : [ ] , "b":{"c":"d"} }`,
		`"<&>\u00e9\/"`,
		`"🙂"`,
	} {
		t.Run(rt, func(t *testing.T) {
			req := pktDecodeOK(t, `{"rt":   `+rt+`   ,"a":"x"}`)
			pktRawEqual(t, "RT", req.RT, rt)
		})
	}
}

func TestDecodeUnknownFieldsIgnored(t *testing.T) {
	req := pktDecodeOK(t, `{"a":"x","tz":"Europe/Oslo","geo":{"lat":1.5},"A":"other","RQ":9,"Rt":"no","data":[1],"_k":"k"}`)
	want := &protocol.Request{A: "x"}
	if !reflect.DeepEqual(req, want) {
		t.Fatalf("got %+v, want %+v (unknown and differently-cased keys must be ignored)", req, want)
	}
}

func TestDecodeNullFieldsAreAbsent(t *testing.T) {
	frame := `{"a":"x","q":null,"qk":null,"k":null,"v":null,"rq":null,"rt":null,"pt":null,"mo":null,"qo":null,"rd":null,"ik":null}`
	req := pktDecodeOK(t, frame)
	// rt alone is kept: whatever is sent is reflected (SPEC §2), null too.
	want := &protocol.Request{A: "x", RT: json.RawMessage("null")}
	if !reflect.DeepEqual(req, want) {
		t.Fatalf("got %+v, want %+v", req, want)
	}
	// A null a is a missing a.
	de := pktDecodeFail(t, []byte(`{"a":null,"rq":"1"}`))
	if !strings.Contains(de.Err.Message, "missing") {
		t.Fatalf("a: null gave %q, want the missing-a message", de.Err.Message)
	}
}

func TestDecodeFailures(t *testing.T) {
	cases := []struct {
		name  string
		frame string
		want  []string // substrings of the message
		rq    string   // expected DecodeError.RQ ("" = nil)
		rt    string   // expected DecodeError.RT ("" = nil)
		a     string   // expected DecodeError.A
	}{
		// The frame as a whole.
		{name: "invalid UTF-8 byte", frame: "{\"a\":\"x\xff\"}", want: []string{"UTF-8"}},
		{name: "invalid UTF-8 outside strings", frame: "\xfe{\"a\":\"x\"}", want: []string{"UTF-8"}},
		{name: "overlong UTF-8", frame: "{\"a\":\"\xc0\xaf\"}", want: []string{"UTF-8"}},
		{name: "UTF-8 encoded surrogate", frame: "{\"a\":\"\xed\xa0\x80\"}", want: []string{"UTF-8"}},
		{name: "truncated UTF-8 sequence", frame: "{\"a\":\"x\"}\xe2\x82", want: []string{"UTF-8"}},
		{name: "empty frame", frame: "", want: []string{"empty"}},
		{name: "whitespace only", frame: " \t\r\n ", want: []string{"empty"}},
		{name: "JSON array", frame: `[{"a":"x"}]`, want: []string{"JSON object", "array"}},
		{name: "JSON string", frame: `"fd1.session.ping"`, want: []string{"JSON object", "string"}},
		{name: "JSON number", frame: `42`, want: []string{"JSON object", "number"}},
		{name: "JSON negative number", frame: `-1`, want: []string{"JSON object", "number"}},
		{name: "JSON true", frame: `true`, want: []string{"JSON object", "boolean"}},
		{name: "JSON null", frame: `null`, want: []string{"JSON object", "null"}},
		{name: "not JSON at all", frame: `a=fd1.session.ping`, want: []string{"malformed JSON", "JSON object"}},
		{name: "a word like null", frame: `not json`, want: []string{"malformed JSON"}},
		{name: "a word before an object", frame: `nope{"a":"x"}`, want: []string{"malformed JSON"}},
		{name: "half a boolean", frame: `tru`, want: []string{"malformed JSON"}},
		{name: "a lone minus", frame: `-`, want: []string{"malformed JSON"}},
		{name: "byte order mark", frame: "\ufeff{\"a\":\"x\"}", want: []string{"JSON object"}},
		{name: "truncated object", frame: `{"a":"x"`, want: []string{"malformed JSON"}},
		{name: "truncated string", frame: `{"a":"x`, want: []string{"malformed JSON"}},
		{name: "trailing garbage object", frame: `{"a":"x"} {`, want: []string{"malformed JSON"}},
		{name: "two objects", frame: `{"a":"x"}{"a":"y"}`, want: []string{"malformed JSON"}},
		{name: "extra closing brace", frame: `{"a":"x"}}`, want: []string{"malformed JSON"}},
		{name: "unquoted key", frame: `{a:"x"}`, want: []string{"malformed JSON"}},
		{name: "single quotes", frame: `{'a':'x'}`, want: []string{"malformed JSON"}},
		{name: "trailing comma", frame: `{"a":"x",}`, want: []string{"malformed JSON"}},
		{name: "NaN value", frame: `{"a":"x","rq":NaN}`, want: []string{"malformed JSON"}},
		{name: "control character in string", frame: "{\"a\":\"x\ny\"}", want: []string{"malformed JSON"}},

		// a.
		{name: "missing a", frame: `{"rq":"r1","rt":"tab"}`, want: []string{`"a"`, "missing"}, rq: `"r1"`, rt: `"tab"`},
		{name: "missing a, numeric rq", frame: `{"rq":12345}`, want: []string{`"a"`, "missing"}, rq: `12345`},
		{name: "empty object", frame: `{}`, want: []string{`"a"`, "missing"}},
		{name: "empty a", frame: `{"a":"","rq":"r1","rt":[1]}`, want: []string{`"a"`, "empty"}, rq: `"r1"`, rt: `[1]`},
		{name: "a as number", frame: `{"a":5,"rq":"r1"}`, want: []string{`"a"`, "string", "number"}, rq: `"r1"`},
		{name: "a as object", frame: `{"a":{"x":1},"rt":{"t":1}}`, want: []string{`"a"`, "string", "object"}, rt: `{"t":1}`},
		{name: "a as array", frame: `{"a":["fd1.x"]}`, want: []string{`"a"`, "string", "array"}},
		{name: "a as boolean", frame: `{"a":true}`, want: []string{`"a"`, "string", "boolean"}},

		// rq: nothing can be routed when rq itself is bad.
		{name: "rq 200 characters", frame: `{"a":"x","rq":"` + strings.Repeat("r", 200) + `"}`, want: []string{`"rq"`, "200"}, a: "x"},
		{name: "rq object", frame: `{"a":"x","rq":{"id":1}}`, want: []string{`"rq"`, "string or a number", "object"}, a: "x"},
		{name: "rq boolean", frame: `{"a":"x","rq":true}`, want: []string{`"rq"`, "string or a number", "boolean"}, a: "x"},
		// a and rt readable though rq is not: the error reply names both (SPEC §2).
		{name: "rq boolean with rt", frame: `{"a":"fd1.debug.ping","rq":true,"rt":"x"}`, want: []string{`"rq"`, "boolean"}, rt: `"x"`, a: "fd1.debug.ping"},
		{name: "rq array", frame: `{"a":"x","rq":["1"]}`, want: []string{`"rq"`, "string or a number", "array"}, a: "x"},

		// Fields after a: rq, rt and a are all known and carried.
		{name: "q array", frame: `{"a":"x","rq":"r1","rt":"t","q":[1]}`, want: []string{`"q"`, "object", "array"}, rq: `"r1"`, rt: `"t"`, a: "x"},
		{name: "q string", frame: `{"a":"x","rq":"r1","q":"pid=1"}`, want: []string{`"q"`, "object", "string"}, rq: `"r1"`, a: "x"},
		{name: "q number", frame: `{"a":"x","q":1}`, want: []string{`"q"`, "object", "number"}, a: "x"},
		{name: "qk number", frame: `{"a":"x","rq":7,"qk":1}`, want: []string{`"qk"`, "string or an array of strings", "number"}, rq: `7`, a: "x"},
		{name: "qk object", frame: `{"a":"x","qk":{"a":true}}`, want: []string{`"qk"`, "object"}, a: "x"},
		{name: "qk array of numbers", frame: `{"a":"x","qk":[1,2]}`, want: []string{`"qk"`, "array"}, a: "x"},
		{name: "mo boolean", frame: `{"a":"x","rt":0,"mo":true}`, want: []string{`"mo"`, "boolean"}, rt: `0`, a: "x"},
		{name: "k object", frame: `{"a":"x","rq":"r1","k":{"id":1}}`, want: []string{`"k"`, "string or a number", "object"}, rq: `"r1"`, a: "x"},
		{name: "k boolean", frame: `{"a":"x","rq":"r1","k":false}`, want: []string{`"k"`, "string or a number", "boolean"}, rq: `"r1"`, a: "x"},
		{name: "k array", frame: `{"a":"x","rq":"r1","k":["S-1"]}`, want: []string{`"k"`, "string or a number", "array"}, rq: `"r1"`, a: "x"},
		{name: "v array", frame: `{"a":"x","rq":"r1","rt":"t","v":[1,2]}`, want: []string{`"v"`, "object", "array"}, rq: `"r1"`, rt: `"t"`, a: "x"},
		{name: "v string", frame: `{"a":"x","rq":"r1","v":"{\"qty\":1}"}`, want: []string{`"v"`, "object", "string"}, rq: `"r1"`, a: "x"},
		{name: "v number", frame: `{"a":"x","v":3}`, want: []string{`"v"`, "object", "number"}, a: "x"},
		{name: "rd string", frame: `{"a":"x","rq":"r1","rd":"time"}`, want: []string{`"rd"`, "object", "string"}, rq: `"r1"`, a: "x"},
		{name: "rd boolean", frame: `{"a":"x","rd":true}`, want: []string{`"rd"`, "object", "boolean"}, a: "x"},
		{name: "qo number", frame: `{"a":"x","rq":"r1","qo":5}`, want: []string{`"qo"`, "number"}, rq: `"r1"`, a: "x"},
		{name: "qo array", frame: `{"a":"x","qo":["pid"]}`, want: []string{`"qo"`, "array"}, a: "x"},
		{name: "pt number", frame: `{"a":"x","rq":"r1","pt":1}`, want: []string{`"pt"`, "string", "number"}, rq: `"r1"`, a: "x"},
		{name: "ik number", frame: `{"a":"x","rq":"r1","rt":"t","ik":123}`, want: []string{`"ik"`, "string", "number"}, rq: `"r1"`, rt: `"t"`, a: "x"},
		{name: "ik object", frame: `{"a":"x","ik":{}}`, want: []string{`"ik"`, "string", "object"}, a: "x"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			de := pktDecodeFail(t, []byte(tc.frame))
			for _, w := range tc.want {
				if !strings.Contains(de.Err.Message, w) {
					t.Errorf("message %q does not contain %q", de.Err.Message, w)
				}
			}
			pktRawEqual(t, "DecodeError.RQ", de.RQ, tc.rq)
			pktRawEqual(t, "DecodeError.RT", de.RT, tc.rt)
			if de.A != tc.a {
				t.Errorf("DecodeError.A = %q, want %q", de.A, tc.a)
			}
		})
	}
}

// Deeply nested JSON must fail cleanly or succeed; never panic, never hang.
func TestDecodeDeepNesting(t *testing.T) {
	const n = 10000
	cases := []struct {
		name  string
		frame string
	}{
		{"10000 arrays in v", `{"a":"x","rq":"r1","v":` + strings.Repeat("[", n) + strings.Repeat("]", n) + `}`},
		{"10000 objects in v", `{"a":"x","rq":"r1","v":` + strings.Repeat(`{"x":`, n) + `1` + strings.Repeat("}", n) + `}`},
		{"10000 unclosed arrays in v", `{"a":"x","rq":"r1","v":` + strings.Repeat("[", n)},
		{"100000 unclosed arrays in v", `{"a":"x","v":` + strings.Repeat("[", 10*n)},
		{"100000 arrays at top level", strings.Repeat("[", 10*n) + strings.Repeat("]", 10*n)},
		{"9000 arrays in rt", `{"a":"x","rt":` + strings.Repeat("[", 9000) + strings.Repeat("]", 9000) + `}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			type result struct {
				req *protocol.Request
				de  *protocol.DecodeError
				pan any
			}
			done := make(chan result, 1)
			go func() {
				var r result
				defer func() {
					r.pan = recover()
					done <- r
				}()
				r.req, r.de = protocol.Decode([]byte(tc.frame))
			}()
			var r result
			select {
			case r = <-done:
			case <-time.After(30 * time.Second):
				t.Fatal("Decode did not return within 30s")
			}
			if r.pan != nil {
				t.Fatalf("Decode panicked: %v", r.pan)
			}
			switch {
			case r.de != nil:
				if r.req != nil || r.de.Err == nil || r.de.Err.Code != protocol.CodeBadPacket {
					t.Fatalf("bad failure: req %v, err %+v", r.req, r.de.Err)
				}
			case r.req == nil || r.req.A != "x":
				t.Fatalf("neither a request nor an error: %+v", r.req)
			default:
				// Success must still produce a reply that marshals.
				out, err := protocol.ReplyTo(r.req).Marshal()
				if err != nil || !json.Valid(out) {
					t.Fatalf("reply to a decoded deep packet: %v", err)
				}
			}
		})
	}
}

// --- replies ---

// pktMarshalFields marshals a reply and splits the top level into raw fields.
func pktMarshalFields(t *testing.T, r *protocol.Reply) map[string]json.RawMessage {
	t.Helper()
	out, err := r.Marshal()
	if err != nil {
		t.Fatalf("Marshal: %v", err)
	}
	if !json.Valid(out) {
		t.Fatalf("Marshal gave invalid JSON: %s", out)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(out, &fields); err != nil {
		t.Fatalf("reply %s: %v", out, err)
	}
	return fields
}

func pktKeys(m map[string]json.RawMessage) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	return keys
}

func pktHasOnlyKeys(t *testing.T, fields map[string]json.RawMessage, want ...string) {
	t.Helper()
	if len(fields) != len(want) {
		t.Errorf("reply keys = %q, want exactly %q", pktKeys(fields), want)
		return
	}
	for _, k := range want {
		if _, ok := fields[k]; !ok {
			t.Errorf("reply keys = %q, want exactly %q", pktKeys(fields), want)
			return
		}
	}
}

func TestReplyToEchoesRQAndRT(t *testing.T) {
	cases := []struct {
		name   string
		frame  string
		wantRP string // "" = rp omitted
		wantRT string // "" = rt omitted
	}{
		{"numeric rq stays a number", `{"a":"x","rq":12345}`, `12345`, ``},
		{"string rq stays a string", `{"a":"x","rq":"7"}`, `"7"`, ``},
		{"big numeric rq keeps every digit", `{"a":"x","rq":98765432109876543210987654321}`, `98765432109876543210987654321`, ``},
		{"fractional rq keeps its spelling", `{"a":"x","rq":1.50}`, `1.50`, ``},
		{"unicode rq", `{"a":"x","rq":"é🙂"}`, `"é🙂"`, ``},
		{"rt string", `{"a":"x","rq":"1","rt":"tab-2"}`, `"1"`, `"tab-2"`},
		{"rt number", `{"a":"x","rt":3}`, ``, `3`},
		{"rt object", `{"a":"x","rt":{"tab":3,"w":[true,null]}}`, ``, `{"tab":3,"w":[true,null]}`},
		{"rt false", `{"a":"x","rt":false}`, ``, `false`},
		{"neither", `{"a":"x"}`, ``, ``},
		{"null rq omitted", `{"a":"x","rq":null}`, ``, ``},
		{"null rt reflected", `{"a":"x","rq":null,"rt":null}`, ``, `null`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := pktDecodeOK(t, tc.frame)
			fields := pktMarshalFields(t, protocol.ReplyTo(req))
			want := []string{"r", "data"}
			if tc.wantRP != "" {
				want = append(want, "rp")
			}
			if tc.wantRT != "" {
				want = append(want, "rt")
			}
			pktHasOnlyKeys(t, fields, want...)
			if string(fields["r"]) != `"x"` {
				t.Errorf("r = %s, want \"x\"", fields["r"])
			}
			if tc.wantRP != "" && string(fields["rp"]) != tc.wantRP {
				t.Errorf("rp = %s, want %s", fields["rp"], tc.wantRP)
			}
			if tc.wantRT != "" && string(fields["rt"]) != tc.wantRT {
				t.Errorf("rt = %s, want %s", fields["rt"], tc.wantRT)
			}
			if string(fields["data"]) != `{}` {
				t.Errorf("data = %s, want {}", fields["data"])
			}
		})
	}
}

// rt with insignificant whitespace or HTML characters comes back as the same
// JSON value. (encoding/json compacts and HTML-escapes RawMessage output, so
// the bytes may differ; the value may not.)
func TestReplyRTSameValue(t *testing.T) {
	for _, rt := range []string{`{ "a" : [ 1 , 2 ] }`, `"<tab & co>"`, `"\u00e9\/"`, `-0.50`} {
		t.Run(rt, func(t *testing.T) {
			req := pktDecodeOK(t, `{"a":"x","rq":"1","rt":`+rt+`}`)
			fields := pktMarshalFields(t, protocol.ReplyTo(req))
			var got, want any
			if err := json.Unmarshal(fields["rt"], &got); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal([]byte(rt), &want); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("rt came back as %s (%v), want the value of %s", fields["rt"], got, rt)
			}
		})
	}
}

func TestReplyMarshalData(t *testing.T) {
	cases := []struct {
		name  string
		reply *protocol.Reply
		keys  []string
		data  string
	}{
		{"nil data becomes {}", &protocol.Reply{R: "fd1.x"}, []string{"r", "data"}, `{}`},
		{"map data", &protocol.Reply{R: "fd1.x", Data: map[string]int{"n": 1}}, []string{"r", "data"}, `{"n":1}`},
		{"rows", &protocol.Reply{R: "fd1.x", SC: "product", Data: protocol.Rows{Rows: []int{1, 2}}}, []string{"r", "sc", "data"}, `{"rows":[1,2]}`},
		{"rows with more", &protocol.Reply{R: "fd1.x", Data: protocol.Rows{Rows: []int{}, More: true}}, []string{"r", "data"}, `{"rows":[],"more":true}`},
		{"chunk", &protocol.Reply{R: "fd1.x", RP: json.RawMessage(`1`), Ch: 2, Last: true}, []string{"r", "rp", "ch", "last", "data"}, `{}`},
		{"sale key echo", &protocol.Reply{R: "fd1.x", K: json.RawMessage(`"S-1"`)}, []string{"r", "k", "data"}, `{}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fields := pktMarshalFields(t, tc.reply)
			pktHasOnlyKeys(t, fields, tc.keys...)
			if string(fields["data"]) != tc.data {
				t.Errorf("data = %s, want %s", fields["data"], tc.data)
			}
		})
	}
}

func TestErrorReply(t *testing.T) {
	cases := []struct {
		name     string
		rq, rt   string
		err      error
		wantCode protocol.Code
		wantMsg  string
		keys     []string
	}{
		{
			name: "protocol error", rq: `"r1"`, rt: `{"tab":1}`,
			err:      protocol.Errorf(protocol.CodeNotFound, "no sale %q", "S-9"),
			wantCode: protocol.CodeNotFound, wantMsg: `no sale "S-9"`,
			keys: []string{"r", "rp", "rt", "error", "data"},
		},
		{
			name: "numeric rq stays a number", rq: `12345`,
			err:      protocol.Errorf(protocol.CodeBadArgument, "v.qty: is required"),
			wantCode: protocol.CodeBadArgument, wantMsg: "v.qty: is required",
			keys: []string{"r", "rp", "error", "data"},
		},
		{
			name:     "wrapped protocol error",
			err:      fmt.Errorf("sales: %w", protocol.Errorf(protocol.CodeConflict, "sale is complete")),
			wantCode: protocol.CodeConflict, wantMsg: "sale is complete",
			keys: []string{"r", "error", "data"},
		},
		{
			name: "plain error is internal", rq: `"r2"`,
			err:      errors.New("sqlite: disk I/O error at /var/lib/lane.db"),
			wantCode: protocol.CodeInternal,
			keys:     []string{"r", "rp", "error", "data"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fields := pktMarshalFields(t, protocol.ErrorReply("fd1.sales.get", pktRaw(tc.rq), pktRaw(tc.rt), tc.err))
			pktHasOnlyKeys(t, fields, tc.keys...)
			if string(fields["data"]) != `{}` {
				t.Errorf("data = %s, want {}", fields["data"])
			}
			if string(fields["r"]) != `"fd1.sales.get"` {
				t.Errorf("r = %s", fields["r"])
			}
			if tc.rq != "" && string(fields["rp"]) != tc.rq {
				t.Errorf("rp = %s, want %s", fields["rp"], tc.rq)
			}
			if tc.rt != "" && string(fields["rt"]) != tc.rt {
				t.Errorf("rt = %s, want %s", fields["rt"], tc.rt)
			}
			var e map[string]json.RawMessage
			if err := json.Unmarshal(fields["error"], &e); err != nil {
				t.Fatalf("error %s: %v", fields["error"], err)
			}
			pktHasOnlyKeys(t, e, "code", "message")
			var code, msg string
			_ = json.Unmarshal(e["code"], &code)
			_ = json.Unmarshal(e["message"], &msg)
			if protocol.Code(code) != tc.wantCode {
				t.Errorf("error.code = %q, want %q", code, tc.wantCode)
			}
			if msg == "" {
				t.Error("error.message is empty")
			}
			if tc.wantMsg != "" && msg != tc.wantMsg {
				t.Errorf("error.message = %q, want %q", msg, tc.wantMsg)
			}
			if tc.wantCode == protocol.CodeInternal && (strings.Contains(msg, "sqlite") || strings.Contains(msg, "/var/lib")) {
				t.Errorf("internal error message %q leaks the lane's error text", msg)
			}
		})
	}
}

// The error reply for a failed Decode routes by what the DecodeError carries.
func TestErrorReplyFromDecodeError(t *testing.T) {
	de := pktDecodeFail(t, []byte(`{"a":"fd1.x","rq":12345,"rt":"t","v":[1]}`))
	fields := pktMarshalFields(t, protocol.ErrorReply(de.A, de.RQ, de.RT, de.Err))
	if string(fields["r"]) != `"fd1.x"` || string(fields["rp"]) != `12345` || string(fields["rt"]) != `"t"` {
		t.Fatalf("routing fields r=%s rp=%s rt=%s", fields["r"], fields["rp"], fields["rt"])
	}
	if !strings.Contains(string(fields["error"]), `"code":"bad_packet"`) {
		t.Fatalf("error = %s, want code bad_packet", fields["error"])
	}
}

func TestAsError(t *testing.T) {
	base := protocol.Errorf(protocol.CodeForbidden, "needs scope counter")
	cases := []struct {
		name string
		err  error
		same *protocol.Error // nil = expect a fresh internal error
	}{
		{"protocol error", base, base},
		{"wrapped once", fmt.Errorf("x: %w", base), base},
		{"wrapped twice", fmt.Errorf("outer: %w", fmt.Errorf("inner: %w", base)), base},
		{"joined", errors.Join(errors.New("other"), base), base},
		{"plain error", errors.New("pq: password authentication failed for user lane"), nil},
		{"formatted without %w", fmt.Errorf("x: %v", base), nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := protocol.AsError(tc.err)
			if got == nil {
				t.Fatal("AsError returned nil")
			}
			if tc.same != nil {
				if got != tc.same {
					t.Fatalf("AsError = %p %+v, want the wrapped *Error %p", got, got, tc.same)
				}
				return
			}
			if got.Code != protocol.CodeInternal {
				t.Fatalf("code = %q, want internal", got.Code)
			}
			if got.Message == "" || strings.Contains(got.Message, tc.err.Error()) ||
				strings.Contains(got.Message, "password") || strings.Contains(got.Message, "needs scope") {
				t.Fatalf("internal message %q must be generic, not %q", got.Message, tc.err.Error())
			}
		})
	}
}

// BUG: a *DecodeError is documented as a bad_packet failure and its Error()
// says "bad_packet: …", but it does not unwrap to its *Error, so AsError (and
// ErrorReply) turn it into an internal error with a generic message. The
// server unpacks DecodeError by hand today, so no reply is wrong yet.
func TestAsErrorDecodeError(t *testing.T) {
	de := pktDecodeFail(t, []byte(`{"a":"x","v":1}`))
	var err error = de
	got := protocol.AsError(err)
	if got.Code != protocol.CodeBadPacket || got != de.Err {
		t.Fatalf("AsError(*DecodeError) = %+v, want its Err %+v", got, de.Err)
	}
	if !errors.Is(err, de.Err) {
		t.Fatal("errors.Is(DecodeError, its Err) = false")
	}
}

// --- Keywords ---

func TestKeywordsUnmarshalJSON(t *testing.T) {
	cases := []struct {
		name    string
		in      string
		want    protocol.Keywords
		wantErr bool
	}{
		{name: "comma string", in: `"a,b"`, want: protocol.Keywords{"a", "b"}},
		{name: "spaces trimmed", in: `"  a ,  b  "`, want: protocol.Keywords{"a", "b"}},
		{name: "empty parts dropped", in: `",a,,b,"`, want: protocol.Keywords{"a", "b"}},
		{name: "inner space kept", in: `"a b"`, want: protocol.Keywords{"a b"}},
		{name: "tabs and newlines trimmed", in: `"\ta\n,\rb"`, want: protocol.Keywords{"a", "b"}},
		{name: "only commas", in: `",,,"`, want: protocol.Keywords{}},
		{name: "only spaces", in: `"   "`, want: protocol.Keywords{}},
		{name: "empty string", in: `""`, want: protocol.Keywords{}},
		{name: "array", in: `["a","b"]`, want: protocol.Keywords{"a", "b"}},
		{name: "array items split", in: `["a,b","c"]`, want: protocol.Keywords{"a", "b", "c"}},
		{name: "array empty items dropped", in: `["", " ", ","]`, want: protocol.Keywords{}},
		{name: "empty array", in: `[]`, want: protocol.Keywords{}},
		{name: "duplicates kept", in: `["a","a"]`, want: protocol.Keywords{"a", "a"}},
		{name: "case kept", in: `"Chunk"`, want: protocol.Keywords{"Chunk"}},
		{name: "unicode", in: `"é,🙂"`, want: protocol.Keywords{"é", "🙂"}},
		{name: "null item skipped", in: `["a",null]`, want: protocol.Keywords{"a"}},
		{name: "null", in: `null`, want: protocol.Keywords{}},
		{name: "number", in: `1`, wantErr: true},
		{name: "boolean", in: `true`, wantErr: true},
		{name: "object", in: `{"a":1}`, wantErr: true},
		{name: "array of numbers", in: `[1,2]`, wantErr: true},
		{name: "mixed array", in: `["a",1]`, wantErr: true},
		{name: "nested array", in: `[["a"]]`, wantErr: true},
		{name: "malformed", in: `"a,b`, wantErr: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			k := protocol.Keywords{"before"}
			err := k.UnmarshalJSON([]byte(tc.in))
			if tc.wantErr {
				if err == nil {
					t.Fatalf("UnmarshalJSON(%s) = %q, want an error", tc.in, k)
				}
				if !strings.Contains(err.Error(), "string or an array of strings") {
					t.Errorf("error %q should say what is wanted", err)
				}
				if !reflect.DeepEqual(k, protocol.Keywords{"before"}) {
					t.Errorf("a failed UnmarshalJSON changed the value to %q", k)
				}
				return
			}
			if err != nil {
				t.Fatalf("UnmarshalJSON(%s): %v", tc.in, err)
			}
			if len(k) != len(tc.want) || (len(k) > 0 && !reflect.DeepEqual(k, tc.want)) {
				t.Fatalf("UnmarshalJSON(%s) = %q, want %q", tc.in, k, tc.want)
			}
		})
	}
}

func TestKeywordsInStruct(t *testing.T) {
	var s struct {
		QK protocol.Keywords `json:"qk"`
	}
	if err := json.Unmarshal([]byte(`{"qk":"x, y"}`), &s); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(s.QK, protocol.Keywords{"x", "y"}) {
		t.Fatalf("qk = %q", s.QK)
	}
	if err := json.Unmarshal([]byte(`{"qk":5}`), &s); err == nil {
		t.Fatal("qk 5 decoded without error")
	}
}

func TestKeywordsHas(t *testing.T) {
	cases := []struct {
		k    protocol.Keywords
		word string
		want bool
	}{
		{protocol.Keywords{"a", "chunk"}, "chunk", true},
		{protocol.Keywords{"a", "chunk"}, "a", true},
		{protocol.Keywords{"a", "chunk"}, "Chunk", false},
		{protocol.Keywords{"a", "chunk"}, "chun", false},
		{protocol.Keywords{"a", "chunk"}, "chunks", false},
		{protocol.Keywords{"a", "chunk"}, " chunk", false},
		{protocol.Keywords{"a", "chunk"}, "", false},
		{protocol.Keywords{}, "a", false},
		{nil, "a", false},
		{nil, "", false},
		{protocol.Keywords{"a,b"}, "a", false},
	}
	for _, tc := range cases {
		if got := tc.k.Has(tc.word); got != tc.want {
			t.Errorf("%q.Has(%q) = %v, want %v", tc.k, tc.word, got, tc.want)
		}
	}
}

// --- fuzzing ---

// FuzzDecode feeds arbitrary bytes to Decode. It must never panic; it returns
// either a request with a non-empty a or a bad_packet DecodeError; and both a
// success reply and the error reply must marshal to valid JSON.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(pktFullFrame))
	f.Add([]byte(`{"a":"x","rq":12345,"rt":[1,{"t":null}]}`))
	f.Add([]byte(`{"a":"x","rq":"r","ik":"order 17"}`))
	f.Fuzz(func(t *testing.T, frame []byte) {
		req, de := protocol.Decode(frame)
		switch {
		case req != nil && de != nil:
			t.Fatalf("both a request and an error: %+v / %v", req, de)
		case req == nil && de == nil:
			t.Fatal("neither a request nor an error")
		case de != nil:
			ikErr := de.Err != nil && de.Err.Code == protocol.CodeBadArgument && strings.HasPrefix(de.Err.Message, "ik ")
			if de.Err == nil || (de.Err.Code != protocol.CodeBadPacket && !ikErr) || de.Err.Message == "" {
				t.Fatalf("DecodeError.Err = %+v, want a bad_packet error (or bad_argument for ik) with a message", de.Err)
			}
			out, err := protocol.ErrorReply(de.A, de.RQ, de.RT, de.Err).Marshal()
			if err != nil || !json.Valid(out) {
				t.Fatalf("error reply: %v, %q", err, out)
			}
			return
		}
		if req.A == "" {
			t.Fatal("request with an empty a")
		}
		if len(req.RQ) > 0 {
			if n := utf8.RuneCountInString(req.RQString()); n > protocol.MaxRQLen {
				t.Fatalf("accepted an rq of %d characters", n)
			}
		}
		out, err := protocol.ReplyTo(req).Marshal()
		if err != nil {
			t.Fatalf("ReplyTo(req).Marshal(): %v", err)
		}
		if !json.Valid(out) {
			t.Fatalf("reply is not valid JSON: %q", out)
		}
		var back struct {
			R    string          `json:"r"`
			RP   json.RawMessage `json:"rp"`
			Data json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal(out, &back); err != nil {
			t.Fatalf("reply %q: %v", out, err)
		}
		if back.R != req.A {
			t.Fatalf("r = %q, want %q", back.R, req.A)
		}
		if string(back.Data) != `{}` {
			t.Fatalf("data = %s, want {}", back.Data)
		}
		if (len(back.RP) > 0) != (len(req.RQ) > 0) {
			t.Fatalf("rp %s does not match rq %s", back.RP, req.RQ)
		}
	})
}

// TestCheckIK: an idempotency key is any opaque string of 1–128 printable
// ASCII characters without spaces; a UUID is one such string.
func TestCheckIK(t *testing.T) {
	cases := []struct {
		name, ik string
		ok       bool
		want     string // part of the message when refused
	}{
		{name: "uuid", ik: "0f8fad5b-d9cb-469f-a165-70867728950e", ok: true},
		{name: "order number", ik: "order-17", ok: true},
		{name: "one character", ik: "x", ok: true},
		{name: "every printable", ik: "!\"#$%&'()*+,-./0123456789:;<=>?@AZ[\\]^_`az{|}~", ok: true},
		{name: "128 characters", ik: strings.Repeat("k", 128), ok: true},
		{name: "empty", ik: "", want: "1 to 128 characters, got 0"},
		{name: "129 characters", ik: strings.Repeat("k", 129), want: "1 to 128 characters, got 129"},
		{name: "space inside", ik: "order 17", want: "byte 6"},
		{name: "leading space", ik: " order", want: "without spaces"},
		{name: "tab", ik: "a\tb", want: "printable ASCII"},
		{name: "newline", ik: "a\n", want: "printable ASCII"},
		{name: "DEL", ik: "a\x7f", want: "printable ASCII"},
		{name: "non-ASCII", ik: "ordré", want: "byte 5 is 0xc3"}, // not "Ã": the byte, not a character
		{name: "NUL", ik: "a\x00b", want: "printable ASCII"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := protocol.CheckIK(tc.ik)
			if tc.ok {
				if err != nil {
					t.Fatalf("CheckIK(%q) = %v, want ok", tc.ik, err)
				}
				return
			}
			var pe *protocol.Error
			if !errors.As(err, &pe) || pe.Code != protocol.CodeBadArgument || !strings.Contains(pe.Message, tc.want) {
				t.Fatalf("CheckIK(%q) = %v, want bad_argument containing %q", tc.ik, err, tc.want)
			}
		})
	}
}

// TestDecodeIK: Decode applies CheckIK to a present ik (an empty one is
// refused, not read as "no ik"), keeping rq so the error reaches its caller.
func TestDecodeIK(t *testing.T) {
	req, de := protocol.Decode([]byte(`{"a":"x","rq":"r1","ik":"till-3/order-17"}`))
	if de != nil || req.IK != "till-3/order-17" {
		t.Fatalf("Decode = %+v, %v; want ik kept exactly", req, de)
	}
	for _, frame := range []string{
		`{"a":"x","rq":"r1","ik":""}`,
		`{"a":"x","rq":"r1","ik":"has space"}`,
		`{"a":"x","rq":"r1","ik":"` + strings.Repeat("k", 129) + `"}`,
	} {
		_, de := protocol.Decode([]byte(frame))
		if de == nil || de.Err.Code != protocol.CodeBadArgument || !strings.HasPrefix(de.Err.Message, "ik ") {
			t.Errorf("Decode(%.60s) = %v, want bad_argument about ik", frame, de)
			continue
		}
		if string(de.RQ) != `"r1"` || de.A != "x" {
			t.Errorf("Decode(%.60s): rq %s, a %q not carried", frame, de.RQ, de.A)
		}
	}
}
