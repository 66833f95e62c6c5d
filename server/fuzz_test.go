package server

import (
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/greenlane-pos/greenlane/protocol"
)

// FuzzRequestFromQuery feeds arbitrary HTTP-mode query strings to the
// parser that turns them into FD1 requests. It must never panic, and every
// refusal must be an FD1 error a client can read.
func FuzzRequestFromQuery(f *testing.F) {
	for _, seed := range []string{
		"plu=FW", "price(>=)=5", "price(%3E%3D)=5", "_k=active&_v.pid=1001&_v.plu=0012", `_v={"limit":2}`,
		"_v=notjson", "_bogus=1", "_rq=" + string(make([]byte, 300)), "pid(=)=1&pid(<)=9", "%zz", "a(=)=)=(",
		"_qk=all,mine&_mo=chunk", "name=x'%20OR%20'1'='1", "_v.qty=1e999", "\x00=\x00",
		"qk=all&k=active", "qk=all&_qk=all", "v.pid=1&_v.pid=2", `v={"a":1}&v.a=2`, `rd={"time":true}`, "rd=1", "pt=x&_pt=y", "v.=1",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return // net/http refuses such a URL before it reaches us
		}
		req, err := requestFromQuery("fd1.products.get_products_list", q)
		if err != nil {
			var pe *protocol.Error
			if !errors.As(err, &pe) {
				t.Fatalf("error is not an FD1 error: %v", err)
			}
			return
		}
		if req.A == "" || !req.FromQuery {
			t.Fatalf("request lost its endpoint or origin: %+v", req)
		}
		// A packet field, in either spelling, never becomes a q filter
		// (SPEC §1.2: ?qk=all&k=active are the packet's qk and k).
		for name := range req.Q {
			if queryField(name) != "" || strings.HasPrefix(name, "_") {
				t.Fatalf("query name %q became a q filter", name)
			}
		}
		// The filter parser must cope with whatever came through.
		if _, err := req.Filter(protocol.Fields{"plu": protocol.KindString, "price": protocol.KindMoney, "pid": protocol.KindInt}); err != nil {
			var pe *protocol.Error
			if !errors.As(err, &pe) {
				t.Fatalf("filter error is not an FD1 error: %v", err)
			}
		}
	})
}
