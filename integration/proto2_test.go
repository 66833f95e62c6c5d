package integration

import (
	"strings"
	"testing"
)

// TestProtocolEdges drives the built binary through the protocol's rough
// edges: strict v on changes, numbers in a GET query, a tablet key off a
// presell socket, unknown firehose options, unsupported names and the
// login purpose message. One lane serves every case.
func TestProtocolEdges(t *testing.T) {
	alongside(t)
	l := startLane(t)
	till := l.newKey("counter-1", "counter")
	tabKey := l.newKey("tablet-1", "presell")
	hdr := func(key string) map[string]string { return map[string]string{"x-api-key": key} }
	says := func(t *testing.T, p *packet, code string, words ...string) {
		t.Helper()
		p.wantError(t, code)
		for _, w := range words {
			if !strings.Contains(p.Error.Message, w) {
				t.Fatalf("%s: %q does not say %q", code, p.Error.Message, w)
			}
		}
	}

	t.Run("a misspelled field on a change is refused", func(t *testing.T) {
		tab := l.login(presellQuery, tabKey, "")
		k := tab.call(map[string]any{"a": "fd1.salesbuilder.sale_create", "rq": "c"}).k()
		r := tab.call(map[string]any{"a": "fd1.salesbuilder.sale_add_product", "rq": "a", "k": k, "v": map[string]any{"plu": "FW", "qyt": 3}})
		says(t, r, "bad_argument", "v.qyt", "qty")
		// The same request spelled right adds three.
		r = tab.call(map[string]any{"a": "fd1.salesbuilder.sale_add_product", "rq": "b", "k": k, "v": map[string]any{"plu": "FW", "qty": 3}})
		if lines := r.rows(t)[0]["lines"].([]any); len(lines) != 1 || lines[0].(map[string]any)["qty"] != float64(3) {
			t.Fatalf("lines after the good add: %v", lines)
		}
		// Login still takes what clients send beside the key.
		c := l.dial("")
		if r := c.call(map[string]any{"a": "fd1.session.login", "rq": "l", "v": map[string]any{"apikey": till, "tz": "Pacific/Auckland", "geo": map[string]any{"lat": 1}}}); r.Error != nil {
			t.Fatalf("login with tz and geo: %s", r.raw)
		}
	})

	t.Run("a member of v named in another case or twice is refused on a change", func(t *testing.T) {
		c := l.login("", till, "")
		k := c.call(map[string]any{"a": "fd1.salesbuilder.sale_create", "rq": "c"}).k()
		c.call(map[string]any{"a": "fd1.salesbuilder.sale_add_product", "rq": "p", "k": k, "v": map[string]any{"plu": "FW"}})
		// encoding/json would read AMOUNT as amount, and the last of a
		// name given twice: $10 taken where the packet reads $1.
		for _, v := range []string{`{"type":1,"amount":1,"AMOUNT":10}`, `{"type":1,"amount":1,"amount":10}`, `{"Type":1,"Amount":1}`} {
			c.sendRaw([]byte(`{"a":"fd1.salesbuilder.sale_add_payment","rq":"x","k":"` + k + `","v":` + v + `}`))
			r := c.next()
			r.wantError(t, "bad_argument")
			if !strings.Contains(r.Error.Message, "given twice") && !strings.Contains(r.Error.Message, "names are exact") {
				t.Fatalf("%s: %q does not say why", v, r.Error.Message)
			}
		}
		_, p := l.httpCall("GET", "/fd1/salesbuilder/sale_add_payment?k="+k+"&v.type=1&v.AMOUNT=100&v.amount=1", hdr(till), "")
		says(t, p, "bad_argument", "v.AMOUNT", "names are exact")
		if got := sqliteRows(t, l.db, `SELECT COUNT(*) AS n FROM payments WHERE sale_physkey = %s`, sqlQuote(k)); num(got[0]["n"]) != 0 {
			t.Fatalf("payments after refused requests: %v", got)
		}
		// A POST's packet is its body: a query beside it would be ignored.
		_, p = l.httpCall("POST", "/fd1/salesbuilder/sale_add_payment?v.amount=100", hdr(till), `{"k":"`+k+`","v":{"type":1,"amount":1}}`)
		says(t, p, "bad_packet", "query")
	})

	t.Run("an ik retry written another way is the same request", func(t *testing.T) {
		c := l.login("", till, "")
		k := c.call(map[string]any{"a": "fd1.salesbuilder.sale_create", "rq": "c"}).k()
		c.call(map[string]any{"a": "fd1.salesbuilder.sale_add_product", "rq": "p", "k": k, "v": map[string]any{"plu": "FW"}})
		ik := "ik-written-" + k[:8]
		c.sendRaw([]byte(`{"a":"fd1.salesbuilder.sale_add_payment","rq":"1","ik":"` + ik + `","k":"` + k + `","v":{"type":1,"amount":1}}`))
		first := c.next()
		if first.Error != nil {
			t.Fatalf("payment: %s", first.raw)
		}
		// Members in another order, the amount as text, over HTTP as a
		// POST and as a GET: each is the first request again, answered as
		// it was, and nothing more is paid.
		c.sendRaw([]byte(`{"ik":"` + ik + `","v":{"amount":"1","type":1},"k":"` + k + `","rq":"2","a":"fd1.salesbuilder.sale_add_payment"}`))
		if r := c.next(); r.Error != nil || string(r.Data) != string(first.Data) {
			t.Fatalf("retry with its members in another order: %s, want the first reply %s", r.raw, first.Data)
		}
		if _, p := l.httpCall("POST", "/fd1/salesbuilder/sale_add_payment", hdr(till), `{"ik":"`+ik+`","k":"`+k+`","v":{"amount":1.00,"type":1}}`); p.Error != nil || string(p.Data) != string(first.Data) {
			t.Fatalf("retry as a POST: %s, want the first reply", p.raw)
		}
		if _, p := l.httpCall("GET", "/fd1/salesbuilder/sale_add_payment?ik="+ik+"&k="+k+"&v.type=1&v.amount=1", hdr(till), ""); p.Error != nil || string(p.Data) != string(first.Data) {
			t.Fatalf("retry as a GET: %s, want the first reply", p.raw)
		}
		if got := sqliteRows(t, l.db, `SELECT COUNT(*) AS n FROM payments WHERE sale_physkey = %s`, sqlQuote(k)); num(got[0]["n"]) != 1 {
			t.Fatalf("payments after a payment and three retries: %v, want 1", got)
		}
		// A different amount under the same ik is another request.
		c.sendRaw([]byte(`{"a":"fd1.salesbuilder.sale_add_payment","rq":"3","ik":"` + ik + `","k":"` + k + `","v":{"type":1,"amount":2}}`))
		c.next().wantError(t, "ik_reused")
	})

	t.Run("a void's reason is plain text", func(t *testing.T) {
		tab := l.login(presellQuery, tabKey, "")
		k := tab.call(map[string]any{"a": "fd1.salesbuilder.sale_create", "rq": "c"}).k()
		// Counters are shown the reason: nothing in it may hide or reorder
		// what they read.
		for _, reason := range []string{"wrong\u202eorder", "line\none", "esc\x1b[31m", "nul\x00"} {
			r := tab.call(map[string]any{"a": "fd1.salesbuilder.sale_cancel", "rq": "x", "k": k, "v": map[string]any{"reason": reason}})
			says(t, r, "bad_argument", "v.reason", "plain text")
		}
		if r := tab.call(map[string]any{"a": "fd1.salesbuilder.sale_cancel", "rq": "v", "k": k, "v": map[string]any{"reason": "customer left — café closed"}}); r.Error != nil {
			t.Fatalf("a plain reason: %s", r.raw)
		}
	})

	t.Run("a number in a GET query reads as what the field wants", func(t *testing.T) {
		status, p := l.httpCall("POST", "/fd1/salesbuilder/sale_create", hdr(till), `{}`)
		if status != 200 {
			t.Fatalf("create: %d %s", status, p.raw)
		}
		k := p.k()
		status, p = l.httpCall("GET", "/fd1/salesbuilder/sale_add_product?k="+k+"&v.barcode=9415321000140&v.qty=2", hdr(till), "")
		if status != 200 {
			t.Fatalf("add by barcode of digits: %d %s", status, p.raw)
		}
		line := p.rows(t)[0]["lines"].([]any)[0].(map[string]any)
		if line["pid"] != float64(1010) || line["qty"] != float64(2) {
			t.Fatalf("line %v, want pid 1010 qty 2", line)
		}
		_, p = l.httpCall("GET", "/fd1/salesbuilder/sale_add_product?k="+k+"&v=%7B%22qty%22%3A1%7D&v.qty=2&v.pid=1001", hdr(till), "")
		says(t, p, "bad_packet", "v.qty", "twice")
		_, p = l.httpCall("GET", "/fd1/salesbuilder/sale_add_product?k="+k+"&v.plu=null", hdr(till), "")
		says(t, p, "bad_argument", "v.plu", "null")
		_, p = l.httpCall("GET", "/fd1/salesbuilder/sale_add_product?k="+k+"&v=null", hdr(till), "")
		says(t, p, "bad_argument", "got null")
	})

	t.Run("a tablet key builds only on a presell socket", func(t *testing.T) {
		_, p := l.httpCall("POST", "/fd1/salesbuilder/sale_create", hdr(tabKey), `{}`)
		says(t, p, "forbidden", "?purpose=presell")
		plain := l.login("", tabKey, "")
		says(t, plain.call(map[string]any{"a": "fd1.salesbuilder.sale_create", "rq": "c"}), "forbidden", "?purpose=presell")
	})

	t.Run("open_firehose refuses an unknown option", func(t *testing.T) {
		c := l.login("", till, "")
		says(t, c.call(map[string]any{"a": "fd1.firehose.open_firehose", "rq": "f", "v": map[string]any{"event": "presell", "bogus": 1}}),
			"bad_argument", "v.bogus", "event")
	})

	t.Run("unsupported names the endpoint called", func(t *testing.T) {
		c := l.login("", till, "")
		says(t, c.call(map[string]any{"a": "fd1.devices.request_eftpos_payment", "rq": "e"}), "unsupported", "fd1.devices.request_eftpos_payment is not offered")
		says(t, c.call(map[string]any{"a": "fd1.devices.scale_read_ready", "rq": "s"}), "unsupported", "fd1.devices.scale_read_ready")
		says(t, c.call(map[string]any{"a": "fd1.sales.get_receipt", "rq": "r"}), "unsupported", "own POS")
		// The README names fd1.devices.* as not offered: every function of it.
		says(t, c.call(map[string]any{"a": "fd1.devices.get_devices", "rq": "d"}), "unsupported", "fd1.devices.get_devices is not offered")
	})

	t.Run("a bogus login purpose is told presell is on the URL", func(t *testing.T) {
		c := l.dial("")
		r := c.call(map[string]any{"a": "fd1.session.login", "rq": "l", "v": map[string]any{"apikey": till, "purpose": "bogus"}})
		says(t, r, "bad_argument", "customerdisplay or debugscope", "?purpose=presell")
	})
}
