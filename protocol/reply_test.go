package protocol_test

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"

	"github.com/greenlane-pos/greenlane/protocol"
)

// TestReplyChunks: a list reply for mo:"chunk" becomes packets of at most
// Chunk rows with one rp, ch counting from 1 and last on the final packet;
// every row appears exactly once, in order, and only the last may say more.
func TestReplyChunks(t *testing.T) {
	rowsOf := func(n int) []any {
		out := make([]any, n)
		for i := range out {
			out[i] = map[string]any{"pid": i + 1}
		}
		return out
	}
	cases := []struct {
		name     string
		data     any
		wantSize []int // rows per packet; nil: the reply comes back untouched
		more     bool
	}{
		{name: "three full chunks", data: protocol.Rows{Rows: rowsOf(6), Chunk: 2}, wantSize: []int{2, 2, 2}},
		{name: "short last chunk", data: protocol.Rows{Rows: rowsOf(7), Chunk: 3}, wantSize: []int{3, 3, 1}},
		{name: "fits in one", data: protocol.Rows{Rows: rowsOf(3), Chunk: 5}, wantSize: []int{3}},
		{name: "exactly one chunk", data: protocol.Rows{Rows: rowsOf(5), Chunk: 5}, wantSize: []int{5}},
		{name: "empty list", data: protocol.Rows{Rows: []any{}, Chunk: 5}, wantSize: []int{0}},
		{name: "cut by the cap", data: protocol.Rows{Rows: rowsOf(4), More: true, Chunk: 2}, wantSize: []int{2, 2}, more: true},
		{name: "typed slice", data: protocol.Rows{Rows: []int{1, 2, 3}, Chunk: 2}, wantSize: []int{2, 1}},
		{name: "not asked", data: protocol.Rows{Rows: rowsOf(6)}},
		{name: "not a list", data: map[string]any{"n": 1}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			reply := &protocol.Reply{R: "fd1.products.get_products_list", RP: json.RawMessage(`"c7"`),
				RT: json.RawMessage(`{"tab":1}`), SC: "product", Data: tc.data}
			chunks := reply.Chunks()
			if tc.wantSize == nil {
				if len(chunks) != 1 || chunks[0] != reply {
					t.Fatalf("got %d packets, want the reply itself", len(chunks))
				}
				return
			}
			if len(chunks) != len(tc.wantSize) {
				t.Fatalf("got %d packets, want %d", len(chunks), len(tc.wantSize))
			}
			next := 1
			for i, c := range chunks {
				b, err := c.Marshal()
				if err != nil {
					t.Fatal(err)
				}
				var got struct {
					R    string          `json:"r"`
					RP   json.RawMessage `json:"rp"`
					RT   json.RawMessage `json:"rt"`
					SC   string          `json:"sc"`
					Ch   int             `json:"ch"`
					Last bool            `json:"last"`
					Data struct {
						Rows []json.RawMessage `json:"rows"`
						More bool              `json:"more"`
					} `json:"data"`
				}
				if err := json.Unmarshal(b, &got); err != nil {
					t.Fatalf("packet %d: %v: %s", i+1, err, b)
				}
				last := i == len(chunks)-1
				if got.R != reply.R || string(got.RP) != `"c7"` || string(got.RT) != `{"tab":1}` || got.SC != "product" {
					t.Errorf("packet %d lost r, rp, rt or sc: %s", i+1, b)
				}
				if got.Ch != i+1 || got.Last != last {
					t.Errorf("packet %d: ch %d last %v, want ch %d last %v", i+1, got.Ch, got.Last, i+1, last)
				}
				if got.Data.More != (last && tc.more) {
					t.Errorf("packet %d: more %v", i+1, got.Data.More)
				}
				if len(got.Data.Rows) != tc.wantSize[i] {
					t.Errorf("packet %d has %d rows, want %d", i+1, len(got.Data.Rows), tc.wantSize[i])
				}
				for _, row := range got.Data.Rows {
					if n := strconv.Itoa(next); string(row) != n && string(row) != `{"pid":`+n+`}` {
						t.Errorf("packet %d: row %s out of order, want row %d next", i+1, row, next)
					}
					next++
				}
				if !strings.Contains(string(b), `"rows":[`) {
					t.Errorf("packet %d has no rows array: %s", i+1, b)
				}
			}
		})
	}
}

func TestRequestWantsChunks(t *testing.T) {
	for frame, want := range map[string]bool{
		`{"a":"x","mo":"chunk"}`:           true,
		`{"a":"x","mo":["other","chunk"]}`: true,
		`{"a":"x","mo":"other, chunk"}`:    true,
		`{"a":"x"}`:                        false,
		`{"a":"x","mo":"chunked"}`:         false,
		`{"a":"x","mo":[]}`:                false,
	} {
		req, de := protocol.Decode([]byte(frame))
		if de != nil {
			t.Fatalf("%s: %v", frame, de)
		}
		if got := req.WantsChunks(); got != want {
			t.Errorf("%s: WantsChunks = %v, want %v", frame, got, want)
		}
	}
}
