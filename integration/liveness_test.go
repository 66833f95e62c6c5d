package integration

import (
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

func TestPingPongKeepalive(t *testing.T) {
	l := startLane(t, "--pong-wait", "1s")

	// A client that keeps reading answers the lane's pings (gorilla does it
	// inside ReadMessage) and stays connected well past the pong wait.
	alive := l.login("", l.key, "")
	var pings int
	alive.ws.SetPingHandler(func(data string) error {
		pings++
		return alive.ws.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
	})
	_ = alive.ws.SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, _, err := alive.ws.ReadMessage(); !isTimeout(err) {
		t.Fatalf("reading an idle socket: %v, want our own read timeout", err)
	}
	if pings < 2 {
		t.Fatalf("saw %d pings in 3s with a 1s pong wait", pings)
	}

	// A dead peer (never reads, so never pongs) is dropped.
	dead := l.login("", l.key, "")
	time.Sleep(2500 * time.Millisecond)
	_ = dead.ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		if _, _, err := dead.ws.ReadMessage(); err != nil {
			if isTimeout(err) {
				t.Fatalf("the lane kept a silent peer open: %v", err)
			}
			break
		}
	}
	// The lane still serves new sockets.
	fresh := l.login("", l.key, "")
	fresh.ping()
}

func isTimeout(err error) bool {
	return err != nil && strings.Contains(err.Error(), "timeout")
}

func TestSlowConsumerIsDisconnected(t *testing.T) {
	l := startLane(t, "--send-queue", "4", "--write-wait", "1s")
	slow := l.login("", l.key, "")
	bystander := l.login("", l.key, "")

	// Ask for far more reply bytes than the socket buffers hold, and read
	// nothing: the lane must drop this client, not block on it.
	frame := []byte(`{"a":"fd1.products.get_products_list"}`)
	_ = slow.ws.SetWriteDeadline(time.Now().Add(20 * time.Second))
	for i := 0; i < 4000; i++ {
		if err := slow.ws.WriteMessage(websocket.TextMessage, frame); err != nil {
			break // the lane has already hung up
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(l.log(), "send queue full") {
		if time.Now().After(deadline) {
			t.Fatalf("the lane never dropped the slow client; log:\n%s", l.log())
		}
		time.Sleep(50 * time.Millisecond)
	}
	_ = slow.ws.SetReadDeadline(time.Now().Add(20 * time.Second))
	for {
		if _, _, err := slow.ws.ReadMessage(); err != nil {
			if isTimeout(err) {
				t.Fatalf("the slow client's socket stayed open: %v", err)
			}
			break
		}
	}
	bystander.ping()
}
