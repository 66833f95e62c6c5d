package server

import (
	"net/url"
	"testing"
)

func TestRequestFromQuery(t *testing.T) {
	tests := []struct {
		query   string
		wantQ   map[string]string
		wantV   string
		wantK   string
		wantErr bool
	}{
		{query: "plu=FW", wantQ: map[string]string{"plu": "FW"}},
		{query: "price(>=)=5", wantQ: map[string]string{"price(>=)": "5"}},
		{query: "price(%3E%3D)=5", wantQ: map[string]string{"price(>=)": "5"}},
		{query: "pid(=)=1001", wantQ: map[string]string{"pid(=)": "1001"}},
		{query: "pid(<)=2000", wantQ: map[string]string{"pid(<)": "2000"}},
		{query: "_k=active&_v.pid=1001&_v.plu=0012", wantK: "active", wantV: `{"pid":1001,"plu":"0012"}`},
		{query: `_v={"limit":2}`, wantV: `{"limit":2}`},
		{query: "_v=notjson", wantErr: true},
		{query: "_bogus=1", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			q, err := url.ParseQuery(tt.query)
			if err != nil {
				t.Fatal(err)
			}
			req, err := requestFromQuery("fd1.products.get_products_list", q)
			if tt.wantErr {
				if err == nil {
					t.Fatal("want an error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for k, want := range tt.wantQ {
				if got := string(req.Q[k]); got != `"`+want+`"` {
					t.Errorf("q[%q] = %s, want %q", k, got, want)
				}
			}
			if len(req.Q) != len(tt.wantQ) {
				t.Errorf("q = %v, want %v", req.Q, tt.wantQ)
			}
			if string(req.V) != tt.wantV {
				t.Errorf("v = %s, want %s", req.V, tt.wantV)
			}
			if req.Key() != tt.wantK {
				t.Errorf("k = %q, want %q", req.Key(), tt.wantK)
			}
		})
	}
}

func TestOriginAllowed(t *testing.T) {
	tests := []struct {
		origin, host string
		allowed      []string
		want         bool
	}{
		{"http://lane1:3490", "lane1:3490", nil, true},
		{"http://LANE1:3490", "lane1:3490", nil, true},
		{"http://evil.example", "lane1:3490", nil, false},
		{"http://lane1:3491", "lane1:3490", nil, false},
		{"https://tablets.example", "lane1:3490", []string{"https://tablets.example"}, true},
		{"https://tablets.example", "lane1:3490", []string{"https://tablets.example/"}, true},
		{"http://tablets.example", "lane1:3490", []string{"https://tablets.example"}, false},
		{"https://anything", "lane1:3490", []string{"*"}, true},
		{"null", "lane1:3490", nil, false},
		{"lane1:3490", "lane1:3490", nil, false},
	}
	for _, tt := range tests {
		if got := OriginAllowed(tt.origin, tt.host, tt.allowed); got != tt.want {
			t.Errorf("OriginAllowed(%q, %q, %v) = %v, want %v", tt.origin, tt.host, tt.allowed, got, tt.want)
		}
	}
}
