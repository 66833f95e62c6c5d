package transcript

import (
	"bytes"
	"strings"
	"testing"
)

func TestRecorder(t *testing.T) {
	const pk = "01a21958-c721-7b57-8aaf-45a06f576d3b"
	const ik = "5f0c9d0e-8a55-4c1e-9a43-2d1f3b9c7e10"
	type ev struct {
		send   bool
		socket string
		packet string
	}
	tests := []struct {
		name    string
		literal bool
		events  []ev
		want    []string // the lines after the open line
	}{
		{
			name: "UUIDs are captured on first sight and reused, in replies and in sends",
			events: []ev{
				{true, "tablet", `{"a":"salesbuilder.sale_create","rq":"c1"}`},
				{false, "tablet", `{"r":"salesbuilder.sale_create","rp":"c1","k":"` + pk + `","data":{"rows":[{"physkey":"` + pk + `","startdt":"2026-11-27 08:32:58","saletotal":0}]}}`},
				{true, "tablet", `{"a":"salesbuilder.sale_fetch","rq":"c2","k":"` + pk + `"}`},
			},
			want: []string{
				`{"socket":"tablet","send":{"a":"salesbuilder.sale_create","rq":"c1"}}`,
				`{"socket":"tablet","expect":{"r":"salesbuilder.sale_create","rp":"c1","k":"$capture:physkey1","data":{"rows":[{"physkey":"$physkey1","startdt":"$datetime","saletotal":0}]}}}`,
				`{"socket":"tablet","send":{"a":"salesbuilder.sale_fetch","rq":"c2","k":"$physkey1"}}`,
			},
		},
		{
			name: "identity numbers are captured per field name; seq is any number",
			events: []ev{
				{false, "counter", `{"rp":"ps","sc":"presell.submitted","v":{"ticket":1,"total":1,"actor":"tablet-1","at_utc":"2026-11-26 19:33:23"},"seq":25}`},
				{true, "counter", `{"a":"fd1.presell.recall","rq":"c3","v":{"ticket":1,"qty":1}}`},
				{false, "counter", `{"r":"fd1.presell.recall","rp":"c3","data":{"rows":[{"ticket":1,"holder":"tablet-1","sid":null}]}}`},
			},
			want: []string{
				`{"socket":"counter","expect":{"rp":"ps","sc":"presell.submitted","v":{"ticket":"$capture:ticket1","total":1,"actor":"$capture:actor1","at_utc":"$datetime"},"seq":"$number"}}`,
				`{"socket":"counter","send":{"a":"fd1.presell.recall","rq":"c3","v":{"ticket":"$ticket1","qty":1}}}`,
				`{"socket":"counter","expect":{"r":"fd1.presell.recall","rp":"c3","data":{"rows":[{"ticket":"$ticket1","holder":"$actor1","sid":null}]}}}`,
			},
		},
		{
			name: "an ik the client made up is new on every replay; dollars are escaped; timings are any",
			events: []ev{
				{true, "main", `{"a":"x","rq":"c4","ik":"` + ik + `","v":{"note":"$5"}}`},
				{false, "main", `{"r":"x","rp":"c4","data":{"note":"$5"},"debug_rd":{"time":{"total":0.002}}}`},
				{true, "main", `{"a":"x","rq":"c5","ik":"` + ik + `"}`},
			},
			want: []string{
				`{"socket":"main","send":{"a":"x","rq":"c4","ik":"$new:ik1","v":{"note":"$$5"}}}`,
				`{"socket":"main","expect":{"r":"x","rp":"c4","data":{"note":"$$5"},"debug_rd":"$any"}}`,
				`{"socket":"main","send":{"a":"x","rq":"c5","ik":"$ik1"}}`,
			},
		},
		{
			name: "text quoting a volatile value is any string; other text stays",
			events: []ev{
				{false, "c", `{"r":"x","rp":"c1","data":{"holder":"tablet-1"}}`},
				{false, "c", `{"r":"x","rp":"c2","error":{"code":"claimed","message":"presell ` + pk + ` is claimed"}}`},
				{false, "c", `{"r":"x","rp":"c3","error":{"code":"not_found","message":"no active sale for key \"tablet-1\""}}`},
				{false, "c", `{"r":"x","rp":"c4","error":{"code":"claimed","message":"claimed until 2026-11-26T19:42:21Z"}}`},
				{false, "c", `{"r":"x","rp":"c5","error":{"code":"bad_filter","message":"q[\"price\"]: want a number"}}`},
			},
			want: []string{
				`{"socket":"c","expect":{"r":"x","rp":"c1","data":{"holder":"$capture:holder1"}}}`,
				`{"socket":"c","expect":{"r":"x","rp":"c2","error":{"code":"claimed","message":"$string"}}}`,
				`{"socket":"c","expect":{"r":"x","rp":"c3","error":{"code":"not_found","message":"$string"}}}`,
				`{"socket":"c","expect":{"r":"x","rp":"c4","error":{"code":"claimed","message":"$string"}}}`,
				`{"socket":"c","expect":{"r":"x","rp":"c5","error":{"code":"bad_filter","message":"q[\"price\"]: want a number"}}}`,
			},
		},
		{
			name:    "literal mode keeps everything",
			literal: true,
			events: []ev{
				{false, "main", `{"r":"x","rp":"c1","k":"` + pk + `","seq":3}`},
			},
			want: []string{`{"socket":"main","expect":{"r":"x","rp":"c1","k":"` + pk + `","seq":3}}`},
		},
		{
			name:   "a packet that is not an object is noted, not sent",
			events: []ev{{true, "main", `[1`}},
			want:   []string{`{"#":"not recorded, not a JSON object: sent on main: [1"}`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			r := NewRecorder(&buf, RecordOptions{Literal: tt.literal})
			if err := r.Open("x", "", &Login{}); err != nil {
				t.Fatal(err)
			}
			for _, e := range tt.events {
				var err error
				if e.send {
					err = r.Send(e.socket, []byte(e.packet))
				} else {
					err = r.Receive(e.socket, []byte(e.packet))
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
			if lines[0] != `{"open":"x","login":{}}` {
				t.Fatalf("open line %s", lines[0])
			}
			if got := strings.Join(lines[1:], "\n"); got != strings.Join(tt.want, "\n") {
				t.Fatalf("recorded:\n%s\nwant:\n%s", got, strings.Join(tt.want, "\n"))
			}
			if _, err := Read(&buf); err != nil {
				t.Fatalf("the recording does not read back: %v", err)
			}
		})
	}
}
