package transcript

import (
	"strings"
	"testing"
)

func mustParse(t *testing.T, s string) Value {
	t.Helper()
	v, err := Parse([]byte(s))
	if err != nil {
		t.Fatalf("parse %s: %v", s, err)
	}
	return v
}

func TestParseKeepsKeyOrder(t *testing.T) {
	tests := []struct{ in, compact, indented string }{
		{`{"z":1,"a":{"y":[1,2.50,"x"],"b":null},"m":true}`, `{"z":1,"a":{"y":[1,2.50,"x"],"b":null},"m":true}`, ""},
		{` [ ] `, `[]`, ""},
		{`{"q":"<&>é"}`, `{"q":"<&>é"}`, ""},
		{`{"a":[1,{}],"b":{}}`, "", "{\n  \"a\": [\n    1,\n    {}\n  ],\n  \"b\": {}\n}"},
	}
	for _, tt := range tests {
		v := mustParse(t, tt.in)
		if tt.compact != "" && v.String() != tt.compact {
			t.Errorf("%s → %s, want %s", tt.in, v.String(), tt.compact)
		}
		if tt.indented != "" && v.Indent("", "  ") != tt.indented {
			t.Errorf("%s indented →\n%s\nwant\n%s", tt.in, v.Indent("", "  "), tt.indented)
		}
	}
	for _, bad := range []struct{ in, says string }{
		{``, "empty input"},
		{`  `, "empty input"},
		{`{`, "ends before it is complete"},
		{`{"a":`, "ends before it is complete"},
		{`{"a":"x"`, "ends before it is complete"},
		{`[1,`, "ends before it is complete"},
		{`{"a":1} {}`, "after the JSON value"},
		{`{"a":}`, "invalid character"},
		{`nul`, "ends before it is complete"},
		{`nulx`, "invalid character"},
	} {
		if _, err := Parse([]byte(bad.in)); err == nil || !strings.Contains(err.Error(), bad.says) {
			t.Errorf("Parse(%q): %v, want an error saying %q", bad.in, err, bad.says)
		}
	}
}

func TestEqual(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{`9.9`, `9.90`, true},
		{`1e2`, `100`, true},
		{`1`, `"1"`, false},
		{`{"a":1,"b":2}`, `{"b":2,"a":1}`, true},
		{`{"a":1}`, `{"a":1,"b":2}`, false},
		{`[1,2]`, `[2,1]`, false},
		{`null`, `null`, true},
	}
	for _, tt := range tests {
		if got := Equal(mustParse(t, tt.a), mustParse(t, tt.b)); got != tt.want {
			t.Errorf("Equal(%s, %s) = %v", tt.a, tt.b, got)
		}
	}
}

