package server

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// TestCheapRefusalsDoNotOutrunTheWritePump: frames the read pump answers
// itself (here rate_limited, and not-JSON) cost next to nothing, so a
// client sending many outruns the write pump. The read pump then waits for
// room in the send queue; a client that reads every reply is never taken
// for one that does not, and gets every answer.
func TestCheapRefusalsDoNotOutrunTheWritePump(t *testing.T) {
	cfg := DefaultConfig()
	cfg.RequestRate, cfg.RequestBurst = 1, 1
	cfg.SendQueue = 2 // a tiny queue: any outrunning shows at once
	s, _ := testServer(t, cfg)
	ws := dialSocket(t, s, "")
	const n = 2000
	sent := make(chan error, 1)
	go func() {
		for i := range n {
			frame := []byte(`{"a":"fd1.debug.ping","rq":1}`)
			if i%2 == 1 {
				frame = []byte(`not json`)
			}
			if err := ws.WriteMessage(websocket.TextMessage, frame); err != nil {
				sent <- err
				return
			}
		}
		sent <- nil
	}()
	codes := map[string]int{}
	for range n {
		_ = ws.SetReadDeadline(time.Now().Add(30 * time.Second))
		_, msg, err := ws.ReadMessage()
		if err != nil {
			t.Fatalf("after %v replies: %v", codes, err)
		}
		var r struct {
			Error *struct{ Code string }
		}
		if err := json.Unmarshal(msg, &r); err != nil {
			t.Fatal(err)
		}
		code := "ok"
		if r.Error != nil {
			code = r.Error.Code
		}
		codes[code]++
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	if codes["rate_limited"] == 0 || codes["bad_packet"] != n/2 {
		t.Fatalf("replies %v: want %d bad_packet and the pings past the first rate_limited", codes, n/2)
	}
}
