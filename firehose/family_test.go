package firehose

import (
	"encoding/json"
	"testing"

	"github.com/greenlane-pos/greenlane/lanedb"
)

func TestBodies(t *testing.T) {
	row := func(detail string) lanedb.JournalEntry {
		return lanedb.JournalEntry{Seq: 7, AtUTC: "2026-12-06 09:00:00", Family: "presell", Event: "claimed",
			Physkey: "pk-1", Actor: "counter-1", Detail: detail}
	}
	envelope := `"physkey":"pk-1","actor":"counter-1","at_utc":"2026-12-06 09:00:00"`
	tests := []struct {
		name   string
		body   func(lanedb.JournalEntry) (json.RawMessage, error)
		detail string
		want   string // "" when the row cannot be sent
	}{
		{"detail as written", Detail, `{"status":"idle","lines":[]}`, `{"status":"idle","lines":[]}`},
		{"envelope around the detail", DetailWithEnvelope, `{"ticket":12}`, `{"ticket":12,` + envelope + `}`},
		{"the envelope wins over the detail", DetailWithEnvelope, `{"actor":"someone","ticket":12}`, `{"ticket":12,` + envelope + `}`},
		{"envelope alone: empty detail", DetailWithEnvelope, `{}`, `{` + envelope + `}`},
		{"envelope alone: null detail", DetailWithEnvelope, `null`, `{` + envelope + `}`},
		{"envelope alone: detail not an object", DetailWithEnvelope, `[1]`, `{` + envelope + `}`},
		// Rows another program wrote.
		{"detail not JSON", Detail, `not json`, ""},
		{"detail cut off", Detail, `{"status":`, ""},
		{"detail empty", Detail, ``, ""},
		{"detail not UTF-8", Detail, "{\"note\":\"caf\xe9\"}", ""},
		{"envelope alone: detail not JSON", DetailWithEnvelope, `not json`, `{` + envelope + `}`},
	}
	for _, tt := range tests {
		got, err := tt.body(row(tt.detail))
		switch {
		case tt.want == "" && err == nil:
			t.Errorf("%s: body %s, want the row refused", tt.name, got)
			continue
		case tt.want == "":
			continue
		case err != nil:
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		var g, w any
		if err := json.Unmarshal(got, &g); err != nil {
			t.Errorf("%s: %s is not JSON", tt.name, got)
			continue
		}
		_ = json.Unmarshal([]byte(tt.want), &w)
		gb, _ := json.Marshal(g)
		wb, _ := json.Marshal(w)
		if string(gb) != string(wb) {
			t.Errorf("%s: body %s, want %s", tt.name, got, tt.want)
		}
	}
}
