package server

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/greenlane-pos/greenlane/protocol"
)

// exchange sends one packet on ws and reads the reply.
func exchange(t *testing.T, ws *websocket.Conn, pkt string) map[string]json.RawMessage {
	t.Helper()
	if err := ws.WriteMessage(websocket.TextMessage, []byte(pkt)); err != nil {
		t.Fatal(err)
	}
	_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, msg, err := ws.ReadMessage()
	if err != nil {
		t.Fatalf("%s: %v", pkt, err)
	}
	var r map[string]json.RawMessage
	if err := json.Unmarshal(msg, &r); err != nil {
		t.Fatalf("%s: %v: %s", pkt, err, msg)
	}
	return r
}

func errorCode(t *testing.T, r map[string]json.RawMessage) (protocol.Code, string) {
	t.Helper()
	var e protocol.Error
	if raw, ok := r["error"]; ok {
		if err := json.Unmarshal(raw, &e); err != nil {
			t.Fatal(err)
		}
	}
	return e.Code, e.Message
}

// SPEC §1.2: a GET query names packet fields as the SPEC's own examples
// do, bare (?qk=all&k=active) or with "_"; every other name is a q filter.
func TestRequestFromQueryPacketFields(t *testing.T) {
	tests := []struct {
		query   string
		check   func(*protocol.Request) bool
		wantErr protocol.Code
	}{
		{query: "qk=all&k=active", check: func(r *protocol.Request) bool {
			return r.QK.Has("all") && r.Key() == "active" && len(r.Q) == 0
		}},
		{query: "_qk=all&_k=active", check: func(r *protocol.Request) bool { return r.QK.Has("all") && r.Key() == "active" }},
		{query: "qk=all,%20mine", check: func(r *protocol.Request) bool { return len(r.QK) == 2 && r.QK.Has("mine") }},
		{query: "mo=chunk&rq=7&rt=tab&ik=abc&pt=x", check: func(r *protocol.Request) bool {
			return r.WantsChunks() && r.RQString() == "7" && string(r.RT) == `"tab"` && r.IK == "abc" && r.PT == "x"
		}},
		{query: "qo=pid,plu&rd=" + url.QueryEscape(`{"time":true}`), check: func(r *protocol.Request) bool {
			return string(r.QO) == `"pid,plu"` && r.WantsTiming()
		}},
		{query: "v.pid=1001&_v.plu=FW", check: func(r *protocol.Request) bool { return string(r.V) == `{"pid":"1001","plu":"FW"}` }},
		{query: "v=" + url.QueryEscape(`{"pid":1,"qty":2}`) + "&v.plu=3", check: func(r *protocol.Request) bool { return string(r.V) == `{"pid":1,"plu":"3","qty":2}` }},
		{query: "v=" + url.QueryEscape(`{"pid":1,"qty":2}`) + "&v.pid=3", wantErr: protocol.CodeBadPacket},
		{query: "plucode=8145&kind=x", check: func(r *protocol.Request) bool { return len(r.Q) == 2 && string(r.Q["plucode"]) == `"8145"` }},
		{query: "qk=all&_qk=all", wantErr: protocol.CodeBadPacket},
		{query: "k=1&_k=2", wantErr: protocol.CodeBadPacket},
		{query: "v.pid=1&_v.pid=2", wantErr: protocol.CodeBadPacket},
		{query: "rd=time", wantErr: protocol.CodeBadArgument},
		{query: "_nope=1", wantErr: protocol.CodeBadArgument},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			q, err := url.ParseQuery(tt.query)
			if err != nil {
				t.Fatal(err)
			}
			req, err := requestFromQuery("fd1.salesbuilder.get_sale", q)
			if tt.wantErr != "" {
				if pe := protocol.AsError(err); err == nil || pe.Code != tt.wantErr {
					t.Fatalf("err = %v, want %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tt.check(req) {
				t.Fatalf("request %+v (q %v, v %s)", req, req.Q, req.V)
			}
		})
	}
}

// Before login every name but the public session endpoints answers
// login_required: which names exist is not told (DESIGN §4).
func TestBeforeLoginEveryNameIsLoginRequired(t *testing.T) {
	s, _ := testServer(t, DefaultConfig())
	ws := dialSocket(t, s, "")
	for _, a := range []string{"fd1.nosuch.thing", "fd1.debug.ping", "fd1.data", "fd1.salesbuilder.sale_invoke_eftpos"} {
		r := exchange(t, ws, `{"a":"`+a+`","rq":1,"pt":"other"}`)
		if code, msg := errorCode(t, r); code != protocol.CodeLoginRequired {
			t.Errorf("%s before login: %s (%s), want login_required", a, code, msg)
		}
	}
}

