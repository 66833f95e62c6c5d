package catalog

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"testing"

	"github.com/greenlane-pos/greenlane/fixtures"
	"github.com/greenlane-pos/greenlane/lanedb"
	"github.com/greenlane-pos/greenlane/protocol"
)

func demoService(t *testing.T) *protocol.Router {
	t.Helper()
	ctx := context.Background()
	db, err := lanedb.Open(ctx, filepath.Join(t.TempDir(), "lane.db"), lanedb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	demo, _ := fixtures.Find("demo")
	if err := demo.Load(ctx, db, false); err != nil {
		t.Fatal(err)
	}
	r := protocol.NewRouter()
	New(db, Config{MaxRows: 5}).Register(r)
	return r
}

// list calls an endpoint with q (and qo) and returns data.rows as JSON.
func list(t *testing.T, r *protocol.Router, a string, q map[string]any, qo string) (string, bool, error) {
	t.Helper()
	req := &protocol.Request{A: a, Q: map[string]json.RawMessage{}}
	for k, v := range q {
		req.Q[k], _ = json.Marshal(v)
	}
	if qo != "" {
		req.QO = json.RawMessage(qo)
	}
	ep, err := r.Lookup(a)
	if err != nil {
		t.Fatal(err)
	}
	res, err := ep.Handler(context.Background(), &protocol.Call{Req: req, Caller: &protocol.Caller{KeyID: "k"}, Endpoint: ep})
	if err != nil {
		return "", false, err
	}
	rows := res.Data.(protocol.Rows)
	b, _ := json.Marshal(rows.Rows)
	return string(b), rows.More, nil
}

func TestProductsAndCustomers(t *testing.T) {
	r := demoService(t)
	tests := []struct {
		name, a string
		q       map[string]any
		qo      string
		want    string
		more    bool
		code    protocol.Code
	}{
		{"plu, shaped", "fd1.products.get_products_list", map[string]any{"plu": "FW"}, `{"pid":true,"price":true}`, `[{"pid":1001,"price":5.5}]`, false, ""},
		{"a product with three barcodes", "fd1.products.get_products_list", map[string]any{"pid": 1036}, `"pid,barcodes"`, `[{"pid":1036,"barcodes":["9424173000512","9424173000680","9424173000994"]}]`, false, ""},
		{"row cap says more", "fd1.products.get_products_list", nil, `{"pid":true}`, `[{"pid":1001},{"pid":1002},{"pid":1003},{"pid":1004},{"pid":1005}]`, true, ""},
		{"price filter in currency units", "fd1.products.get_products_list", map[string]any{"price(>=)": 80}, `{"pid":true}`, `[{"pid":1028}]`, false, ""},
		{"customer discount as a percentage", "fd1.customers.get_customers", map[string]any{"discount": 10}, `{"cid":true,"discount":true}`, `[{"cid":3,"discount":10}]`, false, ""},
		{"unknown field", "fd1.customers.get_customers", map[string]any{"colour": "red"}, "", "", false, protocol.CodeBadFilter},
		{"qo naming no field", "fd1.products.get_products_list", nil, `{"x":"nosuch"}`, "", false, protocol.CodeBadArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, more, err := list(t, r, tt.a, tt.q, tt.qo)
			if tt.code != "" {
				var pe *protocol.Error
				if !errors.As(err, &pe) || pe.Code != tt.code {
					t.Fatalf("err = %v, want %s", err, tt.code)
				}
				return
			}
			if err != nil || got != tt.want || more != tt.more {
				t.Fatalf("got %s more=%v err=%v\nwant %s more=%v", got, more, err, tt.want, tt.more)
			}
		})
	}
}
