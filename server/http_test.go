package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/greenlane-pos/greenlane/internal/pgtest"
	"github.com/greenlane-pos/greenlane/internal/syncbuf"
	"github.com/greenlane-pos/greenlane/lanedb"
	"github.com/greenlane-pos/greenlane/protocol"
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
		// A number in v.name is a string holding it: integer and money
		// fields read it as the number, string fields as the text.
		{query: "_k=active&_v.pid=1001&_v.plu=0012", wantK: "active", wantV: `{"pid":"1001","plu":"0012"}`},
		{query: "v.barcode=9415321000140&v.price=-1.5&v.force=true", wantV: `{"barcode":"9415321000140","force":true,"price":"-1.5"}`},
		{query: `v.plu="FW"&v.o={"a":1}`, wantV: `{"o":{"a":1},"plu":"FW"}`},
		{query: `_v={"limit":2}`, wantV: `{"limit":2}`},
		{query: `v={"limit":2}&v.qty=1`, wantV: `{"limit":2,"qty":"1"}`},
		{query: "_v=notjson", wantErr: true},
		{query: "v.plu=null", wantErr: true},          // null cannot be said in a query
		{query: `v={"qty":2}&v.qty=1`, wantErr: true}, // qty twice: which one?
		{query: `_v={"qty":2}&_v.qty=1`, wantErr: true},
		{query: "_bogus=1", wantErr: true},
		{query: "_ik=abc-1", wantQ: map[string]string{}},
		{query: "_ik=", wantErr: true}, // exactly-once must not switch itself off
		{query: "_ik=a%20b", wantErr: true},
		{query: "plu=FW&plu=LT", wantErr: true}, // which one?
		{query: "_qo=pid&_qo=plu", wantErr: true},
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
	lane1 := &originPolicy{port: "3490", hosts: map[string]bool{"lane1": true, "192.168.1.20": true, "::1": true}}
	tests := []struct {
		origin  string
		own     *originPolicy
		allowed []string
		want    bool
	}{
		{"http://lane1:3490", lane1, nil, true},
		{"http://LANE1:3490", lane1, nil, true},
		{"https://lane1:3490", lane1, nil, true},
		{"http://192.168.1.20:3490", lane1, nil, true},
		{"http://[::1]:3490", lane1, nil, true},
		{"http://lane1:3491", lane1, nil, false},
		{"http://lane1", lane1, nil, false}, // port 80
		// DNS rebinding: the hostile name resolves to the lane, and the
		// browser's Host header then names it too; it is still refused.
		{"http://evil.example", lane1, nil, false},
		{"http://evil.example:3490", lane1, nil, false},
		{"ftp://lane1:3490", lane1, nil, false},
		{"http://lane1:3490/path", lane1, nil, false},
		{"http://lane1:3490", nil, nil, false}, // own origins not known yet
		{"https://tablets.example", lane1, []string{"https://tablets.example"}, true},
		{"https://tablets.example", lane1, []string{"https://tablets.example/"}, true},
		{"http://tablets.example", lane1, []string{"https://tablets.example"}, false},
		{"https://anything", lane1, []string{"*"}, true},
		{"null", lane1, nil, false},
		{"lane1:3490", lane1, nil, false},
		// A browser leaves the default port out; the operator may not.
		{"https://lane4", lane1, []string{"https://lane4:443"}, true},
		{"http://lane3", lane1, []string{"HTTP://Lane3:80"}, true},
		{"http://lane3:8080", lane1, []string{"http://lane3"}, false},
		{"https://lane4:444", lane1, []string{"https://lane4:443"}, false},
	}
	for _, tt := range tests {
		if got := originAllowed(tt.origin, tt.own, tt.allowed); got != tt.want {
			t.Errorf("originAllowed(%q, %v, %v) = %v, want %v", tt.origin, tt.own, tt.allowed, got, tt.want)
		}
	}
}