func TestMatch(t *testing.T) {
	tests := []struct {
		name     string
		pattern  string
		got      string
		vars     Vars
		want     []string // mismatches as "path: expected …, got …", in order
		wantVars map[string]string
	}{
		{name: "literal equal", pattern: `{"r":"x","data":{"n":9.9}}`, got: `{"r":"x","data":{"n":9.90}}`},
		{name: "subset: extra fields allowed", pattern: `{"data":{}}`, got: `{"r":"x","data":{"n":1}}`},
		{name: "$exact refuses extra fields", pattern: `{"data":{"$exact":true,"a":1}}`, got: `{"data":{"a":1,"b":2}}`,
			want: []string{`data.b: expected no such field ($exact), got 2`}},
		{name: "changed value has a path", pattern: `{"data":{"rows":[{"price":5.5},{"price":3}]}}`, got: `{"data":{"rows":[{"price":5.5},{"price":3.2}]}}`,
			want: []string{`data.rows[1].price: expected 3, got 3.2`}},
		{name: "missing field", pattern: `{"data":{"sid":1}}`, got: `{"data":{}}`,
			want: []string{`data.sid: expected 1, got (missing)`}},
		{name: "$absent", pattern: `{"error":"$absent"}`, got: `{"error":{"code":"x"}}`,
			want: []string{`error: expected no such field, got {"code":"x"}`}},
		{name: "$absent satisfied", pattern: `{"error":"$absent"}`, got: `{"data":{}}`},
		{name: "array length and elements", pattern: `{"l":[1,2]}`, got: `{"l":[1,3,4]}`,
			want: []string{`l: expected 2 elements, got 3: [1,3,4]`, `l[1]: expected 2, got 3`}},
		{name: "$more allows a longer array", pattern: `[1,"$more"]`, got: `[1,2,3]`},
		{name: "$more still needs the prefix", pattern: `[1,2,"$more"]`, got: `[1]`,
			want: []string{`(packet): expected at least 2 elements, got 1: [1]`}},
		{name: "type placeholders", pattern: `{"a":"$number","b":"$string","c":"$bool","d":"$object","e":"$array","f":"$any"}`,
			got: `{"a":1,"b":"x","c":false,"d":{},"e":[],"f":null}`},
		{name: "type placeholder mismatch", pattern: `{"a":"$number"}`, got: `{"a":"1"}`,
			want: []string{`a: expected a number ($number), got "1"`}},
		{name: "$any needs the field", pattern: `{"a":"$any"}`, got: `{}`, want: []string{`a: expected $any, got (missing)`}},
		{name: "$datetime both styles", pattern: `["$datetime","$datetime"]`, got: `["2026-11-27 08:32:58","2026-11-26T19:35:12Z"]`},
		{name: "$datetime refuses words", pattern: `["$datetime"]`, got: `["soon"]`, want: []string{`[0]: expected a date-time ($datetime), got "soon"`}},
		{name: "$physkey", pattern: `{"k":"$physkey","x":"$uuid"}`, got: `{"k":"01a21958-c721-7b57-8aaf-45a06f576d3b","x":"nope"}`,
			want: []string{`x: expected a UUID ($uuid), got "nope"`}},
		{name: "capture then reuse in the same packet", pattern: `{"k":"$capture:pk","data":{"physkey":"$pk"}}`,
			got: `{"k":"abc","data":{"physkey":"abc"}}`, wantVars: map[string]string{"pk": `"abc"`}},
		{name: "captured value must stay the same", pattern: `{"k":"$capture:pk","data":{"physkey":"$pk"}}`,
			got: `{"k":"abc","data":{"physkey":"abd"}}`, want: []string{`data.physkey: expected $pk = "abc", got "abd"`}},
		{name: "earlier capture", pattern: `{"ticket":"$ticket1"}`, got: `{"ticket":7}`, vars: Vars{"ticket1": Num("7")}},
		{name: "earlier capture differs", pattern: `{"ticket":"$ticket1"}`, got: `{"ticket":8}`, vars: Vars{"ticket1": Num("7")},
			want: []string{`ticket: expected $ticket1 = 7, got 8`}},
		{name: "never captured", pattern: `{"a":"$nope"}`, got: `{"a":1}`,
			want: []string{`a: expected $nope (never captured: capture it first with "$capture:nope", or write $$nope for the literal text), got 1`}},
		{name: "$$ is a literal dollar", pattern: `{"a":"$$any"}`, got: `{"a":"$any"}`},
		{name: "$$ mismatch", pattern: `{"a":"$$any"}`, got: `{"a":5}`, want: []string{`a: expected "$any", got 5`}},
		{name: "capture name cannot be a keyword", pattern: `{"a":"$capture:any"}`, got: `{"a":1}`,
			want: []string{`a: expected $capture:any ($any is a placeholder word, not a variable), got 1`}},
		{name: "odd keys are quoted in paths", pattern: `{"q":{"price(>=)":1}}`, got: `{"q":{"price(>=)":2}}`,
			want: []string{`q["price(>=)"]: expected 1, got 2`}},
		{name: "kind mismatch", pattern: `{"data":{"rows":[]}}`, got: `{"data":[]}`, want: []string{`data: expected {"rows":[]}, got []`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vars := tt.vars
			if vars == nil {
				vars = Vars{}
			}
			before := len(vars)
			ms := Match(mustParse(t, tt.pattern), mustParse(t, tt.got), vars)
			var got []string
			for _, m := range ms {
				got = append(got, m.String())
			}
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Fatalf("mismatches:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
			if len(ms) > 0 && len(vars) != before {
				t.Fatalf("a failed match changed vars: %v", vars)
			}
			for name, want := range tt.wantVars {
				if v, ok := vars[name]; !ok || v.String() != want {
					t.Fatalf("var %s = %v, want %s", name, v, want)
				}
			}
		})
	}
}

func TestSubstitute(t *testing.T) {
	vars := Vars{"physkey1": Str("pk-1"), "ticket1": Num("3"), "obj": mustParse(t, `{"b":1}`)}
	tests := []struct {
		name, in, want, err string
	}{
		{name: "variables keep their type and key order stays", in: `{"a":"x","k":"$physkey1","v":{"ticket":"$ticket1","o":"$obj"}}`,
			want: `{"a":"x","k":"pk-1","v":{"ticket":3,"o":{"b":1}}}`},
		{name: "$$", in: `{"v":{"note":"$$5 off"}}`, want: `{"v":{"note":"$5 off"}}`},
		{name: "unknown variable", in: `{"k":"$physkey9"}`, err: `k: $physkey9 was never captured`},
		{name: "pattern placeholder cannot be sent", in: `{"v":{"x":["$any"]}}`, err: `v.x[0]: $any is a pattern placeholder`},
		{name: "capture cannot be sent", in: `{"k":"$capture:x"}`, err: `k: $capture:x is a pattern placeholder`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := mustParse(t, tt.in)
			out, err := Substitute(in, vars)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil || out.String() != tt.want {
				t.Fatalf("got %s, %v; want %s", out, err, tt.want)
			}
			if in.String() != tt.in {
				t.Fatalf("Substitute changed its input: %s", in)
			}
		})
	}
	t.Run("$new makes a fresh UUID and binds it", func(t *testing.T) {
		v := Vars{}
		a, err := Substitute(mustParse(t, `{"ik":"$new:ik1"}`), v)
		if err != nil {
			t.Fatal(err)
		}
		ik, _ := a.Get("ik")
		if !IsUUID(ik.Str) || !Equal(v["ik1"], ik) {
			t.Fatalf("ik = %s, vars %v", ik, v)
		}
		b, _ := Substitute(mustParse(t, `{"ik":"$ik1"}`), v)
		if got, _ := b.Get("ik"); !Equal(got, ik) {
			t.Fatalf("reuse of $ik1 = %s, want %s", got, ik)
		}
		c, _ := Substitute(mustParse(t, `{"ik":"$new:ik1"}`), v)
		if got, _ := c.Get("ik"); Equal(got, ik) {
			t.Fatal("$new made the same UUID twice")
		}
	})
}
