package integration

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// Inputs that slipped through (issue 10, items 11, 13, 24): range checks on
// q numbers, numbers sent as text, any printable ik, and chunked replies.

// TestInputsAgeFilterRange: get_presells' age becomes a time.Duration.
// 9300000000 s overflowed it into a negative span and listed every open
// presell; it is now bad_filter, and the socket keeps working. A ticket
// past any real ticket simply matches none.
func TestInputsAgeFilterRange(t *testing.T) {
	alongside(t)
	l := startLane(t)
	tab := l.login(presellQuery, l.newKey("age-tablet", "presell"), "")
	counter := l.login("", l.newKey("age-counter", "counter"), "")
	pk := sale(t, tab, sbA+"sale_create", nil, nil)["physkey"].(string)
	sale(t, tab, sbA+"sale_add_product", pk, map[string]any{"pid": 1001})
	sale(t, tab, sbA+"sale_park", pk, nil)

	list := func(q map[string]any) *packet {
		t.Helper()
		return doPkt(t, counter, map[string]any{"a": "fd1.presell.get_presells", "rq": "list", "q": q})
	}
	if rows := list(map[string]any{"age(>=)": 0}).rows(t); len(rows) != 1 {
		t.Fatalf("age >= 0 lists %d presells, want the one submitted", len(rows))
	}
	for _, q := range []map[string]any{
		{"age(>=)": 9300000000},
		{"age(>=)": "9300000000"},
		{"age(<)": 315576001},
		{"age(<=)": -1},
		{"age": 1e30},
	} {
		r := list(q)
		r.wantError(t, "bad_filter")
		if !strings.Contains(r.Error.Message, "want seconds from 0 to 315576000") && !strings.Contains(r.Error.Message, "out of range") {
			t.Errorf("q %v: message %q does not give the range", q, r.Error.Message)
		}
	}
	if rows := list(map[string]any{"ticket(>=)": 9300000000}).rows(t); len(rows) != 0 {
		t.Fatalf("ticket >= 9300000000 lists %d presells, want none", len(rows))
	}
	counter.ping()
}

// TestInputsNumbersAsText: integer and money fields in v and q take a
// string holding a plain decimal, over WebSocket and HTTP GET alike, and
// refuse any other string with the usual error; the socket keeps working.
func TestInputsNumbersAsText(t *testing.T) {
	alongside(t)
	l := startLane(t)
	l.anyKeyWillDo()
	c := l.login("", l.newKey("text-counter", "counter"), "")

	pk := sale(t, c, sbA+"sale_create", nil, nil)["physkey"].(string)
	s := sale(t, c, sbA+"sale_add_product", pk, map[string]any{"pid": "1001", "qty": "2"})
	lines := s["lines"].([]any)
	if len(lines) != 1 || lines[0].(map[string]any)["qty"] != 2.0 || lines[0].(map[string]any)["pid"] != 1001.0 {
		t.Fatalf("pid \"1001\" qty \"2\" made lines %v", s["lines"])
	}
	s = sale(t, c, sbA+"sale_add_payment", pk, map[string]any{"type": "1", "amount": "5.50"})
	pays := s["payments"].([]any)
	if len(pays) != 1 || pays[0].(map[string]any)["amount"] != 5.5 {
		t.Fatalf("amount \"5.50\" made payments %v", s["payments"])
	}
	for _, bad := range []struct {
		a     string
		v     map[string]any
		field string
	}{
		{sbA + "sale_add_product", map[string]any{"pid": 1001, "qty": "2abc"}, "v.qty"},
		{sbA + "sale_add_product", map[string]any{"pid": 1001, "qty": "1e3"}, "v.qty"},
		{sbA + "sale_add_product", map[string]any{"pid": 1001, "qty": " 2"}, "v.qty"},
		{sbA + "sale_add_product", map[string]any{"pid": "0x10"}, "v.pid"},
		{sbA + "sale_add_product", map[string]any{"pid": ""}, "v.pid"},
		{sbA + "sale_add_payment", map[string]any{"type": 1, "amount": "1.005"}, "v.amount"},
		{sbA + "sale_add_payment", map[string]any{"type": 1, "amount": "NaN"}, "v.amount"},
		{sbA + "sale_add_payment", map[string]any{"type": 1, "amount": "Infinity"}, "v.amount"},
	} {
		wantErr(t, c, req(bad.a, pk, bad.v), "bad_argument", bad.field)
	}

	products := func(q map[string]any) *packet {
		t.Helper()
		return doPkt(t, c, map[string]any{"a": "fd1.products.get_products_list", "rq": "p", "q": q})
	}
	rows := products(map[string]any{"price(>=)": "20"}).rows(t)
	if len(rows) == 0 {
		t.Fatal(`price(>=) "20" matched no product; the demo lane has some at 20 or more`)
	}
	for _, r := range rows {
		if r["price"].(float64) < 20 {
			t.Fatalf(`price(>=) "20" matched %v`, r)
		}
	}
	if rows := products(map[string]any{"pid": "1001"}).rows(t); len(rows) != 1 {
		t.Fatalf(`pid "1001" matched %d products`, len(rows))
	}
	for _, q := range []map[string]any{{"pid": "17abc"}, {"pid": "1e3"}, {"price(>=)": "20.505"}, {"price": "NaN"}} {
		products(q).wantError(t, "bad_filter")
	}

	// HTTP GET: every value is text, by the same rule.
	hdr := map[string]string{"x-api-key": l.key}
	status, p := l.httpCall("GET", "/fd1/products/get_products_list?pid=1001", hdr, "")
	if status != 200 || len(p.rows(t)) != 1 {
		t.Fatalf("GET ?pid=1001: %d %s", status, p.raw)
	}
	status, p = l.httpCall("GET", "/fd1/products/get_products_list?pid=1e3", hdr, "")
	if status != 400 || p.Error == nil || p.Error.Code != "bad_filter" {
		t.Fatalf("GET ?pid=1e3: %d %s, want 400 bad_filter", status, p.raw)
	}
	c.ping()
}

