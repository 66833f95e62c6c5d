package lane

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/greenlane-pos/greenlane/lanedb"
	"github.com/greenlane-pos/greenlane/protocol"
)

// working is what the lane's goroutines run. A goroutine with one of them
// on its stack is still at work; one that was joined has returned from it
// (it may still be unwinding the go statement's wrapper).
var working = []string{
	"server.(*Server).watchRevocations",
	"net/http.(*Server).Serve",
	"server.(*socket).writePump",
	"server.(*socket).readPump",
	"server.(*pool).work",
	"server.(*Server).shutdown",
	"server.(*Server).openWebsocket",
	"server.(*Server).httpMode",
}

// ourGoroutines are the goroutines at work in the lane's code, by id, with
// their stacks.
func ourGoroutines() map[string]string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	out := map[string]string{}
	for _, g := range bytes.Split(buf, []byte("\n\n")) {
		text := string(g)
		for _, w := range working {
			if strings.Contains(text, w+"(") {
				id, _, _ := strings.Cut(strings.TrimPrefix(text, "goroutine "), " ")
				out[id] = text
				break
			}
		}
	}
	return out
}

// Serve returns only once everything it started has ended: the HTTP
// server's Serve loop, the revoked-key watcher, every socket's write pump
// and workers, socket handlers, and HTTP-mode calls (stopped when they
// outlast the shutdown grace). A caller that closes the lane and its DB
// next must find none of them still running. The check is made once, the moment Serve returns:
// a goroutine that ends "soon after" is one that was not joined. One such
// goroutine is not seen every time, so several lanes are served in turn.
func TestServeJoinsEveryGoroutineItStarts(t *testing.T) {
	ctx := context.Background()
	db, err := lanedb.Open(ctx, filepath.Join(t.TempDir(), "lane.db"), lanedb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	key, err := db.CreateAPIKey(ctx, "joiner", []string{"admin"})
	if err != nil {
		t.Fatal(err)
	}
	for round := range 10 {
		serveOnce(t, db, key, round)
		if t.Failed() {
			return
		}
	}
}

func serveOnce(t *testing.T, db *lanedb.DB, key string, round int) {
	ctx := context.Background()
	cfg := DefaultConfig()
	cfg.Server.Addr = "127.0.0.1:0"
	cfg.Server.RevokeCheck = 10 * time.Millisecond // the least allowed: the watcher is often busy when the lane stops
	cfg.Server.ShutdownGrace = 50 * time.Millisecond
	l, err := New(ctx, db, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	// A call that runs until it is stopped, as a slow one would.
	entered := make(chan struct{}, 1)
	l.Server.Router().Handle(&protocol.Endpoint{Name: "fd1.test.hold", Access: protocol.Access{AnyKey: true},
		Handler: func(ctx context.Context, _ *protocol.Call) (*protocol.Result, error) {
			entered <- struct{}{}
			<-ctx.Done()
			return nil, ctx.Err()
		}})
	before := ourGoroutines() // none: the hub, sweeper and writer are Close's to join

	sctx, stop := context.WithCancel(ctx)
	defer stop()
	hc := &http.Client{Transport: &http.Transport{}}
	defer hc.CloseIdleConnections()
	var use []string           // what went wrong while the lane served
	var holding sync.WaitGroup // the held call's client
	defer holding.Wait()
	err = l.Serve(sctx, func(addr net.Addr) {
		defer stop()
		// A socket that logs in and runs a request on its pool, one that
		// never logs in, and an HTTP-mode call: each starts goroutines.
		ws, _, err := websocket.DefaultDialer.Dial("ws://"+addr.String()+"/fd1/open_websocket?purpose=presell", nil)
		if err != nil {
			use = append(use, "dial: "+err.Error())
			return
		}
		defer ws.Close()
		for _, pkt := range []map[string]any{
			{"a": "fd1.session.login", "rq": 1, "v": map[string]any{"apikey": key}},
			{"a": "fd1.debug.ping", "rq": 2},
		} {
			b, _ := json.Marshal(pkt)
			_ = ws.WriteMessage(websocket.TextMessage, b)
			_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
			if _, msg, err := ws.ReadMessage(); err != nil || bytes.Contains(msg, []byte(`"error"`)) {
				use = append(use, "socket: "+string(msg)+" "+errString(err))
			}
		}
		idle, _, err := websocket.DefaultDialer.Dial("ws://"+addr.String()+"/fd1/open_websocket", nil)
		if err != nil {
			use = append(use, "dial idle: "+err.Error())
			return
		}
		defer idle.Close()
		req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+addr.String()+"/fd1/debug/ping?_rq=h", nil)
		req.Header.Set("x-api-key", key)
		resp, err := hc.Do(req)
		if err != nil {
			use = append(use, "http: "+err.Error())
			return
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			use = append(use, "http: "+resp.Status)
		}
		time.Sleep(5 * time.Millisecond) // let the revoked-key watcher tick
		holding.Add(1)
		go func() {
			defer holding.Done()
			req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+addr.String()+"/fd1/test/hold", nil)
			req.Header.Set("x-api-key", key)
			if resp, err := hc.Do(req); err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}()
		<-entered
	})
	after := ourGoroutines()
	if err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if len(use) > 0 {
		t.Fatalf("using the lane: %v", use)
	}
	for id, stack := range after {
		if _, ok := before[id]; !ok {
			t.Errorf("round %d: still running after Serve returned:\n%s", round, stack)
		}
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