func TestOwnOrigins(t *testing.T) {
	name, err := os.Hostname()
	if err != nil {
		t.Skipf("no host name: %v", err)
	}
	tests := []struct {
		configured string
		bound      *net.TCPAddr
		want       []string // hosts that must be in
		wantNot    []string
	}{
		{"127.0.0.1:0", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 4000}, []string{"127.0.0.1", "localhost"}, []string{strings.ToLower(name), "evil.example"}},
		{"lane1.store:3490", &net.TCPAddr{IP: net.IPv4(192, 168, 1, 20), Port: 3490}, []string{"lane1.store", "192.168.1.20"}, []string{"localhost", "127.0.0.1"}},
		{":3490", &net.TCPAddr{IP: net.IPv4zero, Port: 3490}, []string{"127.0.0.1", "localhost", strings.ToLower(name)}, []string{"0.0.0.0", "evil.example"}},
		{"[::]:3490", &net.TCPAddr{IP: net.IPv6unspecified, Port: 3490}, []string{"127.0.0.1", "localhost", strings.ToLower(name)}, []string{"::", "evil.example"}},
	}
	log := slog.New(slog.DiscardHandler)
	for _, tt := range tests {
		p := ownOrigins(tt.configured, tt.bound, log)
		if p.port != strconv.Itoa(tt.bound.Port) {
			t.Errorf("%s: port %q, want %d", tt.configured, p.port, tt.bound.Port)
		}
		for _, h := range tt.want {
			if !p.hosts[h] {
				t.Errorf("%s bound to %s: %q is not one of the lane's own hosts %v", tt.configured, tt.bound, h, p.hosts)
			}
		}
		for _, h := range tt.wantNot {
			if p.hosts[h] {
				t.Errorf("%s bound to %s: %q is taken for one of the lane's own hosts", tt.configured, tt.bound, h)
			}
		}
	}
}