// TestInputsOpaqueIK: an ik is any string of 1–128 printable ASCII
// characters (no space), compared exactly; a retry with it is answered
// from the first reply.
func TestInputsOpaqueIK(t *testing.T) {
	alongside(t)
	l := startLane(t)
	l.anyKeyWillDo()
	c := l.login(presellQuery, l.newKey("ik-tablet", "presell"), "")
	ik := fmt.Sprintf("till-3/order-%s", newUUID()[:8]) // unique on a shared -url server
	create := func(ik string) *packet {
		t.Helper()
		return doPkt(t, c, map[string]any{"a": sbA + "sale_create", "rq": "c", "ik": ik})
	}
	first := saleReply(t, create(ik))
	again := saleReply(t, create(ik))
	if first["physkey"] != again["physkey"] {
		t.Fatalf("retry with ik %q made a second sale: %v then %v", ik, first["physkey"], again["physkey"])
	}
	other := saleReply(t, create(strings.ToUpper(ik)))
	if other["physkey"] == first["physkey"] {
		t.Fatal("an ik that differs in case was taken for the same key")
	}
	for _, bad := range []string{"", "order 17", strings.Repeat("k", 129), "ordré", "tab\there"} {
		r := create(bad)
		r.wantError(t, "bad_argument")
		if !strings.HasPrefix(r.Error.Message, "ik ") {
			t.Errorf("ik %q: message %q does not name ik", bad, r.Error.Message)
		}
	}
	c.ping()
}

// chunkPacket is a chunked reply packet's fields.
type chunkPacket struct {
	RP   string `json:"rp"`
	Ch   int    `json:"ch"`
	Last bool   `json:"last"`
	Data struct {
		Rows []map[string]any `json:"rows"`
		More bool             `json:"more"`
	} `json:"data"`
	Error json.RawMessage `json:"error"`
}

// readChunks reads packets until the one with "last":true.
func readChunks(t *testing.T, c *conn) []chunkPacket {
	t.Helper()
	var out []chunkPacket
	for len(out) < 1000 {
		p := c.next()
		var cp chunkPacket
		if err := json.Unmarshal(p.raw, &cp); err != nil {
			t.Fatalf("chunk: %v: %s", err, p.raw)
		}
		out = append(out, cp)
		if cp.Last || cp.Ch == 0 {
			return out
		}
	}
	t.Fatal("no packet with last:true")
	return nil
}

// checkChunks checks one rp, ch 1…n, last on the final packet only, at
// most perPacket rows each, and returns the pids in order.
func checkChunks(t *testing.T, chunks []chunkPacket, rp string, perPacket int) []float64 {
	t.Helper()
	var pids []float64
	for i, c := range chunks {
		final := i == len(chunks)-1
		if c.RP != rp || c.Ch != i+1 || c.Last != final || c.Error != nil {
			t.Fatalf("packet %d: rp %q ch %d last %v error %s; want rp %q ch %d last %v", i+1, c.RP, c.Ch, c.Last, c.Error, rp, i+1, final)
		}
		if len(c.Data.Rows) > perPacket || (!final && len(c.Data.Rows) != perPacket) {
			t.Fatalf("packet %d has %d rows, want %d a packet", i+1, len(c.Data.Rows), perPacket)
		}
		if c.Data.More && !final {
			t.Fatalf("packet %d says more before the last packet", i+1)
		}
		for _, r := range c.Data.Rows {
			pids = append(pids, r["pid"].(float64))
		}
	}
	for i := 1; i < len(pids); i++ {
		if pids[i] <= pids[i-1] {
			t.Fatalf("pids out of order or repeated: %v", pids)
		}
	}
	return pids
}

