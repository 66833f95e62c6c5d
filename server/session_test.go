package server

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/greenlane-pos/greenlane/protocol"
)

// TestSessionReachesTheHandler: a handler finds the session its request
// runs on in the call, the socket itself or the HTTP call, logged in as
// the key that made the request; a call that runs on none has none.
func TestSessionReachesTheHandler(t *testing.T) {
	s, db := testServer(t, DefaultConfig())
	key, err := db.CreateAPIKey(context.Background(), "till-1", []string{"counter"})
	if err != nil {
		t.Fatal(err)
	}
	// whoami answers what kind of session it ran on and who that session
	// is logged in as.
	whoami := func(_ context.Context, call *protocol.Call) (*protocol.Result, error) {
		kind := "none"
		switch sessionOf(call).(type) {
		case *socket:
			kind = "socket"
		case *httpSession:
			kind = "http"
		}
		name := ""
		if sess := sessionOf(call); sess != nil {
			name = sess.currentCaller().KeyName
		}
		return &protocol.Result{Data: map[string]any{"session": kind, "key": name}}, nil
	}
	ep := &protocol.Endpoint{Name: "fd1.test.whoami", Access: protocol.Access{AnyKey: true}, Handler: whoami}
	s.Router().Handle(ep)
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()

	type answer struct{ Session, Key string }
	decode := func(b []byte) answer {
		var r struct {
			Error *protocol.Error
			Data  answer
		}
		if err := json.Unmarshal(b, &r); err != nil || r.Error != nil {
			t.Fatalf("reply %s: %v", b, err)
		}
		return r.Data
	}

	ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http")+"/fd1/open_websocket", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	overSocket := func(pkt map[string]any) []byte {
		if err := ws.WriteJSON(pkt); err != nil {
			t.Fatal(err)
		}
		_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, msg, err := ws.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		return msg
	}
	overSocket(map[string]any{"a": "fd1.session.login", "rq": 1, "v": map[string]any{"apikey": key}})
	sk := onlySocket(t, s)
	if got := sk.currentCaller().KeyName; got != "till-1" {
		t.Fatalf("the login reached a session that is logged in as %q, want till-1", got)
	}

	req, _ := http.NewRequest("GET", srv.URL+"/fd1/test/whoami", nil)
	req.Header.Set("x-api-key", key)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()

	direct, err := whoami(context.Background(), &protocol.Call{Req: &protocol.Request{A: ep.Name}, Caller: &protocol.Caller{}, Endpoint: ep})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(map[string]any{"data": direct.Data})

	for _, tt := range []struct {
		name string
		got  answer
		want answer
	}{
		{"socket", decode(overSocket(map[string]any{"a": "fd1.test.whoami", "rq": 2})), answer{"socket", "till-1"}},
		{"HTTP mode", decode(body), answer{"http", "till-1"}},
		{"no session", decode(b), answer{"none", ""}},
	} {
		if tt.got != tt.want {
			t.Errorf("%s: the handler saw %+v, want %+v", tt.name, tt.got, tt.want)
		}
	}
}
