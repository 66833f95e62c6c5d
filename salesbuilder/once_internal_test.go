package salesbuilder

import (
	"encoding/json"
	"testing"
)

// TestStoredReplyJSON: the stored reply put together by hand is what
// json.Marshal makes of storedReply (for a view json.Marshal made, as
// storeReply's is), and reads back as it.
func TestStoredReplyJSON(t *testing.T) {
	for _, c := range []struct {
		physkey string
		view    any
	}{
		{"01a251ba-46fb-7cad-91d7-ecb1e7fe8f75", map[string]any{"physkey": "01a251ba-46fb-7cad-91d7-ecb1e7fe8f75", "lines": []any{map[string]any{"pid": 1001}}, "saletotal": 5.5}},
		{"", nil},
		{`odd "<key>" é`, map[string]any{"description": `Flat "White" <b>& é`}},
	} {
		view, err := json.Marshal(c.view)
		if err != nil {
			t.Fatal(err)
		}
		want, err := json.Marshal(storedReply{Physkey: c.physkey, View: view})
		if err != nil {
			t.Fatal(err)
		}
		got := storedReplyJSON(c.physkey, view)
		if string(got) != string(want) {
			t.Errorf("got  %s\nwant %s", got, want)
		}
		var back storedReply
		if err := json.Unmarshal(got, &back); err != nil || back.Physkey != c.physkey || string(back.View) != string(view) {
			t.Errorf("%s reads back as %+v, %v", got, back, err)
		}
	}
}