// TestInputsChunkedReply: with mo:"chunk", a list longer than --max-rows
// comes in packets of --max-rows rows, one rp, ch 1…n and last:true on the
// final one, every row once and in order; without mo nothing changes.
func TestInputsChunkedReply(t *testing.T) {
	alongside(t)
	l := startLane(t, "--max-rows", "7")
	c := l.login("", l.key, "")
	products := int(sqliteRows(t, l.db, "SELECT COUNT(*) AS n FROM products")[0]["n"].(float64))
	if products <= 7 {
		t.Fatalf("the demo lane has %d products; the test needs more than 7", products)
	}

	c.send(map[string]any{"a": "fd1.products.get_products_list", "rq": "big", "mo": "chunk"})
	chunks := readChunks(t, c)
	if want := (products + 6) / 7; len(chunks) != want {
		t.Fatalf("%d products came in %d packets, want %d", products, len(chunks), want)
	}
	pids := checkChunks(t, chunks, "big", 7)
	if len(pids) != products || chunks[len(chunks)-1].Data.More {
		t.Fatalf("chunks hold %d rows (more %v), want all %d", len(pids), chunks[len(chunks)-1].Data.More, products)
	}

	// mo as an array, a filter and qo still apply.
	c.send(map[string]any{"a": "products.get_products_list", "rq": "arr", "mo": []string{"chunk"},
		"q": map[string]any{"pid(>=)": 1010}, "qo": map[string]any{"pid": true}})
	checkChunks(t, readChunks(t, c), "arr", 7)

	// A list that fits is one packet with ch 1 and last.
	c.send(map[string]any{"a": "fd1.products.get_products_list", "rq": "one", "mo": "chunk", "q": map[string]any{"pid": 1001}})
	if one := readChunks(t, c); len(one) != 1 || len(one[0].Data.Rows) != 1 {
		t.Fatalf("one product came as %+v", one)
	}
	// Any other answer to a chunk request says it is the last too.
	for _, pkt := range []map[string]any{
		{"a": "fd1.debug.ping", "rq": "ping", "mo": "chunk"},
		{"a": "fd1.products.get_products_list", "rq": "bad", "mo": "chunk", "q": map[string]any{"nope": 1}},
	} {
		r := c.call(pkt)
		var cp chunkPacket
		_ = json.Unmarshal(r.raw, &cp)
		if cp.Ch != 1 || !cp.Last {
			t.Fatalf("%v answered %s, want ch 1 and last", pkt["a"], r.raw)
		}
	}

	// Without mo: one packet cut at --max-rows, as before.
	r := c.call(map[string]any{"a": "fd1.products.get_products_list", "rq": "plain"})
	var plain chunkPacket
	_ = json.Unmarshal(r.raw, &plain)
	if plain.Ch != 0 || plain.Last || len(plain.Data.Rows) != 7 || !plain.Data.More {
		t.Fatalf("plain list: %s", r.raw)
	}

	// HTTP mode cannot stream: it answers the whole list as one reply.
	status, p := l.httpCall("GET", "/fd1/products/get_products_list?_mo=chunk", map[string]string{"x-api-key": l.key}, "")
	if status != 200 || len(p.rows(t)) != products {
		t.Fatalf("HTTP with _mo=chunk: %d, %d rows, want all %d in one reply", status, len(p.rows(t)), products)
	}

	// greenlane client prints every chunk and waits for the last.
	out, err := cli(t, "client", "--url", "ws://"+l.addr+"/fd1/open_websocket", "--key", l.key, "--compact",
		`products.get_products_list {"rq":"cl","mo":"chunk","qo":{"pid":true}}`)
	if err != nil {
		t.Fatal(err)
	}
	var printed []chunkPacket
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var cp chunkPacket
		if json.Unmarshal([]byte(line), &cp) == nil && cp.RP == "cl" {
			printed = append(printed, cp)
		}
	}
	if len(printed) != len(chunks) {
		t.Fatalf("greenlane client printed %d of %d chunks:\n%s", len(printed), len(chunks), out)
	}
	checkChunks(t, printed, "cl", 7)
	c.ping()
}

// TestInputsChunkedReplyCap: a chunked list holds at most ten packets of
// --max-rows rows; past that the last packet says more:true.
func TestInputsChunkedReplyCap(t *testing.T) {
	alongside(t)
	l := startLane(t, "--max-rows", "3")
	c := l.login("", l.key, "")
	products := int(sqliteRows(t, l.db, "SELECT COUNT(*) AS n FROM products")[0]["n"].(float64))
	if products <= 30 {
		t.Fatalf("the demo lane has %d products; the test needs more than 30", products)
	}
	c.send(map[string]any{"a": "fd1.products.get_products_list", "rq": "cap", "mo": "chunk"})
	chunks := readChunks(t, c)
	pids := checkChunks(t, chunks, "cap", 3)
	if len(chunks) != 10 || len(pids) != 30 || !chunks[9].Data.More {
		t.Fatalf("%d packets, %d rows, more %v; want 10 packets of 3 and more", len(chunks), len(pids), chunks[len(chunks)-1].Data.More)
	}
	// v.limit still asks for fewer.
	c.send(map[string]any{"a": "fd1.products.get_products_list", "rq": "lim", "mo": "chunk", "v": map[string]any{"limit": 5}})
	if pids := checkChunks(t, readChunks(t, c), "lim", 3); len(pids) != 5 {
		t.Fatalf("limit 5 gave %d rows", len(pids))
	}
	c.ping()
}
