package server

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/greenlane-pos/greenlane/internal/syncbuf"
	"github.com/greenlane-pos/greenlane/protocol"
)

// A login is one path whatever the transport: the same key gets the same
// answer over a socket and in HTTP mode, failures from one address share
// one budget, a correct key gets in past it, and every refusal logs one
// line with the address and the key's name when it is known.
func TestLoginSameOverSocketAndHTTP(t *testing.T) {
	cfg := DefaultConfig()
	cfg.LoginFailures = 2
	s, db := testServer(t, cfg)
	var logs syncbuf.Buffer
	s.log = slog.New(slog.NewTextHandler(&logs, nil))
	ctx := context.Background()
	good, err := db.CreateAPIKey(ctx, "till-1", []string{"counter"})
	if err != nil {
		t.Fatal(err)
	}
	gone, err := db.CreateAPIKey(ctx, "old-tablet", []string{"presell"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.RevokeAPIKey(ctx, "old-tablet"); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http")+"/fd1/open_websocket", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()

	type answer struct {
		Code    protocol.Code
		Message string
		Retry   string // HTTP mode's Retry-After
	}
	overSocket := func(key string) answer {
		b, _ := json.Marshal(map[string]any{"a": "fd1.session.login", "rq": 1, "v": map[string]any{"apikey": key}})
		if err := ws.WriteMessage(websocket.TextMessage, b); err != nil {
			t.Fatal(err)
		}
		_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, msg, err := ws.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		var r struct{ Error *protocol.Error }
		if err := json.Unmarshal(msg, &r); err != nil {
			t.Fatalf("%v: %s", err, msg)
		}
		if r.Error == nil {
			return answer{}
		}
		return answer{Code: r.Error.Code, Message: r.Error.Message}
	}
	overHTTP := func(key string) answer {
		req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/fd1/debug/ping", nil)
		req.Header.Set("x-api-key", key)
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		var r struct{ Error *protocol.Error }
		if err := json.Unmarshal(body, &r); err != nil {
			t.Fatalf("%v: %s", err, body)
		}
		if r.Error == nil {
			return answer{}
		}
		if want := r.Error.Code.HTTPStatus(); resp.StatusCode != want {
			t.Errorf("HTTP status %d for %s, want %d", resp.StatusCode, r.Error.Code, want)
		}
		return answer{Code: r.Error.Code, Message: r.Error.Message, Retry: resp.Header.Get("Retry-After")}
	}
	seconds := regexp.MustCompile(`\d+s`)
	tests := []struct {
		name string
		key  string
		want protocol.Code // "" for a login that succeeds
	}{
		{"unknown key", "glk.nosuch.secret", protocol.CodeLoginFailed}, // 2 failures: the budget
		{"revoked key past the budget", gone, protocol.CodeRateLimited},
		{"unknown key past the budget", "not-even-a-key", protocol.CodeRateLimited},
		{"correct key past the budget", good, ""},
	}
	for _, tt := range tests {
		ws, h := overSocket(tt.key), overHTTP(tt.key)
		if ws.Code != tt.want || h.Code != tt.want {
			t.Errorf("%s: socket %s %q, HTTP %s %q; want %q both ways", tt.name, ws.Code, ws.Message, h.Code, h.Message, tt.want)
			continue
		}
		// The wait may tick over a second between the two calls.
		if seconds.ReplaceAllString(ws.Message, "Ns") != seconds.ReplaceAllString(h.Message, "Ns") {
			t.Errorf("%s: the socket says %q, HTTP mode %q", tt.name, ws.Message, h.Message)
		}
		if (tt.want == protocol.CodeRateLimited) != (h.Retry != "") {
			t.Errorf("%s: Retry-After %q", tt.name, h.Retry)
		}
	}

	lines := regexp.MustCompile(`(?m)^.*login refused.*$`).FindAllString(logs.String(), -1)
	if len(lines) != 6 {
		t.Fatalf("%d login-refused lines, want 6 (one per refusal):\n%s", len(lines), logs.String())
	}
	for i, line := range lines {
		transport := []string{"ws", "http"}[i%2]
		if !strings.Contains(line, "remote=127.0.0.1:") || !strings.Contains(line, "transport="+transport) {
			t.Errorf("refusal %d: %s; want the address and transport=%s", i+1, line, transport)
		}
		if named := strings.Contains(line, "key=old-tablet"); named != (i == 2 || i == 3) {
			t.Errorf("refusal %d names the key %v, want only the revoked key's: %s", i+1, named, line)
		}
		for _, secret := range []string{good, gone, "glk.nosuch.secret", "not-even-a-key"} {
			if strings.Contains(line, secret) {
				t.Errorf("refusal %d logs the key itself: %s", i+1, line)
			}
		}
	}
}

func TestDoorCounts(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxSockets, cfg.MaxUnauthSockets, cfg.MaxUnauthPerAddress, cfg.MaxSocketsPerKey = 4, 3, 2, 1
	s, db := testServer(t, cfg)
	ctx := context.Background()
	if _, err := db.CreateAPIKey(ctx, "tablet-1", []string{"presell"}); err != nil {
		t.Fatal(err)
	}
	keys, err := db.ListAPIKeys(ctx)
	if err != nil || len(keys) != 1 {
		t.Fatalf("keys %v, %v", keys, err)
	}
	key := &keys[0]

	admitted := func(remote string) *admission {
		t.Helper()
		a, no := s.admit(remote)
		if no != nil {
			t.Fatalf("admit %s: refused %d %q", remote, no.status, no.reason)
		}
		return a
	}
	refused := func(remote string, status int, says string) {
		t.Helper()
		a, no := s.admit(remote)
		if no == nil {
			s.forget(a)
			t.Fatalf("admit %s: let in, want %d", remote, status)
		}
		if no.status != status || !strings.Contains(no.reason, says) {
			t.Fatalf("admit %s: %d %q, want %d saying %q", remote, no.status, no.reason, status, says)
		}
	}
	limitReached := func(err error) bool {
		var pe *protocol.Error
		return errors.As(err, &pe) && pe.Code == protocol.CodeLimitReached && strings.Contains(pe.Message, `"tablet-1"`)
	}

	a1 := admitted("10.0.0.1:1")
	a2 := admitted("10.0.0.1:2")
	refused("10.0.0.1:3", http.StatusTooManyRequests, "not logged in") // 2 per address
	a3 := admitted("10.0.0.2:1")
	refused("10.0.0.3:1", http.StatusServiceUnavailable, "waiting to log in") // 3 lane-wide, none open to close

	if err := s.admitKey(a1, key); err != nil { // a1 logs in: no longer waiting
		t.Fatal(err)
	}
	a4 := admitted("10.0.0.1:3")
	if err := s.admitKey(a2, key); !limitReached(err) { // 1 socket per key
		t.Fatalf("a second socket of the key: %v, want limit_reached naming it", err)
	}
	if err := s.admitKey(a1, key); err != nil { // the same socket again counts once
		t.Fatalf("the same key again on one socket: %v", err)
	}
	s.forget(a1)
	if err := s.admitKey(a2, key); err != nil {
		t.Fatalf("the key's socket closed, another logs in: %v", err)
	}
	a5 := admitted("10.0.0.4:1")
	refused("10.0.0.5:1", http.StatusServiceUnavailable, "maximum of open sockets") // 4 open
	for _, a := range []*admission{a2, a3, a4, a5} {
		s.forget(a)
	}
	if d := s.door; d.open != 0 || d.unauth != 0 || len(d.waiting) != 0 || len(d.byKey) != 0 {
		t.Fatalf("after every socket left: %+v", d)
	}
}

// TestLoginPurpose: a login packet asks for customerdisplay or debugscope;
// a bogus purpose is told the valid ones, and both it and presell are told
// that presell is chosen on the URL.
func TestLoginPurpose(t *testing.T) {
	tests := []struct {
		given string
		want  protocol.Purpose
		msg   []string // refused: what the message must say
	}{
		{"", protocol.PurposeNone, nil},
		{"customerdisplay", protocol.PurposeCustomerDisplay, nil},
		{"debugscope", protocol.PurposeDebugScope, nil},
		{"presell", "", []string{"?purpose=presell", "not in the login packet"}},
		{"bogus", "", []string{"customerdisplay or debugscope", `"bogus"`, "?purpose=presell"}},
	}
	for _, tt := range tests {
		t.Run(tt.given, func(t *testing.T) {
			got, err := loginPurpose(tt.given)
			if tt.msg == nil {
				if err != nil || got != tt.want {
					t.Fatalf("= %q, %v; want %q", got, err, tt.want)
				}
				return
			}
			pe := protocol.AsError(err)
			if err == nil || pe.Code != protocol.CodeBadArgument {
				t.Fatalf("err = %v, want bad_argument", err)
			}
			for _, m := range tt.msg {
				if !strings.Contains(pe.Message, m) {
					t.Fatalf("message %q does not say %q", pe.Message, m)
				}
			}
			if strings.Contains(pe.Message, "one of:") {
				t.Fatalf("message %q lists presell among the valid values", pe.Message)
			}
		})
	}
}
