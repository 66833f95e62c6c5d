package server

import (
	"context"
	"encoding/json"
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