func TestParseQuery(t *testing.T) {
	tests := []struct {
		raw     string
		want    url.Values
		wantErr string // part of the message: the bad pair
	}{
		{raw: "", want: url.Values{}},
		{raw: "plu=FW&_rq=1", want: url.Values{"plu": {"FW"}, "_rq": {"1"}}},
		{raw: "price(>=)=5", want: url.Values{"price(>": {")=5"}}}, // mended by rejoinOperator
		{raw: "name=caf%C3%A9&x=a+b&&y", want: url.Values{"name": {"café"}, "x": {"a b"}, "y": {""}}},
		{raw: "name=a%3Bb", want: url.Values{"name": {"a;b"}}},
		{raw: "plu=FW;_k=x", wantErr: `"plu=FW;_k=x"`},
		{raw: "_rq=1&price(>=)=5;drop", wantErr: `"price(>=)=5;drop"`},
		{raw: "name=100%", wantErr: `"name=100%"`},
		{raw: "na%zzme=1", wantErr: `"na%zzme=1"`},
	}
	for _, tt := range tests {
		t.Run(tt.raw, func(t *testing.T) {
			got, err := parseQuery(tt.raw)
			if tt.wantErr != "" {
				var pe *protocol.Error
				if !errors.As(err, &pe) || pe.Code != protocol.CodeBadPacket || !strings.Contains(pe.Message, tt.wantErr) {
					t.Fatalf("err = %v, want bad_packet naming %s", err, tt.wantErr)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("= %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}

// testServer is a front door over a fresh lane DB, with only the session
// and debug endpoints.
func testServer(t *testing.T, cfg Config) (*Server, *lanedb.DB) {
	t.Helper()
	db, err := lanedb.Open(context.Background(), filepath.Join(t.TempDir(), "lane.db"), lanedb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return New(cfg, db, slog.New(slog.DiscardHandler)), db
}

// dialSocket serves s on a test HTTP server and opens a socket to it at
// /fd1/open_websocket plus query ("" or "?purpose=presell"); both close
// when the test ends.
func dialSocket(t *testing.T, s *Server, query string) *websocket.Conn {
	t.Helper()
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http")+"/fd1/open_websocket"+query, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.Close() })
	return ws
}

func TestHTTPModeRefusals(t *testing.T) {
	s, db := testServer(t, DefaultConfig())
	key, err := db.CreateAPIKey(context.Background(), "http-admin", []string{"admin"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, method, target, body string
		noKey                      bool
		status                     int
		code                       protocol.Code
		wantMsg                    string // part of the message
	}{
		{name: "semicolon in the query", method: "GET", target: "/fd1/debug/ping?_rq=1;x=2", status: 400, code: protocol.CodeBadPacket, wantMsg: `"_rq=1;x=2"`},
		{name: "bad escape in the query", method: "GET", target: "/fd1/debug/ping?_rq=%zz", status: 400, code: protocol.CodeBadPacket, wantMsg: `"_rq=%zz"`},
		{name: "no key", method: "GET", target: "/fd1/debug/ping", noKey: true, status: 401, code: protocol.CodeLoginRequired, wantMsg: "x-api-key header"},
		{name: "no key, POST", method: "POST", target: "/fd1/debug/ping", noKey: true, status: 401, code: protocol.CodeLoginRequired, wantMsg: "x-api-key header"},
		{name: "body not JSON", method: "POST", target: "/fd1/debug/ping", body: "rq=1", status: 400, code: protocol.CodeBadPacket, wantMsg: "not JSON"},
		{name: "body cut short", method: "POST", target: "/fd1/debug/ping", body: `{"rq":`, status: 400, code: protocol.CodeBadPacket, wantMsg: "not JSON"},
		{name: "body null", method: "POST", target: "/fd1/debug/ping", body: "null", status: 400, code: protocol.CodeBadPacket, wantMsg: "is null, not a JSON object"},
		{name: "body an array", method: "POST", target: "/fd1/debug/ping", body: `[{"rq":1}]`, status: 400, code: protocol.CodeBadPacket, wantMsg: "is an array, not a JSON object"},
		{name: "body names another endpoint", method: "POST", target: "/fd1/debug/ping", body: `{"a":"fd1.session.login"}`, status: 400, code: protocol.CodeBadPacket, wantMsg: `"fd1.session.login" disagrees with the URL's endpoint fd1.debug.ping`},
		{name: "body a not a string", method: "POST", target: "/fd1/debug/ping", body: `{"a":7}`, status: 400, code: protocol.CodeBadPacket, wantMsg: "must be a string"},
		{name: "body names the same endpoint", method: "POST", target: "/fd1/debug/ping", body: `{"a":"debug.ping","rq":1}`, status: 200},
		{name: "body without a", method: "POST", target: "/fd1/debug/ping", body: `{"rq":1}`, status: 200},
		{name: "empty body", method: "POST", target: "/fd1/debug/ping", status: 200},
		{name: "plain GET", method: "GET", target: "/fd1/debug/ping?_rq=1", status: 200},
		{name: "body over the read limit", method: "POST", target: "/fd1/debug/ping", body: `{"rq":1,"x":"` + strings.Repeat("x", int(DefaultConfig().ReadLimit)) + `"}`, status: 413, code: protocol.CodeBadPacket, wantMsg: "larger than the lane's limit"},
		{name: "empty _ik", method: "GET", target: "/fd1/debug/ping?_ik=", status: 400, code: protocol.CodeBadArgument, wantMsg: "ik must be 1 to 128 characters"},
		{name: "a field twice", method: "GET", target: "/fd1/debug/ping?_rq=1&_rq=2", status: 400, code: protocol.CodeBadArgument, wantMsg: `"_rq" is given 2 times`},
	}
	h := s.Handler()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(tt.method, tt.target, strings.NewReader(tt.body))
			if !tt.noKey {
				r.Header.Set("x-api-key", key)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			var reply struct {
				Error *protocol.Error `json:"error"`
			}
			if err := json.Unmarshal(w.Body.Bytes(), &reply); err != nil {
				t.Fatalf("reply is not JSON: %s", w.Body)
			}
			if w.Code != tt.status {
				t.Fatalf("status %d, want %d: %s", w.Code, tt.status, w.Body)
			}
			if tt.code == "" {
				if reply.Error != nil {
					t.Fatalf("error %+v, want none", reply.Error)
				}
				return
			}
			if reply.Error == nil || reply.Error.Code != tt.code || !strings.Contains(reply.Error.Message, tt.wantMsg) {
				t.Fatalf("error %+v, want %s saying %q", reply.Error, tt.code, tt.wantMsg)
			}
		})
	}
}

func TestCanonicalOrigin(t *testing.T) {
	tests := []struct {
		in, want string // want "" for an error
	}{
		{"https://lane4:443", "https://lane4"},
		{"HTTP://Lane3:80/", "http://lane3"},
		{"http://lane2:3490", "http://lane2:3490"},
		{"http://192.168.1.20:3490", "http://192.168.1.20:3490"},
		{"http://[::1]:3490", "http://[::1]:3490"},
		{"https://[FE80::1]", "https://[fe80::1]"},
		{"lane2:3490", ""}, // the scheme forgotten
		{"lane2", ""},
		{"http://a/path", ""},
		{"http://*.evil", ""},
		{"javascript:alert(1)", ""},
		{"http://user@lane2", ""},
		{"http://lane2:", ""},
		{"http://lane2:99999", ""},
		{"http://lane2?x", ""},
		{"ws://lane2", ""},
		{"", ""},
	}
	for _, tt := range tests {
		got, err := CanonicalOrigin(tt.in)
		if tt.want == "" {
			if err == nil {
				t.Errorf("CanonicalOrigin(%q) = %q, want an error", tt.in, got)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("CanonicalOrigin(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestConfigRefusesABadAllowedOrigin(t *testing.T) {
	c := DefaultConfig()
	c.AllowedOrigins = []string{"https://lane4", "*", "lane2:3490"}
	err := c.Validate()
	if err == nil || !strings.Contains(err.Error(), `"lane2:3490"`) {
		t.Fatalf("Validate = %v, want it to name the entry lane2:3490", err)
	}
}

// TestHTTPModeTwoKeys: a request that gives two different keys is refused,
// not logged in as whichever header came first; the same key twice is fine.
func TestHTTPModeTwoKeys(t *testing.T) {
	s, db := testServer(t, DefaultConfig())
	ctx := context.Background()
	a, err := db.CreateAPIKey(ctx, "http-a", []string{"admin"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := db.CreateAPIKey(ctx, "http-b", []string{"admin"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		headers [][2]string
		status  int
	}{
		{"one key", [][2]string{{"x-api-key", a}}, 200},
		{"the old header", [][2]string{{"x-apikey", a}}, 200},
		{"the same key under both names", [][2]string{{"x-api-key", a}, {"x-apikey", a}}, 200},
		{"two keys under both names", [][2]string{{"x-api-key", a}, {"x-apikey", b}}, 400},
		{"one name twice", [][2]string{{"x-api-key", a}, {"x-api-key", b}}, 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/fd1/debug/ping", nil)
			for _, h := range tt.headers {
				r.Header.Add(h[0], h[1])
			}
			w := httptest.NewRecorder()
			s.Handler().ServeHTTP(w, r)
			if w.Code != tt.status {
				t.Fatalf("status %d, want %d: %s", w.Code, tt.status, w.Body)
			}
			if tt.status == 400 && !strings.Contains(w.Body.String(), "more than one API key") {
				t.Fatalf("the refusal does not say why: %s", w.Body)
			}
		})
	}
}

// TestHTTPModeCallOutlivesTheBodyDeadline: an HTTP-mode request has
// HandshakeTimeout to arrive (http.Server.ReadTimeout, as ListenAndServe
// sets it), but the call itself may run longer (a write waiting for the
// lane DB's lock): its context is not cancelled when that deadline passes.
// (net/http lifts the deadline once the body is read.)
func TestHTTPModeCallOutlivesTheBodyDeadline(t *testing.T) {
	cfg := DefaultConfig()
	cfg.HandshakeTimeout = 100 * time.Millisecond
	s, db := testServer(t, cfg)
	key, err := db.CreateAPIKey(context.Background(), "http-admin", []string{"admin"})
	if err != nil {
		t.Fatal(err)
	}
	s.Router().Handle(&protocol.Endpoint{Name: "fd1.test.slow", Access: protocol.Access{AnyKey: true},
		Handler: func(ctx context.Context, call *protocol.Call) (*protocol.Result, error) {
			select {
			case <-time.After(5 * cfg.HandshakeTimeout):
				return &protocol.Result{Data: map[string]any{"done": true}}, nil
			case <-ctx.Done():
				return nil, fmt.Errorf("cancelled while running: %w", ctx.Err())
			}
		}})
	srv := httptest.NewUnstartedServer(s.Handler())
	srv.Config.ReadTimeout = cfg.HandshakeTimeout
	srv.Start()
	defer srv.Close()
	for _, method := range []string{"POST", "GET"} {
		var body io.Reader
		if method == "POST" {
			body = strings.NewReader(`{"rq":1}`)
		}
		req, _ := http.NewRequest(method, srv.URL+"/fd1/test/slow", body)
		req.Header.Set("x-api-key", key)
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatalf("%s: %v", method, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(b), `"done":true`) {
			t.Fatalf("%s: %d %s", method, resp.StatusCode, b)
		}
	}
}

// TestQueryVMessages: a v that is not an object is refused in words a
// client can act on, with no Go type or value in them.
func TestQueryVMessages(t *testing.T) {
	tests := []struct{ query, want string }{
		{"v=null", "got null"},
		{"v=%5B1%5D", "got an array"},
		{"v=5", "got a number"},
		{"v=abc", "got text that is not JSON"},
		{"v.plu=null", "leave v.plu out"},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			q, err := url.ParseQuery(tt.query)
			if err != nil {
				t.Fatal(err)
			}
			_, err = requestFromQuery("fd1.salesbuilder.sale_add_product", q)
			pe := protocol.AsError(err)
			if err == nil || pe.Code != protocol.CodeBadArgument || !strings.Contains(pe.Message, tt.want) {
				t.Fatalf("err = %v, want bad_argument saying %q", err, tt.want)
			}
			if strings.Contains(pe.Message, "Go value") || strings.Contains(pe.Message, "<nil>") {
				t.Fatalf("message %q shows Go internals", pe.Message)
			}
		})
	}
}

// TestHTTPModeWithTheStoreOutOfReach: an HTTP-mode call logs in with its
// key on every call, so while the store database cannot be reached each
// call fails looking the key up. It is answered 503 unavailable saying so
// (not 500 internal), and the log tells it once in full, not a line each.
func TestHTTPModeWithTheStoreOutOfReach(t *testing.T) {
	ctx := context.Background()
	dbURL := pgtest.FreshDB(t)
	db, err := lanedb.Open(ctx, dbURL, lanedb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	key, err := db.CreateAPIKey(ctx, "till-1", []string{"counter"})
	if err != nil {
		t.Fatal(err)
	}
	var logs syncbuf.Buffer
	s := New(DefaultConfig(), db, slog.New(slog.NewTextHandler(&logs, nil)))
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	allow := pgtest.Switch(t, dbURL)

	allow(false)
	const calls = 20
	for range calls {
		req, err := http.NewRequest("GET", srv.URL+"/fd1/debug/ping", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("x-api-key", key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var reply struct{ Error *protocol.Error }
		err = json.NewDecoder(resp.Body).Decode(&reply)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusServiceUnavailable || reply.Error == nil || reply.Error.Cause != protocol.CauseDBUnreachable {
			t.Fatalf("a call with the store database out of reach: %d %+v, want 503 unavailable (db_unreachable)", resp.StatusCode, reply.Error)
		}
	}
	got := logs.String()
	if n := strings.Count(got, "level=ERROR") + strings.Count(got, "level=WARN"); n != 1 || !strings.Contains(got, `err="the store database cannot be reached: `) {
		t.Fatalf("%d lines for %d calls, want 1 saying the store database cannot be reached:\n%s", n, calls, got)
	}
}
