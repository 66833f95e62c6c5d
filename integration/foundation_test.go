package integration

import (
	"encoding/json"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

func TestHealthz(t *testing.T) {
	l := startLane(t)
	status, p := l.httpCall("GET", "/healthz", nil, "")
	if status != 200 || !strings.Contains(string(p.raw), "ok") {
		t.Fatalf("healthz = %d %s", status, p.raw)
	}
	skipIfRemote(t, "checks the admin key file serve wrote next to the lane DB")
	if os.Getenv("GREENLANE_IT_STORE") != "" {
		t.Skip("serve writes no admin key file on a store database (keys are made with greenlane apikey): nothing more to check")
	}
	st, err := os.Stat(l.db + ".apikey")
	if err != nil {
		t.Fatalf("admin key file: %v", err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("admin key file mode = %v; want 0600", st.Mode().Perm())
	}
}

func TestLogin(t *testing.T) {
	alongside(t)
	l := startLane(t)
	presell := l.newKey("tablet-1", "presell")

	t.Run("login_required before login, then nothing else leaks", func(t *testing.T) {
		c := l.dial("")
		for _, a := range []string{"fd1.products.get_products_list", "customers.get_customers", "fd1.debug.ping", "fd1.nosuch.thing"} {
			// An unknown name too: before login no name is told apart (DESIGN §4).
			c.call(map[string]any{"a": a, "rq": "x"}).wantError(t, "login_required")
		}
	})

	t.Run("created key logs in", func(t *testing.T) {
		c := l.dial("")
		r := c.call(map[string]any{"a": "fd1.session.login", "rq": "L1", "v": map[string]any{"apikey": presell, "tz": -780, "localtime": "2026-11-27 7:5:3.12"}})
		if r.Error != nil {
			t.Fatalf("login: %s", r.raw)
		}
		d := r.data(t)
		if d["valid"] != 1.0 || d["purpose"] != "" || !equalJSON(d["scopes"], []any{"presell"}) {
			t.Fatalf("login data = %v", d)
		}
		if rows := c.call(map[string]any{"a": "fd1.products.get_products_list", "rq": 1}).rows(t); len(rows) < 35 {
			t.Fatalf("products after login: %d rows", len(rows))
		}
	})

	t.Run("wrong and revoked keys", func(t *testing.T) {
		gone := l.newKey("tablet-gone", "presell")
		if _, err := cli(t, "apikey", "revoke", "tablet-gone", "--db", l.db); err != nil {
			t.Fatal(err)
		}
		c := l.dial("")
		for _, key := range []string{"nonsense", presell + "x", gone, "", strings.Repeat("k", 5000)} {
			r := c.call(map[string]any{"a": "fd1.session.login", "rq": "L", "v": map[string]any{"apikey": key}})
			if r.Error == nil {
				t.Fatalf("key %.20q logged in", key)
			}
			if code := r.Error.Code; code != "login_failed" && code != "bad_argument" {
				t.Fatalf("key %.20q: code %s", key, code)
			}
		}
		c.call(map[string]any{"a": "fd1.products.get_products_list", "rq": "p"}).wantError(t, "login_required")
		// The socket is still usable: a good key now works.
		if r := c.call(map[string]any{"a": "fd1.session.login", "rq": "L", "v": map[string]any{"apikey": presell}}); r.Error != nil {
			t.Fatalf("good key after bad ones: %s", r.raw)
		}
	})

	t.Run("token login is refused clearly", func(t *testing.T) {
		c := l.dial("")
		c.call(map[string]any{"a": "fd1.session.login", "rq": 1, "v": map[string]any{"token": "abc"}}).wantError(t, "unsupported")
	})

	t.Run("presell purpose on the URL", func(t *testing.T) {
		c := l.login("?purpose=presell", presell, "")
		r := c.call(map[string]any{"a": "fd1.session.login", "rq": "again", "v": map[string]any{"apikey": presell}})
		if r.data(t)["purpose"] != "presell" {
			t.Fatalf("presell socket purpose = %s", r.Data)
		}
		counter := l.newKey("counter-1", "counter")
		c2 := l.dial("?purpose=presell")
		c2.call(map[string]any{"a": "fd1.session.login", "rq": 1, "v": map[string]any{"apikey": counter}}).wantError(t, "forbidden")
		c3 := l.dial("")
		c3.call(map[string]any{"a": "fd1.session.login", "rq": 1, "v": map[string]any{"apikey": presell, "purpose": "presell"}}).wantError(t, "bad_argument")
	})

	t.Run("several logins widen the scope", func(t *testing.T) {
		display := l.newKey("display-wide", "display")
		counter := l.newKey("counter-wide", "counter")
		c := l.login("", display, "")
		c2 := c.call(map[string]any{"a": "fd1.session.login", "rq": 2, "v": map[string]any{"apikey": counter}})
		if !equalJSON(c2.data(t)["scopes"], []any{"display", "counter"}) {
			t.Fatalf("scopes after two logins: %s", c2.Data)
		}
	})

	t.Run("customer display socket", func(t *testing.T) {
		display := l.newKey("display-1", "display")
		c := l.login("", display, "customerdisplay")
		info := c.call(map[string]any{"a": "fd1.customerdisplay.get_info", "rq": "i"})
		d := info.data(t)
		loc, _ := d["location"].(map[string]any)
		if d["storename"] == "" || d["currency"] != "NZD" || d["lane"] != 1.0 || loc["address1"] == "" || loc["city"] != "Wellington" {
			t.Fatalf("get_info = %s", info.Data)
		}
		c.call(map[string]any{"a": "fd1.products.get_products_list", "rq": "p"}).wantError(t, "forbidden")
		c.call(map[string]any{"a": "fd1.customers.get_customers", "rq": "p"}).wantError(t, "forbidden")
		// A presell-only key cannot become a display.
		c2 := l.dial("")
		c2.call(map[string]any{"a": "fd1.session.login", "rq": 1, "v": map[string]any{"apikey": presell, "purpose": "customerdisplay"}}).wantError(t, "forbidden")
	})

	t.Run("unknown purpose on the URL is refused at the door", func(t *testing.T) {
		for _, q := range []string{"purpose=customerdisplay", "purpose=presell&purpose=debugscope"} {
			_, resp, err := websocket.DefaultDialer.Dial("ws://"+l.addr+"/fd1/open_websocket?"+q, nil)
			if err == nil || resp == nil || resp.StatusCode != 400 {
				t.Fatalf("dial with %s: %v %v", q, err, resp)
			}
		}
	})
}

func TestProductsAndCustomers(t *testing.T) {
	l := startLane(t)
	l.anyKeyWillDo() // reads and logins only: with -url the admin key stands in
	c := l.login("", l.newKey("counter-1", "counter"), "")
	list := func(a string, q map[string]any, extra map[string]any) []map[string]any {
		t.Helper()
		pkt := map[string]any{"a": a, "rq": "q"}
		if q != nil {
			pkt["q"] = q
		}
		for k, v := range extra {
			pkt[k] = v
		}
		return c.call(pkt).rows(t)
	}
	const products = "fd1.products.get_products_list"

	all := list(products, nil, nil)
	if len(all) < demoProducts {
		t.Fatalf("%d products, want the demo's ~40", len(all))
	}
	weighed, multiBarcode := 0, 0
	for _, p := range all {
		if p["measurement"] == 1.0 {
			weighed++
		}
		if bc, _ := p["barcodes"].([]any); len(bc) > 1 {
			multiBarcode++
		}
	}
	if weighed < 3 || multiBarcode < 2 {
		t.Errorf("demo has %d weighed products and %d with several barcodes", weighed, multiBarcode)
	}

	tests := []struct {
		name  string
		q     map[string]any
		check func(p map[string]any) bool
	}{
		{"plu equality", map[string]any{"plu": "FW"}, func(p map[string]any) bool { return p["plu"] == "FW" }},
		{"price >=", map[string]any{"price(>=)": 20}, func(p map[string]any) bool { return p["price"].(float64) >= 20 }},
		{"price < and depid", map[string]any{"price(<)": 5, "depid": 3}, func(p map[string]any) bool { return p["price"].(float64) < 5 && p["depid"] == 3.0 }},
		{"pid range", map[string]any{"pid(>)": 1005, "pid(<=)": 1010}, func(p map[string]any) bool { return p["pid"].(float64) > 1005 && p["pid"].(float64) <= 1010 }},
		{"inactive", map[string]any{"active": false}, func(p map[string]any) bool { return p["active"] == false }},
		{"not equal", map[string]any{"measurement(!=)": 0}, func(p map[string]any) bool { return p["measurement"] == 1.0 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rows := list(products, tt.q, nil)
			if len(rows) == 0 {
				t.Fatalf("no rows for %v", tt.q)
			}
			for _, p := range rows {
				if !tt.check(p) {
					t.Fatalf("row %v does not satisfy %v", p, tt.q)
				}
			}
		})
	}

	t.Run("barcode finds the product of any of its barcodes", func(t *testing.T) {
		var p map[string]any
		for _, r := range all {
			if bc, _ := r["barcodes"].([]any); len(bc) > 1 {
				p = r
				break
			}
		}
		for _, bc := range p["barcodes"].([]any) {
			rows := list(products, map[string]any{"barcode": bc}, nil)
			if len(rows) != 1 || rows[0]["pid"] != p["pid"] {
				t.Fatalf("barcode %v found %v, want pid %v", bc, rows, p["pid"])
			}
		}
	})

	t.Run("nothing matches is an empty list, not an error", func(t *testing.T) {
		if rows := list(products, map[string]any{"plu": "NO-SUCH"}, nil); len(rows) != 0 {
			t.Fatalf("rows = %v", rows)
		}
	})

	t.Run("qo copies and renames, in template order", func(t *testing.T) {
		c.sendRaw([]byte(`{"a":"fd1.products.get_products_list","rq":"qo","q":{"plu":"FW"},` +
			`"qo":{"id":"pid","description":true,"money":{"price":true}}}`))
		r := c.next()
		want := `{"rows":[{"id":1001,"description":"Flat White","money":{"price":5.5}}]}`
		if string(r.Data) != want {
			t.Fatalf("shaped = %s\nwant    %s", r.Data, want)
		}
	})

	t.Run("row cap", func(t *testing.T) {
		r := c.call(map[string]any{"a": products, "rq": "cap", "v": map[string]any{"limit": 3}})
		var d struct {
			Rows []any `json:"rows"`
			More bool  `json:"more"`
		}
		if err := json.Unmarshal(r.Data, &d); err != nil || len(d.Rows) != 3 || !d.More {
			t.Fatalf("limit 3: %s", r.Data)
		}
	})

	t.Run("customers", func(t *testing.T) {
		all := list("fd1.customers.get_customers", nil, nil)
		if len(all) < 8 {
			t.Fatalf("%d customers", len(all))
		}
		disc := list("fd1.customers.get_customers", map[string]any{"discount": 10}, nil)
		if len(disc) != 1 || disc[0]["discount"] != 10.0 {
			t.Fatalf("10%% customers: %v", disc)
		}
		var unicodeName string
		for _, cu := range all {
			if n := cu["name"].(string); strings.ContainsFunc(n, func(r rune) bool { return r > 127 }) {
				unicodeName = n
			}
		}
		if unicodeName == "" {
			t.Fatal("demo has no customer with a non-ASCII name")
		}
		got := list("customers.get_customers", map[string]any{"name": unicodeName}, nil)
		if len(got) != 1 || got[0]["name"] != unicodeName {
			t.Fatalf("by name %q: %v", unicodeName, got)
		}
		email := all[0]["email"]
		if got := list("fd1.customers.get_customers", map[string]any{"email": email}, nil); len(got) != 1 {
			t.Fatalf("by email: %v", got)
		}
	})
}

func TestReplyEchoesRQAndRT(t *testing.T) {
	l := startLane(t)
	c := l.login("", l.key, "")
	tests := []struct{ rq, rt string }{
		{`"s1"`, ``},
		{`12345`, ``},
		{`7.5`, `"tab-2"`},
		{`"with \"quotes\" and ünïcode"`, `{"tab":3,"thread":[1,2]}`},
		{`0`, `null`},
	}
	for _, tt := range tests {
		frame := `{"a":"fd1.debug.ping","rq":` + tt.rq
		if tt.rt != "" {
			frame += `,"rt":` + tt.rt
		}
		c.sendRaw([]byte(frame + `}`))
		r := c.next()
		if string(r.RP) != tt.rq {
			t.Errorf("rq %s came back as rp %s", tt.rq, r.RP)
		}
		// Reflected unchanged (SPEC §2), null included.
		if wantRT := tt.rt; string(r.RT) != wantRT {
			t.Errorf("rt %s came back as %s", tt.rt, r.RT)
		}
		if r.R != "fd1.debug.ping" {
			t.Errorf("r = %q", r.R)
		}
	}
	// No rq: the reply has no rp, and r still names the endpoint.
	c.sendRaw([]byte(`{"a":"debug.ping"}`))
	if r := c.next(); len(r.RP) != 0 || r.R != "debug.ping" {
		t.Errorf("no-rq reply: %s", r.raw)
	}
	// rd:{"time":true} adds timings.
	r := c.call(map[string]any{"a": "fd1.debug.ping", "rq": "t", "rd": map[string]any{"time": true}})
	var rd struct {
		Time map[string]float64 `json:"time"`
	}
	if err := json.Unmarshal(r.DebugRD, &rd); err != nil || rd.Time == nil {
		t.Fatalf("debug_rd = %s", r.DebugRD)
	}
	if _, ok := rd.Time["total"]; !ok {
		t.Fatalf("debug_rd.time lacks total: %s", r.DebugRD)
	}
	// fd1.session.ignore answers nothing: the next reply is the ping's.
	c.send(map[string]any{"a": "fd1.session.ignore", "rq": "quiet"})
	c.ping()
	// cancel_request of nothing running says so.
	r = c.call(map[string]any{"a": "fd1.session.cancel_request", "rq": "cx", "k": "nothing"})
	if r.data(t)["cancelled"] != false {
		t.Fatalf("cancel of unknown rq: %s", r.raw)
	}
}

func TestBadInputGetsClearErrors(t *testing.T) {
	l := startLane(t)
	c := l.login("", l.key, "")
	long := strings.Repeat("r", 200)
	tests := []struct {
		name    string
		frame   string
		code    string
		wantRP  string
		mention string
	}{
		{"malformed JSON", `{"a":"fd1.debug.ping",`, "bad_packet", "", "malformed JSON"},
		{"trailing garbage", `{"a":"fd1.debug.ping"} x`, "bad_packet", "", "malformed"},
		{"array", `[{"a":"fd1.debug.ping"}]`, "bad_packet", "", "an array"},
		{"scalar", `42`, "bad_packet", "", "a number"},
		{"string", `"fd1.debug.ping"`, "bad_packet", "", "a string"},
		{"missing a", `{"rq":"m1"}`, "bad_packet", `"m1"`, `"a"`},
		{"non-string a", `{"a":17,"rq":"m2"}`, "bad_packet", `"m2"`, `"a"`},
		{"unknown endpoint", `{"a":"fd1.products.explode","rq":"m3"}`, "unknown_endpoint", `"m3"`, "fd1.products.explode"},
		{"look-alike endpoint", `{"a":"fd1.prоducts.get_products_list","rq":"m4"}`, "unknown_endpoint", `"m4"`, ""},
		{"rq of 200 characters", `{"a":"fd1.debug.ping","rq":"` + long + `"}`, "bad_packet", "", "200"},
		{"rq as object", `{"a":"fd1.debug.ping","rq":{"x":1}}`, "bad_packet", "", "rq"},
		{"v as array", `{"a":"fd1.products.get_products_list","rq":"m5","v":[1]}`, "bad_packet", `"m5"`, `"v"`},
		{"wrong type in v", `{"a":"fd1.products.get_products_list","rq":"m6","v":{"limit":"ten"}}`, "bad_argument", `"m6"`, "v.limit"},
		{"negative in v", `{"a":"fd1.products.get_products_list","rq":"m7","v":{"limit":-1}}`, "bad_argument", `"m7"`, "v.limit"},
		{"wrong type in q", `{"a":"fd1.products.get_products_list","rq":"m8","q":{"price":"cheap"}}`, "bad_filter", `"m8"`, "price"},
		{"q not an object", `{"a":"fd1.products.get_products_list","rq":"m9","q":"price=5"}`, "bad_packet", `"m9"`, `"q"`},
		{"unknown filter field", `{"a":"fd1.products.get_products_list","rq":"m10","q":{"colour":"red"}}`, "bad_filter", `"m10"`, "colour"},
		{"unknown operator", `{"a":"fd1.products.get_products_list","rq":"m11","q":{"price(~)":5}}`, "bad_filter", `"m11"`, "price(~)"},
		{"SQL in a filter key", `{"a":"fd1.products.get_products_list","rq":"m12","q":{"pid = 1 OR 1=1 --":1}}`, "bad_filter", `"m12"`, ""},
		{"SQL in a filter value", `{"a":"fd1.customers.get_customers","rq":"m13","q":{"name":"x' OR '1'='1"}}`, "", `"m13"`, ""},
		{"qo unknown field", `{"a":"fd1.products.get_products_list","rq":"m14","qo":{"x":"nosuch"}}`, "bad_argument", `"m14"`, "nosuch"},
		{"other pt", `{"a":"fd1.debug.ping","rq":"m15","pt":"socket2"}`, "unsupported", `"m15"`, "pt"},
		{"empty frame", ` `, "bad_packet", "", "empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c.sendRaw([]byte(tt.frame))
			r := c.next()
			if tt.code == "" {
				if r.Error != nil || len(r.rows(t)) != 0 {
					t.Fatalf("want an empty result, got %s", r.raw)
				}
			} else {
				r.wantError(t, tt.code)
				if !strings.Contains(r.Error.Message, tt.mention) {
					t.Errorf("message %q does not mention %q", r.Error.Message, tt.mention)
				}
			}
			if string(r.RP) != tt.wantRP {
				t.Errorf("rp = %s, want %s", r.RP, tt.wantRP)
			}
			c.ping()
		})
	}

	t.Run("invalid UTF-8", func(t *testing.T) {
		c.sendRaw([]byte("{\"a\":\"fd1.debug.ping\",\"rq\":\"\xff\xfe\"}"))
		c.next().wantError(t, "bad_packet")
		c.ping()
	})

	t.Run("binary frame", func(t *testing.T) {
		if err := c.ws.WriteMessage(websocket.BinaryMessage, []byte(`{"a":"fd1.debug.ping"}`)); err != nil {
			t.Fatal(err)
		}
		c.next().wantError(t, "bad_packet")
		c.ping()
	})

	t.Run("oversized frame closes only that socket with 1009", func(t *testing.T) {
		victim := l.login("", l.key, "")
		bystander := l.login("", l.key, "")
		victim.sendRaw([]byte(`{"a":"fd1.debug.ping","v":{"pad":"` + strings.Repeat("x", 70<<10) + `"}}`))
		_ = victim.ws.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, _, err := victim.ws.ReadMessage()
		if !websocket.IsCloseError(err, websocket.CloseMessageTooBig) {
			t.Fatalf("oversized frame: read err = %v, want close 1009", err)
		}
		bystander.ping()
		c.ping()
	})
}

func TestManySocketsAtOnce(t *testing.T) {
	// 50 sockets from one address on one key, all dialled before any logs
	// in: above the default flood caps, which are not what this checks.
	l := startLane(t, "--max-unauth-per-address", "64", "--max-sockets-per-key", "64")
	l.anyKeyWillDo() // reads and logins only: with -url the admin key stands in
	key := l.newKey("tablets", "presell")
	var wg sync.WaitGroup
	errs := make(chan string, 50)
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			ws, _, err := websocket.DefaultDialer.Dial("ws://"+l.addr+"/fd1/open_websocket?purpose=presell", nil)
			if err != nil {
				errs <- err.Error()
				return
			}
			defer ws.Close()
			_ = ws.SetReadDeadline(time.Now().Add(20 * time.Second))
			send := func(v any) map[string]any {
				b, _ := json.Marshal(v)
				if err := ws.WriteMessage(websocket.TextMessage, b); err != nil {
					return nil
				}
				_, msg, err := ws.ReadMessage()
				if err != nil {
					return nil
				}
				var m map[string]any
				_ = json.Unmarshal(msg, &m)
				return m
			}
			if r := send(map[string]any{"a": "fd1.session.login", "rq": i, "v": map[string]any{"apikey": key}}); r == nil || r["error"] != nil {
				errs <- "login failed"
				return
			}
			for j := 0; j < 10; j++ {
				r := send(map[string]any{"a": "fd1.products.get_products_list", "rq": j, "q": map[string]any{"pid": 1001 + j}})
				if r == nil || r["error"] != nil || r["rp"] != float64(j) {
					errs <- "bad reply"
					return
				}
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

func TestHTTPMode(t *testing.T) {
	l := startLane(t)
	l.anyKeyWillDo() // reads and logins only: with -url the admin key stands in
	key := l.newKey("http-counter", "counter")
	get := "/fd1/products/get_products_list?" + url.Values{"plu": {"FW"}, "_rq": {"h1"}}.Encode()

	for _, header := range []string{"x-api-key", "x-apikey"} {
		t.Run(header, func(t *testing.T) {
			status, p := l.httpCall("GET", get, map[string]string{header: key}, "")
			if status != 200 || len(p.rows(t)) != 1 || string(p.RP) != `"h1"` {
				t.Fatalf("GET with %s: %d %s", header, status, p.raw)
			}
		})
	}
	t.Run("operator filter in the query string", func(t *testing.T) {
		status, p := l.httpCall("GET", "/fd1/products/get_products_list?price(>=)=20&_qo=pid,price", map[string]string{"x-api-key": key}, "")
		rows := p.rows(t)
		if status != 200 || len(rows) == 0 {
			t.Fatalf("%d %s", status, p.raw)
		}
		for _, r := range rows {
			if len(r) != 2 || r["price"].(float64) < 20 {
				t.Fatalf("row %v", r)
			}
		}
	})
	t.Run("POST body", func(t *testing.T) {
		status, p := l.httpCall("POST", "/fd1/customers/get_customers", map[string]string{"x-apikey": key},
			`{"rq":7,"q":{"discount(>)":0},"qo":{"cid":true,"discount":true}}`)
		rows := p.rows(t)
		if status != 200 || len(rows) < 1 || string(p.RP) != "7" {
			t.Fatalf("%d %s", status, p.raw)
		}
	})
	t.Run("POST body cannot name another endpoint", func(t *testing.T) {
		status, p := l.httpCall("POST", "/fd1/debug/ping", map[string]string{"x-api-key": key}, `{"a":"fd1.session.login"}`)
		if status != 400 || p.R != "fd1.debug.ping" {
			t.Fatalf("%d %s", status, p.raw)
		}
		p.wantError(t, "bad_packet")
	})
	errorsCases := []struct {
		name, method, path, key, body, code string
		status                              int
	}{
		{"no key", "GET", "/fd1/products/get_products_list", "", "", "login_required", 401},
		{"wrong key", "GET", "/fd1/products/get_products_list", "glk.nope.nope", "", "login_failed", 401},
		{"unknown endpoint", "GET", "/fd1/products/explode", key, "", "unknown_endpoint", 404},
		{"bad filter", "GET", "/fd1/products/get_products_list?price=cheap", key, "", "bad_filter", 400},
		{"malformed body", "POST", "/fd1/products/get_products_list", key, `{"q":`, "bad_packet", 400},
		{"forbidden scope", "GET", "/fd1/customerdisplay/get_info", l.newKey("presell-only", "presell"), "", "", 200},
		{"bad method", "DELETE", "/fd1/products/get_products_list", key, "", "bad_packet", 405},
	}
	for _, tt := range errorsCases {
		t.Run(tt.name, func(t *testing.T) {
			h := map[string]string{}
			if tt.key != "" {
				h["x-api-key"] = tt.key
			}
			status, p := l.httpCall(tt.method, tt.path, h, tt.body)
			if status != tt.status {
				t.Fatalf("status %d, want %d: %s", status, tt.status, p.raw)
			}
			if tt.code != "" {
				p.wantError(t, tt.code)
			}
		})
	}
}

func TestCLI(t *testing.T) {
	l := startLane(t)
	out, err := cli(t, "fixture", "list")
	if err != nil || !strings.Contains(out, "demo") || !strings.Contains(out, "empty") {
		t.Fatalf("fixture list: %q %v", out, err)
	}
	// A lane DB file is locked while served, and a store database by its
	// store lock: both refusals say so.
	servedRefusal := "a lane is serving it"
	if _, err := cli(t, "fixture", "load", "demo", "--db", l.db); err == nil || !strings.Contains(err.Error(), servedRefusal) {
		t.Fatalf("loading into the DB a lane serves must be refused (%q): %v", servedRefusal, err)
	}
	fresh := t.TempDir() + "/new.db"
	if out, err := cli(t, "fixture", "load", "empty", "--db", fresh); err != nil || !strings.Contains(out, "loaded") {
		t.Fatalf("load empty into a new DB: %q %v", out, err)
	}
	if _, err := cli(t, "fixture", "load", "demo", "--db", fresh); err != nil {
		t.Fatalf("load demo into the empty store: %v", err)
	}
	if _, err := cli(t, "fixture", "load", "demo", "--db", fresh); err == nil || !strings.Contains(err.Error(), "--replace") {
		t.Fatalf("loading into a DB with data must be refused, pointing at --replace: %v", err)
	}
	if _, err := cli(t, "apikey", "create", "--db", l.db, "--name", "x", "--scope", "presell,wizard"); err == nil || !strings.Contains(err.Error(), "wizard") {
		t.Fatalf("unknown scope: %v", err)
	}
	l.newKey("listed-key", "counter,display")
	out, err = cli(t, "apikey", "list", "--db", l.db)
	if err != nil || !strings.Contains(out, "listed-key") || !strings.Contains(out, "counter,display") || strings.Contains(out, "glk.") {
		t.Fatalf("apikey list: %q %v", out, err)
	}
	for _, cmd := range [][]string{{"serve", "--help"}, {"fixture", "--help"}, {"apikey", "--help"}, {"client", "--help"}, {"--help"}} {
		if _, err := cli(t, cmd...); err != nil {
			t.Errorf("greenlane %v: %v", cmd, err)
		}
	}
	// The client logs in and prints one JSON reply per line.
	out, err = cli(t, "client", "--url", "ws://"+l.addr+"/fd1/open_websocket", "--key", l.key, "products.get_products_list")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if err != nil || len(lines) != 2 || !strings.Contains(lines[1], `"rows"`) {
		t.Fatalf("client: %q %v", out, err)
	}
	// Environment equivalents of flags.
	cmd := []string{"apikey", "list"}
	t.Setenv("GREENLANE_DB", l.db)
	if out, err := cli(t, cmd...); err != nil || !strings.Contains(out, "listed-key") {
		t.Fatalf("GREENLANE_DB: %q %v", out, err)
	}
}

func equalJSON(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

func TestOriginAllowlist(t *testing.T) {
	l := startLane(t, "--allow-origin", "https://tablets.example")
	tests := []struct {
		origin string
		ok     bool
	}{
		{"", true}, // tablet apps and scripts send no Origin
		{"http://" + "127.0.0.1:" + strings.Split(l.addr, ":")[1], true},
		{"https://tablets.example", true},
		{"https://evil.example", false},
	}
	for _, tt := range tests {
		h := map[string][]string{}
		if tt.origin != "" {
			h["Origin"] = []string{tt.origin}
		}
		ws, resp, err := websocket.DefaultDialer.Dial("ws://"+l.addr+"/fd1/open_websocket", h)
		if tt.ok != (err == nil) {
			t.Errorf("Origin %q: err = %v, want ok=%v", tt.origin, err, tt.ok)
		}
		if !tt.ok && resp != nil && resp.StatusCode != 403 {
			t.Errorf("Origin %q: status %d, want 403", tt.origin, resp.StatusCode)
		}
		if ws != nil {
			ws.Close()
		}
	}
}
