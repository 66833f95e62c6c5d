package server

import (
	"bytes"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// TestOversizedFrameIsToldWhy: a frame over the read limit closes its socket
// with 1009, and the client reads that close frame even while it is still
// sending the frame's rest. Closing with the rest unread resets the
// connection, and the reset can beat the close frame to the client. 900 KiB
// is more than loopback's buffers hold and less than the lane drops
// (lingerBytes) before it closes.
func TestOversizedFrameIsToldWhy(t *testing.T) {
	s, _ := testServer(t, DefaultConfig())
	for _, size := range []int{70 << 10, 900 << 10} {
		for range 5 {
			ws := dialSocket(t, s, "")
			frame := append([]byte(`{"a":"fd1.debug.ping","v":{"pad":"`), bytes.Repeat([]byte("x"), size)...)
			if err := ws.WriteMessage(websocket.TextMessage, append(frame, `"}}`...)); err != nil {
				t.Fatalf("%d bytes: send: %v", size, err)
			}
			_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
			_, _, err := ws.ReadMessage()
			if !websocket.IsCloseError(err, websocket.CloseMessageTooBig) {
				t.Fatalf("%d bytes: read err = %v, want close 1009", size, err)
			}
			ws.Close()
		}
	}
}
