package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/greenlane-pos/greenlane/protocol"
)

// idleGoroutines is what one idle, logged-in socket may cost the lane in
// goroutines: its read pump. The writer and the pool's workers run only
// while there is work, and pings come from a timer.
const idleGoroutines = 1

// TestIdleSocketGoroutines opens sockets that log in, send one request
// each and then go quiet, and counts the lane's goroutines: every socket
// must come down to idleGoroutines, and still answer when it speaks again.
// The clients start no goroutines of their own (they read only when they
// wait for a reply), so the difference is the lane's.
func TestIdleSocketGoroutines(t *testing.T) {
	tests := []struct {
		name  string
		query string // on the socket's URL
		scope string // of the key it logs in with
	}{
		{"presell", "?purpose=presell", "presell"},
		{"ordinary", "", "counter"},
	}
	const sockets = 24
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, db := testServer(t, DefaultConfig())
			key, err := db.CreateAPIKey(context.Background(), "idle-"+tt.name, []string{tt.scope})
			if err != nil {
				t.Fatal(err)
			}
			srv := httptest.NewServer(s.Handler())
			defer func() {
				srv.Close()
				s.handlers.Wait() // every socket's goroutine has ended
			}()
			before := runtime.NumGoroutine()
			conns := make([]*websocket.Conn, sockets)
			for i := range conns {
				ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http")+"/fd1/open_websocket"+tt.query, nil)
				if err != nil {
					t.Fatal(err)
				}
				defer ws.Close()
				conns[i] = ws
				// A login runs on the read pump; a ping goes through the
				// pool: both the writer and a worker have run.
				call(t, ws, "fd1.session.login", map[string]any{"apikey": key})
				call(t, ws, "fd1.debug.ping", nil)
			}
			limit := before + sockets*idleGoroutines
			n := runtime.NumGoroutine()
			// Writers and workers end just after their last reply went
			// out: give them the moment they need.
			for wait := time.Now().Add(10 * time.Second); n > limit && time.Now().Before(wait); n = runtime.NumGoroutine() {
				time.Sleep(10 * time.Millisecond)
			}
			if n > limit {
				buf := make([]byte, 1<<20)
				t.Fatalf("%d idle sockets hold %d goroutines, want at most %d each (%d); goroutines:\n%s",
					sockets, n-before, idleGoroutines, limit-before, buf[:runtime.Stack(buf, true)])
			}
			for _, ws := range conns { // idle, not dead: the work goroutines come back
				call(t, ws, "fd1.debug.ping", nil)
			}
		})
	}
}

// call sends one request on ws and fails the test unless its reply comes
// back without an error.
func call(t *testing.T, ws *websocket.Conn, endpoint string, v any) {
	t.Helper()
	b, err := json.Marshal(map[string]any{"a": endpoint, "rq": 1, "v": v})
	if err != nil {
		t.Fatal(err)
	}
	if err := ws.WriteMessage(websocket.TextMessage, b); err != nil {
		t.Fatal(err)
	}
	_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, msg, err := ws.ReadMessage()
	if err != nil {
		t.Fatalf("%s: %v", endpoint, err)
	}
	var r struct{ Error *protocol.Error }
	if err := json.Unmarshal(msg, &r); err != nil {
		t.Fatalf("%s: %v: %s", endpoint, err, msg)
	}
	if r.Error != nil {
		t.Fatal(fmt.Errorf("%s: %s", endpoint, msg))
	}
}