// SPEC §4.2: exactly one of apikey, token, encryption_user.
func TestLoginWantsExactlyOneCredential(t *testing.T) {
	s, db := testServer(t, DefaultConfig())
	key, err := db.CreateAPIKey(context.Background(), "till-1", []string{"counter"})
	if err != nil {
		t.Fatal(err)
	}
	ws := dialSocket(t, s, "")
	tests := []struct {
		v    string
		want protocol.Code
	}{
		{`{"apikey":"` + key + `","token":"abc"}`, protocol.CodeBadArgument},
		{`{"apikey":"` + key + `","encryption_user":"u"}`, protocol.CodeBadArgument},
		{`{"token":"abc"}`, protocol.CodeUnsupported},
		{`{"apikey":"` + key + `"}`, ""},
	}
	for _, tt := range tests {
		r := exchange(t, ws, `{"a":"fd1.session.login","rq":1,"v":`+tt.v+`}`)
		code, msg := errorCode(t, r)
		if code != tt.want {
			t.Fatalf("login v %s: %s (%s), want %q", tt.v, code, msg, tt.want)
		}
		if tt.want == protocol.CodeBadArgument && msg != "send exactly one of apikey, token, encryption_user" {
			t.Fatalf("message %q", msg)
		}
	}
}

// Every path under /fd1/ answers the FD1 error envelope, never Go's
// plain-text 404.
func TestHTTPModeOtherPaths(t *testing.T) {
	s, db := testServer(t, DefaultConfig())
	key, err := db.CreateAPIKey(context.Background(), "till-1", []string{"counter"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		target string
		noKey  bool
		status int
		code   protocol.Code
	}{
		{"/fd1/data", false, 501, protocol.CodeUnsupported},
		{"/fd1/salesbuilder/sale_invoke_eftpos", false, 501, protocol.CodeUnsupported},
		{"/fd1/salesbuilder/get_sale/", false, 404, protocol.CodeUnknownEndpoint},
		{"/fd1/debug/ping/", false, 404, protocol.CodeUnknownEndpoint},
		{"/fd1/debug.ping", false, 404, protocol.CodeUnknownEndpoint},
		{"/fd1/a/b/c", false, 404, protocol.CodeUnknownEndpoint},
		{"/fd1/", false, 404, protocol.CodeUnknownEndpoint},
		{"/fd1/nosuch", false, 404, protocol.CodeUnknownEndpoint},
		{"/fd1/nosuch/thing", true, 401, protocol.CodeLoginRequired},
		{"/fd1/debug.ping", true, 401, protocol.CodeLoginRequired},
	}
	h := s.Handler()
	for _, tt := range tests {
		t.Run(tt.target, func(t *testing.T) {
			r := httptest.NewRequest("GET", tt.target, nil)
			if !tt.noKey {
				r.Header.Set("x-api-key", key)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			var reply struct {
				Error *protocol.Error `json:"error"`
			}
			if err := json.Unmarshal(w.Body.Bytes(), &reply); err != nil || !strings.HasPrefix(w.Header().Get("Content-Type"), "application/json") {
				t.Fatalf("reply is not the JSON envelope: %d %s", w.Code, w.Body)
			}
			if w.Code != tt.status || reply.Error == nil || reply.Error.Code != tt.code {
				t.Fatalf("%d %s, want %d %s", w.Code, w.Body, tt.status, tt.code)
			}
		})
	}
}

// utfx counts the bytes replaced because they were not UTF-8 (SPEC §5.5).
func TestValidUTF8(t *testing.T) {
	tests := []struct {
		in, want string
		n        int
	}{
		{"fd1.debug.ping", "fd1.debug.ping", 0},
		{"", "", 0},
		{"café", "café", 0},
		{"a\xffb", "a\uFFFDb", 1},
		{"\xc3\x28\xff", "\uFFFD(\uFFFD", 2},
	}
	for _, tt := range tests {
		got, n := validUTF8(tt.in)
		if got != tt.want || n != tt.n {
			t.Errorf("validUTF8(%q) = %q, %d; want %q, %d", tt.in, got, n, tt.want, tt.n)
		}
	}
}
