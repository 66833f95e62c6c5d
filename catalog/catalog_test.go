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

// list calls an endpoint with q (and qo, and k as JSON) and returns
// data.rows as JSON.
func list(t *testing.T, r *protocol.Router, a string, q map[string]any, qo string, k ...string) (string, bool, error) {
	t.Helper()
	req := &protocol.Request{A: a, Q: map[string]json.RawMessage{}}
	if len(k) > 0 {
		req.K = json.RawMessage(k[0])
	}
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

// TestKeySelectsOneRecord: k names one record (SPEC §2), by its number or
// its physkey, alone or with q; a k no record has selects none (§3.1).
func TestKeySelectsOneRecord(t *testing.T) {
	r := demoService(t)
	const products, customers = "fd1.products.get_products_list", "fd1.customers.get_customers"
	tests := []struct {
		name, a, k string
		q          map[string]any
		want       string
	}{
		{"product by pid", products, `1003`, nil, `[{"pid":1003}]`},
		{"product by pid as text", products, `"1003"`, nil, `[{"pid":1003}]`},
		{"product by physkey", products, `"16ce311f-952a-597d-9bd4-e8a2bd2a7b6a"`, nil, `[{"pid":1003}]`},
		{"product by physkey and a q it meets", products, `"16ce311f-952a-597d-9bd4-e8a2bd2a7b6a"`, map[string]any{"active": true}, `[{"pid":1003}]`},
		{"product by physkey and a q it does not meet", products, `"16ce311f-952a-597d-9bd4-e8a2bd2a7b6a"`, map[string]any{"pid": 1001}, `[]`},
		{"no such product", products, `"no-such"`, nil, `[]`},
		{"no such pid", products, `999999`, nil, `[]`},
		{"customer by cid", customers, `3`, nil, `[{"cid":3}]`},
		{"customer by physkey", customers, `"b5f71de8-9f1e-56f5-9e2e-58ccb6c48d52"`, nil, `[{"cid":3}]`},
		{"hostile key", customers, `"' OR 1=1 --"`, nil, `[]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			qo := `{"pid":true}`
			if tt.a == customers {
				qo = `{"cid":true}`
			}
			got, _, err := list(t, r, tt.a, tt.q, qo, tt.k)
			if err != nil || got != tt.want {
				t.Fatalf("k %s: got %s, %v; want %s", tt.k, got, err, tt.want)
			}
		})
	}
}
