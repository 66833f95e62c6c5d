package transcript

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRead(t *testing.T) {
	in := `{"#":"a presell"}

{"open":"tablet","url_query":"?purpose=presell","login":{}}
{"open":"display","login":{"purpose":"customerdisplay","key":"$KEY_DISPLAY"}}
{"socket":"tablet","send":{"z":1,"a":"fd1.debug.ping","rq":"p"}}
{"expect":{"r":"fd1.debug.ping"}}
{"close":"tablet"}
`
	steps, err := Read(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(steps) != 6 {
		t.Fatalf("%d steps", len(steps))
	}
	checks := []struct {
		ok   bool
		what string
	}{
		{steps[0].Comment == "a presell" && steps[0].Line == 1, "comment on line 1"},
		{steps[1].Open == "tablet" && steps[1].URLQuery == "?purpose=presell" && steps[1].Login != nil && steps[1].Line == 3, "open tablet after a blank line"},
		{steps[2].Login.Purpose == "customerdisplay" && steps[2].Login.Key == "$KEY_DISPLAY", "login purpose and key"},
		{steps[3].Socket == "tablet" && steps[3].Send.String() == `{"z":1,"a":"fd1.debug.ping","rq":"p"}`, "send keeps key order"},
		{steps[4].Socket == DefaultSocket, "expect without socket is on main"},
		{steps[5].Close == "tablet", "close"},
	}
	for _, c := range checks {
		if !c.ok {
			t.Errorf("%s: %+v", c.what, steps)
		}
	}
	// MarshalLine writes lines Read reads back the same.
	for _, st := range steps {
		again, err := Read(strings.NewReader(string(MarshalLine(st))))
		if err != nil || len(again) != 1 {
			t.Fatalf("re-read %s: %v", MarshalLine(st), err)
		}
		if string(MarshalLine(again[0])) != string(MarshalLine(st)) {
			t.Errorf("round trip: %s became %s", MarshalLine(st), MarshalLine(again[0]))
		}
	}
}

func TestReadErrors(t *testing.T) {
	tests := []struct{ line, want string }{
		{`{"send":{"a":"x"},"expect":{}}`, "exactly one of"},
		{`{}`, "exactly one of"},
		{`{"expcet":{}}`, `unknown field "expcet"`},
		{`{"send":[1]}`, `"send" must be a JSON object`},
		{`{"send":{"a":"x"},"url_query":"?a"}`, `"url_query" and "login" go with "open"`},
		{`{"open":"t","url_query":"purpose=presell"}`, `must start with "?"`},
		{`{"open":"a b"}`, "socket name"},
		{`{"close":"t","socket":"u"}`, `"socket" goes with`},
		{`not json`, "not a transcript line"},
	}
	for _, tt := range tests {
		_, err := Read(strings.NewReader("{\"#\":\"ok\"}\n" + tt.line + "\n"))
		if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "line 2:") {
			t.Errorf("%s: err = %v, want line 2 and %q", tt.line, err, tt.want)
		}
	}
	// A file's line is FILE:LINE:, as a failed replay's report names it.
	path := filepath.Join(t.TempDir(), "bad.jsonl")
	if err := os.WriteFile(path, []byte("{\"#\":\"ok\"}\n{}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := ReadFile(path)
	var le *LineError
	if !errors.As(err, &le) || le.Line != 2 || !strings.HasPrefix(err.Error(), path+":2: want exactly one of") {
		t.Errorf("ReadFile: err = %v, want %s:2: and a *LineError", err, path)
	}
}
